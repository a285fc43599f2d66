#!/usr/bin/env bash
# Hitless updates: traffic keeps flowing through medix-dp, with not one packet lost, duplicated or
# misrouted, while a gRPC client changes its tables underneath.
#
#   src-lan    10.0.0.10 ── p0 ─┐                ┌─ p1 ── 100.100.2.10, .11  dst-lan (tenant core)
#   (tenant hosp)               ├── medix-dp ────┤        198.18.5.10 on lo: the traffic's target
#                               │                └─ p2 ── 100.100.3.10       other-lan (tenant core)
#
# src sends UDP with sequence numbers to 198.18.5.10 at HITLESS_PPS (default 20,000/s): hosp
# leaks 198.18.0.0/16 to core, core routes 198.18.5.0/24 via dst (static neighbours). dst counts
# every sequence number; other-lan listens too and must get nothing. hosp's FIB is compact, the
# core's a DIR24_8. Meanwhile
# test/hitless/hitless.py applies 10,000 route changes (routes via other-lan, or blackholes,
# none covering 198.18.5.10), adds and removes tenants and interfaces (also VLAN interfaces on
# p0 and p1), and replaces the routes the traffic uses with equivalent ones (re-pointed next
# hop, more-specific first, delete+create in one transaction) in both tenants, over and over.
#
# Checks: sent == received at dst, every sequence number once, none at other-lan, medix-dp's
# drop counters and tx_dropped all zero, every object back as it was, versions increasing,
# a clean exit 0 on SIGTERM. After the churn, still under traffic: 1,000 more tenants (each a VLAN
# interface on p2 and a route, one plan for all), one of them deleted and created again 200
# times, then all removed (hitless.py tenants). Then probes: 40 routes re-pointed between dst and other-lan in
# ~70 separate transactions; probes to each (before and after one more transaction, so both
# copies of a left-right FIB serve) must reach exactly the host the route names. Prints PASS/FAIL lines and "hitless: N passed, M failed".
#
# Usage: test/hitless/run.sh   (root; medix-dp from build/, or MEDIX_DP=path)
# Env: HITLESS_PPS (20000), HITLESS_TENANTS (1000), HITLESS_TENANT_CYCLES (200), HITLESS_BUDGET (route plan time limit, 80 s), HITLESS_MIN (keep
# replacing routes at least this long, 30 s); MX_KEEP_TMP=1 keeps the temp dir.
# HITLESS_BREAK=1 adds a replacement that is not hitless (route deleted, then re-created in the
# next transaction): the test must then FAIL (lost packets, no_route drops); a self-check.
set -uo pipefail
HL_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=test/netns/lib.sh
source "$HL_DIR/../netns/lib.sh"

PPS=${HITLESS_PPS:-20000}
SCALE_TENANTS=${HITLESS_TENANTS:-1000}
SCALE_CYCLES=${HITLESS_TENANT_CYCLES:-200}
BUDGET=${HITLESS_BUDGET:-80}
MIN_SECONDS=${HITLESS_MIN:-30}
PORT=5555

finish() { mx_finish hitless "config, logs and results"; }
# Helpers run on CPU 0 with the main lcore, away from the worker's CPU 1.
cpu0() { if command -v taskset >/dev/null; then taskset -c 0 "$@"; else "$@"; fi; }
py() { cpu0 "$MX_PY" "$HL_DIR/hitless.py" "$@"; }
# stat_of NAMESPACE|"" IFACE COUNTER
stat_of() {
  if [ -n "$1" ]; then ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"; else cat "/sys/class/net/$2/statistics/$3"; fi
}

mx_init
mx_need_binary
MX_TENANT_DESC["hosp"]="sender's hospital"
MX_TENANT_DESC["core"]="IX core"
# The core's FIB a DIR24_8 (two copies, left-right), the hospital's compact: the traffic
# crosses both kinds while they change.
MX_TENANT_FIB["core"]="FIB_DIR24_8"
mx_attach src-lan   hosp 10.0.0.10/24    10.0.0.1/24
mx_attach dst-lan   core 100.100.2.10/24 100.100.2.1/24
mx_attach other-lan core 100.100.3.10/24 100.100.3.1/24
MX_ROUTES_JSON='
    {"tenant": "hosp", "prefix": "198.18.0.0/16", "next_tenant": "core"},
    {"tenant": "core", "prefix": "198.18.5.0/24", "via": {"interface": "dst-lan", "address": "100.100.2.10"}}'
config=$MX_TMP/config.json
mx_write_config "$config"
res=$MX_TMP/results
mkdir -p "$res"

if mx_start_dp "$config"; then
  pass "medix-dp ready: $(grep -m1 'medix-dp: ready' "$MX_DP_LOG")"
else
  fail "medix-dp did not start"
  finish
fi
target=unix:/var/run/dpdk/$MX_PREFIX/api.sock
for _ in $(seq 100); do [ -S "/var/run/dpdk/$MX_PREFIX/api.sock" ] && break; sleep 0.1; done

# Hosts: dst's second address and the service address; src's gateway MAC pinned (no ARP
# during the run); every neighbour of medix-dp static, through the API.
mx_in dst-lan ip addr add 100.100.2.11/24 dev eth0
mx_in dst-lan ip addr add 198.18.5.10/32 dev lo
mx_in src-lan ip neigh replace 10.0.0.1 lladdr "$(mx_port_mac src-lan)" dev eth0 nud permanent
if out=$(py setup --target "$target" --dst-mac "$(mx_host_mac dst-lan)" --other-mac "$(mx_host_mac other-lan)" 2>&1); then
  pass "API: static neighbours for dst (two addresses) and other-lan ($out)"
else
  fail "API: static neighbours: $out"
  finish
fi
if mx_in src-lan ping -c1 -W2 10.0.0.1 >/dev/null; then pass "src pings its gateway 10.0.0.1"; else fail "src cannot ping 10.0.0.1"; fi
py state --target "$target" --out "$res/state-before.json" || fail "API: could not read the state"

# --- traffic ---------------------------------------------------------------------------------
for h in dst-lan other-lan; do
  mx_bg "$h" taskset -c 0 "$MX_PY" "$HL_DIR/traffic.py" receive $PORT --out "$res/recv-${h%-lan}.json" \
    --sent-file "$res/sent.json" --ready "$res/ready-$h"
  eval "recv_${h%-lan}=$MX_LAST_PID"
done
for _ in $(seq 50); do [ -e "$res/ready-dst-lan" ] && [ -e "$res/ready-other-lan" ] && break; sleep 0.1; done
src_tx0=$(stat_of "$(mx_ns src-lan)" eth0 tx_packets)
dst_rx0=$(stat_of "$(mx_ns dst-lan)" eth0 rx_packets)
mx_bg src-lan taskset -c 0 "$MX_PY" "$HL_DIR/traffic.py" send 198.18.5.10 $PORT --pps "$PPS" \
  --max-seconds $((BUDGET + MIN_SECONDS + 180)) --out "$res/sent.json"
sender=$MX_LAST_PID
sleep 2
dst_rx1=$(stat_of "$(mx_ns dst-lan)" eth0 rx_packets)
if [ $((dst_rx1 - dst_rx0)) -gt $((PPS / 2)) ]; then
  pass "traffic flows before the churn ($((dst_rx1 - dst_rx0)) packets at dst in the first 2 s)"
else
  fail "traffic does not flow: $((dst_rx1 - dst_rx0)) packets at dst in the first 2 s"
fi

# --- the churn, under traffic ----------------------------------------------------------------
py churn --target "$target" --out "$res/churn.json" --budget "$BUDGET" --min-seconds "$MIN_SECONDS" \
  ${HITLESS_BREAK:+--broken}
churn_rc=$?
# Tenants by the thousand, created and deleted under the same traffic.
py tenants --target "$target" --out "$res/tenants.json" --tenants "$SCALE_TENANTS" --cycles "$SCALE_CYCLES" ||
  echo "     (the tenant churn client exited with status $?)"
sleep 1
kill -TERM "$sender" 2>/dev/null
wait "$sender"
sleep 1.5  # what is in flight drains
[ $churn_rc -eq 0 ] || echo "     (the churn client exited with status $churn_rc)"
py state --target "$target" --out "$res/state-after.json" || fail "API: could not read the state after"

# --- probes: does what forwards match the intent, in both copies of the FIBs? -----------------
# Both hosts accept 22.0.0.0/16; routes 22.0.K.0/24 are pointed at one or the other, re-pointed
# in many separate transactions; 3 probes per destination, then one unrelated transaction (the
# other FIB copy is published), then 3 more.
mx_in dst-lan ip route add local 22.0.0.0/16 dev lo
mx_in other-lan ip route add local 22.0.0.0/16 dev lo
if dests=$(py probe-setup --target "$target" --out "$res/probes.json" --rounds 2 --count 3); then
  mx_in src-lan "$MX_PY" "$HL_DIR/traffic.py" probe $PORT --dests "$dests" --count 3
  py touch --target "$target" --n 1
  mx_in src-lan "$MX_PY" "$HL_DIR/traffic.py" probe $PORT --dests "$dests" --count 3
else
  fail "API: probe routes: $dests"
fi
sleep 1
# shellcheck disable=SC2154
kill -TERM "$recv_dst" "$recv_other" 2>/dev/null
wait "$recv_dst" "$recv_other"
py state --target "$target" --out "$res/state-final.json" || fail "API: could not read the final state"
src_peer=${MX_RIF[src-lan]}
cat >"$res/kernel.json" <<EOF
{"src_tx": $(($(stat_of "$(mx_ns src-lan)" eth0 tx_packets) - src_tx0)),
 "src_peer_rx": $(stat_of "" "$src_peer" rx_packets),
 "dst_rx": $(($(stat_of "$(mx_ns dst-lan)" eth0 rx_packets) - dst_rx0)),
 "dst_rcvbuf_errors": $(# shellcheck disable=SC2016
   mx_in dst-lan awk '/^Udp:/ {n++; if (n == 1) for (i = 1; i <= NF; i++) h[i] = $i; else for (i = 1; i <= NF; i++) if (h[i] == "RcvbufErrors") print $i}' /proc/net/snmp),
 "p0_rx": $(mx_json "$res/state-after.json" 'int([p for p in d["counters"]["ports"] if p["name"] == "p0"][0].get("rx_packets", 0))'),
 "p1_tx": $(mx_json "$res/state-after.json" 'int([p for p in d["counters"]["ports"] if p["name"] == "p1"][0].get("tx_packets", 0))')}
EOF
tally < <(py check --dir "$res")

# --- live updates of what the hosts do use (after the counters were checked) -------------------
# An address added to src-lan by UPDATE answers ping; removed again, it does not.
ops() { py ops --target "$target" --json "$1"; }
if_json() {
  printf '[{"op": "UPDATE", "object": {"interface": {"name": "src-lan", "tenant": "hosp", "port": "p0", "addresses": [%s]}}}]' "$1"
}
out=$(ops "$(if_json '"10.0.0.1/24", "10.0.0.2/24"')")
if mx_in src-lan ping -c1 -W2 10.0.0.2 >/dev/null; then
  pass "UPDATE src-lan with a second address 10.0.0.2/24 ($out): src pings it"
else
  fail "UPDATE src-lan with a second address 10.0.0.2/24 ($out): src cannot ping it"
fi
out=$(ops "$(if_json '"10.0.0.1/24"')")
if ! mx_in src-lan ping -c1 -W1 10.0.0.2 >/dev/null && mx_in src-lan ping -c1 -W2 10.0.0.1 >/dev/null; then
  pass "UPDATE src-lan back to 10.0.0.1/24 only ($out): 10.0.0.2 no longer answers, 10.0.0.1 does"
else
  fail "UPDATE src-lan back to 10.0.0.1/24 only ($out): 10.0.0.2 still answers or 10.0.0.1 does not"
fi
# Port p2 (other-lan) set admin_down and up again.
port_json() { printf '[{"op": "UPDATE", "object": {"port": {"name": "p2", "device": "net_af_packet2", "promiscuous": true, "admin_down": %s}}}]' "$1"; }
mx_in other-lan ping -c1 -W2 100.100.3.1 >/dev/null || echo "     (other-lan cannot ping its gateway before admin_down)"
out=$(ops "$(port_json true)")
if ! mx_in other-lan ping -c1 -W1 100.100.3.1 >/dev/null; then
  pass "UPDATE port p2 admin_down ($out): other-lan's gateway no longer answers"
else
  fail "UPDATE port p2 admin_down ($out): other-lan's gateway still answers"
fi
out=$(ops "$(port_json false)")
up=0
for _ in 1 2 3; do mx_in other-lan ping -c1 -W1 100.100.3.1 >/dev/null && { up=1; break; }; done
if [ $up -eq 1 ]; then
  pass "UPDATE port p2 up again ($out): other-lan pings its gateway"
else
  fail "UPDATE port p2 up again ($out): other-lan cannot ping its gateway"
fi

if mx_stop_dp; then pass "medix-dp exits 0 on SIGTERM"; else fail "medix-dp exit status $?"; fi
finish
