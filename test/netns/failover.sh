#!/usr/bin/env bash
# A redundant pair end to end (docs/ha.md, issue 15): two medix-dp nodes on Linux bridges, VRRP
# (10 cs adverts, one group over the three segments) driving the HA role (--ha-vrrp-group), the
# sync link between them; hosts use the virtual addresses as their gateway.
#
#   hosp-a 10.0.0.5 ─ br ─┬─ node A: .2 (priority 200)  ┬─ br ─ archive 192.168.1.10
#   hosp-d 10.0.0.5 ─ br ─┤  node B: .3 (priority 100)  │      (100.100.2.10 in the core)
#                         └─ VIP .1 on each segment ────┘      sync: UDP on loopback, HMAC
#   hosp-a: static 10.0.0.0/24 <-> 100.64.1.0/24; hosp-d: NAPT pool 100.64.9.1
#
# (1) A is master of the group and active, B backup and standby with A's sessions.
# (2) kill -9 of A while two DICOM studies (dcmtk storescu -> storescp; hosp-a through static
#     NAT, hosp-d through NAPT) are in flight and a 1 kHz UDP probe runs from the archive to
#     hosp-a: B takes over; both studies arrive byte-identical; the takeover time (from the kill
#     to the arrival of the first probe sent once A was reaped: only B can have forwarded it) is
#     measured and must be under a loose bound (3 s: a loaded 2-core machine) and no earlier than
#     B's role change to active; the goal (1 s) is reported, not asserted.
# (3) A returns: VRRP backup, HA standby, a bulk resync gives it B's sessions.
# (4) A planned switchover back to A (`medixctl ha-sync switchover`: A's priority raised above
#     B's, with preemption; A becomes master and active before B yields and drains) under the
#     probe and a third study: 0 probes lost.
# (5) The active's own link down: A's intent back to the startup one (no preemption), then A's
#     archive-side link cut (the bridge's end of A's veth down: A's af_packet port loses its
#     carrier) under the probe and a fourth study: A's instance on the archive segment goes to
#     fault (its own link is tracked with weight 0), its group steps down, B becomes master of
#     every instance and active; the probe resumes within 1 s; the study arrives byte-identical;
#     `medixctl ha` on A names the link. The link back: A stays backup and standby.
#
# Usage: test/netns/failover.sh (root; binaries from build/, or MEDIX_DP=path MEDIXCTL=path).
# MX_FAILOVER_JSON=FILE: the measured figures written there as JSON.
set -uo pipefail
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"

DICOM_PORT=$MX_PAIR_TCP IMAGES=${MX_FAILOVER_IMAGES:-24}
ARCHIVE=192.168.1.10 ARCHIVE_CORE=100.100.2.10 HOSP_A_CORE=100.64.1.5
# The hospitals' TCP into their bridge is shaped (htb, mx_pair_shape) so that a study takes
# seconds, not a blink: it is still in flight when the active dies.
RATE=${MX_FAILOVER_RATE:-30mbit}
TAKEOVER_LIMIT_MS=3000

check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
# check_that NAME EXPR: EXPR (a shell condition, evaluated) holds.
check_that() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }

mx_init
mx_need_binary
mx_pair_init "$RATE"
finish() { mx_pair_finish netns-failover; }

# DICOM: one study (pydicom-made CT images) sent by each hospital; one storescp a hospital on
# the archive (its own port and directory).
mx_study_make "$IMAGES"
declare -A STUDY_PORT=([HOSP-A]=$DICOM_PORT [HOSP-D]=$((DICOM_PORT + 1)))
for tag in HOSP-A HOSP-D; do mx_study_serve archive $tag "${STUDY_PORT[$tag]}"; done
study_send() { mx_study_send "$1" "$2" $ARCHIVE_CORE "${STUDY_PORT[$2]}"; }
received() { mx_study_received "$1"; }
# vrrp_effective PREFIX: the node's instances as STATE/EFFECTIVE_PRIORITY, sorted.
vrrp_effective() {
  mx_ctl "$1" -o json vrrp | mx_json - "' '.join(sorted('%s/%d' % (i['state'], i.get('effective_priority', 0)) for i in d['instances']))"
}
# probe_start TAG SECONDS: the receiver on hosp-a, the sender on the archive (to hosp-a's core address).
probe_start() { mx_probe_start "$1" hosp-a-lan 10.0.0.5 archive $HOSP_A_CORE "$2"; }

t0=$(date +%s)
# --- (1) the pair: A first (master alone), then B --------------------------------------------
mx_pair_start A "$MX_TMP/config-a.json" && pass "node A ready" || { fail "node A did not start"; finish; }
check "A becomes VRRP master of the group and active" \
  mx_wait_eval 10 '[ "$(mx_vrrp_states $A_PREFIX)" = "master master master" ] && [ "$(mx_ha $A_PREFIX role)" = HA_ROLE_ACTIVE ]'
mx_pair_start B "$MX_TMP/config-b.json" && pass "node B ready" || { fail "node B did not start"; finish; }
check "B is VRRP backup of the group (it hears A) and HA standby" \
  mx_wait_eval 10 '[ "$(mx_vrrp_states $B_PREFIX)" = "backup backup backup" ] && [ "$(mx_ha $B_PREFIX role)" = HA_ROLE_STANDBY ]'
check "B's first resync from A completed" mx_wait_eval 10 '[ "$(mx_ha $B_PREFIX resyncs_completed)" -ge 1 ]'
check "A is still master (B did not preempt)" [ "$(mx_vrrp_states $A_PREFIX)" = "master master master" ]
check "hosp-a reaches the archive through the virtual gateway" \
  mx_wait_eval 5 'mx_in hosp-a-lan ping -c1 -W1 $ARCHIVE_CORE >/dev/null 2>&1 || true; mx_in hosp-a-lan ip neigh show 10.0.0.1 | grep -q 00:00:5e:00:01:0a'

# --- (2) kill -9 of the active under traffic ------------------------------------------------
probe_start kill 10
# One study after the other has begun: both are in flight at the kill.
s0=$EPOCHREALTIME
study_send hosp-d-lan HOSP-D
mx_wait_eval 20 '[ "$(received HOSP-D)" -ge 2 ]'
s1=$EPOCHREALTIME
study_send hosp-a-lan HOSP-A
mx_wait_eval 20 '[ "$(received HOSP-A)" -ge 2 ]'
echo "    first images: HOSP-D after $("$MX_PY" -c "print('%.2f' % ($s1 - $s0))") s, HOSP-A after $("$MX_PY" -c "print('%.2f' % ($EPOCHREALTIME - $s1))") s"
in_flight="$(received HOSP-A)/$(received HOSP-D) of $IMAGES images"
sessions_before=$(mx_sessions "$A_PREFIX")
mx_pair_kill A
echo "    killed A (-9) with $in_flight received; reaped $(((DEAD_NS - KILL_NS) / 1000)) us after the signal"
check_that "the studies were in flight at the kill ($in_flight)" \
  '[ "${in_flight%%/*}" -lt "$IMAGES" ] && [ "$(cut -d/ -f2 <<<"${in_flight%% *}")" -lt "$IMAGES" ]'
check "B becomes master of the group and active" \
  mx_wait_eval 10 '[ "$(mx_vrrp_states $B_PREFIX)" = "master master master" ] && [ "$(mx_ha $B_PREFIX role)" = HA_ROLE_ACTIVE ]'
mx_probe_end kill "$KILL_NS" "$DEAD_NS"
r=$MX_PROBE_REPORT
echo "    probe through the kill: $r"
# The takeover is read from the probes sent once A was reaped: A forwards what it still polls
# before the signal lands (forwarded_after_kill), and the first probe sent after the kill alone
# could read near 0 ms. B's own clock of its role change bounds it from below.
became_ns=$(mx_ctl "$B_PREFIX" -o json ha-sync | mx_json - "next((int(c['timestamp_ns']) for c in reversed((d or {}).get('role_history', [])) if c['to'] == 'HA_ROLE_ACTIVE'), 0)")
became_ms=$(mx_json - "round(($became_ns - $KILL_NS) / 1e6, 1)" <<<null)
takeover_ms=$(mx_json - "d['takeover_ms']" <<<"$r")
check "takeover: the first probe that only B can have forwarded arrived ${takeover_ms} ms after the kill, B active at ${became_ms} ms (outage $(mx_json - "d['outage_ms']" <<<"$r") ms; goal 1000 ms; limit $TAKEOVER_LIMIT_MS)" \
  [ "$(mx_json - "d['takeover_ms'] is not None and $became_ms - 20 <= d['takeover_ms'] <= $TAKEOVER_LIMIT_MS" <<<"$r")" = True ]
check "the probe stream resumed for good (received after the takeover)" \
  [ "$(mx_json - "d['lost_after_kill'] < d['sent'] / 2" <<<"$r")" = True ]
mx_study_check HOSP-A
mx_study_check HOSP-D
napt_before=$(mx_json - "[s for s in d if s.startswith('hosp-d')]" <<<"$sessions_before")
check "B crossed with A's sessions: the NAPT study kept its pool port ($napt_before)" \
  [ "$(mx_sessions "$B_PREFIX" | mx_json - "len($napt_before) == 1 and [s for s in d if s.startswith('hosp-d')] == $napt_before")" = True ]

# --- (3) A returns: backup, standby, resynced ------------------------------------------------
mx_pair_start A "$MX_TMP/config-a.json" && pass "node A back" || { fail "node A did not restart"; finish; }
check "A rejoins as VRRP backup (B, lower priority, keeps the group: no preemption) and HA standby" \
  mx_wait_eval 10 '[ "$(mx_vrrp_states $A_PREFIX)" = "backup backup backup" ] && [ "$(mx_ha $A_PREFIX role)" = HA_ROLE_STANDBY ]'
check "A's bulk resync from B completed" mx_wait_eval 15 '[ "$(mx_ha $A_PREFIX resyncs_completed)" -ge 1 ]'
sleep 0.3
sa=$(mx_sessions "$A_PREFIX") sb=$(mx_sessions "$B_PREFIX")
check "A holds every session of B ($(mx_json - "len(d)" <<<"$sb") sessions, resync $(mx_ha $A_PREFIX last_resync_ms) ms)" \
  [ "$sa" = "$sb" ]
check "B is still master" [ "$(mx_vrrp_states $B_PREFIX)" = "master master master" ]

# --- (4) planned switchover back to A: 0 loss -------------------------------------------------
if mx_ctl "$A_PREFIX" ha-sync switchover --priority 255 >"$MX_TMP/bad.out" 2>&1; then rc=0; else rc=$?; fi
check "switchover --priority 255 is refused as a usage error (exit $rc: $(head -1 "$MX_TMP/bad.out"))" [ "$rc" -eq 2 ]
if mx_ctl "$A_PREFIX" ha-sync switchover --group nosuch >"$MX_TMP/bad.out" 2>&1; then rc=0; else rc=$?; fi
check_that "switchover --group nosuch fails (exit $rc: $(head -1 "$MX_TMP/bad.out")) and A stays backup" \
  '[ "$rc" -eq 1 ] && [ "$(mx_vrrp_states $A_PREFIX)" = "backup backup backup" ]'
rm -f "$MX_TMP/received-HOSP-D"/*
probe_start switch 6
study_send hosp-d-lan HOSP-D
sleep 1.5
switch_ns=$(mx_now_ns)
check "medixctl ha-sync switchover on A: active ($(mx_ctl "$A_PREFIX" ha-sync switchover --group ix 2>&1 | tee "$MX_TMP/switchover.out"))" \
  grep -q '^active after' "$MX_TMP/switchover.out"
check "A is master, B backup and, its drain over, standby" \
  mx_wait_eval 10 '[ "$(mx_vrrp_states $A_PREFIX)" = "master master master" ] && [ "$(mx_ha $A_PREFIX role)" = HA_ROLE_ACTIVE ] && [ "$(mx_vrrp_states $B_PREFIX)" = "backup backup backup" ] && [ "$(mx_ha $B_PREFIX role)" = HA_ROLE_STANDBY ]'
switch_ms=$("$MX_PY" -c "print(round(($(mx_now_ns) - $switch_ns) / 1e6))")
check "A's instances run at priority 254 with preemption now" \
  [ "$(mx_ctl "$A_PREFIX" -o json vrrp | mx_json - "sorted(set(i.get('priority', 0) for i in d['instances']))")" = "[254]" ]
mx_probe_end switch
r2=$MX_PROBE_REPORT
echo "    probe through the switchover: $r2"
check "planned switchover: 0 probes lost ($(mx_json - "'%d of %d received, max gap %s ms' % (d['received'], d['sent'], d['max_gap_ms'])" <<<"$r2"))" \
  [ "$(mx_json - "d['lost'] == 0 and d['received'] > 0" <<<"$r2")" = True ]
mx_study_check HOSP-D
check "A's log names the VRRP preemption as the cause of its role change" grep -q "standby -> active (vrrp: .*backup -> master, preempt)" "$A_LOG"
check "the two nodes' intents agree (their own addresses and VRRP priorities aside)" \
  bash -c "! grep -q \"the peer's intent differs\" \"$A_LOG\" \"$B_LOG\""

# --- (5) the active's own link down: B takes over; back up, A stays backup ---------------------
t5=$EPOCHREALTIME
# The switchover left A at priority 254 with preemption; the operator sets the startup intent back.
mx_json "$MX_TMP/config-a.json" "{k: d[k] for k in ('schema_version', 'vrrp_instances')}" >"$MX_TMP/vrrp-a.json"
out=$(mx_ctl "$A_PREFIX" apply "$MX_TMP/vrrp-a.json" 2>&1 | tail -1)
check_that "A's VRRP instances back to the startup intent, priority 200 without preemption ($out)" \
  '[ "$(vrrp_effective "$A_PREFIX")" = "master/200 master/200 master/200" ] && [ "$(mx_ha "$A_PREFIX" role)" = HA_ROLE_ACTIVE ]'
rm -f "$MX_TMP/received-HOSP-A"/*
probe_start cut 4
study_send hosp-a-lan HOSP-A
mx_wait_eval 20 '[ "$(received HOSP-A)" -ge 2 ]'
cut_in_flight="$(received HOSP-A) of $IMAGES images"
# CUT_NS: as the link is set down; DOWN_NS: once it is (A can forward no probe sent after it).
cut_ns=$(mx_now_ns)
ip -n "$(mx_ns archive)" link set eth0 down # the bridge's end of A's archive port
down_ns=$(mx_now_ns)
check "A's own archive link down: vr-archive in fault, the group backup, A standby; B master of every instance and active" \
  mx_wait_eval 5 '[ "$(mx_vrrp_states $A_PREFIX)" = "backup backup fault" ] && [ "$(mx_ha $A_PREFIX role)" = HA_ROLE_STANDBY ] && mx_pair_is "$B_PREFIX" master HA_ROLE_ACTIVE'
mx_ctl "$A_PREFIX" ha >"$MX_TMP/ha-a-cut.out" 2>&1
check "medixctl ha on A: vr-archive fault, its role change for link_down ($(grep -m1 'link_down' "$MX_TMP/ha-a-cut.out" | sed 's/^ *//'))" \
  bash -c "grep -q 'master -> backup, link_down' '$MX_TMP/ha-a-cut.out' && grep -q '^vr-archive .* fault ' '$MX_TMP/ha-a-cut.out'"
check "A's log names its own link" grep -q "VRRP vr-archive: its own link down" "$A_LOG"
mx_probe_end cut "$cut_ns" "$down_ns"
r3=$MX_PROBE_REPORT
echo "    probe through the link cut ($cut_in_flight received at the cut): $r3"
check "the probe resumed through B: the first probe sent once the link was down arrived $(mx_json - "d['takeover_ms']" <<<"$r3") ms after the cut (receiver's gap $(mx_json - "d['outage_ms']" <<<"$r3") ms, largest $(mx_json - "d['max_gap_ms']" <<<"$r3") ms; limit 1000)" \
  [ "$(mx_json - "d['takeover_ms'] is not None and d['takeover_ms'] <= 1000 and d['max_gap_ms'] <= 1000" <<<"$r3")" = True ]
mx_study_check HOSP-A
ip -n "$(mx_ns archive)" link set eth0 up
check "the link back: A's vr-archive out of fault (priority 200 again), A backup" \
  mx_wait_eval 5 '[ "$(vrrp_effective "$A_PREFIX")" = "backup/200 backup/200 backup/200" ]'
sleep 1 # well past A's master down interval (0.32 s): it hears B
check_that "A stays backup and standby (no preemption), B master and active" \
  'mx_pair_is "$A_PREFIX" backup HA_ROLE_STANDBY && mx_pair_is "$B_PREFIX" master HA_ROLE_ACTIVE'
echo "    step 5: $("$MX_PY" -c "print('%.1f' % ($EPOCHREALTIME - $t5))") s"

echo "    $(($(date +%s) - t0)) s"
if [ -n "${MX_FAILOVER_JSON:-}" ]; then
  "$MX_PY" - "$r" "$r2" "$switch_ms" "$in_flight" "$r3" >"$MX_FAILOVER_JSON" <<'PY'
import json, sys
kill, switch, cut = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[5])
print(json.dumps({"takeover_ms": kill["takeover_ms"], "kill_probe": kill, "switchover_probe": switch,
                  "switchover_ms": int(sys.argv[3]), "studies_in_flight_at_kill": sys.argv[4],
                  "link_down_probe": cut}))
PY
fi
finish
