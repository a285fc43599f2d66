#!/usr/bin/env bash
# HA state sync (docs/ha.md, issue 15): two medix-dp nodes on the same attachments, an active
# and a standby, syncing sessions over UDP on loopback (the sync link), HMAC-SHA-256.
#
#   hosp-a-lan 10.0.0.5 ── p0 ─┐  node A (active)   ┌─ p2 ── archive 192.168.1.10
#   hosp-d-lan 10.0.0.5 ── p1 ─┤  node B (standby)  │        (100.100.2.10 in the core)
#                              └── both on every veth (af_packet), the same intent
#   hosp-a: static 10.0.0.0/24 <-> 100.64.1.0/24; hosp-d: NAPT pool 100.64.9.1
#
# B's tenants are one slot past A's (B starts with a tenant more, first, and deletes it): records
# find their tenant by name (docs/ha.md, "Tenants by name"), both ways.
# Checks: sessions made on A (static and NAPT) appear on B with the same translation, in the
# same tenants (ListSessions compared), none refused for its tenant; B crosses nothing while standby; a forged datagram (another key)
# and a replayed one are rejected and counted, and inject nothing; A is killed (-9) during a
# paced TCP transfer through NAPT, B is made active and the transfer completes byte-identical
# through B with the same pool address and port; A returns as standby and a bulk resync gives
# it every session of B. Operators' parts: the intents compared (a tenant added on B only is a
# mismatch both report, in ha-sync, `medixctl ha` and the metrics; deleted, it clears); the
# Prometheus endpoint's HA metrics against GetHaSync (role, rejected by reason, sessions
# synced, failovers); the takeover kept in the role's history with its cause and reason.
#
# Usage: test/netns/hasync.sh (root; medix-dp from build/, or MEDIX_DP=path; MEDIXCTL=path)
# Prints PASS/FAIL lines and "hasync: N passed, M failed".
set -uo pipefail
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"

TOOL=$MX_LIB_DIR/hasync_tool.py
PORT=5001 ARCHIVE=192.168.1.10 ARCHIVE_CORE=100.100.2.10 POOL=$MX_PAIR_POOL

check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }

mx_init
mx_need_binary
[ -x "$MX_CTL" ] || mx_die "medixctl not found at $MX_CTL (run scripts/build)"

mx_attach hosp-a-lan hosp-a 10.0.0.5/24 10.0.0.1/24
mx_attach hosp-d-lan hosp-d 10.0.0.5/24 10.0.0.1/24
mx_attach archive archive $ARCHIVE/24 192.168.1.1/24
config=$MX_TMP/config.json
mx_write_config "$config"
mx_pair_intent "$config" $PORT $PORT
# B gives its tenants other slots than A's (docs/ha.md, "Tenants by name"): it starts with a
# tenant first in its file (and by name) that it deletes before the intents are compared, so that
# both end with the same intent, every tenant of B's one slot past A's.
config_b=$MX_TMP/config-b.json
"$MX_PY" -c 'import json, sys
c = json.load(open(sys.argv[1]))
c["tenants"].insert(0, {"name": "0-b-first"})
json.dump(c, open(sys.argv[2], "w"), indent=1)' "$config" "$config_b"
head -c 48 /dev/urandom | base64 >"$MX_TMP/sync.key"
head -c 48 /dev/urandom | base64 >"$MX_TMP/wrong.key"
PA=$((20000 + RANDOM % 20000)) PB=$((PA + 1)) MA=$((PA + 2)) MB=$((PA + 3))

# Node A is lib.sh's own medix-dp; node B gets its own prefix, log and pid.
A_PREFIX=$MX_PREFIX B_PREFIX=$MX_PREFIX-b A_LOG=$MX_DP_LOG B_LOG=$MX_TMP/medix-dp-b.log B_PID=
sync_args() { echo "--ha-sync-local 127.0.0.1:$1 --ha-sync-peer 127.0.0.1:$2 --ha-sync-key-file $MX_TMP/sync.key"; }
# start_node A|B ROLE: the node on every attachment; its pid stays in A_PID or B_PID.
start_node() {
  local node=$1 role=$2 rc=0
  local save_prefix=$MX_PREFIX save_log=$MX_DP_LOG save_pid=$MX_DP_PID
  if [ "$node" = A ]; then MX_PREFIX=$A_PREFIX MX_DP_LOG=$A_LOG; else MX_PREFIX=$B_PREFIX MX_DP_LOG=$B_LOG; fi
  # shellcheck disable=SC2046
  if [ "$node" = A ]; then mx_start_dp "$config" --ha-role "$role" $(sync_args $PA $PB) --metrics-listen 127.0.0.1:$MA || rc=1
  else mx_start_dp "$config_b" --ha-role "$role" $(sync_args $PB $PA) --metrics-listen 127.0.0.1:$MB || rc=1; fi
  if [ "$node" = A ]; then A_PID=$MX_DP_PID; else B_PID=$MX_DP_PID; MX_PIDS+=("$B_PID"); fi
  MX_PREFIX=$save_prefix MX_DP_LOG=$save_log
  [ "$node" = A ] || MX_DP_PID=$save_pid
  return $rc
}
finish() {
  if [ "$failed" -gt 0 ]; then
    for n in A B; do
      p=${n}_PREFIX
      echo "--- node $n ha-sync:"; mx_ctl "${!p}" ha-sync 2>&1 | sed 's/^/  | /'
    done
    echo "--- node A log:"; tail -n 15 "$A_LOG" | sed 's/^/  | /'
    echo "--- node B log:"; tail -n 15 "$B_LOG" | sed 's/^/  | /'
  fi
  [ -n "$B_PID" ] && kill -TERM "$B_PID" 2>/dev/null && wait "$B_PID" 2>/dev/null
  rm -rf "/var/run/dpdk/$B_PREFIX" "/var/run/dpdk/$A_PREFIX"
  echo "hasync: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

t0=$(date +%s)
start_node A active && pass "node A (active) ready" || { fail "node A did not start"; finish; }
start_node B standby && pass "node B (standby) ready" || { fail "node B did not start"; finish; }
mx_ctl "$B_PREFIX" delete tenant 0-b-first >/dev/null
check "A sees B as its standby peer" mx_wait_eval 10 '[ "$(mx_ha $A_PREFIX peer_role)" = HA_ROLE_STANDBY ]'
check "B sees A as its active peer" mx_wait_eval 10 '[ "$(mx_ha $B_PREFIX peer_role)" = HA_ROLE_ACTIVE ]'
check "B's first resync completed" mx_wait_eval 10 '[ "$(mx_ha $B_PREFIX resyncs_completed)" -ge 1 ]'

# The intents compared: the same config, the same digest on both, no mismatch.
check "A and B hold the same intent digest ($(mx_ha $A_PREFIX config_digest))" mx_wait_eval 5 \
  '[ -n "$(mx_ha $A_PREFIX peer_config_digest)" ] && [ "$(mx_ha $A_PREFIX config_digest)" = "$(mx_ha $B_PREFIX config_digest)" ] && [ "$(mx_ha $A_PREFIX peer_config_digest)" = "$(mx_ha $B_PREFIX config_digest)" ]'
check "no config mismatch reported" [ "$(mx_ha $B_PREFIX config_mismatch)" = False ]
m0=$(mx_ha $B_PREFIX config_mismatches)  # B's start, with its first tenant, may have counted one
# B's intent changed alone: both report the mismatch (GetHaSync, medixctl ha, the metric).
mx_ctl "$B_PREFIX" set tenant ha-extra description "on B only" >/dev/null
check "B's extra tenant: B reports a config mismatch" mx_wait_eval 5 '[ "$(mx_ha $B_PREFIX config_mismatch)" = True ]'
check "... and so does A" mx_wait_eval 5 '[ "$(mx_ha $A_PREFIX config_mismatch)" = True ]'
check "... medixctl ha says MISMATCH" eval 'mx_ctl $B_PREFIX ha | grep -q "^config *MISMATCH"'
check "... B's metric medix_ha_config_mismatch is 1" [ "$(mx_metric $MB medix_ha_config_mismatch)" = 1 ]
mx_ctl "$B_PREFIX" delete tenant ha-extra >/dev/null
check "the tenant deleted: the mismatch clears on both" mx_wait_eval 5 \
  '[ "$(mx_ha $B_PREFIX config_mismatch)" = False ] && [ "$(mx_ha $A_PREFIX config_mismatch)" = False ]'
cleared() {
  [ "$(mx_ha $B_PREFIX config_mismatches)" = $((m0 + 1)) ] && [ "$(mx_metric $MB medix_ha_config_mismatch)" = 0 ] &&
    [ "$(mx_metric $MB medix_ha_config_mismatches_total)" = $((m0 + 1)) ]
}
check "... counted once (config_mismatches $((m0 + 1)), the metrics 0 and $((m0 + 1)))" cleared

mx_serve archive $PORT
mx_wait_eval 5 '[ "$(mx_in archive ss -Hltn "sport = :$PORT" | wc -l)" -ge 1 ]'
# Static: hosp-a's flows; NAPT: hosp-d's. A paced transfer keeps hosp-d's session busy.
mx_send hosp-a-lan $ARCHIVE_CORE $PORT a1 1
a1=$MX_LAST_PID
mx_send hosp-a-lan $ARCHIVE_CORE $PORT a2 1
a2=$MX_LAST_PID
mx_send hosp-d-lan $ARCHIVE_CORE $PORT d-long 6 4
d_long=$MX_LAST_PID
wait "$a1" "$a2"
check "static transfers through A complete" [ "$(mx_json "$MX_TMP/send-hosp-a-lan-a1.json" "d['sha256'] == d['server_sha256']")" = True ]
check "B has installed sessions" mx_wait_eval 5 '[ "$(mx_ha $B_PREFIX installed)" -ge 3 ]'
sleep 0.5
sa=$(mx_sessions "$A_PREFIX") sb=$(mx_sessions "$B_PREFIX")
echo "    A: $sa"
if [ "$sa" = "$sb" ] && [ "$(mx_json - "len(d)" <<<"$sa")" -ge 3 ]; then
  pass "B's sessions are A's: the same flows with the same translations (static and NAPT)"
else
  fail "B's sessions differ from A's: B has $sb"
fi
napt=$(mx_json - "[s for s in d if s.startswith('hosp-d')][0].split(' | ')[1].split('>')[0].split()[1]" <<<"$sa")
check "the NAPT session's core address is the pool's ($napt)" [ "${napt%:*}" = "$POOL" ]
check "B refused no record for its tenants (tenant_unknown 0)" [ "$(mx_ha $B_PREFIX tenant_unknown)" = 0 ]
check "B's standby crossed nothing it received (drops ha_standby counted)" \
  [ "$(MX_PREFIX=$B_PREFIX mx_tele /medix/drops ha_standby 2>/dev/null || echo 0)" -gt 0 ]
check "sync lag measured on B" [ "$(mx_ha $B_PREFIX lag_samples)" -gt 0 ]
echo "    B lag: last $(mx_ha $B_PREFIX lag_ms_last) ms, p99 $(mx_ha $B_PREFIX lag_ms_p99) ms"

# Forged and replayed datagrams: rejected, counted, no session injected.
bad0=$(mx_ha $B_PREFIX rejected_bad_mac) rep0=$(mx_ha $B_PREFIX rejected_replay)
"$MX_PY" "$TOOL" forge $PB "$MX_TMP/wrong.key" >/dev/null
"$MX_PY" "$TOOL" replay $PB >"$MX_TMP/replay.out" 2>&1 &
replayer=$!
sleep 0.3
mx_send hosp-a-lan $ARCHIVE_CORE $PORT a3 0.1  # a new session: a records datagram to replay
wait "$MX_LAST_PID" "$replayer"
check "a forged datagram (another key) is rejected as bad_mac" mx_wait_eval 3 '[ "$(mx_ha $B_PREFIX rejected_bad_mac)" -gt "$bad0" ]'
check "a replayed datagram is rejected as replay ($(cat "$MX_TMP/replay.out"))" mx_wait_eval 3 '[ "$(mx_ha $B_PREFIX rejected_replay)" -gt "$rep0" ]'
check "the forged session is not on B" [ "$(mx_ctl $B_PREFIX -o json sessions --address 10.9.9.9 | mx_json - "len((d or {}).get('sessions', []))")" = 0 ]
mx_ctl "$B_PREFIX" ha-sync | sed 's/^/    B | /'
# The same counts on the Prometheus endpoint.
scraped_rejects() {
  [ "$(mx_metric $MB 'medix_ha_role{role="standby"}')" = 1 ] &&
    [ "$(mx_metric $MB 'medix_ha_sync_rejected_total{reason="bad_mac"}')" = "$(mx_ha $B_PREFIX rejected_bad_mac)" ] &&
    [ "$(mx_metric $MB 'medix_ha_sync_rejected_total{reason="replay"}')" = "$(mx_ha $B_PREFIX rejected_replay)" ] &&
    [ "$(mx_ha $B_PREFIX rejected_replay)" -gt 0 ]
}
check "B's metrics: role standby, rejected bad_mac and replay as GetHaSync says" scraped_rejects
installed=$(mx_metric $MB 'medix_ha_sync_sessions_synced_total{action="installed"}')
scraped_sync() {
  [ "${installed:-0}" -ge 3 ] && [ "$(mx_metric $MB medix_ha_sync_peer_up)" = 1 ] &&
    [ -n "$(mx_metric $MB 'medix_ha_sync_lag_seconds{stat="p99"}')" ]
}
check "B's metrics: sessions installed (${installed:-none}), peer up, a lag p99" scraped_sync
check "B's metrics: no failover yet" [ "$(mx_metric $MB medix_ha_failovers_total)" = 0 ]

# Takeover: A dies under traffic, B becomes active; the transfer carries on through B.
kill -KILL "$A_PID"
wait "$A_PID" 2>/dev/null
mx_ctl "$B_PREFIX" ha-sync role active --reason "test: A killed" >/dev/null
check "B is active" [ "$(mx_ha $B_PREFIX role)" = HA_ROLE_ACTIVE ]
check "B's role history: standby -> active, manual, with the reason given" [ "$(mx_ctl $B_PREFIX -o json ha-sync | mx_json - \
  "(lambda c: c['from'] == 'HA_ROLE_STANDBY' and c['to'] == 'HA_ROLE_ACTIVE' and c['cause'] == 'manual' and 'test: A killed' in c['detail'])(d['role_history'][-1])")" = True ]
failed_over() {
  [ "$(mx_ha $B_PREFIX failovers)" = 1 ] && [ "$(mx_metric $MB medix_ha_failovers_total)" = 1 ] &&
    [ "$(mx_metric $MB 'medix_ha_role{role="active"}')" = 1 ]
}
check "B counts one failover (GetHaSync and the metric), role active" failed_over
mx_ctl "$B_PREFIX" ha | sed -n '1,/^$/p' | sed 's/^/    B | /'
wait "$d_long"
r=$MX_TMP/send-hosp-d-lan-d-long.json
check "the NAPT transfer survived the takeover byte-identical ($(cat "$r"))" \
  [ "$(mx_json "$r" "d is not None and d.get('sha256') == d.get('server_sha256') and d.get('bytes', 0) > 6000000")" = True ]
peer=$(mx_json "$MX_TMP/serve-archive.log" "[l['peer'] for l in lines if l.get('tag') == 'd-long'][0]")
check "the archive saw one connection from the same pool address and port ($peer)" [ "$peer" = "$napt" ]
check "B crossed packets as active (sessions of A used: nothing made anew for d-long)" \
  [ "$(mx_sessions "$B_PREFIX" | mx_json - "sum(1 for s in d if s.startswith('hosp-d'))")" = 1 ]

# A returns as standby: a bulk resync gives it every session B has.
start_node A standby && pass "node A back as standby" || { fail "node A did not restart"; finish; }
check "A's resync from B completed" mx_wait_eval 15 '[ "$(mx_ha $A_PREFIX resyncs_completed)" -ge 1 ]'
sleep 0.3
sa=$(mx_sessions "$A_PREFIX") sb=$(mx_sessions "$B_PREFIX")
if [ "$sa" = "$sb" ] && [ "$(mx_json - "len(d)" <<<"$sb")" -ge 3 ]; then
  pass "after the resync A holds every session of B ($(mx_json - "len(d)" <<<"$sb"), in $(mx_ha $A_PREFIX last_resync_ms) ms)"
else
  fail "A's sessions after the resync differ: A $sa, B $sb"
fi
# The timers came with them: each session's idle time on A is B's (not restarted at the install),
# and the static sessions, idle since their transfers, show it (several seconds).
timers() { mx_ctl "$1" -o json sessions | mx_json - "{'%s %s>%s' % (s.get('tenant'), s.get('source'), s.get('destination')): int(s.get('idle_ms', 0)) for s in (d or {}).get('sessions', [])}"; }
ta=$(timers "$A_PREFIX") tb=$(timers "$B_PREFIX")
check "A's session timers are B's: idle times within 1.5 s of each other, the longest on B $(mx_json - "max(d.values()) if d else 0" <<<"$tb") ms" \
  [ "$("$MX_PY" -c 'import json, sys; a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2]); print(bool(b) and a.keys() == b.keys() and max(b.values()) >= 3000 and all(abs(a[k] - b[k]) <= 1500 for k in b))' "$ta" "$tb")" = True ]
kill -TERM "$A_PID"; wait "$A_PID" 2>/dev/null
echo "    $(($(date +%s) - t0)) s"
finish
