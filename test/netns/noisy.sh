#!/usr/bin/env bash
# A noisy neighbour (docs/fair-shares.md, issue 21): one hospital wastes every shared budget of
# medix-dp at once while another transfers a study across the IX core, through one medix-dp.
#
#   hosp-x-lan  10.0.0.5 ── p0 ─┐                               ┌─ p4 ── 192.168.1.10 archive
#   hosp-x-srv  10.9.0.10 ─ p1 ─┤          medix-dp             │   (100.100.2.0/24 in the core)
#   hosp-y-lan  10.0.0.5 ── p2 ─┤  tenant "ix" (core: true)     │
#               10.0.0.6        │  exception TAP ── namespace "cp" (10.0.0.1: a UDP 500 sink)
#   hosp-y-srv  10.9.0.10 ─ p3 ─┘
#
#   hosp-x, hosp-y  the same plan: 10.0.0.0/24 ⇄ 100.64.1.0/24 and 100.64.2.0/24 (static), a
#                   second connected subnet 10.9.0.0/16 with one host; policy: each -> archive
#   settings        max_sessions 2048 (one worker: a tenant's default share is 512)
#
# Tenant X (hosp-x-lan, test/netns/noise.py) for NOISY_S seconds, NOISY_RATE packets a second of
# each kind: UDP to unrouted addresses (ICMP net unreachable each), to absent hosts of
# 10.9.0.0/16 (ARP each), from new ports to the archive (a NAT session each), and IKE (UDP
# 500/4500) to its gateway (punted to the exception path). Tenant Y meanwhile:
#   - uploads NOISY_MIB MiB to the archive, paced at NOISY_MBIT Mbit/s, in a new connection (a
#     new session): byte-identical (sha256 at both ends), at >= 90% of the rate of the same
#     upload with X quiet, measured first in the same run;
#   - pings an unrouted address and gets its "net unreachable";
#   - pings a host of 10.9.0.0/16 medix-dp has not resolved yet, and gets answers (ARP);
#   - sends IKE from 10.0.0.6 to its gateway: every packet reaches the exception TAP.
# Counters (medixctl -o json counters): X's excess under X (icmp_rate_limited,
# arp_pending_limited, punt_policed, nat session_limit), none of it under Y.
# Y behind an ESP tunnel with a reduced MTU (path MTU discovery) and a CHILD_SA rekey through
# medix-cp: test/netns/noisy_esp.sh.
#
# Usage: test/netns/noisy.sh   (root; medix-dp from build/, or MEDIX_DP=path; MEDIXCTL=path)
# Prints PASS/FAIL lines and "netns-noisy: N passed, M failed"; exit status 1 on any failure.
# MX_KEEP_TMP=1 keeps the temp dir.
set -uo pipefail
shopt -s lastpipe
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"

CTL=${MEDIXCTL:-$MX_REPO/build/controlplane/cli/medixctl}
NOISY_S=${NOISY_S:-8}
NOISY_RATE=${NOISY_RATE:-2000}
NOISY_MIB=${NOISY_MIB:-8}
NOISY_MBIT=${NOISY_MBIT:-40}
PORT=5001
ARCHIVE=192.168.1.10 ARCHIVE_CORE=100.100.2.10
UNROUTED=172.16.5.5

noisy_cleanup() {
  local rc=$?
  set +e
  trap - EXIT
  if [ -n "${MX_ID:-}" ]; then
    for pid in $(ip netns pids "mx-$MX_ID-cp" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
    ip netns del "mx-$MX_ID-cp" 2>/dev/null
    ip link del "mxe$MX_ID" 2>/dev/null # the TAP, had it not been moved yet
  fi
  (exit "$rc")
  mx_cleanup
}
finish() { mx_finish netns-noisy "config, logs and counters"; }

mx_init
trap noisy_cleanup EXIT
mx_need_binary
[ -x "$CTL" ] || mx_die "medixctl not found at $CTL (run scripts/build)"
[ -c /dev/net/tun ] || mx_die "/dev/net/tun is missing (the exception interface is a TAP)"
t_start=$(date +%s.%N)

# --- topology and config -------------------------------------------------------------------------
MX_TENANT_DESC["hosp-x"]="The noisy neighbour"
MX_TENANT_DESC["hosp-y"]="The hospital with a study to send"
mx_attach hosp-x-lan hosp-x 10.0.0.5/24 10.0.0.1/24
mx_attach hosp-x-srv hosp-x 10.9.0.10/16 10.9.0.1/16
mx_attach hosp-y-lan hosp-y 10.0.0.5/24 10.0.0.1/24
mx_attach hosp-y-srv hosp-y 10.9.0.10/16 10.9.0.1/16
mx_attach archive archive $ARCHIVE/24 192.168.1.1/24
mx_in hosp-y-lan ip addr add 10.0.0.6/24 dev eth0 || mx_die "second address on hosp-y-lan"
TAP=mxe$MX_ID NS_CP=mx-$MX_ID-cp
ip netns add "$NS_CP" || mx_die "namespace $NS_CP"

leak() { printf '{"tenant": "%s", "prefix": "%s", "next_tenant": "%s"}' "$1" "$2" "$3"; }
MX_ROUTES_JSON="$(leak hosp-x 100.64.0.0/10 ix), $(leak hosp-y 100.64.0.0/10 ix), $(leak archive 100.64.0.0/10 ix)"
MX_ROUTES_JSON+=", $(leak ix 100.64.1.0/24 hosp-x), $(leak ix 100.64.2.0/24 hosp-y), $(leak ix 100.100.2.0/24 archive)"
config=$MX_TMP/config.json
mx_write_config "$config"
"$MX_PY" - "$config" "$TAP" <<'EOF' || mx_die "could not write the config"
import json, sys
path, tap = sys.argv[1], sys.argv[2]
c = json.load(open(path))
c["tenants"].append({"name": "ix", "description": "The IX core", "core": True})
c["static_mappings"] = [
    {"tenant": "hosp-x", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"},
    {"tenant": "hosp-y", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.2.0/24"},
    {"tenant": "archive", "tenant_prefix": "192.168.1.0/24", "core_prefix": "100.100.2.0/24"},
]
c["policy_rules"] = [{"name": f"{t}-archive", "priority": 10 + i, "from_tenant": t, "to_tenant": "archive",
                      "permit": True} for i, t in enumerate(("hosp-x", "hosp-y"))]
# Everything else at its default: the fair shares must hold without configuration.
c["settings"] = {"max_sessions": 2048, "exception_interface": tap}
json.dump(c, open(path, "w"), indent=1)
EOF

if mx_start_dp "$config"; then
  pass "medix-dp ready: $(grep -m1 'medix-dp: ready' "$MX_DP_LOG")"
else
  fail "medix-dp did not start"
  finish
fi
# The exception TAP in a namespace of its own, with Y's gateway address: a UDP sink on 500
# there counts what reaches medix-cp's side.
if ip link set "$TAP" netns "$NS_CP" && ip -n "$NS_CP" addr add 10.0.0.1/24 dev "$TAP" &&
  ip -n "$NS_CP" link set "$TAP" up; then
  pass "exception TAP $TAP in namespace cp"
else
  fail "could not move the exception TAP $TAP into $NS_CP"
  finish
fi
IKE_LOG=$MX_TMP/ike.log
ip netns exec "$NS_CP" "$MX_PY" -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 500))
with open(sys.argv[1], "a", buffering=1) as log:
    while True:
        data, peer = s.recvfrom(2048)
        log.write("%s %s\n" % (peer[0], data[:8].hex()))
' "$IKE_LOG" &
disown # ended with its namespace (noisy_cleanup), quietly

for h in hosp-x-lan hosp-y-lan archive; do
  gw=${MX_GW_ADDR[$h]%/*}
  if mx_in "$h" ping -n -c 1 -W 2 "$gw" >/dev/null 2>&1 || mx_in "$h" ping -n -c 1 -W 2 "$gw" >/dev/null 2>&1; then
    pass "$h pings its gateway $gw"
  else
    fail "$h does not reach its gateway $gw"
  fi
done
mx_serve archive "$PORT"
counters() { timeout 20 "$CTL" -p "$MX_PREFIX" -o json counters; }

# --- Y alone --------------------------------------------------------------------------------------
mx_send hosp-y-lan "$ARCHIVE_CORE" "$PORT" quiet "$NOISY_MIB" "$NOISY_MBIT"
wait "$MX_LAST_PID"
counters >"$MX_TMP/counters-quiet.json" 2>&1

# --- X noisy, Y at work ---------------------------------------------------------------------------
mx_bg hosp-x-lan "$MX_PY" "$MX_LIB_DIR/noise.py" 10.0.0.5 "$NOISY_S" "$NOISY_RATE" 172.16.0.0/12 10.9.0.0/16 \
  "$ARCHIVE_CORE" 10.0.0.1 >"$MX_TMP/noise.json"
noise_pid=$MX_LAST_PID
sleep 1.5 # X holds every share it can by now
mx_send hosp-y-lan "$ARCHIVE_CORE" "$PORT" noisy "$NOISY_MIB" "$NOISY_MBIT"
send_pid=$MX_LAST_PID
mx_in hosp-y-lan ping -n -c 3 -i 0.3 -W 1 "$UNROUTED" >"$MX_TMP/ping-unrouted.txt" 2>&1
mx_in hosp-y-lan ping -n -c 3 -i 0.3 -W 2 10.9.0.10 >"$MX_TMP/ping-arp.txt" 2>&1
mx_in hosp-y-lan "$MX_PY" -c '
import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.0.0.6", 500))
for i in range(5):
    s.sendto(bytes(8) + b"y-ike-%d" % i, ("10.0.0.1", 500))
    time.sleep(0.1)
'
wait "$send_pid"
wait "$noise_pid"
sleep 0.5
counters >"$MX_TMP/counters.json" 2>&1

# --- checks ---------------------------------------------------------------------------------------
if grep -q 'Unreachable' "$MX_TMP/ping-unrouted.txt"; then
  pass "hosp-y: ping $UNROUTED answered by its ICMP error: $(grep -m1 Unreachable "$MX_TMP/ping-unrouted.txt")"
else
  fail "hosp-y: no ICMP error for $UNROUTED while X scanned: $(tr '\n' ' ' <"$MX_TMP/ping-unrouted.txt")"
fi
if grep -qE ' [1-9][0-9]* received' "$MX_TMP/ping-arp.txt"; then
  pass "hosp-y: a new host (10.9.0.10) resolved and answers: $(grep received "$MX_TMP/ping-arp.txt")"
else
  fail "hosp-y: 10.9.0.10 not reached while X ARPed: $(tr '\n' ' ' <"$MX_TMP/ping-arp.txt")"
fi
y_ike=$(grep -c '^10\.0\.0\.6 ' "$IKE_LOG" 2>/dev/null)
if [ "${y_ike:-0}" -eq 5 ]; then
  pass "hosp-y: its 5 IKE packets all reached the exception TAP"
else
  fail "hosp-y: $y_ike of its 5 IKE packets reached the exception TAP"
fi
"$MX_PY" - "$MX_TMP" <<'EOF' | tally
import json, sys
tmp = sys.argv[1]
check = lambda ok, text: print(("PASS " if ok else "FAIL ") + text)
served = {}
for line in open(f"{tmp}/serve-archive.log"):
    r = json.loads(line)
    served[r["tag"]] = r
rates = {}
for tag in ("quiet", "noisy"):
    try:
        s = json.load(open(f"{tmp}/send-hosp-y-lan-{tag}.json"))
    except (OSError, ValueError) as e:
        check(False, f"hosp-y {tag}: no result from the sender ({e})")
        continue
    r = served.get(tag, {})
    ok = "sha256" in s and s.get("server_sha256") == s["sha256"] and r.get("sha256") == s["sha256"]
    check(ok, f"hosp-y {tag}: {s.get('bytes')} bytes byte-identical at the archive, {s.get('mbit_s')} Mbit/s"
              + ("" if ok else f": {s} / {r}"))
    if ok:
        rates[tag] = s["mbit_s"]
if len(rates) == 2:
    ratio = rates["noisy"] / rates["quiet"]
    check(ratio >= 0.9, f"hosp-y with X noisy: {rates['noisy']} Mbit/s, {ratio:.0%} of {rates['quiet']} with X quiet (>= 90%)")
try:
    noise = json.load(open(f"{tmp}/noise.json"))
    print(f"    X sent: {noise}")
except (OSError, ValueError) as e:
    check(False, f"noise.py: no result ({e})")
    noise = {}
try:
    d = json.load(open(f"{tmp}/counters.json"))
    q = json.load(open(f"{tmp}/counters-quiet.json"))
except (OSError, ValueError) as e:
    check(False, f"medixctl -o json counters: {e}")
    sys.exit()
tenants = {t["name"]: t for t in d.get("tenants", [])}
nat = {n["tenant"]: n for n in d.get("nat", [])}
nat_quiet = {n["tenant"]: n for n in q.get("nat", [])}
t = lambda name, k: int(tenants.get(name, {}).get(k, 0))
n = lambda name, k, src=nat: int(src.get(name, {}).get(k, 0))
print("    X counters: " + json.dumps({k: t("hosp-x", k) for k in ("icmp_sent", "icmp_rate_limited",
      "arp_pending_limited", "punt_policed", "drops")} | {"nat_session_limit": n("hosp-x", "session_limit"),
      "nat_sessions": n("hosp-x", "sessions")}))
print("    Y counters: " + json.dumps({k: t("hosp-y", k) for k in ("icmp_sent", "icmp_rate_limited",
      "arp_pending_limited", "punt_policed")} | {"nat_session_limit": n("hosp-y", "session_limit"),
      "nat_sessions_created": n("hosp-y", "sessions_created")}))
for k, what in (("icmp_rate_limited", "ICMP errors over its bucket"), ("arp_pending_limited", "packets over its ARP share"),
                ("punt_policed", "IKE over its source's rate")):
    check(t("hosp-x", k) > 0, f"hosp-x: {k} {t('hosp-x', k)} ({what}), counted under X")
    check(t("hosp-y", k) == 0, f"hosp-y: {k} 0 ({t('hosp-y', k)})")
check(n("hosp-x", "session_limit") > 0 and n("hosp-x", "sessions") <= 512,
      f"hosp-x: nat session_limit {n('hosp-x', 'session_limit')}, {n('hosp-x', 'sessions')} sessions held (share 512)")
check(n("hosp-y", "session_limit") == 0, f"hosp-y: nat session_limit 0 ({n('hosp-y', 'session_limit')})")
created = n("hosp-y", "sessions_created") - n("hosp-y", "sessions_created", nat_quiet)
check(created >= 1, f"hosp-y: {created} new session(s) while X was noisy (its upload)")
check(t("hosp-y", "icmp_sent") >= 1, f"hosp-y: icmp_sent {t('hosp-y', 'icmp_sent')}")
EOF

rc=0
mx_stop_dp || rc=$?
if [ $rc -eq 0 ]; then pass "medix-dp exited 0 on SIGTERM"; else fail "medix-dp exited $rc on SIGTERM"; fi
echo "    whole run: $(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
finish
