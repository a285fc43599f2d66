#!/usr/bin/env bash
# BGP between two areas through medix-dp's exception path (docs/areas.md): each area's gobgpd
# lives behind its medix-dp's exception TAP, on the backbone interface's own address, and peers
# with the other area's over the backbone link between the two medix-dp (af_packet on a veth
# pair): the TCP session is punted by medix-dp like IKE, not carried by a link of its own.
#
#   namespace E: gobgpd 10.255.0.1 ── TAP ── medix-dp E ── bb ══ carrier ══ bb ── medix-dp W ── TAP ── gobgpd 10.255.0.2 :namespace W
#                BIRD (BFD), medix-cp E (--bgp --bfd)    (VLAN 100)        (VLAN 100)                medix-cp W, BIRD
#
# The backbone: each medix-dp's port is a veth whose other end is in a bridge of a "carrier"
# namespace; the areas' backbone interfaces are a VLAN attachment (802.1Q tag 100, which medix-dp
# adds and takes off itself: the kernel has no 8021q here), as a carrier's VLAN service would
# deliver them. The carrier's ends set down is a cut both medix-dp see as their link's carrier
# lost (their own interfaces stay up, as a NIC's do when the fibre is cut).
#
# A host in each area's tenant (east's hospital 10.1.0.5 = 100.64.1.5 in the core, west's archive
# 10.2.0.5 = 100.64.2.5), on a second af_packet port of its medix-dp; east has a lab too, on a
# third, with the hospital's very address (10.1.0.5 = 100.64.4.5 in the core), and a clinic on a
# fourth, the same address again, without a static mapping: NAPT pool 100.64.5.0/30.
# Checks: the session is established over the backbone addresses (ss in each namespace), and
# every frame on the carrier is tagged VLAN 100 (tcpdump there); each medix-dp counts the BGP
# segments it punted (telemetry /medix/events bgp_punted); each area's prefixes (mappings, the
# NAPT pool) are routes in the other's core tenant via the backbone; east's host pings west's by
# its core address across both medix-dp; a DICOM study (dcmtk's storescu) from the hospital to the
# archive by its core address, complete and byte-identical, its session translated on both sides
# (east the source, west the destination), each area's policy rule named; the clinic's DICOM echo
# (echoscu) to the archive through east's NAPT pool, answered, its session in east's NAT sessions
# (source translated into the pool) and in west's from that pool address and port; the lab (the
# same address, another tenant) refused by east's policy, and the hospital to a port of the archive
# other than DICOM's refused by west's (docs/nat.md, "Across areas"); the backbone cut MX_BGP_CUTS times (default 2): each area
# sees its port's link down, resets its session at once and removes the other's prefix (the time
# from the cut to both routes gone: each cut's figure, then p50 and max; at most 3 s each), a
# ping across is answered ICMP unreachable, and after the repair the routes come back; BFD (BIRD
# in each area's namespace, medix-cp --bfd) up both ways and punted by both medix-dp
# (bfd_punted), then a failure beyond the ports MX_BFD_CUTS times (default 1: the carrier's
# bridge isolates both ends, the links stay up): both areas' routes gone within 3 s (each
# figure, p50, max), east's port still up and its log naming BFD, a ping answered ICMP
# unreachable, east's BFD metrics (up 1 before, 0 during, downs counted once more), the routes back after
# the repair (the first time with east's medix-cp stopped during the failure and started after
# the repair: it enables the session it had shut); west's
# gobgpd killed: east withdraws west's prefix, and the next ping is answered ICMP unreachable. Ends with "netns-bgp: N passed, M failed". MEDIX_DP, MEDIX_CP and
# MEDIXCTL override the binaries.
set -u
cd "$(dirname "$0")/../.."
# shellcheck source=test/lib/bgp.sh
source test/lib/bgp.sh
areas_init netns-bgp n  # test/lib/bgp.sh: dp, cp, ctl, tmp and the areas' names
lab=mxk$id lab_host=medix-nbgp-hk-$id  # east's lab
clinic=mxn$id clinic_host=medix-nbgp-hn-$id  # east's clinic (NAPT)
cleanup() {
  ip netns del "$lab_host" 2>/dev/null
  ip link del "$lab" 2>/dev/null
  ip netns del "$clinic_host" 2>/dev/null
  ip link del "$clinic" 2>/dev/null
  areas_cleanup
}
trap cleanup EXIT
finish() { mx_finish netns-bgp; }

for binary in "$dp" "$cp" "$ctl"; do [ -x "$binary" ] || { fail "$binary is not built"; finish; }; done
[ -c /dev/net/tun ] || { fail "/dev/net/tun is missing (the exception interface is a TAP)"; finish; }
# The carrier, each area's namespace and host: 10.1.0.5 (east's hospital), 10.2.0.5 (west's
# archive); east's lab and clinic, the hospital's very address, on its p2 and p3.
areas_carrier
add_host "$lab_host" "$lab" 10.1.0 && add_host "$clinic_host" "$clinic" 10.1.0 || { fail "east's lab and clinic hosts"; finish; }
for a in e w; do
  if [ $a = e ]; then areas_start_dp e "$lab" "$clinic"; else areas_start_dp w; fi
  # Its TAP with the backbone address: where gobgpd listens.
  ip -n "${ns[$a]}" addr add "${addr[$a]}/24" dev "${tap[$a]}" && ip -n "${ns[$a]}" link set "${tap[$a]}" up ||
    { fail "TAP ${tap[$a]}'s address"; finish; }
  areas_start_bgp $a
  areas_start_bfd $a
done
printf 'medix-cp {\n  port = 0\n  port_nat_t = 0\n}\n' >"$tmp/strongswan.conf"
# Each area: its tenants' LANs translated into the core (static mappings, the core's routes to
# them announced; east's clinic through a NAPT pool, announced too), the core reached from the
# tenants; the backbone interface on VLAN 100. Policy (docs/nat.md, "Across areas"): east decides
# by the source tenant (the hospital may reach west's archive prefix, the clinic its DICOM port;
# the lab, with the same addresses, nothing), west by its own tenant (the core may reach the
# archive's DICOM port and ping it, nothing else).
cat >"$tmp/e.json" <<'JSON'
{"schema_version": 1,
 "tenants": [{"name": "ix", "core": true}, {"name": "hosp-e"}, {"name": "lab-e"}, {"name": "clinic-e"}],
 "interfaces": [{"name": "bb", "tenant": "ix", "port": "p0", "vlan": 100, "addresses": ["10.255.0.1/24"]},
                {"name": "lan", "tenant": "hosp-e", "port": "p1", "addresses": ["10.1.0.1/24"]},
                {"name": "lab", "tenant": "lab-e", "port": "p2", "addresses": ["10.1.0.1/24"]},
                {"name": "clinic", "tenant": "clinic-e", "port": "p3", "addresses": ["10.1.0.1/24"]}],
 "routes": [{"tenant": "hosp-e", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
            {"tenant": "lab-e", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
            {"tenant": "clinic-e", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
            {"tenant": "ix", "prefix": "100.64.1.0/24", "next_tenant": "hosp-e"},
            {"tenant": "ix", "prefix": "100.64.4.0/24", "next_tenant": "lab-e"},
            {"tenant": "ix", "prefix": "100.64.5.0/30", "next_tenant": "clinic-e"}],
 "static_mappings": [{"tenant": "hosp-e", "tenant_prefix": "10.1.0.0/24", "core_prefix": "100.64.1.0/24"},
                     {"tenant": "lab-e", "tenant_prefix": "10.1.0.0/24", "core_prefix": "100.64.4.0/24"}],
 "napt_pools": [{"tenant": "clinic-e", "addresses": ["100.64.5.0/30"]}],
 "policy_rules": [{"name": "hosp-to-archive", "priority": 10, "from_tenant": "hosp-e", "to_tenant": "ix",
                   "destination_prefix": "100.64.2.0/24", "permit": true},
                  {"name": "clinic-to-archive", "priority": 20, "from_tenant": "clinic-e", "to_tenant": "ix",
                   "destination_prefix": "100.64.2.0/24", "protocol": 6, "port_low": 11112, "port_high": 11112,
                   "permit": true}],
 "bgp": {"backbone_interface": "bb"}}
JSON
cat >"$tmp/w.json" <<'JSON'
{"schema_version": 1, "tenants": [{"name": "ix", "core": true}, {"name": "arch-w"}],
 "interfaces": [{"name": "bb", "tenant": "ix", "port": "p0", "vlan": 100, "addresses": ["10.255.0.2/24"]},
                {"name": "lan", "tenant": "arch-w", "port": "p1", "addresses": ["10.2.0.1/24"]}],
 "routes": [{"tenant": "arch-w", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
            {"tenant": "ix", "prefix": "100.64.2.0/24", "next_tenant": "arch-w"}],
 "static_mappings": [{"tenant": "arch-w", "tenant_prefix": "10.2.0.0/24", "core_prefix": "100.64.2.0/24"}],
 "policy_rules": [{"name": "core-dicom", "priority": 10, "from_tenant": "ix", "to_tenant": "arch-w",
                   "protocol": 6, "port_low": 11112, "port_high": 11112, "permit": true},
                  {"name": "core-ping", "priority": 20, "from_tenant": "ix", "to_tenant": "arch-w", "protocol": 1, "permit": true}],
 "bgp": {"backbone_interface": "bb"}}
JSON
# cp_options AREA: its medix-cp's options (east's serves its metrics, in its namespace).
cp_options() {
  echo --strongswan-conf "$tmp/strongswan.conf" --log-level 0 --bfd "$tmp/bird-$1.ctl" --bfd-config "$tmp/bfd-$1.conf"
  [ "$1" = e ] && echo --metrics-listen 127.0.0.1:9290
}
# shellcheck disable=SC2046 # the options are words without spaces
for a in e w; do areas_start_cp $a $(cp_options $a); done
# bfd_metrics: east's medix-cp's BFD metrics (medix_cp_bgp_bfd_* lines).
bfd_metrics() {
  ip netns exec "${ns[e]}" /usr/bin/python3 -c 'import urllib.request
print(urllib.request.urlopen("http://127.0.0.1:9290/metrics", timeout=5).read().decode())' 2>&1 | grep "^medix_cp_bgp_bfd"
}

areas_session_up "(medixctl areas)" "the backbone addresses, on east's TAP"
# The backbone is VLAN 100 end to end: every frame the carrier sees is tagged (BGP's keepalives,
# one a second each way, and BFD's control packets, ten, among them).
out=$(ip netns exec "$carrier" timeout 5 tcpdump -l -i ce -nn -e -c 60 2>/dev/null)
[ "$(grep -c . <<<"$out")" -ge 4 ] && ! grep -qv "vlan 100" <<<"$out" && grep -q "\.179[: ]" <<<"$out" &&
  grep -q "\.3784: BFD" <<<"$out" &&
  pass "the backbone carries VLAN 100 only: BGP's and BFD's frames on the carrier are 802.1Q-tagged (tcpdump)" ||
  fail "VLAN 100 on the backbone" "$out"
west_routes="100.64.1.0/24 via 10.255.0.1
100.64.4.0/24 via 10.255.0.1
100.64.5.0/30 via 10.255.0.1"
mx_wait_for 10 routes_are w "$west_routes" && pass "west's core tenant: east's two mappings and its NAPT pool via 10.255.0.1" ||
  fail "west's routes" "$(routes w; ctl w areas)"
mx_wait_for 10 routes_are e "100.64.2.0/24 via 10.255.0.2" && pass "east's core tenant: west's archive prefix via 10.255.0.2" ||
  fail "east's routes" "$(routes e; ctl e areas)"
areas_punted
# Traffic across the core: east's hospital host pings west's archive host by its core address.
out=$(ip netns exec "${host[e]}" ping -c 3 -i 0.2 -W 2 100.64.2.5 2>&1)
grep -q " 0% packet loss" <<<"$out" && pass "east's host (10.1.0.5) pings west's archive by its core address 100.64.2.5 across the backbone" ||
  fail "ping across areas" "$out"$'\n'"$(/usr/bin/python3 test/netns/telemetry.py "${prefix[e]}" /medix/drops; /usr/bin/python3 test/netns/telemetry.py "${prefix[w]}" /medix/drops)"
denied() { /usr/bin/python3 test/netns/telemetry.py "${prefix[$1]}" /medix/drops policy_denied 2>/dev/null; }
# A listener on another port of the archive: west's policy lets only DICOM's through.
ip netns exec "${host[w]}" /usr/bin/python3 -c 'import socket, time
s = socket.socket(); s.bind(("10.2.0.5", 8080)); s.listen(); time.sleep(120)' &
other_pid=$!
areas_study 4 # a DICOM study, hospital to archive by its core address, and its session in each area
# East's clinic, without a static mapping: its DICOM echo goes out through east's NAPT pool
# (announced to west, installed in west's core tenant) and the answer comes back through it.
if ip netns exec "$clinic_host" timeout 20 echoscu -aet CLINIC-E -aec ARCHIVE 100.64.2.5 11112 >"$tmp/echoscu.log" 2>&1; then
  pass "east's clinic (10.1.0.5, NAPT) had its DICOM echo answered by west's archive (100.64.2.5)"
else
  fail "the clinic's DICOM echo through east's NAPT pool" "$(tail -3 "$tmp/echoscu.log")"
fi
# Its session: east's NAT sessions show the source translated into the pool (address and port),
# west's the flow from that very pool address and port, translated to the archive.
napt_e=$(ctl e -o json sessions clinic-e --port 11112 | /usr/bin/python3 -c '
import ipaddress, json, sys
for x in json.load(sys.stdin).get("sessions", []):
    a, p = x["translated_source"].split(":")
    if (x["source"].startswith("10.1.0.5:") and x["destination"] == "100.64.2.5:11112" and x["peer_tenant"] == "ix"
            and x["rule"] == "clinic-to-archive" and ipaddress.ip_address(a) in ipaddress.ip_network("100.64.5.0/30")):
        print(x["translated_source"])')
napt_w=$(ctl w -o json sessions ix --port 11112 | /usr/bin/python3 -c '
import json, sys
for x in json.load(sys.stdin).get("sessions", []):
    print(x["tenant"], x["source"], "->", x["peer_tenant"], x["translated_destination"], x["rule"])')
[ -n "$napt_e" ] && grep -qx "ix $napt_e -> arch-w 10.2.0.5:11112 core-dicom" <<<"$napt_w" &&
  pass "its session: east translated the clinic's source into its pool ($napt_e, rule clinic-to-archive), west sees it from there" ||
  fail "the clinic's NAPT session in each area" "east: $(ctl e sessions clinic-e)"$'\n'"west: $napt_w"
# The lab: the hospital's very address, another tenant: refused by east's policy (by tenant).
before_e=$(denied e) before_w=$(denied w)
if ip netns exec "$lab_host" timeout 3 bash -c 'exec 3<>/dev/tcp/100.64.2.5/11112' 2>/dev/null; then
  fail "east's lab (10.1.0.5 as the hospital, tenant lab-e) reached the archive"
else
  mx_wait_for 3 eval '[ "$(denied e)" -gt "$before_e" ]' && [ "$(denied w)" = "$before_w" ] &&
    pass "east's lab (10.1.0.5, as the hospital, tenant lab-e) refused by east's policy ($before_e -> $(denied e) policy_denied), west saw nothing" ||
    fail "the lab refused in east" "east policy_denied $before_e -> $(denied e), west $before_w -> $(denied w)"
fi
# The hospital to the archive's port 8080: east lets it into the core, west's policy refuses it.
before_e=$(denied e) before_w=$(denied w)
if ip netns exec "${host[e]}" timeout 3 bash -c 'exec 3<>/dev/tcp/100.64.2.5/8080' 2>/dev/null; then
  fail "the hospital reached the archive's port 8080 (west's policy lets DICOM only)"
else
  mx_wait_for 3 eval '[ "$(denied w)" -gt "$before_w" ]' && [ "$(denied e)" = "$before_e" ] &&
    pass "the hospital to the archive's port 8080: passed east, refused by west's policy ($before_w -> $(denied w) policy_denied)" ||
    fail "port 8080 refused in west" "east policy_denied $before_e -> $(denied e), west $before_w -> $(denied w)"
fi
kill "$scp_pid" "$other_pid" 2>/dev/null
wait "$scp_pid" "$other_pid" 2>/dev/null

# The backbone cut and repaired, MX_BGP_CUTS times: the time from the cut to the other area's
# prefix gone from each medix-dp (read with medixctl: an upper bound, by its ~0.1 s per call).
show_routes() { routes e; routes w; ctl e areas; }
both_back() { routes_are e "100.64.2.0/24 via 10.255.0.2" && routes_are w "$west_routes"; }
cut_ms=()
for cut in $(seq "${MX_BGP_CUTS:-2}"); do
  t0=$(date +%s%N)
  ip -n "$carrier" link set ce down && ip -n "$carrier" link set cw down
  areas_gone_within_3s "cut $cut" "$t0" routes_are show_routes
  [ -n "$gone_ms" ] && cut_ms+=("$gone_ms")
  if [ "$cut" = 1 ]; then
    out=$(ctl e areas)
    grep -q "^  backbone port p0: link down, seen going down 1 times" <<<"$out" &&
      grep -qs "backbone bb (port p0) link down: sessions to 10.255.0.2 shut" "$tmp/cp-e.log" &&
      pass "east saw its port's link down and shut its session at once (not the hold timer)" ||
      fail "east's link down" "$out"$'\n'"$(tail -3 "$tmp/cp-e.log")"
    areas_unreachable "backbone cut"
  fi
  t0=$(date +%s%N)
  ip -n "$carrier" link set ce up && ip -n "$carrier" link set cw up
  mx_wait_for 30 both_back && pass "cut $cut repaired: the routes are back after ${took} ms (gobgpd: 5 s idle, then its 5-10 s connect timer)" ||
    { fail "cut $cut repaired: routes back" "$(routes e; routes w; ctl e areas)"; break; }
done
if [ "${#cut_ms[@]}" -gt 0 ]; then
  sorted=($(printf '%s\n' "${cut_ms[@]}" | sort -n))
  echo "figure: backbone cut to both areas' routes withdrawn over ${#sorted[@]} cuts (ms): ${cut_ms[*]};" \
    "p50 ${sorted[$(((${#sorted[@]} - 1) / 2))]}, max ${sorted[-1]}"
fi

# BFD (BIRD, 100 ms x 3): up both ways through the exception path (UDP 3784 punted, TTL 255 kept:
# BIRD drops single-hop packets with less).
bfd_up() { ctl e areas | grep -q "^  session 10.255.0.2 ESTABLISHED.* bfd Up" && ctl w areas | grep -q "^  session 10.255.0.1 .* bfd Up"; }
mx_wait_for 20 bfd_up && pass "BFD up in both areas (medixctl areas: session ... bfd Up)" ||
  fail "BFD up" "$(ctl e areas; ctl w areas; tail -5 "$tmp"/bird-*.log)"
areas_punted "" bfd_punted "BFD packets"
metrics_up=$(bfd_metrics)
# A failure beyond the ports, MX_BFD_CUTS times (default 1): the carrier's bridge isolates both
# ends (nothing crosses, both medix-dp's links stay up), so only BFD (or BGP's 3 s hold timer)
# can see it. The time from the cut to both areas' routes gone: each figure, then p50 and max;
# the goal is 3 s (issue 18).
bfd_ms=()
for cut in $(seq "${MX_BFD_CUTS:-1}"); do
  t0=$(date +%s%N)
  bridge -n "$carrier" link set dev ce isolated on && bridge -n "$carrier" link set dev cw isolated on
  areas_gone_within_3s "failure beyond the ports $cut" "$t0" routes_are show_routes
  [ -n "$gone_ms" ] && bfd_ms+=("$gone_ms")
  if [ "$cut" = 1 ]; then
    out=$(ctl e areas)
    grep -q "^  backbone port p0: link up" <<<"$out" &&
      grep -qs "BFD to 10.255.0.2 down: sessions to 10.255.0.2 shut" "$tmp/cp-e.log" &&
      pass "east's port stayed up; BFD saw west gone and east shut its session" ||
      fail "east's BFD down" "$out"$'\n'"$(tail -3 "$tmp/cp-e.log")"
    areas_unreachable "failure beyond the ports"
    # East's metrics: BFD up before, down now and counted once more (the link cuts above count
    # too: BFD goes down with the link).
    out=$(bfd_metrics)
    downs=$(sed -n 's/^medix_cp_bgp_bfd_downs_total{neighbor="10.255.0.2"} \([0-9]*\)$/\1/p' <<<"$metrics_up")
    grep -qx "medix_cp_bgp_bfd_connected 1" <<<"$metrics_up" && grep -qx 'medix_cp_bgp_bfd_up{neighbor="10.255.0.2"} 1' <<<"$metrics_up" &&
      [ -n "$downs" ] && grep -qx "medix_cp_bgp_bfd_connected 1" <<<"$out" &&
      grep -qx 'medix_cp_bgp_bfd_up{neighbor="10.255.0.2"} 0' <<<"$out" &&
      grep -qx "medix_cp_bgp_bfd_downs_total{neighbor=\"10.255.0.2\"} $((downs + 1))" <<<"$out" &&
      pass "east's metrics: medix_cp_bgp_bfd_connected 1; bfd_up 1 before the failure, 0 during it; bfd_downs_total $downs -> $((downs + 1))" ||
      fail "east's BFD metrics" "before:"$'\n'"$metrics_up"$'\n'"during:"$'\n'"$out"
    # East's medix-cp stopped while it has the session shut, restarted after the repair: it
    # enables the session it cannot know it shut (not disabled forever).
    kill -TERM "${cp_pid[e]}" && wait "${cp_pid[e]}" 2>/dev/null
    cp_pid[e]=
    mv "$tmp/cp-e.log" "$tmp/cp-e.1.log"
  fi
  bridge -n "$carrier" link set dev ce isolated off && bridge -n "$carrier" link set dev cw isolated off
  # shellcheck disable=SC2046
  [ "$cut" = 1 ] && areas_start_cp e $(cp_options e)
  mx_wait_for 30 both_back && pass "failure $cut repaired: BFD up, the sessions enabled, the routes back after ${took} ms$(
    [ "$cut" = 1 ] && echo " (east's medix-cp stopped while it had the session shut, started again after the repair)")" ||
    { fail "failure $cut repaired: routes back" "$(routes e; routes w; ctl e areas; tail -3 "$tmp/cp-e.log")"; break; }
done
if [ "${#bfd_ms[@]}" -gt 0 ]; then
  sorted=($(printf '%s\n' "${bfd_ms[@]}" | sort -n))
  echo "figure: failure beyond the ports to both areas' routes withdrawn (BFD 100 ms x 3) over ${#sorted[@]} cuts (ms):" \
    "${bfd_ms[*]}; p50 ${sorted[$(((${#sorted[@]} - 1) / 2))]}, max ${sorted[-1]}"
fi

kill -KILL "${bgp_pid[w]}"
wait "${bgp_pid[w]}" 2>/dev/null
bgp_pid[w]=
mx_wait_for 10 routes_are e "" && pass "west's gobgpd killed: east withdraws west's prefix after ${took} ms" ||
  fail "withdraw" "$(routes e; ctl e areas)"
# The route gone, east's host is told at once (ICMP unreachable from medix-dp), not left waiting.
areas_unreachable "the withdraw"
finish
