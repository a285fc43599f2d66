# shellcheck shell=bash
# A redundant pair of medix-dp nodes on shared segments (docs/ha.md Part 3), for scripts/demo's
# last part. Sourced after lib.sh (and its mx_init); its mx_pair_* replace lib.sh's, which the
# netns suites use (two set-ups of one pair, made on two branches: to be made one).
#
# Model: each host's namespace holds its segment, a Linux bridge br0 with the host's address,
# node A's veth (eth0, from mx_attach) and node B's (ethb). Node A's interface address is
# mx_attach's "gateway", ending in .2; node B's ends in .3; the virtual address, .1, is every
# host's gateway. One VRRP group "ix" (10 cs adverts, a VRID a segment from 10) drives the HA
# role (--ha-vrrp-group); the sync link runs over loopback with a key file.
#
#   mx_attach hosp-d-lan hosp-d 10.0.0.5/24 10.0.0.2/24   # ... every host first
#   mx_pair_segments                           # bridges, node B's veths; cleanup trap
#   mx_pair_shape hosp-d-lan 30mbit            # the host's TCP towards the IX shaped
#   mx_write_config "$MX_TMP/base.json"        # then the caller's own objects in it
#   mx_pair_configs "$MX_TMP/base.json"        # config-a.json, config-b.json: VRRP, B's addresses
#   mx_pair_start A; mx_pair_start B           # standby until VRRP makes it master
#   mx_pair_status "$MX_A_PREFIX" role         # HA_ROLE_ACTIVE
#   mx_probe_start TAG RECV_HOST RECV_ADDR SEND_HOST DEST SECONDS; mx_probe_end TAG [KILL_NS]
#   mx_study_send HOST TAG ADDR PORT DIR       # dcmtk storescu in the background
#   mx_pair_stop                               # SIGTERM to both
#
# Requires a kernel with Linux bridges, tc's htb and its u32 filter.

MX_PAIR_PROBE=$MX_LIB_DIR/probe.py
MX_PAIR_DICOM=$MX_REPO/test/ike/dicom.py
MX_PAIR_CTL=${MEDIXCTL:-$MX_REPO/build/controlplane/cli/medixctl}
MX_A_PREFIX=$MX_PREFIX MX_B_PREFIX=$MX_PREFIX-b
MX_A_LOG=$MX_TMP/medix-dp-a.log MX_B_LOG=$MX_TMP/medix-dp-b.log
MX_A_PID='' MX_B_PID=''
declare -A MX_RIF_A=() MX_RIF_B=() MX_VIP=()
MX_B_VETHS=()

# mx_pair_segments: turns every host attached so far into a segment both nodes reach.
mx_pair_segments() {
  ip link add "mxbrcheck$MX_ID" type bridge 2>/dev/null && ip link del "mxbrcheck$MX_ID" \
    || mx_die "this kernel has no Linux bridge (needed for the shared segments)"
  trap mx_pair_cleanup EXIT
  local name ns rif gw
  for name in "${MX_HOSTS[@]}"; do
    ns=$(mx_ns "$name") rif=mx${MX_ID}b${#MX_B_VETHS[@]} gw=${MX_GW_ADDR[$name]%/*}
    MX_VIP[$name]=${gw%.*}.1
    (
      set -e
      ip -n "$ns" addr flush dev eth0
      ip -n "$ns" link add br0 type bridge
      ip -n "$ns" link set br0 type bridge forward_delay 0 stp_state 0
      ip -n "$ns" link set eth0 master br0
      ip link add "$rif" type veth peer name ethb netns "$ns"
      sysctl -qw "net.ipv6.conf.$rif.disable_ipv6=1" "net.ipv4.conf.$rif.forwarding=0"
      ip link set "$rif" arp off up
      ip -n "$ns" link set ethb master br0 up
      # As mx_attach does for eth0: checksums complete before frames reach af_packet.
      ip netns exec "$ns" ethtool -K br0 tx off >/dev/null
      ip netns exec "$ns" ethtool -K ethb tx off >/dev/null
      ip -n "$ns" addr add "${MX_HOST_ADDR[$name]}" dev br0
      ip -n "$ns" link set br0 up
      ip -n "$ns" route add default via "${MX_VIP[$name]}"
    ) || mx_die "could not build segment $name"
    MX_RIF_A[$name]=${MX_RIF[$name]} MX_RIF_B[$name]=$rif
    MX_B_VETHS+=("$rif")
  done
}

# mx_pair_shape HOST RATE: the host's TCP towards the IX shaped to RATE (an htb class, chosen by
# a u32 filter), so that a study takes seconds, not a blink: it is still in flight when the
# active dies. Anything else (a UDP probe) passes beside it, not queued behind it.
mx_pair_shape() {
  local ns
  ns=$(mx_ns "$1")
  ip netns exec "$ns" tc qdisc add dev br0 root handle 1: htb default 10 &&
    ip netns exec "$ns" tc class add dev br0 parent 1: classid 1:10 htb rate 10gbit quantum 60000 &&
    ip netns exec "$ns" tc class add dev br0 parent 1: classid 1:20 htb rate "$2" burst 32kb quantum 1514 &&
    ip netns exec "$ns" tc qdisc add dev br0 parent 1:20 pfifo limit 1000 &&
    ip netns exec "$ns" tc filter add dev br0 parent 1: protocol ip u32 match ip protocol 6 0xff flowid 1:20 ||
    mx_die "could not shape $1 (tc htb, u32)"
}

mx_pair_cleanup() {
  local rc=$? v
  mx_pair_stop
  for v in "${MX_B_VETHS[@]}"; do ip link del "$v" 2>/dev/null; done
  rm -rf "/var/run/dpdk/$MX_B_PREFIX"
  (exit $rc)
  mx_cleanup
}

# mx_pair_configs BASE: node A's and node B's configs ($MX_TMP/config-a.json, config-b.json)
# from BASE (mx_write_config's, with the caller's objects): the VRRP group over every segment,
# A at priority 200, B at 100, no preemption; B's interface addresses .3. The sync key too.
mx_pair_configs() {
  local name segs=()
  for name in "${MX_HOSTS[@]}"; do segs+=("$name=${MX_VIP[$name]}"); done
  "$MX_PY" - "$1" "$MX_TMP" "${segs[@]}" <<'PY' || mx_die "could not write the pair's configs"
import json, sys
path, tmp, segs = sys.argv[1], sys.argv[2], [s.split("=") for s in sys.argv[3:]]
c = json.load(open(path))
def vrrp(prio):
    return [{"name": "vr-" + i, "interface": i, "vrid": 10 + n, "priority": prio, "advert_interval_cs": 10,
             "preempt": False, "group": "ix", "addresses": [a]} for n, (i, a) in enumerate(segs)]
c["vrrp_instances"] = vrrp(200)
json.dump(c, open(tmp + "/config-a.json", "w"), indent=1)
for i in c["interfaces"]:
    i["addresses"] = [a.replace(".2/", ".3/") for a in i["addresses"]]
c["vrrp_instances"] = vrrp(100)
json.dump(c, open(tmp + "/config-b.json", "w"), indent=1)
PY
  head -c 48 /dev/urandom | base64 >"$MX_TMP/sync.key"
  MX_SYNC_PORT_A=$((20000 + RANDOM % 20000)) MX_SYNC_PORT_B=$((MX_SYNC_PORT_A + 1))
}

# mx_pair_start A|B: the node (its own DPDK prefix, log, veths and config), standby until VRRP
# makes it master of group ix; its pid in MX_A_PID or MX_B_PID.
mx_pair_start() {
  local node=$1 rc=0 name local_port peer_port
  local save_prefix=$MX_PREFIX save_log=$MX_DP_LOG
  if [ "$node" = A ]; then
    MX_PREFIX=$MX_A_PREFIX MX_DP_LOG=$MX_A_LOG local_port=$MX_SYNC_PORT_A peer_port=$MX_SYNC_PORT_B
    for name in "${MX_HOSTS[@]}"; do MX_RIF[$name]=${MX_RIF_A[$name]}; done
  else
    MX_PREFIX=$MX_B_PREFIX MX_DP_LOG=$MX_B_LOG local_port=$MX_SYNC_PORT_B peer_port=$MX_SYNC_PORT_A
    for name in "${MX_HOSTS[@]}"; do MX_RIF[$name]=${MX_RIF_B[$name]}; done
  fi
  mx_start_dp "$MX_TMP/config-${node,,}.json" --ha-role standby --ha-vrrp-group ix \
    --ha-sync-local "127.0.0.1:$local_port" --ha-sync-peer "127.0.0.1:$peer_port" \
    --ha-sync-key-file "$MX_TMP/sync.key" || rc=1
  if [ "$node" = A ]; then MX_A_PID=$MX_DP_PID; else MX_B_PID=$MX_DP_PID; fi
  MX_PIDS+=("$MX_DP_PID")
  MX_DP_PID='' MX_PREFIX=$save_prefix MX_DP_LOG=$save_log
  for name in "${MX_HOSTS[@]}"; do MX_RIF[$name]=${MX_RIF_A[$name]}; done
  return $rc
}

mx_pair_stop() {
  local pid
  for pid in $MX_A_PID $MX_B_PID; do kill -TERM "$pid" 2>/dev/null; done
  for pid in $MX_A_PID $MX_B_PID; do wait "$pid" 2>/dev/null; done
  MX_A_PID='' MX_B_PID=''
}

# mx_pair_kill A|B: kill -9 of the node's medix-dp; the wall clock of the kill (ns) in MX_KILL_NS.
mx_pair_kill() {
  local var=MX_${1}_PID
  MX_KILL_NS=$(mx_now_ns)
  kill -KILL "${!var}"
  wait "${!var}" 2>/dev/null
  printf -v "$var" ''
}

mx_now_ns() { local t=$EPOCHREALTIME; echo "${t/./}000"; }
mx_pair_ctl() { local prefix=$1; shift; timeout 20 "$MX_PAIR_CTL" -p "$prefix" "$@"; }
# mx_pair_status PREFIX FIELD: a field of the node's GetHaSync (0 when it does not answer).
mx_pair_status() { mx_pair_ctl "$1" -o json ha-sync 2>/dev/null | mx_json - "(d or {}).get('$2', 0)"; }
# mx_pair_vrrp_states PREFIX: the node's instances' states, sorted and joined ("master master").
mx_pair_vrrp_states() {
  mx_pair_ctl "$1" -o json vrrp 2>/dev/null | mx_json - "' '.join(sorted(i.get('state', '') for i in (d or {}).get('instances', [])))"
}
# mx_pair_is PREFIX VRRP_STATE ROLE: every instance of the node in VRRP_STATE, its HA role ROLE.
mx_pair_is() {
  [ "$(mx_pair_vrrp_states "$1")" = "$(printf '%s\n' "${MX_HOSTS[@]}" | sed "s/.*/$2/" | paste -sd' ')" ] &&
    [ "$(mx_pair_status "$1" role)" = "$3" ]
}
# mx_pair_sessions PREFIX: the node's sessions, one string each, sorted (a JSON list).
mx_pair_sessions() {
  mx_pair_ctl "$1" -o json sessions | mx_json - \
    "sorted('%s %s>%s | %s %s>%s' % (s.get('tenant'), s.get('source'), s.get('destination'), s.get('peer_tenant'), s.get('translated_source'), s.get('translated_destination')) for s in (d or {}).get('sessions', []))"
}

# mx_probe_start TAG RECV_HOST RECV_ADDR SEND_HOST DEST SECONDS: a 1 kHz UDP probe (probe.py,
# port 9000) from SEND_HOST to DEST, received on RECV_HOST at RECV_ADDR.
mx_probe_start() {
  local tag=$1
  mx_bg "$2" "$MX_PY" "$MX_PAIR_PROBE" recv "$3" 9000 "$MX_TMP/probe-$tag.recv"
  MX_PROBE_RECV=$MX_LAST_PID
  sleep 0.3
  mx_bg "$4" "$MX_PY" "$MX_PAIR_PROBE" send "$5" 9000 1000 "$6" "$MX_TMP/probe-$tag.sent"
  MX_PROBE_SEND=$MX_LAST_PID
}
# mx_probe_end TAG [KILL_NS]: waits for the sender, stops the receiver; probe.py's report (JSON)
# in MX_PROBE_REPORT.
mx_probe_end() {
  wait "$MX_PROBE_SEND"
  sleep 0.3
  kill -TERM "$MX_PROBE_RECV"
  wait "$MX_PROBE_RECV"
  MX_PROBE_REPORT=$("$MX_PY" "$MX_PAIR_PROBE" report "$MX_TMP/probe-$1.recv" "$MX_TMP/probe-$1.sent" ${2:+"$2"})
}

# mx_study_send HOST TAG ADDR PORT DIR: dcmtk's storescu (calling AE TAG) sends every image of
# DIR to ADDR PORT in the background; its exit status lands in $MX_TMP/study-TAG.rc.
mx_study_send() {
  local host=$1 tag=$2
  rm -f "$MX_TMP/study-$tag.rc"
  mx_bg "$host" bash -c "TCP_NODELAY=1 timeout 90 storescu -aet $tag -aec ARCHIVE +sd $3 $4 $5 \
    >$MX_TMP/storescu-$tag.log 2>&1; echo \$? >$MX_TMP/study-$tag.rc"
}
# mx_study_wait TAG SECONDS: until storescu has ended; its exit status.
mx_study_wait() {
  mx_wait_for "$2" test -s "$MX_TMP/study-$1.rc"
  cat "$MX_TMP/study-$1.rc" 2>/dev/null || echo timeout
}
# mx_received DIR: how many files storescp wrote there.
mx_received() { find "$1" -type f 2>/dev/null | wc -l; }
