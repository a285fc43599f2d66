# shellcheck shell=bash
# A carrier's IPsec gateway (stock strongSwan charon) and medix-cp beside the medix-dp of
# lib.sh: shared by scripts/demo and benchmarks/imaging/run. Source lib.sh first.
#
#   mx_gateway_lan GW_HOST NS_LAN LAN_GW_CIDR LAN_HOST_CIDR
#       a LAN namespace behind GW_HOST (an mx_attach host): veth "lan" in GW_HOST, eth0 in NS_LAN,
#       GW_HOST forwards
#   mx_swan_start GW_HOST DIR LOCAL REMOTE LOCAL_ID REMOTE_ID PSK LOCAL_TS REMOTE_TS IKE ESP
#       charon with kernel-libipsec (ESP in userspace over TUN, always in UDP 4500: this kernel
#       has no XFRM ESP) in GW_HOST's namespace, its files in DIR; one connection "ix", one child
#       "hosp"; returns when its config is loaded (MX_SWAN_PID) or non-zero with the reason;
#       MX_SWAN_CHARON_CONF: more settings for its charon section
#   mx_swan GW_HOST DIR SWANCTL-ARGS...     swanctl against that charon
#   mx_swan_stop                            kills it
#   mx_cp_start NS_CP TAP TAP_CIDR INTENT LOG [MEDIX-CP-ARGS...]
#       moves medix-dp's exception TAP into a namespace NS_CP (made unless there) with TAP_CIDR
#       and starts medix-cp there on an intent file (and the options given) against medix-dp
#       $MX_PREFIX; returns when it is ready (MX_CP_PID). MX_CP_RUN=DIR: a /run of its own there
#       (/run/dpdk still the real one): the ha plugin's FIFO, /var/run/charon.ha, is fixed
#   mx_swan_cleanup                         stops both and removes NS_CP and NS_LAN (call it
#                                           from the EXIT trap before mx_cleanup)
# Facts this rests on: charon's pid file is fixed (/var/run/charon.pid: a /run of its own),
# kernel-libipsec loads before kernel-netlink, swanctl.conf takes one key = value per line.

MX_SWAN_PID=""
MX_CP_PID=""
MX_SWAN_NS=()  # namespaces of our own besides lib.sh's hosts
MX_SWAN_LINKS=()

mx_gateway_lan() {
  local gw=$1 ns=$2 gw_cidr=$3 host_cidr=$4
  local gw_ns=${MX_NS[$gw]}
  (
    set -e
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$gw_ns" link add lan type veth peer name eth0 netns "$ns"
    ip -n "$gw_ns" addr add "$gw_cidr" dev lan
    ip -n "$gw_ns" link set lan up
    ip netns exec "$gw_ns" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
    ip -n "$ns" addr add "$host_cidr" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
    ip -n "$ns" route add default via "${gw_cidr%/*}"
  ) || { MX_SWAN_NS+=("$ns"); return 1; }
  MX_SWAN_NS+=("$ns")
}

mx_swan() {
  local gw=$1 dir=$2; shift 2
  ip netns exec "${MX_NS[$gw]}" env STRONGSWAN_CONF="$dir/strongswan.conf" SWANCTL_DIR="$dir/swanctl" swanctl "$@"
}

mx_swan_start() {
  local gw=$1 dir=$2 local=$3 remote=$4 local_id=$5 remote_id=$6 psk=$7 local_ts=$8 remote_ts=$9
  local ike=${10} esp=${11} i
  mkdir -p "$dir/run" "$dir/swanctl"
  rm -f "$dir/charon.vici" # a charon before this one's
  cat >"$dir/strongswan.conf" <<EOF
charon {
  load = random nonce openssl kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici
  plugins {
    vici {
      socket = unix://$dir/charon.vici
    }
  }
  ${MX_SWAN_CHARON_CONF:-}
}
swanctl {
  socket = unix://$dir/charon.vici
}
EOF
  (
    umask 077
    cat >"$dir/swanctl/swanctl.conf" <<EOF
connections {
  ix {
    version = 2
    local_addrs = $local
    remote_addrs = $remote
    proposals = $ike
    local {
      auth = psk
      id = $local_id
    }
    remote {
      auth = psk
      id = $remote_id
    }
    children {
      hosp {
        local_ts = $local_ts
        remote_ts = $remote_ts
        esp_proposals = $esp
      }
    }
  }
}
secrets {
  ike-ix {
    id-1 = $local_id
    id-2 = $remote_id
    secret = "$psk"
  }
}
EOF
  )
  # The pid file is fixed at /var/run/charon.pid: a /run of its own (ip netns exec gives a
  # private mount namespace).
  ip netns exec "${MX_NS[$gw]}" sh -c "mount --bind '$dir/run' /run && exec env STRONGSWAN_CONF='$dir/strongswan.conf' /usr/lib/ipsec/charon" \
    >"$dir/charon.log" 2>&1 &
  MX_SWAN_PID=$!
  disown # killed at exit, without a job notice
  for ((i = 0; i < 100; i++)); do [ -S "$dir/charon.vici" ] && break; sleep 0.1; done
  if ! [ -S "$dir/charon.vici" ] || ! mx_swan "$gw" "$dir" --load-all >"$dir/load.log" 2>&1; then
    echo "charon did not start: $(tail -3 "$dir/charon.log" "$dir/load.log" 2>/dev/null)"
    return 1
  fi
}

mx_cp_start() {
  local ns=$1 tap=$2 cidr=$3 intent=$4 logf=$5 i cmd
  shift 5
  (
    set -e
    [ -e "/run/netns/$ns" ] || ip netns add "$ns"
    ip -n "$ns" link set lo up
    ip link set "$tap" netns "$ns"
    ip -n "$ns" addr add "$cidr" dev "$tap"
    ip -n "$ns" link set "$tap" up
  ) || { MX_SWAN_NS+=("$ns"); MX_SWAN_LINKS+=("$tap"); echo "could not move $tap into $ns"; return 1; }
  MX_SWAN_NS+=("$ns")
  cmd=("${MEDIX_CP:-$MX_REPO/build/controlplane/medix-cp}" --intent "$intent" -p "$MX_PREFIX" --log-level 1 "$@")
  if [ -n "${MX_CP_RUN:-}" ]; then
    mkdir -p "$MX_CP_RUN/dpdk"
    # shellcheck disable=SC2016 # expanded by sh
    setsid ip netns exec "$ns" sh -c 'mount --bind /run/dpdk "$1/dpdk" && mount --rbind "$1" /run && shift && exec "$@"' \
      sh "$MX_CP_RUN" "${cmd[@]}" >"$logf" 2>&1 &
  else
    setsid ip netns exec "$ns" "${cmd[@]}" >"$logf" 2>&1 &
  fi
  MX_CP_PID=$!
  for ((i = 0; i < 100; i++)); do
    grep -q 'medix-cp: ready' "$logf" && return 0
    mx_alive "$MX_CP_PID" || break
    sleep 0.1
  done
  echo "medix-cp did not start: $(tail -5 "$logf")"
  return 1
}

# mx_cp_stop: SIGTERM (medix-cp deletes its IKE_SA and so the SAs in medix-dp); returns its status.
mx_cp_stop() {
  local rc=0 i
  [ -n "$MX_CP_PID" ] || return 0
  kill -TERM "$MX_CP_PID" 2>/dev/null
  for ((i = 0; i < 50; i++)); do mx_alive "$MX_CP_PID" || break; sleep 0.1; done
  mx_alive "$MX_CP_PID" && kill -KILL "$MX_CP_PID" 2>/dev/null
  wait "$MX_CP_PID" 2>/dev/null || rc=$?
  MX_CP_PID=
  return $rc
}

# mx_swan_stop: the gateway's charon killed (a later mx_swan_start starts a fresh one).
mx_swan_stop() {
  [ -n "$MX_SWAN_PID" ] || return 0
  local i
  kill -KILL "$MX_SWAN_PID" 2>/dev/null
  for ((i = 0; i < 50; i++)); do mx_alive "$MX_SWAN_PID" || break; sleep 0.1; done
  MX_SWAN_PID=""
}

mx_swan_cleanup() {
  local ns pid l
  mx_cp_stop >/dev/null 2>&1
  mx_swan_stop
  for ns in "${MX_SWAN_NS[@]}"; do
    for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "$ns" 2>/dev/null
  done
  for l in "${MX_SWAN_LINKS[@]}"; do ip link del "$l" 2>/dev/null; done
}
