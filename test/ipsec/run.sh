#!/usr/bin/env bash
# ESP tunnels end to end: two medix-dp IX nodes back to back over a carrier veth pair, kernel
# hosts behind each, SAs programmed through the gRPC API. test/ipsec/ipsec.py does the work
# (its docstring has the picture); this script builds the namespaces and veths with
# test/netns/lib.sh, runs it, counts its PASS/FAIL lines and takes everything down again.
#
#   1. tunnels: AES-GCM-128 and AES-CBC-128+HMAC-SHA-256, raw ESP and ESP in UDP; ping and
#      kernel TCP (sha256-checked) host to host; only ESP on the carrier
#   2. make-before-break rekeys (strongSwan's order) under sequenced UDP: nothing lost
#   3. SA lifetimes: WatchSaEvents SOFT_EXPIRED then HARD_EXPIRED, sa_expired, SaCounters.state
#   4. the IKE exception path (settings.exception_interface, a TAP moved into a namespace):
#      UDP 500/4500 there and back, untagged and VLAN 20; ike_no_listener without it
#   5. two workers on one node: SAs owned by worker spi % 2, hand-offs, no loss
#   last: no SA key in any log or error of the suite, in any form (test/lib/keygrep.py)
#
# Usage: test/ipsec/run.sh   (root; medix-dp from build/, or MEDIX_DP=path)
# Env: IPSEC_ONLY=pair|workers (one phase), IPSEC_PPS (2000: per stream in the rekey test),
# IPSEC_TCP_MIB (3), MX_KEEP_TMP=1 keeps the temp dir (configs, medix-dp logs, results).
# IPSEC_BREAK=1 rekeys in the wrong order (old inbound SA deleted first): the rekey checks must
# then FAIL (lost datagrams, esp_unknown_spi); a self-check of the test.
# Ends with "ipsec: N passed, M failed"; exit status 1 on any failure.
set -uo pipefail
IPSEC_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=test/netns/lib.sh
source "$IPSEC_DIR/../netns/lib.sh"

driver=
ipsec_cleanup() {
  local rc=$? pid prefix i
  set +e
  if [ -n "$driver" ]; then
    kill -TERM "$driver" 2>/dev/null
    for ((i = 0; i < 50; i++)); do kill -0 "$driver" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$driver" 2>/dev/null
    wait "$driver" 2>/dev/null
  fi
  # The driver stops its medix-dp processes itself; these are what a killed driver left.
  if [ -n "${MX_TMP:-}" ] && [ -f "$MX_TMP/dp-pids" ]; then
    while read -r pid prefix; do
      if mx_alive "$pid" && grep -q medix-dp "/proc/$pid/cmdline" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null
        for ((i = 0; i < 50; i++)); do mx_alive "$pid" || break; sleep 0.1; done
        mx_alive "$pid" && kill -KILL "$pid" 2>/dev/null
      fi
      rm -rf "/var/run/dpdk/$prefix"
    done <"$MX_TMP/dp-pids"
  fi
  if [ -n "${MX_ID:-}" ]; then
    ip link del "mx$MX_ID-ca" 2>/dev/null
    for pid in $(ip netns pids "mx-$MX_ID-ike" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "mx-$MX_ID-ike" 2>/dev/null
    ip link del "mxe$MX_ID" 2>/dev/null  # the TAP, had it not been moved yet
  fi
  (exit "$rc")
  mx_cleanup
}

mx_init
trap ipsec_cleanup EXIT
mx_need_binary
[ -c /dev/net/tun ] || mx_die "/dev/net/tun is missing (the exception interface is a TAP)"

# Hosts: one behind each node, and an IKE peer on node A's third port.
mx_attach a-lan hosp-a 10.1.0.10/24 10.1.0.1/24
mx_attach b-lan hosp-b 10.2.0.10/24 10.2.0.1/24
mx_attach peer carrier-p 192.0.2.2/24 192.0.2.1/24
# The carrier: a veth pair whose ends both stay in the root namespace, one per node.
ca=mx$MX_ID-ca cb=mx$MX_ID-cb
(
  set -e
  ip link add "$ca" type veth peer name "$cb"
  for end in "$ca" "$cb"; do
    sysctl -qw "net.ipv6.conf.$end.disable_ipv6=1" "net.ipv4.conf.$end.forwarding=0"
    ip link set "$end" arp off up
  done
  # Where node A's exception TAP goes, with the tunnel endpoint addresses (as for charon).
  ip netns add "mx-$MX_ID-ike"
) || mx_die "could not create the carrier veth pair or the IKE namespace"

env_file=$MX_TMP/env.json
cat >"$env_file" <<EOF
{"id": "$MX_ID", "tmp": "$MX_TMP", "binary": "$MX_BIN",
 "ns": {"a": "$(mx_ns a-lan)", "b": "$(mx_ns b-lan)", "peer": "$(mx_ns peer)", "ike": "mx-$MX_ID-ike"},
 "rif": {"a": "${MX_RIF[a-lan]}", "b": "${MX_RIF[b-lan]}", "peer": "${MX_RIF[peer]}"},
 "carrier": {"a": "$ca", "b": "$cb"},
 "mac": {"peer": "$(mx_host_mac peer)"},
 "tap": "mxe$MX_ID"}
EOF

log=$MX_TMP/driver.log
only=()
[ -n "${IPSEC_ONLY:-}" ] && only=(--only "$IPSEC_ONLY")
: >"$log"
"$MX_PY" -u "$IPSEC_DIR/ipsec.py" --env "$env_file" "${only[@]}" >"$log" 2>&1 &
driver=$!
tail -n +1 -f --pid="$driver" "$log" &
follower=$!
wait "$driver"
rc=$?
driver=
wait "$follower" 2>/dev/null

passed=$(grep -c '^PASS ' "$log")
failed=$(grep -c '^FAIL ' "$log")
if [ "$rc" -ne 0 ] && [ "$failed" -eq 0 ]; then
  echo "FAIL the driver exited with status $rc"
  failed=1
fi
if [ "$failed" -gt 0 ]; then
  # shellcheck disable=SC2034  # read by mx_cleanup
  MX_KEEP_TMP=1
  echo "--- configs, medix-dp logs and results kept in $MX_TMP"
fi
echo "ipsec: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
