# shellcheck shell=bash
# Shared by the suites of routes between areas (test/cp/bgp.sh, test/netns/bgp.sh, docs/areas.md):
# medixctl against an area, its core tenant's routes, gobgpd's configuration. Sources
# test/netns/lib.sh for pass, fail, mx_finish and mx_wait_for. The suite sets, before calling:
#   ctl        medixctl's path
#   tmp        its temp dir: area AREA's medix-cp listens on unix://$tmp/cp-AREA.sock
#   prefix     an associative array: AREA -> its medix-dp's file prefix

# shellcheck source=test/netns/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/../netns/lib.sh"

# ctl AREA ARGS...: medixctl against the area's medix-cp (and medix-dp), its errors included.
ctl() { timeout 20 "$ctl" -p "${prefix[$1]}" --cp "unix://$tmp/cp-$1.sock" "${@:2}" 2>&1; }
# routes AREA: the core tenant's ("ix") routes of the area's medix-dp via a next hop: "PREFIX via
# ADDRESS" lines, sorted.
routes() {
  ctl "$1" -o json show route | /usr/bin/python3 -c '
import json, sys
for o in json.load(sys.stdin).get("objects", []):
    r = o.get("route", o)
    if r.get("tenant") == "ix" and "via" in r:
        print(r["prefix"], "via", r["via"].get("address", ""))' | LC_ALL=C sort
}
routes_are() { [ "$(routes "$1")" = "$2" ]; }
has_route() { routes "$1" | grep -qx "$2"; }
lacks_route() { ! routes "$1" | grep -q "^$2 "; }

# bgp_config ROUTER_ID LOCAL_ADDRESS PASSIVE NEIGHBOUR...: gobgpd's configuration of an area (iBGP,
# AS 65000), one neighbour per other area: hold time 3 s (BGP's least), keepalive 1 s; PASSIVE
# true: this side only listens (one side of each pair, docs/areas.md: gobgpd 3.10 drops both
# connections of a collision and waits its timers again).
bgp_config() {
  local router_id=$1 local_address=$2 passive=$3 neighbour
  shift 3
  cat <<TOML
[global.config]
  as = 65000
  router-id = "$router_id"
  local-address-list = ["$local_address"]
TOML
  for neighbour in "$@"; do
    cat <<TOML
[[neighbors]]
  [neighbors.config]
    neighbor-address = "$neighbour"
    peer-as = 65000
  [neighbors.timers.config]
    hold-time = 3
    keepalive-interval = 1
    connect-retry = 1
  [neighbors.transport.config]
    local-address = "$local_address"
    passive-mode = $passive
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
TOML
  done
}

# --- Two areas, each behind its own medix-dp (test/netns/bgp.sh, test/netns/bgp_esp.sh) ---------
# areas_init NAME K: the binaries (dp, cp, ctl), what the suites need installed, a temp dir, and
# the names of areas e and w (K, one letter, keeps this suite's interfaces apart from another's):
#   prefix ns      medix-dp's file prefix; the namespace of medix-cp, gobgpd (and charon)
#   tap up         medix-dp's exception TAP; its port onto the carrier (a veth, the other end cE/cW
#                  in the carrier's namespace $carrier, on its bridge br0)
#   lan host       the veth to the area's host, and the host's namespace
#   addr n other   the area's BGP address (10.255.0.N), N, the other area
areas_init() {
  local a k=$2
  dp=${MEDIX_DP:-build/dataplane/medix-dp}
  cp=${MEDIX_CP:-build/controlplane/medix-cp}
  ctl=${MEDIXCTL:-build/controlplane/cli/medixctl}
  command -v gobgpd >/dev/null && command -v bird >/dev/null && command -v storescu >/dev/null && command -v tcpdump >/dev/null &&
    /usr/bin/python3 -c 'import pydicom' 2>/dev/null || scripts/setup >/dev/null
  tmp=$(mktemp -d "/tmp/medix-$1.XXXXXX")
  id=$$
  declare -gA dp_pid cp_pid bgp_pid bfd_pid prefix ns tap up lan host
  declare -gA addr=([e]=10.255.0.1 [w]=10.255.0.2) n=([e]=1 [w]=2) other=([e]=w [w]=e)
  carrier=medix-${k}bgp-c-$id
  for a in e w; do
    prefix[$a]=medix-${k}bgp-$a-$id ns[$a]=medix-${k}bgp-$a-$id host[$a]=medix-${k}bgp-h$a-$id
    tap[$a]=mx${k}t$a$id up[$a]=mx${k}u$a$id lan[$a]=mx${k}l$a$id
  done
}

# areas_cleanup: both areas' processes, namespaces and links, the carrier, the temp dir (kept
# with MX_KEEP_TMP). A suite removes its own extra hosts first.
areas_cleanup() {
  local a
  for a in e w; do
    [ -n "${cp_pid[$a]:-}" ] && kill -TERM "${cp_pid[$a]}" 2>/dev/null && wait "${cp_pid[$a]}" 2>/dev/null
    [ -n "${bgp_pid[$a]:-}" ] && kill -KILL "${bgp_pid[$a]}" 2>/dev/null && wait "${bgp_pid[$a]}" 2>/dev/null
    [ -n "${bfd_pid[$a]:-}" ] && kill -TERM "${bfd_pid[$a]}" 2>/dev/null && wait "${bfd_pid[$a]}" 2>/dev/null
    [ -n "${dp_pid[$a]:-}" ] && kill -TERM "${dp_pid[$a]}" 2>/dev/null && wait "${dp_pid[$a]}" 2>/dev/null
    rm -rf "/var/run/dpdk/${prefix[$a]}"
    ip netns del "${ns[$a]}" 2>/dev/null
    ip netns del "${host[$a]}" 2>/dev/null
    ip link del "${lan[$a]}" 2>/dev/null
    ip link del "${tap[$a]}" 2>/dev/null
    ip link del "${up[$a]}" 2>/dev/null
  done
  ip netns del "$carrier" 2>/dev/null
  [ -n "${MX_KEEP_TMP:-}" ] || rm -rf "$tmp"
}

# add_host NAMESPACE VETH NET: a host NET.5/24 (gateway NET.1) behind the veth medix-dp drives.
add_host() {
  ip netns add "$1" && ip -n "$1" link set lo up && ip link add "$2" type veth peer name eth0 netns "$1" &&
    ip link set "$2" up && ip -n "$1" addr add "$3.5/24" dev eth0 && ip -n "$1" link set eth0 up &&
    ip -n "$1" route add default via "$3.1" &&
    # The host's kernel completes its TCP checksums (af_packet would hand medix-dp partial ones).
    ip netns exec "$1" ethtool -K eth0 tx off >/dev/null
}

# areas_carrier: the carrier's namespace and bridge, no IPv6 there (nothing but the two medix-dp
# talk on it: the suites check what crosses); then per area its namespace, its host (10.N.0.5)
# and its port onto the carrier. Fails the suite if any of it cannot be made.
areas_carrier() {
  local a
  ip netns add "$carrier" && ip netns exec "$carrier" sysctl -qw net.ipv6.conf.default.disable_ipv6=1 &&
    ip -n "$carrier" link add br0 type bridge &&
    ip -n "$carrier" link set br0 type bridge forward_delay 0 stp_state 0 && ip -n "$carrier" link set br0 up ||
    { fail "the carrier's namespace and bridge"; finish; }
  for a in e w; do
    ip link add "${up[$a]}" type veth peer name "c$a" netns "$carrier" &&
      sysctl -qw "net.ipv6.conf.${up[$a]}.disable_ipv6=1" && ip link set "${up[$a]}" up &&
      ip -n "$carrier" link set "c$a" master br0 up || { fail "the carrier's veth ${up[$a]}"; finish; }
    ip netns add "${ns[$a]}" && ip -n "${ns[$a]}" link set lo up || { fail "namespace ${ns[$a]}"; finish; }
    add_host "${host[$a]}" "${lan[$a]}" "10.${n[$a]}.0" || { fail "host ${host[$a]}"; finish; }
  done
}

# areas_start_dp AREA [VETH...]: the area's medix-dp on p0 (its port onto the carrier), p1 (its
# host) and p2... (each VETH), its exception TAP moved into the area's namespace. Fails the suite
# if it does not start.
areas_start_dp() {
  local a=$1 i=2 v try
  shift
  local vdevs=(--vdev "net_af_packet0,iface=${up[$a]},framecnt=2048" --vdev "net_af_packet1,iface=${lan[$a]},framecnt=2048")
  local ports='{"name": "p0", "device": "net_af_packet0", "promiscuous": true},
    {"name": "p1", "device": "net_af_packet1", "promiscuous": true}'
  for v in "$@"; do
    vdevs+=(--vdev "net_af_packet$i,iface=$v,framecnt=2048")
    ports+=", {\"name\": \"p$i\", \"device\": \"net_af_packet$i\", \"promiscuous\": true}"
    i=$((i + 1))
  done
  cat >"$tmp/dp-$a.json" <<JSON
{"schema_version": 1, "ports": [$ports],
 "settings": {"exception_interface": "${tap[$a]}", "max_sessions": 4096}}
JSON
  # DPDK's af_packet fanout id (pid ^ ifindex) may be another process's: a new pid, a new try.
  for try in 1 2 3; do
    setsid "$dp" --no-huge -m 512 --no-pci --log-level=error -l 0,1 --file-prefix "${prefix[$a]}" "${vdevs[@]}" -- \
      --config "$tmp/dp-$a.json" >"$tmp/dp-$a.log" 2>&1 &
    dp_pid[$a]=$!
    mx_wait_for 30 grep -qs "medix-dp: ready" "$tmp/dp-$a.log" && break
    grep -q 'could not set PACKET_FANOUT' "$tmp/dp-$a.log" || { fail "medix-dp $a starts" "$(cat "$tmp/dp-$a.log")"; finish; }
  done
  ip link set "${tap[$a]}" netns "${ns[$a]}" || { fail "TAP ${tap[$a]} into ${ns[$a]}"; finish; }
}

# areas_start_bgp AREA: the area's gobgpd in its namespace, on its BGP address; west only listens,
# east dials (no collision of two connections).
areas_start_bgp() {
  local a=$1
  bgp_config "${addr[$a]}" "${addr[$a]}" "$([ "$a" = w ] && echo true || echo false)" "${addr[${other[$a]}]}" \
    >"$tmp/gobgpd-$a.toml"
  ip netns exec "${ns[$a]}" gobgpd -f "$tmp/gobgpd-$a.toml" --api-hosts 127.0.0.1:50051 --pprof-disable -p -l warn \
    >>"$tmp/gobgpd-$a.log" 2>&1 &
  bgp_pid[$a]=$!
}

# areas_start_bfd AREA: the area's BFD daemon (BIRD 2) in its namespace: bird.conf has the router
# id, the device protocol and an include of $tmp/bfd-AREA.conf, which medix-cp writes (--bfd
# $tmp/bird-AREA.ctl --bfd-config $tmp/bfd-AREA.conf, docs/areas.md); empty until it does.
areas_start_bfd() {
  local a=$1
  : >"$tmp/bfd-$a.conf"
  cat >"$tmp/bird-$a.conf" <<EOF
router id ${addr[$a]};
log stderr all;
protocol device { scan time 10; }
include "$tmp/bfd-$a.conf";
EOF
  ip netns exec "${ns[$a]}" bird -f -c "$tmp/bird-$a.conf" -s "$tmp/bird-$a.ctl" -P "$tmp/bird-$a.pid" \
    >>"$tmp/bird-$a.log" 2>&1 &
  bfd_pid[$a]=$!
  mx_wait_for 10 test -S "$tmp/bird-$a.ctl" || { fail "BIRD $a starts" "$(tail -5 "$tmp/bird-$a.log")"; finish; }
}

# areas_start_cp AREA [medix-cp options]: the area's medix-cp in its namespace (its intent
# $tmp/AREA.json, gobgpd's API); fails the suite if it does not start.
areas_start_cp() {
  local a=$1
  shift
  ip netns exec "${ns[$a]}" "$cp" --intent "$tmp/$a.json" -p "${prefix[$a]}" --listen "unix://$tmp/cp-$a.sock" \
    --bgp 127.0.0.1:50051 "$@" >>"$tmp/cp-$a.log" 2>&1 &
  cp_pid[$a]=$!
  mx_wait_for 15 grep -q "medix-cp: ready" "$tmp/cp-$a.log" || { fail "medix-cp $a starts" "$(tail -8 "$tmp/cp-$a.log")"; finish; }
}

# areas_punted [HOW [COUNTER WHAT]]: each area's medix-dp punted BGP segments to its TAP (telemetry
# bgp_punted; or COUNTER, e.g. bfd_punted, of WHAT, e.g. "BFD packets").
areas_punted() {
  local a punted counter=${2:-bgp_punted} what=${3:-BGP segments}
  for a in e w; do
    punted=$(/usr/bin/python3 test/netns/telemetry.py "${prefix[$a]}" /medix/events "$counter" 2>&1)
    [ "${punted:-0}" -gt 0 ] 2>/dev/null && pass "medix-dp $a punted $punted $what${1:+ ($1)} to its TAP" ||
      fail "medix-dp $a's $counter" "$punted"
  done
}

# areas_study IMAGES [HOW]: a DICOM study of IMAGES from east's hospital to west's archive by its
# core address 100.64.2.5 (dcmtk; test/ike's study maker and comparison): complete and
# byte-identical. Then the DICOM session in each area: east translated the source (rule
# hosp-to-archive), west the destination (rule core-dicom). The archive's storescp is left
# running (scp_pid) for the suite's checks that follow.
areas_study() {
  local out_e out_w
  /usr/bin/python3 test/ike/dicom.py make "$tmp/study" "$1" >/dev/null || { fail "the DICOM study (pydicom)"; finish; }
  mkdir -p "$tmp/received"
  ip netns exec "${host[w]}" storescp -aet ARCHIVE -od "$tmp/received" -B 11112 >"$tmp/storescp.log" 2>&1 &
  # shellcheck disable=SC2034 # the suite stops it
  scp_pid=$!
  mx_wait_for 5 eval 'ip netns exec "${host[w]}" ss -tlnH | grep -q ":11112 "'
  if ip netns exec "${host[e]}" env TCP_NODELAY=1 timeout 60 storescu -aet HOSPITAL-E -aec ARCHIVE +sd 100.64.2.5 11112 \
    "$tmp/study" >"$tmp/storescu.log" 2>&1 &&
    /usr/bin/python3 test/ike/dicom.py compare "$tmp/study" "$tmp/received" >"$tmp/dicom.json"; then
    pass "east's hospital stored a DICOM study on west's archive (100.64.2.5)${2:+ $2}: $(cat "$tmp/dicom.json")"
  else
    fail "DICOM study east -> west" "$(tail -5 "$tmp/storescu.log"; cat "$tmp/dicom.json" 2>/dev/null)"
  fi
  out_e=$(areas_sessions e) out_w=$(areas_sessions w)
  grep -qx "hosp-e 10.1.0.5 100.64.2.5:11112 -> ix 100.64.1.5 100.64.2.5:11112 hosp-to-archive" <<<"$out_e" &&
    grep -qx "ix 100.64.1.5 100.64.2.5:11112 -> arch-w 100.64.1.5 10.2.0.5:11112 core-dicom" <<<"$out_w" &&
    pass "its session: east translated the source (10.1.0.5 -> 100.64.1.5, rule hosp-to-archive), west the destination (100.64.2.5 -> 10.2.0.5, rule core-dicom)" ||
    fail "the study's sessions" "east: $out_e"$'\n'"west: $out_w"
}
# areas_sessions AREA: its NAT sessions to port 11112, one line each (tenant, source address,
# destination -> peer tenant, translated source address and destination, rule).
areas_sessions() {
  ctl "$1" -o json sessions --port 11112 | /usr/bin/python3 -c '
import json, sys
for x in json.load(sys.stdin).get("sessions", []):
    print(x["tenant"], x["source"].split(":")[0], x["destination"], "->", x["peer_tenant"],
          x["translated_source"].split(":")[0], x["translated_destination"], x["rule"])'
}

# areas_routes_gone T0 ROUTES_ARE: after the backbone was cut at T0 (date +%s%N), the ms until each
# area's learned routes are gone (ROUTES_ARE AREA "" holds): te and tw, empty if not within 10 s.
areas_routes_gone() {
  local t0=$1 routes_are=$2
  te='' tw=''
  while :; do
    [ -z "$te" ] && "$routes_are" e "" && te=$((($(date +%s%N) - t0) / 1000000))
    [ -z "$tw" ] && "$routes_are" w "" && tw=$((($(date +%s%N) - t0) / 1000000))
    [ -n "$te" ] && [ -n "$tw" ] && break
    [ $((($(date +%s%N) - t0) / 1000000)) -gt 10000 ] && break
    sleep 0.02
  done
}

# areas_gone_within_3s WHAT T0 ROUTES_ARE SHOW: areas_routes_gone, then one check that both areas
# dropped the other's prefix within the issue's 3 s after WHAT (SHOW, a command, prints what was
# there when not). gone_ms: the slower area's time, empty when not within 3 s.
areas_gone_within_3s() {
  local what=$1 t0=$2 routes_are=$3 show=$4
  gone_ms=''
  areas_routes_gone "$t0" "$routes_are" # te, tw
  if [ -n "$te" ] && [ -n "$tw" ] && [ "$te" -le 3000 ] && [ "$tw" -le 3000 ]; then
    pass "$what: both areas removed the other's prefix within 3 s (east ${te} ms, west ${tw} ms)"
    gone_ms=$((te > tw ? te : tw))
  else
    fail "$what: routes withdrawn within 3 s (east ${te:-none} ms, west ${tw:-none} ms)" "$("$show")"
  fi
}

# areas_unreachable WHAT: after WHAT, a ping from east's host to west's archive (100.64.2.5) gets
# ICMP unreachable from east's medix-dp (the route is gone: no black hole).
areas_unreachable() {
  local out
  out=$(ip netns exec "${host[e]}" ping -c 1 -W 2 100.64.2.5 2>&1)
  grep -qi "unreachable" <<<"$out" && pass "$1: a ping to west's archive gets ICMP unreachable" ||
    fail "ICMP unreachable after $1" "$out"
}

# areas_session_up HOW_UP HOW_TCP: east's BGP session to west established (medixctl areas), and
# TCP between the two BGP addresses (ss in east's namespace); HOW_*: each check's words.
areas_session_up() {
  local out
  established() { ctl e areas | grep -q "^  session 10.255.0.2 ESTABLISHED"; }
  mx_wait_for 25 established && pass "east's session to west (10.255.0.2) established after ${took} ms, $1" ||
    fail "session" "$(ctl e areas; ctl w areas; tail -3 "$tmp"/gobgpd-*.log)"
  out=$(ip netns exec "${ns[e]}" ss -tnH state established "( sport = :179 or dport = :179 )")
  grep -q "10.255.0.1:.*10.255.0.2:" <<<"$out" && pass "the BGP session is TCP between $2" || fail "the session's TCP" "$out"
}
