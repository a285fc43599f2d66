#!/usr/bin/env bash
# The intent in etcd (issue 18, docs/areas.md): a real etcd on the loopback of a network namespace
# of the suite's own, two areas (east, west) each with its medix-cp and its medix-dp (net_null
# port). Checks:
#   - an intent applied with medixctl against east's medix-cp reaches both medix-dp, each with
#     the global objects and its own area's only; the status keys are written;
#   - a change written with etcdctl is applied within 1 s;
#   - two applies at once with the same expected version: one wins, the other is a conflict;
#   - west's medix-dp stopped: a change for west waits (status says why), applied when it is back;
#   - etcd killed: both medix-dp keep their objects, medix-cp says disconnected; a medix-cp
#     restarted meanwhile starts from its local copy and says etcd is unreachable;
#   - a change made while they were cut off (etcd up on another port only) is applied when they
#     reach etcd again (the watch resumes at its revision), and so is one after a compaction past
#     it (full read);
#   - etcd's password authentication on: a medix-cp without a user, or with a wrong password (read
#     from --etcd-user-file), is refused with a clear error that shows no password; with the right
#     one it applies changes again, and again after etcd restarted (its tokens lost).
# Ends with "cp-etcd: N passed, M failed". MEDIX_DP, MEDIX_CP and MEDIXCTL override the binaries.
set -u
# shellcheck source=test/lib/keygrep.sh
source test/lib/keygrep.sh
export LC_ALL=C  # sort, as the expected lists are written
cd "$(dirname "$0")/../.."
# shellcheck source=test/netns/lib.sh
source test/netns/lib.sh
# shellcheck source=test/lib/etcd.sh
source test/lib/etcd.sh
dp=${MEDIX_DP:-build/dataplane/medix-dp}
cp=${MEDIX_CP:-build/controlplane/medix-cp}
ctl=${MEDIXCTL:-build/controlplane/cli/medixctl}
command -v etcd >/dev/null && command -v etcdctl >/dev/null || scripts/setup >/dev/null
tmp=$(mktemp -d /tmp/medix-cp-etcd.XXXXXX)
ns=medix-etcd-$$
key=/medix-test-$$
url=etcd://127.0.0.1:2379$key
etcd_pid=
declare -A dp_pid cp_pid prefix
cp_extra=()  # more arguments for medix-cp (cp_start)
declare -A mport=([east]=9101 [west]=9102)  # medix-cp's metrics, on the namespace's loopback
for a in east west; do prefix[$a]=medix-etcd-$a-$$; done

cleanup() {
  for a in east west; do
    [ -n "${cp_pid[$a]:-}" ] && kill -TERM "${cp_pid[$a]}" 2>/dev/null && wait "${cp_pid[$a]}" 2>/dev/null
    [ -n "${dp_pid[$a]:-}" ] && kill -TERM "${dp_pid[$a]}" 2>/dev/null && wait "${dp_pid[$a]}" 2>/dev/null
    rm -rf "/var/run/dpdk/${prefix[$a]}"
  done
  [ -n "$etcd_pid" ] && kill -KILL "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  [ -n "${MX_KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT

finish() {
  # Last: no byte of the PSK in medix-dp's or medix-cp's logs, medixctl's output or errors, the
  # status keys (the intent files, their local copies and etcd's data hold it by right).
  etcdctl get --prefix "$key/status/" >"$tmp/status-keys.log" 2>&1
  keygrep_check pass fail --config "$tmp/intent.json" --skip '*.json*' --skip 'etcd/*' --scan "$tmp"
  mx_finish cp-etcd
}
in_ns() { ip netns exec "$ns" "$@"; }
# ETCD_AUTH=USER:PASSWORD once etcd's authentication is on.
etcdctl() {
  in_ns env ETCDCTL_API=3 /usr/bin/etcdctl --endpoints "127.0.0.1:${port:-2379}" --dial-timeout 2s \
    ${ETCD_AUTH:+--user "$ETCD_AUTH"} "$@"
}
# etcd_start [PORT]: etcd on the namespace's loopback (its data kept in $tmp/etcd across restarts).
etcd_start() {
  local p=${1:-2379}
  etcd_member medix-test "$tmp/etcd" "http://127.0.0.1:$p" http://127.0.0.1:2380 medix-test=http://127.0.0.1:2380 \
    "$tmp/etcd.log"
  etcd_pid=$etcd_started
  port=$p etcd_healthy 10 "$etcd_pid" && return 0
  tail -5 "$tmp/etcd.log"
  return 1
}
etcd_kill() { kill -KILL "$etcd_pid"; wait "$etcd_pid" 2>/dev/null; etcd_pid=; }
ctl() { # medixctl's output and errors, kept in $tmp/medixctl.log too (searched for the PSK)
  local a=$1 out rc
  shift
  out=$(timeout 20 "$ctl" -p "${prefix[$a]}" --cp "unix://$tmp/cp-$a.sock" "$@" 2>&1)
  rc=$?
  printf '%s\n' "$out" | tee -a "$tmp/medixctl.log"
  return $rc
}
tenants() { ctl "$1" names tenant | sort | tr '\n' ' '; }
has_tenants() { [ "$(tenants "$1")" = "$2" ]; }
status_says() { ctl "$1" intent status | grep -q "$2"; }
# metric AREA 'NAME{LABELS}': its value in the area's medix-cp's Prometheus metrics.
metric() {
  in_ns /usr/bin/python3 -c 'import sys, urllib.request
for line in urllib.request.urlopen(sys.argv[1], timeout=5).read().decode().splitlines():
    if line.startswith(sys.argv[2] + " "): print(line.split()[1])' "http://127.0.0.1:${mport[$1]}/metrics" "$2"
}
metric_is() { [ "$(metric "$1" "$2")" = "$3" ]; }

# cp_start AREA: the area's medix-cp in the namespace, its log appended to; waits for its ready line.
cp_start() {
  local a=$1 n
  n=$(grep -c "medix-cp: ready" "$tmp/cp-$1.log" 2>/dev/null)
  # Its socket is not in medix-dp's runtime folder, which goes when medix-dp stops.
  ip netns exec "$ns" "$cp" --intent "$tmp/$a.json" -p "${prefix[$a]}" --listen "unix://$tmp/cp-$a.sock" \
    --intent-store "$url" --area "$a" --metrics-listen "127.0.0.1:${mport[$a]}" \
    --strongswan-conf "$tmp/strongswan.conf" --log-level 0 "${cp_extra[@]}" >>"$tmp/cp-$a.log" 2>&1 &
  cp_pid[$a]=$!
  for _ in $(seq 150); do
    [ "$(grep -c "medix-cp: ready" "$tmp/cp-$a.log")" -gt "${n:-0}" ] && return 0
    sleep 0.1
  done
  fail "medix-cp $a starts" "$(tail -8 "$tmp/cp-$a.log")"
  return 1
}

for binary in "$dp" "$cp" "$ctl"; do
  [ -x "$binary" ] || { fail "$binary is not built"; finish; }
done
ip netns add "$ns" && ip -n "$ns" link set lo up || { fail "create namespace $ns"; finish; }
etcd_start || { fail "etcd starts on 127.0.0.1:2379 in $ns"; finish; }

cat >"$tmp/dp.json" <<'JSON'
{"schema_version": 1, "ports": [{"name": "p0", "device": "net_null0"}], "settings": {"max_sessions": 4096}}
JSON
cat >"$tmp/strongswan.conf" <<'EOF2'
medix-cp {
  port = 0
  port_nat_t = 0
}
EOF2
# dp_start AREA: the area's medix-dp (its log started anew); dp_ready AREA waits for it.
dp_start() {
  "$dp" --no-huge -m 512 --no-pci --log-level=error -l 0,1 --file-prefix "${prefix[$1]}" --vdev net_null0 -- \
    --config "$tmp/dp.json" >"$tmp/dp-$1.log" 2>&1 &
  dp_pid[$1]=$!
}
dp_ready() {
  for _ in $(seq 300); do grep -qs "^medix-dp: ready" "$tmp/dp-$1.log" && return 0; sleep 0.1; done
  fail "medix-dp $1 starts" "$(cat "$tmp/dp-$1.log")"
  return 1
}
for a in east west; do dp_start $a; done
for a in east west; do
  dp_ready $a || finish
  # No intent file yet: a first start, etcd says what to apply.
  cp_start "$a" || finish
done
mx_wait_for 5 status_says east ": connected$" && mx_wait_for 5 status_says west ": connected$" &&
  pass "both medix-cp reach etcd" || fail "both medix-cp reach etcd" "$(ctl east intent status; ctl west intent status)"

# The intent: the core tenant and the policy global, a tenant and its interface per area.
cat >"$tmp/intent.json" <<'JSON'
{"schema_version": 1,
 "tenants": [{"name": "ix"}],
 "policy_rules": [{"name": "ix-within", "priority": 10, "from_tenant": "ix", "to_tenant": "ix", "permit": true}],
 "areas": {
  "east": {"tenants": [{"name": "hosp-e"}],
           "interfaces": [{"name": "e-lan", "tenant": "hosp-e", "port": "p0", "addresses": ["192.0.2.1/24"]}],
           "peers": [{"name": "gw-e", "tenant": "ix", "underlay_tenant": "hosp-e", "tunnel": "t-gw-e",
             "local_address": "192.0.2.1", "remote_address": "192.0.2.2", "psk": "east-secret-psk-4711",
             "ike_proposals": ["aes128gcm16-prfsha256-x25519"], "esp_proposals": ["aes128gcm16"],
             "local_selectors": ["100.64.1.0/24"], "remote_selectors": ["10.0.1.0/24"]}]},
  "west": {"tenants": [{"name": "arch-w"}],
           "interfaces": [{"name": "w-lan", "tenant": "arch-w", "port": "p0", "addresses": ["198.51.100.1/24"]}]}}}
JSON
out=$(ctl east intent apply "$tmp/intent.json")
[ $? -eq 0 ] && pass "medixctl intent apply against east's medix-cp" || fail "medixctl intent apply" "$out"
mx_wait_for 5 has_tenants east "hosp-e ix " && pass "east's medix-dp: the global tenant and east's only" ||
  fail "east's tenants" "$(tenants east)"
mx_wait_for 5 has_tenants west "arch-w ix " && pass "west's medix-dp: the global tenant and west's only" ||
  fail "west's tenants" "$(tenants west)"
east=$(ctl east names tunnel)
west=$(ctl west names tunnel)
[ "$east" = t-gw-e ] && [ -z "$west" ] && pass "east's peer: its tunnel in east's medix-dp only" ||
  fail "east's peer's tunnel" "east: $east; west: $west"
out=$(ctl west names interface | tr '\n' ' ')
[ "$out" = "w-lan " ] && pass "west's interfaces: its own (w-lan)" || fail "west's interfaces" "$out"
out=$(ctl west names policy-rule | tr '\n' ' ')
[ "$out" = "ix-within " ] && pass "west has the global policy rule" || fail "west's policy rules" "$out"
out=$(ctl west intent show)
grep -q '"hosp-e"' <<<"$out" && grep -q '"arch-w"' <<<"$out" && pass "intent show (west): the whole intent, both areas" ||
  fail "intent show (west)" "$out"
version=$(ctl east -o json intent status | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
status_ok() {
  etcdctl get --print-value-only "$key/status/$1" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)
sys.exit(0 if s["area"] == sys.argv[1] and s["applied_version"] == sys.argv[2] and s["connected"] and not s["last_error"]
         and s["dataplane_intent_version"] != "0" else 1)' "$1" "$version" 2>/dev/null
}
mx_wait_for 5 status_ok east && mx_wait_for 5 status_ok west && pass "status keys: each area applied version $version" ||
  fail "status keys" "$(etcdctl get --prefix "$key/status/")"

metric_is east 'medix_cp_intent_store_connected{store="etcd",area="east"}' 1 &&
  metric_is east medix_cp_intent_applied_version "$version" && metric_is east medix_cp_intent_version "$version" &&
  pass "metrics: east's store connected, version $version applied" ||
  fail "metrics: east's store and version" "$(metric east 'medix_cp_intent_store_connected{store="etcd",area="east"}';
    metric east medix_cp_intent_applied_version)"

# A change written with etcdctl: west gets a second tenant. Applied within 1 s (a second sample
# if the first was slow: one slow moment of a loaded machine does not decide).
for n in 1 2; do
  section=$(etcdctl get --print-value-only "$key/intent/areas/west" |
    /usr/bin/python3 -c 'import json, sys; s = json.load(sys.stdin); s["tenants"].append({"name": "put-'$n'"}); print(json.dumps(s))')
  etcdctl put "$key/intent/areas/west" "$section" >/dev/null
  mx_wait_for 5 has_tenants west "$(printf '%s\n' arch-w ix put-1 $([ $n = 2 ] && echo put-2) | sort | tr '\n' ' ')"
  echo "  etcdctl put to west's medix-dp: $took ms"
  [ "$took" -le 1000 ] && break
done
[ "$took" -le 1000 ] && pass "a change put with etcdctl is applied within 1 s ($took ms)" ||
  fail "a change put with etcdctl is applied within 1 s ($took ms)" "$(tenants west)"
has_tenants east "hosp-e ix " && pass "east unchanged by west's change" || fail "east unchanged" "$(tenants east)"

# Two applies at once, the same expected version, one through each medix-cp.
version=$(ctl east -o json intent status | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
for who in a b; do
  /usr/bin/python3 -c 'import json, sys; i = json.load(open(sys.argv[1])); i["tenants"].append({"name": "race-" + sys.argv[2]}); print(json.dumps(i))' \
    "$tmp/intent.json" "$who" >"$tmp/race-$who.json"
done
ctl east intent apply "$tmp/race-a.json" --expected-version "$version" >"$tmp/race-a.out" 2>&1 &
ra=$!
ctl west intent apply "$tmp/race-b.json" --expected-version "$version" >"$tmp/race-b.out" 2>&1 &
rb=$!
wait $ra; rc_a=$?
wait $rb; rc_b=$?
if [ $((rc_a + rc_b)) -eq 1 ] && [ $((rc_a * rc_b)) -eq 0 ]; then
  loser=$([ $rc_a -ne 0 ] && echo a || echo b)
  winner=$([ $rc_a -ne 0 ] && echo b || echo a)
  pass "two applies at expected version $version: exactly one wins ($winner)"
  grep -q "conflict" "$tmp/race-$loser.out" && pass "the other is told: $(head -1 "$tmp/race-$loser.out")" ||
    fail "the loser's error names the conflict" "$(cat "$tmp/race-$loser.out")"
  mx_wait_for 5 has_tenants east "hosp-e ix race-$winner " && mx_wait_for 5 has_tenants west "arch-w ix race-$winner " &&
    pass "both areas have the winner's intent" || fail "both areas have the winner's intent" "$(tenants east; tenants west)"
else
  fail "two applies at expected version $version: exactly one wins" "$(cat "$tmp/race-a.out" "$tmp/race-b.out")"
fi
out=$(ctl east intent apply "$tmp/intent.json" --expected-version "$version")
[ $? -ne 0 ] && grep -q "conflict" <<<"$out" && pass "a stale expected version is refused" ||
  fail "a stale expected version is refused" "$out"

# West's medix-dp stopped, a change for west meanwhile: medix-cp cannot apply it, says so, and
# applies it once medix-dp is back.
kill -TERM "${dp_pid[west]}" && wait "${dp_pid[west]}"
dp_pid[west]=
section=$(etcdctl get --print-value-only "$key/intent/areas/west" |
  /usr/bin/python3 -c 'import json, sys; s = json.load(sys.stdin); s["tenants"].append({"name": "dp-away"}); print(json.dumps(s))')
etcdctl put "$key/intent/areas/west" "$section" >/dev/null
mx_wait_for 5 status_says west "last error: intent version .* not applied" &&
  pass "west's medix-dp stopped: a change for west is not applied, and medix-cp says why" ||
  fail "west's medix-dp stopped: medix-cp says why" "$(ctl west intent status)"
dp_start west
dp_ready west || finish
mx_wait_for 10 has_tenants west "arch-w dp-away ix race-$winner " &&
  pass "west's medix-dp back: the change is applied (in $took ms after its start)" ||
  fail "west's medix-dp back: the change is applied" "$(tenants west; ctl west intent status)"
mx_wait_for 5 eval '! status_says west "last error"' && pass "west's status: no error left" ||
  fail "west's status: no error left" "$(ctl west intent status)"

# etcd killed: forwarding state kept, status says disconnected.
etcd_kill
mx_wait_for 5 status_says east "disconnected" && mx_wait_for 5 status_says west "disconnected" &&
  pass "etcd killed: both medix-cp say disconnected" ||
  fail "etcd killed: both say disconnected" "$(ctl east intent status; ctl west intent status)"
has_tenants east "hosp-e ix race-$winner " && has_tenants west "arch-w dp-away ix race-$winner " &&
  pass "etcd killed: both medix-dp keep their objects" || fail "both medix-dp keep their objects" "$(tenants east; tenants west)"
metric_is west 'medix_cp_intent_store_connected{store="etcd",area="west"}' 0 &&
  pass "metrics: west's store disconnected" || fail "metrics: west's store disconnected"
grep -q "unreachable" "$tmp/cp-east.log" && pass "medix-cp's log says etcd is unreachable" ||
  fail "the log says unreachable" "$(tail -5 "$tmp/cp-east.log")"

# medix-cp (west) restarted while etcd is down: it starts from its local copy, says etcd is
# unreachable, and medix-dp keeps what it has.
kill -TERM "${cp_pid[west]}" && wait "${cp_pid[west]}"
cp_start west
has_tenants west "arch-w dp-away ix race-$winner " && pass "west's medix-cp restarted without etcd: medix-dp keeps its objects" ||
  fail "west restarted without etcd: medix-dp keeps its objects" "$(tenants west)"
grep -q "etcd 127.0.0.1:2379: unreachable.*local copy; retrying" "$tmp/cp-west.log" && status_says west "disconnected" &&
  pass "it says etcd is unreachable: $(grep -o 'unreachable.*' "$tmp/cp-west.log" | head -1 | cut -c1-90)" ||
  fail "it says etcd is unreachable" "$(tail -5 "$tmp/cp-west.log"; ctl west intent status)"

# A change while they are cut off: etcd up on another port only, the change, etcd down again;
# back on its port, the watches resume at their revision and see it.
etcd_start 2479 || fail "etcd on port 2479"
port=2479 etcdctl put "$key/intent/areas/east" '{"tenants": [{"name": "hosp-e"}, {"name": "while-away"}],
  "interfaces": [{"name": "e-lan", "tenant": "hosp-e", "port": "p0", "addresses": ["192.0.2.1/24"]}]}' >/dev/null
etcd_kill
etcd_start || fail "etcd restarts"
mx_wait_for 10 has_tenants east "hosp-e ix race-$winner while-away " &&
  pass "etcd back: the change made meanwhile is applied (in $took ms)" || fail "the change made meanwhile" "$(tenants east)"
mx_wait_for 5 status_says east ": connected$" && pass "east says connected again" || fail "east connected" "$(ctl east intent status)"
grep -q "compacted" "$tmp/cp-east.log" && fail "no full read was needed" "$(grep compacted "$tmp/cp-east.log")" ||
  pass "the watch resumed at its revision (no full read)"

# The same with a compaction past the watch's revision: a full read (west's watch must be on
# first: restarted without etcd, it may not have reached it yet on a slow machine).
mx_wait_for 10 status_says west ": connected$" || fail "west connected before the compaction" "$(ctl west intent status)"
etcd_kill
etcd_start 2479 || fail "etcd on port 2479"
port=2479 etcdctl put "$key/intent/areas/west" '{"tenants": [{"name": "arch-w"}, {"name": "after-compaction"}],
  "interfaces": [{"name": "w-lan", "tenant": "arch-w", "port": "p0", "addresses": ["198.51.100.1/24"]}]}' >/dev/null
rev=$(port=2479 etcdctl put "$key/filler" x -w json | /usr/bin/python3 -c 'import json, sys; print(json.load(sys.stdin)["header"]["revision"])')
port=2479 etcdctl compact "$rev" >/dev/null
etcd_kill
etcd_start || fail "etcd restarts"
mx_wait_for 10 has_tenants west "after-compaction arch-w ix race-$winner " &&
  pass "after a compaction: a full read, west's change applied" || fail "after a compaction" "$(tenants west)"
grep -q "compacted" "$tmp/cp-west.log" && pass "west's log says it read the intent again" ||
  fail "west's log says compacted" "$(tail -5 "$tmp/cp-west.log")"

# A section that is no intent: refused, the state kept, the status says why.
etcdctl get --print-value-only "$key/intent/areas/east" >"$tmp/east-good.json"
etcdctl put "$key/intent/areas/east" '{"tenants": [{"nme": "x"}]}' >/dev/null
mx_wait_for 5 status_says east "last error: .*areas/east" && pass "a bad key in etcd: east says why" ||
  fail "a bad key: east says why" "$(ctl east intent status)"
has_tenants east "hosp-e ix race-$winner while-away " && pass "a bad key: east keeps its objects" ||
  fail "a bad key: east keeps its objects" "$(tenants east)"

# etcd's password authentication: root (etcdctl's), a role with readwrite on the suite's prefix
# only, a user of that role for east's medix-cp; then `auth enable`.
etcdctl put "$key/intent/areas/east" "$(cat "$tmp/east-good.json")" >/dev/null
mx_wait_for 5 eval '! status_says east "last error"' || fail "east's good section back" "$(ctl east intent status)"
root_pw=root-pw-$RANDOM$RANDOM east_pw=east-pw-$RANDOM$RANDOM wrong_pw=wrong-pw-$RANDOM$RANDOM
out=$({ etcdctl user add root --new-user-password="$root_pw" && etcdctl role add medix &&
  etcdctl role grant-permission medix --prefix=true readwrite "$key/" &&
  etcdctl user add medix-east --new-user-password="$east_pw" && etcdctl user grant-role medix-east medix &&
  etcdctl auth enable; } 2>&1)
[ $? -eq 0 ] && pass "etcd: users root and medix-east (role medix: readwrite on $key/), auth enabled" ||
  { fail "etcd's users and auth enable" "$out"; finish; }
export ETCD_AUTH=root:$root_pw
# restart_east [PASSWORD]: east's medix-cp again, with medix-east and PASSWORD in --etcd-user-file
# (without PASSWORD: no user).
restart_east() {
  kill -TERM "${cp_pid[east]}" && wait "${cp_pid[east]}"
  cp_extra=()
  if [ -n "${1:-}" ]; then
    (umask 077 && printf 'medix-east:%s\n' "$1" >"$tmp/etcd-user")
    cp_extra=(--etcd-user-file "$tmp/etcd-user")
  fi
  cp_start east
}
# A user file medix-cp cannot use: it stops at start, naming the file, never its content.
printf 'no-colon-%s\n' "$east_pw" >"$tmp/bad-user"
chmod 600 "$tmp/bad-user"
out=$("$cp" --intent "$tmp/none.json" -p "${prefix[east]}" --intent-store "$url" --area east \
  --etcd-user-file "$tmp/bad-user" 2>&1)
rc=$?
[ $rc -eq 2 ] && grep -qF "bad-user: its first line must be USER:PASSWORD" <<<"$out" && ! grep -qF "$east_pw" <<<"$out" &&
  pass "a user file without USER:PASSWORD refused at start: $out" || fail "a bad user file (exit $rc)" "$out"
out=$("$cp" --intent "$tmp/none.json" -p "${prefix[east]}" --intent-store "$url" --area east \
  --etcd-user-file "$tmp/no-such-file" 2>&1)
[ $? -eq 2 ] && grep -qF "no-such-file: cannot read the file" <<<"$out" && pass "a missing user file refused at start" ||
  fail "a missing user file" "$out"
restart_east || finish
mx_wait_for 5 status_says east "user name is empty" && status_says east "disconnected" &&
  pass "a medix-cp without a user is refused: $(ctl east intent status | grep -o 'last error: .*' | head -1)" ||
  fail "a medix-cp without a user" "$(ctl east intent status)"
restart_east "$wrong_pw" || finish
mx_wait_for 5 status_says east "authentication failed" &&
  grep -q "etcd 127.0.0.1:2379: refused us (authentication: user medix-east: etcdserver: authentication failed, invalid user ID or password)" "$tmp/cp-east.log" &&
  pass "a wrong password: refused, and says so: $(grep -o 'etcd 127.0.0.1:2379: refused us ([^)]*)' "$tmp/cp-east.log" | head -1)" ||
  fail "a wrong password refused" "$(ctl east intent status; tail -3 "$tmp/cp-east.log")"
grep -q "others than its owner" "$tmp/cp-east.log" && fail "a 600 user file was said readable by others" ||
  pass "the user file (mode 600) taken without a warning"
restart_east "$east_pw" || finish
mx_wait_for 10 status_says east ": connected$" && pass "the right password: east connected as medix-east" ||
  fail "the right password" "$(ctl east intent status; tail -3 "$tmp/cp-east.log")"
section=$(etcdctl get --print-value-only "$key/intent/areas/east" |
  /usr/bin/python3 -c 'import json, sys; s = json.load(sys.stdin); s["tenants"].append({"name": "with-auth"}); print(json.dumps(s))')
etcdctl put "$key/intent/areas/east" "$section" >/dev/null
mx_wait_for 5 has_tenants east "hosp-e ix race-$winner while-away with-auth " &&
  pass "with the password: a change is applied (in $took ms)" || fail "a change with auth" "$(tenants east; ctl east intent status)"
# etcd restarted: its simple tokens were in memory, medix-cp's is unknown now; it asks for another.
etcd_kill
etcd_start || fail "etcd restarts (auth on)"
section=$(etcdctl get --print-value-only "$key/intent/areas/east" |
  /usr/bin/python3 -c 'import json, sys; s = json.load(sys.stdin); s["tenants"].append({"name": "new-token"}); print(json.dumps(s))')
etcdctl put "$key/intent/areas/east" "$section" >/dev/null
mx_wait_for 10 has_tenants east "hosp-e ix new-token race-$winner while-away with-auth " &&
  mx_wait_for 5 status_says east ": connected$" &&
  pass "etcd restarted (tokens lost): east authenticates again, the change applied (in $took ms)" ||
  fail "a new token after etcd's restart" "$(tenants east; ctl east intent status; tail -3 "$tmp/cp-east.log")"
# No password in what medix-cp wrote or said (its log, medixctl's output, the status keys).
etcdctl get --prefix "$key/status/" >"$tmp/status-auth.log" 2>&1
out=$(grep -l -e "$east_pw" -e "$wrong_pw" "$tmp"/cp-*.log "$tmp/medixctl.log" "$tmp/status-auth.log" 2>&1)
[ -z "$out" ] && pass "neither password in medix-cp's logs, medixctl's output or the status keys" ||
  fail "a password shown" "$out"
finish
