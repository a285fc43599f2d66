#!/usr/bin/env bash
# The carrier's IKE_SA through a failover of the medix pair driven by VRRP (issue 15, docs/ha.md
# "IKE state: strongSwan's ha plugin inside medix-cp" and Part 3). Two medix nodes (medix-dp +
# medix-cp each, the same config and intent but their own interface addresses and VRRP
# priorities), a stock strongSwan gateway (kernel-libipsec) and the hospital behind it:
#
#   hosp-y 10.0.0.10 ── gw 192.0.2.10 ══ESP══ br ─┬─ node A .2 (priority 200) ┐ VIP 192.0.2.1
#                                                 └─ node B .3 (priority 100) ┘ (the IKE address)
#   archive 192.168.1.10 ──────────────────── br ─┬─ node A .2                 ┐ VIP 192.168.1.1
#                                                 └─ node B .3                 ┘
#   medix-dp A ⇄ B: sessions and ESP sequence numbers (loopback, HMAC)
#   medix-cp A ⇄ B: strongSwan's ha plugin in each embedded charon, its datagrams sealed by
#                   medix-cp (AES-256-GCM) on a veth of their own (--ha-sync-*)
#
# The pair is lib.sh's (mx_pair_setup: a bridge in each host's namespace that both nodes' ports
# reach; mx_pair_configs, mx_pair_start...); VRRP (20 cs adverts, one group `ix` over both
# segments, --ha-vrrp-group) makes the master active. The gateway's IKE and ESP go to the
# virtual address. B's medix-cp holds the IKE_SA passive (the ha plugin's IKE_PASSIVE) with the
# CHILD_SA installed in medix-dp B, which drops what would cross. Then the whole node A dies
# (kill -9 of medix-dp and medix-cp in one kill: a node losing power) under a TCP transfer, a
# DICOM study (dcmtk storescu -> storescp, hosp-y's study shaped to 20 Mbit/s so that it is in
# flight) and a 1 kHz UDP probe; B's VRRP instances become master (gratuitous ARP), its role
# active, and medix-cp B, which follows its medix-dp's role, has its ha plugin take the segment
# (the plugin's control FIFO). Checks:
#   - an intent change (lifetimes) applied on the standby's medix-cp: taken in place, no IKE
#     message from the standby, and B runs with it once active;
#   - B's peer has `initiate`: B, standby, does not initiate it; active, it initiates no second
#     IKE_SA (the one synced from A counts);
#   - the gateway's IKE_SA is the same one (same SPIs, same unique id, no new IKE_SA_INIT);
#   - the transfer completes byte-identical; the study, in flight at the kill (fewer than all
#     its images received), arrives complete and byte-identical; the probe's loss window is
#     measured and printed;
#   - the gateway logs no ESP sequence number failure (medix-dp B advanced the outbound
#     sequence numbers A synced) and its inbound packets keep counting on the same SA;
#   - DPD goes on (B answers the gateway's and the gateway answers B's: message IDs synced);
#   - a CHILD_SA rekey from the gateway and one from medix-cp B, and an IKE_SA rekey, succeed;
#   - forged, unsealed and replayed datagrams of the medix-cp link are refused and counted;
#   - A returns, VRRP backup and standby: the plugin's resync gives it B's IKE_SA and CHILD_SA;
#   - a planned switchover back to A (medixctl ha-sync switchover), and medix-cp B stopped with
#     SIGTERM at once: B makes its IKE_SAs passive and sends no DELETE; the gateway's IKE_SA is
#     up through A (DPD, traffic);
#   - the fence (docs/ha.md; both medix-dp with a margin of 2000): medix-dp B stopped (SIGSTOP),
#     so no ack; pings from hosp-y, each reply outbound ESP from A: A's SA stops at its fence
#     (ha_sa_fenced), medix-cp A rekeys the CHILD_SA on the HA_FENCED event, and hosp-y reaches
#     the archive through the new one;
#   - a true split brain (both nodes' ports isolated on both bridges, the medix-cp link cut, the
#     carrier's switch steered to B): B master and active beside A, neither sends a DPD of its
#     own, the gateway's DPD reaches B alone and B answers it; the heal: B steps down and rejoins
#     A (its copy dropped, its message IDs raised on A, A's resync), the gateway's IKE_SA is the
#     same one, it rekeys the CHILD_SA with A (A expects its message ID), B holds the CHILD_SA,
#     and after A is killed the gateway rekeys with B; before that kill B, standby, takes 10 s
#     CHILD_SA lifetimes, due there and refused: once active, B raises them again and rekeys;
#     that kill is of medix-dp A alone, medix-cp A killed 3 s later (a crash of the datapath,
#     then of the node): meanwhile medix-cp A must make its IKE_SAs passive and send B nothing;
#   - the same apply adds a second peer with `initiate` (the gateway's second address, hosp-y's
#     second LAN) of which no node has an IKE_SA: B, standby, does not initiate it; once active,
#     B initiates it (one IKE_SA_INIT from the virtual address, after its role change: the
#     gateway's log in ms), its CHILD_SA is in medix-dp B and carries hosp-y's pings.
#
# Usage: test/netns/ike_failover.sh (root; binaries from build/, or MEDIX_DP, MEDIX_CP, MEDIXCTL).
# MX_IKE_FAILOVER_IMAGES=N: the study's images (24; a control: 2 is over before the kill).
# Prints PASS/FAIL lines and "netns-ike-failover: N passed, M failed".
set -uo pipefail
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=test/netns/swan.sh
source "$(dirname "$0")/swan.sh"
# shellcheck source=test/netns/ike_pair.sh
source "$(dirname "$0")/ike_pair.sh"

ARCHIVE_CORE=100.100.2.10 PORT=5001 STUDY_PORT=$MX_PAIR_TCP IMAGES=${MX_IKE_FAILOVER_IMAGES:-24}
HA_A=10.255.0.1:4520 HA_B=10.255.0.2:4520 # the medix-cp pair's sync link
LINK_TOOL=$MX_LIB_DIR/ike_link_tool.py
# The takeover's margin and the fence's headroom (docs/ha.md, "The fence"): small, so that the
# last part reaches the fence with a few thousand packets; above what A sends in a second here.
FENCE_MARGIN=2000

mx_init
mx_need_binary
[ -x "${MEDIX_CP:-$MX_REPO/build/controlplane/medix-cp}" ] || mx_die "medix-cp not built (scripts/setup, scripts/build)"
[ -x /usr/lib/ipsec/charon ] || mx_die "strongSwan's charon is missing (scripts/setup)"
[ -e /usr/lib/ipsec/plugins/libstrongswan-ha.so ] || mx_die "strongSwan's ha plugin is missing (libcharon-extra-plugins)"
t_start=$(date +%s.%N)
mx_study_make "$IMAGES"

# --- the segments: lib.sh's pair (node A .2, B .3, the virtual address .1 of each /24) ----------
mx_attach carrier-y-gw carrier-y 192.0.2.10/24 192.0.2.2/24
mx_attach archive archive 192.168.1.10/24 192.168.1.2/24
mx_pair_setup
NS_Y=mx-$MX_ID-hosp-y GW=$MX_TMP/gw
MX_NS[hosp-y]=$NS_Y # the hospital behind the gateway, for mx_in and mx_bg (mx_swan_cleanup removes it)
PSK="ike-failover-$MX_ID-$RANDOM$RANDOM"
CPA_PID='' CPB_PID=''

ike_cleanup() {
  local rc=$? pid
  for pid in $CPA_PID $CPB_PID ${esp_capture:-}; do kill -KILL "$pid" && wait "$pid"; done 2>/dev/null # no job notice
  mx_swan_cleanup # the gateway, its namespace and hosp-y's, the medix-cp namespaces
  (exit "$rc")
  mx_cleanup
}
trap ike_cleanup EXIT
finish() { mx_pair_finish netns-ike-failover "$MX_TMP/cp-a.log" "$MX_TMP/cp-b.log" "$GW/gw.log"; }

# --- configs: the same on both nodes but the exception TAP's name (MX_PAIR_TAP), the interfaces'
# own addresses and the VRRP priorities (A 200, B 100; no preemption: mx_pair_configs). Adverts
# every 20 cs (B's master down interval 0.72 s): at 10 cs a run on a loaded 2-core machine saw A
# take over from a live B (B's adverts late by more than 0.36 s). The carrier's interface is
# medix-dp's (its VRRP instance names it); the peer and the hospital behind it are medix-cp's intent.
ike_pair_configs
head -c 48 /dev/urandom | base64 >"$MX_TMP/wrong.key"
# B's peer has `initiate` (A's not: the gateway initiates, one IKE_SA): medix-cp B, standby, must
# not initiate it, and once active the IKE_SA synced from A counts (docs/ha.md, "Who initiates").
mx_json "$MX_TMP/intent-b.json" "dict(d, peers=[dict(d['peers'][0], initiate=True)] + d['peers'][1:])" >"$MX_TMP/intent-b.new" &&
  mv "$MX_TMP/intent-b.new" "$MX_TMP/intent-b.json"

# start_cp A|B: medix-cp beside the node's medix-dp (mx_cp_start: its TAP moved into the
# namespace that holds the ha link), with a /run of its own; pid in CPA_PID or CPB_PID.
start_cp() {
  local n=${1,,} here=$HA_A peer=$HA_B prefix=$A_PREFIX
  [ "$1" = B ] && here=$HA_B peer=$HA_A prefix=$B_PREFIX
  MX_PREFIX=$prefix MX_CP_RUN=$MX_TMP/cp-$n/run mx_cp_start "mx-$MX_ID-cp-$n" "$MX_PAIR_TAP$n" 192.0.2.1/24 \
    "$MX_TMP/intent-$n.json" "$MX_TMP/cp-$n.log" --ha-sync-local "$here" --ha-sync-peer "$peer" \
    --ha-sync-key-file "$MX_TMP/cp-sync.key" --metrics-listen 127.0.0.1:9464 || return 1
  printf -v "CP${1}_PID" %s "$MX_CP_PID"
  MX_CP_PID= # killed with its namespace (mx_swan_cleanup)
}
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
# check_that NAME EXPR: EXPR (a shell condition, evaluated) holds.
check_that() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }
# sas PREFIX: the SPIs of the node's medix-dp, sorted.
sas() { mx_ctl "$1" -o json show sas | mx_json - 'sorted(o["sa"]["spi"] for o in d.get("objects", []))'; }

# --- node A active, node B standby --------------------------------------------------------------
ike_pair_cp_link

mx_pair_start A "$MX_TMP/config-a.json" --ha-sync-sa-margin $FENCE_MARGIN && pass "medix-dp A ready" || { fail "medix-dp A did not start"; finish; }
check "A becomes VRRP master of group ix and HA active" \
  mx_wait_eval 10 'mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE'
mx_pair_start B "$MX_TMP/config-b.json" --ha-sync-sa-margin $FENCE_MARGIN && pass "medix-dp B ready" || { fail "medix-dp B did not start"; finish; }
check "B is VRRP backup (it hears A) and HA standby" \
  mx_wait_eval 10 'mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY'
start_cp A >"$MX_TMP/cpa-start.txt" && pass "medix-cp A ready with the ha plugin" || { fail "$(cat "$MX_TMP/cpa-start.txt")"; finish; }
start_cp B >"$MX_TMP/cpb-start.txt" && pass "medix-cp B ready with the ha plugin" || { fail "$(cat "$MX_TMP/cpb-start.txt")"; finish; }
# A datagram of the link as A sends it (replayed later).
ip netns exec "mx-$MX_ID-cp-b" "$MX_PY" "$LINK_TOOL" capture "mh${MX_ID}b" "$HA_B" "$MX_TMP/captured.bin" &
capture=$!
# Each medix-cp follows its medix-dp's role: A's IKE_SAs are active ones, B's passive.
check "medix-cp A's ha plugin holds the segment (medix-dp A is active)" \
  mx_wait_eval 5 'grep -q "HA segment 1 activated" "$MX_TMP/cp-a.log"'
check "medix-cp B's ha plugin does not (medix-dp B is standby)" \
  mx_wait_eval 5 "grep -q 'medix-dp is standby' '$MX_TMP/cp-b.log' && ! grep -q 'HA segment 1 activated' '$MX_TMP/cp-b.log'"
# The gateway connects at once: B's plugin asks for its resync only a second after it starts, so
# the IKE_SA is likely made before, and the resync sends it again (medix-cp B must leave out the
# first: the plugin would install it twice: docs/ha.md).

# The carrier's segment, ESP headers only (SPI, sequence number, the port: eth0 A's, ethb B's; in
# UDP, as kernel-libipsec has it), until the replay check: a gateway that logs a sequence number
# failure has the packets beside it.
mx_in carrier-y-gw timeout 300 tcpdump -i any -nn -s 64 -U -w "$MX_TMP/carrier-esp.pcap" 'esp or udp port 4500' \
  2>"$MX_TMP/tcpdump.log" &
esp_capture=$!
mx_in carrier-y-gw ip -o link >"$MX_TMP/carrier-links.txt"
# The gateway checks liveness too: DPD every 2 s (B must answer with the synced message IDs).
ike_pair_gateway 2s
ping_archive() { mx_in hosp-y ping -n -c3 -i0.2 -W1 -q "$ARCHIVE_CORE" >/dev/null 2>&1; }
# hosp-y's study (its TCP to the DICOM port alone) shaped, as netns-failover's hospitals: it takes
# seconds, and is in flight at the kill.
mx_pair_shape hosp-y 20mbit eth0 $STUDY_PORT
check "hosp-y reaches the archive through the CHILD_SA (node A)" ping_archive
check "medix-cp B holds the IKE_SA passive (ha plugin)" \
  mx_wait_eval 5 'grep -q "installed HA passive IKE_SA" "$MX_TMP/cp-b.log"'
check "medix-cp B asked A for a resync" mx_wait_eval 5 'grep -q "requesting HA resynchronization" "$MX_TMP/cp-b.log"'
sleep 0.5
grep -q "left out until the plugin asks for its resync" "$MX_TMP/cp-b.log" &&
  echo "    (the IKE_SA was made before B's resync request: its first sync was left out)"
check "medix-cp B holds it once (one passive IKE_SA)" [ "$(grep -c "installed HA passive IKE_SA" "$MX_TMP/cp-b.log")" = 1 ]
check "medix-cp B installed the CHILD_SA in medix-dp B" mx_wait_eval 5 'grep -q "installed HA CHILD_SA" "$MX_TMP/cp-b.log"'
check "medix-cp B, standby, did not initiate its peer with initiate (no IKE_SA_INIT from the virtual address)" \
  bash -c "! grep -q 'initiating IKE_SA' '$MX_TMP/cp-b.log' && ! grep -q 'parsed IKE_SA_INIT request' '$GWLOG'"
# B's resync made A rekey the CHILD_SA: charon A keeps the old inbound SA 5 s more
# (delete_rekeyed_delay), B never had it. Waiting for it would change the run's timing (DPD).
spis_a=$(sas "$A_PREFIX") spis_b=$(sas "$B_PREFIX")
check "medix-dp B has the SAs of medix-dp A ($spis_b; A: $spis_a)" \
  [ "$(mx_json - "len(d) >= 2 and set(d) <= set($spis_a or [])" <<<"${spis_b:-null}")" = True ]
check "medix-dp B syncs the SAs' sequence numbers from A" mx_wait_eval 5 '[ "$(mx_ha $B_PREFIX sas_synced)" -ge 2 ]'
# Who negotiated each SA (docs/ha.md, "An SA the peer negotiated"): A's charon, so medix-dp A has
# them as its own and medix-dp B as the peer's (B's medix-cp saw its plugin install them).
origins() { mx_ctl "$1" -o json show sas | mx_json - '" ".join(sorted({o["sa"].get("origin", "-") for o in d.get("objects", [])}))'; }
o_a=$(origins "$A_PREFIX") o_b=$(origins "$B_PREFIX")
check_that "the SAs' origin: medix-dp A's local ($o_a), medix-dp B's the peer's ($o_b)" \
  '[ "$o_a" = SA_ORIGIN_LOCAL ] && [ "$o_b" = SA_ORIGIN_PEER ]'
ike_before=$(ike_sa) child_before=$(child)
echo "    gateway before: IKE_SA $ike_before; CHILD_SA $child_before"

# --- an intent change applied on the standby (docs/ha.md, "An intent change on the standby") -----
# B's medix-cp takes it (its file, charon's config, its passive IKE_SA and the SAs' timers) and
# sends nothing; B's IKE_SA runs with it once B is active (checked after the takeover). Longer
# than the test: neither falls due here. A keeps its own (lifetimes are no medix-dp object).
b_apply_mark=$(wc -l <"$MX_TMP/cp-b.log")
mx_json "$MX_TMP/intent-b.json" "dict(d, peers=[dict(d['peers'][0], ike_rekey_seconds=7200, child_rekey_seconds=2400,
  child_life_seconds=2600)] + d['peers'][1:])" >"$MX_TMP/intent-b-lifetimes.json"
out=$(mx_ctl "$B_PREFIX" intent apply "$MX_TMP/intent-b-lifetimes.json" 2>&1)
check_that "ApplyIntent on the standby's medix-cp (B; IKE 7200 s, CHILD_SA 2400 s): applied in place to its passive IKE_SA ($out)" \
  'tail -n +$((b_apply_mark + 1)) "$MX_TMP/cp-b.log" | grep -q "lifetimes changed in place: 1 IKE_SA(s) kept" &&
    [ "$(mx_json "$MX_TMP/intent-b.json" "d[\"peers\"][0].get(\"ike_rekey_seconds\")")" = 7200 ]'

# --- a transfer, a study and a probe through the tunnel, node A killed in their middle -----------
# The probe: 1 kHz of UDP from hosp-y to the archive (gateway ══ESP══ the virtual address), each
# datagram with its sequence number and send time; the loss window is read from what arrived.
mx_serve archive $PORT
mx_study_serve archive HOSP-Y $STUDY_PORT
mx_wait_eval 5 '[ "$(mx_in archive ss -Hltn "sport = :$PORT or sport = :$STUDY_PORT" | wc -l)" -ge 2 ]'
mx_probe_start through archive 192.168.1.10 hosp-y "$ARCHIVE_CORE" 7
mx_send hosp-y "$ARCHIVE_CORE" $PORT through 4 4
xfer=$MX_LAST_PID
# The study from hosp-y through the tunnel, begun (2 images in) before the kill.
study_ns=$(mx_now_ns)
mx_study_send hosp-y HOSP-Y "$ARCHIVE_CORE" $STUDY_PORT
sleep 2
mx_wait_eval 10 '[ "$(mx_study_received HOSP-Y)" -ge 2 ]'
study_before=$(mx_study_received HOSP-Y)
# When medix-cp B logs its plugin's segment taken (the log has no clock of its own): read every 10 ms.
b_mark=$(wc -l <"$MX_TMP/cp-b.log") # from here: an activation of a moment earlier is not the takeover
(for ((i = 0; i < 1500; i++)); do
  tail -n +$((b_mark + 1)) "$MX_TMP/cp-b.log" | grep -q "HA segment 1 activated" && { mx_now_ns >"$MX_TMP/ike-active.ns"; break; }
  sleep 0.01
done) &
ike_watch=$!
a_mark=$(wc -l <"$MX_TMP/cp-a.log")
metrics_b() { mx_metric 9464 "$1" "mx-$MX_ID-cp-b"; } # 'NAME{LABELS}': medix-cp B's
kill_mark=$(wc -l <"$GWLOG") # the gateway's log from the kill on: what B answers
# B's activations before the kill (0 unless a loaded machine starved B past its master down
# interval: then it was master for a moment and heard A again): the takeover is counted from here.
act0=$(metrics_b 'medix_cp_ha_segment_changes_total{to="active"}')
[ "${act0:-0}" = 0 ] || echo "    note: medix-cp B was made active ${act0} time(s) before the kill (B starved past its master down interval; see medix-dp-b.log)"
# (charon logs each IKE message it sends: A's log has them, from its IKE_SA's making on)
check "... and the standby sent no IKE message since (its IKE_SA passive; A's log has $(grep -c "sending packet" "$MX_TMP/cp-a.log"))" \
  [ "$(tail -n +$((b_apply_mark + 1)) "$MX_TMP/cp-b.log" | grep -c "sending packet")" = 0 -a "$(grep -c "sending packet" "$MX_TMP/cp-a.log")" -ge 1 ]
# The whole node at once (a node losing power): medix-dp and medix-cp in one kill. KILL_NS;
# DEAD_NS once medix-dp is reaped: its ports closed, whatever crosses from now on is B's. (A
# crash of medix-dp alone, its medix-cp outliving it, is the last takeover's.)
mx_pair_kill A "$CPA_PID"
CPA_PID=
study_at_kill=$(mx_study_received HOSP-Y) # an upper bound: no image reaches the archive through A now
echo "    killed node A: -9 of medix-dp and medix-cp at once; medix-dp reaped $(((DEAD_NS - KILL_NS) / 1000)) us after the signal"
check_that "the study was in flight at the kill: $study_before of $IMAGES images received before it, $study_at_kill once A was reaped" \
  '[ "$study_before" -ge 2 ] && [ "$study_at_kill" -lt "$IMAGES" ] && [ ! -s "$MX_TMP/study-HOSP-Y.rc" ]'
check_that "medix-cp A died with its medix-dp: it never saw its medix-dp gone (no line of passive IKE_SAs)" \
  '! tail -n +$((a_mark + 1)) "$MX_TMP/cp-a.log" | grep -q "medix-dp does not answer"'
check "B becomes VRRP master and HA active by VRRP (master_down: A's adverts stopped)" \
  mx_wait_eval 10 'mx_pair_is $B_PREFIX master HA_ROLE_ACTIVE'
last_change=$(mx_ctl "$B_PREFIX" -o json ha-sync | mx_json - "(d.get('role_history') or [{}])[-1]")
echo "    B's role change: $last_change"
role_ms=$(mx_json - "round((int(d.get('timestamp_ns', 0)) - $KILL_NS) / 1e6)" <<<"$last_change")
check "B's role became active by VRRP $role_ms ms after the kill (cause vrrp, standby -> active)" \
  [ "$(mx_json - "d.get('cause') == 'vrrp' and d.get('to') == 'HA_ROLE_ACTIVE'" <<<"$last_change")" = True ]
check "medix-cp B's ha plugin took the segment as medix-dp B became active: the IKE_SA is active on B" \
  mx_wait_eval 5 'tail -n +$((b_mark + 1)) "$MX_TMP/cp-b.log" | grep -q "HA segment 1 activated"'
wait "$ike_watch"
rekeys=$(mx_ctl "$B_PREFIX" -o json peers | mx_json - '(lambda i: "%s %s" % (i.get("rekey_in_seconds", 0),
  min(int(c.get("rekey_in_seconds", 0)) for c in i["child_sas"])))(d["peers"][0]["ike_sas"][0])')
check "B active runs with the intent change it took as standby: IKE_SA and CHILD_SA rekeys in ${rekeys:-?} s (at most 7200, 2400)" \
  bash -c "read -r i c <<<'${rekeys:-x x}'; [ \"\$i\" -gt 0 ] && [ \"\$i\" -le 7200 ] && [ \"\$c\" -gt 0 ] && [ \"\$c\" -le 2400 ]"
ike_ms=$(awk -v a="$KILL_NS" -v b="$(cat "$MX_TMP/ike-active.ns" 2>/dev/null)" 'BEGIN { printf "%d", (b - a) / 1e6 }')
echo "    IKE_SA active on B $ike_ms ms after the kill (B's role active at $role_ms ms; its medix-cp polls the role every 100 ms)"
mx_probe_end through "$KILL_NS" "$DEAD_NS"
r=$MX_PROBE_REPORT
echo "    ESP probe through the kill (1 kHz, hosp-y -> archive): $r"
check "ESP traffic resumed through B: the first probe sent once A's medix-dp was reaped arrived $(mx_json - "d['takeover_ms']" <<<"$r") ms after the kill, $(mx_json - "d['lost_after_kill']" <<<"$r") lost (limit 3000 ms)" \
  [ "$(mx_json - "d['takeover_ms'] is not None and d['takeover_ms'] <= 3000 and d['lost_after_kill'] < d['sent'] / 2" <<<"$r")" = True ]
wait "$xfer"
r=$MX_TMP/send-hosp-y-through.json
check "the transfer through the CHILD_SA that spanned the failover completed byte-identical ($(cat "$r"))" \
  [ "$(mx_json "$r" "d is not None and d.get('sha256') == d.get('server_sha256') and d.get('bytes', 0) >= 4194304")" = True ]
mx_study_check HOSP-Y "hosp-y behind the gateway, through the CHILD_SA, across the takeover"
# Its end: storescu's exit status written (the file's time).
study_end_ns=$(date -r "$MX_TMP/study-HOSP-Y.rc" +%s%N 2>/dev/null || echo 0)
echo "    study: $IMAGES images, $(((study_end_ns - study_ns) / 1000000)) ms from storescu's start to its exit, $(((study_end_ns - KILL_NS) / 1000000)) ms after the kill"
check "hosp-y reaches the archive through node B" ping_archive
ike_after=$(ike_sa) child_after=$(child)
echo "    gateway after:  IKE_SA $ike_after; CHILD_SA $child_after"
check_that "the gateway's IKE_SA is the same one (unique id, SPIs, ESTABLISHED), and it is its only one" \
  '[ -n "$ike_before" ] && [ "$ike_after" = "$ike_before" ] && [ "$(ike_count)" = 1 ]'
check_that "the gateway's CHILD_SA is the same one and its inbound packets went on counting" \
  '[ "$(cut -d" " -f1,2 <<<"$child_after")" = "$(cut -d" " -f1,2 <<<"$child_before")" ] &&
    [ "$(cut -d" " -f3 <<<"$child_after")" -gt "$(cut -d" " -f3 <<<"$child_before")" ]'
check "medix-dp B advanced the outbound sequence numbers it had synced" [ "$(mx_ha $B_PREFIX sas_advanced)" -ge 1 ]
init_count() { grep -c 'generating IKE_SA_INIT request' "$GWLOG"; }
check "no IKE_SA_INIT since the first (the gateway sent one)" [ "$(init_count)" = 1 ]
check "medix-cp B, active, initiated no second IKE_SA for its peer with initiate: the one synced from A counts" \
  bash -c "grep -q 'active: 0 of 1 peer(s) with initiate initiated' '$MX_TMP/cp-b.log' && ! grep -q 'initiating IKE_SA' '$MX_TMP/cp-b.log' &&
    ! grep -q 'parsed IKE_SA_INIT request' '$GWLOG'"

# --- the IKE sync link refuses what the pair's key did not seal -----------------------------------
# From A's address (A is dead: its port is free), as an attacker on the link could.
installed=$(grep -c "installed HA" "$MX_TMP/cp-b.log")
wait "$capture" && [ -s "$MX_TMP/captured.bin" ] || fail "no datagram of A's captured on the link"
link() { ip netns exec "mx-$MX_ID-cp-a" "$MX_PY" "$LINK_TOOL" "$@" "$HA_A" "$HA_B"; }
link plain
link forge "$MX_TMP/wrong.key"
[ -s "$MX_TMP/captured.bin" ] && ip netns exec "mx-$MX_ID-cp-a" "$MX_PY" "$LINK_TOOL" replay "$HA_A" "$HA_B" "$MX_TMP/captured.bin"
for why in malformed bad_tag replay; do
  check "medix-cp B refused an ha plugin datagram ($why) and counted it" \
    mx_wait_eval 3 'grep -q "ha link: refused a datagram ($why)" "$MX_TMP/cp-b.log"'
done
m=$(for r in malformed bad_tag replay; do metrics_b "medix_cp_ha_link_rejected_total{reason=\"$r\"}"; done | tr '\n' ' ')
check "medix-cp B's metrics count them: rejected malformed, bad_tag, replay = $m" \
  bash -c "read -r a b c <<<'$m'; [ \"\${a:-0}\" -ge 1 ] && [ \"\${b:-0}\" -ge 1 ] && [ \"\${c:-0}\" -ge 1 ]"
m=$(metrics_b 'medix_cp_ha_link_datagrams_total{direction="received"}')
# medix-cp B makes its IKE_SAs active once for each time its medix-dp became active since the kill:
# once, unless a loaded machine kept A's adverts coming after the kill signal (A reaped late) and
# B's VRRP went master, backup, master (said, and then counted twice on both sides).
b_act=$(mx_ctl "$B_PREFIX" -o json ha-sync | mx_json - "sum(1 for c in d.get('role_history') or [] if c.get('to') == 'HA_ROLE_ACTIVE' and int(c.get('timestamp_ns', 0)) >= $KILL_NS)")
[ "${b_act:-0}" -le 1 ] || echo "    note: medix-dp B became active $b_act times after the kill (A reaped $(( (DEAD_NS - KILL_NS) / 1000000 )) ms after the signal)"
check_that "medix-cp B's metrics: $m datagrams received from A on the link, its IKE_SAs made active as often as medix-dp B became active after the kill ($b_act)" \
  '[ "${m:-0}" -ge 3 ] && [ "${b_act:-0}" -ge 1 ] && [ "$(($(metrics_b "medix_cp_ha_segment_changes_total{to=\"active\"}") - ${act0:-0}))" = "$b_act" ]'
check "nothing of them reached B's ha plugin" [ "$(grep -c "installed HA" "$MX_TMP/cp-b.log")" = "$installed" ]

# --- DPD both ways, then rekeys from both sides --------------------------------------------------
# DPD: both sides every 2 s of silence; whichever sends, the other must answer (B with the
# responder message ID it synced, the gateway to B's initiator message ID).
gw_mark=$(wc -l <"$GWLOG")
sleep 5 # more than 2 DPD intervals with the tunnel idle
dpd=$(tail -n +"$((gw_mark + 1))" "$GWLOG" | grep -c 'parsed INFORMATIONAL \(request\|response\) [0-9]* \[ \]')
check "DPD exchanges between the gateway and B after the takeover ($dpd)" [ "$dpd" -ge 1 ]
check "no retransmits of B's IKE requests (B's message IDs are the gateway's)" \
  bash -c "! grep -q 'retransmit' '$MX_TMP/cp-b.log'"
# From the kill on: before it, a DPD of the gateway's crossing one of A's on a loaded machine was
# once retransmitted, which is A's and the gateway's business, not the takeover's.
check "no retransmits of the gateway's IKE requests after the kill (B answers its DPD)" \
  bash -c "! tail -n +$((kill_mark + 1)) '$GWLOG' | grep -q 'retransmit'"
check "the IKE_SA is still the same after DPD" [ "$(ike_sa)" = "$ike_before" ]
if swan --rekey --child hosp >"$GW/rekey.log" 2>&1 && sleep 1 && c=$(child) && [ -n "$c" ] &&
  [ "$(cut -d' ' -f1 <<<"$c")" != "$(cut -d' ' -f1 <<<"$child_before")" ]; then
  pass "the gateway rekeyed the CHILD_SA with node B ($c)"
else
  fail "the gateway's CHILD_SA rekey: $(tail -2 "$GW/rekey.log"); CHILD_SA $(child)"
fi
check "hosp-y reaches the archive through the rekeyed CHILD_SA" ping_archive
# shellcheck disable=SC2034  # read by mx_wait_eval
c1=$(child)
mx_ctl "$B_PREFIX" peer carrier-y rekey >"$MX_TMP/rekey-b.txt" 2>&1
check "medix-cp B rekeyed the CHILD_SA ($(cat "$MX_TMP/rekey-b.txt"))" \
  mx_wait_eval 10 'c=$(child); [ -n "$c" ] && [ "$(cut -d" " -f1 <<<"$c")" != "$(cut -d" " -f1 <<<"$c1")" ]'
check "hosp-y reaches the archive through B's rekeyed CHILD_SA" ping_archive
swan --rekey --ike ix >"$GW/rekey-ike.log" 2>&1
check "the gateway rekeyed the IKE_SA with node B" \
  mx_wait_eval 10 'now=$(ike_sa); [ -n "$now" ] && [ "${now%% *}" != "${ike_before%% *}" ] && [[ $now == *ESTABLISHED ]]'
check "hosp-y reaches the archive after the IKE_SA rekey" ping_archive
check "the gateway logged no ESP sequence number (replay) failure" \
  bash -c "! grep -q 'ESP sequence number verification failed' '$GWLOG'"
kill -TERM "$esp_capture" 2>/dev/null
wait "$esp_capture" 2>/dev/null
esp_capture=
# A failure: each packet of its SPI and number on the segment (by port: the pcap's interfaces are
# the namespace's, read there; carrier-links.txt has them for a later reading).
grep -A1 'ESP sequence number verification failed' "$GWLOG" | grep -o 'SPI [0-9a-f]* \[seq [0-9]*\]' | sort -u |
  while read -r _ spi _ seq; do
    seq=${seq%]}
    echo "    ESP replay at the gateway: SPI $spi seq $seq; on the carrier's segment:"
    mx_in carrier-y-gw tcpdump -r "$MX_TMP/carrier-esp.pcap" -nn -tttt 2>/dev/null | grep -i "spi=0x$spi,seq=$(printf '0x%x' "$seq")[),]" | sed 's/^/      /' | head -20
  done
check "the gateway logged no ESP decryption failure" bash -c "! grep -q 'ESP decryption failed' '$GWLOG'"
check_that "the gateway still has one IKE_SA, and sent one IKE_SA_INIT in all" '[ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ]'

# --- A returns as standby: the ha plugin's resync gives it B's IKE_SA, and B rekeys the CHILD_SAs
# so that A learns them (the plugin never sends CHILD_SA keys again) ---------------------------------
mv "$MX_TMP/cp-a.log" "$MX_TMP/cp-a-first.log"
mx_pair_start A "$MX_TMP/config-a.json" --ha-sync-sa-margin $FENCE_MARGIN && pass "medix-dp A back" || { fail "medix-dp A did not restart"; finish; }
check "A rejoins as VRRP backup (B keeps the addresses: no preemption) and HA standby" \
  mx_wait_eval 10 'mx_pair_is $A_PREFIX backup HA_ROLE_STANDBY'
start_cp A >"$MX_TMP/cpa-start.txt" && pass "medix-cp A back" || { fail "$(cat "$MX_TMP/cpa-start.txt")"; finish; }
check "medix-cp A asked for a resync and holds B's IKE_SA passive" \
  mx_wait_eval 10 'grep -q "requesting HA resynchronization" "$MX_TMP/cp-a.log" && grep -q "installed HA passive IKE_SA" "$MX_TMP/cp-a.log"'
check "medix-cp A holds one IKE_SA (B's rekeyed one)" [ "$(grep -c "installed HA passive IKE_SA" "$MX_TMP/cp-a.log")" = 1 ]
check "medix-dp A has the SAs of medix-dp B again (B rekeyed its CHILD_SA for A)" \
  mx_wait_eval 15 'a=$(sas $A_PREFIX); [ -n "$a" ] && [ "$a" != "[]" ] && [ "$a" = "$(sas $B_PREFIX)" ]'
check_that "the gateway still has its one IKE_SA, rekeyed once, and sent one IKE_SA_INIT" \
  '[ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ] && [ "$(ike_sa)" = "$now" ]'
check "hosp-y reaches the archive through B after A's return" ping_archive
check "B's plugin never acted on A's segment messages (each node follows its own medix-dp)" \
  bash -c "! grep -q 'remote node \(takes\|drops\) segment' '$MX_TMP/cp-b.log' '$MX_TMP/cp-a.log'"

# --- a planned switchover back to A, and the old active's medix-cp stopped at once -----------------
# The planned stop of a node: switch over, then stop it. medix-cp B gets SIGTERM as soon as A is
# active, while medix-dp B may still be draining (active for three more advert intervals) and its
# role watcher has not yet made its IKE_SAs passive: it must not close them (charon's shutdown
# would send the gateway a DELETE for the IKE_SA A now serves, and the plugin A a delete).
gw_mark=$(wc -l <"$GWLOG")
check "medixctl ha-sync switchover on A: active ($(mx_ctl "$A_PREFIX" ha-sync switchover --group ix 2>&1 | tee "$MX_TMP/switchover.out"))" \
  grep -q '^active after' "$MX_TMP/switchover.out"
kill -TERM "$CPB_PID"
wait "$CPB_PID"
rc=$?
CPB_PID=
# Usually "the peer is active too: 1 IKE_SA(s) made passive" (B still draining); "standby: 0" if
# B's role watcher was quicker than the SIGTERM.
check "medix-cp B (the old active) stopped on SIGTERM (exit $rc), its IKE_SAs passive: $(grep -o 'stopping while .*' "$MX_TMP/cp-b.log")" \
  grep -q 'ha: stopping while .* IKE_SA(s) made passive' "$MX_TMP/cp-b.log"
check "A is VRRP master and active, B backup and standby" \
  mx_wait_eval 10 'mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE && mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY'
check "medix-cp A's ha plugin took the segment: the IKE_SA is active on A" \
  mx_wait_eval 5 'grep -q "HA segment 1 activated" "$MX_TMP/cp-a.log"'
check "the gateway got no DELETE: its IKE_SA is the same one, its only one" \
  bash -c "[ '$(ike_sa)' = '$now' ] && [ '$(ike_count)' = 1 ] && ! tail -n +$((gw_mark + 1)) '$GWLOG' | grep -q 'received DELETE\|parsed INFORMATIONAL request [0-9]* \[ D \]'"
check "hosp-y reaches the archive through A" ping_archive
c2=$(child)
if swan --rekey --child hosp >"$GW/rekey-a.log" 2>&1 && sleep 1 && c=$(child) && [ -n "$c" ] &&
  [ "$(cut -d' ' -f1 <<<"$c")" != "$(cut -d' ' -f1 <<<"$c2")" ]; then
  pass "the gateway rekeyed the CHILD_SA with node A after the switchover ($c)"
else
  fail "the gateway's CHILD_SA rekey through A: $(tail -2 "$GW/rekey-a.log"); CHILD_SA $(child)"
fi
check "hosp-y reaches the archive through A's rekeyed CHILD_SA" ping_archive
check "the gateway still has its one IKE_SA, sent one IKE_SA_INIT, no ESP failure" \
  bash -c "[ '$(ike_count)' = 1 ] && [ '$(init_count)' = 1 ] && ! grep -q 'ESP sequence number verification failed\|ESP decryption failed' '$GWLOG'"

# --- the fence: the standby stops acking, A's outbound SA stops at the fence, medix-cp rekeys it ---
fenced() { mx_ctl "$A_PREFIX" -o json counters | mx_json - "sum(int(x.get('packets', 0)) for x in d.get('drops', []) if x.get('reason') == 'ha_sa_fenced')"; }
check "A's outbound SA has a fence (B acks A's rounds)" mx_wait_eval 5 '[ "$(mx_ha "$A_PREFIX" sas_fenced)" -ge 1 ]'
c3=$(child) cp_mark=$(wc -l <"$MX_TMP/cp-a.log")
kill -STOP "$B_PID"
# 2600 echo requests, 0.5 ms apart: their replies are outbound ESP from A, more than the margin.
mx_in hosp-y ping -n -i 0.0005 -c 2600 -W 1 -q "$ARCHIVE_CORE" >"$MX_TMP/ping-fence.txt" 2>&1
echo "    pings while B is stopped: $(grep -o '[0-9]* received' "$MX_TMP/ping-fence.txt"); $(fenced) replies fenced"
check "A's SA stopped at its fence: replies dropped as ha_sa_fenced" [ "$(fenced)" -gt 0 ]
check "medix-cp A got the HA_FENCED event and rekeyed the CHILD_SA" \
  mx_wait_eval 10 'tail -n +$((cp_mark + 1)) "$MX_TMP/cp-a.log" | grep -q HA_FENCED && c=$(child) && [ -n "$c" ] && [ "$(cut -d" " -f2 <<<"$c")" != "$(cut -d" " -f2 <<<"$c3")" ]'
echo "    CHILD_SA $c3 -> $(child)"
check "hosp-y reaches the archive through the rekeyed CHILD_SA (B still stopped)" ping_archive
kill -CONT "$B_PID"

# --- a true split brain with an IKE exchange on the loser, then the heal (docs/ha.md, "IKE in a
# split brain") -------------------------------------------------------------------------------------
# medix-cp B back; then both nodes' ports isolated on both bridges (VRRP adverts no longer cross:
# B becomes master and active too) and the medix-cp link cut; the carrier's switch sends the
# virtual MAC to B's port (a sticky FDB entry), so the gateway's DPD reaches B alone: B answers
# it, its responder message ID goes ahead of A's, and A hears nothing of it. Neither node sends a
# DPD of its own (neither hears a standby peer). The heal: A (priority 200) stays master, B steps
# down; medix-cp B drops its copies, sends A its message IDs (A takes the higher) and asks for a
# resync (A sends its IKE state again and rekeys the CHILD_SA).
t_split=$(date +%s.%N)
# cp_link cut|heal: the medix-cp link cut by a permanent neighbour entry with a MAC nobody has, on
# both ends (a link or address change would be seen by charon, which then sends MOBIKE updates).
cp_link() {
  local n peer
  for n in a b; do
    peer=10.255.0.2 && [ $n = b ] && peer=10.255.0.1
    if [ "$1" = cut ]; then
      ip -n "mx-$MX_ID-cp-$n" neigh replace $peer lladdr 02:00:00:00:de:ad dev "mh${MX_ID}$n" nud permanent || return 1
    else
      ip -n "mx-$MX_ID-cp-$n" neigh del $peer dev "mh${MX_ID}$n" || return 1
    fi
  done
}
cp_since() { tail -n +$(($2 + 1)) "$MX_TMP/cp-$1.log"; } # cp_since a|b LINE: the log from LINE on
# spis_held PREFIX: the node's medix-dp holds both SPIs of the gateway's CHILD_SA.
spis_held() {
  local c
  c=$(child) && [ -n "$c" ] &&
    [ "$(mx_json - "{int('${c%% *}', 16), int('$(cut -d' ' -f2 <<<"$c")', 16)} <= set(d or [])" <<<"$(sas "$1")")" = True ]
}
mx_wait_eval 10 'mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY' || fail "medix-dp B not standby after SIGCONT"
mv "$MX_TMP/cp-b.log" "$MX_TMP/cp-b-second.log"
start_cp B >"$MX_TMP/cpb-start.txt" 2>&1 || fail "medix-cp B did not restart: $(cat "$MX_TMP/cpb-start.txt")"
check "medix-cp B back: the IKE_SA passive, medix-dp B holds the gateway's CHILD_SA" \
  mx_wait_eval 15 'grep -q "installed HA passive IKE_SA" "$MX_TMP/cp-b.log" && spis_held $B_PREFIX'
# The split starts just after a DPD exchange between A and the gateway: B's copy has its message
# ID, and neither side's next DPD is due for 2 s, by when A has found its peer silent (a request
# sent in the second the peer's word still holds is not held back: docs/ha.md, "Still unsafe").
gw_mark=$(wc -l <"$GWLOG")
mx_wait_eval 6 'tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "parsed INFORMATIONAL \(request\|response\) [0-9]* \[ \]"' ||
  echo "    note: no DPD exchange with A in 6 s"
ike_split=$(ike_sa) a_mark=$(wc -l <"$MX_TMP/cp-a.log") b_mark=$(wc -l <"$MX_TMP/cp-b.log") gw_mark=$(wc -l <"$GWLOG")
steer_carrier ethb
segments on && cp_link cut || fail "could not isolate the nodes"
check "split: B master and active beside A (ports isolated, medix-cp link cut)" \
  mx_wait_eval 10 'mx_pair_is $B_PREFIX master HA_ROLE_ACTIVE && mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE'
check "split: the gateway's DPD reaches B and B answers it (an exchange on the loser)" \
  mx_wait_eval 12 'cp_since b $b_mark | grep -q "parsed INFORMATIONAL request [0-9]* \[ \]" &&
    tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "parsed INFORMATIONAL response [0-9]* \[ \]"'
check_that "split: neither node sent a DPD of its own (no standby peer heard)" \
  '! cp_since a $a_mark | grep -q "sending DPD request" && ! cp_since b $b_mark | grep -q "sending DPD request"'
cp_link heal && segments off && steer_carrier none || fail "could not heal"
check "heal: A master and active, B backup and standby" \
  mx_wait_eval 10 'mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE && mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY'
check "heal: medix-cp B rejoined A ($(cp_since b $b_mark | grep -o 'rejoining the active peer: .*' | head -1))" \
  mx_wait_eval 10 'cp_since b $b_mark | grep -q "rejoining the active peer: 1 passive IKE_SA(s) dropped, the message IDs of 1 sent"'
check "heal: medix-cp A raised the IKE_SA's message IDs to B's ($(cp_since a $a_mark | grep -o 'raised after a split: .*' | head -1))" \
  mx_wait_eval 8 'cp_since a $a_mark | grep -q "the peer rejoins after acting active: 1 IKE_SA(s) reported" &&
    cp_since a $a_mark | grep -q "raised after a split"'
check_that "heal: the gateway's IKE_SA is the same one ($ike_split), its only one; one IKE_SA_INIT in all" \
  '[ -n "$ike_split" ] && [ "$(ike_sa)" = "$ike_split" ] && [ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ]'
# A gateway's DPD that reached A before its message IDs were raised is ignored and retransmitted
# (4 s): the rekey may wait for it.
# shellcheck disable=SC2034  # read by mx_wait_eval
c5=$(child)
swan --rekey --child hosp >"$GW/rekey-heal.log" 2>&1
check "heal: the gateway rekeyed the CHILD_SA with A (A expects the gateway's message ID)" \
  mx_wait_eval 10 'c=$(child); [ -n "$c" ] && [ "${c%% *}" != "${c5%% *}" ]'
echo "    CHILD_SA $c5 -> $(child); gateway retransmits since the heal: $(tail -n +$((gw_mark + 1)) "$GWLOG" | grep -c retransmit)"
check "heal: hosp-y reaches the archive through A" ping_archive
check "heal: medix-dp B holds the gateway's CHILD_SA (A's resync and rekeys)" mx_wait_eval 10 'spis_held $B_PREFIX'
echo "    split and heal: $(awk -v a="$t_split" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
# After the heal, a takeover by B: its copy has the message IDs of the split too. Before it, B
# (standby) takes CHILD_SA lifetimes of 10 s (life 12), in place: both SAs' soft lifetimes fall
# due within 10 s, refused (its IKE_SA passive); once active, B raises them again and rekeys
# (without, nothing would for 40 minutes: their timers at the lifetimes they were installed with).
# The same apply adds a second peer with `initiate`, carrier-y2 (the gateway's second address
# 192.0.2.11, hosp-y's 10.0.1.0/24 behind it), that A never had: B, standby, loads it and does not
# initiate it; once active, B has no IKE_SA of it and initiates it (docs/ha.md, "Who initiates").
b_mark=$(wc -l <"$MX_TMP/cp-b.log") c7=$(child)
mx_in carrier-y-gw ip addr add 192.0.2.11/24 dev br0 && mx_in carrier-y-gw ip addr add 10.0.1.1/24 dev lan &&
  mx_in hosp-y ip addr add 10.0.1.10/24 dev eth0 || fail "the gateway's second address and hosp-y's second LAN"
cat >>"$GW/swanctl/swanctl.conf" <<CONF
connections {
  ix2 {
    version = 2
    local_addrs = 192.0.2.11
    remote_addrs = 192.0.2.1
    proposals = aes128gcm16-prfsha256-x25519
    local {
      auth = psk
      id = gw2.carrier-y.example
    }
    remote {
      auth = psk
      id = ix.medix.example
    }
    children {
      hosp2 {
        local_ts = 10.0.1.0/24
        remote_ts = 100.100.2.0/24
        esp_proposals = aes128gcm16
      }
    }
  }
}
secrets {
  ike-ix2 {
    id-1 = gw2.carrier-y.example
    id-2 = ix.medix.example
    secret = "$PSK"
  }
}
CONF
swan --load-all >/dev/null 2>&1 || fail "the gateway's second connection (ix2)"
mx_json "$MX_TMP/intent-b.json" "dict(d, peers=[dict(d['peers'][0], child_rekey_seconds=10, child_life_seconds=12),
  dict(d['peers'][0], name='carrier-y2', tunnel='t-y2', remote_address='192.0.2.11', remote_id='gw2.carrier-y.example',
    remote_selectors=['10.0.1.0/24'], initiate=True)] + d['peers'][1:],
  routes=d['routes'] + [dict(tenant='ix', prefix='100.64.3.0/24', next_tenant='hosp-y')],
  static_mappings=d['static_mappings'] + [dict(tenant='hosp-y', tenant_prefix='10.0.1.0/24', core_prefix='100.64.3.0/24')])" \
  >"$MX_TMP/intent-b-short.json"
out=$(mx_ctl "$B_PREFIX" intent apply "$MX_TMP/intent-b-short.json" 2>&1)
check "B, standby, takes a CHILD_SA lifetime of 10 s in place ($out) and both SAs' soft lifetimes fall due there ($c7)" \
  mx_wait_eval 12 'read -r s1 s2 _ <<<"$c7"; cp_since b $b_mark | grep -q "SA $s1 soft time lifetime reached" &&
    cp_since b $b_mark | grep -q "SA $s2 soft time lifetime reached"'
check_that "B, standby, loaded the added peer carrier-y2 with initiate and did not initiate it in those 10 s (the gateway got no IKE_SA_INIT)" \
  'cp_since b $b_mark | grep -q "intent applied: peers 1 added" && ! cp_since b $b_mark | grep -q "initiating IKE_SA" &&
    ! grep -q "parsed IKE_SA_INIT request" "$GWLOG" && [ -z "$(swan --list-sas --ike ix2 2>/dev/null)" ]'
gw_mark=$(wc -l <"$GWLOG") a_mark=$(wc -l <"$MX_TMP/cp-a.log")
mx_pair_kill A
# A crash of medix-dp alone: medix-cp A outlives it by a few seconds (then the node goes), while B
# takes over and the checks below run. It must not disturb B (its DPD, due after 2 s without
# traffic, would sync message IDs to B).
(sleep "${MX_CP_OUTLIVES:-3}" && kill -KILL "$CPA_PID") &
cp_kill=$!
check "after the heal, medix-dp A killed: B master and active" mx_wait_eval 10 'mx_pair_is $B_PREFIX master HA_ROLE_ACTIVE'
check "B, active, initiated the peer with initiate that has no IKE_SA here (medix-cp B: 1 of 2 peer(s) with initiate initiated)" \
  mx_wait_eval 5 'cp_since b $b_mark | grep -q "ha: active: 1 of 2 peer(s) with initiate initiated"'
check "the gateway's IKE_SA ix2 is up with B's virtual address (192.0.2.1), its CHILD_SA hosp2 installed" \
  mx_wait_eval 5 'l=$(swan --list-sas --ike ix2 2>/dev/null); grep -q "^ix2: #[0-9]*, ESTABLISHED" <<<"$l" &&
    grep -q "remote .* @ 192\.0\.2\.1\[" <<<"$l" && [ -n "$(child ix2)" ]'
# (The gateway initiates ix: an IKE_SA_INIT request it parses is B's for ix2.)
check_that "the gateway received one IKE_SA_INIT in all, after A's kill, from 192.0.2.1 to its second address" \
  '[ "$(grep -c "parsed IKE_SA_INIT request" "$GWLOG")" = 1 ] &&
    tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "parsed IKE_SA_INIT request" &&
    tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "received packet: from 192\.0\.2\.1\[500\] to 192\.0\.2\.11\[500\]"'
# From B's activation (medix-dp B's role change) to the gateway's IKE_SA_INIT and CHILD_SA, by
# the gateway's log (milliseconds) and medix-dp's clock (the same host's).
role_ms=$(mx_ctl "$B_PREFIX" -o json ha-sync |
  mx_json - "[int(c['timestamp_ns']) // 1000000 for c in d.get('role_history') or [] if c.get('to') == 'HA_ROLE_ACTIVE'][-1]")
init_ms=$(gw_ms "parsed IKE_SA_INIT request") up_ms=$(gw_ms "CHILD_SA hosp2{[0-9]*} established")
after() { [ -n "$role_ms" ] && [ -n "$1" ] && echo $(($1 - role_ms)) || echo '?'; } # after MS: MS - role_ms
check_that "B initiated only once active: the gateway's IKE_SA_INIT $(after "$init_ms") ms after B's role change, its CHILD_SA up $(after "$up_ms") ms after" \
  '[ -n "$role_ms" ] && [ -n "$init_ms" ] && [ -n "$up_ms" ] && [ "$init_ms" -ge "$role_ms" ]'
c8=$(child ix2)
check_that "medix-dp B holds the new CHILD_SA's SPIs ($c8)" \
  '[ -n "$c8" ] && [ "$(mx_json - "{int(\"${c8%% *}\", 16), int(\"$(cut -d" " -f2 <<<"$c8")\", 16)} <= set(d or [])" <<<"$(sas "$B_PREFIX")")" = True ]'
check_that "hosp-y (10.0.1.10) reaches the archive through the new CHILD_SA (the gateway counts B's ESP on it)" \
  'mx_in hosp-y ping -n -c3 -i0.2 -W1 -q -I 10.0.1.10 "$ARCHIVE_CORE" >/dev/null 2>&1 && c=$(child ix2) &&
    [ "$(cut -d" " -f3 <<<"$c")" -ge 3 ]'
check "B, active, raised the soft lifetime due while standby again and rekeyed the CHILD_SA" \
  mx_wait_eval 10 'cp_since b $b_mark | grep -q "due while standby raised again" && c=$(child) && [ -n "$c" ] && [ "${c%% *}" != "${c7%% *}" ]'
echo "    CHILD_SA $c7 -> $(child); $(cp_since b "$b_mark" | grep -o 'active: [0-9]* SA soft.*' | head -1)"
wait "$cp_kill" && wait "$CPA_PID" 2>/dev/null
CPA_PID=
echo "    killed A: -9 of medix-dp, ${MX_CP_OUTLIVES:-3} s later of medix-cp"
check "medix-cp A, its medix-dp gone, made its IKE_SAs passive and withheld its plugin's datagrams" \
  bash -c "tail -n +$((a_mark + 1)) '$MX_TMP/cp-a.log' | grep -q 'medix-dp does not answer: the IKE_SAs here are passive'"
echo "    medix-cp A's charon sent $(tail -n +$((a_mark + 1)) "$MX_TMP/cp-a.log" | grep -c 'sending DPD request') DPD request(s) in those ${MX_CP_OUTLIVES:-3} s; its link withheld $(tail -n +$((a_mark + 1)) "$MX_TMP/cp-a.log" | grep -c 'a datagram of the plugin withheld') datagram(s) before it saw medix-dp gone"
# shellcheck disable=SC2034  # read by mx_wait_eval
c6=$(child)
swan --rekey --child hosp >"$GW/rekey-b2.log" 2>&1
check "after the heal, the gateway rekeyed the CHILD_SA with B (B's copy has the split's message IDs)" \
  mx_wait_eval 10 'c=$(child); [ -n "$c" ] && [ "${c%% *}" != "${c6%% *}" ]'
check "hosp-y reaches the archive through B" ping_archive
check_that "the gateway's IKE_SA is still the same one, its only one" \
  '[ "$(ike_sa)" = "$ike_split" ] && [ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ]'
check "the gateway logged no ESP sequence number (replay) or decryption failure in the whole run" \
  bash -c "! grep -q 'ESP sequence number verification failed\|ESP decryption failed' '$GWLOG'"
echo "    whole run: $(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
finish
