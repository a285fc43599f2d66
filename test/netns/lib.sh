# shellcheck shell=bash
# Shared by the namespace tests (test/netns/*.sh) and scripts/demo: builds a small IX of kernel
# hosts around one medix-dp, and takes it all down again.
#
# Model: every attachment is its own veth pair. One end, "eth0", sits in a network namespace
# of its own (the host: a hospital LAN, an imaging server...); the other end stays in the root
# namespace and medix-dp drives it with --vdev net_af_packetN,iface=<end>, as an untagged
# interface (vlan 0). No bridge, no 802.1Q, no tc: the kernel needs only veth and namespaces.
#
#   source test/netns/lib.sh
#   mx_init                                    # names, temp dir, cleanup trap
#   mx_attach hospital-a-lan hospital-a 10.0.0.10/24 10.0.0.1/24
#   ...                                        # interface, tenant, host address, IX gateway
#   mx_write_config "$MX_TMP/config.json"
#   mx_start_dp "$MX_TMP/config.json"          # waits for "medix-dp: ready"
#   mx_in hospital-a-lan ping -c1 10.0.1.10    # run a command on a host
#   mx_tele /medix/tenants hospital-a rx_packets
#   mx_stop_dp                                 # SIGTERM; returns medix-dp's exit status
#   pass NAME / fail NAME [DETAIL] / ... | tally  # PASS/FAIL lines, counted
#   mx_wait_for SECONDS COMMAND...             # until it succeeds; the milliseconds in $took
#   mx_finish SUITE                            # "SUITE: N passed, M failed", exit 1 on a failure
#
# Requires root, iproute2, ethtool, /usr/bin/python3. Everything it creates carries the random
# id $MX_ID and is removed on exit, Ctrl-C or SIGTERM.

MX_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
MX_REPO=$(cd "$MX_LIB_DIR/../.." && pwd)
MX_PY=/usr/bin/python3
MX_BIN=${MEDIX_DP:-$MX_REPO/build/dataplane/medix-dp}
MX_LCORES=${MX_LCORES:-0,1}
# Bigger af_packet rings than the PMD's default 512 frames: the kernel would drop bursts of a
# TCP upload before medix-dp sees them, and the counters would no longer match the hosts'.
MX_AF_PACKET_ARGS=${MX_AF_PACKET_ARGS-,framecnt=2048}

MX_HOSTS=()                 # interface names, in port order
declare -A MX_NS=()         # interface -> namespace
declare -A MX_RIF=()        # interface -> veth end in the root namespace
declare -A MX_TENANT=()     # interface -> tenant
declare -A MX_HOST_ADDR=()  # interface -> host address/len
declare -A MX_GW_ADDR=()    # interface -> IX gateway address/len
declare -A MX_TENANT_DESC=()
declare -A MX_TENANT_FIB=() # tenant -> its FIB kind ("FIB_DIR24_8"); unset: the default
# Real ports instead of a veth (benchmarks on machines with NICs): interface -> "KERNEL_IF@DEV".
# Set before mx_attach: the host's eth0 is then the kernel netdev KERNEL_IF (moved into the
# namespace and renamed; moved back on cleanup), cabled to the port medix-dp drives as DEV: a
# PCI address (EAL -a DEV; --no-pci is then left out) or a vdev spec (--vdev DEV).
declare -A MX_NIC=()
MX_TENANTS=()
MX_PIDS=()                  # background processes to end on cleanup
MX_LINKS=()                 # more links in the root namespace to delete on cleanup
MX_DP_PID=
MX_DP_LOG=

mx_die() { echo "error: $*" >&2; exit 2; }

# PASS/FAIL lines and their counts, for the suites that source this file.
passed=0 failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
# fail NAME [DETAIL...]: DETAIL (a command's output, say) under it, indented, its last 20 lines.
fail() {
  echo "FAIL $1"
  shift
  [ -n "$*" ] && sed 's/^/  | /' <<<"$*" | tail -20
  failed=$((failed + 1))
}
# mx_wait_for SECONDS COMMAND...: runs COMMAND every 50 ms until it succeeds (0) or SECONDS pass
# (1); the milliseconds it took in $took.
mx_wait_for() {
  local limit=$1 start now
  shift
  start=$(date +%s%N)
  while :; do
    "$@" && { took=$((($(date +%s%N) - start) / 1000000)); return 0; }
    now=$(date +%s%N)
    [ $(((now - start) / 1000000)) -ge $((limit * 1000)) ] && { took=$(((now - start) / 1000000)); return 1; }
    sleep 0.05
  done
}
# A stream of PASS/FAIL lines (from a Python check) counted like ours; other lines shown as is.
# At the end of a pipe it counts in this shell only with `shopt -s lastpipe`.
tally() {
  local line
  while IFS= read -r line; do
    case $line in
      PASS\ *) pass "${line#PASS }" ;;
      FAIL\ *) fail "${line#FAIL }" ;;
      *) echo "$line" ;;
    esac
  done
}
# mx_finish SUITE [WHAT]: after a failure, medix-dp's last log lines, and the temp dir kept
# (WHAT: what it holds, for the message); then "SUITE: N passed, M failed" and exit, 1 on any
# failure.
mx_finish() {
  local suite=$1 what=${2:-}
  if [ "$failed" -gt 0 ] && [ -s "${MX_DP_LOG:-}" ]; then
    echo "--- last lines of the medix-dp log:"
    tail -n 25 "$MX_DP_LOG" | sed 's/^/  | /'
    MX_KEEP_TMP=1
    echo "--- ${what:+$what }kept in $MX_TMP"
  fi
  echo "$suite: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

# mx_init: picks the unique id, the temp dir and the DPDK file prefix; installs the cleanup trap.
mx_init() {
  [ "$(id -u)" -eq 0 ] || mx_die "must run as root (namespaces, veth, af_packet)"
  local tool
  for tool in ip ethtool sysctl "$MX_PY"; do
    command -v "$tool" >/dev/null || mx_die "$tool not found (scripts/setup installs it)"
  done
  while :; do
    MX_ID=$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')
    compgen -G "/run/netns/mx-$MX_ID-*" >/dev/null || break
  done
  MX_PREFIX=medix-$MX_ID
  MX_TMP=$(mktemp -d "/tmp/medix-netns-$MX_ID.XXXX")
  MX_DP_LOG=$MX_TMP/medix-dp.log
  trap mx_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# mx_attach IFNAME TENANT HOST_CIDR GW_CIDR: one host namespace behind one medix-dp interface.
mx_attach() {
  local name=$1 tenant=$2 host=$3 gw=$4
  local n=${#MX_HOSTS[@]}
  local ns=mx-$MX_ID-$name rif=mx$MX_ID-$n
  [ -n "${MX_NIC[$name]:-}" ] && rif=
  MX_HOSTS+=("$name")
  MX_NS[$name]=$ns MX_RIF[$name]=$rif MX_TENANT[$name]=$tenant
  MX_HOST_ADDR[$name]=$host MX_GW_ADDR[$name]=$gw
  local t known=0
  for t in "${MX_TENANTS[@]}"; do [ "$t" = "$tenant" ] && known=1; done
  [ $known -eq 1 ] || MX_TENANTS+=("$tenant")

  (
    set -e
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    if [ -z "$rif" ]; then
      ip link set "${MX_NIC[$name]%%@*}" netns "$ns"
      ip -n "$ns" link set "${MX_NIC[$name]%%@*}" name eth0
    else
      ip link add "$rif" type veth peer name eth0 netns "$ns"
      # The root end carries frames for medix-dp only: no IPv6, no ARP, no kernel forwarding.
      sysctl -qw "net.ipv6.conf.$rif.disable_ipv6=1" "net.ipv4.conf.$rif.forwarding=0"
      ip link set "$rif" arp off up
    fi
    # Without tx checksum offload the host's kernel completes every checksum before af_packet
    # hands the frame to medix-dp (it would pass CHECKSUM_PARTIAL frames unfinished).
    ip netns exec "$ns" ethtool -K eth0 tx off >/dev/null
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$host" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "${gw%/*}"
  ) || mx_die "could not set up host $name (namespace $ns, veth $rif)"
}

mx_ns() { echo "${MX_NS[$1]}"; }
mx_in() { local name=$1; shift; ip netns exec "${MX_NS[$name]}" "$@"; }
mx_host_mac() { ip netns exec "${MX_NS[$1]}" cat /sys/class/net/eth0/address; }
mx_port_mac() { cat "/sys/class/net/${MX_RIF[$1]}/address"; }
# mx_host_stat IFNAME COUNTER: a kernel counter of the host's eth0 (tx_packets, rx_packets, ...).
mx_host_stat() { ip netns exec "${MX_NS[$1]}" cat "/sys/class/net/eth0/statistics/$2"; }

# mx_port_device IFNAME: the DPDK device name of the host's port: net_af_packetK (K counts the
# veth hosts before it) or, with MX_NIC, the PCI address or the vdev's name.
mx_port_device() {
  local h k=0 dev
  for h in "${MX_HOSTS[@]}"; do
    if [ "$h" = "$1" ]; then
      if [ -n "${MX_NIC[$h]:-}" ]; then dev=${MX_NIC[$h]#*@}; echo "${dev%%,*}"; else echo "net_af_packet$k"; fi
      return
    fi
    [ -n "${MX_NIC[$h]:-}" ] || k=$((k + 1))
  done
}

# mx_write_config FILE: the medix-dp startup config for every attachment so far. Port pN is
# the Nth host's (mx_port_device); interfaces are named as attached; no static neighbours.
# Extra routes, as JSON objects separated by commas, may be given in MX_ROUTES_JSON.
mx_write_config() {
  local file=$1 i name sep
  {
    echo '{'
    echo '  "schema_version": 1,'
    echo '  "ports": ['
    sep=
    for i in "${!MX_HOSTS[@]}"; do
      printf '%s    {"name": "p%d", "device": "%s", "promiscuous": true}' "$sep" "$i" "$(mx_port_device "${MX_HOSTS[$i]}")"
      sep=$',\n'
    done
    printf '\n  ],\n  "tenants": [\n'
    sep=
    for name in "${MX_TENANTS[@]}"; do
      printf '%s    {"name": "%s", "description": "%s"%s}' "$sep" "$name" "${MX_TENANT_DESC[$name]:-}" \
        "${MX_TENANT_FIB[$name]:+, \"fib\": \"${MX_TENANT_FIB[$name]}\"}"
      sep=$',\n'
    done
    printf '\n  ],\n  "interfaces": [\n'
    sep=
    for i in "${!MX_HOSTS[@]}"; do
      name=${MX_HOSTS[$i]}
      printf '%s    {"name": "%s", "tenant": "%s", "port": "p%d", "vlan": 0, "addresses": ["%s"]}' \
        "$sep" "$name" "${MX_TENANT[$name]}" "$i" "${MX_GW_ADDR[$name]}"
      sep=$',\n'
    done
    printf '\n  ],\n  "routes": [%s]\n}\n' "${MX_ROUTES_JSON:-}"
  } >"$file"
}

# The EAL arguments: no hugepages, no PCI, our own file prefix, one af_packet vdev per host.
mx_eal_args() {
  # MX_EAL_MEM: the memory arguments instead (hugepages: "--huge-dir DIR -m 512").
  local mem
  read -r -a mem <<<"${MX_EAL_MEM:---no-huge -m 1024}"
  MX_EAL=("${mem[@]}" --file-prefix "$MX_PREFIX" --lcores "$MX_LCORES")
  local h dev pci=0
  for h in "${MX_HOSTS[@]}"; do
    dev=${MX_NIC[$h]:-}
    dev=${dev#*@}
    if [ -z "$dev" ]; then
      MX_EAL+=(--vdev "$(mx_port_device "$h"),iface=${MX_RIF[$h]}$MX_AF_PACKET_ARGS")
    elif [[ $dev =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]]; then
      MX_EAL+=(-a "$dev")
      pci=1
    else
      MX_EAL+=(--vdev "$dev")
    fi
  done
  [ $pci -eq 1 ] || MX_EAL+=(--no-pci)
}

mx_need_binary() {
  [ -x "$MX_BIN" ] || mx_die "medix-dp not found at $MX_BIN (run scripts/build)"
}

# mx_check_config FILE: medix-dp --check; prints its complaint and returns non-zero if refused.
mx_check_config() {
  mx_need_binary
  mx_eal_args
  "$MX_BIN" "${MX_EAL[@]}" -- --config "$1" --check >"$MX_TMP/check.log" 2>&1
}

# mx_start_dp FILE [medix-dp options]: starts medix-dp in a session of its own (a Ctrl-C in the
# terminal reaches this script, which stops medix-dp in order) and waits for its ready line.
# DPDK's af_packet PMD names its fanout group getpid() ^ ifindex (16 bits): another af_packet
# process (a concurrent namespace test) may hold that id on another interface, and the probe
# fails with "could not set PACKET_FANOUT". A new process has a new pid: it is started again.
mx_start_dp() {
  local try
  for try in 1 2 3; do
    mx_start_dp_once "$@" 2>"$MX_TMP/start.err" && return 0
    grep -q 'could not set PACKET_FANOUT' "$MX_DP_LOG" || break
    echo "    medix-dp start $try: af_packet fanout id taken by another process; starting it again"
  done
  cat "$MX_TMP/start.err" >&2
  return 1
}

mx_start_dp_once() {
  mx_launch_dp "$@"
  mx_wait_ready
}

# mx_launch_dp FILE [options]: medix-dp started (MX_DP_PID), not waited for; mx_wait_ready waits
# for its ready line (both: two nodes started at once).
mx_launch_dp() {
  local config=$1; shift
  mx_need_binary
  mx_eal_args
  : >"$MX_DP_LOG"
  setsid "$MX_BIN" "${MX_EAL[@]}" -- --config "$config" "$@" >"$MX_DP_LOG" 2>&1 &
  MX_DP_PID=$!
}

mx_wait_ready() {
  local i
  for ((i = 0; i < 300; i++)); do
    grep -q 'medix-dp: ready' "$MX_DP_LOG" && return 0
    if ! mx_alive "$MX_DP_PID"; then
      local rc=0
      wait "$MX_DP_PID" || rc=$?
      MX_DP_PID=
      echo "medix-dp exited with status $rc before it was ready; its output:" >&2
      tail -n 30 "$MX_DP_LOG" | sed 's/^/  | /' >&2
      return 1
    fi
    sleep 0.1
  done
  echo "medix-dp printed no ready line within 30 s; its output:" >&2
  tail -n 30 "$MX_DP_LOG" | sed 's/^/  | /' >&2
  return 1
}

# mx_alive PID: the process runs (a zombie awaiting `wait` does not count).
mx_alive() {
  local state=
  kill -0 "$1" 2>/dev/null || return 1
  [ -r "/proc/$1/stat" ] && state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)
  [ "$state" != Z ]
}

# mx_stop_dp [TIMEOUT]: SIGTERM, wait up to TIMEOUT seconds (default 15), then SIGKILL.
# Returns medix-dp's exit status (137 when it had to be killed).
mx_stop_dp() {
  local timeout=${1:-15} pid=$MX_DP_PID i rc=0
  [ -n "$pid" ] || return 0
  kill -TERM "$pid" 2>/dev/null
  for ((i = 0; i < timeout * 10; i++)); do
    mx_alive "$pid" || break
    sleep 0.1
  done
  if mx_alive "$pid"; then
    echo "medix-dp did not stop within ${timeout}s of SIGTERM: killed" >&2
    kill -KILL "$pid" 2>/dev/null
  fi
  wait "$pid" || rc=$?
  MX_DP_PID=
  return $rc
}

# mx_tele COMMAND [KEY ...]: a telemetry reply as JSON, or the value under the keys.
mx_tele() { "$MX_PY" "$MX_LIB_DIR/telemetry.py" "$MX_PREFIX" "$@"; }
mx_tele_table() { "$MX_PY" "$MX_LIB_DIR/telemetry.py" "$MX_PREFIX" --table "$1"; }

# mx_bg IFNAME CMD...: run CMD on a host in the background; its pid in MX_LAST_PID.
mx_bg() {
  local name=$1; shift
  ip netns exec "${MX_NS[$name]}" "$@" &
  MX_LAST_PID=$!
  MX_PIDS+=("$MX_LAST_PID")
}

# mx_serve IFNAME PORT: a TCP sink on the host's address; its log (one JSON line per
# connection) is $MX_TMP/serve-IFNAME.log.
mx_serve() {
  local name=$1 port=$2
  : >"$MX_TMP/serve-$name.log"
  mx_bg "$name" "$MX_PY" "$MX_LIB_DIR/xfer.py" serve "${MX_HOST_ADDR[$name]%/*}" "$port" \
    "$MX_TMP/serve-$name.log"
}

# mx_send IFNAME ADDR PORT TAG MIB [MBIT_S]: a TCP transfer in the background (paced at MBIT_S
# if given); its result (one JSON line) goes to $MX_TMP/send-IFNAME-TAG.json, its pid to
# MX_LAST_PID.
mx_send() {
  local name=$1 addr=$2 port=$3 tag=$4 mib=$5
  mx_bg "$name" timeout 120 "$MX_PY" "$MX_LIB_DIR/xfer.py" send "$addr" "$port" "$tag" "$mib" ${6:+"$6"} \
    >"$MX_TMP/send-$name-$tag.json"
}

# mx_json FILE|- EXPR: evaluate a Python expression over FILE: `d` is its JSON (None if it is
# not one document), `lines` its JSON lines.
mx_json() {
  "$MX_PY" -c '
import json, sys
text = sys.stdin.read() if sys.argv[1] == "-" else open(sys.argv[1]).read()
try:
    d = json.loads(text)
except ValueError:
    d = None
lines = []
for line in text.splitlines():
    try:
        lines.append(json.loads(line))
    except ValueError:
        pass
v = eval(sys.argv[2])
print(json.dumps(v) if isinstance(v, (dict, list)) else v)
' "$1" "$2"
}

mx_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  if [ -n "${MX_DP_PID:-}" ]; then
    mx_stop_dp 10 >/dev/null 2>&1
  fi
  local pid name ns
  for pid in "${MX_PIDS[@]}"; do kill "$pid" 2>/dev/null; done
  for name in "${MX_HOSTS[@]}"; do
    ns=${MX_NS[$name]}
    # Anything still running in our own namespaces was started by us.
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
  done
  for pid in "${MX_PIDS[@]}"; do wait "$pid" 2>/dev/null; done
  for name in "${MX_LINKS[@]}"; do ip link del "$name" 2>/dev/null; done
  for name in "${MX_HOSTS[@]}"; do
    if [ -n "${MX_NIC[$name]:-}" ]; then # a real port goes back to the root namespace, renamed back
      ip -n "${MX_NS[$name]}" link set eth0 down 2>/dev/null
      ip -n "${MX_NS[$name]}" link set eth0 name "${MX_NIC[$name]%%@*}" 2>/dev/null
      ip -n "${MX_NS[$name]}" link set "${MX_NIC[$name]%%@*}" netns 1 2>/dev/null
    else
      ip link del "${MX_RIF[$name]}" 2>/dev/null
    fi
    ip netns del "${MX_NS[$name]}" 2>/dev/null
  done
  # A pair's node B (mx_pair_*, netns-hasync) runs under $MX_PREFIX-b.
  [ -n "${MX_PREFIX:-}" ] && rm -rf "/var/run/dpdk/$MX_PREFIX" "/var/run/dpdk/$MX_PREFIX-b"
  if [ -n "${MX_TMP:-}" ] && [ -z "${MX_KEEP_TMP:-}" ]; then
    rm -rf "$MX_TMP"
  fi
  exit $rc
}

# --- A redundant pair (docs/ha.md Part 3; netns-failover, -splitbrain, -ike-failover, scripts/demo) ---
# Two medix-dp nodes on Linux bridges, VRRP (10 cs adverts unless MX_PAIR_ADVERT_CS says, one
# group "ix" over every segment) driving the HA role (--ha-vrrp-group), the sync link between
# them; hosts use the virtual addresses as their gateway.
#
#   hosp-a 10.0.0.5 ─ br ─┬─ node A: .2  ┬─ br ─ archive 192.168.1.10
#   hosp-d 10.0.0.5 ─ br ─┤  node B: .3  │      (100.100.2.10 in the core)
#                         └─ VIP .1 ─────┘      sync: UDP (loopback by default), HMAC
#   hosp-a: static 10.0.0.0/24 <-> 100.64.1.0/24; hosp-d: NAPT pool 100.64.9.1 (20000-20999)
#   rules: hosp-a -> archive TCP $MX_PAIR_TCP, hosp-d -> archive TCP $MX_PAIR_TCP+1,
#          archive -> hosp-a UDP $MX_PAIR_UDP
#
#   mx_pair_init [RATE]       after mx_init: the suites' pair above (mx_pair_setup over its three
#                             hosts, the hospitals' TCP shaped to RATE, the intent in
#                             $MX_TMP/base.json, configs $MX_TMP/config-{a,b}.json: priorities
#                             200 and 100, no preemption)
#   Another pair (scripts/demo's, netns-ike-failover's): mx_attach every host (gateway ending
#   in .2), mx_pair_setup, mx_pair_shape HOST RATE [DEV [DPORT]], mx_write_config "$MX_TMP/base.json" and the
#   caller's objects in it, mx_pair_configs "" 200 100.
#   mx_pair_setup             every host attached so far on a segment both nodes reach (in the
#                             host's namespace a bridge joins the host's address, A's veth eth0
#                             and B's ethb; the virtual address .1 of the gateway's /24); the
#                             nodes' prefixes and logs, the sync key and ports
#   mx_pair_configs SUFFIX PRIO_A PRIO_B   $MX_TMP/config-{a,b}SUFFIX.json from base.json
#                             (MX_PAIR_TAP=NAME: each node's exception TAP, NAMEa and NAMEb)
#   mx_pair_start A|B CONFIG [medix-dp options]   standby until VRRP makes it master of "ix";
#                             A_PID/B_PID, A_PREFIX/B_PREFIX, A_LOG/B_LOG (mx_pair_launch and
#                             mx_pair_ready: the same in two steps)
#   mx_pair_kill A|B [PID...] kill -9 (with PIDs: the whole node at once); KILL_NS (sent) and
#                             DEAD_NS (reaped) for probe.py report
#   mx_pair_stop; mx_pair_dump (each node's ha-sync, vrrp and log, for a failure);
#   mx_pair_finish SUITE [LOG...] (mx_finish for the pair; the LOGs' last lines too)
#   mx_ctl PREFIX ARGS (medixctl), mx_ha PREFIX FIELD (GetHaSync), mx_vrrp_states PREFIX,
#   mx_pair_is PREFIX VRRP_STATE ROLE, mx_sessions PREFIX, mx_metric PORT NAME [NS],
#   mx_wait_eval SECONDS EXPR
#   mx_probe_start TAG RECV_HOST RECV_ADDR SEND_HOST DEST SECONDS; mx_probe_end TAG [KILL DEAD]
#   mx_study_make N; mx_study_serve HOST TAG PORT; mx_study_send HOST TAG ADDR PORT;
#   mx_study_received TAG; mx_study_check TAG (DICOM studies: dcmtk storescu -> storescp)
MX_CTL=${MEDIXCTL:-$MX_REPO/build/controlplane/cli/medixctl}
MX_PAIR_TCP=11112 MX_PAIR_UDP=9000 MX_PAIR_POOL=100.64.9.1
MX_PAIR_ADVERT_CS=10  # VRRP's advert interval (set before mx_pair_configs)
MX_PAIR_SYNC_A=127.0.0.1 MX_PAIR_SYNC_B=127.0.0.1
declare -A MX_RIF_A=() MX_RIF_B=() MX_VIP=()

mx_pair_init() {
  local rate=${1:-}
  # Node A's interfaces take .2 (mx_attach's "gateway"); B's .3; the virtual address is .1.
  mx_attach hosp-a-lan hosp-a 10.0.0.5/24 10.0.0.2/24
  mx_attach hosp-d-lan hosp-d 10.0.0.5/24 10.0.0.2/24
  mx_attach archive archive 192.168.1.10/24 192.168.1.2/24
  mx_pair_setup
  if [ -n "$rate" ]; then mx_pair_shape hosp-a-lan "$rate" && mx_pair_shape hosp-d-lan "$rate"; fi
  mx_write_config "$MX_TMP/base.json"
  mx_pair_intent "$MX_TMP/base.json" "$MX_PAIR_TCP" $((MX_PAIR_TCP + 1)) "$MX_PAIR_UDP"
  mx_pair_configs "" 200 100
}

# mx_pair_intent FILE TCP_A TCP_D [UDP]: the suites' objects added to FILE (mx_write_config's,
# over hosts hosp-a-lan, hosp-d-lan and archive): the core tenant ix, the routes leaked between
# it and the hosts' tenants, hosp-a and the archive statically mapped, hosp-d's NAPT pool, and
# the rules: hosp-a -> archive TCP TCP_A, hosp-d ->
# archive TCP TCP_D, archive -> hosp-a UDP UDP (if given). Shared with netns-hasync.
mx_pair_intent() {
  "$MX_PY" - "$1" "$2" "$3" "${4:-}" "$MX_PAIR_POOL" <<'PY' || mx_die "could not write the pair's intent"
import json, sys
path, tcp_a, tcp_d, udp, pool = sys.argv[1:]
c = json.load(open(path))
c["tenants"].append({"name": "ix", "description": "The IX core", "core": True})
leak = lambda tenant, prefix, to: {"tenant": tenant, "prefix": prefix, "next_tenant": to}
c["routes"] = [leak(t, "100.64.0.0/10", "ix") for t in ("hosp-a", "hosp-d", "archive")] + [
    leak("ix", "100.64.1.0/24", "hosp-a"), leak("ix", pool + "/32", "hosp-d"), leak("ix", "100.100.2.0/24", "archive")]
c["static_mappings"] = [
    {"tenant": "hosp-a", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"},
    {"tenant": "archive", "tenant_prefix": "192.168.1.0/24", "core_prefix": "100.100.2.0/24"}]
c["napt_pools"] = [{"tenant": "hosp-d", "addresses": [pool], "port_low": 20000, "port_high": 20999}]
rule = lambda name, prio, src, dst, proto, port: {"name": name, "priority": prio, "from_tenant": src, "to_tenant": dst,
                                                  "protocol": proto, "port_low": int(port), "port_high": int(port),
                                                  "permit": True}
c["policy_rules"] = [rule("a-archive", 10, "hosp-a", "archive", 6, tcp_a),
                     rule("d-archive", 20, "hosp-d", "archive", 6, tcp_d)]
if udp:
    c["policy_rules"].append(rule("probe", 30, "archive", "hosp-a", 17, udp))
c["settings"] = {"max_sessions": 4096}
json.dump(c, open(path, "w"), indent=1)
PY
}

mx_pair_setup() {
  local name ns rif gw
  [ -x "$MX_CTL" ] || mx_die "medixctl not found at $MX_CTL (run scripts/build)"
  ip link add "mxbrcheck$MX_ID" type bridge 2>/dev/null && ip link del "mxbrcheck$MX_ID" ||
    mx_die "this kernel has no Linux bridge (needed for the shared segments)"
  for name in "${MX_HOSTS[@]}"; do
    ns=$(mx_ns "$name") rif=mx${MX_ID}b${#MX_LINKS[@]} gw=${MX_GW_ADDR[$name]%/*}
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
    MX_LINKS+=("$rif")
  done
  head -c 48 /dev/urandom | base64 >"$MX_TMP/sync.key"
  MX_PAIR_PORT_A=$((20000 + RANDOM % 20000)) MX_PAIR_PORT_B=$((MX_PAIR_PORT_A + 1))
  A_PREFIX=$MX_PREFIX B_PREFIX=$MX_PREFIX-b A_LOG=$MX_TMP/medix-dp-a.log B_LOG=$MX_TMP/medix-dp-b.log A_PID='' B_PID=''
}

# mx_pair_shape HOST RATE [DEV [DPORT]]: the host's TCP towards the IX (out of DEV, br0 unless
# given; to DPORT alone if given) shaped to RATE (an htb class, chosen by a u32 filter), so that
# a study takes seconds, not a blink: it is still in flight when the active dies. Anything else
# (a UDP probe, another transfer) passes beside it, not queued behind it.
mx_pair_shape() {
  local ns dev=${3:-br0} port=()
  ns=$(mx_ns "$1")
  [ -n "${4:-}" ] && port=(match ip dport "$4" 0xffff)
  ip netns exec "$ns" tc qdisc add dev "$dev" root handle 1: htb default 10 &&
    ip netns exec "$ns" tc class add dev "$dev" parent 1: classid 1:10 htb rate 10gbit quantum 60000 &&
    ip netns exec "$ns" tc class add dev "$dev" parent 1: classid 1:20 htb rate "$2" burst 32kb quantum 1514 &&
    ip netns exec "$ns" tc qdisc add dev "$dev" parent 1:20 pfifo limit 1000 &&
    ip netns exec "$ns" tc filter add dev "$dev" parent 1: protocol ip u32 match ip protocol 6 0xff "${port[@]}" flowid 1:20 ||
    mx_die "could not shape $1 (tc htb, u32)"
}

# mx_pair_configs SUFFIX PRIO_A PRIO_B: $MX_TMP/config-{a,b}SUFFIX.json from $MX_TMP/base.json,
# the same intent on both nodes but for their own interface addresses (B's .3) and VRRP
# priorities: an instance on every segment (VRIDs from 10), no preemption. MX_PAIR_TAP=NAME: each
# node's medix-dp has an exception TAP of its own, NAMEa and NAMEb (the names are the root
# namespace's while medix-dp runs).
mx_pair_configs() {
  local name segs=()
  for name in "${MX_HOSTS[@]}"; do segs+=("$name=${MX_VIP[$name]}"); done
  "$MX_PY" - "$MX_TMP" "$1" "$2" "$3" "$MX_PAIR_ADVERT_CS" "${MX_PAIR_TAP:-}" "${segs[@]}" <<'PY' || mx_die "could not write the pair's configs"
import json, sys
tmp, suffix, prio_a, prio_b, advert_cs, tap = sys.argv[1:7]
segs = [s.split("=") for s in sys.argv[7:]]
c = json.load(open(tmp + "/base.json"))
vrrp = lambda prio: [{"name": "vr-" + i, "interface": i, "vrid": 10 + n, "priority": int(prio),
                      "advert_interval_cs": int(advert_cs), "preempt": False, "group": "ix", "addresses": [a]}
                     for n, (i, a) in enumerate(segs)]
c["vrrp_instances"] = vrrp(prio_a)
if tap:
    c.setdefault("settings", {})["exception_interface"] = tap + "a"
json.dump(c, open("%s/config-a%s.json" % (tmp, suffix), "w"), indent=1)
for i in c["interfaces"]:
    i["addresses"] = [a.replace(".2/", ".3/") for a in i["addresses"]]
c["vrrp_instances"] = vrrp(prio_b)
if tap:
    c["settings"]["exception_interface"] = tap + "b"
json.dump(c, open("%s/config-b%s.json" % (tmp, suffix), "w"), indent=1)
PY
}

# mx_keep_log LOG: a log about to be written again (a node restarted) is kept as LOG's .1, .2, ...
# (medix-dp-a.1.log): a failure of the first run must be readable after the restart.
mx_keep_log() {
  local n=1
  [ -s "$1" ] || return 0
  while [ -e "${1%.log}.$n.log" ]; do n=$((n + 1)); done
  mv "$1" "${1%.log}.$n.log"
}

# mx_pair_launch A|B CONFIG [options]: the node (its own DPDK prefix, log, veths), not waited for.
mx_pair_launch() {
  local node=$1 config=$2 name local_addr peer_addr local_port peer_port
  shift 2
  local save_prefix=$MX_PREFIX save_log=$MX_DP_LOG
  if [ "$node" = A ]; then MX_PAIR_ARGS_A=("$config" "$@"); else MX_PAIR_ARGS_B=("$config" "$@"); fi
  mx_keep_log "$([ "$node" = A ] && echo "$A_LOG" || echo "$B_LOG")"
  if [ "$node" = A ]; then
    MX_PREFIX=$A_PREFIX MX_DP_LOG=$A_LOG local_port=$MX_PAIR_PORT_A peer_port=$MX_PAIR_PORT_B
    local_addr=$MX_PAIR_SYNC_A peer_addr=$MX_PAIR_SYNC_B
    for name in "${MX_HOSTS[@]}"; do MX_RIF[$name]=${MX_RIF_A[$name]}; done
  else
    MX_PREFIX=$B_PREFIX MX_DP_LOG=$B_LOG local_port=$MX_PAIR_PORT_B peer_port=$MX_PAIR_PORT_A
    local_addr=$MX_PAIR_SYNC_B peer_addr=$MX_PAIR_SYNC_A
    for name in "${MX_HOSTS[@]}"; do MX_RIF[$name]=${MX_RIF_B[$name]}; done
  fi
  mx_launch_dp "$config" --ha-role standby --ha-vrrp-group ix --ha-sync-local "$local_addr:$local_port" \
    --ha-sync-peer "$peer_addr:$peer_port" --ha-sync-key-file "$MX_TMP/sync.key" "$@"
  if [ "$node" = A ]; then A_PID=$MX_DP_PID; else B_PID=$MX_DP_PID; fi
  MX_PIDS+=("$MX_DP_PID")
  MX_DP_PID='' MX_PREFIX=$save_prefix MX_DP_LOG=$save_log
  for name in "${MX_HOSTS[@]}"; do MX_RIF[$name]=${MX_RIF_A[$name]}; done
}
# As mx_start_dp: a node whose af_packet fanout id was taken is started again.
mx_pair_ready() {
  local pid=${1}_PID log=${1}_LOG args="MX_PAIR_ARGS_${1}[@]" try rc
  for try in 1 2 3; do
    rc=0
    MX_DP_PID=${!pid} MX_DP_LOG=${!log}
    mx_wait_ready 2>"$MX_TMP/start.err" || rc=1
    MX_DP_PID='' MX_DP_LOG=$MX_TMP/medix-dp.log
    [ $rc -eq 0 ] && return 0
    grep -q 'could not set PACKET_FANOUT' "${!log}" || break
    echo "    node $1 start $try: af_packet fanout id taken by another process; starting it again"
    mx_pair_launch "$1" "${!args}"
  done
  cat "$MX_TMP/start.err" >&2
  return 1
}
mx_pair_start() { mx_pair_launch "$@" && mx_pair_ready "$1"; }
mx_pair_stop() {
  local pid
  for pid in $A_PID $B_PID; do kill -TERM "$pid" 2>/dev/null; done
  for pid in $A_PID $B_PID; do wait "$pid" 2>/dev/null; done
  A_PID='' B_PID=''
  rm -rf "/var/run/dpdk/$B_PREFIX" "/var/run/dpdk/$A_PREFIX"
}
# mx_pair_kill A|B [PID...]: kill -9 of the node's medix-dp, and of the PIDs in the same kill
# (the whole node at once: its medix-cp). KILL_NS: the wall clock (ns) as the signal is sent;
# DEAD_NS: once medix-dp is reaped (its ports closed: whatever reaches the segments from then on
# is the other node's doing). probe.py report takes both.
mx_pair_kill() {
  local pid=${1}_PID p
  KILL_NS=$(mx_now_ns)
  kill -KILL "${!pid}" "${@:2}"
  wait "${!pid}" 2>/dev/null
  DEAD_NS=$(mx_now_ns)
  for p in "${@:2}"; do wait "$p" 2>/dev/null; done
  printf -v "$pid" ''
}
mx_now_ns() { local t=$EPOCHREALTIME; echo "${t/./}000"; }
mx_pair_dump() {
  local n p l
  for n in A B; do
    p=${n}_PREFIX l=${n}_LOG
    echo "--- node $n ha-sync:"; mx_ctl "${!p}" ha-sync 2>&1 | sed 's/^/  | /'
    echo "--- node $n vrrp:"; mx_ctl "${!p}" vrrp 2>&1 | head -30 | sed 's/^/  | /'
    echo "--- node $n log:"; grep -v '^$' "${!l}" | tail -n 20 | sed 's/^/  | /'
  done
}

# mx_pair_finish SUITE [LOG...]: after a failure, both nodes' state, the last lines of each LOG
# (the suite's other daemons) and the temp dir kept; the nodes stopped; "SUITE: N passed, M
# failed" and exit, 1 on any failure.
mx_pair_finish() {
  local log
  if [ "$failed" -gt 0 ]; then
    mx_pair_dump
    for log in "${@:2}"; do
      [ -s "$log" ] && { echo "--- ${log#"$MX_TMP"/}:"; tail -n 25 "$log" | sed 's/^/  | /'; }
    done
    MX_KEEP_TMP=1
    echo "--- kept in $MX_TMP"
  fi
  mx_pair_stop
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

mx_ctl() { local prefix=$1; shift; timeout 20 "$MX_CTL" -p "$prefix" "$@"; }
mx_ha() { mx_ctl "$1" -o json ha-sync 2>/dev/null | mx_json - "(d or {}).get('$2', 0)"; }
# mx_vrrp_states PREFIX: the node's instances' states, sorted and joined ("master master master").
mx_vrrp_states() {
  mx_ctl "$1" -o json vrrp 2>/dev/null | mx_json - "' '.join(sorted(i.get('state', '') for i in (d or {}).get('instances', [])))"
}
# mx_pair_is PREFIX VRRP_STATE ROLE: every instance of the node in VRRP_STATE, its HA role ROLE.
mx_pair_is() {
  [ "$(mx_vrrp_states "$1")" = "$(printf '%s\n' "${MX_HOSTS[@]}" | sed "s/.*/$2/" | paste -sd' ')" ] &&
    [ "$(mx_ha "$1" role)" = "$3" ]
}
# mx_sessions PREFIX: the node's sessions, one line each, sorted (what crossing made of each flow).
mx_sessions() {
  mx_ctl "$1" -o json sessions | mx_json - \
    "sorted('%s %s>%s | %s %s>%s' % (s.get('tenant'), s.get('source'), s.get('destination'), s.get('peer_tenant'), s.get('translated_source'), s.get('translated_destination')) for s in (d or {}).get('sessions', []))"
}
# mx_metric PORT 'NAME{LABELS}' [NS]: its value in the Prometheus metrics on 127.0.0.1:PORT ("" if
# absent), in the namespace NS if given (a medix-cp of its own).
mx_metric() {
  local in=()
  [ -n "${3:-}" ] && in=(ip netns exec "$3")
  "${in[@]}" "$MX_PY" -c 'import sys, urllib.request
for line in urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=5).read().decode().splitlines():
    if line.startswith(sys.argv[2] + " "): print(line.split()[1])' "$1" "$2" 2>/dev/null
}
# mx_wait_eval SECONDS EXPR: until the shell condition EXPR holds (1 if it did not within SECONDS).
mx_wait_eval() {
  local end=$((${EPOCHREALTIME/./} + $1 * 1000000))
  while :; do
    eval "$2" && return 0
    [ "${EPOCHREALTIME/./}" -lt "$end" ] || return 1
    sleep 0.1
  done
}

# mx_probe_start TAG RECV_HOST RECV_ADDR SEND_HOST DEST SECONDS: a 1 kHz UDP probe (probe.py,
# port $MX_PAIR_UDP) from SEND_HOST to DEST, received on RECV_HOST at RECV_ADDR.
mx_probe_start() {
  local tag=$1
  mx_bg "$2" "$MX_PY" "$MX_LIB_DIR/probe.py" recv "$3" "$MX_PAIR_UDP" "$MX_TMP/probe-$tag.recv"
  MX_PROBE_RECV=$MX_LAST_PID
  sleep 0.3
  mx_bg "$4" "$MX_PY" "$MX_LIB_DIR/probe.py" send "$5" "$MX_PAIR_UDP" 1000 "$6" "$MX_TMP/probe-$tag.sent"
  MX_PROBE_SEND=$MX_LAST_PID
}
# mx_probe_end TAG [KILL_NS DEAD_NS]: waits for the sender, stops the receiver; probe.py's report
# (JSON) in MX_PROBE_REPORT.
mx_probe_end() {
  wait "$MX_PROBE_SEND"
  sleep 0.3
  kill -TERM "$MX_PROBE_RECV"
  wait "$MX_PROBE_RECV"
  MX_PROBE_REPORT=$("$MX_PY" "$MX_LIB_DIR/probe.py" report "$MX_TMP/probe-$1.recv" "$MX_TMP/probe-$1.sent" "${@:2}")
}

# A DICOM study: N CT images (test/ike/dicom.py, pydicom), sent by dcmtk's storescu to storescp.
# mx_study_make N: the images in $MX_TMP/study; MX_STUDY_IMAGES=N.
mx_study_make() {
  command -v storescu >/dev/null && command -v storescp >/dev/null || mx_die "dcmtk is needed (scripts/setup)"
  "$MX_PY" "$MX_REPO/test/ike/dicom.py" make "$MX_TMP/study" "$1" >/dev/null || mx_die "could not make the DICOM study (pydicom: scripts/setup)"
  MX_STUDY_IMAGES=$1
}
# mx_study_serve HOST TAG PORT: storescp (AE ARCHIVE) on HOST, PORT, into $MX_TMP/received-TAG;
# bit-preserving (-B): the files are the bytes that crossed.
mx_study_serve() {
  mkdir -p "$MX_TMP/received-$2"
  mx_bg "$1" storescp -aet ARCHIVE -od "$MX_TMP/received-$2" -B "$3"
}
# mx_study_send HOST TAG ADDR PORT: storescu (calling AE TAG) sends every image of the study to
# ADDR PORT in the background; its exit status lands in $MX_TMP/study-TAG.rc.
mx_study_send() {
  local host=$1 tag=$2
  rm -f "$MX_TMP/study-$tag.rc"
  mx_bg "$host" bash -c "TCP_NODELAY=1 timeout 90 storescu -aet $tag -aec ARCHIVE +sd $3 $4 $MX_TMP/study \
    >$MX_TMP/storescu-$tag.log 2>&1; echo \$? >$MX_TMP/study-$tag.rc"
}
# mx_study_received TAG: how many files storescp wrote for TAG.
mx_study_received() { find "$MX_TMP/received-$1" -type f 2>/dev/null | wc -l; }
# mx_study_check TAG [LABEL]: a check (pass or fail): storescu ended (within 90 s) with exit 0 and
# every image arrived byte-identical (dicom.py compare). MX_STUDY_RESULT: compare's JSON.
mx_study_check() {
  local tag=$1 rc
  mx_wait_eval 90 "[ -s $MX_TMP/study-$tag.rc ]"
  rc=$(cat "$MX_TMP/study-$tag.rc" 2>/dev/null || echo timeout)
  MX_STUDY_RESULT=$("$MX_PY" "$MX_REPO/test/ike/dicom.py" compare "$MX_TMP/study" "$MX_TMP/received-$tag" 2>&1 | tail -1)
  if [ "$rc" = 0 ] && [ "$(mx_json - "(d or {}).get('identical') == $MX_STUDY_IMAGES" <<<"$MX_STUDY_RESULT")" = True ]; then
    pass "study $tag${2:+ ($2)}: storescu exit $rc, $MX_STUDY_RESULT"
  else
    fail "study $tag${2:+ ($2)}: storescu exit $rc, $MX_STUDY_RESULT" "$(tail -5 "$MX_TMP/storescu-$tag.log" 2>/dev/null)"
  fi
}
