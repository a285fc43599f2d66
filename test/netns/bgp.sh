#!/usr/bin/env bash
# BGP between two areas through medix-dp's exception path (docs/areas.md): each area's gobgpd
# lives behind its medix-dp's exception TAP, on the backbone interface's own address, and peers
# with the other area's over the backbone link between the two medix-dp (af_packet on a veth
# pair): the TCP session is punted by medix-dp like IKE, not carried by a link of its own.
#
#   namespace E: gobgpd 10.255.0.1 ── TAP ── medix-dp E ── bb (veth) ── medix-dp W ── TAP ── gobgpd 10.255.0.2 :namespace W
#                medix-cp E (--bgp, intent file)                                            medix-cp W
#
# A host in each area's tenant (east's hospital 10.1.0.5 = 100.64.1.5 in the core, west's archive
# 10.2.0.5 = 100.64.2.5), on a second af_packet port of its medix-dp.
# Checks: the session is established over the backbone addresses (ss in each namespace), each
# medix-dp counts the BGP segments it punted (telemetry /medix/events bgp_punted); each area's
# prefix is a route in the other's core tenant via the backbone; east's host pings west's by its
# core address across both medix-dp; west's gobgpd killed: east withdraws west's prefix, and the
# next ping is answered ICMP unreachable. Ends with "netns-bgp: N passed, M failed". MEDIX_DP, MEDIX_CP and
# MEDIXCTL override the binaries.
set -u
cd "$(dirname "$0")/../.."
dp=${MEDIX_DP:-build/dataplane/medix-dp}
cp=${MEDIX_CP:-build/controlplane/medix-cp}
ctl=${MEDIXCTL:-build/controlplane/cli/medixctl}
command -v gobgpd >/dev/null || scripts/setup >/dev/null
tmp=$(mktemp -d /tmp/medix-netns-bgp.XXXXXX)
id=$$
passed=0 failed=0
declare -A dp_pid cp_pid bgp_pid prefix ns tap bb addr other lan host
for a in e w; do
  prefix[$a]=medix-nbgp-$a-$id ns[$a]=medix-nbgp-$a-$id tap[$a]=mxt$a$id bb[$a]=mxb$a$id
  lan[$a]=mxl$a$id host[$a]=medix-nbgp-h$a-$id
done
addr=([e]=10.255.0.1 [w]=10.255.0.2)
declare -A n=([e]=1 [w]=2)
other=([e]=w [w]=e)

cleanup() {
  for a in e w; do
    [ -n "${cp_pid[$a]:-}" ] && kill -TERM "${cp_pid[$a]}" 2>/dev/null && wait "${cp_pid[$a]}" 2>/dev/null
    [ -n "${bgp_pid[$a]:-}" ] && kill -KILL "${bgp_pid[$a]}" 2>/dev/null && wait "${bgp_pid[$a]}" 2>/dev/null
    [ -n "${dp_pid[$a]:-}" ] && kill -TERM "${dp_pid[$a]}" 2>/dev/null && wait "${dp_pid[$a]}" 2>/dev/null
    rm -rf "/var/run/dpdk/${prefix[$a]}"
    ip netns del "${ns[$a]}" 2>/dev/null
    ip netns del "${host[$a]}" 2>/dev/null
    ip link del "${lan[$a]}" 2>/dev/null
    ip link del "${tap[$a]}" 2>/dev/null
  done
  ip link del "${bb[e]}" 2>/dev/null
  [ -n "${MX_KEEP_TMP:-}" ] || rm -rf "$tmp"
}
trap cleanup EXIT
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() {
  echo "FAIL $1"
  [ -n "${2:-}" ] && sed 's/^/  | /' <<<"$2" | tail -20
  failed=$((failed + 1))
}
finish() {
  echo "netns-bgp: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}
ctl() { timeout 20 "$ctl" -p "${prefix[$1]}" --cp "unix://$tmp/cp-$1.sock" "${@:2}" 2>&1; }
routes() {
  ctl "$1" -o json show route | /usr/bin/python3 -c '
import json, sys
for o in json.load(sys.stdin).get("objects", []):
    r = o.get("route", o)
    if r.get("tenant") == "ix" and "via" in r:
        print(r["prefix"], "via", r["via"].get("address", ""))' | sort
}
routes_are() { [ "$(routes "$1")" = "$2" ]; }
wait_for() {
  local limit=$1; shift
  local start now
  start=$(date +%s%N)
  while :; do
    "$@" && { took=$((($(date +%s%N) - start) / 1000000)); return 0; }
    now=$(date +%s%N)
    [ $(((now - start) / 1000000)) -ge $((limit * 1000)) ] && { took=$(((now - start) / 1000000)); return 1; }
    sleep 0.05
  done
}

for binary in "$dp" "$cp" "$ctl"; do [ -x "$binary" ] || { fail "$binary is not built"; finish; }; done
[ -c /dev/net/tun ] || { fail "/dev/net/tun is missing (the exception interface is a TAP)"; finish; }
ip link add "${bb[e]}" type veth peer name "${bb[w]}" || { fail "the backbone veth pair"; finish; }
for a in e w; do
  ip link set "${bb[$a]}" up
  ip netns add "${ns[$a]}" && ip -n "${ns[$a]}" link set lo up || { fail "namespace ${ns[$a]}"; finish; }
  # A host of the area's tenant: 10.1.0.5 (east's hospital), 10.2.0.5 (west's archive).
  ip netns add "${host[$a]}" && ip -n "${host[$a]}" link set lo up &&
    ip link add "${lan[$a]}" type veth peer name eth0 netns "${host[$a]}" && ip link set "${lan[$a]}" up &&
    ip -n "${host[$a]}" addr add "10.${n[$a]}.0.5/24" dev eth0 && ip -n "${host[$a]}" link set eth0 up &&
    ip -n "${host[$a]}" route add default via "10.${n[$a]}.0.1" || { fail "host ${host[$a]}"; finish; }
  cat >"$tmp/dp-$a.json" <<JSON
{"schema_version": 1, "ports": [{"name": "p0", "device": "net_af_packet0", "promiscuous": true},
                               {"name": "p1", "device": "net_af_packet1", "promiscuous": true}],
 "settings": {"exception_interface": "${tap[$a]}", "max_sessions": 4096}}
JSON
  # DPDK's af_packet fanout id (pid ^ ifindex) may be another process's: a new pid, a new try.
  for try in 1 2 3; do
    setsid "$dp" --no-huge -m 512 --no-pci --log-level=error -l 0,1 --file-prefix "${prefix[$a]}" \
      --vdev "net_af_packet0,iface=${bb[$a]}" --vdev "net_af_packet1,iface=${lan[$a]}" -- \
      --config "$tmp/dp-$a.json" >"$tmp/dp-$a.log" 2>&1 &
    dp_pid[$a]=$!
    wait_for 30 grep -qs "medix-dp: ready" "$tmp/dp-$a.log" && break
    grep -q 'could not set PACKET_FANOUT' "$tmp/dp-$a.log" || { fail "medix-dp $a starts" "$(cat "$tmp/dp-$a.log")"; finish; }
  done
  # Its TAP into the area's namespace, with the backbone address: where gobgpd listens.
  ip link set "${tap[$a]}" netns "${ns[$a]}" && ip -n "${ns[$a]}" addr add "${addr[$a]}/24" dev "${tap[$a]}" &&
    ip -n "${ns[$a]}" link set "${tap[$a]}" up || { fail "TAP ${tap[$a]} into ${ns[$a]}"; finish; }
  cat >"$tmp/gobgpd-$a.toml" <<TOML
[global.config]
  as = 65000
  router-id = "${addr[$a]}"
  local-address-list = ["${addr[$a]}"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "${addr[${other[$a]}]}"
    peer-as = 65000
  [neighbors.timers.config]
    hold-time = 3
    keepalive-interval = 1
    connect-retry = 1
  [neighbors.transport.config]
    local-address = "${addr[$a]}"
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
TOML
  ip netns exec "${ns[$a]}" gobgpd -f "$tmp/gobgpd-$a.toml" --api-hosts 127.0.0.1:50051 --pprof-disable -p -l warn \
    >>"$tmp/gobgpd-$a.log" 2>&1 &
  bgp_pid[$a]=$!
done
printf 'medix-cp {\n  port = 0\n  port_nat_t = 0\n}\n' >"$tmp/strongswan.conf"
# Each area: its tenant's LAN translated into the core (a static mapping, the core's route to it
# announced), the core reached from the tenant; policy: the hospital may leave east into the
# core, the core may reach west's archive.
cat >"$tmp/e.json" <<'JSON'
{"schema_version": 1, "tenants": [{"name": "ix", "core": true}, {"name": "hosp-e"}],
 "interfaces": [{"name": "bb", "tenant": "ix", "port": "p0", "addresses": ["10.255.0.1/24"]},
                {"name": "lan", "tenant": "hosp-e", "port": "p1", "addresses": ["10.1.0.1/24"]}],
 "routes": [{"tenant": "hosp-e", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
            {"tenant": "ix", "prefix": "100.64.1.0/24", "next_tenant": "hosp-e"}],
 "static_mappings": [{"tenant": "hosp-e", "tenant_prefix": "10.1.0.0/24", "core_prefix": "100.64.1.0/24"}],
 "policy_rules": [{"name": "hosp-out", "priority": 10, "from_tenant": "hosp-e", "to_tenant": "ix", "permit": true}],
 "bgp": {"backbone_interface": "bb"}}
JSON
cat >"$tmp/w.json" <<'JSON'
{"schema_version": 1, "tenants": [{"name": "ix", "core": true}, {"name": "arch-w"}],
 "interfaces": [{"name": "bb", "tenant": "ix", "port": "p0", "addresses": ["10.255.0.2/24"]},
                {"name": "lan", "tenant": "arch-w", "port": "p1", "addresses": ["10.2.0.1/24"]}],
 "routes": [{"tenant": "arch-w", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
            {"tenant": "ix", "prefix": "100.64.2.0/24", "next_tenant": "arch-w"}],
 "static_mappings": [{"tenant": "arch-w", "tenant_prefix": "10.2.0.0/24", "core_prefix": "100.64.2.0/24"}],
 "policy_rules": [{"name": "to-archive", "priority": 10, "from_tenant": "ix", "to_tenant": "arch-w", "permit": true}],
 "bgp": {"backbone_interface": "bb"}}
JSON
for a in e w; do
  ip netns exec "${ns[$a]}" "$cp" --intent "$tmp/$a.json" -p "${prefix[$a]}" --listen "unix://$tmp/cp-$a.sock" \
    --bgp 127.0.0.1:50051 --strongswan-conf "$tmp/strongswan.conf" --log-level 0 >>"$tmp/cp-$a.log" 2>&1 &
  cp_pid[$a]=$!
  wait_for 15 grep -q "medix-cp: ready" "$tmp/cp-$a.log" || { fail "medix-cp $a starts" "$(tail -8 "$tmp/cp-$a.log")"; finish; }
done

established() { ctl e areas | grep -q "^  session 10.255.0.2 ESTABLISHED"; }
wait_for 25 established && pass "east's session to west (10.255.0.2) established after ${took} ms (medixctl areas)" ||
  fail "session" "$(ctl e areas; ctl w areas; tail -3 "$tmp"/gobgpd-*.log)"
out=$(ip netns exec "${ns[e]}" ss -tnH state established "( sport = :179 or dport = :179 )")
grep -q "10.255.0.1:.*10.255.0.2:" <<<"$out" && pass "the BGP session is TCP between the backbone addresses, on east's TAP" ||
  fail "the session's TCP" "$out"
wait_for 10 routes_are w "100.64.1.0/24 via 10.255.0.1" && pass "west's core tenant: east's mapping via 10.255.0.1" ||
  fail "west's routes" "$(routes w; ctl w areas)"
wait_for 10 routes_are e "100.64.2.0/24 via 10.255.0.2" && pass "east's core tenant: west's archive prefix via 10.255.0.2" ||
  fail "east's routes" "$(routes e; ctl e areas)"
for a in e w; do
  n=$(/usr/bin/python3 test/netns/telemetry.py "${prefix[$a]}" /medix/events bgp_punted 2>&1)
  [ "${n:-0}" -gt 0 ] 2>/dev/null && pass "medix-dp $a punted $n BGP segments to its TAP" || fail "medix-dp $a's bgp_punted" "$n"
done
# Traffic across the core: east's hospital host pings west's archive host by its core address.
out=$(ip netns exec "${host[e]}" ping -c 3 -i 0.2 -W 2 100.64.2.5 2>&1)
grep -q " 0% packet loss" <<<"$out" && pass "east's host (10.1.0.5) pings west's archive by its core address 100.64.2.5 across the backbone" ||
  fail "ping across areas" "$out"$'\n'"$(/usr/bin/python3 test/netns/telemetry.py "${prefix[e]}" /medix/drops; /usr/bin/python3 test/netns/telemetry.py "${prefix[w]}" /medix/drops)"
kill -KILL "${bgp_pid[w]}"
wait "${bgp_pid[w]}" 2>/dev/null
bgp_pid[w]=
wait_for 10 routes_are e "" && pass "west's gobgpd killed: east withdraws west's prefix after ${took} ms" ||
  fail "withdraw" "$(routes e; ctl e areas)"
# The route gone, east's host is told at once (ICMP unreachable from medix-dp), not left waiting.
out=$(ip netns exec "${host[e]}" ping -c 1 -W 2 100.64.2.5 2>&1)
grep -qi "unreachable" <<<"$out" && pass "after the withdraw, a ping to west's archive gets ICMP unreachable (no black hole)" ||
  fail "ICMP unreachable after the withdraw" "$out"
finish
