# shellcheck shell=bash
# Shared by the suites around etcd (test/cp/etcd.sh, test/cp/bgp.sh): etcd members on the loopback
# of the suite's network namespace $ns. The suite defines etcdctl (a function: its endpoints, TLS,
# user), which etcd_healthy calls.

# etcd_member NAME DATA_DIR CLIENT_URL PEER_URL CLUSTER LOG [ETCD ARGS...]: one member, in the
# background (its pid in $etcd_started), its output appended to LOG.
etcd_member() {
  local name=$1 data=$2 client=$3 peer=$4 cluster=$5 log=$6
  shift 6
  ip netns exec "$ns" etcd --name "$name" --data-dir "$data" --listen-client-urls "$client" \
    --advertise-client-urls "$client" --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$cluster" --log-level error "$@" >>"$log" 2>&1 &
  etcd_started=$!
}

# etcd_healthy SECONDS [PID]: until `etcdctl endpoint health` answers (0), SECONDS pass or PID
# (a member just started) dies (1).
etcd_healthy() {
  local i
  for ((i = 0; i < $1 * 10; i++)); do
    etcdctl endpoint health >/dev/null 2>&1 && return 0
    [ -n "${2:-}" ] && ! kill -0 "$2" 2>/dev/null && return 1
    sleep 0.1
  done
  return 1
}
