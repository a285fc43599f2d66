#!/usr/bin/env bash
# The IKE speaker's witness (issue 15, docs/ha.md "The witness"): each medix-cp of the pair runs
# with --ike-witness, an etcd lease a node must hold to send IKE requests of its own (DPD,
# rekeys) while it has no standby peer. The pair, the gateway and the hospital are
# netns-ike-failover's (lib.sh's mx_pair_*, swan.sh), with one etcd (Debian's etcd-server) in a
# namespace of its own that each medix-cp reaches on a veth; the gateway's own DPD is slow (30 s)
# so that every DPD seen is the pair's.
#
#   medix-cp A ── 10.255.1.0/30 ── etcd ── 10.255.2.0/30 ── medix-cp B     (+ their ha link)
#
#   - etcd's password authentication on: each medix-cp logs in as a user of its own role
#     (--etcd-user-file, as the intent store's); the password in no log or output;
#   - TLS: etcd serves https only and asks for a client certificate (a CA of the test's own,
#     openssl); each medix-cp has --etcd-cacert, --etcd-cert, --etcd-key; etcdctl over http and
#     without a client certificate are refused, and a witness without the TLS flags is refused at
#     its login and says so (no password in its log); medixctl ha says TLS;
#   - paired (B standby): A sends DPD without the lease; the speaker's key is absent;
#   - the whole node A killed (-9, medix-dp and medix-cp at once): B takes over, obtains the lease
#     and sends DPD that the gateway answers, on the same IKE_SA (its SPIs unchanged); the time
#     from the kill to B's first DPD is printed;
#   - A back as standby: B lets the lease go;
#   - a true split brain where A cannot reach etcd and B can (A's ports isolated, the medix-cp
#     link cut, the carrier's switch steered to B): B holds the lease and sends DPD; A sends no
#     IKE packet at all (a capture on A's bridge port); a MOBIKE update of A's (an address added
#     in its namespace) is held. Then B is cut from etcd too: it goes silent at its renew
#     deadline, before etcd lets the key go;
#   - the lease changes hands in the split: B recorded its IKE_SA's message IDs with etcd before
#     each message; A, given etcd back (and the switch), obtains the key, raises its copy to B's
#     record, and its MOBIKE update and DPD are answered by the gateway on the same IKE_SA.
#     IKE_WITNESS_CONTROL=1 deletes B's records first (a control run: those checks then fail);
#   - A, the holder, rekeys the CHILD_SA (its records carry its CHILD_SAs' inbound SPIs);
#   - and back to B, the heal's loser: A cut from etcd with a request of its own made at once (a
#     MOBIKE update: not sent, its witness cannot record it, but in flight in charon), B obtains
#     the key (raised to A's record) and deletes A's CHILD_SA of its lease at the gateway (read
#     with the record; B's copy lacks it), rekeys its stale copy of the CHILD_SA (NO_CHILD_SA, a
#     new one that ESP crosses both ways); A's operator rekey is held;
#   - the heal: A (priority 200) wins, B rejoins, A raises its message IDs to B's, A's rekey of
#     its stale copy is answered NO_CHILD_SA and A makes a new CHILD_SA, ESP crosses it both ways,
#     A's request withheld at its cut is started again under the raised ID and answered, and the
#     gateway's IKE_SA is the same one;
#   - the heal's leftover: A deletes B's CHILD_SA of the split at the gateway (B reported its
#     CHILD_SAs' SPIs at its rejoin), and ESP crosses A's new one both ways after it;
#   - held rekeys: A cut from etcd and from B's medix-cp, medix-dp B stopped (no acks): A's SA
#     reaches its fence, medix-cp A's rekey on HA_FENCED is held, and so is an IKE_SA rekey
#     (`medixctl peer NAME rekey-ike`: charon's rekey job, as its IKE lifetime schedules it); A
#     given etcd back obtains the lease and runs both: a new CHILD_SA that ESP crosses both ways,
#     the gateway's one IKE_SA rekeyed (new SPIs), one IKE_SA_INIT in the whole run;
#   - held lifetimes: A cut again, its peer's lifetimes shortened by ApplyIntent in place (the
#     IKE_SA kept): the CHILD_SA's time lifetime (medix-cp's timer) and the IKE lifetime (charon's
#     scheduled rekey job) fall due in the split and are held; with the lease both run;
#   - a request withheld at the cut (regain_*): A, the holder, cut from etcd with a MOBIKE update
#     not sent; B speaks (DPD), A obtains the lease again and the request goes under the raised
#     ID; then again with B only answering the gateway (its responding ID alone moves): at the
#     heal A's request goes as built, A's responding ID is raised after its answer, A deletes
#     B's CHILD_SA at the gateway and answers the gateway's next request;
#   - a held rekey refused (held_rekey_refused): a CHILD_SA's rekey and delete both held; with the
#     lease the rekey runs first, the gateway refuses it (its own IKE_SA rekey in flight), then
#     the held delete removes the CHILD_SA, which charon recreates; the IKE_SA stays;
#   - the switch flipping A, B, A in a split (switch_flip): the response to A's DPD lost at B, A's
#     retransmit answered; the same IKE_SA at the heal;
#   - an answer without the lease (answered_lease): B, fed by the switch, answers the gateway's
#     request and writes its responding ID and response to etcd; B's response is lost on its
#     way; A, the holder, raises its own ID to B's, sends B's response again for the gateway's
#     retransmit, and answers the gateway's next request at once;
#   - the lease passing twice (lease_twice) before A's DELETE
#     of B's CHILD_SA goes out: B keeps its CHILD_SA meanwhile; A's DELETE goes at the heal A wins.
#   - an exchange in flight when the lease changes hands (in_flight): A, the holder, its DPD recorded
#     (with its bytes) but dropped before the gateway, then killed; B obtains the lease and sends
#     A's request again as recorded before it speaks: the gateway takes it, and B's DPD is answered.
#
# Usage: test/netns/ike_witness.sh (root). Prints PASS/FAIL lines and "netns-ike-witness: N passed, M failed".
set -uo pipefail
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=test/netns/swan.sh
source "$(dirname "$0")/swan.sh"
# af_packet's sends through its veth end's qdisc (answered_lease: B's answer lost on its way).
MX_AF_PACKET_ARGS+=,qdisc_bypass=0
# shellcheck source=test/netns/ike_pair.sh
source "$(dirname "$0")/ike_pair.sh"

ARCHIVE_CORE=100.100.2.10
HA_A=10.255.0.1:4520 HA_B=10.255.0.2:4520
ETCD_A=10.255.1.1 ETCD_B=10.255.2.1 # etcd's address as each node reaches it
SPEAKER_KEY=/medix/ike-speaker
# The fence's headroom (docs/ha.md, "The fence"): small, so that held_rekeys reaches it with 800
# pings; far above what the rest of the run sends between two acks.
FENCE_MARGIN=500

mx_init
mx_need_binary
[ -x "${MEDIX_CP:-$MX_REPO/build/controlplane/medix-cp}" ] || mx_die "medix-cp not built (scripts/setup, scripts/build)"
[ -e /usr/lib/ipsec/plugins/libstrongswan-ha.so ] || mx_die "strongSwan's ha plugin is missing (libcharon-extra-plugins)"
command -v etcd >/dev/null && command -v etcdctl >/dev/null || mx_die "etcd is missing (etcd-server, etcd-client: scripts/setup)"
command -v tcpdump >/dev/null || mx_die "tcpdump is missing (scripts/setup)"
command -v openssl >/dev/null || mx_die "openssl is missing (scripts/setup)"
t_start=$(date +%s.%N)

# The flags refused as a whole, before anything starts.
CP_BIN=${MEDIX_CP:-$MX_REPO/build/controlplane/medix-cp}
check_flag() { if [ "$2" = 2 ] && [[ $3 == *"$4"* ]]; then pass "$1 ($3)"; else fail "$1: exit $2, $3"; fi; }
out=$("$CP_BIN" --intent /dev/null -p none --ike-witness etcd://127.0.0.1:2379 2>&1)
check_flag "--ike-witness without --ha-sync-* is refused" $? "$out" "goes with --ha-sync-local"
out=$("$CP_BIN" --intent /dev/null -p none --ike-witness-ttl 0 2>&1)
check_flag "--ike-witness-ttl 0 is refused" $? "$out" "--ike-witness-ttl 0: seconds, 1 to 60"
out=$("$CP_BIN" --intent /dev/null -p none --etcd-user-file /dev/null 2>&1)
check_flag "--etcd-user-file without --intent-store or --ike-witness is refused" $? "$out" "or --ike-witness etcd://"

mx_attach carrier-y-gw carrier-y 192.0.2.10/24 192.0.2.2/24
mx_attach archive archive 192.168.1.10/24 192.168.1.2/24
mx_pair_setup
NS_Y=mx-$MX_ID-hosp-y GW=$MX_TMP/gw NS_E=mx-$MX_ID-etcd
MX_NS[hosp-y]=$NS_Y
PSK="ike-witness-$MX_ID-$RANDOM$RANDOM"
CPA_PID='' CPB_PID='' ETCD_PID='' CAP_PIDS=''

w_cleanup() {
  local rc=$? pid
  for pid in $CPA_PID $CPB_PID $ETCD_PID $CAP_PIDS; do kill -KILL "$pid" && wait "$pid"; done 2>/dev/null
  mx_swan_cleanup
  (exit "$rc")
  mx_cleanup
}
trap w_cleanup EXIT
finish() { mx_pair_finish netns-ike-witness "$MX_TMP/cp-a.log" "$MX_TMP/cp-b.log" "$GW/gw.log" "$MX_TMP/etcd.log"; }

ike_pair_configs

# --- the medix-cp namespaces, their ha link, and etcd between them ---------------------------------
ip netns add "$NS_E" && MX_SWAN_NS+=("$NS_E") && ip -n "$NS_E" link set lo up || mx_die "etcd's namespace"
ike_pair_cp_link
for n in a b; do
  e=$ETCD_A net=1 && [ $n = b ] && e=$ETCD_B net=2
  ip link add "me${MX_ID}$n" netns "mx-$MX_ID-cp-$n" type veth peer name "me${MX_ID}e$n" netns "$NS_E" &&
    ip -n "mx-$MX_ID-cp-$n" addr add "10.255.$net.2/30" dev "me${MX_ID}$n" &&
    ip -n "mx-$MX_ID-cp-$n" link set "me${MX_ID}$n" up &&
    ip -n "$NS_E" addr add "$e/30" dev "me${MX_ID}e$n" && ip -n "$NS_E" link set "me${MX_ID}e$n" up ||
    mx_die "the veth between medix-cp $n and etcd"
done
# TLS to etcd (the intent store's --etcd-* flags, which the witness takes): a CA of the suite's
# own, etcd's certificate for both its addresses, a client certificate for the medix-cp pair (and
# etcdctl); etcd serves https only and asks for a client certificate (--client-cert-auth).
make_certs() {
  local d=$MX_TMP/pki who
  mkdir -p "$d" &&
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" \
      -subj /CN=medix-test-ca -days 1 2>/dev/null || return 1
  for who in etcd medix-pair; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/$who.key" -out "$d/$who.csr" \
      -subj "/CN=$who" 2>/dev/null &&
      printf 'subjectAltName=IP:%s,IP:%s\nextendedKeyUsage=serverAuth,clientAuth\n' $ETCD_A $ETCD_B >"$d/$who.ext" &&
      openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -out "$d/$who.crt" \
        -days 1 -extfile "$d/$who.ext" 2>/dev/null || return 1
  done
}
make_certs && pass "TLS: a CA, etcd's certificate and the pair's client certificate (openssl)" ||
  { fail "a CA and certificates for etcd and the pair (openssl)"; finish; }
PKI=$MX_TMP/pki
TLS_FLAGS=(--etcd-cacert "$PKI/ca.crt" --etcd-cert "$PKI/medix-pair.crt" --etcd-key "$PKI/medix-pair.key")
ip netns exec "$NS_E" etcd --name w --data-dir "$MX_TMP/etcd" --listen-client-urls "https://$ETCD_A:2379,https://$ETCD_B:2379" \
  --advertise-client-urls "https://$ETCD_A:2379" --listen-peer-urls http://127.0.0.1:2380 \
  --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster w=http://127.0.0.1:2380 \
  --cert-file "$PKI/etcd.crt" --key-file "$PKI/etcd.key" --client-cert-auth --trusted-ca-file "$PKI/ca.crt" \
  --log-level error >"$MX_TMP/etcd.log" 2>&1 &
ETCD_PID=$!
etcdctl() {
  ip netns exec "$NS_E" etcdctl --endpoints "https://$ETCD_A:2379" --cacert "$PKI/ca.crt" --cert "$PKI/medix-pair.crt" \
    --key "$PKI/medix-pair.key" "$@"
}
speaker() { etcdctl get --print-value-only "$SPEAKER_KEY" 2>/dev/null; } # who holds the lease ("": none)
mx_wait_eval 10 'etcdctl endpoint health >/dev/null 2>&1' && pass "etcd up" || { fail "etcd did not start"; finish; }
# etcd's password authentication (docs/areas.md): each medix-cp logs in as medix-pair, whose role
# may read and write the witness's prefix only (--etcd-user-file, as the intent store's).
ROOT_PW=root-$RANDOM$RANDOM PAIR_PW=pair-$RANDOM$RANDOM
out=$({ etcdctl user add root --new-user-password="$ROOT_PW" && etcdctl role add medix-pair &&
  etcdctl role grant-permission medix-pair --prefix=true readwrite /medix/ &&
  etcdctl user add medix-pair --new-user-password="$PAIR_PW" && etcdctl user grant-role medix-pair medix-pair &&
  etcdctl auth enable; } 2>&1) && pass "etcd: auth enabled, user medix-pair (readwrite on /medix/)" ||
  { fail "etcd's users and auth enable" "$out"; finish; }
(umask 077 && printf 'medix-pair:%s\n' "$PAIR_PW" >"$MX_TMP/etcd-user")
etcdctl() {
  ip netns exec "$NS_E" etcdctl --endpoints "https://$ETCD_A:2379" --cacert "$PKI/ca.crt" --cert "$PKI/medix-pair.crt" \
    --key "$PKI/medix-pair.key" --user "root:$ROOT_PW" "$@"
}

# tls_only_checks: etcd answers TLS with a client certificate only, and a witness without the
# TLS flags is refused and says why (a medix-cp of its own in etcd's namespace, its /run private
# so that its ha plugin's FIFO is its own; it needs no medix-dp to try its etcd login).
tls_only_checks() {
  local plain=(ip netns exec "$NS_E" etcdctl --dial-timeout 1s --command-timeout 1s) dir=$MX_TMP/cp-plain pid line t0 tries
  t0=$(date +%s.%N)
  # The two etcdctl tries (each up to its 1 s dial timeout) beside the medix-cp one.
  ("${plain[@]}" --endpoints "http://$ETCD_A:2379" endpoint health >/dev/null 2>&1; echo $? >"$MX_TMP/plain-http.rc") &
  tries=$!
  ("${plain[@]}" --endpoints "https://$ETCD_A:2379" --cacert "$PKI/ca.crt" endpoint health >/dev/null 2>&1
    echo $? >"$MX_TMP/plain-nocert.rc") &
  tries+=" $!"
  mkdir -p "$dir/dpdk/none" && echo '{"schema_version": 1}' >"$dir/intent.json"
  # shellcheck disable=SC2016 # expanded by sh
  setsid ip netns exec "$NS_E" sh -c 'mount --rbind "$1" /run && shift && exec "$@"' sh "$dir" "$CP_BIN" \
    --intent "$dir/intent.json" -p none --log-level 1 --ha-sync-local "$ETCD_A:4598" --ha-sync-peer "$ETCD_A:4599" \
    --ha-sync-key-file "$MX_TMP/cp-sync.key" --ike-witness "etcd://$ETCD_A:2379" --etcd-user-file "$MX_TMP/etcd-user" \
    >"$dir/cp.log" 2>&1 &
  pid=$!
  mx_wait_eval 6 'grep -q "lease not obtained" "$dir/cp.log"'
  kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  # shellcheck disable=SC2086  # two pids
  wait $tries
  check_that "TLS: etcd refuses a plaintext client (http://)" '[ "$(cat "$MX_TMP/plain-http.rc")" != 0 ]'
  check_that "TLS: etcd refuses a TLS client without a client certificate" '[ "$(cat "$MX_TMP/plain-nocert.rc")" != 0 ]'
  line=$(grep -o "lease not obtained (.*" "$dir/cp.log" | head -1)
  echo "    a plaintext witness: $line"
  echo "    the TLS checks: $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
  check_that "TLS: a witness without --etcd-cacert is refused at its login, says plain gRPC, no password" \
    '[[ $line == *"etcd: authentication: user medix-pair: "*"(plain gRPC, no --etcd-cacert"* ]] && ! grep -qF "$PAIR_PW" "$dir/cp.log"'
}

# start_cp A|B: as netns-ike-failover's, with the witness: etcd as the node reaches it.
start_cp() {
  local n=${1,,} here=$HA_A peer=$HA_B prefix=$A_PREFIX e=$ETCD_A
  [ "$1" = B ] && here=$HA_B peer=$HA_A prefix=$B_PREFIX e=$ETCD_B
  MX_PREFIX=$prefix MX_CP_RUN=$MX_TMP/cp-$n/run mx_cp_start "mx-$MX_ID-cp-$n" "$MX_PAIR_TAP$n" 192.0.2.1/24 \
    "$MX_TMP/intent-$n.json" "$MX_TMP/cp-$n.log" --ha-sync-local "$here" --ha-sync-peer "$peer" \
    --ha-sync-key-file "$MX_TMP/cp-sync.key" --ike-witness "etcd://$e:2379" --ike-witness-ttl 2 --etcd-user-file "$MX_TMP/etcd-user" "${TLS_FLAGS[@]}" --metrics-listen 127.0.0.1:9464 || return 1
  printf -v "CP${1}_PID" %s "$MX_CP_PID"
  MX_CP_PID=
}
check() { local what=$1; shift; if "$@"; then pass "$what"; else fail "$what"; fi; }
check_that() { if eval "$2"; then pass "$1"; else fail "$1"; fi; }
cp_since() { tail -n +$(($2 + 1)) "$MX_TMP/cp-$1.log"; }
ping_archive() { mx_in hosp-y ping -n -c3 -i0.2 -W1 -q "$ARCHIVE_CORE" >/dev/null 2>&1; }
init_count() { grep -c 'generating IKE_SA_INIT request' "$GWLOG"; }
# gw_children: the gateway's installed CHILD_SAs, "SPI_in SPI_out packets_in packets_out" a line.
gw_children() {
  swan --list-sas --raw 2>/dev/null | "$MX_PY" -c '
import re, sys
for c in re.finditer(r"state=INSTALLED.*?spi-in=([0-9a-f]+) spi-out=([0-9a-f]+).*?packets-in=(\d+).*?packets-out=(\d+)",
                     sys.stdin.read(), re.S):
    print(" ".join(c.groups()))'
}
# node_child a|b LINE: the SPIs (in, out) of the last CHILD_SA that medix-cp established since LINE.
node_child() {
  cp_since "$1" "$2" | sed -n 's/.*CHILD_SA carrier-y{[0-9]*} established with SPIs \([0-9a-f]*\)_i \([0-9a-f]*\)_o.*/\1 \2/p' | tail -1
}
# gw_child IN OUT: the gateway's CHILD_SA that is A's (IN, OUT) seen from the other end.
gw_child() { [ -n "${2:-}" ] && gw_children | grep "^$2 $1 "; }
# both_ways IN OUT: ESP crossed A's CHILD_SA both ways at the gateway.
both_ways() { gw_child "$@" | awk '$3 > 0 && $4 > 0 { ok = 1 } END { exit !ok }'; }
# after_dpd a|b: returns once the node's next DPD has been answered (at most 5 s).
after_dpd() {
  local node=$1 from
  from=$(wc -l <"$MX_TMP/cp-$node.log")
  mx_wait_eval 5 'cp_since $node $from | grep -q "parsed INFORMATIONAL response [0-9]* \[ \]"'
}
# dpd_answered a|b LINE: since LINE the node sent a DPD and got the gateway's response.
dpd_answered() {
  cp_since "$1" "$2" | grep -q "sending DPD request" &&
    cp_since "$1" "$2" | grep -q "parsed INFORMATIONAL response [0-9]* \[ \]"
}

tls_only_checks

# --- A active, B standby, the gateway's IKE_SA with A ----------------------------------------------
mx_pair_start A "$MX_TMP/config-a.json" --ha-sync-sa-margin $FENCE_MARGIN && pass "medix-dp A ready" || { fail "medix-dp A did not start"; finish; }
mx_wait_eval 10 'mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE' || fail "A not master and active"
mx_pair_start B "$MX_TMP/config-b.json" --ha-sync-sa-margin $FENCE_MARGIN && pass "medix-dp B ready" || { fail "medix-dp B did not start"; finish; }
mx_wait_eval 10 'mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY' || fail "B not backup and standby"
start_cp A >"$MX_TMP/cpa-start.txt" && pass "medix-cp A ready with the witness" || { fail "$(cat "$MX_TMP/cpa-start.txt")"; finish; }
start_cp B >"$MX_TMP/cpb-start.txt" && pass "medix-cp B ready with the witness" || { fail "$(cat "$MX_TMP/cpb-start.txt")"; finish; }
# The gateway's DPD is slow: the DPD seen in 30 s is the pair's own.
ike_pair_gateway 30s
check "medix-cp B holds the IKE_SA passive and its CHILD_SA" \
  mx_wait_eval 10 'grep -q "installed HA passive IKE_SA" "$MX_TMP/cp-b.log" && grep -q "installed HA CHILD_SA" "$MX_TMP/cp-b.log"'
a_mark=$(wc -l <"$MX_TMP/cp-a.log")
check "paired: A sends DPD without the lease, and the gateway answers" mx_wait_eval 8 'dpd_answered a $a_mark'
check_that "paired: nobody holds the speaker's lease (key $SPEAKER_KEY absent)" '[ -z "$(speaker)" ]'
# witness NODE EXPR: EXPR (python, w: the ike_witness of medixctl ha -o json on NODE's prefix) holds.
witness() { [ "$(mx_ctl "$1" -o json ha | mx_json - "(lambda w: $2)(d['ike_witness'])")" = True ]; }
check "paired: medixctl ha on A: the witness configured, not wanted, not held" \
  witness "$A_PREFIX" "w['configured'] and w['endpoint'] == '$ETCD_A:2379' and not w['wanted'] and not w['holder'] and w['held_exchanges'] == '0'"
ike_before=$(ike_sa) child_before=$(child)
echo "    gateway before: IKE_SA $ike_before; CHILD_SA $child_before"

# --- the whole node A killed: B alone obtains the lease and sends DPD -----------------------------
b_mark=$(wc -l <"$MX_TMP/cp-b.log")
(for ((i = 0; i < 1500; i++)); do
  tail -n +$((b_mark + 1)) "$MX_TMP/cp-b.log" | grep -q "sending DPD request" && { mx_now_ns >"$MX_TMP/dpd.ns"; break; }
  sleep 0.01
done) &
dpd_watch=$!
mx_pair_kill A
kill -KILL "$CPA_PID" && wait "$CPA_PID" 2>/dev/null
CPA_PID=
check "B becomes VRRP master and HA active" mx_wait_eval 10 'mx_pair_is $B_PREFIX master HA_ROLE_ACTIVE'
check "medix-cp B obtained the speaker's lease (key: $(speaker))" \
  mx_wait_eval 8 'grep -q "the IKE speaker.s lease obtained" "$MX_TMP/cp-b.log" && [ "$(speaker)" = "$HA_B" ]'
check "B, alone, sends DPD and the gateway answers it" mx_wait_eval 10 'dpd_answered b $b_mark'
wait "$dpd_watch"
dpd_ms=$(awk -v a="$KILL_NS" -v b="$(cat "$MX_TMP/dpd.ns" 2>/dev/null)" 'BEGIN { printf "%d", (b - a) / 1e6 }')
echo "    B's first DPD $dpd_ms ms after the kill (B active by VRRP, the lease, 1.2 s of being active, then charon's 2 s DPD delay)"
check_that "the gateway's IKE_SA is the same one (SPIs unchanged), its only one; one IKE_SA_INIT" \
  '[ -n "$ike_before" ] && [ "$(ike_sa)" = "$ike_before" ] && [ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ]'
metrics_b() { mx_metric 9464 "$1" "mx-$MX_ID-cp-b"; }
m="$(metrics_b medix_cp_ha_witness_holds) $(metrics_b 'medix_cp_ha_witness_lease_total{event="obtained"}') $(metrics_b 'medix_cp_ha_ike_holds_total{event="held"}')"
check_that "medix-cp B's metrics: holds the lease, obtained once, its requests held once before it (holds obtained held: $m)" \
  '[ "$m" = "1 1 1" ]'
check_that "no retransmit of B's requests" '! cp_since b $b_mark | grep -q retransmit'
ha_b=$(mx_ctl "$B_PREFIX" ha 2>&1)
echo "$ha_b" | grep -A3 '^witness' | sed 's/^/    B: /'
check_that "medixctl ha on B: the witness's etcd and key, holder yes, renewed within the TTL" \
  'grep -qx "witness    etcd $ETCD_B:2379, key $SPEAKER_KEY, TLS, user medix-pair, TTL 2 s" <<<"$ha_b" &&
   grep -qE "^ +holder yes \(wanted: active without a standby peer\); last renewal [0-9]+ ms ago$" <<<"$ha_b"'
check "medixctl ha -o json on B: holder, renewed < 1 s ago, nothing held now, held once, obtained once" \
  witness "$B_PREFIX" 'w["holder"] and w["wanted"] and 0 <= int(w["last_renewal_ms"]) < 1000 and w["held_exchanges"] == "0" and w["holds"] == "1" and w["obtained"] == "1"'
check_that "etcd's password and the client key are in no medix-cp log and not in medixctl ha's output" \
  '! grep -qF "$PAIR_PW" "$MX_TMP"/cp-*.log && ! grep -qF "$PAIR_PW" <<<"$ha_b" &&
   ! grep -qF "$(sed -n 2p "$PKI/medix-pair.key")" "$MX_TMP"/cp-*.log'
check "hosp-y reaches the archive through B" ping_archive

# --- A back as standby: B has a standby peer again and lets the lease go --------------------------
mv "$MX_TMP/cp-a.log" "$MX_TMP/cp-a-first.log"
mx_pair_start A "$MX_TMP/config-a.json" --ha-sync-sa-margin $FENCE_MARGIN && pass "medix-dp A back" || { fail "medix-dp A did not restart"; finish; }
mx_wait_eval 10 'mx_pair_is $A_PREFIX backup HA_ROLE_STANDBY' || fail "A not backup and standby"
start_cp A >"$MX_TMP/cpa-start.txt" && pass "medix-cp A back" || { fail "$(cat "$MX_TMP/cpa-start.txt")"; finish; }
check "A holds B's IKE_SA passive" mx_wait_eval 10 'grep -q "installed HA passive IKE_SA" "$MX_TMP/cp-a.log"'
check "B paired again: it let the lease go (the key is gone)" \
  mx_wait_eval 8 'grep -q "lease let go" "$MX_TMP/cp-b.log" && [ -z "$(speaker)" ]'

# --- a split: A cut from etcd, B not; only B speaks ------------------------------------------------
# neigh_cut NS ADDR DEV cut|heal: ADDR unreachable from NS by a permanent neighbour entry with a
# MAC nobody has (no link or address change, which charon would answer with MOBIKE updates).
neigh_cut() {
  if [ "$4" = cut ]; then ip -n "$1" neigh replace "$2" lladdr 02:00:00:00:de:ad dev "$3" nud permanent
  else ip -n "$1" neigh del "$2" dev "$3"; fi
}
cp_link() {
  neigh_cut "mx-$MX_ID-cp-a" 10.255.0.2 "mh${MX_ID}a" "$1" && neigh_cut "mx-$MX_ID-cp-b" 10.255.0.1 "mh${MX_ID}b" "$1"
}
# IKE packets (UDP 500 and 4500) leaving each node, on its port of the carrier's bridge.
for port in eth0 ethb; do
  mx_in carrier-y-gw tcpdump -l -n -Q in -i $port 'udp and (port 500 or port 4500)' >"$MX_TMP/ike-$port.txt" 2>/dev/null &
  CAP_PIDS+=" $!"
done
sleep 1
t_split=$(date +%s.%N) gw_split=$(wc -l <"$GWLOG")
neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" cut || fail "could not cut A from etcd"
a_mark=$(wc -l <"$MX_TMP/cp-a.log") b_mark=$(wc -l <"$MX_TMP/cp-b.log")
: >"$MX_TMP/ike-eth0.txt"
: >"$MX_TMP/ike-ethb.txt"
steer_carrier ethb
segments on && cp_link cut || fail "could not isolate the nodes"
check "split: A master and active beside B" \
  mx_wait_eval 10 'mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE && mx_pair_is $B_PREFIX master HA_ROLE_ACTIVE'
check "split: A (no etcd) holds its IKE requests, and says why" \
  mx_wait_eval 5 'cp_since a $a_mark | grep -q "IKE requests held" && cp_since a $a_mark | grep -q "lease not obtained (etcd: "'
echo "    A: $(cp_since a $a_mark | grep -o 'lease not obtained (.*' | head -1)"
ab_mark=$a_mark
check "split: B holds the lease ($(speaker)) and sends DPD that the gateway answers" \
  mx_wait_eval 10 '[ "$(speaker)" = "$HA_B" ] && dpd_answered b $b_mark'
# An address comes to A's medix-cp namespace: charon's MOBIKE update (an address list) is held.
ip -n "mx-$MX_ID-cp-a" link add "md${MX_ID}a" type veth peer name "md${MX_ID}p" &&
  ip -n "mx-$MX_ID-cp-a" addr add 10.77.0.1/24 dev "md${MX_ID}a" && ip -n "mx-$MX_ID-cp-a" link set "md${MX_ID}p" up &&
  ip -n "mx-$MX_ID-cp-a" link set "md${MX_ID}a" up || fail "could not add an address to A's namespace"
check "split: a new address on A: its MOBIKE roam is held" mx_wait_eval 5 'cp_since a $a_mark | grep -q "MOBIKE roam held"'
mx_ctl "$A_PREFIX" ha 2>&1 | grep -A4 '^witness' | sed 's/^/    A: /'
check "split: medixctl ha on A: wanted, not the holder, its roam held, etcd's refusal said" \
  witness "$A_PREFIX" 'w["wanted"] and not w["holder"] and int(w["held_exchanges"]) >= 1 and w["last_refusal"].startswith("etcd: ")'
sleep 3 # B's next DPD; A's address update would have reached the gateway by now
check_that "split: the gateway had no MOBIKE update (N(ADD_4_ADDR)) from A" \
  '! tail -n +$((gw_split + 1)) "$GWLOG" | grep -q "N(ADD_4_ADDR)"'
check_that "split: A sent no DPD, B did" \
  '! cp_since a $a_mark | grep -q "sending DPD request" && cp_since b $b_mark | grep -q "sending DPD request"'
n_a=$(grep -c . "$MX_TMP/ike-eth0.txt") n_b=$(grep -c . "$MX_TMP/ike-ethb.txt")
check_that "split: on the wire, no IKE packet from A's port ($n_a), B's IKE packets from its port ($n_b)" \
  '[ "$n_a" = 0 ] && [ "$n_b" -ge 2 ]'
# The holder cut from etcd too: silent once its renew deadline (TTL/2 after its last renewal)
# passes, before etcd lets the key go (a TTL after it). Just after one of its DPDs (the next is
# 2 s away): a request made between the cut and the renew deadline is not sent (its record
# fails) yet stays in flight in charon (docs/ha.md, "Still unsafe"), which is not this case.
after_dpd b
# shellcheck disable=SC2034  # read by mx_wait_eval and check_that
b_cut=$(wc -l <"$MX_TMP/cp-b.log") cut_ns=$(mx_now_ns)
neigh_cut "mx-$MX_ID-cp-b" 10.255.2.1 "me${MX_ID}b" cut || fail "could not cut B from etcd"
check "split: B, cut from etcd too, goes silent when its renew deadline passes" \
  mx_wait_eval 3 'cp_since b $b_cut | grep -q "renew deadline: no IKE requests of ours"'
# shellcheck disable=SC2034  # read by mx_wait_eval and check_that
silent_ms=$((($(mx_now_ns) - cut_ns) / 1000000)) b_quiet=$(wc -l <"$MX_TMP/cp-b.log")
check "split: etcd lets B's key go after its TTL" mx_wait_eval 5 '[ -z "$(speaker)" ]'
gone_ms=$((($(mx_now_ns) - cut_ns) / 1000000))
echo "    B cut from etcd: silent after $silent_ms ms, its key gone at etcd after $gone_ms ms (TTL 2 s)"
sleep 2.5
check_that "split: A said it once ($(cp_since a $ab_mark | grep -c 'lease not obtained') line(s) in the split), not every attempt" \
  '[ "$(cp_since a $ab_mark | grep -c "lease not obtained")" -le 2 ]'
check_that "split: B sent no DPD once silent" '! cp_since b $b_quiet | grep -q "sending DPD request"'

# --- the lease changes hands during the split ------------------------------------------------------
# B, its holder, recorded its IKE_SA's message IDs with etcd before each message it sent (its DPDs,
# which A's copy lacks: the link is cut). A, given etcd back (and the carrier's switch), obtains the
# key, raises its copy to B's record before it speaks, then lets its held rekey and MOBIKE update go
# and sends DPD: the gateway answers them all on the same IKE_SA.
# IKE_WITNESS_CONTROL=1 (a control run, not in CI): B's records deleted first, as before they
# existed; the gateway then ignores A's requests (expected to fail from here).
records() { etcdctl get --prefix /medix/ike-mids/ 2>/dev/null | paste -sd' '; }
rec=$(records)
check_that "split: B recorded its IKE_SA's message IDs with etcd ($rec)" '[ -n "$rec" ]'
[ "${IKE_WITNESS_CONTROL:-}" = 1 ] && etcdctl del --prefix /medix/ike-mids/ >/dev/null && echo "    control: B's records deleted"
# shellcheck disable=SC2034  # read by mx_wait_eval and check_that
a_mark=$(wc -l <"$MX_TMP/cp-a.log") gw_mark=$(wc -l <"$GWLOG")
steer_carrier eth0
neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" heal || fail "could not give A etcd back"
check "hand-over: A obtains the lease, reads B's record and raises its IKE_SA's message IDs to it" \
  mx_wait_eval 8 '[ "$(speaker)" = "$HA_A" ] && cp_since a $a_mark | grep -q "record(s) read with the lease" &&
    cp_since a $a_mark | grep -q "raised after a split"'
echo "    A: $(cp_since a $a_mark | grep -o 'message IDs of IKE_SA.*' | head -1)"
check "hand-over: A lets its held requests go with the lease" \
  mx_wait_eval 5 'cp_since a $a_mark | grep -q "IKE requests let go (the witness.s lease)"'
check "hand-over: A's held MOBIKE update went out and the gateway took it (N(ADD_4_ADDR))" \
  mx_wait_eval 10 'cp_since a $a_mark | grep -q "sending address list update using MOBIKE" &&
    tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "parsed INFORMATIONAL request [0-9]* \[ .*N(ADD_4_ADDR)"'
check "hand-over: A sends DPD and the gateway answers" mx_wait_eval 8 'dpd_answered a $a_mark'
check_that "hand-over: the gateway ignored none of A's requests (no message ID it did not expect)" \
  '! tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "expected [0-9]*, ignored"'
check "hand-over: hosp-y reaches the archive through A" ping_archive
check_that "hand-over: the gateway's IKE_SA is the same one, its only one; one IKE_SA_INIT" \
  '[ "$(ike_sa)" = "$ike_before" ] && [ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ]'
# A, the holder, rekeys the CHILD_SA: B's copy of it is stale from then, and A's new one is known
# to etcd only (A's records carry its CHILD_SAs' inbound SPIs): lease_child_b checks that B,
# obtaining the lease after A, deletes it at the gateway.
mx_ctl "$A_PREFIX" peer carrier-y rekey >/dev/null 2>&1
check "hand-over: A, the holder, rekeys the CHILD_SA with the gateway" \
  mx_wait_eval 8 'a_lease=$(node_child a $a_mark); [ -n "$a_lease" ] && gw_child $a_lease >/dev/null'
# --- an exchange withheld at the cut, started again under a raised message ID ---------------------
# (docs/ha.md, item 6, "An exchange withheld at the cut".) inflight_cut: A, the lease's holder, is
# cut from etcd and at once makes a request, a MOBIKE update (the address added in the split goes),
# before its renew deadline: its witness cannot record it, so it is not sent, yet it is charon's
# exchange in flight. At the heal, which A wins, A's raise to B's message IDs puts it back in the
# queue (no packet of it left A) and A sends it again under the raised ID; inflight_heal: the
# gateway answers it, and ignores none of the pair's requests. A control: MEDIX_CP=<medix-cp of
# before the fix> (the raise finds the IKE_SA busy and the retransmits carry the stale ID: these
# checks and the heal's fail).
# B is given etcd back first (A's key refuses it) so that its channel is up when A's key expires:
# a TCP connect begun while B was cut waits for its next SYN retransmit (seen: 14 s).
inflight_cut() {
  local cut_ns
  neigh_cut "mx-$MX_ID-cp-b" 10.255.2.1 "me${MX_ID}b" heal || fail "could not give B etcd back"
  check "back to B: B reaches etcd again (A's key refuses it)" \
    mx_wait_eval 20 'cp_since b $b_mark | grep -q "lease not obtained (held by $HA_A)"'
  after_dpd a
  inflight_gw=$(wc -l <"$GWLOG") cut_ns=$(mx_now_ns)
  neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" cut || fail "could not cut A from etcd"
  ip -n "mx-$MX_ID-cp-a" link del "md${MX_ID}a" || fail "could not remove the address from A's namespace"
  check "cut: A's MOBIKE update, made before its renew deadline, is not sent (its witness cannot record it)" \
    mx_wait_eval 3 'cp_since a $a_mark | grep -q "sending address list update using MOBIKE" &&
      cp_since a $a_mark | grep -q "IKE request [0-9]* of IKE_SA carrier-y.* not sent: its message ID not recorded"'
  inflight_mid=$(cp_since a "$a_mark" | sed -n 's/.*IKE request \([0-9]*\) of IKE_SA .* not sent.*/\1/p' | head -1)
  echo "    A's request ${inflight_mid:-?} withheld; $((($(mx_now_ns) - cut_ns) / 1000000)) ms after the cut"
}
# started_again STEP WHAT MID MARK WAIT COND: A's withheld request MID (A's log from MARK) was
# started again under its raised ID, with COND (eval'd: the speaker, or true), within WAIT s
# (check WHAT), and the gateway answered it.
started_again() {
  local step=$1 what=$2 mid=${3:-x} mark=$4 wait=$5 cond=$6 re again
  re="its request $mid never left this node: started again as request"
  check "$step: $what" mx_wait_eval "$wait" "$cond"' && cp_since a $mark | grep -q "$re"'
  again=$(cp_since a "$mark" | sed -n "s/.*$re \([0-9]*\).*/\1/p" | head -1)
  check "$step: the gateway answered it (request ${again:-?})" \
    mx_wait_eval "$wait" '[ -n "$again" ] && cp_since a $mark | grep -q "parsed INFORMATIONAL response $again "'
  echo "    $step: A's request $mid started again as ${again:-?} at $(cp_since a "$mark" | grep "$re" | cut -c1-12 | head -1)," \
    "answered at $(cp_since a "$mark" | grep "parsed INFORMATIONAL response ${again:-x} " | cut -c1-12 | head -1)"
}
inflight_heal() {
  started_again heal "A's withheld request ${inflight_mid:-?} started again under its raised message ID" \
    "${inflight_mid:-}" "$a_mark" 10 true
  check_that "heal: since A's cut the gateway ignored none of the pair's requests" \
    '! tail -n +$((inflight_gw + 1)) "$GWLOG" | grep -q "expected [0-9]*, ignored"'
}

# --- the heal's leftover: B's CHILD_SA of the split, deleted at the gateway by A -----------------
# (docs/ha.md, item 6, "A CHILD_SA the previous speaker changed".) B, the loser, reports its
# CHILD_SAs' inbound SPIs at its rejoin; A, once it speaks (its hold ends), sends the gateway an
# INFORMATIONAL DELETE of those it does not hold. leftover_split: B's CHILD_SA of the split (in out),
# taken before the heal; leftover_heal: the gateway has it no more, on the same IKE_SA (the check
# after it), and ESP crosses A's new one both ways. A control: MEDIX_CP=<medix-cp of before>
# (B's CHILD_SA stays at the gateway: the first two checks fail).
leftover_split() { b_split=$(node_child b "$b_mark"); }
# STEP: NODE (its log from MARK) deleted the CHILD_SA whose SPIs are SPIS ("in out") at the
# gateway: the gateway has it no more, and NODE sent that DELETE and had it answered.
deleted_at_gateway() {
  local step=$1 node=$2 mark=$3 spis=$4 what=$5
  # Gone from a listing that has the IKE_SA (one swanctl did not answer is no answer). The DELETE's
  # lines are waited for: once, at a load of 12, the gateway's CHILD_SA was not listed 2 s before
  # the DELETE that the gateway then logged.
  check "$step: ${node^^} deletes $what (${spis:-?}) at the gateway: it is there no more" \
    mx_wait_eval 8 "[ -n '$spis' ] && l=\$(swan --list-sas --raw 2>/dev/null) && grep -q 'state=ESTABLISHED' <<<\"\$l\" &&
      ! grep -q 'spi-in=${spis#* } spi-out=${spis%% *}' <<<\"\$l\""
  check "$step: ${node^^} sent that DELETE (ESP SPI ${spis%% *}, not held at ${node^^}) and the gateway answered it" \
    mx_wait_eval 3 "cp_since $node $mark | grep -q 'deleting CHILD_SA ESP SPI ${spis%% *} .* not held here' &&
      cp_since $node $mark | grep -q 'the peer answered our DELETE of the other node'"
}
leftover_heal() {
  deleted_at_gateway heal a "$a_mark" "$b_split" "B's CHILD_SA of the split"
  check "heal: after it, ESP crosses A's new CHILD_SA both ways" \
    mx_wait_eval 5 'ping_archive && both_ways $(node_child a $a_mark)'
  echo "    A: raised at $(cp_since a "$a_mark" | grep "raised after a split" | cut -c1-12 | head -1),"\
    "the DELETE sent at $(cp_since a "$a_mark" | grep "deleting CHILD_SA ESP SPI" | cut -c1-12 | head -1),"\
    "answered at $(cp_since a "$a_mark" | grep "the peer answered our DELETE" | cut -c1-12 | head -1)"
  echo "    the gateway's CHILD_SAs after A's DELETE (in out packets-in packets-out): $(gw_children | paste -sd,)"
}

# --- a CHILD_SA of the previous lease holder, deleted at the gateway by the next one ------------
# (docs/ha.md, item 6, "A CHILD_SA the previous speaker changed".) A's records carried the inbound
# SPI of the CHILD_SA it made by its rekey (a_lease); B, obtaining the lease, reads it with A's
# message IDs and, once it speaks, sends the gateway a DELETE of it (B does not hold it). Then B's
# rekey of its stale copy is answered NO_CHILD_SA and B makes a new CHILD_SA, which ESP crosses. A
# control: MEDIX_CP=<medix-cp of before> (A's CHILD_SA stays at the gateway: the first two fail).
lease_child_b() {
  deleted_at_gateway "back to B" b "$b_mark" "$a_lease" "A's CHILD_SA of its lease"
  echo "    B: $(cp_since b "$b_mark" | grep -o 'record(s) read with the lease.*' | head -1);"\
    "raised at $(cp_since b "$b_mark" | grep "raised after a split" | cut -c1-12 | head -1),"\
    "the DELETE sent at $(cp_since b "$b_mark" | grep "deleting CHILD_SA ESP SPI" | cut -c1-12 | head -1),"\
    "answered at $(cp_since b "$b_mark" | grep "the peer answered our DELETE" | cut -c1-12 | head -1)"
}

# And back to B, which will lose the heal: B given etcd back, A cut from it with a request of its
# own in flight (inflight_cut, above), and the switch to B.
# B obtains the key, raises its copy to A's record, and rekeys the CHILD_SA (an operator's rekey):
# A's copy of it is stale from then. An operator's rekey on A is held.
a_mark=$(wc -l <"$MX_TMP/cp-a.log") b_mark=$(wc -l <"$MX_TMP/cp-b.log") gw_mark=$(wc -l <"$GWLOG")
inflight_cut
steer_carrier ethb
check "back to B: A goes silent; B obtains the lease and raises its IKE_SA's message IDs to A's record" \
  mx_wait_eval 8 'cp_since a $a_mark | grep -q "renew deadline: no IKE requests of ours" && [ "$(speaker)" = "$HA_B" ] &&
    cp_since b $b_mark | grep -q "raised after a split"'
echo "    B: $(cp_since b $b_mark | grep -o 'message IDs of IKE_SA.*' | head -1)"
lease_child_b
c_pre=$(child)
mx_ctl "$B_PREFIX" peer carrier-y rekey >/dev/null 2>&1
check "back to B: B, the holder, rekeys the CHILD_SA with the gateway" \
  mx_wait_eval 8 'c=$(child); [ -n "$c" ] && [ "${c%% *}" != "${c_pre%% *}" ] && gw_child $(node_child b $b_mark) >/dev/null'
check "back to B: hosp-y reaches the archive through B, ESP both ways on B's CHILD_SA" \
  mx_wait_eval 5 'ping_archive && both_ways $(node_child b $b_mark)'
echo "    the gateway's CHILD_SAs (in out packets-in packets-out): $(gw_children | paste -sd,)"
check_that "back to B: the gateway ignored none of B's requests; the same IKE_SA, its only one; one IKE_SA_INIT" \
  '! tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "expected [0-9]*, ignored" &&
    [ "$(ike_sa)" = "$ike_before" ] && [ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ]'
mx_ctl "$A_PREFIX" peer carrier-y rekey >/dev/null 2>&1
check "back to B: an operator's rekey on A is held" mx_wait_eval 5 'cp_since a $a_mark | grep -q "expiry held"'

# --- the heal: A wins (priority 200) though B held the lease; B rejoins -----------------------------
# A's copy of the CHILD_SA B rekeyed is stale: its rekey (the resync's, its held one) is answered
# NO_CHILD_SA and charon makes a new CHILD_SA, which carries the tunnel.
a_mark=$(wc -l <"$MX_TMP/cp-a.log")
leftover_split
cp_link heal && segments off && steer_carrier none && neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" heal ||
  fail "could not heal"
check "heal: A master and active, B backup and standby" \
  mx_wait_eval 10 'mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE && mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY'
check "heal: medix-cp B rejoined A, A raised its message IDs to B's" \
  mx_wait_eval 10 'cp_since b $b_mark | grep -q "rejoining the active peer" && cp_since a $a_mark | grep -q "raised after a split"'
echo "    A: $(cp_since a $a_mark | grep -o 'message IDs of IKE_SA.*' | head -1)"
check "heal: A let its held rekey go once B was standby" \
  mx_wait_eval 10 'cp_since a $a_mark | grep -q "IKE requests let go (a standby peer): 1 held CHILD_SA expiries run"'
check "heal: A's stale copy of B's CHILD_SA: answered NO_CHILD_SA, A makes a new one that the gateway has" \
  mx_wait_eval 10 'cp_since a $a_mark | grep -q "peer didn.t find the CHILD_SA we tried to rekey" &&
    gw_child $(node_child a $a_mark) >/dev/null'
check "heal: hosp-y reaches the archive through A, ESP both ways on A's new CHILD_SA" \
  mx_wait_eval 10 'ping_archive && both_ways $(node_child a $a_mark)'
echo "    A's CHILD_SA $(node_child a $a_mark); the gateway's (in out packets-in packets-out): $(gw_children | paste -sd,)"
inflight_heal
leftover_heal
check_that "heal: the gateway's IKE_SA is the same one ($ike_before), its only one; one IKE_SA_INIT in all" \
  '[ "$(ike_sa)" = "$ike_before" ] && [ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ]'
a_mark=$(wc -l <"$MX_TMP/cp-a.log")
check "heal: A (paired) sends DPD and the gateway answers" mx_wait_eval 8 'dpd_answered a $a_mark'
check_that "heal: nobody holds the lease" '[ -z "$(speaker)" ]'
# held_then_run LABEL COUNT NOTE: the end of held_rekeys and held_lifetimes. A's held CHILD_SA
# rekey (COUNT of them, a regex) and IKE_SA rekey reached the gateway in nothing; A given etcd
# back obtains the lease and runs both: a new CHILD_SA at the gateway that ESP crosses both ways,
# the one IKE_SA rekeyed. Reads the caller's a_mark, gw_mark, c_pre, ike_pre, a_old; sets t_run.
held_then_run() {
  local label=$1 count=$2 note=$3
  check_that "$label: the gateway got no rekey (its SAs unchanged, no CREATE_CHILD_SA from A)" \
    '[ "$(gw_children | cut -d" " -f1,2 | sort)" = "$c_pre" ] && [ "$(ike_sa)" = "$ike_pre" ] &&
     ! tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "parsed CREATE_CHILD_SA request"'
  neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" heal || fail "could not give A etcd back"
  check "$label: A obtains the lease and runs the held CHILD_SA rekey" \
    mx_wait_eval 8 'cp_since a $a_mark | grep -qE "IKE requests let go \(the witness.s lease\): $count held CHILD_SA expiries run"'
  t_run=$(date +%s.%N)
  check "$label: A rekeyed its CHILD_SA ($a_old) with the gateway (A's new one at the gateway)" \
    mx_wait_eval 8 'n=$(node_child a $a_mark); [ -n "$n" ] && [ "$n" != "$a_old" ] && gw_child $n >/dev/null'
  check "$label: A rekeyed the IKE_SA with the gateway: its one IKE_SA, new SPIs, one IKE_SA_INIT in all" \
    mx_wait_eval 8 'cp_since a $a_mark | grep -q "IKE_SA carrier-y\[[0-9]*\] rekeyed between" && i=$(ike_sa) && [ -n "$i" ] &&
      [ "$(cut -d" " -f2,3 <<<"$i")" != "$(cut -d" " -f2,3 <<<"$ike_pre")" ] && [ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ]'
  check_that "$label: the gateway ignored none of A's requests" '! tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "expected [0-9]*, ignored"'
  check "$label: hosp-y reaches the archive, ESP both ways on A's new CHILD_SA$note" \
    mx_wait_eval 5 'ping_archive && both_ways $(node_child a $a_mark)'
}

# --- the fence's CHILD_SA rekey and an IKE_SA rekey held, then run with the lease ----------------------
# A (active, paired after the heal) cut from etcd and from the medix-cp link: no standby peer, no
# lease, its requests held. medix-dp B stopped (SIGSTOP: no acks) and pings from hosp-y, whose
# replies are A's outbound ESP: A's SA stops at its fence, medix-dp A sends HA_FENCED and medix-cp
# A's rekey of that CHILD_SA (cp_charon_expire) is held. An IKE_SA rekey (charon's rekey job, the
# one its IKE lifetime schedules, queued by `medixctl peer NAME rekey-ike`) is held too. A given
# etcd back obtains the lease and runs both: a new CHILD_SA and the IKE_SA rekeyed, with the
# gateway, no IKE_SA_INIT.
held_rekeys() {
  local a_mark gw_mark c_pre f a_old ike_pre t0 t_held t_run
  fenced() { mx_ctl "$A_PREFIX" -o json counters | mx_json - "sum(int(x.get('packets', 0)) for x in d.get('drops', []) if x.get('reason') == 'ha_sa_fenced')"; }
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_mark=$(wc -l <"$MX_TMP/cp-a.log") gw_mark=$(wc -l <"$GWLOG") c_pre=$(gw_children | cut -d' ' -f1,2 | sort)
  a_old=$(node_child a 0) ike_pre=$(ike_sa) t0=$(date +%s.%N)
  neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" cut && cp_link cut || fail "could not cut A from etcd and B"
  check "held: A, without a standby peer and cut from etcd, holds its IKE requests" \
    mx_wait_eval 5 'cp_since a $a_mark | grep -q "IKE requests held"'
  kill -STOP "$B_PID"
  mx_in hosp-y ping -n -i 0.0005 -c 800 -W 1 -q "$ARCHIVE_CORE" >"$MX_TMP/ping-fence.txt" 2>&1
  f=$(fenced)
  echo "    pings while B is stopped: $(grep -o '[0-9]* received' "$MX_TMP/ping-fence.txt"); $f replies fenced"
  check_that "held: A's SA stopped at its fence (replies dropped as ha_sa_fenced)" '[ "$f" -gt 0 ]'
  check "held: medix-cp A got HA_FENCED and held the CHILD_SA's rekey" \
    mx_wait_eval 5 'cp_since a $a_mark | grep -q HA_FENCED && cp_since a $a_mark | grep -q "soft expiry held"'
  mx_ctl "$A_PREFIX" peer carrier-y rekey-ike >/dev/null 2>&1
  check "held: A's IKE_SA rekey (charon's job) is held" mx_wait_eval 5 'cp_since a $a_mark | grep -q "IKE_SA rekey/delete held"'
  check "held: medixctl ha on A: not the holder, both held now" \
    witness "$A_PREFIX" 'w["wanted"] and not w["holder"] and int(w["held_exchanges"]) >= 2'
  t_held=$(date +%s.%N)
  held_then_run held 1 " (B still stopped)"
  echo "    held: the whole case $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; run $(awk -v a="$t_held" -v b="$t_run" 'BEGIN { printf "%.1f", b - a }') s after etcd was back; CHILD_SA $a_old -> $(node_child a $a_mark); IKE_SA $ike_pre -> $(ike_sa)"
  kill -CONT "$B_PID"
  cp_link heal || fail "could not give the medix-cp link back"
}
held_rekeys

# --- the lifetimes' own triggers held, then run with the lease ------------------------------------
# (docs/ha.md, item 6; docs/cp.md, "Lifetimes changed in place".) A cut from etcd and from B's
# medix-cp as in held_rekeys (medix-dp B running: no fence), its requests held; then its peer's
# lifetimes shortened by ApplyIntent on A, in place: the IKE_SA kept (its SPIs at the gateway),
# the CHILD_SA's rekey at its new time lifetime (medix-cp's timer) and the IKE_SA's at its new IKE
# lifetime (the job charon's scheduler queues) both fall due in the split and are held. The
# intent's lifetimes put back, in place too (the same IKE_SA; a rekey due stays due, and the SAs
# it makes have the intent's lifetimes again); A given etcd back obtains the lease and runs both.
held_lifetimes() {
  local a_mark gw_mark c_pre a_old ike_pre ages ike_r child_r t0 t_apply t_held t_run out
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_mark=$(wc -l <"$MX_TMP/cp-a.log") gw_mark=$(wc -l <"$GWLOG") c_pre=$(gw_children | cut -d' ' -f1,2 | sort)
  a_old=$(node_child a 0) ike_pre=$(ike_sa) t0=$(date +%s.%N)
  cp "$MX_TMP/intent-a.json" "$MX_TMP/intent-a-lifetimes-before.json"
  neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" cut && cp_link cut || fail "could not cut A from etcd and B"
  check "lifetimes: A, without a standby peer and cut from etcd, holds its IKE requests" \
    mx_wait_eval 5 'cp_since a $a_mark | grep -q "IKE requests held"'
  # The new times from the SAs' ages (A's IKE_SA, its newest CHILD_SA): the CHILD_SA's rekey
  # due 2 s from now (its jitter, the gap to its life less 1 s, is 0), the IKE_SA's 3 s (less its
  # jitter, a tenth of it, rounded down).
  ages=$(mx_ctl "$A_PREFIX" -o json peers | mx_json - '(lambda i: "%s %s" % (i["established_seconds"],
    min(int(c["installed_seconds"]) for c in i["child_sas"])))(d["peers"][0]["ike_sas"][0])')
  read -r ike_r child_r <<<"${ages:-0 0}"
  ike_r=$((ike_r + 3)) child_r=$((child_r + 2))
  mx_json "$MX_TMP/intent-a-lifetimes-before.json" "dict(d, peers=[dict(d['peers'][0], ike_rekey_seconds=$ike_r,
    child_rekey_seconds=$child_r, child_life_seconds=$((child_r + 1)))] + d['peers'][1:])" >"$MX_TMP/intent-a-lifetimes.json"
  out=$(mx_ctl "$A_PREFIX" intent apply "$MX_TMP/intent-a-lifetimes.json" 2>&1)
  t_apply=$(date +%s.%N)
  check_that "lifetimes: ApplyIntent on A (IKE_SA, CHILD_SA ${ages:-?} s old; now IKE $ike_r s, CHILD_SA $child_r s): in place ($out)" \
    'cp_since a $a_mark | grep -q "lifetimes changed in place: 1 IKE_SA(s) kept, [1-9] SA rekey(s) brought forward"'
  check_that "lifetimes: the gateway's IKE_SA and CHILD_SA kept (the same SPIs)" \
    '[ "$(ike_sa)" = "$ike_pre" ] && [ "$(gw_children | cut -d" " -f1,2 | sort)" = "$c_pre" ]'
  check "lifetimes: A's CHILD_SA rekey at its time lifetime (medix-cp's timer) is held" \
    mx_wait_eval 5 'cp_since a $a_mark | grep -q "soft time lifetime reached" && cp_since a $a_mark | grep -q "soft expiry held"'
  check "lifetimes: A's IKE_SA rekey at its IKE lifetime (charon's scheduled job) is held" \
    mx_wait_eval 5 'cp_since a $a_mark | grep -q "IKE_SA rekey/delete held"'
  t_held=$(date +%s.%N)
  check "lifetimes: medixctl ha on A: not the holder, both held now" \
    witness "$A_PREFIX" 'w["wanted"] and not w["holder"] and int(w["held_exchanges"]) >= 2'
  out=$(mx_ctl "$A_PREFIX" intent apply "$MX_TMP/intent-a-lifetimes-before.json" 2>&1)
  check_that "lifetimes: put back in place ($out): the same IKE_SA" \
    '[ $(cp_since a $a_mark | grep -c "lifetimes changed in place: 1 IKE_SA(s) kept") = 2 ] && [ "$(ike_sa)" = "$ike_pre" ]'
  held_then_run lifetimes "[1-9]" ""
  echo "    lifetimes: $(cp_since a "$a_mark" | grep -o 'lifetimes changed in place, rekeying in [0-9]*s' | head -1);" \
    "both held $(awk -v a="$t_apply" -v b="$t_held" 'BEGIN { printf "%.1f", b - a }') s after the apply; run" \
    "$(awk -v a="$t_held" -v b="$t_run" 'BEGIN { printf "%.1f", b - a }') s later, with the lease; CHILD_SA $a_old -> $(node_child a "$a_mark"); IKE_SA $ike_pre -> $(ike_sa)"
  cp_link heal || fail "could not give the medix-cp link back"
  echo "    lifetimes: the whole case $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}
held_lifetimes
# --- a request withheld at the cut, then the lease regained; and one only B's answers passed -------
# (docs/ha.md, item 6, "An exchange withheld at the cut".) After the held rekeys, a second split:
# A holds the lease, B is active beside it. Twice A, the holder, is cut from etcd
# just after a DPD and makes a request at once (a MOBIKE update: not sent, unrecorded, yet
# charon's exchange in flight).
# regain_initiated: B obtains the lease and sends DPD (its initiating ID passes A's request), is
# cut from etcd in turn, and A obtains the lease again: its raise to B's record starts the
# request again under the raised ID, and the gateway answers it.
# regain_responded: B, without the lease, answers the gateway's rekey of the CHILD_SA (only its
# responding ID moves). At the heal A, the winner, finds its unsent request still expected by
# the gateway: it goes as built (not rebuilt: a second request under one ID makes the IV
# generator refuse A's later responses), A's responding ID is raised to B's once it is answered,
# A deletes B's CHILD_SA at the gateway, and the gateway's next request is answered by A.
# A control: MEDIX_CP=<medix-cp of before> (regain_responded's raise leaves the IKE_SA busy).
regain_mark() { ra=$(wc -l <"$MX_TMP/cp-a.log") rb=$(wc -l <"$MX_TMP/cp-b.log") rg=$(wc -l <"$GWLOG"); }
# a_addr add|del: an address comes to A's medix-cp namespace, or goes (charon's MOBIKE update).
a_addr() {
  local ns=mx-$MX_ID-cp-a
  if [ "$1" = del ]; then ip -n "$ns" link del "mr${MX_ID}a"; return; fi
  ip -n "$ns" link add "mr${MX_ID}a" type veth peer name "mr${MX_ID}p" && ip -n "$ns" addr add 10.78.0.1/24 dev "mr${MX_ID}a" &&
    ip -n "$ns" link set "mr${MX_ID}p" up && ip -n "$ns" link set "mr${MX_ID}a" up
}
# withhold_at_cut STEP add|del: after a DPD of A's, A cut from etcd and its address changed at
# once; `withheld`: the ID of A's MOBIKE update, not sent.
withhold_at_cut() {
  after_dpd a
  regain_mark
  neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" cut || fail "could not cut A from etcd"
  a_addr "$2" || fail "could not change A's addresses"
  check "$1: A's MOBIKE update made at its cut from etcd is not sent (unrecorded)" \
    mx_wait_eval 3 'cp_since a $ra | grep -q "sending address list update using MOBIKE" &&
      cp_since a $ra | grep -q "IKE request [0-9]* of IKE_SA carrier-y.* not sent: its message ID not recorded"'
  withheld=$(cp_since a "$ra" | sed -n 's/.*IKE request \([0-9]*\) of IKE_SA .* not sent.*/\1/p' | head -1)
}
regain_split() {
  local b_at
  b_at=$(wc -l <"$MX_TMP/cp-b.log")
  check "regain: after the held rekeys B rejoined A and holds copies of its SAs" \
    mx_wait_eval 10 'cp_since b $b_at | sed -n "/rejoining the active peer/,\$p" | grep -q "installed HA CHILD_SA"'
  regain_ike=$(ike_sa) t_regain=$(date +%s.%N)
  # The link first: A, active alone, obtains the lease before B is active (B keeps its etcd
  # channel: one cut from etcd reconnects late, after TCP's SYN retransmits, "back to B" above).
  steer_carrier eth0 && cp_link cut || fail "could not cut the medix-cp link"
  check "regain: A, its peer silent, obtains the lease" mx_wait_eval 10 '[ "$(speaker)" = "$HA_A" ]'
  segments on || fail "could not isolate the nodes"
  check "regain: a split, B active beside A; A's key refuses it" \
    mx_wait_eval 10 'mx_pair_is $B_PREFIX master HA_ROLE_ACTIVE && cp_since b $b_at | grep -q "lease not obtained (held by $HA_A)"'
}
regain_initiated() {
  withhold_at_cut regain add
  steer_carrier ethb
  check "regain: B obtains the lease, raises its IKE_SA to A's record and sends DPD that the gateway answers" \
    mx_wait_eval 10 '[ "$(speaker)" = "$HA_B" ] && cp_since b $rb | grep -q "raised after a split" && dpd_answered b $rb'
  # Its next DPD is 2 s away: B is silent before (its renew deadline).
  neigh_cut "mx-$MX_ID-cp-b" 10.255.2.1 "me${MX_ID}b" cut || fail "could not cut B from etcd"
  check "regain: B cut from etcd too: its key gone" mx_wait_eval 5 '[ -z "$(speaker)" ]'
  steer_carrier eth0
  neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" heal || fail "could not give A etcd back"
  started_again regain "A obtains the lease again and starts its withheld request ${withheld:-?} again under B's raised ID" \
    "${withheld:-}" "$ra" 8 '[ "$(speaker)" = "$HA_A" ]'
  check_that "regain: since A's cut the gateway ignored none of the pair's requests" \
    '! tail -n +$((rg + 1)) "$GWLOG" | grep -q "expected [0-9]*, ignored"'
}
regain_responded() {
  local b_child='' sent
  withhold_at_cut responded del
  steer_carrier ethb
  swan --rekey --child hosp >"$MX_TMP/gw-rekey-b.txt" 2>&1 # the gateway rekeys its CHILD_SA with B
  check "responded: B, without the lease, answered the gateway's rekey (B's new CHILD_SA at the gateway)" \
    mx_wait_eval 5 'cp_since b $rb | grep -q "parsed CREATE_CHILD_SA request" && b_child=$(node_child b $rb) &&
      [ -n "$b_child" ] && gw_child $b_child >/dev/null'
  # VRRP first (B backup), then, once charon's first retransmit (4 s) is withheld too (the next
  # is 7 s later, past the heal's raise), the medix-cp link and etcd.
  segments off && steer_carrier none || fail "could not join the segments"
  check "responded: A's retransmit of request ${withheld:-?} is not sent either" \
    mx_wait_eval 6 '[ "$(cp_since a $ra | grep -c "IKE request ${withheld:-x} of IKE_SA .* not sent")" -ge 2 ]'
  cp_link heal && neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" heal && neigh_cut "mx-$MX_ID-cp-b" 10.255.2.1 "me${MX_ID}b" heal ||
    fail "could not heal"
  check "responded: the heal: A active, B standby and rejoined, A raised to B's message IDs" \
    mx_wait_eval 10 'mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE && mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY &&
      cp_since b $rb | grep -q "rejoining the active peer"'
  sent="its request ${withheld:-x} never left this node and the peer still expects it: sent as built"
  check "responded: A's request ${withheld:-?} (the gateway still expects its ID) goes as built, not rebuilt" \
    mx_wait_eval 10 'cp_since a $ra | grep -q "$sent"'
  check "responded: the gateway answered it, then A's responding ID was raised to B's" \
    mx_wait_eval 8 'cp_since a $ra | grep -q "parsed INFORMATIONAL response ${withheld:-x} " &&
      cp_since a $ra | grep -q "responding message ID of IKE_SA carrier-y.* raised after a split: .* its request ${withheld:-x} answered"'
  echo "    responded: $(cp_since a "$ra" | grep -o 'responding message ID of IKE_SA.*' | head -1); sent at" \
    "$(cp_since a "$ra" | grep "$sent" | cut -c1-12 | head -1), answered at" \
    "$(cp_since a "$ra" | grep "parsed INFORMATIONAL response ${withheld:-x} " | cut -c1-12 | head -1)"
  deleted_at_gateway responded a "$ra" "$b_child" "B's CHILD_SA of the gateway's rekey in the split"
  check "responded: hosp-y reaches the archive through A, ESP both ways on A's CHILD_SA" \
    mx_wait_eval 10 'ping_archive && both_ways $(node_child a $ra)'
  swan --rekey --child hosp >"$MX_TMP/gw-rekey-a.txt" 2>&1
  check "responded: the gateway's next request (its rekey of A's CHILD_SA) is answered by A" \
    mx_wait_eval 8 'cp_since a $ra | grep -q "parsed CREATE_CHILD_SA request"'
  check "responded: ESP both ways on the CHILD_SA of that rekey" mx_wait_eval 5 'ping_archive && both_ways $(node_child a $ra)'
  check_that "responded: since A's cut the gateway ignored none of the pair's requests; the same IKE_SA, one IKE_SA_INIT" \
    '! tail -n +$((rg + 1)) "$GWLOG" | grep -q "expected [0-9]*, ignored" &&
      [ "$(ike_sa)" = "$regain_ike" ] && [ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ]'
  echo "    regain and responded: $(awk -v a="$t_regain" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}
regain_split
regain_initiated
regain_responded

# --- an IKE_SA's held rekey and held delete: the rekey first ---------------------------------------
# (docs/ha.md, item 6, "Held without it".) A's IKE lifetime set to 10 s in place, paired: the
# IKE_SA's rekey brought forward makes a new one whose rekey (9-10 s) and maximum lifetime (its
# delete, 1 s after the rekey) both fall due in a split of A from etcd and B's medix-cp. Both are
# held; at the lease the rekey runs first and the delete waits for it (the rekey deletes the old
# IKE_SA): the gateway's IKE_SA rekeyed, not closed. A control: MEDIX_CP=<medix-cp of before> (its
# delete ran first on its own tick: the IKE_SA closed at the gateway).
held_rekey_delete() {
  local a_mark gw_mark ike_pre init_pre t0 out
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_mark=$(wc -l <"$MX_TMP/cp-a.log") gw_mark=$(wc -l <"$GWLOG") init_pre=$(init_count) t0=$(date +%s.%N)
  cp "$MX_TMP/intent-a.json" "$MX_TMP/intent-a-ike-before.json"
  mx_json "$MX_TMP/intent-a-ike-before.json" "dict(d, peers=[dict(d['peers'][0], ike_rekey_seconds=10)] + d['peers'][1:])" \
    >"$MX_TMP/intent-a-ike.json"
  out=$(mx_ctl "$A_PREFIX" intent apply "$MX_TMP/intent-a-ike.json" 2>&1)
  check "rekey+delete: IKE lifetime 10 s in place ($out): A rekeys its IKE_SA, the new one with it" \
    mx_wait_eval 8 'cp_since a $a_mark | grep -q "IKE_SA carrier-y\[[0-9]*\] rekeyed between"'
  ike_pre=$(ike_sa) a_mark=$(wc -l <"$MX_TMP/cp-a.log")
  neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" cut && cp_link cut || fail "could not cut A from etcd and B"
  check "rekey+delete: A's new IKE_SA's rekey and delete (its maximum lifetime) both held in the split" \
    mx_wait_eval 16 '[ "$(cp_since a $a_mark | grep -c "IKE_SA rekey/delete held")" -ge 2 ]'
  out=$(mx_ctl "$A_PREFIX" intent apply "$MX_TMP/intent-a-ike-before.json" 2>&1)
  check_that "rekey+delete: the lifetime put back in place ($out); the gateway's IKE_SA unchanged" '[ "$(ike_sa)" = "$ike_pre" ]'
  neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" heal || fail "could not give A etcd back"
  check "rekey+delete: A obtains the lease and rekeys the IKE_SA: one IKE_SA at the gateway, new SPIs, no IKE_SA_INIT" \
    mx_wait_eval 8 'cp_since a $a_mark | grep -q "IKE_SA carrier-y\[[0-9]*\] rekeyed between" && i=$(ike_sa) && [ -n "$i" ] &&
      [ "$(cut -d" " -f2,3 <<<"$i")" != "$(cut -d" " -f2,3 <<<"$ike_pre")" ] && [ "$(ike_count)" = 1 ] && [ "$(init_count)" = "$init_pre" ]'
  check_that "rekey+delete: A's first IKE_SA delete is the rekey's (of the old IKE_SA), not the held one" \
    '[ "$(cp_since a $a_mark | grep -m1 -E "rekeyed between|deleting IKE_SA" | grep -c "rekeyed between")" = 1 ]'
  check "rekey+delete: hosp-y reaches the archive, ESP both ways on A's CHILD_SA" \
    mx_wait_eval 5 'ping_archive && both_ways $(node_child a 0)'
  cp_link heal || fail "could not give the medix-cp link back"
  echo "    rekey+delete: $(cp_since a "$a_mark" | grep -c "held IKE_SA delete (hard lifetime) let go after") delete(s) waited for the rekey;" \
    "IKE_SA $ike_pre -> $(ike_sa); the case $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}
held_rekey_delete

# --- the first second of a split: an exchange before the node finds its peer silent -----------------
# (docs/ha.md, item 6, "The standby's acknowledgement".) A node finds its peer silent only when its
# heartbeats have stopped for 1 s. Paired, A answers the gateway's MOBIKE update (an address comes to
# the gateway) at once after a cut of the medix-cp link, etcd (A's) and the segments, the switch still
# on A: the ha plugin's sync of that message ID to B is lost with the link, so A's response is not
# sent until B acknowledges it, and B never does. The gateway's retransmit (4 s) reaches B, fed by the
# switch by then: B answers it and the gateway's next request, in step. At the heal (A wins) A raises
# its IDs to B's and answers the gateway's next request; one IKE_SA throughout, nothing ignored.
# The control: MEDIX_CP=<medix-cp of before>: A answers at once, B's copy is one ID behind and B
# ignores the gateway's requests (expected to fail).
# gw_address add|del: an address comes to the gateway's namespace, or goes: its MOBIKE update.
gw_address() {
  if [ "$1" = add ]; then
    mx_in carrier-y-gw ip link add "fs${MX_ID}g" type veth peer name "fs${MX_ID}h" &&
      mx_in carrier-y-gw ip addr add 10.78.0.1/24 dev "fs${MX_ID}g" && mx_in carrier-y-gw ip link set "fs${MX_ID}h" up &&
      mx_in carrier-y-gw ip link set "fs${MX_ID}g" up
  else mx_in carrier-y-gw ip link del "fs${MX_ID}g"; fi
}
first_second() {
  local a_mark b_mark gw_mark t0 ike_pre cut_ms
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_mark=$(wc -l <"$MX_TMP/cp-a.log") b_mark=$(wc -l <"$MX_TMP/cp-b.log") t0=$(date +%s.%N)
  # Paired and quiet first: B rejoined after the last case (its resync's rekeys done), A's DPD answered.
  mx_wait_eval 12 'cp_since b $b_mark | sed -n "/rejoining the active peer/,\$p" | grep -q "installed HA CHILD_SA"' ||
    echo "    first second: no rejoin of B seen after the last case"
  # Just after a DPD of A's: its next one (2 s) comes after A finds B silent, and is held.
  check "first second: paired, nobody holds the lease, A's DPD answered" mx_wait_eval 6 '[ -z "$(speaker)" ] && after_dpd a'
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_mark=$(wc -l <"$MX_TMP/cp-a.log") b_mark=$(wc -l <"$MX_TMP/cp-b.log") gw_mark=$(wc -l <"$GWLOG") ike_pre=$(ike_sa)
  steer_carrier eth0
  cut_ms=$(mx_now_ns)
  neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" cut && cp_link cut && segments on || fail "could not split"
  gw_address add || fail "could not add an address to the gateway"
  check "first second: A got the gateway's MOBIKE update; its response not sent, B never acknowledged the sync" \
    mx_wait_eval 4 'cp_since a $a_mark | grep -q "parsed INFORMATIONAL request [0-9]* \[ .*N(ADD_4_ADDR)" &&
      cp_since a $a_mark | grep -q "IKE response [0-9]* of IKE_SA carrier-y.* not sent: the pair.s standby did not acknowledge"'
  echo "    first second: A got the request $(cp_since a "$a_mark" | grep -m1 "parsed INFORMATIONAL request" | cut -c1-12)," \
    "its response withheld at $(cp_since a "$a_mark" | grep -m1 "not sent: the pair.s standby" | cut -c1-12)" \
    "(the cut at $(date -d @$((cut_ms / 1000000000)) +%T).$(printf %03d $((cut_ms / 1000000 % 1000))))"
  steer_carrier ethb
  check "first second: the gateway's retransmit reaches B, active by then, which answers it" \
    mx_wait_eval 8 'cp_since b $b_mark | grep -q "parsed INFORMATIONAL request [0-9]* \[ .*N(ADD_4_ADDR)" &&
      tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "parsed INFORMATIONAL response"'
  gw_address del || fail "could not remove the gateway's address"
  check "first second: B answers the gateway's next request too (in step with it)" \
    mx_wait_eval 6 '[ "$(cp_since b $b_mark | grep -c "parsed INFORMATIONAL request")" -ge 2 ]'
  # The heal: A (priority 200) wins, B rejoins and A raises its IDs to B's.
  cp_link heal && segments off && steer_carrier none && neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" heal ||
    fail "could not heal"
  check "first second: the heal: A active, B standby and rejoined, A raised to B's message IDs" \
    mx_wait_eval 10 'mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE && mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY &&
      cp_since b $b_mark | grep -q "rejoining the active peer" && cp_since a $a_mark | grep -q "raised after a split"'
  local a_heal gw_heal
  # shellcheck disable=SC2034  # read by mx_wait_eval
  a_heal=$(wc -l <"$MX_TMP/cp-a.log") gw_heal=$(wc -l <"$GWLOG")
  gw_address add || fail "could not add an address to the gateway"
  check "first second: after the heal A answers the gateway's next request" \
    mx_wait_eval 8 'cp_since a $a_heal | grep -q "parsed INFORMATIONAL request [0-9]* \[ .*N(ADD_4_ADDR)" &&
      tail -n +$((gw_heal + 1)) "$GWLOG" | grep -q "parsed INFORMATIONAL response"'
  gw_address del
  check_that "first second: nothing ignored or unexpected at the gateway or either node; the same IKE_SA, one IKE_SA_INIT" \
    '! tail -n +$((gw_mark + 1)) "$GWLOG" | grep -qE "expected [0-9]*, ignored|but expected" &&
      ! cp_since a $a_mark | grep -qE "expected [0-9]*, ignored|but expected" &&
      ! cp_since b $b_mark | grep -qE "expected [0-9]*, ignored|but expected" &&
      [ "$(ike_sa)" = "$ike_pre" ] && [ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ]'
  local m
  m="$(mx_metric 9464 'medix_cp_ha_ike_confirm_total{event="confirmed"}' "mx-$MX_ID-cp-a") $(mx_metric 9464 medix_cp_ha_ike_confirm_wait_microseconds_total "mx-$MX_ID-cp-a") $(mx_metric 9464 medix_cp_ha_ike_confirm_wait_max_microseconds "mx-$MX_ID-cp-a")"
  echo "    first second: A's IKE messages that waited for B's ack, their waits summed and longest (us): $m;" \
    "the case $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}
first_second

# --- a held CHILD_SA rekey refused, then its held delete ---------------------------------------------
# (docs/ha.md, item 6, "A CHILD_SA whose hard lifetime comes while held".) A cut from B's medix-cp
# (B standby by VRRP, not a peer: A has none) while the test holds the speaker's key, its
# CHILD_SA's time lifetimes shortened in place so that its rekey (soft) and delete (hard) both
# fall due in the split and are held. The
# gateway starts an IKE_SA rekey whose request is lost (its neighbour entry for the pair cut for
# that packet): until its retransmit is answered its IKE_SA is rekeying, and it refuses a
# CREATE_CHILD_SA (TEMPORARY_FAILURE, libcharon's child_create.c). The key let go, A obtains the
# lease: its held rekey runs first and is refused, then its held hard expiry deletes the CHILD_SA
# (its lifetime is over: its keys go), and charon recreates it (after a hard expiry), refused too
# until the gateway's IKE_SA rekey is answered: then one CHILD_SA, on the one IKE_SA, no IKE_SA_INIT.
held_rekey_refused() {
  local a_mark gw_mark init_pre a_old a_short held_spi='' out gw_dev t0 lease
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_mark=$(wc -l <"$MX_TMP/cp-a.log") init_pre=$(init_count) a_old=$(node_child a 0) t0=$(date +%s.%N)
  cp "$MX_TMP/intent-a.json" "$MX_TMP/intent-a-refused-before.json"
  mx_json "$MX_TMP/intent-a-refused-before.json" "dict(d, peers=[dict(d['peers'][0], child_rekey_seconds=6,
    child_life_seconds=7)] + d['peers'][1:])" >"$MX_TMP/intent-a-refused.json"
  out=$(mx_ctl "$A_PREFIX" intent apply "$MX_TMP/intent-a-refused.json" 2>&1)
  # The present CHILD_SA's hard lifetime stays (docs/cp.md); its rekey, due now, makes one with them.
  check "refused: CHILD_SA lifetimes 6/7 s in place ($out): A rekeys its CHILD_SA, the new one with them" \
    mx_wait_eval 8 'a_short=$(node_child a $a_mark); [ -n "$a_short" ] && [ "$a_short" != "$a_old" ]'
  a_mark=$(wc -l <"$MX_TMP/cp-a.log")
  # The speaker's key held by the test (a lease of its own) rather than A cut from etcd: A is
  # refused with its etcd channel up, and obtains the lease within a retry (250 ms) of the key's
  # revocation, however long a channel takes to come back after a cut on this loaded machine.
  lease=$(etcdctl lease grant 60 2>/dev/null | sed -n 's/^lease \([0-9a-f]*\) granted.*/\1/p')
  etcdctl put --lease="$lease" "$SPEAKER_KEY" test-holder >/dev/null 2>&1 || fail "could not hold the speaker's key"
  cp_link cut || fail "could not cut A from B"
  check "refused: A, without a standby peer and the key held by another, holds its IKE requests" \
    mx_wait_eval 5 'cp_since a $a_mark | grep -q "IKE requests held" && cp_since a $a_mark | grep -q "lease not obtained (held by test-holder)"'
  # (Under load the hold may come after that CHILD_SA's own rekey: then its successor's are held.)
  check "refused: a CHILD_SA's rekey and delete (soft and hard time lifetimes) both held" \
    mx_wait_eval 12 'held_spi=$(cp_since a $a_mark | sed -n "s/.*CHILD_SA SPI \([0-9a-f]*\) soft expiry held.*/\1/p" |
      while read -r x; do cp_since a $a_mark | grep -q "SPI $x hard expiry held" && echo "$x"; done | head -1); [ -n "$held_spi" ]'
  out=$(mx_ctl "$A_PREFIX" intent apply "$MX_TMP/intent-a-refused-before.json" 2>&1)
  gw_dev=$(mx_in carrier-y-gw ip route get 192.0.2.1 | sed -n 's/.* dev \([^ ]*\).*/\1/p')
  gw_mark=$(wc -l <"$GWLOG")
  mx_in carrier-y-gw ip neigh replace 192.0.2.1 lladdr 02:00:00:00:de:ad dev "$gw_dev" nud permanent
  swan --rekey --ike ix >/dev/null 2>&1
  check "refused: the gateway's IKE_SA rekey request sent, lost (its IKE_SA rekeying)" \
    mx_wait_eval 5 'tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "generating CREATE_CHILD_SA request [0-9]* \[ SA No KE \]" &&
      tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "sending packet"'
  mx_in carrier-y-gw ip neigh del 192.0.2.1 dev "$gw_dev"
  etcdctl lease revoke "$lease" >/dev/null 2>&1 || fail "could not let the speaker's key go"
  check "refused: A obtains the lease, runs its held rekey first: the gateway refuses it (TEMPORARY_FAILURE: rekeying its IKE_SA)" \
    mx_wait_eval 8 'cp_since a $a_mark | grep -qE "IKE requests let go \(the witness.s lease\): [1-9] held CHILD_SA expiries run" &&
      tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "unable to create CHILD_SA while rekeying IKE_SA" &&
      cp_since a $a_mark | grep -q "received TEMPORARY_FAILURE notify"'
  # (The gateway's log, not its listing: charon's recreate below may follow within 3 s.)
  check "refused: then A's held hard expiry deletes the CHILD_SA, at the gateway too" \
    mx_wait_eval 5 'cp_since a $a_mark | grep -q "still installed after its held rekey: its held hard expiry deletes it" &&
      tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "received DELETE for ESP CHILD_SA with SPI" &&
      tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "closing CHILD_SA hosp"'
  check_that "refused: the rekey went before the delete" \
    '[ "$(cp_since a $a_mark | grep -m1 -E "received TEMPORARY_FAILURE notify|still installed after its held rekey" | grep -c TEMPORARY_FAILURE)" = 1 ]'
  check "refused: charon recreates the CHILD_SA it deleted at its hard expiry: one at the gateway, one IKE_SA, none ignored, ESP both ways" \
    mx_wait_eval 30 'cp_since a $a_mark | grep -q "scheduling CHILD_SA recreate after hard expire" && n=$(node_child a $a_mark) &&
      [ -n "$n" ] && ! grep -qw "$held_spi" <<<"$n" && [ "$(gw_children | wc -l)" = 1 ] && ping_archive && both_ways $n &&
      [ "$(ike_count)" = 1 ] && [ "$(init_count)" = "$init_pre" ] && ! tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "expected [0-9]*, ignored"'
  cp_link heal || fail "could not give the medix-cp link back"
  echo "    refused: $(cp_since a "$a_mark" | grep -o 'CHILD_SA rekeying failed.*' | head -1); CHILD_SA $a_old -> ${a_short:-?} (held: SPI ${held_spi:-?}) -> deleted ->" \
    "$(node_child a "$a_mark"); IKE_SA $(ike_sa); the case $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}
held_rekey_refused

# A case's end: since gw_mark the gateway ignored none of the pair's requests, the IKE_SA is still
# ike_pre, its only one, and no IKE_SA_INIT since init_pre; the case's time since t0 (the caller's
# locals). $1 names the case.
same_ike_sa_at_end() {
  check_that "$1: the gateway ignored none of the pair's requests; the same IKE_SA ($ike_pre), one IKE_SA_INIT" \
    '! tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "expected [0-9]*, ignored" && [ "$(ike_sa)" = "$ike_pre" ] &&
      [ "$(ike_count)" = 1 ] && [ "$(init_count)" = "$init_pre" ]'
  echo "    $1: the case $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}

# The medix-cp link cut first (A, active alone, obtains the lease before B is active), then the
# ports: a split, B active beside A, A the speaker. $1 names the case in the checks.
split_a_speaker() {
  steer_carrier eth0 && cp_link cut || fail "could not cut the medix-cp link"
  check "$1: A, its peer silent, obtains the lease" mx_wait_eval 10 '[ "$(speaker)" = "$HA_A" ]'
  segments on || fail "could not isolate the nodes"
  check "$1: a split, B active beside A, A the speaker" \
    mx_wait_eval 10 'mx_pair_is $B_PREFIX master HA_ROLE_ACTIVE && [ "$(speaker)" = "$HA_A" ]'
}

# --- the carrier's switch flipping between the nodes during a split -------------------------------
# (docs/ha.md, "Still unsafe": the switch flipping.) A split (the medix-cp link cut, the segments
# isolated: both active), A the lease's holder; the switch steered to A, then to B across one
# DPD of A's, then to A again. A's request leaves A whatever the switch does (A sends it); its
# response goes where the switch sends the virtual MAC, to B, whose copy (behind: the link is
# cut) does not take it. The documented outcome: A's request is answered on its retransmit (4 s)
# once the switch is back, B sends no request (no lease), the gateway ignores none, and at the
# heal A wins, B rejoins and the IKE_SA is the same one (its SPIs), one IKE_SA_INIT in all.
switch_flip() {
  local a_mark b_mark gw_mark ike_pre init_pre dpd t0 a_flip b_flip a_heal
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  b_mark=$(wc -l <"$MX_TMP/cp-b.log") t0=$(date +%s.%N)
  check "flip: B rejoined A and holds copies of its SAs" \
    mx_wait_eval 10 'mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY && cp_since b $b_mark | sed -n "/rejoining the active peer/,\$p" | grep -q "installed HA CHILD_SA"'
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_mark=$(wc -l <"$MX_TMP/cp-a.log") gw_mark=$(wc -l <"$GWLOG") ike_pre=$(ike_sa) init_pre=$(init_count)
  split_a_speaker flip
  after_dpd a
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_flip=$(wc -l <"$MX_TMP/cp-a.log") b_flip=$(wc -l <"$MX_TMP/cp-b.log")
  steer_carrier ethb
  check "flip: the switch to B: A sends its next DPD, its response is not A's" \
    mx_wait_eval 5 'cp_since a $a_flip | grep -q "sending DPD request"'
  dpd=$(cp_since a "$a_flip" | sed -n 's/.*generating INFORMATIONAL request \([0-9]*\) \[ \].*/\1/p' | head -1)
  sleep 1
  check_that "flip: A had no response to its DPD ${dpd:-?} while the switch fed B" \
    '[ -n "$dpd" ] && ! cp_since a $a_flip | grep -q "parsed INFORMATIONAL response $dpd "'
  steer_carrier eth0
  check "flip: the switch back to A: A's retransmit of DPD ${dpd:-?} is answered" \
    mx_wait_eval 6 'cp_since a $a_flip | grep -qE "retransmit [0-9]+ of request with message ID ${dpd:-x}\$" &&
      cp_since a $a_flip | grep -q "parsed INFORMATIONAL response ${dpd:-x} "'
  echo "    flip: B, fed A's response: $(cp_since b "$b_flip" | grep -oE 'received message ID [0-9]+, expected [0-9]+, ignored|received INFORMATIONAL response, but expected.*' | head -1)"
  check_that "flip: B sent no IKE request in the split (no lease)" \
    '! cp_since b $b_mark | grep -qE "sending DPD request|generating [A-Z_]* request"'
  # shellcheck disable=SC2034  # read by mx_wait_eval
  a_heal=$(wc -l <"$MX_TMP/cp-a.log")
  cp_link heal && segments off && steer_carrier none || fail "could not heal"
  check "flip: the heal: A active, B standby, rejoined, and A's DPD answered" \
    mx_wait_eval 10 'mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE && mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY &&
      cp_since b $b_flip | sed -n "/rejoining the active peer/,\$p" | grep -q "installed HA CHILD_SA" && dpd_answered a $a_heal'
  check "flip: hosp-y reaches the archive through A, ESP both ways on its CHILD_SA" \
    mx_wait_eval 5 'ping_archive && both_ways $(node_child a 0)'
  same_ike_sa_at_end flip
}
switch_flip

# --- an answer without the lease: the holder raised to it ------------------------------------------
# (docs/ha.md, item 6, "An answer without the lease".) A split, A the holder; the switch fed to B
# across one request of the gateway's (a MOBIKE update: an address comes to the gateway), which
# B, without the lease, answers after writing its responding ID to etcd
# (PREFIX/ike-answered/B/...), the response's packet beside it; B's response is lost: what B sends
# is held by an htb class of 8 bit/s on its veth end (its first packet, the class's burst, is one
# of B's own, VRRP, before) and dropped with the qdisc (no tc action module or netem needed; a
# qdisc that refuses a packet makes af_packet's TX ring send it again later). The switch back to A: A reads B's record with
# its renewals and raises its responding ID; the gateway's retransmit (4 s) reaches A, which sends
# B's response again (charon has none of its own after the raise): the gateway takes it, and its
# next request (the address goes) is answered by A at once, not ignored as an old ID. A control:
# MEDIX_CP=<medix-cp of before> (A ignores the retransmit, `expected N, ignored`, and the gateway
# sends nothing new, until the heal's raise).
# B's response records at etcd: "KEY ID" each (the ID the value starts with; its bytes not shown).
answered_responses() {
  etcdctl get --prefix "/medix/ike-answered/$HA_B/" -w json 2>/dev/null | "$MX_PY" -c '
import base64, json, sys
for kv in json.load(sys.stdin).get("kvs", []):
    k = base64.b64decode(kv["key"])
    if k.endswith(b"/response"): print(k.decode(), base64.b64decode(kv["value"])[:8].decode())'
}
answered_lease() {
  local a_mark b_mark gw_mark a_sw gw_sw ike_pre init_pre t0 lost b_rif=${MX_RIF_B[carrier-y-gw]}
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  b_mark=$(wc -l <"$MX_TMP/cp-b.log") t0=$(date +%s.%N)
  # (After switch_flip's heal, which waited for B's rejoin; A kept etcd throughout.)
  check "answered: paired: B standby, nobody holds the lease" \
    mx_wait_eval 10 'mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY && [ -z "$(speaker)" ]'
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_mark=$(wc -l <"$MX_TMP/cp-a.log") gw_mark=$(wc -l <"$GWLOG") ike_pre=$(ike_sa) init_pre=$(init_count)
  split_a_speaker answered
  tc qdisc replace dev "$b_rif" root handle 1: htb default 1 &&
    tc class add dev "$b_rif" parent 1: classid 1:1 htb rate 8bit ceil 8bit burst 1 cburst 1 2>/dev/null ||
    fail "could not hold what B sends"
  check "answered: what B sends held (its first packet let through)" \
    mx_wait_eval 3 'tc -s qdisc show dev "$b_rif" | grep -q "Sent [0-9]* bytes [1-9][0-9]* pkt"'
  after_dpd a # A's next DPD 2 s away: no exchange of A's in flight while the switch feeds B
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_sw=$(wc -l <"$MX_TMP/cp-a.log") b_mark=$(wc -l <"$MX_TMP/cp-b.log") gw_sw=$(wc -l <"$GWLOG")
  steer_carrier ethb
  gw_address add || fail "could not add an address to the gateway"
  check "answered: B, without the lease, answers the gateway's MOBIKE update, its ID and response's packet written to etcd" \
    mx_wait_eval 4 'cp_since b $b_mark | grep -q "parsed INFORMATIONAL request [0-9]* \[ .*N(ADD_4_ADDR)" &&
      answered_responses | grep -q "^/medix/ike-answered/$HA_B/[0-9a-f.]*/response [0-9a-f]\{8\}\$"'
  steer_carrier eth0
  echo "    answered: B's sends held, then dropped: $(tc -s qdisc show dev "$b_rif" | grep -o 'backlog .*')"
  tc qdisc del dev "$b_rif" root || fail "could not drop what B sent"
  check_that "answered: B's response lost on its way (the gateway has none)" \
    '! tail -n +$((gw_sw + 1)) "$GWLOG" | grep -q "parsed INFORMATIONAL response"'
  check "answered: A, the holder, reads it and raises its responding ID to B's answer" \
    mx_wait_eval 6 'cp_since a $a_sw | grep -q "responding message ID of IKE_SA carrier-y.* raised to the other node.s answers"'
  echo "    answered: $(cp_since a "$a_sw" | grep -o 'responding message ID of IKE_SA.*' | head -1)," \
    "B answered at $(cp_since b "$b_mark" | grep -m1 "parsed INFORMATIONAL request" | cut -c1-12)," \
    "A raised at $(cp_since a "$a_sw" | grep -m1 "raised to the other node.s answers" | cut -c1-12)"
  check "answered: the gateway's retransmit reaches A, which sends B's response again; the gateway takes it" \
    mx_wait_eval 8 'tail -n +$((gw_sw + 1)) "$GWLOG" | grep -q "retransmit 1 of request" &&
      cp_since a $a_sw | grep -q "medix: retransmit of request [0-9]* of IKE_SA carrier-y.*its response sent again" &&
      tail -n +$((gw_sw + 1)) "$GWLOG" | grep -q "parsed INFORMATIONAL response"'
  echo "    answered: $(cp_since a "$a_sw" | grep -o 'medix: retransmit of request.*' | head -1)" \
    "at $(cp_since a "$a_sw" | grep -m1 "medix: retransmit of request" | cut -c1-12)"
  lost=$(cp_since a "$a_sw" | sed -n 's/.*medix: retransmit of request \([0-9]*\) .*/\1/p' | head -1)
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_sw=$(wc -l <"$MX_TMP/cp-a.log") gw_sw=$(wc -l <"$GWLOG")
  gw_address del || fail "could not remove the gateway's address"
  check "answered: the gateway's next request is answered by A at once (within 3 s: before its retransmit)" \
    mx_wait_eval 3 'cp_since a $a_sw | grep -q "parsed INFORMATIONAL request" &&
      tail -n +$((gw_sw + 1)) "$GWLOG" | grep -q "parsed INFORMATIONAL response"'
  # charon drops the retransmit itself (it has no response of its own) after medix-cp's hook sent B's.
  check_that "answered: A ignored none of the gateway's requests in the split but that retransmit (${lost:-?})" \
    '[ -n "$lost" ] && ! cp_since a $a_mark | grep -o "received message ID [0-9]*, expected [0-9]*, ignored" |
      grep -vxq "received message ID $lost, expected $((lost + 1)), ignored"'
  cp_link heal && segments off && steer_carrier none || fail "could not heal"
  check "answered: the heal: A active, B standby and rejoined, A's DPD answered" \
    mx_wait_eval 10 'mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE && mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY &&
      cp_since b $b_mark | grep -q "rejoining the active peer" && dpd_answered a $a_sw'
  same_ike_sa_at_end answered
}
answered_lease

# --- a lease that passes twice before the next holder's DELETE goes out ----------------------------
# (docs/ha.md, item 6, "A lease that passes twice".) A split, A the holder, cut with a request of
# its own withheld (withhold_at_cut). B obtains the lease and rekeys the CHILD_SA: b_lease, in B's
# records. The gateway's answers lost (its neighbour entry for the pair cut), B made VRRP backup
# (it lets the key go), A obtains the lease again: it reads b_lease with B's record and restarts
# its withheld request, whose answer is lost, so its DELETE of b_lease waits behind it. A is cut
# from etcd; the gateway's answer to A's retransmit then reaches A and its next request is not
# sent (unrecorded). B, active again, obtains the lease a second time: A's record (its last
# message's) carries A's own CHILD_SAs, not b_lease, so B
# keeps b_lease, which carries ESP. At the heal A wins and its DELETE, started again under the
# raised ID, goes out (b_lease is the loser's then); A's stale copy is made anew (NO_CHILD_SA).
lease_twice() {
  local b_lease='' again del gw_dev t0 rb_lease
  t0=$(date +%s.%N)
  split_a_speaker twice
  withhold_at_cut twice add
  steer_carrier ethb
  check "twice: B obtains the lease, raises its IKE_SA to A's record and sends DPD that the gateway answers" \
    mx_wait_eval 10 '[ "$(speaker)" = "$HA_B" ] && cp_since b $rb | grep -q "raised after a split" && dpd_answered b $rb'
  mx_ctl "$B_PREFIX" peer carrier-y rekey >/dev/null 2>&1
  check "twice: B, the holder, rekeys the CHILD_SA with the gateway" \
    mx_wait_eval 8 'b_lease=$(node_child b $rb); [ -n "$b_lease" ] && gw_child $b_lease >/dev/null'
  rb_lease=$rb
  # A's etcd back while B holds the key (refused: held by B), so that its channel is up when
  # B's key goes (a connect begun in a long cut waits for gRPC's backoff and TCP's SYN retransmits).
  neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" heal || fail "could not give A etcd back"
  check "twice: A reaches etcd again (B's key refuses it)" \
    mx_wait_eval 20 'cp_since a $ra | grep -q "lease not obtained (held by $HA_B)"'
  after_dpd b
  gw_dev=$(mx_in carrier-y-gw ip route get 192.0.2.1 | sed -n 's/.* dev \([^ ]*\).*/\1/p')
  mx_in carrier-y-gw ip neigh replace 192.0.2.1 lladdr 02:00:00:00:de:ad dev "$gw_dev" nud permanent
  steer_carrier eth0
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  ra=$(wc -l <"$MX_TMP/cp-a.log") rg=$(wc -l <"$GWLOG")
  # B made backup by VRRP (the segments joined: A's priority wins; the medix-cp link still cut):
  # not active, it lets the key go at once and keeps its etcd channel for its second lease.
  segments off || fail "could not join the segments"
  check "twice: B backup (VRRP), not active: B lets the lease go" \
    mx_wait_eval 10 'mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY && cp_since b $rb | grep -q "lease let go"'
  check "twice: A obtains the lease again, reads B's CHILD_SA with its record, restarts its request ${withheld:-?} (the gateway takes it, its answer lost)" \
    mx_wait_eval 8 '[ "$(speaker)" = "$HA_A" ] && cp_since a $ra | grep -q "record(s) read with the lease, [1-9]" &&
      again=$(cp_since a $ra | sed -n "s/.*its request ${withheld:-x} never left this node: started again as request \([0-9]*\).*/\1/p" | head -1) &&
      [ -n "$again" ] && tail -n +$((rg + 1)) "$GWLOG" | grep -q "parsed INFORMATIONAL request $again "'
  neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" cut || fail "could not cut A from etcd"
  check "twice: A cut from etcd before its answer came: its DELETE of B's CHILD_SA (${b_lease:-?}) not made yet" \
    mx_wait_eval 2 'cp_since a $ra | grep -q "renew deadline: no IKE requests of ours" && ! cp_since a $ra | grep -q "deleting CHILD_SA ESP SPI"'
  mx_in carrier-y-gw ip neigh del 192.0.2.1 dev "$gw_dev"
  check "twice: the answer to A's retransmit reaches A; its next request is not sent (unrecorded)" \
    mx_wait_eval 12 'cp_since a $ra | grep -q "parsed INFORMATIONAL response ${again:-x} " &&
      del=$(cp_since a $ra | sed -n "s/.*IKE request \([0-9]*\) of IKE_SA carrier-y.* not sent.*/\1/p" | tail -1) && [ "${del:-0}" -gt "${again:-0}" ]'
  rb=$(wc -l <"$MX_TMP/cp-b.log")
  steer_carrier ethb
  segments on || fail "could not isolate the nodes"
  check "twice: B active again (the segments apart) obtains the lease a second time, raised to A's record; its DPD answered" \
    mx_wait_eval 20 '[ "$(speaker)" = "$HA_B" ] && cp_since b $rb | grep -q "raised after a split" && dpd_answered b $rb'
  echo "    twice: B: $(cp_since b "$rb" | grep -o 'record(s) read with the lease.*' | head -1)"
  b_lease=$(node_child b "$rb_lease")
  check "twice: B keeps its CHILD_SA (${b_lease:-?}): at the gateway, ESP both ways through B" \
    mx_wait_eval 5 'ping_archive && both_ways $b_lease'
  # (Not by message ID: B's first request takes the ID of A's unsent one, A recorded the one before.)
  check_that "twice: A's DELETE of it never reached the gateway; none of the pair's requests ignored" \
    '[ -n "$b_lease" ] && ! tail -n +$((rg + 1)) "$GWLOG" | grep -q "received DELETE for ESP CHILD_SA with SPI ${b_lease%% *}" &&
      ! tail -n +$((rg + 1)) "$GWLOG" | grep -q "expected [0-9]*, ignored"'
  ra=$(wc -l <"$MX_TMP/cp-a.log") rb=$(wc -l <"$MX_TMP/cp-b.log")
  cp_link heal && segments off && steer_carrier none && neigh_cut "mx-$MX_ID-cp-a" 10.255.1.1 "me${MX_ID}a" heal ||
    fail "could not heal"
  check "twice: the heal: A active, B standby and rejoined, A raised to B's message IDs" \
    mx_wait_eval 10 'mx_pair_is $A_PREFIX master HA_ROLE_ACTIVE && mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY &&
      cp_since b $rb | grep -q "rejoining the active peer" && cp_since a $ra | grep -q "raised after a split"'
  deleted_at_gateway twice a "$ra" "$b_lease" "B's CHILD_SA of its lease (the loser's now)"
  check "twice: A's stale copy answered NO_CHILD_SA, A's new CHILD_SA carries ESP both ways" \
    mx_wait_eval 10 'cp_since a $ra | grep -q "peer didn.t find the CHILD_SA we tried to rekey" && ping_archive && both_ways $(node_child a $ra)'
  check_that "twice: the gateway ignored none of the pair's requests; the same IKE_SA, its only one; one IKE_SA_INIT" \
    '! tail -n +$((rg + 1)) "$GWLOG" | grep -q "expected [0-9]*, ignored" && [ "$(ike_count)" = 1 ] && [ "$(init_count)" = 1 ]'
  echo "    twice: A's request ${withheld:-?} started again as ${again:-?}, its next request ${del:-?} withheld (the DELETE behind it); the case $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
}
lease_twice

# --- an exchange in flight when the lease changes hands --------------------------------------------
# (docs/ha.md, item 6, "An exchange in flight when the lease changes hands".) A split, A the holder;
# what A sends is dropped at its port of the carrier's switch (the port disabled), so A's next DPD,
# recorded with etcd before it went (its IDs and its bytes), never reaches the gateway; A is killed.
# B obtains the lease, raises its IKE_SA to A's record (one past that DPD) and, before it speaks,
# sends A's recorded request again as it is: the gateway, which never had it, takes it and
# answers; B's own DPD is then answered, not ignored. The last case: A stays down. A control:
# MEDIX_CP=<medix-cp of before> (B's requests ignored, `received message ID N+1, expected N`).
in_flight() {
  local a_mark b_mark gw_mark ike_pre init_pre t0 dpd=''
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  b_mark=$(wc -l <"$MX_TMP/cp-b.log") t0=$(date +%s.%N)
  check "in flight: paired: B standby, nobody holds the lease" \
    mx_wait_eval 10 'mx_pair_is $B_PREFIX backup HA_ROLE_STANDBY && [ -z "$(speaker)" ]'
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  gw_mark=$(wc -l <"$GWLOG") ike_pre=$(ike_sa) init_pre=$(init_count)
  split_a_speaker "in flight"
  after_dpd a
  # shellcheck disable=SC2034  # read by mx_wait_eval and check_that
  a_mark=$(wc -l <"$MX_TMP/cp-a.log") b_mark=$(wc -l <"$MX_TMP/cp-b.log")
  mx_in carrier-y-gw bridge link set dev eth0 state 0 || fail "could not drop A's datagrams at the switch"
  check "in flight: A's next DPD recorded with etcd (its bytes too) and dropped before the gateway" \
    mx_wait_eval 5 'dpd=$(cp_since a $a_mark | sed -n "s/.*generating INFORMATIONAL request \([0-9]*\) \[ \].*/\1/p" | head -1) &&
      [ -n "$dpd" ] && cp_since a $a_mark | grep -q "sending DPD request" &&
      etcdctl get --prefix --keys-only /medix/ike-requests/ 2>/dev/null | grep -q "^/medix/ike-requests/"'
  mx_pair_kill A
  kill -KILL "$CPA_PID" && wait "$CPA_PID" 2>/dev/null
  CPA_PID=
  check_that "in flight: the gateway never had A's DPD ${dpd:-?}" \
    '! tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "parsed INFORMATIONAL request ${dpd:-x} "'
  steer_carrier ethb
  check "in flight: B obtains the lease and sends A's request ${dpd:-?} again as recorded; the gateway takes it and answers" \
    mx_wait_eval 10 '[ "$(speaker)" = "$HA_B" ] &&
      cp_since b $b_mark | grep -q "sending the last lease holder.s request ${dpd:-x} again as it recorded it" &&
      tail -n +$((gw_mark + 1)) "$GWLOG" | grep -q "parsed INFORMATIONAL request ${dpd:-x} " &&
      cp_since b $b_mark | grep -q "the last lease holder.s request ${dpd:-x} answered by the peer"'
  check "in flight: then B speaks: its DPD $((${dpd:-0} + 1)) answered" \
    mx_wait_eval 8 'cp_since b $b_mark | grep -q "generating INFORMATIONAL request $((${dpd:-0} + 1)) \[ \]" && dpd_answered b $b_mark'
  echo "    in flight: B: $(cp_since b "$b_mark" | grep -oE 'record\(s\) read with the lease.*|request\(s\) sent again.*|request [0-9]+ answered by the peer.*' | paste -sd';')"
  mx_in carrier-y-gw bridge link set dev eth0 state 3
  same_ike_sa_at_end "in flight"
}
in_flight

echo "    split and heal: $(awk -v a="$t_split" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s; whole run: $(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
finish
