#!/usr/bin/env bash
# A noisy neighbour against a hospital behind an ESP tunnel (issue 21's tenant Y, the leg
# test/netns/noisy.sh leaves out): X wastes every shared budget while Y, behind its carrier's
# IPsec gateway (stock strongSwan) with a tunnel of reduced MTU, uploads a study, receives one
# that needs path MTU discovery, and rekeys its CHILD_SA.
#
#   hosp-x-lan  10.0.0.5 ── p0 ─┐                               ┌─ p3 ── 192.168.1.10 archive
#   hosp-x-srv  10.9.0.10 ─ p1 ─┤          medix-dp             │   (100.100.2.0/24 in the core)
#   carrier-y-gw 192.0.2.2 ─ p2 ┘  tunnel t-y (MTU 1280) ══ ESP │
#     └─ lan ── hosp-y 10.0.0.10 (10.0.0.0/24 ⇄ 100.64.2.0/24)  exception TAP ── medix-cp (IKE)
#
# X (test/netns/noise.py), NOISY_S seconds, NOISY_RATE packets a second of each kind: unrouted
# scans, ARP for absent hosts, new flows to the archive, IKE to its gateway (punted). Y:
#   - uploads NOISY_MIB MiB to the archive through ESP, paced at NOISY_MBIT Mbit/s, with X quiet
#     and then with X noisy: byte-identical, the noisy rate >= 90% of the quiet one;
#   - meanwhile receives NOISY_MIB MiB from the archive (archive -> Y, a new session): the
#     archive's 1500-byte segments do not fit the tunnel's 1280, medix-dp answers "fragmentation
#     needed" (from the archive's gateway, through the core) and the archive's kernel lowers its
#     path MTU: the transfer completes byte-identical and the archive's route shows mtu 1280;
#   - rekeys its CHILD_SA (the gateway) during the noise: new SAs installed, traffic goes on.
# X's excess is counted under X, none of it under Y.
#
# Usage: test/netns/noisy_esp.sh (root; binaries from build/). Prints PASS/FAIL and
# "netns-noisy-esp: N passed, M failed".
set -uo pipefail
shopt -s lastpipe
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"
# shellcheck source=test/netns/swan.sh
source "$(dirname "$0")/swan.sh"

CTL=${MEDIXCTL:-$MX_REPO/build/controlplane/cli/medixctl}
NOISY_S=${NOISY_S:-8}
NOISY_RATE=${NOISY_RATE:-2000}
NOISY_MIB=${NOISY_MIB:-4}
NOISY_MBIT=${NOISY_MBIT:-20}
ARCHIVE_CORE=100.100.2.10 Y_CORE=100.64.2.10

esp_cleanup() {
  local rc=$?
  set +e
  trap - EXIT
  mx_swan_cleanup
  (exit "$rc")
  mx_cleanup
}
finish() {
  if [ "$failed" -gt 0 ]; then
    for f in medix-cp.log gw/charon.log; do
      [ -s "$MX_TMP/$f" ] && { echo "--- $f"; tail -n 15 "$MX_TMP/$f" | sed 's/^/  | /'; }
    done
    # shellcheck disable=SC2034  # read by mx_cleanup
    MX_KEEP_TMP=1
  fi
  echo "netns-noisy-esp: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

mx_init
trap esp_cleanup EXIT
mx_need_binary
[ -x "$CTL" ] || mx_die "medixctl not found at $CTL (run scripts/build)"
[ -x "$MX_REPO/build/controlplane/medix-cp" ] || mx_die "medix-cp not built (scripts/setup, scripts/build)"
[ -x /usr/lib/ipsec/charon ] || mx_die "strongSwan's charon is missing (scripts/setup)"
t_start=$(date +%s.%N)

mx_attach hosp-x-lan hosp-x 10.0.0.5/24 10.0.0.1/24
mx_attach hosp-x-srv hosp-x 10.9.0.10/16 10.9.0.1/16
mx_attach carrier-y-gw carrier-y 192.0.2.2/24 192.0.2.1/24
mx_attach archive archive 192.168.1.10/24 192.168.1.1/24
TAP=mxe$MX_ID NS_CP=mx-$MX_ID-cp NS_Y=mx-$MX_ID-hosp-y GW=$MX_TMP/gw
PSK="noisy-esp-$MX_ID-$RANDOM$RANDOM"
leak() { printf '{"tenant": "%s", "prefix": "%s", "next_tenant": "%s"}' "$1" "$2" "$3"; }
MX_ROUTES_JSON="$(leak hosp-x 100.64.0.0/10 ix), $(leak archive 100.64.0.0/10 ix)"
MX_ROUTES_JSON+=", $(leak ix 100.64.1.0/24 hosp-x), $(leak ix 100.100.2.0/24 archive)"
config=$MX_TMP/config.json
mx_write_config "$config"
"$MX_PY" - "$config" "$MX_TMP/cp-intent.json" "$TAP" "$PSK" <<'EOF' || mx_die "could not write the configs"
import json, sys
c = json.load(open(sys.argv[1]))
# Y's carrier tenant and interface, like the rest of Y, are medix-cp's intent.
carrier_t = [t for t in c["tenants"] if t["name"] == "carrier-y"]
carrier_i = [i for i in c["interfaces"] if i["tenant"] == "carrier-y"]
c["tenants"] = [t for t in c["tenants"] if t["name"] != "carrier-y"] + [{"name": "ix", "core": True}]
c["interfaces"] = [i for i in c["interfaces"] if i["tenant"] != "carrier-y"]
c["static_mappings"] = [
    {"tenant": "hosp-x", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"},
    {"tenant": "archive", "tenant_prefix": "192.168.1.0/24", "core_prefix": "100.100.2.0/24"}]
c["policy_rules"] = [{"name": "hosp-x-archive", "priority": 10, "from_tenant": "hosp-x", "to_tenant": "archive",
                      "permit": True}]
c["settings"] = {"max_sessions": 2048, "exception_interface": sys.argv[3]}
json.dump(c, open(sys.argv[1], "w"), indent=1)
json.dump({
    "schema_version": 1,
    "peers": [{
        "name": "carrier-y", "tenant": "hosp-y", "underlay_tenant": "carrier-y", "tunnel": "t-y",
        "local_address": "192.0.2.1", "remote_address": "192.0.2.2",
        "local_id": "ix.medix.example", "remote_id": "gw.carrier-y.example", "psk": sys.argv[4],
        "ike_proposals": ["aes128gcm16-prfsha256-x25519"], "esp_proposals": ["aes128gcm16"],
        "local_selectors": ["100.100.2.0/24"], "remote_selectors": ["10.0.0.0/24"], "mtu": 1280}],
    "tenants": carrier_t + [{"name": "hosp-y", "description": "The hospital behind ESP"}],
    "interfaces": carrier_i,
    "routes": [{"tenant": "hosp-y", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
               {"tenant": "ix", "prefix": "100.64.2.0/24", "next_tenant": "hosp-y"}],
    "static_mappings": [{"tenant": "hosp-y", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.2.0/24"}],
    "policy_rules": [
        {"name": "hosp-y-archive", "priority": 10, "from_tenant": "hosp-y", "to_tenant": "archive", "permit": True},
        {"name": "archive-hosp-y", "priority": 10, "from_tenant": "archive", "to_tenant": "hosp-y", "protocol": 6,
         "port_low": 5002, "port_high": 5002, "permit": True}],
}, open(sys.argv[2], "w"), indent=1)
EOF

mx_start_dp "$config" || { fail "medix-dp starts"; finish; }
if ! mx_gateway_lan carrier-y-gw "$NS_Y" 10.0.0.1/24 10.0.0.10/24; then fail "hosp-y's LAN behind its gateway"; finish; fi
if ! mx_swan_start carrier-y-gw "$GW" 192.0.2.2 192.0.2.1 gw.carrier-y.example ix.medix.example "$PSK" \
  10.0.0.0/24 100.100.2.0/24 aes128gcm16-prfsha256-x25519 aes128gcm16 >"$MX_TMP/gw-start.txt"; then
  fail "carrier Y's gateway: $(cat "$MX_TMP/gw-start.txt")"
  finish
fi
if mx_cp_start "$NS_CP" "$TAP" 192.0.2.1/24 "$MX_TMP/cp-intent.json" "$MX_TMP/medix-cp.log" >"$MX_TMP/cp-start.txt"; then
  pass "medix-cp runs hosp-y's intent (tunnel t-y, MTU 1280)"
else
  fail "medix-cp: $(cat "$MX_TMP/cp-start.txt")"
  finish
fi
swan() { mx_swan carrier-y-gw "$GW" "$@"; }
if swan --initiate --child hosp --timeout 15 >"$GW/initiate.log" 2>&1; then
  pass "hosp-y's CHILD_SA up (the gateway initiates)"
else
  fail "the gateway's initiate: $(tail -2 "$GW/initiate.log")"
  finish
fi
yin() { ip netns exec "$NS_Y" "$@"; }
for _ in 1 2 3 4 5; do yin ping -n -c1 -W1 -q "$ARCHIVE_CORE" >/dev/null 2>&1 && break; done
mx_in hosp-x-lan ping -n -c1 -W2 -q 10.0.0.1 >/dev/null 2>&1
mx_serve archive 5001
: >"$MX_TMP/serve-y.log"
yin "$MX_PY" "$MX_LIB_DIR/xfer.py" serve 10.0.0.10 5002 "$MX_TMP/serve-y.log" &
MX_PIDS+=($!)
disown # killed by mx_cleanup, without a job notice
counters() { timeout 20 "$CTL" -p "$MX_PREFIX" -o json counters; }
y_send() { # TAG: Y's upload to the archive through ESP, paced
  ip netns exec "$NS_Y" timeout 120 "$MX_PY" "$MX_LIB_DIR/xfer.py" send "$ARCHIVE_CORE" 5001 "$1" "$NOISY_MIB" \
    "$NOISY_MBIT" >"$MX_TMP/send-y-$1.json"
}

# --- Y alone, then X noisy while Y uploads, receives (PMTUD) and rekeys ----------------------------
y_send quiet
counters >"$MX_TMP/counters-quiet.json" 2>&1
spis_before=$("$CTL" -p "$MX_PREFIX" -o json show sas | mx_json - 'sorted(o["sa"]["spi"] for o in d.get("objects", []))')
mx_bg hosp-x-lan "$MX_PY" "$MX_LIB_DIR/noise.py" 10.0.0.5 "$NOISY_S" "$NOISY_RATE" 172.16.0.0/12 10.9.0.0/16 \
  "$ARCHIVE_CORE" 10.0.0.1 >"$MX_TMP/noise.json"
noise_pid=$MX_LAST_PID
sleep 1.5
y_send noisy &
send_pid=$!
mx_in archive timeout 120 "$MX_PY" "$MX_LIB_DIR/xfer.py" send "$Y_CORE" 5002 download "$NOISY_MIB" \
  >"$MX_TMP/send-archive-download.json" 2>&1 &
down_pid=$!
sleep 1
swan --rekey --child hosp >"$GW/rekey.log" 2>&1
rekey_rc=$?
wait "$send_pid"
wait "$down_pid"
wait "$noise_pid"
sleep 0.5
counters >"$MX_TMP/counters.json" 2>&1
spis_after=$("$CTL" -p "$MX_PREFIX" -o json show sas | mx_json - 'sorted(o["sa"]["spi"] for o in d.get("objects", []))')
route=$(mx_in archive ip route get "$Y_CORE" 2>&1 | tr '\n' ' ')

# --- checks -----------------------------------------------------------------------------------------
if [ $rekey_rc -eq 0 ] && [ -n "$spis_after" ] && [ "$spis_after" != "$spis_before" ]; then
  pass "hosp-y's CHILD_SA rekeyed during the noise: SAs $spis_before -> $spis_after"
else
  fail "the rekey (swanctl exit $rekey_rc): SAs $spis_before -> $spis_after: $(tail -2 "$GW/rekey.log")"
fi
if [[ $route == *"mtu 1280"* ]]; then
  pass "the archive learned the path MTU to hosp-y from medix-dp's fragmentation needed: $route"
else
  fail "no path MTU 1280 on the archive's route to hosp-y: $route"
fi
"$MX_PY" - "$MX_TMP" <<'EOF' | while IFS= read -r line; do
import json, sys
tmp = sys.argv[1]
check = lambda ok, text: print(("PASS " if ok else "FAIL ") + text)
served = {}
for log in ("serve-archive.log", "serve-y.log"):
    for line in open(f"{tmp}/{log}"):
        r = json.loads(line)
        served[r["tag"]] = r
rates = {}
for tag, f in (("quiet", "send-y-quiet.json"), ("noisy", "send-y-noisy.json"), ("download", "send-archive-download.json")):
    try:
        s = json.load(open(f"{tmp}/{f}"))
    except (OSError, ValueError) as e:
        check(False, f"{tag}: no result from the sender ({e})")
        continue
    r = served.get(tag, {})
    ok = "sha256" in s and s.get("server_sha256") == s["sha256"] and r.get("sha256") == s["sha256"]
    check(ok, f"hosp-y {tag}: {s.get('bytes')} bytes byte-identical, {s.get('mbit_s')} Mbit/s" + ("" if ok else f": {s} / {r}"))
    if ok:
        rates[tag] = s["mbit_s"]
if "quiet" in rates and "noisy" in rates:
    ratio = rates["noisy"] / rates["quiet"]
    check(ratio >= 0.9, f"hosp-y's upload through ESP with X noisy: {rates['noisy']} Mbit/s, {ratio:.0%} of "
          f"{rates['quiet']} with X quiet (>= 90%)")
try:
    print(f"    X sent: {json.load(open(f'{tmp}/noise.json'))}")
    d = json.load(open(f"{tmp}/counters.json"))
except (OSError, ValueError) as e:
    check(False, f"noise.py or medixctl counters: {e}")
    sys.exit()
tenants = {t["name"]: t for t in d.get("tenants", [])}
nat = {n["tenant"]: n for n in d.get("nat", [])}
t = lambda name, k: int(tenants.get(name, {}).get(k, 0))
keys = ("icmp_rate_limited", "arp_pending_limited", "punt_policed", "fragments_limited", "buffer_guarded")
print("    X counters: " + json.dumps({k: t("hosp-x", k) for k in keys}
                                     | {"nat_session_limit": int(nat.get("hosp-x", {}).get("session_limit", 0))}))
for k in ("icmp_rate_limited", "arp_pending_limited", "punt_policed"):
    check(t("hosp-x", k) > 0, f"hosp-x: {k} {t('hosp-x', k)}, counted under X")
for k in keys:
    check(t("hosp-y", k) == 0, f"hosp-y: {k} 0 ({t('hosp-y', k)})")
check(t("carrier-y", "punt_policed") == 0, f"carrier-y (Y's IKE, the rekey): punt_policed 0 ({t('carrier-y', 'punt_policed')})")
check(int(nat.get("hosp-x", {}).get("session_limit", 0)) > 0, "hosp-x: nat session_limit hit, under X")
check(int(nat.get("hosp-y", {}).get("session_limit", 0)) == 0, "hosp-y: nat session_limit 0")
EOF
  case $line in PASS\ *) pass "${line#PASS }" ;; FAIL\ *) fail "${line#FAIL }" ;; *) echo "$line" ;; esac
done

rc=0
mx_cp_stop || rc=$?
[ $rc -eq 0 ] && pass "medix-cp exited 0" || fail "medix-cp exited $rc"
rc=0
mx_stop_dp || rc=$?
[ $rc -eq 0 ] && pass "medix-dp exited 0 on SIGTERM" || fail "medix-dp exited $rc on SIGTERM"
echo "    whole run: $(awk -v a="$t_start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
finish
