#!/usr/bin/env bash
# VRRPv3 (RFC 5798) between medix-dp and keepalived on one Linux bridge (issue 15, "addresses
# that move"), wire-compatible both ways:
#
#   medix-dp ── p0 (af_packet) ── veth ─┐
#   keepalived (namespace ka) ── veth ──┼── br0 (namespace seg, also the host 10.9.0.10)
#                                        │
#   medix 10.9.0.2, keepalived 10.9.0.3, virtual router 51 with 10.9.0.1, adverts every 50 cs
#
# (1) keepalived, master alone, yields to a higher-priority medix that preempts;
# (2) medix, its priority lowered below keepalived's, yields (backup: no ARP answer from the
#     virtual MAC); (3) keepalived killed (-9, no priority-0 advert): medix takes over within the
#     master down interval (with a generous margin for a loaded machine), the host sees its
#     gratuitous ARP (its neighbour entry moves to 00:00:5e:00:01:33) and pings the address.
# (4) medix-dp stopped with SIGTERM says priority 0 in its last advert.
#
# Usage: test/netns/vrrp.sh   (root; binaries from build/, or MEDIX_DP=path MEDIXCTL=path)
set -uo pipefail
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"

CTL=${MEDIXCTL:-$MX_REPO/build/controlplane/cli/medixctl}
VIP=10.9.0.1
VMAC=00:00:5e:00:01:33
finish() {
  if [ "$failed" -gt 0 ]; then
    echo "--- last lines of the medix-dp log:"
    tail -n 25 "$MX_DP_LOG" 2>/dev/null | sed 's/^/  | /'
    echo "--- last lines of keepalived's log:"
    tail -n 25 "$MX_TMP/keepalived.log" 2>/dev/null | sed 's/^/  | /'
    MX_KEEP_TMP=1
    echo "--- kept in $MX_TMP"
  fi
  echo "netns-vrrp: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}
command -v keepalived >/dev/null || mx_die "keepalived is needed (Debian package keepalived; scripts/setup)"
command -v tcpdump >/dev/null || mx_die "tcpdump is needed (scripts/setup)"

mx_init
KA_NS=
KA_PID=
vrrp_cleanup() {
  local rc=$?
  [ -n "$KA_PID" ] && kill -KILL "$KA_PID" 2>/dev/null
  if [ -n "$KA_NS" ]; then
    for pid in $(ip netns pids "$KA_NS" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$KA_NS" 2>/dev/null
  fi
  (exit $rc)
  mx_cleanup
}
trap vrrp_cleanup EXIT
mx_need_binary
ip link add "mxbrcheck$MX_ID" type bridge 2>/dev/null && ip link del "mxbrcheck$MX_ID" \
  || mx_die "this kernel has no Linux bridge (needed for the shared segment)"

# The segment: medix's port's veth end is enslaved to br0 in namespace seg, which is the host.
mx_attach seg lan 10.9.0.10/24 10.9.0.2/24
SEG=$(mx_ns seg)
KA_NS=mx-$MX_ID-ka
(
  set -e
  ip -n "$SEG" addr flush dev eth0
  ip -n "$SEG" link add br0 type bridge
  ip -n "$SEG" link set br0 type bridge forward_delay 0 stp_state 0
  ip -n "$SEG" link set eth0 master br0
  ip -n "$SEG" addr add 10.9.0.10/24 dev br0
  ip -n "$SEG" link set br0 up
  ip netns add "$KA_NS"
  ip -n "$KA_NS" link set lo up
  ip link add "mx${MX_ID}k" type veth peer name eth0 netns "$KA_NS"
  ip link set "mx${MX_ID}k" netns "$SEG"
  ip -n "$SEG" link set "mx${MX_ID}k" master br0 up
  ip netns exec "$KA_NS" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
  ip -n "$KA_NS" addr add 10.9.0.3/24 dev eth0
  ip -n "$KA_NS" link set eth0 up
) || mx_die "could not build the bridged segment"

config=$MX_TMP/config.json
mx_write_config "$config"
if mx_start_dp "$config"; then pass "medix-dp ready"; else fail "medix-dp did not start"; finish; fi
ctl() { "$CTL" -p "$MX_PREFIX" "$@"; }

# vrrp_field FIELD: the instance's field as `medixctl --json vrrp` gives it ("" if none).
vrrp_field() {
  ctl -o json vrrp 2>/dev/null | "$MX_PY" -c '
import json, sys
d = json.load(sys.stdin)
for i in d.get("instances", []):
    if i["name"] == "vr51":
        print(i.get(sys.argv[1], ""))' "$1"
}
# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds; prints the seconds waited.
wait_for() {
  local limit=$1; shift
  local start=$EPOCHREALTIME
  while :; do
    if "$@"; then
      "$MX_PY" -c "print('%.2f' % ($EPOCHREALTIME - $start))"
      return 0
    fi
    if "$MX_PY" -c "import sys; sys.exit(0 if $EPOCHREALTIME - $start > $limit else 1)"; then return 1; fi
    sleep 0.1
  done
}
medix_is() { [ "$(vrrp_field state)" = "$1" ]; }
ka_entered() { grep -c "Entering $1 STATE" "$MX_TMP/keepalived.log" 2>/dev/null || true; }
ka_is() { [ "$(ka_entered "$1")" -gt "${2:-0}" ]; }

apply_vrrp() {  # apply_vrrp PRIORITY PREEMPT
  cat >"$MX_TMP/vrrp.json" <<JSON
{"schema_version": 1, "vrrp_instances": [{"name": "vr51", "interface": "seg", "vrid": 51, "priority": $1,
  "preempt": $2, "advert_interval_cs": 50, "addresses": ["$VIP"]}]}
JSON
  ctl apply "$MX_TMP/vrrp.json" >"$MX_TMP/apply.out" 2>&1
}

# --- keepalived alone: master ---------------------------------------------------------------
cat >"$MX_TMP/keepalived.conf" <<EOF2
global_defs {
  router_id ka-$MX_ID
  vrrp_version 3
}
vrrp_instance VR51 {
  state BACKUP
  interface eth0
  virtual_router_id 51
  priority 100
  advert_int 0.5
  virtual_ipaddress {
    $VIP/24
  }
}
EOF2
ip netns exec "$KA_NS" keepalived -n -l -D -P -f "$MX_TMP/keepalived.conf" -p "$MX_TMP/ka.pid" \
  -r "$MX_TMP/ka-vrrp.pid" -i "ka-$MX_ID" >"$MX_TMP/keepalived.log" 2>&1 &
KA_PID=$!
if t=$(wait_for 10 ka_is MASTER); then pass "keepalived alone becomes master (${t} s)"; else fail "keepalived never became master"; finish; fi

# --- (1) keepalived yields to medix: priority 200, preempt ----------------------------------
if apply_vrrp 200 true; then pass "vrrp_instance vr51 applied (priority 200, preempt)"; else fail "apply: $(cat "$MX_TMP/apply.out")"; fi
if t=$(wait_for 8 medix_is master); then pass "medix preempts keepalived: master after ${t} s"; else fail "medix not master: state $(vrrp_field state)"; fi
if t=$(wait_for 5 ka_is BACKUP); then
  pass "keepalived saw medix's advertisement and yielded (Entering BACKUP STATE)"
else
  fail "keepalived did not go to backup"
fi
grep -q "higher priority 200" "$MX_TMP/keepalived.log" && pass "keepalived logs medix's priority 200 from its advert" \
  || fail "keepalived's log names no advert of priority 200"
sleep 2  # keepalived stays backup while medix advertises
masters=$(ka_entered MASTER)
[ "$masters" -eq 1 ] && medix_is master && pass "2 s later: medix still master, keepalived still backup" \
  || fail "flapping: keepalived entered master $masters times, medix $(vrrp_field state)"
# The host asks for the address: medix answers with the virtual MAC; the ping goes to medix.
ip -n "$SEG" neigh flush dev br0
if ip netns exec "$SEG" ping -n -c 2 -W 2 "$VIP" >/dev/null; then pass "host pings $VIP (medix master)"; else fail "host cannot ping $VIP through medix"; fi
mac=$(ip -n "$SEG" neigh show "$VIP" dev br0 | awk '{print $3}')
[ "$mac" = "$VMAC" ] && pass "ARP for $VIP answered with the virtual MAC $VMAC" || fail "neighbour $VIP is '$mac', not $VMAC"
rx=$(vrrp_field adverts_received)
tx=$(vrrp_field adverts_sent)
[ "${tx:-0}" -ge 4 ] && pass "medix sent $tx adverts" || fail "medix sent ${tx:-0} adverts"

# --- (2) medix yields to keepalived: priority 50 below keepalived's 100 ----------------------
masters=$(ka_entered MASTER)
apply_vrrp 50 false || fail "apply priority 50: $(cat "$MX_TMP/apply.out")"
if t=$(wait_for 8 medix_is backup); then pass "medix yields to keepalived's priority 100: backup after ${t} s"; else fail "medix still $(vrrp_field state)"; fi
if wait_for 5 ka_is MASTER "$masters" >/dev/null; then pass "keepalived master again"; else fail "keepalived not master"; fi
rx=$(vrrp_field adverts_received)
[ "${rx:-0}" -ge 1 ] && pass "medix heard keepalived's adverts ($rx) and names $(vrrp_field master_address) master" \
  || fail "medix received no advert"
[ "$(vrrp_field master_address)" = 10.9.0.3 ] && pass "medix's master is keepalived (10.9.0.3)" || fail "master_address $(vrrp_field master_address)"
# As backup medix answers no ARP for the address: keepalived (its own MAC) does.
ip -n "$SEG" neigh flush dev br0
ip netns exec "$SEG" timeout 6 tcpdump -i br0 -n -e -l "arp and ether src $VMAC" >"$MX_TMP/backup-arp.txt" 2>/dev/null &
td=$!
sleep 1
ip netns exec "$SEG" ping -n -c 2 -W 2 "$VIP" >/dev/null && pass "host pings $VIP (keepalived master)" || fail "host cannot ping $VIP through keepalived"
sleep 1
kill -INT "$td" 2>/dev/null; wait "$td" 2>/dev/null
n=$(grep -c . "$MX_TMP/backup-arp.txt")
mac=$(ip -n "$SEG" neigh show "$VIP" dev br0 | awk '{print $3}')
[ "$n" -eq 0 ] && [ "$mac" != "$VMAC" ] && pass "medix as backup sent no ARP from $VMAC; $VIP is at keepalived's $mac" \
  || fail "as backup: $n ARP frames from $VMAC, neighbour $mac"

# --- (3) keepalived killed: medix takes over, gratuitous ARP, the host reaches the address ----
ip netns exec "$SEG" timeout 15 tcpdump -i br0 -n -e -l -c 1 "arp and ether src $VMAC" >"$MX_TMP/garp.txt" 2>/dev/null &
td=$!
sleep 1
# Every keepalived process at once (parent and VRRP child): a child outliving its parent would
# say priority 0 on its way out, a crash says nothing.
mapfile -t ka_pids < <(ip netns pids "$KA_NS" 2>/dev/null)
echo "    keepalived processes: $(ps -o pid=,comm= -p "$(IFS=,; echo "${ka_pids[*]}")" | tr -s ' \n' ' ')"
kill -STOP "${ka_pids[@]}" 2>/dev/null
kill -KILL "${ka_pids[@]}" 2>/dev/null
wait "$KA_PID" 2>/dev/null
KA_PID=
# The node is dead: its kernel would go on answering for the address keepalived put on eth0.
ip -n "$KA_NS" link set eth0 down
# Master down interval: 3 x 50 cs + (256 - 50) / 256 x 50 cs = 1.90 s; 6 s allowed (loaded CI).
if t=$(wait_for 6 medix_is master); then pass "keepalived killed: medix master after ${t} s (master down interval 1.90 s)"; else fail "medix did not take over: $(vrrp_field state)"; fi
wait "$td" 2>/dev/null
grep -q "Request who-has $VIP .*tell $VIP" "$MX_TMP/garp.txt" && pass "the host saw medix's gratuitous ARP: $(head -1 "$MX_TMP/garp.txt" | cut -c1-120)" \
  || fail "no gratuitous ARP from $VMAC seen: $(cat "$MX_TMP/garp.txt")"
mac=$(ip -n "$SEG" neigh show "$VIP" dev br0 | awk '{print $3}')
[ "$mac" = "$VMAC" ] && pass "the host's neighbour entry for $VIP moved to $VMAC without asking" || fail "neighbour $VIP is '$mac'"
ip netns exec "$SEG" ping -n -c 2 -W 2 "$VIP" >/dev/null && pass "host pings $VIP after the takeover" || fail "host cannot ping $VIP after the takeover"
grep -q "sent 0 priority" "$MX_TMP/keepalived.log" && fail "keepalived said priority 0: not a crash" \
  || pass "keepalived died without a word (no priority-0 advert): the takeover waited out the master down interval"
reasons=$(ctl vrrp | grep -c -- "-> master  (master_down)")
[ "$reasons" -ge 1 ] && pass "medixctl vrrp lists the takeover (backup -> master, master_down)" || fail "medixctl vrrp: $(ctl vrrp)"
# --- SIGTERM: the master says priority 0 on its way out (RFC 5798 6.4.3) ------------------------
ip netns exec "$SEG" timeout 10 tcpdump -i br0 -n -e -l -c 1 "ether src $VMAC and ip proto 112 and ip[22] = 0" \
  >"$MX_TMP/zero.txt" 2>/dev/null &
td=$!
sleep 1
mx_stop_dp && pass "medix-dp stops on SIGTERM (exit 0)" || fail "medix-dp's exit status on SIGTERM"
wait "$td" 2>/dev/null
grep -q "vrid 51, prio 0," "$MX_TMP/zero.txt" && pass "its last advert has priority 0: $(cut -c1-100 "$MX_TMP/zero.txt")" \
  || fail "no priority-0 advert at SIGTERM: $(cat "$MX_TMP/zero.txt")"
finish
