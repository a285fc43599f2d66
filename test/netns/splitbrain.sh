#!/usr/bin/env bash
# The redundant pair's failure cases of docs/ha.md (issue 15) that are not a crash: the sync link
# down while both nodes live, a true split brain, both nodes starting at once. The pair of
# netns-failover (lib.sh's mx_pair_*: two medix-dp on Linux bridges, VRRP at 30 cs here driving
# the HA role), with the sync link on a veth of its own in the root namespace (10.254.R.1 <-> .2):
# cut by taking both addresses off it (the kernel then refuses to send from them; a blackhole
# route keeps anything else on the host), restored by putting them back. The VRRP segment
# between the nodes is cut by isolating their two ports on each bridge (`bridge link set ...
# isolated on`): each node still reaches the segment's host, not the other node.
#
# (1) Sync link cut, VRRP intact: A stays master and active, B backup and standby (no role change
#     on either); a 1 kHz probe through A goes on (loss counted, at most 5 %); both report the
#     peer not heard (GetHaSync, `medixctl ha`, medix_ha_sync_peer_up 0); sessions made on A
#     meanwhile are not on B; the link back: B's bulk resync brings them, roles unchanged.
#     ESP (the fence, docs/ha.md): the archive's tenant has a tunnel t-fence with a static
#     outbound SA, the nodes a margin of 2000 (--ha-sync-sa-margin). With the link up 2500
#     packets cross it and none is fenced; cut, A sends on it at most the margin past what B
#     last acknowledged and drops the rest as ha_sa_fenced; back, B's acks move the fence and
#     the SA goes on.
# (2) True split brain (the sync link and the segments cut): B becomes master and active too,
#     A changes nothing; each crosses its own flows (a NAPT transfer through B, then one
#     through A, the hosts' switch pointed at each in turn) and nothing of one is installed on
#     the other; both send on t-fence (B from its takeover's start, A up to its fence). Healed: B
#     yields to A's priority, is standby, drops its own sessions and resyncs: it holds A's
#     sessions exactly (the flow A made during the split included), A holds none of B's; B
#     withholds its acks of A's rounds (it sent on the SA past A's value) and tells A its number:
#     A's SA goes on above it, B acks again, and A sends on.
# (2b) A node fresh from its start (docs/ha.md, "A restart that keeps the bound"): B, a standby
#     whose acks fence A (its peer file, DIR/ha-peer, names t-fence), is killed and restarted with
#     the sync link cut (it hears no round of A's), A sends to its fence, A is killed: B's file
#     proves A bounded (B was not active since), so its takeover starts t-fence above A's fence
#     and sends on it, nothing fenced, no SA event. Across (1), (2) and (2b), every ESP packet
#     of t-fence on the archive's segment (captured) has a sequence number of its own: none was
#     sent twice by either node.
# (3) Both nodes started at once with equal priorities: within 10 s exactly one is master and
#     active and the other backup and standby, whose resync completes; it stays so, and a flow
#     through the winner reaches the other's table. Then the tie made sure of: both started
#     while they cannot hear each other (both master and active), the segments joined: B, the
#     higher address (RFC 5798 6.4.3), keeps the group, A steps down and resyncs.
#
# Usage: test/netns/splitbrain.sh (root; binaries from build/, or MEDIX_DP=path MEDIXCTL=path).
# MX_SPLITBRAIN_CASES="1 2 3": the cases to run (1 and 2 start the pair, 3 restarts it).
set -uo pipefail
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"

PROBE=$MX_LIB_DIR/probe.py
ARCHIVE_CORE=100.100.2.10 HOSP_A_CORE=100.64.1.5
A_PORT=$MX_PAIR_TCP D_PORT=$((MX_PAIR_TCP + 1))
# The virtual MACs of the three segments' VRIDs (10-12).
declare -A VMAC=([hosp-a-lan]=00:00:5e:00:01:0a [hosp-d-lan]=00:00:5e:00:01:0b [archive]=00:00:5e:00:01:0c)

FENCE_MARGIN=2000 FENCE_PORT=9999
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
check_that() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }

mx_init
mx_need_binary
# Adverts every 30 cs (master down 1.1 s at priority 100): a node's worker starved of the CPU
# for 0.4 s on a loaded 2-core machine made B take over at 10 cs and count two more role
# changes than the case's own (seen once in ten runs); the takeover time is netns-failover's.
MX_PAIR_ADVERT_CS=30
mx_pair_init
SYNC_NET=10.254.$((0x${MX_ID:0:2})) SYNC_IF=mx${MX_ID}s
MX_PAIR_SYNC_A=$SYNC_NET.1 MX_PAIR_SYNC_B=$SYNC_NET.2
ip link add "$SYNC_IF" type veth peer name "mx${MX_ID}t" || mx_die "could not make the sync link"
MX_LINKS+=("$SYNC_IF")
ip link set "$SYNC_IF" up
ip route add blackhole "$SYNC_NET.0/30" || mx_die "could not add the sync link's blackhole route"
cleanup_sb() {
  local rc=$?
  ip route del blackhole "$SYNC_NET.0/30" 2>/dev/null
  (exit $rc)
  mx_cleanup
}
trap cleanup_sb EXIT
sync_link() { ip addr "$1" "$SYNC_NET.1/32" dev "$SYNC_IF" && ip addr "$1" "$SYNC_NET.2/32" dev "$SYNC_IF"; }
sync_link add || mx_die "could not address the sync link"
# The fence's tunnel (case 1): the archive's 172.16.0.0/24 through t-fence from the virtual
# address to 192.168.1.77 (a static neighbour: its ESP goes out on the archive's segment).
"$MX_PY" - "$MX_TMP/config-a.json" "$MX_TMP/config-b.json" <<'PY' || mx_die "could not add the fence's tunnel"
import json, sys
for path in sys.argv[1:]:
    c = json.load(open(path))
    c["tunnels"] = [{"name": "t-fence", "tenant": "archive", "underlay_tenant": "archive",
                     "local_address": "192.168.1.1", "remote_address": "192.168.1.77"}]
    c["routes"].append({"tenant": "archive", "prefix": "172.16.0.0/24", "via": {"interface": "t-fence"}})
    c.setdefault("neighbours", []).append({"interface": "archive", "address": "192.168.1.77", "mac": "02:00:00:00:00:77"})
    c["sas"] = [{"spi": 8193, "tunnel": "t-fence", "inbound": False, "cipher": "AES_CBC_128",
                 "cipher_key": "AAECAwQFBgcICQoLDA0ODw==", "integrity": "HMAC_SHA256_128",
                 "integrity_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}]
    json.dump(c, open(path, "w"), indent=1)
PY
# segments on|off: the two nodes' ports isolated from each other on every bridge.
segments() {
  local name
  for name in "${MX_HOSTS[@]}"; do
    mx_in "$name" bridge link set dev eth0 isolated "$1" && mx_in "$name" bridge link set dev ethb isolated "$1" || return 1
  done
}
# steer IFNAME eth0|ethb|none: the segment's switch sends the virtual MAC to node A's port (eth0),
# B's (ethb), or where it last saw it (none: learning again).
steer() {
  mx_in "$1" bridge fdb del "${VMAC[$1]}" dev eth0 master 2>/dev/null
  mx_in "$1" bridge fdb del "${VMAC[$1]}" dev ethb master 2>/dev/null
  [ "$2" = none ] || mx_in "$1" bridge fdb replace "${VMAC[$1]}" dev "$2" master static sticky
}
MA=$((MX_PAIR_PORT_A + 2)) MB=$((MX_PAIR_PORT_A + 3))
roles() { echo "$(mx_vrrp_states "$1") $(mx_ha "$1" role)"; }
AM="master master master HA_ROLE_ACTIVE" BS="backup backup backup HA_ROLE_STANDBY"
# transfer IFNAME PORT TAG: a short TCP transfer to the archive; its pool address and port (as
# the archive saw them) in PEER, pass/fail on its bytes.
transfer() {
  mx_send "$1" $ARCHIVE_CORE "$2" "$3" 0.2
  wait "$MX_LAST_PID"
  PEER=$(mx_json "$MX_TMP/serve-archive.log" "([l['peer'] for l in lines if l.get('tag') == '$3'] + [''])[0]")
  mx_json "$MX_TMP/send-$1-$3.json" "d is not None and d.get('sha256') == d.get('server_sha256')" | grep -q True
}
# has PREFIX PEER: the node has a session whose translated source is PEER.
has() { mx_sessions "$1" | mx_json - "any(' $2>' in s for s in d)" | grep -q True; }
# made PREFIX BEFORE PEER: the session the node made since BEFORE (its sessions then) whose
# translated source is PEER (a pool port may be another flow's on the other node).
made() { mx_sessions "$1" | mx_json - "[s for s in d if s not in $2 and ' $3>' in s]"; }
# holds PREFIX SESSIONS: the node holds any of these sessions.
holds() { mx_sessions "$1" | mx_json - "any(s in d for s in $2)" | grep -q True; }
# split_flow NODE OTHER TAG: the hosts' switch pointed at NODE, a NAPT transfer crosses it; NODE
# made its session (FLOW), OTHER has none of it.
split_flow() {
  local node=$1 other=$2 tag=$3 port=ethb before
  local p=${1}_PREFIX o=${2}_PREFIX
  [ "$node" = A ] && port=eth0
  steer hosp-d-lan $port && steer archive $port
  before=$(mx_sessions "${!p}")
  check "the hosts' switch pointed at $node: a NAPT transfer crosses $node" transfer hosp-d-lan $D_PORT "$tag"
  FLOW=$(made "${!p}" "$before" "$PEER")
  check_that "$node made its session ($FLOW); $other has none of it" \
    '[ "$(mx_json - "len(d)" <<<"$FLOW")" = 1 ] && ! holds ${!o} "$FLOW"'
}
finish() { mx_pair_finish netns-splitbrain; }
# esp N: N datagrams at 2 kHz from the archive into t-fence (A, the master, encrypts them), in
# the background (ESP_PID): they overlap the case's own waits.
esp() {
  mx_bg archive "$MX_PY" "$PROBE" send 172.16.0.5 $FENCE_PORT 2000 "$("$MX_PY" -c "print($1 / 2000)")" "$MX_TMP/esp.sent"
  ESP_PID=$MX_LAST_PID
}
esp_tx() { mx_metric $MA 'medix_tunnel_tx_packets_total{tunnel="t-fence"}'; }
fenced() { mx_metric $MA 'medix_drops_total{reason="ha_sa_fenced"}'; }
at_fence() { mx_metric $MA 'medix_ha_sync_sas_fenced{state="at_fence"}'; }

# The ESP of t-fence on the archive's segment (flooded to the bridge: nobody has its MAC), from
# the start to (2b)'s end; esp_seqs prints the sequence numbers of SPI 8193, one a line.
esp_seqs() {
  "$MX_PY" - "$1" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
little = data[:4] == b"\xd4\xc3\xb2\xa1"
at = 24
while at + 16 <= len(data):
    n = struct.unpack("<I" if little else ">I", data[at + 8:at + 12])[0]
    frame = data[at + 16:at + 16 + n]
    at += 16 + n
    if len(frame) < 14 + 28 or frame[12:14] != b"\x08\x00" or frame[14 + 9] != 50:
        continue
    esp = 14 + (frame[14] & 15) * 4
    spi, seq = struct.unpack(">II", frame[esp:esp + 8])
    if spi == 8193:
        print(seq)
PY
}
# Outbound sequence numbers on disk, a block of 4000 a write (2 s of the tests' ESP at 2 kHz:
# writes never hold a packet back, so the fence's exact counts stand).
SEQ_ARGS_A=(--state-dir "$MX_TMP/state-a" --sa-seq-block 4000) SEQ_ARGS_B=(--state-dir "$MX_TMP/state-b" --sa-seq-block 4000)
mkdir -p "$MX_TMP/state-a" "$MX_TMP/state-b"
t0=$EPOCHREALTIME
mx_pair_start A "$MX_TMP/config-a.json" --metrics-listen 127.0.0.1:$MA --ha-sync-sa-margin $FENCE_MARGIN "${SEQ_ARGS_A[@]}" &&
  pass "node A ready" || { fail "node A did not start"; finish; }
check "A becomes master of the group and active" mx_wait_eval 10 '[ "$(roles $A_PREFIX)" = "$AM" ]'
mx_pair_start B "$MX_TMP/config-b.json" --metrics-listen 127.0.0.1:$MB --ha-sync-sa-margin $FENCE_MARGIN "${SEQ_ARGS_B[@]}" &&
  pass "node B ready" || { fail "node B did not start"; finish; }
mx_bg archive tcpdump -i br0 -U -s 96 -w "$MX_TMP/esp.pcap" esp 2>/dev/null
CAPTURE_PID=$MX_LAST_PID
check "B is backup and standby, its first resync done" \
  mx_wait_eval 10 '[ "$(roles $B_PREFIX)" = "$BS" ] && [ "$(mx_ha $B_PREFIX resyncs_completed)" -ge 1 ]'
mx_serve archive $A_PORT
mx_serve archive $D_PORT
mx_wait_eval 5 '[ "$(mx_in archive ss -Hltn | wc -l)" -ge 2 ]'
check "a NAPT transfer through A before anything is cut" transfer hosp-d-lan $D_PORT x0
check "... its session reaches B" mx_wait_eval 5 'has $B_PREFIX $PEER'

# --- (1) the sync link cut while both live and VRRP is intact --------------------------------
CASES=${MX_SPLITBRAIN_CASES:-1 2 3}
rc_a=$(mx_ha $A_PREFIX role_changes) rc_b=$(mx_ha $B_PREFIX role_changes)
if [[ $CASES == *1* ]]; then
echo "== (1) sync link down, VRRP intact"
resyncs=$(mx_ha $B_PREFIX resyncs_completed)
check "A's outbound SA is fenced once B acknowledges its rounds" \
  mx_wait_eval 5 '[ "$(mx_ha $A_PREFIX sas_fenced)" = 1 ] && [ "$(mx_ha $B_PREFIX sa_acks_sent)" -ge 1 ]'
tx0=$(esp_tx)
esp 2500
mx_bg hosp-a-lan "$MX_PY" "$PROBE" recv 10.0.0.5 $MX_PAIR_UDP "$MX_TMP/probe.recv"
probe_recv=$MX_LAST_PID
sleep 0.3
mx_bg archive "$MX_PY" "$PROBE" send $HOSP_A_CORE $MX_PAIR_UDP 1000 6 "$MX_TMP/probe.sent"
probe_send=$MX_LAST_PID
wait "$ESP_PID"
sleep 0.3  # B acks the rounds that carry the SA's last value
tx1=$(esp_tx)
check_that "link up: $((tx1 - tx0)) packets into t-fence, more than the margin ($FENCE_MARGIN), none fenced" \
  '[ $((tx1 - tx0)) -gt $FENCE_MARGIN ] && [ "$(fenced)" = 0 ] && [ "$(mx_ha $A_PREFIX sas_at_fence)" = 0 ]'
sync_link del
# The count once the link is gone: acks sent before the cut, still on their way, are not "during".
sleep 0.3
acks=$(mx_ha $A_PREFIX sa_acks_received)
esp 2500
check "both report the peer not heard for 3 s (GetHaSync)" \
  mx_wait_eval 10 '[ "$(mx_ha $B_PREFIX peer_last_heard_ms)" -ge 3000 ] && [ "$(mx_ha $A_PREFIX peer_last_heard_ms)" -ge 3000 ]'
check "B's medixctl ha says the peer is down ($(mx_ctl $B_PREFIX ha | grep '^peer  '))" \
  eval 'mx_ctl $B_PREFIX ha | grep -q "^peer .*DOWN"'
check "medix_ha_sync_peer_up is 0 on both" [ "$(mx_metric $MB medix_ha_sync_peer_up)/$(mx_metric $MA medix_ha_sync_peer_up)" = 0/0 ]
wait "$ESP_PID"
sleep 0.2
tx2=$(esp_tx) dropped=$(fenced)
echo "    ESP during the cut: $((tx2 - tx1)) sent, $dropped fenced"
# B acked A's last round (the SA at tx1: nothing crossed since): A may send up to tx1 + margin - 1.
check_that "cut: A sent exactly margin - 1 more on the SA ($((tx2 - tx1))), the rest dropped as ha_sa_fenced ($dropped)" \
  '[ $((tx2 - tx1)) = $((FENCE_MARGIN - 1)) ] && [ "$dropped" -gt 0 ] && [ "$(mx_ha $A_PREFIX sas_at_fence)/$(at_fence)" = 1/1 ]'
check "... told the control side once (SA event, logged)" [ "$(grep -c 'HA fence reached' "$A_LOG")" = 1 ]
check "... and no ack came during the cut" [ "$(mx_ha $A_PREFIX sa_acks_received)" -le $((acks + 1)) ]
check "a NAPT transfer through A during the cut" transfer hosp-d-lan $D_PORT c1
c1=$PEER
check "a static transfer through A during the cut" transfer hosp-a-lan $A_PORT c2
check_that "the cut's sessions are on A, not on B (no sync)" 'has $A_PREFIX $c1 && ! has $B_PREFIX $c1'
check_that "no role changed: A master and active, B backup and standby" \
  '[ "$(roles $A_PREFIX)" = "$AM" ] && [ "$(roles $B_PREFIX)" = "$BS" ] && [ "$(mx_ha $A_PREFIX role_changes)/$(mx_ha $B_PREFIX role_changes)" = "$rc_a/$rc_b" ]'
sync_link add
check "the link back: B's bulk resync completes" mx_wait_eval 15 '[ "$(mx_ha $B_PREFIX resyncs_completed)" -gt "$resyncs" ]'
sleep 0.3
sa=$(mx_sessions "$A_PREFIX") sb=$(mx_sessions "$B_PREFIX")
check "B holds A's sessions again, the cut's included ($(mx_json - "len(d)" <<<"$sa") sessions)" [ "$sa" = "$sb" ]
check "medix_ha_sync_peer_up is 1 again on B" mx_wait_eval 3 '[ "$(mx_metric $MB medix_ha_sync_peer_up)" = 1 ]'
check "B's acks move A's fence past the SA again" mx_wait_eval 5 '[ "$(mx_ha $A_PREFIX sas_at_fence)/$(at_fence)" = 0/0 ]'
tx3=$(esp_tx)
esp 500
wait "$ESP_PID"
sleep 0.2
tx4=$(esp_tx)
check_that "the SA goes on: $((tx4 - tx3)) of 500 sent, no more fenced" '[ $((tx4 - tx3)) -ge 450 ] && [ "$(fenced)" = "$dropped" ]'
wait "$probe_send"
sleep 0.3
kill -TERM "$probe_recv"
wait "$probe_recv"
r=$("$MX_PY" "$PROBE" report "$MX_TMP/probe.recv" "$MX_TMP/probe.sent")
echo "    probe through A during the cut: $r"
check "traffic through A went on: $(mx_json - "'%d of %d probes lost' % (d['lost'], d['sent'])" <<<"$r") (at most 5 %)" \
  [ "$(mx_json - "d['sent'] > 0 and d['lost'] * 20 <= d['sent']" <<<"$r")" = True ]
check_that "still no role change on either node" \
  '[ "$(roles $A_PREFIX)" = "$AM" ] && [ "$(roles $B_PREFIX)" = "$BS" ] && [ "$(mx_ha $A_PREFIX role_changes)/$(mx_ha $B_PREFIX role_changes)" = "$rc_a/$rc_b" ]'
fi

# --- (2) true split brain: the sync link and the segment between the nodes cut ----------------
if [[ $CASES == *2* ]]; then
echo "== (2) split brain"
installed_a=$(mx_ha $A_PREFIX installed) installed_b=$(mx_ha $B_PREFIX installed) resyncs=$(mx_ha $B_PREFIX resyncs_completed)
sync_link del
segments on || fail "could not isolate the nodes' bridge ports"
split=$EPOCHREALTIME
check "B hears no master: it becomes master and active too" mx_wait_eval 10 '[ "$(roles $B_PREFIX)" = "$AM" ]'
echo "    B active $("$MX_PY" -c "print('%.2f' % ($EPOCHREALTIME - $split))") s after the cut"
check_that "A changed nothing (master and active, no role change)" \
  '[ "$(roles $A_PREFIX)" = "$AM" ] && [ "$(mx_ha $A_PREFIX role_changes)" = "$rc_a" ]'
split_flow B A y
y=$PEER y_session=$FLOW
# A flow through B's static NAT too (a translation of its own: it clashes with nothing on A).
steer hosp-a-lan ethb
before=$(mx_sessions "$B_PREFIX")
check "a static transfer crosses B in the split" transfer hosp-a-lan $A_PORT s
s_session=$(made "$B_PREFIX" "$before" "$PEER")
# The fence's heal case: B, active in the split, sends on t-fence (the archive's switch points at
# B); standby again, it must not ack A's rounds (A's fence would move into the numbers B used).
b_esp_tx() { mx_metric $MB 'medix_tunnel_tx_packets_total{tunnel="t-fence"}'; }
b_tx0=$(b_esp_tx)
# shellcheck disable=SC2034  # read by check_that and mx_wait_eval
acks_a=$(mx_ha $A_PREFIX sa_acks_received) withheld=$(mx_ha $B_PREFIX sa_acks_withheld)
esp 200
wait "$ESP_PID"
b_tx=$(($(b_esp_tx) - ${b_tx0:-0}))
check_that "B, active in the split, sends on t-fence too ($b_tx of 200)" '[ "$b_tx" -ge 150 ]'
split_flow A B z
z=$PEER z_session=$FLOW
# A, still active, sends on t-fence too (the archive's switch points at A now): up to its fence.
a_tx0=$(esp_tx)
esp 200
wait "$ESP_PID"
a_tx=$(($(esp_tx) - a_tx0))
check_that "A sends on t-fence in the split too ($a_tx of 200)" '[ "$a_tx" -ge 150 ]' 
echo "    pool ports: B gave y $y, A gave z $z$([ "$y" = "$z" ] && echo ' (the same port: two flows, one on each node)')"
check_that "nothing installed on either from the other during the split" \
  '[ "$(mx_ha $A_PREFIX installed)/$(mx_ha $B_PREFIX installed)" = "$installed_a/$installed_b" ]'
steer hosp-d-lan none && steer archive none && steer hosp-a-lan none
overlap_a=$(mx_ha $A_PREFIX overlap_received) failed_a=$(mx_ha $A_PREFIX install_failed)
segments off
sync_link add
healed=$EPOCHREALTIME
check "healed: B yields to A's priority, backup and standby" mx_wait_eval 10 '[ "$(roles $B_PREFIX)" = "$BS" ]'
echo "    B standby $("$MX_PY" -c "print('%.2f' % ($EPOCHREALTIME - $healed))") s after the heal"
check_that "A stayed master and active throughout (no role change)" \
  '[ "$(roles $A_PREFIX)" = "$AM" ] && [ "$(mx_ha $A_PREFIX role_changes)" = "$rc_a" ]'
n=$(mx_ha $B_PREFIX role_changes)
if [ "$n" = $((rc_b + 2)) ]; then
  pass "B changed role twice (to active, back to standby): no flap"
else
  fail "B changed role $((n - rc_b)) times, not twice" "$(mx_ctl $B_PREFIX ha-sync | sed -n '/^failovers/,$p')"
  mx_ctl $B_PREFIX vrrp | sed -n '/last transitions/,/^$/p' | sed 's/^/  | /'
  grep -E 'VRRP|HA:' "$B_LOG" | sed 's/^/  | /'
fi
check "B dropped its own sessions on stepping down" grep -q "now standby: this node's sessions dropped" "$B_LOG"
check "B withholds its acks: it sent on t-fence past A's value" \
  mx_wait_eval 5 '[ "$(mx_ha $B_PREFIX sa_acks_withheld)" -gt "$withheld" ]'
# A's fence must not move into B's numbers: B tells A its number, A's SA goes on above it and
# only then does B ack (A's round then says at least B's number); the capture checks the wire.
check "... and tells A its number: A's SA goes on above it" \
  eval 'mx_wait_eval 5 "[ \"\$(mx_ha $A_PREFIX sas_raised)\" -ge 1 ]" && grep -q "go on above the numbers the standby sent" "$A_LOG"'
check "B acks A's rounds again, and A's fence moves past its SA" \
  mx_wait_eval 5 '[ "$(mx_ha $A_PREFIX sa_acks_received)" -gt "$acks_a" ] && [ "$(mx_ha $A_PREFIX sas_at_fence)" = 0 ]'
a_tx0=$(esp_tx)
esp 300
wait "$ESP_PID"
sleep 0.2
a_tx=$(($(esp_tx) - a_tx0))
check_that "A sends on t-fence after the heal ($a_tx of 300)" '[ "$a_tx" -ge 250 ]'
check "B's bulk resync from A completes" mx_wait_eval 15 '[ "$(mx_ha $B_PREFIX resyncs_completed)" -gt "$resyncs" ]'
sleep 0.3
sa=$(mx_sessions "$A_PREFIX") sb=$(mx_sessions "$B_PREFIX")
# The heal merges: B, yielding, hands A its sessions (flagged draining); A takes those that clash
# with nothing of its own (s), and refuses y when A gave its pool port to z (A's flow wins).
check_that "A took B's sessions as it yielded ($(($(mx_ha $A_PREFIX overlap_received) - overlap_a)) records)" \
  '[ "$(mx_ha $A_PREFIX overlap_received)" -gt "$overlap_a" ] && holds $A_PREFIX "$s_session"'
if [ "$y" = "$z" ]; then
  check_that "... not y, on the pool port A gave z: A's own flow wins, the refusal counted" \
    '! holds $A_PREFIX "$y_session" && [ "$(mx_ha $A_PREFIX install_failed)" -gt "$failed_a" ]'
  check_that "B holds exactly A's sessions ($(mx_json - "len(d)" <<<"$sa"), z and s included, y gone)" \
    '[ "$sa" = "$sb" ] && holds $B_PREFIX "$z_session" && holds $B_PREFIX "$s_session" && ! holds $B_PREFIX "$y_session"'
else
  check_that "... y too (its pool port $y is not z's $z on A)" 'holds $A_PREFIX "$y_session"'
  check_that "B holds exactly A's sessions ($(mx_json - "len(d)" <<<"$sa"), z, s and y included)" \
    '[ "$sa" = "$sb" ] && holds $B_PREFIX "$z_session" && holds $B_PREFIX "$s_session" && holds $B_PREFIX "$y_session"'
fi
check "B's VRRP stepped down for A's higher priority" grep -q "master -> backup (higher_priority)" "$B_LOG"

# --- (2b) a node fresh from a restart that heard no round takes over from its peer file ------
echo "== (2b) B restarted, holding nothing of A, takes over t-fence above A's fence from its peer file"
check "B's numbers are on disk ($(mx_ctl $B_PREFIX ha-sync | grep '^seq file' | cut -c12-120))" \
  eval '[ "$(mx_ha $B_PREFIX seq_sas)" = 1 ] && [ "$(mx_ha $B_PREFIX seq_writes)" -ge 1 ] && [ -z "$(mx_ha $B_PREFIX seq_error)" ]'
check "B's peer file names t-fence (its acks fence A): $(tail -1 "$MX_TMP/state-b/ha-peer" 2>&1)" \
  grep -q '^[0-9a-f]* 8193 [0-9]*$' "$MX_TMP/state-b/ha-peer"
# GetHaSync's peer_file_*: found at the start, SAs named then, in force, started from it at a
# takeover; on disk now, SAs named now, written (ms ago, -1: not since the start).
peer_file() {
  mx_ctl "$1" -o json ha-sync 2>/dev/null | mx_json - "' '.join(str(d.get('peer_file_' + k)) for k in
    ('found', 'found_sas', 'in_force_sas', 'used_sas', 'on_disk', 'sas')) + ' ' + ('written' if
    int(d.get('peer_file_written_ms', -1)) >= 0 else 'unwritten')"
}
pf=$(peer_file $B_PREFIX)
check_that "... and shows it: on disk naming 1 SA, written since its start, none found at it ($pf)" \
  '[ "$pf" = "False 0 0 0 True 1 written" ]'
mx_pair_kill B
# Only A's end taken off: B binds its own, and nothing reaches or leaves A's.
ip addr del "$SYNC_NET.1/32" dev "$SYNC_IF"
mx_pair_start B "$MX_TMP/config-b.json" --metrics-listen 127.0.0.1:$MB --ha-sync-sa-margin $FENCE_MARGIN "${SEQ_ARGS_B[@]}" &&
  pass "B killed and started again with the sync link cut" || { fail "node B did not start again"; finish; }
check_that "B is backup and standby and has heard nothing of A's SAs" \
  '[ "$(roles $B_PREFIX)" = "$BS" ] && [ "$(mx_ha $B_PREFIX sas_synced)" = 0 ]'
pf=$(peer_file $B_PREFIX) pf_line=$(mx_ctl $B_PREFIX ha-sync | grep '^peer file')
check_that "B found its peer file at the start, in force for t-fence, unused ($pf; ${pf_line:11})" \
  '[ "$pf" = "True 1 1 0 True 1 unwritten" ] && [[ $pf_line == *"found at the start naming 1, in force for 1, 0 started"* ]]'
# A goes on to its fence (B's last ack + margin - 1), then is killed.
a_tx0=$(esp_tx)
esp 2500
wait "$ESP_PID"
a_tx=$(($(esp_tx) - a_tx0))
check_that "A sends on t-fence exactly to its fence, B's last ack + margin - 1 ($a_tx of 2500)" \
  '[ "$a_tx" = $((FENCE_MARGIN - 1)) ] && [ "$(mx_ha $A_PREFIX sas_at_fence)" = 1 ]'
mx_pair_kill A
check "A killed: B becomes master and active" mx_wait_eval 10 '[ "$(roles $B_PREFIX)" = "$AM" ]'
check_that "B's takeover started t-fence above A's fence from its peer file (sas_stopped $(mx_ha $B_PREFIX sas_stopped))" \
  '[ "$(mx_ha $B_PREFIX sas_stopped)" = 0 ] && grep -q "1 outbound SAs started above the peer.s bound" "$B_LOG"'
pf=$(peer_file $B_PREFIX) pf_used=$(mx_metric $MB 'medix_ha_sync_peer_file_sas{state="used"}')
check_that "... shown: used by 1 SA, the file gone now B is active ($pf; metric used ${pf_used:-none})" \
  '[ "$pf" = "True 1 1 1 False 0 unwritten" ] && [ "$pf_used" = 1 ]'
b_tx0=$(b_esp_tx)
esp 300
wait "$ESP_PID"
sleep 0.3
b_tx=$(($(b_esp_tx) - ${b_tx0:-0})) b_fenced=$(mx_metric $MB 'medix_drops_total{reason="ha_sa_fenced"}')
check_that "B sends on t-fence ($b_tx of 300), none dropped as ha_sa_fenced (${b_fenced:-0})" \
  '[ "$b_tx" -ge 250 ] && [ "${b_fenced:-0}" = 0 ]'
check "... and tells the control side nothing (no SA event, no rekey)" [ "$(grep -c 'HA fence reached' "$B_LOG")" = 0 ]
ip addr add "$SYNC_NET.1/32" dev "$SYNC_IF"
kill -INT "$CAPTURE_PID"
wait "$CAPTURE_PID"
esp_seqs "$MX_TMP/esp.pcap" >"$MX_TMP/esp.seqs"
n_seqs=$(wc -l <"$MX_TMP/esp.seqs") n_unique=$(sort -n -u "$MX_TMP/esp.seqs" | wc -l)
check_that "on the wire, every t-fence sequence number once: $n_seqs packets captured, $n_unique numbers" \
  '[ "$n_seqs" -gt 5000 ] && [ "$n_seqs" = "$n_unique" ]'
fi

# --- (3) both nodes started at once ----------------------------------------------------------
if [[ $CASES == *3* ]]; then
echo "== (3) both started at once (equal priorities)"
mx_pair_stop
mx_pair_configs -eq 100 100
mx_pair_launch A "$MX_TMP/config-a-eq.json"
mx_pair_launch B "$MX_TMP/config-b-eq.json"
mx_pair_ready A && mx_pair_ready B && pass "both nodes ready" || { fail "the nodes did not start"; finish; }
started=$EPOCHREALTIME
one_active() {
  local a b
  a=$(roles $A_PREFIX) b=$(roles $B_PREFIX)
  if [ "$a/$b" = "$AM/$BS" ]; then WIN=A LOSE=B; elif [ "$a/$b" = "$BS/$AM" ]; then WIN=B LOSE=A; else return 1; fi
}
check "within 10 s exactly one is master and active, the other backup and standby" mx_wait_eval 10 one_active
echo "    $WIN won, settled $("$MX_PY" -c "print('%.2f' % ($EPOCHREALTIME - $started))") s after both were ready"
l_prefix=${LOSE}_PREFIX
# Both masters at once (both started within the master down interval): the tie goes to the
# higher address, B's (RFC 5798 6.4.3). Otherwise the first up won and the other, hearing it,
# did not preempt.
if grep -q "backup -> master" "$A_LOG" && grep -q "backup -> master" "$B_LOG"; then
  check "both were master for a moment: B, the higher address, won" [ "$WIN" = B ]
else
  echo "    $WIN was master first; $LOSE heard it and did not preempt"
fi
check "$LOSE's bulk resync from $WIN completes" mx_wait_eval 10 '[ "$(mx_ha ${!l_prefix} resyncs_completed)" -ge 1 ]'
rc_a=$(mx_ha $A_PREFIX role_changes) rc_b=$(mx_ha $B_PREFIX role_changes)
check_that "at most two role changes on each (A: $rc_a, B: $rc_b)" '[ "$rc_a" -le 2 ] && [ "$rc_b" -le 2 ]'
check "a NAPT transfer through $WIN" transfer hosp-d-lan $D_PORT w
w=$PEER
check "... its session reaches $LOSE" mx_wait_eval 5 'has ${!l_prefix} $w'
check_that "still so after the transfer, no more role changes" \
  'one_active && [ "$(mx_ha $A_PREFIX role_changes)/$(mx_ha $B_PREFIX role_changes)" = "$rc_a/$rc_b" ]'

# The tie made sure of: both started at once while they cannot hear each other (both master
# and active), then the segments joined: the higher address, B, keeps the group.
echo "== (3b) both started at once, both master, then joined"
mx_pair_stop
segments on || fail "could not isolate the nodes' bridge ports"
mx_pair_launch A "$MX_TMP/config-a-eq.json"
mx_pair_launch B "$MX_TMP/config-b-eq.json"
mx_pair_ready A && mx_pair_ready B && pass "both nodes ready" || { fail "the nodes did not start"; finish; }
check "both master and active (they cannot hear each other)" \
  mx_wait_eval 10 '[ "$(roles $A_PREFIX)" = "$AM" ] && [ "$(roles $B_PREFIX)" = "$AM" ]'
segments off
joined=$EPOCHREALTIME
check "joined: within 10 s B (the higher address) master and active, A backup and standby" \
  mx_wait_eval 10 'one_active && [ "$WIN" = B ]'
echo "    settled $("$MX_PY" -c "print('%.2f' % ($EPOCHREALTIME - $joined))") s after the join"
check "A's resync from B completes" mx_wait_eval 10 '[ "$(mx_ha $A_PREFIX resyncs_completed)" -ge 1 ]'
check_that "A changed role twice (to active, back to standby), B once" \
  '[ "$(mx_ha $A_PREFIX role_changes)/$(mx_ha $B_PREFIX role_changes)" = 2/1 ]'
fi

echo "    $("$MX_PY" -c "print('%.1f' % ($EPOCHREALTIME - $t0))") s"
finish
