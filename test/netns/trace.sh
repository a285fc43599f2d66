#!/usr/bin/env bash
# medixctl trace (issue 14) on real traffic: a packet that arrives through an ESP tunnel,
# crosses the IX core with address translation and leaves on a VLAN interface shows every
# stage's decision, in order and with its values; a packet with no route shows its drop.
#
#   carrier 198.51.100.11 ── p0 ─┐                     ┌─ p1 (VLAN 200) ── 192.168.1.10 archive
#   (scapy's ESP, SPI 0x1001)    └─ medix-dp ──────────┘
#
#   tenant carrier: c0 198.51.100.1/24, the tunnel's underlay
#   tenant hosp-a:  tunnel tr (198.51.100.1 <-> .11), 10.0.0.0/24 ⇄ 100.64.1.0/24 (static)
#   tenant ix:      the core; 100.100.2.0/24 leaks to archive, 100.64.1.0/24 to hosp-a
#   tenant archive: r0 on p1 VLAN 200, 192.168.1.0/24 ⇄ 100.100.2.0/24 (static)
#
# Checks: `trace add 2 --sa 0x1001` traces the next two ESP packets of that SA and nothing
# else (a ping to c0 is left out, a third ESP packet is past the count); the first (to the
# archive, 100.100.2.10:5000) shows rx, esp (SA and sequence number), decrypted, lookup (leak
# to ix), lookup (leak to archive), nat, translated, lookup (connected on r0), neighbour (the
# archive's MAC) and tx on p1; the archive receives it from 100.64.1.5; the second (to
# 10.9.9.9) shows its lookup's "no route" and the drop no_route. Then trace clear, and the
# refusals of a bad count and an unknown tenant.
#
# Usage: test/netns/trace.sh   (root; binaries from build/, or MEDIX_DP=path MEDIXCTL=path)
set -uo pipefail
shopt -s lastpipe   # `... | while read` counts into this shell's totals
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"

CTL=${MEDIXCTL:-$MX_REPO/build/controlplane/cli/medixctl}
finish() { mx_finish netns-trace; }
"$MX_PY" -c 'import scapy, cryptography' 2>/dev/null || mx_die "scapy and cryptography are needed (python3-scapy)"

mx_init
mx_need_binary
mx_attach carrier carrier 198.51.100.11/24 198.51.100.1/24
mx_attach archive archive 192.168.1.10/24 192.168.1.1/24
# The archive is on VLAN 200 (p1's frames are tagged; kernels here may lack 8021q, so the
# archive's side is a raw socket below, and r0's neighbour entry is static).
ARCHIVE_MAC=$(mx_host_mac archive)
C0_MAC=02:00:00:00:00:01
KEY_IN=$(head -c 20 /dev/urandom | base64) KEY_OUT=$(head -c 20 /dev/urandom | base64)
config=$MX_TMP/config.json
cat >"$config" <<EOF
{
  "schema_version": 1,
  "ports": [
    {"name": "p0", "device": "net_af_packet0", "promiscuous": true},
    {"name": "p1", "device": "net_af_packet1", "promiscuous": true}
  ],
  "tenants": [{"name": "carrier"}, {"name": "hosp-a"}, {"name": "ix", "core": true}, {"name": "archive"}],
  "interfaces": [
    {"name": "c0", "tenant": "carrier", "port": "p0", "addresses": ["198.51.100.1/24"], "mac": "$C0_MAC"},
    {"name": "r0", "tenant": "archive", "port": "p1", "vlan": 200, "addresses": ["192.168.1.1/24"], "mac": "02:00:00:00:01:c8"}
  ],
  "tunnels": [
    {"name": "tr", "tenant": "hosp-a", "underlay_tenant": "carrier", "local_address": "198.51.100.1", "remote_address": "198.51.100.11"}
  ],
  "routes": [
    {"tenant": "hosp-a", "prefix": "10.0.0.0/24", "via": {"interface": "tr"}},
    {"tenant": "hosp-a", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
    {"tenant": "archive", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
    {"tenant": "ix", "prefix": "100.64.1.0/24", "next_tenant": "hosp-a"},
    {"tenant": "ix", "prefix": "100.100.2.0/24", "next_tenant": "archive"}
  ],
  "neighbours": [{"interface": "r0", "address": "192.168.1.10", "mac": "$ARCHIVE_MAC"}],
  "static_mappings": [
    {"tenant": "hosp-a", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"},
    {"tenant": "archive", "tenant_prefix": "192.168.1.0/24", "core_prefix": "100.100.2.0/24"}
  ],
  "policy_rules": [
    {"name": "a-archive", "priority": 10, "from_tenant": "hosp-a", "to_tenant": "archive", "protocol": 17, "port_low": 5000, "port_high": 5000, "permit": true}
  ],
  "sas": [
    {"spi": 4097, "tunnel": "tr", "inbound": true, "cipher": "AES_GCM_128", "cipher_key": "$KEY_IN", "replay_window": 64},
    {"spi": 8193, "tunnel": "tr", "inbound": false, "cipher": "AES_GCM_128", "cipher_key": "$KEY_OUT"}
  ]
}
EOF
if mx_start_dp "$config"; then pass "medix-dp ready"; else fail "medix-dp did not start"; finish; fi
ctl() { "$CTL" -p "$MX_PREFIX" "$@"; }
esp() {  # esp SEQ INNER_DST: one ESP frame of SA 0x1001 from the carrier's host
  mx_in carrier "$MX_PY" "$MX_LIB_DIR/esp_send.py" "$config" tr 4097 "$1" 10.0.0.5 "$2" 5000 "$C0_MAC" eth0
}
# The archive's side: the first UDP datagram to port 5000 on its wire, with its VLAN tag.
mx_bg archive "$MX_PY" -c '
import sys
from scapy.all import Dot1Q, IP, UDP, Raw, sniff
got = sniff(iface="eth0", count=1, timeout=20, lfilter=lambda p: UDP in p and p[UDP].dport == 5000,
            started_callback=lambda: open(sys.argv[1], "w").close())
for p in got:
    print(p[Dot1Q].vlan if Dot1Q in p else 0, p[IP].src, p[IP].dst, p[Raw].load.decode(), flush=True)
' "$MX_TMP/archive.ready" >"$MX_TMP/archive.txt" 2>&1
listener=$MX_LAST_PID
for _ in $(seq 100); do [ -e "$MX_TMP/archive.ready" ] && break; sleep 0.1; done

esp 1 10.0.0.1  # before the trace: not in it (and not to the archive: its datagram is the traced one)
sleep 0.3
if ctl trace add 2 --sa 0x1001 >"$MX_TMP/add.txt" 2>&1; then pass "trace add 2 --sa 0x1001: $(cat "$MX_TMP/add.txt")"
else fail "trace add: $(cat "$MX_TMP/add.txt")"; fi
mx_in carrier ping -n -c 1 -W 1 198.51.100.1 >/dev/null  # to c0, not ESP: left out
esp 2 100.100.2.10
esp 3 10.9.9.9
esp 4 100.100.2.10  # past the count
sleep 0.5
wait "$listener"
if grep -qx '200 100.64.1.5 192.168.1.10 medix trace' "$MX_TMP/archive.txt"; then
  pass "the archive's wire carries the datagram on VLAN 200, from 100.64.1.5 (hosp-a's 10.0.0.5) to 192.168.1.10"
else fail "the archive received: $(cat "$MX_TMP/archive.txt")"; fi

ctl trace show >"$MX_TMP/show.txt" 2>&1
ctl -o json trace show >"$MX_TMP/show.json" 2>&1
echo "--- medixctl trace show:"
sed 's/^/  | /' "$MX_TMP/show.txt"
"$MX_PY" - "$MX_TMP/show.json" "$ARCHIVE_MAC" <<'EOF' | while IFS= read -r line; do case $line in PASS\ *) pass "${line#PASS }" ;; FAIL\ *) fail "${line#FAIL }" ;; *) echo "$line" ;; esac; done
import json, re, sys
t = json.load(open(sys.argv[1]))
mac = sys.argv[2].lower()
packets = t.get("packets", [])
ok = lambda c, what: print(("PASS " if c else "FAIL ") + what)
ok(t.get("running") and t.get("count") == 2 and len(packets) == 2,
   "trace show: running, count 2, two packets (the ping and the packet past the count left out): %d" % len(packets))

def expect(p, name, want):
    # With several workers a packet may be handed to the owner of its SA or session: a
    # "handoff" step then sits between the others (and queues differ).
    steps = [(s["stage"], s["text"]) for s in p.get("steps", []) if s["stage"] != "handoff"]
    got = [s for s, _ in steps]
    ok(got == [s for s, _ in want], "%s: the stages in order %s (got %s)" % (name, [s for s, _ in want], got))
    for (stage, pattern), (gs, text) in zip(want, steps):
        ok(gs == stage and re.fullmatch(pattern, text) is not None, "%s: %s '%s'" % (name, stage, text))

if len(packets) == 2:
    expect(packets[0], "ESP -> NAT -> core -> VLAN", [
        ("rx", r"port p0 interface c0 tenant carrier: esp 198\.51\.100\.11 > 198\.51\.100\.1 len \d+"),
        ("esp", r"sa 0x1001 \(tunnel tr\) seq 2: 198\.51\.100\.11 > 198\.51\.100\.1 tenant carrier"),
        ("decrypted", r"interface tr tenant hosp-a: udp 10\.0\.0\.5:40000 > 100\.100\.2\.10:5000"),
        ("lookup", r"tenant hosp-a 100\.100\.2\.10: route 100\.64\.0\.0/10, leak to tenant ix"),
        ("lookup", r"tenant ix 100\.100\.2\.10: route 100\.100\.2\.0/24, leak to tenant archive"),
        ("nat", r"tenant hosp-a to archive: udp 10\.0\.0\.5:40000 > 100\.100\.2\.10:5000"),
        ("translated", r"rewritten to udp 100\.64\.1\.5:40000 > 192\.168\.1\.10:5000 in tenant archive"),
        ("lookup", r"tenant archive 192\.168\.1\.10: route 192\.168\.1\.0/24, via connected interface r0"),
        ("neighbour", r"interface r0 192\.168\.1\.10: " + re.escape(mac)),
        ("tx", r"port p1 queue \d+ interface r0 len \d+"),
    ])
    expect(packets[1], "no route", [
        ("rx", r"port p0 interface c0 tenant carrier: esp 198\.51\.100\.11 > 198\.51\.100\.1 len \d+"),
        ("esp", r"sa 0x1001 \(tunnel tr\) seq 3: 198\.51\.100\.11 > 198\.51\.100\.1 tenant carrier"),
        ("decrypted", r"interface tr tenant hosp-a: udp 10\.0\.0\.5:40000 > 10\.9\.9\.9:5000"),
        ("lookup", r"tenant hosp-a 10\.9\.9\.9: no route"),
        ("drop", r"no_route \(tenant hosp-a\)"),
    ])
EOF
if grep -q '^Packet 1 (lcore ' "$MX_TMP/show.txt" && grep -qE '^  neighbour +interface r0 ' "$MX_TMP/show.txt" &&
   grep -qE '^  drop +no_route' "$MX_TMP/show.txt"; then
  pass "trace show prints a block a packet, a line a stage"
else fail "trace show's text"; fi

if ctl trace clear && ctl trace show | grep -q '^no trace'; then pass "trace clear: no trace after it"
else fail "trace clear"; fi
out=$(ctl trace add 0 2>&1); rc=$?
if [ "$rc" -eq 1 ] && grep -q 'count: 0 is out of range 1..1000' <<<"$out"; then pass "trace add 0 refused: $out"
else fail "trace add 0: status $rc: $out"; fi
out=$(ctl trace add 5 --tenant no-such 2>&1); rc=$?
if [ "$rc" -eq 1 ] && grep -q 'filter.tenant: no tenant named "no-such"' <<<"$out"; then
  pass "trace add with an unknown tenant refused, naming the field: $out"
else fail "trace add --tenant no-such: status $rc: $out"; fi
# A trace running at SIGTERM: medix-dp still exits 0.
ctl trace add 10 >/dev/null 2>&1
if mx_stop_dp; then pass "medix-dp exits 0 on SIGTERM with a trace running"; else fail "medix-dp exit status on SIGTERM"; fi
finish
