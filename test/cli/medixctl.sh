#!/usr/bin/env bash
# medixctl against a running medix-dp on two net_null ports: every command in table and JSON
# form, set/delete round trips, apply as one transaction, and server errors passed through with
# their field path. Ends with "medixctl: N passed, M failed"; exits non-zero on a failure.
#
# MEDIX_DP and MEDIXCTL override the binaries (default: build/dataplane/medix-dp, build/controlplane/cli/medixctl).
set -u
cd "$(dirname "$0")/../.."
dp=${MEDIX_DP:-build/dataplane/medix-dp}
ctl=${MEDIXCTL:-build/controlplane/cli/medixctl}
cp=${MEDIX_CP:-build/controlplane/medix-cp}
py=/usr/bin/python3
prefix=medixctl-test-$$
tmp=$(mktemp -d /tmp/medixctl-test.XXXXXX)
passed=0 failed=0
dp_pid= cp_pid=

cleanup() {
  if [ -n "$cp_pid" ]; then kill -TERM "$cp_pid" 2>/dev/null; wait "$cp_pid" 2>/dev/null; fi
  if [ -n "$dp_pid" ]; then kill -TERM "$dp_pid" 2>/dev/null; wait "$dp_pid" 2>/dev/null; fi
  rm -rf "$tmp" "/var/run/dpdk/$prefix"
}
trap cleanup EXIT

pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() {
  echo "FAIL $1"
  [ -n "${2:-}" ] && sed 's/^/  | /' <<<"$2" | tail -12
  failed=$((failed + 1))
}

# Runs medixctl (-p PREFIX and the arguments); sets $out (stdout and stderr) and $rc.
run() {
  out=$(timeout 60 "$ctl" -p "$prefix" "$@" 2>&1)
  rc=$?
}

# expect NAME STATUS PATTERN -- ARGS...: medixctl's exit status, and an extended regex one of
# its output lines matches.
expect() {
  local name=$1 status=$2 pattern=$3
  shift 4
  run "$@"
  if [ "$rc" -eq "$status" ] && grep -qE -- "$pattern" <<<"$out"; then
    pass "$name"
  else
    fail "$name: exit $rc (want $status), no line matches /$pattern/; medixctl $*" "$out"
  fi
}

# expect_not NAME PATTERN -- ARGS...: exit status 0 and no line matches.
expect_not() {
  local name=$1 pattern=$2
  shift 3
  run "$@"
  if [ "$rc" -eq 0 ] && ! grep -qE -- "$pattern" <<<"$out"; then
    pass "$name"
  else
    fail "$name: exit $rc, or a line matches /$pattern/; medixctl $*" "$out"
  fi
}

# expect_json NAME PYTHON -- ARGS...: medixctl -o json exits 0 and prints JSON for which the
# Python expression (over `d`, the parsed document) is true.
expect_json() {
  local name=$1 expression=$2
  shift 3
  out=$(timeout 60 "$ctl" -p "$prefix" -o json "$@" 2>"$tmp/stderr")
  rc=$?
  if [ "$rc" -eq 0 ] && $py -c "import json, sys
d = json.loads(sys.stdin.read())
sys.exit(0 if ($expression) else 1)" <<<"$out" 2>>"$tmp/stderr"; then
    pass "$name"
  else
    fail "$name: exit $rc, or not JSON, or not ($expression); medixctl -o json $*" "$out$(cat "$tmp/stderr")"
  fi
}

# The version a change printed: "version 7 (1 changed)".
version_of() { sed -nE 's/^version ([0-9]+) \(([0-9]+) changed\)$/\1/p' <<<"$1"; }

cat >"$tmp/ix.json" <<'JSON'
{"schema_version": 1,
 "ports": [{"name": "p0", "device": "net_null0"}, {"name": "p1", "device": "net_null1", "promiscuous": true}],
 "tenants": [{"name": "a", "description": "Hospital A"}, {"name": "b"}, {"name": "core", "max_routes": 1024}],
 "interfaces": [
   {"name": "a-lan", "tenant": "a", "port": "p0", "vlan": 10, "addresses": ["10.0.0.1/24"]},
   {"name": "b-lan", "tenant": "b", "port": "p0", "vlan": 20, "addresses": ["10.0.0.1/24"]},
   {"name": "core0", "tenant": "core", "port": "p1", "vlan": 100, "inner_vlan": 7, "addresses": ["100.64.0.1/24"]}],
 "routes": [
   {"tenant": "a", "prefix": "100.64.0.0/16", "next_tenant": "core"},
   {"tenant": "a", "prefix": "0.0.0.0/0", "via": {"interface": "a-lan", "address": "10.0.0.254"}},
   {"tenant": "b", "prefix": "192.0.2.0/24", "blackhole": {"unreachable": true}}],
 "neighbours": [{"interface": "a-lan", "address": "10.0.0.254", "mac": "02:00:00:00:00:fe"}],
 "settings": {"max_sessions": 4096}}
JSON

for binary in "$dp" "$ctl"; do
  if [ ! -x "$binary" ]; then
    echo "FAIL $binary is not built"
    echo "medixctl: 0 passed, 1 failed"
    exit 1
  fi
done

"$dp" --no-huge -m 1024 --no-pci --file-prefix "$prefix" -l 0,1 --vdev net_null0 --vdev net_null1 \
  --log-level=error -- --config "$tmp/ix.json" >"$tmp/dp.log" 2>&1 &
dp_pid=$!
for _ in $(seq 300); do
  grep -qs "^medix-dp: ready" "$tmp/dp.log" && break
  kill -0 "$dp_pid" 2>/dev/null || break
  sleep 0.1
done
if ! grep -q "^medix-dp: ready" "$tmp/dp.log"; then
  fail "medix-dp starts" "$(cat "$tmp/dp.log")"
  echo "medixctl: $passed passed, $failed failed"
  exit 1
fi
pass "medix-dp starts"

# --- show: a list of every kind, one object of each
expect "show ports" 0 '^p0 +net_null0 +1500 +up +up +10G +full +off ' -- show ports
expect "show ports: promiscuous p1" 0 '^p1 +net_null1 +1500 +up +up +10G +full +on ' -- show ports
expect "show ports: link, speed and duplex columns" 0 '^NAME +DEVICE +MTU +STATE +LINK +SPEED +DUPLEX +PROMISCUOUS' -- show ports
expect "show tenants" 0 '^a +65536 +- +Hospital A$' -- show tenants
expect "show tenants: max_routes" 0 '^core +1024 +- +-$' -- show tenants
expect "show interfaces" 0 '^a-lan +a +p0 +10 +- +port +port +10\.0\.0\.1/24$' -- show interfaces
expect "show interfaces: QinQ" 0 '^core0 +core +p1 +100 +7 +port +port +100\.64\.0\.1/24$' -- show interfaces
expect "show routes: leak" 0 '^a +100\.64\.0\.0/16 +tenant core$' -- show routes
expect "show routes: via" 0 '^a +0\.0\.0\.0/0 +via a-lan 10\.0\.0\.254$' -- show routes
expect "show routes: blackhole" 0 '^b +192\.0\.2\.0/24 +blackhole unreachable$' -- show routes
expect "show routes --tenant b" 0 '^b +192\.0\.2\.0/24 ' -- show routes --tenant b
expect_not "show routes --tenant b: no other tenant" '^(a|core) ' -- show routes --tenant b
expect "show neighbours" 0 '^a-lan +10\.0\.0\.254 +02:00:00:00:00:fe +static$' -- show neighbours
# Kinds this medix-dp does not implement yet: an empty table, or the server's UNIMPLEMENTED.
for kind in tunnels sas static-mappings napt-pools policy-rules; do
  run show $kind
  if { [ $rc -eq 0 ] && [ "$(wc -l <<<"$out")" -eq 1 ]; } || { [ $rc -eq 1 ] && grep -q '^medixctl: UNIMPLEMENTED: ' <<<"$out"; }; then
    pass "show $kind"
  else
    fail "show $kind: exit $rc" "$out"
  fi
done
expect "show port p0" 0 '^p0 +net_null0 ' -- show port p0
expect "show tenant a" 0 '^a +65536 +- +Hospital A$' -- show tenant a
expect "show interface b-lan" 0 '^b-lan +b +p0 +20 ' -- show interface b-lan
expect "show route a 100.64.0.0/16" 0 '^a +100\.64\.0\.0/16 +tenant core$' -- show route a 100.64.0.0/16
expect "show neighbour a-lan 10.0.0.254" 0 '^a-lan +10\.0\.0\.254 +02:00:00:00:00:fe +static$' -- \
  show neighbour a-lan 10.0.0.254
expect "show a missing tenant: NOT_FOUND" 1 '^medixctl: NOT_FOUND: ' -- show tenant nope

# --- counters, drops, runtime (net_null ports receive all the time)
expect "counters: ports" 0 '^p0 +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+$' -- counters
expect "counters: interfaces" 0 '^a-lan +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+$' -- counters
expect "counters: tenants, with what each was refused of the shared budgets" 0 '^core( +[0-9]+){9}$' -- counters
expect "counters: tenants' columns" 0 '^TENANT +RX-PACKETS +TX-PACKETS +DROPS +ICMP-SENT +ICMP-LIMITED +ARP-LIMITED +PUNT-POLICED +FRAG-LIMITED +BUF-GUARDED$' -- counters
expect "counters: events" 0 '^arp_requests_sent +[0-9]+$' -- counters
expect_json "counters -o json" \
  '{p["name"] for p in d["ports"]} == {"p0", "p1"} and int(d["ports"][0]["rx_packets"]) > 0 and len(d["drops"]) > 0' \
  -- counters
expect "counters: since" 0 '^since 20[0-9-]+ [0-9:]+ UTC$' -- counters
expect "counters: each port's NIC (link, speed, ipackets, imissed, ierrors, rx_nombuf, oerrors)" 0 \
  '^p0 +up +10G +[1-9][0-9]* +[0-9]+ +0 +0 +0 +0$' -- counters
expect "counters: NIC xstats" 0 '^p0 +rx_good_packets +[1-9][0-9]*$' -- counters
expect_json "counters -o json: NIC stats and xstats" \
  'd["ports"][0]["nic"]["link_up"] and int(d["ports"][0]["nic"]["rx_packets"]) >= int(d["ports"][0]["rx_packets"]) > 0 and any(x["name"] == "rx_good_packets" for x in d["ports"][0]["nic"]["xstats"])' \
  -- counters
expect "drops --all: the NICs' drops per port" 0 '^p1 +nic_rx_missed +0 +the NIC had no free rx descriptor' -- drops --all
expect_json "drops --all -o json: nic_drops per port" \
  '{(x["port"], x["reason"]) for x in d["nic_drops"]} >= {("p0", "nic_rx_nombuf"), ("p1", "nic_tx_errors")}' -- drops --all
expect "drops: header" 0 '^REASON +PACKETS +DESCRIPTION$' -- drops
expect_not "drops: no zero rows" '^[a-z0-9_]+ +0 ' -- drops
expect "drops: net_null frames are dropped for a reason" 0 '^[a-z0-9_]+ +[1-9][0-9]* +[A-Za-z]' -- drops
expect "drops --all: zeros too" 0 '^[a-z0-9_]+ +0 +[A-Za-z]' -- drops --all
expect_json "drops --all -o json: every reason with a description" \
  'len(d["drops"]) >= 5 and all(x["description"] for x in d["drops"])' -- drops --all
expect "drops --lcore" 0 '^ +1 +[a-z0-9_]+ +[1-9][0-9]* ' -- drops --lcore
expect "vrrp: no instance, no refused advert" 0 '^adverts refused: ttl 0, version 0, type 0, length 0, checksum 0, unknown vrid 0, ring full 0' -- vrrp
expect "ha: the role, then the VRRP table" 0 '^NAME +INTERFACE +VRID +STATE +PRIORITY +MASTER' -- ha
expect "ha: active, its start kept in the role's history" 0 '^  20[0-9-]+ [0-9:]+ UTC  active  +-> active  +start: --ha-role active$' -- ha
expect_json "ha -o json: sync (role, no failover) and vrrp" \
  'd["sync"]["role"] == "HA_ROLE_ACTIVE" and d["sync"]["failovers"] == "0" and "rx_errors" in d["vrrp"]' -- ha
# No medix-cp on this node yet (its socket absent): said plainly, not as one that does not answer.
expect "ha: no medix-cp on this node is said plainly" 0 \
  "^witness +none: no medix-cp runs on this node \\(no socket at /var/run/dpdk/$prefix/cp.sock\\)$" -- ha
expect_json "ha -o json: ike_witness says no medix-cp runs here" \
  'd["ike_witness"]["error"].startswith("no medix-cp runs on this node")' -- ha
# medix-cp beside it (no peers; charon's IKE ports random: nothing else on this host is
# disturbed): ha shows medix-cp's IKE witness, not configured here; medix-cp gone is said.
echo '{"schema_version": 1}' >"$tmp/intent.json"
printf 'medix-cp {\n  port = 0\n  port_nat_t = 0\n}\n' >"$tmp/strongswan.conf"
"$cp" --intent "$tmp/intent.json" -p "$prefix" --strongswan-conf "$tmp/strongswan.conf" --log-level 0 >"$tmp/cp.log" 2>&1 &
cp_pid=$!
for _ in $(seq 100); do grep -q 'medix-cp: ready' "$tmp/cp.log" && break; sleep 0.1; done
expect "ha: medix-cp's IKE witness, not configured" 0 '^witness +not configured \(medix-cp --ike-witness\)$' -- ha
expect_json "ha -o json: ike_witness, not configured" \
  'd["ike_witness"]["configured"] is False and d["ike_witness"]["last_renewal_ms"] == "0"' -- ha
kill -TERM "$cp_pid"
wait "$cp_pid"
cp_pid=
expect "ha: medix-cp stopped (its socket removed): no medix-cp on this node" 0 \
  "^witness +none: no medix-cp runs on this node \\(no socket at /var/run/dpdk/$prefix/cp.sock\\)$" -- ha
# A socket nobody serves (what a medix-cp killed -9 leaves): a medix-cp that does not answer.
$py -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' "/var/run/dpdk/$prefix/cp.sock"
expect "ha: medix-cp not answering is said, medix-dp's part shown" 0 \
  "^witness +unknown \\(medix-cp at unix:///var/run/dpdk/$prefix/cp.sock did not answer: " -- ha
expect_json "ha -o json: ike_witness has the error" \
  '"did not answer" in d["ike_witness"]["error"] and d["sync"]["role"] == "HA_ROLE_ACTIVE"' -- ha
rm -f "/var/run/dpdk/$prefix/cp.sock"
expect "runtime: TSC, since" 0 '^TSC [0-9.]+ GHz, since 20[0-9-]+ [0-9:]+ UTC$' -- runtime
expect "runtime: each worker's loops, empty polls, busy share" 0 '^ +1 +[1-9][0-9]* +[0-9]+ +[0-9]+\.[0-9]%$' -- runtime
expect_json "runtime -o json: loops, empty_polls <= loops, busy_share in 0..1" \
  'int(d["lcores"][0]["loops"]) > 0 and int(d["lcores"][0]["empty_polls"]) <= int(d["lcores"][0]["loops"]) and 0 <= d["lcores"][0]["busy_share"] <= 1 and int(d["lcores"][0]["busy_cycles"]) <= int(d["lcores"][0]["cycles"])' \
  -- runtime
# The fair shares' limits at their defaults (one worker, max_sessions 4096: docs/fair-shares.md).
expect "runtime: ICMP errors, 1000/s a worker, 100/s a tenant" 0 \
  '^icmp_errors +1000/s, burst 100 +100/s, burst 10 a tenant +icmp_rate_limited$' -- runtime
expect "runtime: ARP pending, a quarter a tenant" 0 '^arp_pending_packets +256 +64 a tenant +arp_pending_share$' -- runtime
expect "runtime: NAT sessions, a quarter a tenant" 0 '^nat_sessions +4096 +1024 a tenant ' -- runtime
expect "runtime: IKE punted, a bucket a source" 0 '^ike_punt +1024 in the ring +100/s, burst 20 a source +punt_policed$' \
  -- runtime
expect "runtime: NAT reassembly, a quarter a tenant" 0 '^nat_fragments +4096 datagrams +1024 fragments a tenant +nat_fragment_share$' \
  -- runtime
expect "runtime: the buffer pool's guard" 0 '^packet_buffers_held +[1-9][0-9]* +16 a tenant when under 1/8 free +buffer_guard$' -- runtime
expect "runtime: stages" 0 '^[a-z0-9_]+ +[1-9][0-9]* +[0-9]+ +[0-9]+ +[0-9.]+ +[0-9.]+$' -- runtime
expect "runtime --lcore" 0 '^ +1 +[a-z0-9_]+ +[1-9][0-9]* ' -- runtime --lcore
expect_json "runtime -o json" 'int(d["tsc_hz"]) > 0 and len(d["stages"]) > 0 and "cycles_per_packet" in d["stages"][0]' \
  -- runtime

# --- clear counters: every reader starts from zero, and says since when
timeout 60 "$ctl" -p "$prefix" -o json counters >"$tmp/before.json"
expect "clear counters" 0 '^counters cleared at 20[0-9-]+ [0-9:]+ UTC$' -- clear counters
b="json.load(open('$tmp/before.json'))"
expect_json "after clear counters: since_ns moved, p0 (port and NIC) and drops count from zero" \
  "int(d['since_ns']) > int($b['since_ns']) and int(d['ports'][0]['rx_packets']) < int($b['ports'][0]['rx_packets']) and int(d['ports'][0]['nic']['rx_packets']) < int($b['ports'][0]['nic']['rx_packets']) and sum(int(x['packets']) for x in d['drops']) < sum(int(x['packets']) for x in $b['drops'])" \
  -- counters
expect "clear: only counters" 2 'only "clear counters"' -- clear sessions

# --- watch counters: two intervals of 200 ms
run watch counters --interval 200 --count 2
if [ $rc -eq 0 ] && [ "$(grep -c 'per second over' <<<"$out")" -eq 2 ] && grep -qE '^p0 +[0-9.]+[kMG]? ' <<<"$out"; then
  pass "watch counters --count 2"
else
  fail "watch counters --count 2: exit $rc" "$out"
fi
out=$(timeout 60 "$ctl" -p "$prefix" -o json watch counters --interval 200 --count 2 2>&1)
rc=$?
if [ $rc -eq 0 ] && $py -c 'import json, sys
s = [json.loads(line) for line in sys.stdin.read().splitlines()]
t = [int(x["timestamp_ns"]) for x in s]
sys.exit(0 if len(s) == 3 and t[0] < t[1] < t[2] else 1)' <<<"$out"; then
  pass "watch counters -o json: a snapshot per line"
else
  fail "watch counters -o json: exit $rc" "$out"
fi

# --- -o json of objects: the proto's field names
expect_json "show tenants -o json" '{o["tenant"]["name"] for o in d["objects"]} == {"a", "b", "core"} and int(d["version"]) > 0' \
  -- show tenants
expect_json "show interfaces -o json: snake_case" \
  '[o["interface"]["inner_vlan"] for o in d["objects"] if o["interface"]["name"] == "core0"] == [7]' -- show interfaces
expect_json "show route -o json" 'd["object"]["route"]["via"] == {"interface": "a-lan", "address": "10.0.0.254"}' \
  -- show route a 0.0.0.0/0

# --- set and delete round trips
expect "set tenant: create" 0 '^version [0-9]+ \(1 changed\)$' -- set tenant d description Dental max-routes 2048
v1=$(version_of "$out")
expect "show the new tenant" 0 '^d +2048 +- +Dental$' -- show tenant d
expect "set tenant: update one field" 0 '^version [0-9]+ \(1 changed\)$' -- set tenant d description "Dental care"
v2=$(version_of "$out")
if [ -n "$v1" ] && [ -n "$v2" ] && [ "$v2" -gt "$v1" ]; then pass "a change moves the version on"; else fail "version $v1 then $v2"; fi
expect "set changes only the fields given" 0 '^d +2048 +- +Dental care$' -- show tenant d
expect "set an identical tenant: no-op" 0 "^version $v2 \\(0 changed\\)\$" -- set tenant d description "Dental care"
expect "set tenant session-limit" 0 '^version [0-9]+ \(1 changed\)$' -- set tenant d session-limit 5000
expect "show tenant session-limit" 0 '^d +2048 +5000 +Dental care$' -- show tenant d
expect "set interface: create" 0 '^version [0-9]+ \(1 changed\)$' -- \
  set interface d-lan tenant d port p1 vlan 40 address 10.4.0.1/24 address 10.5.0.1/24
expect "show the new interface" 0 '^d-lan +d +p1 +40 +- +port +port +10\.4\.0\.1/24,10\.5\.0\.1/24$' -- show interface d-lan
expect "set interface mtu keeps the rest" 0 '^version ' -- set interface d-lan mtu 1400
expect "show interface after mtu" 0 '^d-lan +d +p1 +40 +- +1400 +port +10\.4\.0\.1/24,10\.5\.0\.1/24$' -- show interface d-lan
expect "set interface: QinQ and MAC" 0 '^version ' -- set interface d-lan inner-vlan 41 mac 02:00:00:00:0d:01
expect "show interface after QinQ" 0 '^d-lan +d +p1 +40 +41 +1400 +02:00:00:00:0d:01 ' -- show interface d-lan
expect "set route via" 0 '^version [0-9]+ \(1 changed\)$' -- set route d 10.9.0.0/16 via d-lan 10.4.0.254
expect "show route via" 0 '^d +10\.9\.0\.0/16 +via d-lan 10\.4\.0\.254$' -- show route d 10.9.0.0/16
expect "set route via, connected" 0 '^version ' -- set route d 10.9.0.0/16 via d-lan
expect "show route connected" 0 '^d +10\.9\.0\.0/16 +via d-lan$' -- show route d 10.9.0.0/16
expect "set route tenant" 0 '^version ' -- set route d 10.9.0.0/16 tenant core
expect "show route tenant" 0 '^d +10\.9\.0\.0/16 +tenant core$' -- show route d 10.9.0.0/16
expect "set route blackhole unreachable" 0 '^version ' -- set route d 10.9.0.0/16 blackhole unreachable
expect "show route blackhole" 0 '^d +10\.9\.0\.0/16 +blackhole unreachable$' -- show route d 10.9.0.0/16
expect "set route local" 0 '^version ' -- set route d 10.4.0.9/32 local
expect "show route local" 0 '^d +10\.4\.0\.9/32 +local$' -- show routes --tenant d
expect "set neighbour" 0 '^version [0-9]+ \(1 changed\)$' -- set neighbour d-lan 10.4.0.254 02:00:00:00:00:77
expect "show neighbour" 0 '^d-lan +10\.4\.0\.254 +02:00:00:00:00:77 +static$' -- show neighbour d-lan 10.4.0.254
expect "set neighbour: new MAC" 0 '^version [0-9]+ \(1 changed\)$' -- set neighbour d-lan 10.4.0.254 02:00:00:00:00:78
expect "show neighbour: new MAC" 0 '^d-lan +10\.4\.0\.254 +02:00:00:00:00:78 +static$' -- show neighbours
expect "set port mtu" 0 '^version [0-9]+ \(1 changed\)$' -- set port p1 mtu 9000
expect "show port mtu" 0 '^p1 +net_null1 +9000 +up +on ' -- show port p1
expect "set port down, promiscuous off" 0 '^version ' -- set port p1 down promiscuous off
expect "show port down" 0 '^p1 +net_null1 +9000 +down +off ' -- show port p1
expect "set port up" 0 '^version ' -- set port p1 up mtu 1500 promiscuous on
expect "show port up" 0 '^p1 +net_null1 +1500 +up +on ' -- show port p1
expect_json "set -o json" 'int(d["version"]) > 0 and d["changed"] == 1' -- set tenant d description Dentistry
expect "a change the server refuses: its field path" 1 '^medixctl: INVALID_ARGUMENT: operations\[0\]\.tenant\.max_routes: ' -- \
  set tenant d max-routes 4096
expect "delete neighbour" 0 '^version [0-9]+ \(1 changed\)$' -- delete neighbour d-lan 10.4.0.254
expect "deleted neighbour is gone" 1 '^medixctl: NOT_FOUND: ' -- show neighbour d-lan 10.4.0.254
expect "delete route" 0 '^version [0-9]+ \(1 changed\)$' -- delete route d 10.9.0.0/16
expect "delete route local" 0 '^version ' -- delete route d 10.4.0.9/32
expect "deleted route is gone" 1 '^medixctl: NOT_FOUND: ' -- show route d 10.9.0.0/16
expect "delete interface" 0 '^version [0-9]+ \(1 changed\)$' -- delete interface d-lan
expect "delete tenant" 0 '^version [0-9]+ \(1 changed\)$' -- delete tenant d
expect "deleted tenant is gone" 1 '^medixctl: NOT_FOUND: ' -- show tenant d
expect "delete a missing tenant: NOT_FOUND" 1 '^medixctl: NOT_FOUND: ' -- delete tenant d
expect "delete a tenant still in use is refused" 1 '^medixctl: [A-Z_]+: ' -- delete tenant a

# --- apply: one transaction of CREATE (absent) and UPDATE (present). New tenants are given a
# small FIB: -m 512 holds only two of the default 65536 routes.
cat >"$tmp/apply.json" <<'JSON'
{"schema_version": 1,
 "tenants": [{"name": "a", "description": "Hospital A, north"}, {"name": "c", "description": "Clinic C", "max_routes": 1024}],
 "interfaces": [{"name": "c-lan", "tenant": "c", "port": "p1", "vlan": 30, "addresses": ["10.3.0.1/24"]}],
 "routes": [{"tenant": "c", "prefix": "100.64.0.0/16", "next_tenant": "core"},
            {"tenant": "a", "prefix": "100.64.0.0/16", "next_tenant": "core"}]}
JSON
expect "apply: creates and updates" 0 '^version [0-9]+ \(4 changed\)$' -- apply "$tmp/apply.json"
v1=$(version_of "$out")
expect "apply: the update" 0 '^a +65536 +- +Hospital A, north$' -- show tenant a
expect "apply: the creates" 0 '^c +100\.64\.0\.0/16 +tenant core$' -- show routes --tenant c
expect "apply again: nothing changes" 0 "^version $v1 \\(0 changed\\)\$" -- apply "$tmp/apply.json"
expect_json "apply -o json" "int(d['version']) == $v1 and d['changed'] == 0" -- apply "$tmp/apply.json"

# 2,500 routes: one transaction, and listed over three pages (1000 a page by default).
$py -c 'import json
routes = [{"tenant": "a", "prefix": "20.%d.%d.0/24" % (i // 256, i % 256), "blackhole": {}} for i in range(2500)]
print(json.dumps({"schema_version": 1, "routes": routes}))' >"$tmp/routes.json"
expect "apply 2500 routes" 0 '^version [0-9]+ \(2500 changed\)$' -- apply "$tmp/routes.json"
v1=$(version_of "$out")
run show routes --tenant a
n=$(grep -cE '^a +20\.[0-9]+\.[0-9]+\.0/24 +blackhole$' <<<"$out")
if [ $rc -eq 0 ] && [ "$n" -eq 2500 ]; then pass "show routes over pages"; else fail "show routes over pages: exit $rc, $n of 2500 routes"; fi
expect_json "show routes -o json over pages" 'len(d["objects"]) == 2502 and d["next_page_token"] == ""' -- show routes --tenant a

# A bad object anywhere rejects the whole file, with the server's field path and its place in the file.
cat >"$tmp/bad.json" <<'JSON'
{"schema_version": 1,
 "tenants": [{"name": "e"}],
 "interfaces": [{"name": "e-lan", "tenant": "e", "port": "p1", "vlan": 50},
                {"name": "e-wan", "tenant": "e", "port": "p1", "vlan": 5000}]}
JSON
expect "apply a bad file: the field path" 1 \
  '^medixctl: INVALID_ARGUMENT: operations\[2\]\.interface\.vlan: 5000 is out of range 0\.\.4094$' -- apply "$tmp/bad.json"
expect "apply a bad file: its place in the file" 1 '^medixctl: operations\[2\] is interfaces\[1\] in ' -- apply "$tmp/bad.json"
expect "apply a bad file: nothing applied" 1 '^medixctl: NOT_FOUND: ' -- show tenant e
expect "apply a bad file: the version stays" 0 "^version $v1 \\(0 changed\\)\$" -- apply "$tmp/apply.json"
echo '{"schema_version": 1, "tenantz": []}' >"$tmp/typo.json"
expect "apply: an unknown field in the file" 1 "^medixctl: $tmp/typo.json: .*tenantz" -- apply "$tmp/typo.json"
expect "apply: a missing file" 1 "^medixctl: $tmp/none.json: cannot read the file$" -- apply "$tmp/none.json"

# --- crossing the core: translation and policy objects, sessions, NAT counters
cat >"$tmp/nat.json" <<'JSON'
{"schema_version": 1,
 "tenants": [{"name": "ix", "core": true, "max_routes": 1024}],
 "static_mappings": [{"tenant": "a", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.65.1.0/24"}],
 "napt_pools": [{"tenant": "b", "addresses": ["100.65.9.0/30"], "session_limit": 100, "port_low": 2000}],
 "policy_rules": [{"name": "a-to-b", "priority": 5, "from_tenant": "a", "to_tenant": "b", "protocol": 6,
                   "port_low": 104, "port_high": 104, "permit": true}]}
JSON
cat >"$tmp/clash.json" <<'JSON'
{"schema_version": 1,
 "static_mappings": [{"tenant": "b", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.65.1.0/24"}]}
JSON
expect "apply translation and policy" 0 '^version [0-9]+ \(4 changed\)$' -- apply "$tmp/nat.json"
expect "show static-mappings" 0 '^a +10\.0\.0\.0/24 +100\.65\.1\.0/24$' -- show static-mappings
expect "show static-mapping TENANT PREFIX" 0 '^a +10\.0\.0\.0/24 +100\.65\.1\.0/24$' -- \
  show static-mapping a 10.0.0.0/24
expect "show napt-pools" 0 '^b +100 +100\.65\.9\.0/30$' -- show napt-pools
expect "show policy-rules" 0 '^ *5 +a-to-b +a +b +- +6 +104 +permit$' -- show policy-rules
expect "sessions: none yet" 0 '^PROTO +TENANT +SOURCE +DESTINATION ' -- sessions
expect "sessions with filters" 0 '^PROTO ' -- sessions a --port 104 --protocol 6 --address 100.65.1.5
expect_json "sessions -o json: total 0" 'int(d.get("total", 0)) == 0' -- sessions
expect "sessions clear" 0 '^sessions of a cleared$' -- sessions clear a
expect "sessions clear: no such tenant" 1 '^medixctl: NOT_FOUND: tenant: no tenant named "nope"$' -- sessions clear nope
expect "sessions: a bad address" 1 '^medixctl: INVALID_ARGUMENT: address: "bogus" is not an IPv4 address$' -- \
  sessions --address bogus
expect "counters: NAT per tenant" 0 '^b +0 +0 +0 +0 +0 +0 +0 +0$' -- counters
expect "counters: policy rules" 0 '^a-to-b +permit +0$' -- counters
expect_json "counters -o json: nat and policy_rules" \
  'any(n["tenant"] == "a" for n in d["nat"]) and d["policy_rules"][0]["name"] == "a-to-b"' -- counters
# A kind's counters (a policer's, dataplane/qos/): a table titled from the proto
cat >"$tmp/policer.json" <<'JSON'
{"schema_version": 1,
 "policers": [{"name": "a-pol", "tenant": "a", "mode": "POLICER_SRTCM", "cir": 125000000, "cbs": 100000,
               "ebs": 100000}]}
JSON
expect "apply a policer" 0 '^version [0-9]+ \(1 changed\)$' -- apply "$tmp/policer.json"
expect "counters: a kind's counters, titled from the proto" 0 \
  '^POLICER +GREEN-PKTS +GREEN-BYTES +YELLOW-PKTS +YELLOW-BYTES +RED-PKTS +RED-BYTES +DROPPED$' -- counters
expect "counters: the policer's row" 0 '^a-pol( +[0-9]+){7}$' -- counters
expect_json "counters -o json: policers" 'd["policers"][0]["name"] == "a-pol"' -- counters
expect "delete policer" 0 '^version [0-9]+ \(1 changed\)$' -- delete policer a-pol
expect_not "counters: no policer, no table" '^POLICER ' -- counters
# A kind with a row per part (a shaper's classes): the part's column after the name; a
# tunnel's shaper like any other
cat >"$tmp/shaper.json" <<'JSON'
{"schema_version": 1,
 "tunnels": [{"name": "b-tun", "tenant": "b", "underlay_tenant": "core", "local_address": "100.64.0.1",
              "remote_address": "100.64.0.9", "spread": true}],
 "shapers": [{"name": "b-shp", "interface": "b-lan", "rate": "25000000", "burst": "100000",
              "classes": [{"name": "voice", "priority": true, "rate": "1000000", "dscp": [46]},
                          {"name": "rest", "weight": 1}]},
             {"name": "t-shp", "interface": "b-tun", "rate": "12500000", "burst": "50000",
              "classes": [{"name": "all", "weight": 1}]}]}
JSON
expect "apply a shaper, and one on a tunnel" 0 '^version [0-9]+ \(3 changed\)$' -- apply "$tmp/shaper.json"
expect "show tunnels: spread over the workers" 0 '^b-tun +b +core +100\.64\.0\.1 +100\.64\.0\.9 +esp +- +- +yes ' -- show tunnels
expect "show shapers: the tunnel's" 0 '^t-shp +b-tun +12500000 +50000 +all ' -- show shapers
expect "qos: the tunnel's shaper" 0 '^t-shp +all +[0-9.]+ ' -- qos --interval 100
expect "delete a tunnel while shaped: refused" 1 'FAILED_PRECONDITION: .*tunnel "b-tun" is still used by' -- \
  delete tunnel b-tun
expect "delete the tunnel's shaper" 0 '^version [0-9]+ \(1 changed\)$' -- delete shaper t-shp
expect "delete the tunnel" 0 '^version [0-9]+ \(1 changed\)$' -- delete tunnel b-tun
expect "counters: a kind's counters by part" 0 \
  '^SHAPER +CLASS +QUEUED-PKTS +QUEUED-BYTES +SENT-PKTS +SENT-BYTES +DROPPED +DEPTH +WRED-DROPPED +ECN-MARKED$' -- counters
expect "counters: the shaper's class rows" 0 '^b-shp +rest( +[0-9]+){8}$' -- counters
expect_json "counters -o json: shaper_classes" \
  '[(k["name"], k["class"]) for k in d["shaper_classes"]] == [("b-shp", "voice"), ("b-shp", "rest")]' -- counters
expect "qos: the shaper's classes" 0 '^b-shp +voice +[0-9.]+ ' -- qos --interval 100
expect "delete shaper" 0 '^version [0-9]+ \(1 changed\)$' -- delete shaper b-shp
expect_not "counters: no shaper, no table" '^SHAPER ' -- counters
expect "a mapping that clashes in the core" 1 \
  '^medixctl: INVALID_ARGUMENT: operations\[0\]\.static_mapping\.core_prefix: overlaps ' -- \
  apply "$tmp/clash.json"
expect "delete static-mapping" 0 '^version [0-9]+ \(1 changed\)$' -- delete static-mapping a 10.0.0.0/24
expect_not "deleted mapping gone" '^a +10\.0\.0\.0/24' -- show static-mappings

# --- the effective FIB and lookups: a leak chain h1 -> h2 -> ix (the core) -> arch, translated
# into arch by its static mapping; b's NAPT pool; a loop of leaks
cat >"$tmp/fib.json" <<'JSON'
{"schema_version": 1,
 "tenants": [{"name": "h1"}, {"name": "h2"}, {"name": "arch"}],
 "interfaces": [
   {"name": "h1-lan", "tenant": "h1", "port": "p0", "vlan": 61, "addresses": ["10.0.0.1/24"]},
   {"name": "arch-lan", "tenant": "arch", "port": "p0", "vlan": 63, "addresses": ["192.168.1.1/24"]}],
 "routes": [
   {"tenant": "h1", "prefix": "100.66.0.0/16", "next_tenant": "h2"},
   {"tenant": "h2", "prefix": "100.66.0.0/16", "next_tenant": "ix"},
   {"tenant": "ix", "prefix": "100.66.2.0/24", "next_tenant": "arch"},
   {"tenant": "h1", "prefix": "100.65.0.0/16", "next_tenant": "ix"},
   {"tenant": "ix", "prefix": "100.65.9.0/24", "next_tenant": "b"},
   {"tenant": "h1", "prefix": "10.99.0.0/16", "next_tenant": "h2"},
   {"tenant": "h2", "prefix": "10.99.0.0/16", "next_tenant": "h1"}],
 "static_mappings": [{"tenant": "arch", "tenant_prefix": "192.168.1.0/24", "core_prefix": "100.66.2.0/24"}]}
JSON
expect "apply a leak chain" 0 '^version [0-9]+ \(13 changed\)$' -- apply "$tmp/fib.json"
expect "show fib TENANT: its kind and size" 0 '^tenant h1: compact FIB, 5 prefixes, [0-9]+ plies, ' -- show fib h1
expect "show fib TENANT: connected" 0 '^10\.0\.0\.0/24 +connected +via +h1-lan +h1-lan$' -- show fib h1
expect "show fib TENANT: local" 0 '^10\.0\.0\.1/32 +local +local +- +h1-lan$' -- show fib h1
expect "show fib TENANT: configured, leaked" 0 '^100\.66\.0\.0/16 +configured +leak +tenant h2 +route$' -- show fib h1
expect "show fib TENANT: configured, via" 0 '^0\.0\.0\.0/0 +configured +via +a-lan 10\.0\.0\.254 +route$' -- show fib a
expect "show fib TENANT: blackhole" 0 '^192\.0\.2\.0/24 +configured +unreachable +- +route$' -- show fib b
expect "show fib: every FIB's cost" 0 '^tenants [0-9]+ \([0-9]+ compact, 0 DIR24_8\), [0-9]+ prefixes$' -- show fib
expect "show fib: the compact pool" 0 '^compact FIBs: [0-9]+ plies in use of [0-9]+, ' -- show fib
expect_json "show fib -o json" \
  'd["fib"] == "FIB_COMPACT" and len(d["entries"]) == 5 and int(d["memory"]["compact_plies"]) > 0' -- show fib h1
expect "show fib: no such tenant" 1 '^medixctl: NOT_FOUND: tenant: no tenant named "nope"$' -- show fib nope
expect "lookup through a leak chain: each FIB" 0 '^ +3 +ix +100\.66\.2\.10 +100\.66\.2\.0/24 +configured +leak +tenant arch' -- \
  lookup h1 100.66.2.10
expect "lookup through the core: the destination translated" 0 \
  '^ +4 +arch +192\.168\.1\.10 +192\.168\.1\.0/24 +connected +via +arch-lan +static mapping 100\.66\.2\.0/24 -> 192\.168\.1\.0/24 of tenant arch$' -- \
  lookup h1 100.66.2.10
expect "lookup through the core: where it ends" 0 \
  '^forward: out of arch-lan to 192\.168\.1\.10 in tenant arch; crosses the IX core' -- lookup h1 100.66.2.10
expect_json "lookup -o json" \
  'd["result"] == "LOOKUP_FORWARD" and [s["tenant"] for s in d["steps"]] == ["h1", "h2", "ix", "arch"] and d["steps"][3]["address"] == "192.168.1.10" and d["crosses_core"] and d["interface"] == "arch-lan"' -- \
  lookup h1 100.66.2.10
expect "lookup: to a NAPT pool address" 0 '^to a NAPT pool address of tenant b: its session decides where' -- \
  lookup h1 100.65.9.1
expect "lookup: crossing into a tenant without a mapping for it" 0 '^dropped: tenant b translates, but has no mapping' -- \
  lookup h1 100.65.9.200
expect "lookup: a default route" 0 '^forward: out of a-lan to 10\.0\.0\.254 in tenant a$' -- lookup a 8.8.8.8
expect "lookup: connected" 0 '^forward: out of a-lan to 10\.0\.0\.77 in tenant a$' -- lookup a 10.0.0.77
expect "lookup: local" 0 '^local: to medix-dp itself, in tenant h1$' -- lookup h1 10.0.0.1
expect "lookup: blackhole" 0 '^dropped: blackhole in tenant b$' -- lookup b 192.0.2.9
expect "lookup: no route" 0 '^dropped: no route in tenant h2 \(no_route\)$' -- lookup h2 8.8.8.8
expect "lookup: a loop of leaks" 0 '^dropped: more route leaks than medix-dp follows \(leak_loop\)$' -- lookup h1 10.99.1.1
expect "lookup: no such tenant" 1 '^medixctl: NOT_FOUND: tenant: no tenant named "nope"$' -- lookup nope 10.0.0.1
expect "lookup: not an address" 1 '^medixctl: INVALID_ARGUMENT: address: "bogus" is not an IPv4 address$' -- \
  lookup h1 bogus
expect "set tenant fib dir24_8" 0 '^version [0-9]+ \(1 changed\)$' -- set tenant big fib dir24_8
expect "show fib: a DIR24_8 tenant" 0 '^tenant big: DIR24_8 FIB, 0 prefixes, [0-9.]+ MB$' -- show fib big
expect "show fib: the DIR24_8 one counted" 0 '^tenants [0-9]+ \([0-9]+ compact, 1 DIR24_8\)' -- show fib
expect "a tenant's FIB kind cannot change" 1 '^medixctl: INVALID_ARGUMENT: operations\[0\]\.tenant\.fib: cannot change' -- \
  set tenant big fib compact
expect "delete the DIR24_8 tenant" 0 '^version [0-9]+ \(1 changed\)$' -- delete tenant big

# --- server errors are printed as they come, exit status 1
expect "bad vlan: the server's field path" 1 \
  '^medixctl: INVALID_ARGUMENT: operations\[0\]\.interface\.vlan: 5000 is out of range 0\.\.4094$' -- \
  set interface x tenant a port p0 vlan 5000
expect "bad prefix: the server's field path" 1 '^medixctl: INVALID_ARGUMENT: operations\[0\]\.route\.prefix: ' -- \
  set route a 10.0.0.0/33 local
expect "an interface in a missing tenant" 1 '^medixctl: [A-Z_]+: operations\[0\]\.interface\.tenant: ' -- \
  set interface x tenant nope port p0 vlan 77

# --- usage errors exit 2
expect "no command" 2 '^medixctl: missing a command$' --
expect "unknown command" 2 '^medixctl: unknown command "frobnicate"$' -- frobnicate
expect "unknown kind" 2 '^medixctl: "widgets" is not a kind of object$' -- show widgets
expect "set route without a target" 2 '^medixctl: set route: missing the target' -- set route a 10.0.0.0/8
expect "a number that is not" 2 '^medixctl: vlan: "ten" is not a number' -- set interface x vlan ten
expect "a key too short" 2 '^medixctl: missing the route.s prefix$' -- delete route a
out=$(timeout 10 "$ctl" --dp unix:///nonexistent -p x show tenants 2>&1)
rc=$?
if [ $rc -eq 2 ]; then pass "--dp and -p together"; else fail "--dp and -p together: exit $rc" "$out"; fi
out=$(timeout 30 "$ctl" -p "$prefix-absent" show tenants 2>&1)
rc=$?
if [ $rc -eq 1 ] && grep -q '^medixctl: UNAVAILABLE: ' <<<"$out"; then
  pass "no medix-dp: UNAVAILABLE"
else
  fail "no medix-dp: exit $rc" "$out"
fi

# --- versions: every binary's --version, and medixctl version asking both daemons
for bin in "$dp" "$ctl" build/controlplane/medix-cp; do
  out=$("$bin" --version 2>&1)
  rc=$?
  if [ $rc -eq 0 ] && grep -qE '^medix(-dp|-cp|ctl) [0-9]+\.[0-9]+\.[0-9]+ \(git [0-9a-f]+\+?\)' <<<"$out"; then
    pass "$(basename "$bin") --version: $out"
  else
    fail "$(basename "$bin") --version: exit $rc" "$out"
  fi
done
out=$("$dp" --help 2>&1)
rc=$?
if [ $rc -eq 0 ] && grep -q '^usage: medix-dp' <<<"$out"; then pass "medix-dp --help: exit 0"; else fail "medix-dp --help: exit $rc" "$out"; fi
expect "version: medix-dp's, with DPDK, IPsec-MB, uptime and intent version" 0 \
  '^medix-dp  [0-9.]+ \(git [0-9a-f]+\+?\), DPDK [0-9.]+, Intel IPsec-MB [0-9.]+; up [0-9]+[smhd]( [0-9]+[smh])?, intent version [1-9][0-9]*$' -- version
expect "version: medix-cp not running is said" 0 '^medix-cp  not reachable: UNAVAILABLE' -- version
expect "version -o json" 0 '"medix_dp": \{"version":"[0-9.]+ \(git [0-9a-f]+\+?\)","dpdk":"DPDK [0-9.]+"' -- -o json version

# --- SIGHUP: said, not fatal; SIGTERM still stops it cleanly
kill -HUP "$dp_pid"
sleep 0.5
if kill -0 "$dp_pid" 2>/dev/null && grep -q 'SIGHUP: nothing to reload' "$tmp/dp.log"; then
  pass "medix-dp lives through SIGHUP and says so"
else
  fail "medix-dp and SIGHUP" "$(tail -5 "$tmp/dp.log")"
fi
kill -TERM "$dp_pid"
wait "$dp_pid"
rc=$?
dp_pid=
if [ $rc -eq 0 ] && [ ! -e "/var/run/dpdk/$prefix" ]; then
  pass "SIGTERM after SIGHUP: exit 0, runtime dir removed"
else
  fail "SIGTERM after SIGHUP: exit $rc" "$(ls "/var/run/dpdk/$prefix" 2>&1)"
fi

echo "medixctl: $passed passed, $failed failed"
[ $failed -eq 0 ]
