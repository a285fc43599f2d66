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
  local config=$1; shift
  mx_need_binary
  mx_eal_args
  : >"$MX_DP_LOG"
  setsid "$MX_BIN" "${MX_EAL[@]}" -- --config "$config" "$@" >"$MX_DP_LOG" 2>&1 &
  MX_DP_PID=$!
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
  [ -n "${MX_PREFIX:-}" ] && rm -rf "/var/run/dpdk/$MX_PREFIX"
  if [ -n "${MX_TMP:-}" ] && [ -z "${MX_KEEP_TMP:-}" ]; then
    rm -rf "$MX_TMP"
  fi
  exit $rc
}
