#!/usr/bin/env bash
# Two hospital tenants with the SAME address plan through one medix-dp, at the same time.
#
#   hospital-a-lan      10.0.0.10 ── p0 ─┐              ┌─ p1 ── 10.0.1.10  hospital-a-imaging
#                                        ├─ medix-dp ───┤      (tenant hospital-a)
#   hospital-b-lan      10.0.0.10 ── p2 ─┘  gateways    └─ p3 ── 10.0.1.10  hospital-b-imaging
#                                           10.0.0.1, 10.0.1.1 in both tenants (hospital-b)
#
# Each host is a network namespace on a veth pair whose other end medix-dp drives through
# net_af_packet. medix-dp learns every neighbour by ARP (the config has none). Checks: ping,
# concurrent TCP uploads whose bytes (sha256) arrive at the right server only, the other
# tenant's hosts untouched, per-tenant and per-interface counters that match the hosts' own
# kernel counters, ICMP errors, and a clean exit 0 on SIGTERM.
#
# Usage: test/netns/two_tenants.sh   (root; medix-dp from build/, or MEDIX_DP=path)
# Prints PASS/FAIL lines and "netns: N passed, M failed"; exit status 1 on any failure.
# MX_KEEP_TMP=1 keeps the temp dir (config, medix-dp log, transfer logs) for a post-mortem.
set -uo pipefail
shopt -s lastpipe  # tally runs in this shell, so the counts it makes are kept
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"

finish() {
  if [ "$failed" -gt 0 ] && [ -n "$MX_DP_PID" ]; then echo "--- medix-dp drops:"; mx_tele /medix/drops; fi
  mx_finish netns "config, medix-dp log and transfer logs"
}

mx_init
mx_need_binary

MX_TENANT_DESC["hospital-a"]="Hospital A: LAN and imaging archive, plan 10.0.0.0/23"
MX_TENANT_DESC["hospital-b"]="Hospital B: the very same plan as hospital A"
mx_attach hospital-a-lan     hospital-a 10.0.0.10/24 10.0.0.1/24
mx_attach hospital-a-imaging hospital-a 10.0.1.10/24 10.0.1.1/24
mx_attach hospital-b-lan     hospital-b 10.0.0.10/24 10.0.0.1/24
mx_attach hospital-b-imaging hospital-b 10.0.1.10/24 10.0.1.1/24
config=$MX_TMP/config.json
mx_write_config "$config"

# --- start ------------------------------------------------------------------------------------
if mx_check_config "$config"; then
  pass "config accepted by medix-dp --check"
else
  fail "config refused by medix-dp --check: $(tail -n 3 "$MX_TMP/check.log" | tr '\n' ' ')"
fi
if mx_start_dp "$config"; then
  pass "medix-dp ready: $(grep -m1 'medix-dp: ready' "$MX_DP_LOG")"
else
  fail "medix-dp did not start"
  finish
fi

tenants=$(mx_tele /medix/tenants)
if [ -n "$tenants" ] && mx_json - 'set(d) >= {"hospital-a", "hospital-b"}' <<<"$tenants" | grep -qx True; then
  pass "telemetry /medix/tenants lists hospital-a and hospital-b"
else
  fail "telemetry /medix/tenants: got '$tenants'"
fi
neigh=$(mx_tele /medix/neighbours)
if [ "$(mx_json - 'len(d)' <<<"$neigh")" = 0 ]; then
  pass "no neighbour known before any traffic (none configured)"
else
  fail "neighbours before any traffic: $neigh"
fi

# --- ping, one tenant at a time: the other tenant's hosts must receive nothing ----------------
# ping_ok HOST DST COUNT [ping options]: every echo answered.
ping_ok() {
  local host=$1 dst=$2 count=$3; shift 3
  local out
  out=$(mx_in "$host" ping -n -c "$count" -i 0.2 -W 2 "$@" "$dst" 2>&1)
  grep -q " $count received" <<<"$out" && return 0
  echo "$out" | tail -n 3 | sed 's/^/  | /'
  return 1
}
rx_of_hosts() { local h counts=(); for h in "$@"; do counts+=("$(mx_host_stat "$h" rx_packets)"); done; echo "${counts[*]}"; }

for t in a b; do
  me=hospital-$t other=hospital-$([ $t = a ] && echo b || echo a)
  before=$(rx_of_hosts "$other-lan" "$other-imaging")
  if ping_ok "$me-lan" 10.0.0.1 3; then pass "$me: lan host pings its gateway 10.0.0.1"
  else fail "$me: lan host pings its gateway 10.0.0.1"; fi
  if ping_ok "$me-lan" 10.0.1.10 3; then pass "$me: lan host 10.0.0.10 pings its imaging server 10.0.1.10"
  else fail "$me: lan host 10.0.0.10 pings its imaging server 10.0.1.10"; fi
  if ping_ok "$me-imaging" 10.0.0.10 3; then pass "$me: imaging server pings its lan host 10.0.0.10"
  else fail "$me: imaging server pings its lan host 10.0.0.10"; fi
  after=$(rx_of_hosts "$other-lan" "$other-imaging")
  if [ "$before" = "$after" ]; then
    pass "$other's hosts received nothing while $me pinged (rx_packets $after)"
  else
    fail "$other's hosts received frames while $me pinged: rx_packets $before -> $after"
  fi
done

# --- neighbours: learned by ARP, on the right interface, with the right host's MAC -----------
neigh=$(mx_tele /medix/neighbours)
for h in "${MX_HOSTS[@]}"; do
  # docs/running.md keys the table "interface address"; accept "interface/address" too.
  key="$h ${MX_HOST_ADDR[$h]%/*}"
  want=$(mx_host_mac "$h")
  got=$(mx_json - "d.get('$key', d.get('${key/ //}', ''))" <<<"$neigh" | tr 'A-F' 'a-f')
  if [ "$got" = "$want" ]; then pass "neighbour '$key' learned by ARP: $got (that host's own MAC)"
  else fail "neighbour '$key': want $want, got '${got}' (table: $neigh)"; fi
  gw=${MX_GW_ADDR[$h]%/*}
  seen=$(mx_in "$h" ip neigh show "$gw" dev eth0 | awk '{for (i = 1; i < NF; i++) if ($i == "lladdr") print $(i + 1)}')
  port_mac=$(mx_port_mac "$h")
  if [ "$seen" = "$port_mac" ]; then pass "$h resolved gateway $gw to its own medix-dp port ($port_mac)"
  else fail "$h resolved gateway $gw to '$seen', its medix-dp port is $port_mac"; fi
done
events=$(mx_tele /medix/events)
if mx_json - 'd["arp_requests_sent"] > 0 and d["arp_replies_sent"] > 0' <<<"$events" | grep -qx True; then
  pass "ARP events counted: $events"
else
  fail "ARP events: $events"
fi

# --- concurrent uploads + pings in both tenants ------------------------------------------------
declare -A mib=([hospital-a]=8 [hospital-b]=3)
snapshot() {   # snapshot NAME: telemetry and the hosts' kernel counters into $MX_TMP/NAME-*.json
  mx_tele /medix/tenants >"$MX_TMP/$1-tenants.json"
  mx_tele /medix/interfaces >"$MX_TMP/$1-interfaces.json"
  local h sep=
  {
    echo -n '{'
    for h in "${MX_HOSTS[@]}"; do
      echo -n "$sep\"$h\": {\"tx_packets\": $(mx_host_stat "$h" tx_packets), \"rx_packets\": $(mx_host_stat "$h" rx_packets)}"
      sep=', '
    done
    echo '}'
  } >"$MX_TMP/$1-hosts.json"
}
for t in hospital-a hospital-b; do mx_serve "$t-imaging" 5001; done
sleep 0.5
snapshot before
pids=()
for t in hospital-a hospital-b; do
  mx_send "$t-lan" 10.0.1.10 5001 "$t-upload" "${mib[$t]}"; pids+=("$MX_LAST_PID")
  mx_bg "$t-lan" sh -c "ping -n -c 20 -i 0.1 -W 2 10.0.1.10 >'$MX_TMP/ping-$t.txt' 2>&1"; pids+=("$MX_LAST_PID")
done
for p in "${pids[@]}"; do wait "$p"; done
sleep 1   # the last ACKs and FINs
snapshot after

for t in hospital-a hospital-b; do
  other=$([ $t = hospital-a ] && echo hospital-b || echo hospital-a)
  res=$MX_TMP/send-$t-lan-$t-upload.json
  log=$MX_TMP/serve-$t-imaging.log
  olog=$MX_TMP/serve-$other-imaging.log
  if [ "$(mx_json "$res" 'd.get("sha256") is not None and d["sha256"] == d["server_sha256"]')" = True ]; then
    pass "$t: ${mib[$t]} MiB upload 10.0.0.10 -> 10.0.1.10: $(mx_json "$res" '"%d bytes, %s Mbit/s, sha256 %s.." % (d["bytes"], d["mbit_s"], d["sha256"][:16])')"
  else
    fail "$t: upload failed: $(cat "$res")"
  fi
  sent_sha=$(mx_json "$res" 'd.get("sha256")')
  sent_bytes=$(mx_json "$res" 'd.get("bytes")')
  got=$(mx_json "$log" "[(l['tag'], l['bytes'], l['sha256'] == '$sent_sha', l['peer'].split(':')[0]) for l in lines]")
  if [ "$got" = "[[\"$t-upload\", $sent_bytes, true, \"10.0.0.10\"]]" ]; then
    pass "$t-imaging received exactly one stream: $t's, every byte (sha256 equal), from 10.0.0.10"
  else
    fail "$t-imaging should have received only $t's stream; its log: $(cat "$log")"
  fi
  if [ "$(mx_json "$olog" "[l['tag'] for l in lines if l['tag'] != '$other-upload']")" = "[]" ]; then
    pass "$other-imaging received nothing of $t's upload"
  else
    fail "$other-imaging received a foreign stream: $(cat "$olog")"
  fi
  if grep -q " 20 received" "$MX_TMP/ping-$t.txt"; then
    pass "$t: 20/20 pings to 10.0.1.10 answered during the uploads"
  else
    fail "$t: pings during the uploads: $(grep -E 'received|error' "$MX_TMP/ping-$t.txt")"
  fi
done

# Counters: medix-dp's view of each interface must match what the host on it sent and received
# (its kernel's eth0 counters), each tenant must be the sum of its own interfaces, and carry its
# own upload: hospital-a's 8 MiB never appear in hospital-b's counters.
topology=$(for h in "${MX_HOSTS[@]}"; do echo -n "$h=${MX_TENANT[$h]} "; done)
"$MX_PY" - "$MX_TMP" "$topology" "${mib[hospital-a]}" "${mib[hospital-b]}" <<'EOF' | tally
import json, sys
tmp, topo, mib_a, mib_b = sys.argv[1], sys.argv[2].split(), float(sys.argv[3]), float(sys.argv[4])
tenant_of = dict(x.split("=") for x in topo)
load = lambda n: json.load(open(f"{tmp}/{n}.json"))
delta = lambda kind, name, field: load(f"after-{kind}")[name][field] - load(f"before-{kind}")[name].get(field, 0) \
    if name in load(f"before-{kind}") else load(f"after-{kind}")[name][field]
def close(a, b):   # af_packet rings and veth backlogs may drop a few frames under a burst
    return abs(a - b) <= max(3, 0.02 * max(a, b))
def check(ok, text):
    print(("PASS " if ok else "FAIL ") + text)

try:
    for h, t in tenant_of.items():
        rx, tx = delta("interfaces", h, "rx_packets"), delta("interfaces", h, "tx_packets")
        hrx, htx = delta("hosts", h, "rx_packets"), delta("hosts", h, "tx_packets")
        lost = f", {htx - rx} lost before medix-dp" if htx > rx else ""
        check(close(rx, htx), f"interface {h}: rx_packets +{rx} matches what its host sent (+{htx}{lost})")
        check(close(tx, hrx), f"interface {h}: tx_packets +{tx} matches what its host received (+{hrx})")
    seg = 1448  # MSS with timestamps on a 1500 MTU
    need = {"hospital-a": int(mib_a * 2**20 / seg), "hospital-b": int(mib_b * 2**20 / seg)}
    for t in sorted(set(tenant_of.values())):
        mine = [h for h in tenant_of if tenant_of[h] == t]
        total = sum(delta("interfaces", h, "rx_packets") for h in mine)
        got = delta("tenants", t, "rx_packets")
        check(abs(got - total) <= 2, f"tenant {t}: rx_packets +{got} = sum of its interfaces {mine} (+{total})")
        # A tenant's tx counts forwarded packets; its interfaces also count what medix-dp itself
        # sends (ARP, echo replies, ICMP errors): a handful at most during the uploads.
        total = sum(delta("interfaces", h, "tx_packets") for h in mine)
        got = delta("tenants", t, "tx_packets")
        check(0 <= total - got <= 6, f"tenant {t}: tx_packets +{got} ~ sum of its interfaces {mine} (+{total})")
        drops = delta("tenants", t, "drops")
        check(drops == 0, f"tenant {t}: no drops during the uploads (+{drops})")
        up = delta("interfaces", f"{t}-lan", "rx_packets")
        down = delta("interfaces", f"{t}-imaging", "tx_packets")
        others = [n for o, n in need.items() if o != t and n > need[t]]
        hi = min(others) if others else None
        ok = up >= need[t] and down >= need[t] and (hi is None or (up < hi and down < hi))
        check(ok, f"tenant {t}: {t}-lan rx +{up} and {t}-imaging tx +{down} carry its own "
                  f"upload (>= {need[t]} segments)" + (f" and not the other's (< {hi})" if hi else ""))
except KeyError as err:
    check(False, f"counters: {err} missing from the telemetry replies")
except Exception as err:
    check(False, f"counters: {err!r}")
EOF

# --- ICMP errors from the tenant's own gateway --------------------------------------------------
out=$(mx_in hospital-a-lan ping -n -c 1 -W 2 10.0.9.9 2>&1)
if grep -q 'From 10.0.0.1 .*Destination Net Unreachable' <<<"$out"; then
  pass "hospital-a: 10.0.9.9 (no route) answered by 10.0.0.1 with ICMP net unreachable"
else
  fail "hospital-a: ping 10.0.9.9 (no route) should get net unreachable from 10.0.0.1: $(head -n 2 <<<"$out" | tail -n 1)"
fi
out=$(mx_in hospital-b-lan ping -n -c 1 -W 2 -t 1 10.0.1.10 2>&1)
if grep -q 'From 10.0.0.1 .*Time to live exceeded' <<<"$out"; then
  pass "hospital-b: TTL 1 to 10.0.1.10 answered by 10.0.0.1 with ICMP time exceeded"
else
  fail "hospital-b: ping -t 1 10.0.1.10 should get time exceeded from 10.0.0.1: $(head -n 2 <<<"$out" | tail -n 1)"
fi

# --- stop ---------------------------------------------------------------------------------------
rc=0
mx_stop_dp || rc=$?
if [ $rc -eq 0 ]; then pass "medix-dp exited 0 on SIGTERM"
else fail "medix-dp exited $rc on SIGTERM"; fi

finish
