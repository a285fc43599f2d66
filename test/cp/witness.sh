#!/usr/bin/env bash
# The IKE witness's records never go down (issue 15, docs/ha.md "A record never goes down"):
# test/cp/witness_records.cpp drives medix-cp's Witness against a real etcd on the loopback of a
# network namespace of the suite's own, and gives etcd a record Txn late, as a connection given
# up at a reconnect would. Ends with "cp-witness: N passed, M failed". WITNESS_RECORDS overrides
# the tool (a build of another commit: the control).
set -u
cd "$(dirname "$0")/../.."
# shellcheck source=test/lib/etcd.sh
source test/lib/etcd.sh
tool=${WITNESS_RECORDS:-build/test/cp/witness-records}
command -v etcd >/dev/null && command -v etcdctl >/dev/null || scripts/setup >/dev/null
tmp=$(mktemp -d /tmp/medix-cp-witness.XXXXXX)
ns=medix-witness-$$
etcd_pid=
passed=0 failed=0

cleanup() {
  [ -n "$etcd_pid" ] && kill -KILL "$etcd_pid" 2>/dev/null && wait "$etcd_pid" 2>/dev/null
  ip netns del "$ns" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
finish() {
  echo "cp-witness: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
etcdctl() { ip netns exec "$ns" env ETCDCTL_API=3 /usr/bin/etcdctl --endpoints 127.0.0.1:2379 --dial-timeout 2s "$@"; }

[ -x "$tool" ] || { fail "$tool is not built"; finish; }
ip netns add "$ns" && ip -n "$ns" link set lo up || { fail "create namespace $ns"; finish; }
etcd_member w "$tmp/etcd" http://127.0.0.1:2379 http://127.0.0.1:2380 w=http://127.0.0.1:2380 "$tmp/etcd.log"
etcd_pid=$etcd_started
etcd_healthy 10 "$etcd_pid" || { fail "etcd starts on 127.0.0.1:2379 in $ns" "$(tail -5 "$tmp/etcd.log")"; finish; }

out=$(timeout 60 ip netns exec "$ns" "$tool" etcd://127.0.0.1:2379/medix-witness 2>&1)
rc=$?
printf '%s\n' "$out" | grep -v '^witness-records:'
passed=$((passed + $(grep -c '^PASS' <<<"$out")))
failed=$((failed + $(grep -c '^FAIL' <<<"$out")))
grep -q '^witness-records: ' <<<"$out" || fail "witness-records ended without its count (exit $rc)" "$(tail -5 <<<"$out")"
finish
