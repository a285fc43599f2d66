# shellcheck shell=bash
# The IX pair with an IKE tenant, as netns-ike-failover and netns-ike-witness set it up: sourced
# after lib.sh and swan.sh, with mx_attach carrier-y-gw/archive and mx_pair_setup done and
# MX_TMP, NS_Y, GW, PSK set. Functions only; each suite keeps its own checks.

# ike_pair_configs: medix-dp's configs for A and B (lib.sh's pair: A priority 200, B 100, adverts
# every 20 cs; at 10 cs a run on a loaded 2-core machine saw A take over from a live B), medix-cp's
# intent for each (the carrier's peer and the hospital behind it) and the sync link's key.
ike_pair_configs() {
  leak() { printf '{"tenant": "%s", "prefix": "%s", "next_tenant": "%s"}' "$1" "$2" "$3"; }
  # shellcheck disable=SC2034  # read by mx_write_config
  MX_ROUTES_JSON="$(leak archive 100.64.0.0/10 ix), $(leak ix 100.100.2.0/24 archive)"
  mx_write_config "$MX_TMP/base.json"
  "$MX_PY" - "$MX_TMP" "$PSK" <<'EOF' || mx_die "could not write the configs"
import json, sys
tmp, psk = sys.argv[1:3]
c = json.load(open(f"{tmp}/base.json"))
c["tenants"].append({"name": "ix", "core": True})
c["static_mappings"] = [{"tenant": "archive", "tenant_prefix": "192.168.1.0/24", "core_prefix": "100.100.2.0/24"}]
c["settings"] = {"max_sessions": 2048}
json.dump(c, open(f"{tmp}/base.json", "w"), indent=1)
json.dump({
    "schema_version": 1,
    "peers": [{
        "name": "carrier-y", "tenant": "hosp-y", "underlay_tenant": "carrier-y", "tunnel": "t-y",
        "local_address": "192.0.2.1", "remote_address": "192.0.2.10",
        "local_id": "ix.medix.example", "remote_id": "gw.carrier-y.example", "psk": psk,
        "ike_proposals": ["aes128gcm16-prfsha256-x25519"], "esp_proposals": ["aes128gcm16"],
        "local_selectors": ["100.100.2.0/24"], "remote_selectors": ["10.0.0.0/24"], "dpd_seconds": 2}],
    "tenants": [{"name": "hosp-y", "description": "The hospital behind ESP"}],
    "routes": [{"tenant": "hosp-y", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
               {"tenant": "ix", "prefix": "100.64.2.0/24", "next_tenant": "hosp-y"}],
    "static_mappings": [{"tenant": "hosp-y", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.2.0/24"}],
    "policy_rules": [{"name": "hosp-y-archive", "priority": 10, "from_tenant": "hosp-y", "to_tenant": "archive",
                      "permit": True}],
}, open(f"{tmp}/intent.json", "w"), indent=1)
EOF
  # shellcheck disable=SC2034  # read by mx_pair_configs and mx_pair_start
  MX_PAIR_ADVERT_CS=20 MX_PAIR_TAP=mxt$MX_ID
  mx_pair_configs "" 200 100
  cp "$MX_TMP/intent.json" "$MX_TMP/intent-a.json" && mv "$MX_TMP/intent.json" "$MX_TMP/intent-b.json"
  head -c 48 /dev/urandom | base64 >"$MX_TMP/cp-sync.key"
}

# ike_pair_cp_link: the medix-cp namespaces (mx-ID-cp-a, -b) and the veth between them, A
# 10.255.0.1/30, B 10.255.0.2/30 (the IKE sync link).
ike_pair_cp_link() {
  local n
  for n in a b; do
    ip netns add "mx-$MX_ID-cp-$n" && MX_SWAN_NS+=("mx-$MX_ID-cp-$n") || mx_die "namespace cp-$n"
    ip -n "mx-$MX_ID-cp-$n" link set lo up
  done
  ip link add "mh${MX_ID}a" netns "mx-$MX_ID-cp-a" type veth peer name "mh${MX_ID}b" netns "mx-$MX_ID-cp-b" &&
    ip -n "mx-$MX_ID-cp-a" addr add 10.255.0.1/30 dev "mh${MX_ID}a" && ip -n "mx-$MX_ID-cp-a" link set "mh${MX_ID}a" up &&
    ip -n "mx-$MX_ID-cp-b" addr add 10.255.0.2/30 dev "mh${MX_ID}b" && ip -n "mx-$MX_ID-cp-b" link set "mh${MX_ID}b" up ||
    mx_die "the ha link between the medix-cp namespaces"
}

# ike_pair_gateway DPD_DELAY: hosp-y's LAN, carrier Y's stock strongSwan gateway (its log in
# $GW/gw.log a line at a time: the checks read it while charon runs, its stdout is
# block-buffered) with DPD every DPD_DELAY, its IKE_SA and CHILD_SA initiated to the pair, then
# hosp-y's first pings to the archive. GWLOG is set; each line of it starts with the time, epoch
# seconds and milliseconds (gw_ms reads it). Fails the check and finishes on error.
ike_pair_gateway() {
  if ! mx_gateway_lan carrier-y-gw "$NS_Y" 10.0.0.1/24 10.0.0.10/24; then fail "hosp-y's LAN behind its gateway"; finish; fi
  GWLOG=$GW/gw.log
  # shellcheck disable=SC2034  # read by mx_swan_start
  MX_SWAN_CHARON_CONF="filelog {
    gw {
      path = $GWLOG
      flush_line = yes
      time_format = %s
      time_add_ms = yes
      default = 1
    }
  }"
  if ! mx_swan_start carrier-y-gw "$GW" 192.0.2.10 192.0.2.1 gw.carrier-y.example ix.medix.example "$PSK" \
    10.0.0.0/24 100.100.2.0/24 aes128gcm16-prfsha256-x25519 aes128gcm16 >"$MX_TMP/gw-start.txt"; then
    fail "carrier Y's gateway: $(cat "$MX_TMP/gw-start.txt")"
    finish
  fi
  sed -i "s/^    version = 2\$/    version = 2\n    dpd_delay = $1/" "$GW/swanctl/swanctl.conf"
  swan --load-all >/dev/null 2>&1
  if swan --initiate --child hosp --timeout 15 >"$GW/initiate.log" 2>&1; then
    pass "the gateway's IKE_SA and CHILD_SA up with node A"
  else
    fail "the gateway's initiate: $(tail -2 "$GW/initiate.log")"
    finish
  fi
  for _ in 1 2 3 4 5; do mx_in hosp-y ping -n -c1 -W1 -q "$ARCHIVE_CORE" >/dev/null 2>&1 && break; done
}

# The gateway: swan ARGS (its swanctl); ike_sa: its IKE_SA as "#UNIQUE SPI_i SPI_r STATE" (the
# first one listed); ike_count: how many; child [CONN]: its CHILD_SA "SPI_in SPI_out packets_in"
# (installed, the first one) of connection CONN (ix unless given).
swan() { mx_swan carrier-y-gw "$GW" "$@"; }
ike_sa() {
  swan --list-sas 2>/dev/null | sed -n 's/^ix: \(#[0-9]*\), \([A-Z_]*\), IKEv2, \([0-9a-f]*\)_i\*\? \([0-9a-f]*\)_r\*\?.*/\1 \3 \4 \2/p' | head -1
}
ike_count() { swan --list-sas 2>/dev/null | grep -c '^ix: #'; }
child() {
  swan --list-sas --ike "${1:-ix}" --raw 2>/dev/null | "$MX_PY" -c '
import re, sys
t = sys.stdin.read()
c = re.search(r"state=INSTALLED.*?spi-in=([0-9a-f]+) spi-out=([0-9a-f]+).*?packets-in=(\d+)", t, re.S)
print(" ".join(c.groups()) if c else "")'
}
# gw_ms PATTERN: the time of the gateway's first log line that matches PATTERN (grep), in epoch
# milliseconds; empty if none.
gw_ms() { grep -m1 "$1" "$GWLOG" | sed -n 's/^\([0-9]*\)\.\([0-9]\{3\}\) .*/\1\2/p'; }

# The split's tools. CARRIER_VMAC: VRID 10's, the first segment's (mx_pair_configs).
# steer_carrier eth0|ethb|none: the carrier's switch sends the virtual MAC to A's port, B's or
# learns it again (a sticky FDB entry). segments on|off: both nodes' ports on the carrier's and
# the archive's bridges isolated from each other (VRRP cut) or not.
CARRIER_VMAC=00:00:5e:00:01:0a
steer_carrier() {
  mx_in carrier-y-gw bridge fdb del $CARRIER_VMAC dev eth0 master 2>/dev/null
  mx_in carrier-y-gw bridge fdb del $CARRIER_VMAC dev ethb master 2>/dev/null
  [ "$1" = none ] || mx_in carrier-y-gw bridge fdb replace $CARRIER_VMAC dev "$1" master static sticky
}
segments() {
  local h
  for h in carrier-y-gw archive; do
    mx_in $h bridge link set dev eth0 isolated "$1" && mx_in $h bridge link set dev ethb isolated "$1" || return 1
  done
}
