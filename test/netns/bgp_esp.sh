#!/usr/bin/env bash
# The backbone between two areas as an ESP tunnel over a carrier (docs/areas.md, "A backbone
# over ESP"): the areas' medix-cp negotiate the tunnel with IKE (a peer of each other's, through
# medix-dp's exception path), and BGP between the areas' gobgpd runs inside it.
#
#   namespace E: gobgpd and BIRD (BFD) 10.255.0.1, charon 172.16.0.1 ── TAP ── medix-dp E ── p0 ══ carrier ══ p0 ── medix-dp W ── TAP ── :namespace W
#                medix-cp E (--bgp, peer "west", tunnel bb)      (ESP in UDP 4500, tunnel bb inside)
#
# Each area: a carrier tenant (the underlay, 172.16.0.0/24 on p0), the core tenant "ix" with the
# tunnel bb (the peer's; selectors: the two BGP addresses and the core 100.64.0.0/10), the BGP
# daemon's address a local route of the core (10.255.0.1 east, 10.255.0.2 west) and the other's
# routed into the tunnel; east's hospital (10.1.0.5 = 100.64.1.5 in the core) on p1, west's
# archive (10.2.0.5 = 100.64.2.5) on p1. Checks: IKE up; the BGP session established between
# the two BGP addresses (ss), and only ESP on the carrier (tcpdump: no TCP there); each area's
# prefixes installed in the other's core tenant via the tunnel; a ping and a DICOM study from the
# hospital to the archive by its core address, complete and byte-identical, its session
# translated on both sides; the carrier cut (its ends down): both areas see their underlay
# port's link down and remove the other's prefix within 3 s, a ping gets ICMP unreachable, and
# after the repair the routes come back; BFD (BIRD in each area's namespace, medix-cp --bfd) up
# both ways inside the tunnel, then a failure beyond the underlay ports (the carrier's bridge
# isolates both ends: the links up, the SAs kept): both areas' routes gone within 3 s (the figure
# printed), east's port up, its SAs in and its log naming BFD, a ping answered ICMP unreachable,
# the routes back after the repair; west's medix-cp stopped (its IKE_SA and with it the
# tunnel's SAs deleted on both sides): east removes west's prefix at once, not after the hold
# timer (the SA is watched). Toward east's clinic, whose only core presence is a NAPT pool
# (docs/nat.md, "Across areas"), by UDP: the archive's reply to the clinic's datagram; a datagram
# from another port of the archive to the clinic's mapping, let in by east's rule core-to-clinic,
# then refused once that rule is taken out of east's intent; one to a pool port nobody mapped
# dropped in east (nat_no_session). Ends with "netns-bgp-esp: N passed, M failed". MEDIX_DP, MEDIX_CP
# and MEDIXCTL override the binaries.
set -u
cd "$(dirname "$0")/../.."
# shellcheck source=test/lib/bgp.sh
source test/lib/bgp.sh
areas_init netns-bgp-esp e  # test/lib/bgp.sh: dp, cp, ctl, tmp and the areas' names
declare -A under=([e]=172.16.0.1 [w]=172.16.0.2)  # each area's address on the carrier
clinic=mxK$id clinic_host=medix-ebgp-hk-$id  # east's clinic: NAPT only
cleanup() {
  ip netns del "$clinic_host" 2>/dev/null
  ip link del "$clinic" 2>/dev/null
  areas_cleanup
}
trap cleanup EXIT
finish() { mx_finish netns-bgp-esp; }
# troutes AREA: the core tenant's routes into the tunnel bb that BGP put there ("PREFIX" lines).
troutes() {
  ctl "$1" -o json show route | /usr/bin/python3 -c '
import json, sys
for o in json.load(sys.stdin).get("objects", []):
    r = o.get("route", o)
    if r.get("tenant") == "ix" and r.get("via", {}).get("interface") == "bb" and r["prefix"] != "10.255.0.'"${n[${other[$1]}]}"'/32":
        print(r["prefix"])' | LC_ALL=C sort
}
troutes_are() { [ "$(troutes "$1")" = "$2" ]; }
show_routes() { troutes e; troutes w; ctl e areas; }

for binary in "$dp" "$cp" "$ctl"; do [ -x "$binary" ] || { fail "$binary is not built"; finish; }; done
[ -c /dev/net/tun ] || { fail "/dev/net/tun is missing (the exception interface is a TAP)"; finish; }
psk=$(head -c 24 /dev/urandom | base64)
areas_carrier
add_host "$clinic_host" "$clinic" 10.3.0 || { fail "east's clinic host"; finish; }
for a in e w; do
  if [ $a = e ]; then areas_start_dp e "$clinic"; else areas_start_dp w; fi
  # Its TAP into the area's namespace: the tunnel endpoint (charon's) and the BGP address
  # (gobgpd's), the other area's BGP address routed there from ours.
  # The BGP address is point to point with the other's (its route comes with it, from ours): BIRD
  # starts single-hop BFD only with a neighbour it finds on an interface's prefix or peer address.
  ip -n "${ns[$a]}" addr add "${under[$a]}/24" dev "${tap[$a]}" &&
    ip -n "${ns[$a]}" addr add "${addr[$a]}" peer "${addr[${other[$a]}]}" dev "${tap[$a]}" &&
    ip -n "${ns[$a]}" link set "${tap[$a]}" up || { fail "TAP ${tap[$a]} into ${ns[$a]}"; finish; }
  areas_start_bfd $a
  # The area's intent: the other area is a peer (IKE, PSK), its tunnel bb the BGP backbone.
  /usr/bin/python3 - "$tmp/$a.json" "$a" "$psk" <<'PY'
import json, sys
a, psk = sys.argv[2], sys.argv[3]
o = "w" if a == "e" else "e"
n = {"e": 1, "w": 2}
bgp = {"e": "10.255.0.1", "w": "10.255.0.2"}
under = {"e": "172.16.0.1", "w": "172.16.0.2"}
lan = {"e": "hosp-e", "w": "arch-w"}[a]
intent = {
    "schema_version": 1,
    "tenants": [{"name": "ix", "core": True}, {"name": "carrier"}, {"name": lan}],
    "interfaces": [{"name": "up", "tenant": "carrier", "port": "p0", "addresses": [under[a] + "/24"]},
                   {"name": "lan", "tenant": lan, "port": "p1", "addresses": ["10.%d.0.1/24" % n[a]]}],
    "peers": [{"name": {"e": "west", "w": "east"}[a], "tenant": "ix", "underlay_tenant": "carrier", "tunnel": "bb",
               "local_address": under[a], "remote_address": under[o], "psk": psk,
               "ike_proposals": ["aes128gcm16-prfsha256-x25519"], "esp_proposals": ["aes128gcm16"],
               "local_selectors": [bgp[a] + "/32", "100.64.0.0/10"],
               "remote_selectors": [bgp[o] + "/32", "100.64.0.0/10"], "initiate": a == "e"}],
    "routes": [{"tenant": lan, "prefix": "100.64.0.0/10", "next_tenant": "ix"},
               {"tenant": "ix", "prefix": "100.64.%d.0/24" % n[a], "next_tenant": lan},
               {"tenant": "ix", "prefix": bgp[a] + "/32", "local": {}},
               {"tenant": "ix", "prefix": bgp[o] + "/32", "via": {"interface": "bb"}}],
    "static_mappings": [{"tenant": lan, "tenant_prefix": "10.%d.0.0/24" % n[a], "core_prefix": "100.64.%d.0/24" % n[a]}],
    "policy_rules": [{"name": "hosp-to-archive", "priority": 10, "from_tenant": "hosp-e", "to_tenant": "ix",
                      "destination_prefix": "100.64.2.0/24", "permit": True}] if a == "e" else [
                     {"name": "core-dicom", "priority": 10, "from_tenant": "ix", "to_tenant": "arch-w",
                      "protocol": 6, "port_low": 11112, "port_high": 11112, "permit": True},
                     {"name": "core-ping", "priority": 20, "from_tenant": "ix", "to_tenant": "arch-w", "protocol": 1,
                      "permit": True}],
    "bgp": {"backbone_interface": "bb", "next_hop": bgp[a]},
}
# East's clinic: no static mapping, its only core presence NAPT pool 100.64.5.0/30 (announced).
# Its flows out, and the core's to an endpoint it mapped (endpoint-independent filtering, by
# east's policy: docs/nat.md); west lets the core reach the archive's UDP 6000, and the archive
# reach the clinic's pool.
if a == "e":
    intent["tenants"].append({"name": "clinic-e"})
    intent["interfaces"].append({"name": "clinic", "tenant": "clinic-e", "port": "p2", "addresses": ["10.3.0.1/24"]})
    intent["routes"] += [{"tenant": "clinic-e", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
                         {"tenant": "ix", "prefix": "100.64.5.0/30", "next_tenant": "clinic-e"}]
    intent["napt_pools"] = [{"tenant": "clinic-e", "addresses": ["100.64.5.0/30"]}]
    intent["policy_rules"] += [
        {"name": "clinic-to-archive", "priority": 20, "from_tenant": "clinic-e", "to_tenant": "ix",
         "destination_prefix": "100.64.2.0/24", "protocol": 17, "permit": True},
        {"name": "core-to-clinic", "priority": 30, "from_tenant": "ix", "to_tenant": "clinic-e", "protocol": 17,
         "permit": True}]
else:
    intent["policy_rules"] += [
        {"name": "core-udp", "priority": 30, "from_tenant": "ix", "to_tenant": "arch-w", "protocol": 17,
         "port_low": 6000, "port_high": 6000, "permit": True},
        {"name": "archive-to-clinic", "priority": 40, "from_tenant": "arch-w", "to_tenant": "ix",
         "destination_prefix": "100.64.5.0/30", "protocol": 17, "permit": True}]
json.dump(intent, open(sys.argv[1], "w"), indent=1)
PY
done
# A tunnel has no address: its area's BGP address (bgp.next_hop) is required.
/usr/bin/python3 -c 'import json, sys
i = json.load(open(sys.argv[1])); del i["bgp"]["next_hop"]; json.dump(i, open(sys.argv[2], "w"))' "$tmp/e.json" "$tmp/bad.json"
out=$("$cp" --check --intent "$tmp/bad.json" 2>&1)
[ $? -ne 0 ] && grep -qF "bgp.next_hop: is required when the backbone is a tunnel" <<<"$out" &&
  pass "refused: a tunnel as the backbone without bgp.next_hop ($out)" || fail "refused: no next hop for a tunnel" "$out"
# West first: it answers east's IKE_SA_INIT.
for a in w e; do areas_start_cp $a --log-level 1 --bfd "$tmp/bird-$a.ctl" --bfd-config "$tmp/bfd-$a.conf"; done
# sas AREA: the tunnel's SAs in medix-dp ("in"/"out" lines).
sas() {
  ctl "$1" -o json show sa | /usr/bin/python3 -c '
import json, sys
for o in json.load(sys.stdin).get("objects", []):
    s = o.get("sa", o)
    if s.get("tunnel") == "bb":
        print("in" if s.get("inbound") else "out")' | LC_ALL=C sort
}
both_sas() { [ "$(sas e | tr '\n' ' ')" = "in out " ] && [ "$(sas w | tr '\n' ' ')" = "in out " ]; }
mx_wait_for 20 both_sas && pass "IKE between the areas' medix-cp: tunnel bb has its SAs in both medix-dp after ${took} ms" ||
  { fail "the tunnel's SAs" "east: $(sas e)"$'\n'"west: $(sas w)"$'\n'"$(tail -5 "$tmp/cp-e.log")"; finish; }
# The daemons once the tunnel is up (a first SYN into a tunnel without SA costs gobgpd 5-10 s).
for a in e w; do areas_start_bgp $a; done

areas_session_up "inside the tunnel" "the areas' BGP addresses (ss in east)"
# Nothing in the clear on the carrier: BGP's keepalives (one a second each way) cross it as ESP.
out=$(ip netns exec "$carrier" timeout 5 tcpdump -i ce -nn -c 4 ip 2>/dev/null)
[ "$(grep -c . <<<"$out")" -ge 4 ] && ! grep -qi "tcp\|\.179[: ]\|\.3784[: ]\|BFD" <<<"$out" &&
  grep -q "UDP-encap\|ESP\|\.4500[: ]" <<<"$out" &&
  pass "the carrier sees ESP in UDP 4500 only, no TCP, no BFD (tcpdump)" || fail "ESP only on the carrier" "$out"
mx_wait_for 10 troutes_are w "100.64.1.0/24
100.64.5.0/30" && pass "west's core tenant: east's mapping 100.64.1.0/24 and NAPT pool 100.64.5.0/30 via tunnel bb" ||
  fail "west's routes" "$(troutes w; ctl w areas)"
mx_wait_for 10 troutes_are e "100.64.2.0/24" && pass "east's core tenant: west's archive prefix 100.64.2.0/24 via tunnel bb" ||
  fail "east's routes" "$(troutes e; ctl e areas)"
areas_punted "decrypted from the tunnel"
out=$(ip netns exec "${host[e]}" ping -c 3 -i 0.2 -W 2 100.64.2.5 2>&1)
grep -q " 0% packet loss" <<<"$out" && pass "east's hospital (10.1.0.5) pings west's archive by its core address 100.64.2.5 through the tunnel" ||
  fail "ping across areas" "$out"$'\n'"$(/usr/bin/python3 test/netns/telemetry.py "${prefix[e]}" /medix/drops)"
areas_study 2 "through the tunnel"
kill "$scp_pid" 2>/dev/null
wait "$scp_pid" 2>/dev/null

# Toward a NAPT tenant from another area (docs/nat.md, "Across areas"): the clinic's UDP from
# 10.3.0.5:5000 to the archive's 6000 leaves east from its pool; the archive answers it (a reply
# of the clinic's own session), then writes to that pool address and port from another port of
# its own (a new flow to the clinic's mapping: endpoint-independent filtering, let in by east's
# core-to-clinic), and to the next port of the pool address, which maps nothing (nat_no_session).
nosession() { /usr/bin/python3 test/netns/telemetry.py "${prefix[e]}" /medix/drops nat_no_session 2>/dev/null; }
before=$(nosession)
ip netns exec "${host[w]}" timeout 10 /usr/bin/python3 -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.2.0.5", 6000)); s.settimeout(5)
data, (a, p) = s.recvfrom(100)
print(data.decode(), "from", "%s:%d" % (a, p), flush=True)
s.sendto(b"reply", (a, p))
time.sleep(0.3)
o = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); o.bind(("10.2.0.5", 6001))
o.sendto(b"unsolicited", (a, p))
o.sendto(b"nomapping", (a, p + 1))' >"$tmp/archive.out" 2>&1 &
archive_pid=$!
# The clinic speaks once the archive listens (else its datagram meets a closed port).
mx_wait_for 5 eval 'ip netns exec "${host[w]}" ss -ulnH | grep -q ":6000 "'
ip netns exec "$clinic_host" timeout 10 /usr/bin/python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.3.0.5", 5000)); s.settimeout(6)
s.sendto(b"hello", ("100.64.2.5", 6000))
try:
    while True:
        data, (a, p) = s.recvfrom(100)
        print(data.decode(), "from", "%s:%d" % (a, p), flush=True)
except socket.timeout:
    pass' >"$tmp/clinic.out" 2>&1 &
clinic_pid=$!
wait "$clinic_pid" "$archive_pid"
pool=$(sed -n 's/^hello from \(100\.64\.5\.[0-3]:[0-9]*\)$/\1/p' "$tmp/archive.out")
[ -n "$pool" ] && pass "east's clinic (NAPT only) reached west's archive from its pool: $pool" ||
  fail "the clinic's UDP to the archive" "$(cat "$tmp/archive.out")"
grep -qx "reply from 100.64.2.5:6000" "$tmp/clinic.out" &&
  pass "the archive's reply returned to the clinic across the areas (its own session's)" ||
  fail "the reply to the clinic" "$(cat "$tmp/clinic.out")"
grep -qx "unsolicited from 100.64.2.5:6001" "$tmp/clinic.out" &&
  pass "a new flow from west (the archive's port 6001) to the clinic's mapping $pool reached it (east's rule core-to-clinic)" ||
  fail "a new flow to the clinic's mapping" "$(cat "$tmp/clinic.out")"
! grep -q "nomapping" "$tmp/clinic.out" && mx_wait_for 3 eval '[ "$(nosession)" -gt "${before:-0}" ]' &&
  pass "to a pool port the clinic never mapped: dropped in east (nat_no_session ${before:-0} -> $(nosession))" ||
  fail "a pool port without mapping" "$(cat "$tmp/clinic.out"; echo "nat_no_session ${before:-0} -> $(nosession)")"
# East's rule core-to-clinic taken out (an intent change through east's medix-cp): a new flow
# from west to the clinic's mapping is refused by east's policy, the mapping notwithstanding.
/usr/bin/python3 -c 'import json, sys
i = json.load(open(sys.argv[1]))
i["policy_rules"] = [r for r in i["policy_rules"] if r["name"] != "core-to-clinic"]
json.dump(i, open(sys.argv[2], "w"))' "$tmp/e.json" "$tmp/e-closed.json"
denied() { /usr/bin/python3 test/netns/telemetry.py "${prefix[e]}" /medix/drops policy_denied 2>/dev/null; }
out=
if [ -n "$pool" ] && out=$(ctl e intent apply "$tmp/e-closed.json"); then
  before=$(denied)
  ip netns exec "$clinic_host" timeout 5 /usr/bin/python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("10.3.0.5", 5000)); s.settimeout(2)
try:
    print(s.recvfrom(100)[0].decode(), flush=True)
except socket.timeout:
    pass' >"$tmp/clinic2.out" 2>&1 &
  clinic_pid=$!
  mx_wait_for 5 eval 'ip netns exec "$clinic_host" ss -ulnH | grep -q ":5000 "'
  ip netns exec "${host[w]}" /usr/bin/python3 -c '
import socket, sys
a, p = sys.argv[1].split(":")
o = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); o.bind(("10.2.0.5", 6002)); o.sendto(b"refused", (a, int(p)))' "$pool"
  wait "$clinic_pid"
  [ ! -s "$tmp/clinic2.out" ] && mx_wait_for 3 eval '[ "$(denied)" -gt "${before:-0}" ]' &&
    pass "without east's rule core-to-clinic, a new flow from west to the clinic's mapping is refused in east (policy_denied ${before:-0} -> $(denied))" ||
    fail "the clinic's mapping without a rule" "$(cat "$tmp/clinic2.out"; echo "policy_denied ${before:-0} -> $(denied)")"
else
  fail "east's intent without core-to-clinic" "$out"
fi

# The carrier cut: both medix-dp see their underlay port's link go down.
t0=$(date +%s%N)
ip -n "$carrier" link set ce down && ip -n "$carrier" link set cw down
areas_gone_within_3s "carrier cut" "$t0" troutes_are show_routes
grep -qs "backbone bb (port p0) link down: sessions to 10.255.0.2 shut" "$tmp/cp-e.log" &&
  pass "east saw its underlay port's link down and shut its session at once (not the hold timer)" ||
  fail "east's link down" "$(ctl e areas)"$'\n'"$(tail -3 "$tmp/cp-e.log")"
areas_unreachable "carrier cut"
ip -n "$carrier" link set ce up && ip -n "$carrier" link set cw up
both_back() { troutes_are e "100.64.2.0/24" && troutes_are w "100.64.1.0/24
100.64.5.0/30"; }
mx_wait_for 30 both_back && pass "carrier repaired: the routes are back after ${took} ms (the SAs kept; gobgpd's timers)" ||
  fail "carrier repaired: routes back" "$(troutes e; troutes w; ctl e areas)"

# BFD (BIRD, 100 ms x 3) inside the tunnel: up both ways (from the BGP addresses, through the
# exception path as BGP), then a failure beyond the underlay ports: the carrier's bridge isolates
# both ends (nothing crosses, both medix-dp's links up, the SAs kept), seen by BFD only.
bfd_up() { ctl e areas | grep -q "^  session 10.255.0.2 ESTABLISHED.* bfd Up" && ctl w areas | grep -q "^  session 10.255.0.1 .* bfd Up"; }
mx_wait_for 20 bfd_up && pass "BFD up in both areas inside the tunnel (medixctl areas: session ... bfd Up)" ||
  fail "BFD up" "$(ctl e areas; ctl w areas; tail -5 "$tmp"/bird-*.log)"
t0=$(date +%s%N)
bridge -n "$carrier" link set dev ce isolated on && bridge -n "$carrier" link set dev cw isolated on
areas_gone_within_3s "failure beyond the underlay ports" "$t0" troutes_are show_routes
[ -n "$gone_ms" ] && echo "figure: failure beyond the underlay ports to both areas' routes withdrawn (BFD 100 ms x 3): $gone_ms ms"
out=$(ctl e areas)
grep -q "^  backbone port p0: link up" <<<"$out" && [ "$(sas e | tr '\n' ' ')" = "in out " ] &&
  grep -qs "BFD to 10.255.0.2 down: sessions to 10.255.0.2 shut" "$tmp/cp-e.log" &&
  pass "east's underlay port stayed up and its SAs in; BFD saw west gone and east shut its session" ||
  fail "east's BFD down" "$out"$'\n'"$(sas e)"$'\n'"$(tail -3 "$tmp/cp-e.log")"
areas_unreachable "failure beyond the underlay ports"
bridge -n "$carrier" link set dev ce isolated off && bridge -n "$carrier" link set dev cw isolated off
mx_wait_for 30 both_back && pass "failure repaired: BFD up, the sessions enabled, the routes back after ${took} ms" ||
  fail "failure beyond the underlay ports repaired: routes back" "$(troutes e; troutes w; ctl e areas)"

# West's medix-cp stopped: it deletes its IKE_SA, east deletes the tunnel's SAs; east stops
# routing into a tunnel without SA at once, before the session's hold timer (3 s) ends it.
t0=$(date +%s%N)
kill -TERM "${cp_pid[w]}" && wait "${cp_pid[w]}" 2>/dev/null
cp_pid[w]=
# East's own view as soon as the route is gone: west's prefix still learned (the session not yet
# timed out) but not installed for want of an SA; or gone in less than the hold timer's least.
mx_wait_for 10 troutes_are e ""
ms=$((($(date +%s%N) - t0) / 1000000))
out=$(ctl e areas)
[ -z "$(troutes e)" ] && { grep -q "learned 100.64.2.0/24 .*(tunnel bb has no outbound SA)" <<<"$out" || [ "$ms" -lt 2000 ]; } &&
  pass "west's medix-cp stopped (IKE_SA deleted): east removed west's prefix after ${ms} ms, its tunnel without SA (east's SAs: $(sas e | tr '\n' ' '))" ||
  fail "the tunnel's SA gone: routes removed (${ms} ms)" "$(troutes e; sas e)"$'\n'"$out"
finish
