#!/usr/bin/env bash
# IKEv2 end to end: a stock strongSwan charon (kernel-libipsec: ESP in UDP 4500 in userspace)
# plays a carrier's gateway for a hospital; medix-cp (libcharon + its kernel-ipsec backend)
# negotiates with it through medix-dp's exception TAP and pushes tunnel, SAs and routes into
# medix-dp; TCP transfers go from the hospital host to an imaging archive in a tenant of its
# own and back, byte-identical. (The archive is untagged: this kernel has no 802.1Q.)
#
#   hosp 10.0.1.5 ── gw (charon, kernel-libipsec) ══ ESP/UDP 4500 ══ p0 ┐
#        10.0.1.1     192.0.2.2                                        │ medix-dp ── p1 ── archive
#                                                                      │ 192.0.2.1      192.168.1.1   192.168.1.10
#                           exception TAP (namespace cp): 192.0.2.1 ───┘ medix-cp there
#
# medix-dp's config file holds only its ports and settings; the rest comes from medix-cp's
# intent: tenants carrier-b (underlay, 192.0.2.1/24), hosp-a (the tunnel's inner side), archive
# and ix (the IX core); static mappings hosp-a 10.0.1.0/24 <-> 100.64.1.0/24 and archive
# 192.168.1.0/24 <-> 100.100.1.0/24; leaks hosp-a and archive 100.64.0.0/10 -> ix, ix
# 100.64.1.0/24 -> hosp-a, 100.100.1.0/24 -> archive; policy rules permitting hosp-a <-> archive.
# The hospital reaches the archive at 100.100.1.10 (the CHILD_SA's selectors: 10.0.1.0/24 ===
# 100.100.1.0/24), the archive sees it as 100.64.1.5: ESP decryption, translation and the core.
# medix-cp adds hosp-a 10.0.1.0/24 via the tunnel when the CHILD_SA is up.
#
# Rounds (docs/cp.md has the table):
#   gcm, cbc, x509-gcm, x509-cbc   PSK and X.509 (a CA made with pki), AES-GCM-128 and
#        AES-CBC-256+HMAC-SHA-256: the gateway initiates; time to CHILD_SA up and to the first
#        ping; SAs, route and encapsulation in medix-dp; TCP both ways; a DICOM study with
#        dcmtk, byte-identical; counters in medixctl;
#        after the gateway's DELETE nothing is left in medix-dp; medix-cp stops cleanly
#   x509-foreign-ca, x509-expired, wrong-psk, unknown-id, no-proposal, no-esp-proposal   refused, the
#        reason in medix-cp's log and in `medixctl peer NAME errors`, nothing in medix-dp
#   cp-initiates   medix-cp starts IKE
#   rekey          rekeys every 3-4 s by medix-cp's timers and some by the gateway, under UDP
#                  streams and DICOM studies: nothing lost, one IKE_SA
#   dp-restart     medix-dp restarted under traffic: replay, rekey, no new IKE_SA
#   cp-restart     medix-cp killed and restarted: old SAs removed, tunnel back
#   medixctl       medixctl peer NAME initiate / rekey / terminate
#   intent-api     medixctl intent apply: refused (validation, medix-dp) changes nothing, a
#                  changed peer reconnects with its new proposal, a removed one is cleaned up
#   volume         rekeys on bytes (medix-dp's SOFT_EXPIRED events) during TCP transfers
#   last           no PSK, private key or CHILD_SA key in any log or error (test/lib/keygrep.py)
#
# Usage: test/ike/run.sh   (root; binaries from build/, or MEDIX_DP, MEDIX_CP, MEDIXCTL)
# Env: IKE_ONLY="gcm rekey ..." runs only these rounds, IKE_TCP_MIB (2), IKE_REKEY_SECONDS (20),
# MX_KEEP_TMP=1 keeps the temp dir (configs and logs).
# Ends with "ike: N passed, M failed"; exit status 1 on any failure.
set -uo pipefail
IKE_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=test/netns/lib.sh
source "$IKE_DIR/../netns/lib.sh"
# shellcheck source=test/lib/keygrep.sh
source "$IKE_DIR/../lib/keygrep.sh"

MX_CP=${MEDIX_CP:-$MX_REPO/build/controlplane/medix-cp}
MX_CTL=${MEDIXCTL:-$MX_REPO/build/controlplane/cli/medixctl}
TCP_MIB=${IKE_TCP_MIB:-2}
PSK="medix-ike-test-psk-0123456789"
WRONG_PSK="not-the-right-psk-at-all"
GW_ID=gw.carrier-b.example
IX_ID=ix.medix.example

passed=0
failed=0
# What the suite prints goes to $MX_TMP/suite.log too: the last check searches it for keys.
say() { echo "$*"; [ -d "${MX_TMP:-}" ] && echo "$*" >>"$MX_TMP/suite.log"; }
pass() { say "PASS $*"; passed=$((passed + 1)); }
fail() { say "FAIL $*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...: PASS if the command succeeds
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
info() { say "  $*"; }
quiet() { "$@" >/dev/null 2>&1; }
now_ms() { date +%s%3N; }

cp_pid=
gw_pid=
ike_cleanup() {
  local rc=$? pid
  set +e
  trap - EXIT
  [ -n "$cp_pid" ] && kill -TERM "$cp_pid" 2>/dev/null && sleep 0.5 && kill -KILL "$cp_pid" 2>/dev/null
  [ -n "$gw_pid" ] && kill -KILL "$gw_pid" 2>/dev/null
  if [ -n "${MX_ID:-}" ]; then
    for ns in "mx-$MX_ID-cp" "mx-$MX_ID-hosp"; do
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null; done
      ip netns del "$ns" 2>/dev/null
    done
    ip link del "mxe$MX_ID" 2>/dev/null # the TAP, had it not been moved yet
  fi
  if [ "$failed" -gt 0 ] || [ "$rc" -ne 0 ]; then
    # shellcheck disable=SC2034  # read by mx_cleanup
    MX_KEEP_TMP=1
    echo "--- configs and logs kept in $MX_TMP"
  fi
  (exit "$rc")
  mx_cleanup
}

mx_init
trap ike_cleanup EXIT
mx_need_binary
for bin in "$MX_CP" "$MX_CTL" /usr/lib/ipsec/charon /usr/sbin/swanctl; do
  [ -x "$bin" ] || mx_die "$bin not found (scripts/setup, scripts/build)"
done
[ -c /dev/net/tun ] || mx_die "/dev/net/tun is missing (the exception interface is a TAP)"

# --- 0. our view of libcharon's structures matches the library -----------------------------
check "medix-cp --abi-check: daemon_t and peer_cfg_t layouts match libcharon's" "$MX_CP" --abi-check

# --- the namespaces ------------------------------------------------------------------------------
TAP=mxe$MX_ID
NS_CP=mx-$MX_ID-cp
NS_HOSP=mx-$MX_ID-hosp
mx_attach carrier carrier-b 192.0.2.2/24 192.0.2.1/24 # the gateway's WAN side
mx_attach archive archive 192.168.1.10/24 192.168.1.1/24
NS_GW=$(mx_ns carrier)
NS_AR=$(mx_ns archive)
# (set -e holds in a subshell only outside of a || list: test its status apart.)
(
  set -e
  # The hospital host behind the gateway.
  ip netns add "$NS_HOSP"
  ip netns exec "$NS_HOSP" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$NS_GW" link add lan type veth peer name eth0 netns "$NS_HOSP"
  ip -n "$NS_GW" addr add 10.0.1.1/24 dev lan
  ip -n "$NS_GW" link set lan up
  ip netns exec "$NS_GW" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
    net.ipv4.conf.default.rp_filter=0
  ip -n "$NS_HOSP" addr add 10.0.1.5/24 dev eth0
  ip -n "$NS_HOSP" link set lo up
  ip -n "$NS_HOSP" link set eth0 up
  ip -n "$NS_HOSP" route add default via 10.0.1.1
  ip netns add "$NS_CP"
  ip netns exec "$NS_CP" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$NS_CP" link set lo up
)
[ $? -eq 0 ] || mx_die "could not build the namespaces"

# --- medix-dp --------------------------------------------------------------------------------
cat >"$MX_TMP/dp.json" <<EOF
{
  "schema_version": 1,
  "ports": [{"name": "p0", "device": "net_af_packet0", "promiscuous": true},
            {"name": "p1", "device": "net_af_packet1", "promiscuous": true}],
  "settings": {"exception_interface": "$TAP", "max_sessions": 65536}
}
EOF
mx_start_dp "$MX_TMP/dp.json" || mx_die "medix-dp did not start"
ctl() { "$MX_CTL" -p "$MX_PREFIX" "$@"; }
# attach_tap: medix-dp's exception TAP into medix-cp's namespace, with the tunnel endpoint.
attach_tap() {
  ip link set "$TAP" netns "$NS_CP" &&
    ip -n "$NS_CP" addr add 192.0.2.1/24 dev "$TAP" &&
    ip -n "$NS_CP" link set "$TAP" up
}
attach_tap || mx_die "could not move the exception TAP $TAP into $NS_CP"

# --- the carrier's gateway: stock charon with kernel-libipsec ----------------------------------
GW=$MX_TMP/gw
mkdir -p "$GW/run" "$GW/swanctl"
# keys.log: the CHILD_SAs' keys as the gateway derives them (chd level 4), which medix-cp
# derives too and hands medix-dp: the key check at the end wants them nowhere else.
cat >"$GW/strongswan.conf" <<EOF
charon {
  load = random nonce openssl kdf pem pkcs1 pkcs8 x509 pubkey constraints kernel-libipsec kernel-netlink socket-default vici
  filelog {
    keys {
      path = $GW/keys.log
      flush_line = yes
      default = -1
      chd = 4
    }
  }
  plugins {
    vici {
      socket = unix://$GW/charon.vici
    }
  }
}
swanctl {
  socket = unix://$GW/charon.vici
}
EOF
ip netns exec "$NS_GW" sh -c "mount --bind '$GW/run' /run && exec env STRONGSWAN_CONF='$GW/strongswan.conf' /usr/lib/ipsec/charon" \
  >"$GW/charon.log" 2>&1 &
gw_pid=$!
disown # killed at exit, without a job notice
swan() { ip netns exec "$NS_GW" env STRONGSWAN_CONF="$GW/strongswan.conf" SWANCTL_DIR="$GW/swanctl" swanctl "$@"; }
for ((i = 0; i < 100; i++)); do [ -S "$GW/charon.vici" ] && break; sleep 0.1; done
[ -S "$GW/charon.vici" ] || mx_die "the gateway's charon did not start: $(tail -5 "$GW/charon.log")"

# --- a test PKI (strongSwan's pki): the IX's CA with certificates for medix-cp and the gateway;
# another CA (foreign) and an expired certificate for the refusals --------------------------------
PKI=$MX_TMP/pki
mkdir -p "$PKI"
# mk_cert NAME CN CA [PKI_ISSUE_OPTIONS...]: NAME.key and NAME.pem issued by CA (ECDSA P-256).
mk_cert() {
  local name=$1 cn=$2 ca=$3; shift 3
  pki --gen --type ecdsa --size 256 --outform pem >"$PKI/$name.key" &&
    pki --pub --in "$PKI/$name.key" --type ecdsa |
    pki --issue --cacert "$PKI/$ca.pem" --cakey "$PKI/$ca.key" --dn "O=medix test, CN=$cn" --san "$cn" \
      --outform pem "$@" >"$PKI/$name.pem"
}
(
  set -e
  for ca in ca foreign-ca; do
    pki --gen --type ecdsa --size 256 --outform pem >"$PKI/$ca.key"
    pki --self --ca --lifetime 30 --in "$PKI/$ca.key" --type ecdsa --dn "O=medix test, CN=$ca" \
      --outform pem >"$PKI/$ca.pem"
  done
  mk_cert ix "$IX_ID" ca --lifetime 30
  mk_cert gw "$GW_ID" ca --lifetime 30
  mk_cert gw-foreign "$GW_ID" foreign-ca --lifetime 30
  mk_cert gw-expired "$GW_ID" ca --not-before "01.01.20 00:00:00" --not-after "02.01.20 00:00:00"
) 2>"$PKI/pki.log"
[ $? -eq 0 ] || mx_die "pki failed: $(tail -3 "$PKI/pki.log")"
mkdir -p "$GW/swanctl/x509" "$GW/swanctl/x509ca" "$GW/swanctl/private"
cp "$PKI/ca.pem" "$GW/swanctl/x509ca/"
# gw_cert NAME: the gateway presents NAME.pem (gw, gw-foreign, gw-expired).
gw_cert() {
  cp "$PKI/$1.pem" "$GW/swanctl/x509/gw.pem"
  cp "$PKI/$1.key" "$GW/swanctl/private/gw.key"
}
gw_cert gw
AUTH=psk

# --- helpers for the rounds --------------------------------------------------------------------
# gw_conf IKE_PROPOSAL ESP_PROPOSAL [CHILD_LINES [PSK]]: the gateway's swanctl.conf (one
# key = value per line) and its loading.
gw_conf() {
  cat >"$GW/swanctl/swanctl.conf" <<EOF
connections {
  ix {
    version = 2
    local_addrs = 192.0.2.2
    remote_addrs = 192.0.2.1
    proposals = $1
    local {
      auth = $GW_AUTH
      id = $GW_ID
$GW_CERTS
    }
    remote {
      auth = $GW_AUTH
      id = $IX_ID
    }
    children {
      hosp {
        local_ts = 10.0.1.0/24
        remote_ts = 100.100.1.0/24
        esp_proposals = $2
${3:-}
      }
    }
  }
}
secrets {
  ike-ix {
    id-1 = $GW_ID
    id-2 = $IX_ID
    secret = "${4:-$PSK}"
  }
}
EOF
  swan --load-all --clear >"$GW/load.log" 2>&1
}

# cp_start INTENT_FILE: medix-cp in the TAP's namespace; waits for its ready line. Its log is
# $MX_TMP/medix-cp-$label.log.
cp_start() {
  CP_LOG=$MX_TMP/medix-cp-$label.log
  : >"$CP_LOG"
  ip netns exec "$NS_CP" "$MX_CP" --intent "$1" -p "$MX_PREFIX" --log-level 1 --metrics-listen 127.0.0.1:9464 \
    >"$CP_LOG" 2>&1 &
  cp_pid=$!
  for ((i = 0; i < 100; i++)); do
    grep -q 'medix-cp: ready' "$CP_LOG" && return 0
    mx_alive "$cp_pid" || break
    sleep 0.1
  done
  tail -20 "$CP_LOG" | sed 's/^/  | /'
  return 1
}

# cp_metric SERIES: its value in medix-cp's Prometheus metrics (GET /metrics in its namespace);
# metric_is SERIES TEST VALUE: whether it passes `test VALUE TEST` within 3 s (events counted on
# charon's threads may trail what medix-dp shows by a moment).
cp_metric() {
  ip netns exec "$NS_CP" curl -sf --max-time 2 http://127.0.0.1:9464/metrics | awk -v k="$1" '$1 == k { print $2 }'
}
metric_is() {
  local v i
  for ((i = 0; i < 30; i++)); do
    v=$(cp_metric "$1")
    [ -n "$v" ] && [ "${v%.*}" "$2" "$3" ] && return 0
    sleep 0.1
  done
  echo "  | $1 = ${v:-(none)}"
  return 1
}

# cp_stop: SIGTERM; returns medix-cp's exit status.
cp_stop() {
  local rc=0
  [ -n "$cp_pid" ] || return 0
  kill -TERM "$cp_pid" 2>/dev/null
  for ((i = 0; i < 100; i++)); do mx_alive "$cp_pid" || break; sleep 0.1; done
  mx_alive "$cp_pid" && kill -KILL "$cp_pid"
  wait "$cp_pid" || rc=$?
  cp_pid=
  return $rc
}

# The rest of the IX, in medix-cp's intent (medix-dp's own config holds only its ports and
# settings): the tenants, the underlay and archive interfaces, the IX core with the hospital's
# and the archive's static mappings, the leaks into and out of the core, and the policy; a NAPT
# pool for the hospital's other sources (none here) and the archive's MAC as a static neighbour.
STATIC_INTENT='  "tenants": [{"name": "carrier-b", "description": "carrier B underlay"},
              {"name": "hosp-a", "description": "hospital A, behind carrier B IPsec"},
              {"name": "archive", "description": "imaging archive"},
              {"name": "ix", "description": "the IX core", "core": true}],
  "interfaces": [
    {"name": "carrier-b", "tenant": "carrier-b", "port": "p0", "addresses": ["192.0.2.1/24"]},
    {"name": "archive-lan", "tenant": "archive", "port": "p1", "addresses": ["192.168.1.1/24"]}],
  "routes": [
    {"tenant": "hosp-a", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
    {"tenant": "archive", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
    {"tenant": "ix", "prefix": "100.64.1.0/24", "next_tenant": "hosp-a"},
    {"tenant": "ix", "prefix": "100.100.1.0/24", "next_tenant": "archive"}],
  "static_mappings": [
    {"tenant": "hosp-a", "tenant_prefix": "10.0.1.0/24", "core_prefix": "100.64.1.0/24"},
    {"tenant": "archive", "tenant_prefix": "192.168.1.0/24", "core_prefix": "100.100.1.0/24"}],
  "policy_rules": [
    {"name": "hosp-a-to-archive", "priority": 10, "from_tenant": "hosp-a", "to_tenant": "archive", "permit": true},
    {"name": "archive-to-hosp-a", "priority": 20, "from_tenant": "archive", "to_tenant": "hosp-a", "permit": true}],
  "napt_pools": [{"tenant": "hosp-a", "addresses": ["100.64.9.1"]}],
  "neighbours": [{"interface": "archive-lan", "address": "192.168.1.10", "mac": "'"$(mx_host_mac archive)"'"}]'
# Each side reaches the other at its core address.
AR_CORE=100.100.1.10
HOSP_CORE=100.64.1.5

# intent ESP_PROPOSAL [EXTRA_JSON [PSK]]: medix-cp's intent for carrier B and the rest of the IX;
# EXTRA_JSON are more fields of the peer (', "initiate": true').
intent() {
  cat <<EOF
{
  "schema_version": 1,
  "peers": [{
    "name": "carrier-b", "tenant": "hosp-a", "underlay_tenant": "carrier-b", "tunnel": "t-carrier-b",
    "local_address": "192.0.2.1", "remote_address": "192.0.2.2",
    "local_id": "$IX_ID", "remote_id": "$GW_ID", "psk": "${3-$PSK}",$CP_X509
    "ike_proposals": ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048"],
    "esp_proposals": ["$1"],
    "local_selectors": ["100.100.1.0/24"], "remote_selectors": ["10.0.1.0/24"],
    "tcp_mss_clamp": 1300${2:-}
  }],
$STATIC_INTENT
}
EOF
}

# dp_json KIND EXPR: EXPR over `d`, the list of medix-dp's objects of KIND (medixctl -o json).
dp_json() { # (what medixctl shows is kept for the key check)
  ctl -o json show "$1" | tee -a "$MX_TMP/medixctl-show.json" | mx_json - "(lambda d: $2)([list(o.values())[0] for o in d['objects']])"
}
dp_sas() { dp_json sas 'len([s for s in d if s["tunnel"] == "t-carrier-b"])'; }
dp_route() { dp_json routes 'len([r for r in d if r["tenant"] == "hosp-a" and r["prefix"] == "10.0.1.0/24"])'; }

# transfer FROM_NS TO_ADDR TAG: xfer.py to the other host's server, sha256 compared.
transfer() {
  local from_ns=$1 addr=$2 tag=$3 out=$MX_TMP/xfer-$3.json
  ip netns exec "$from_ns" timeout 60 "$MX_PY" "$MX_LIB_DIR/xfer.py" send "$addr" 5001 "$tag" "$TCP_MIB" >"$out" 2>&1
  local rc=$?
  info "$(cat "$out")"
  [ $rc -eq 0 ] && mx_json "$out" 'd["sha256"] == d["server_sha256"] and d["bytes"] > 0' | grep -q True
}

# first_ping T0_MS: pings hospital -> archive until one answers (20 s at most); PASS with the
# time since T0_MS.
first_ping() {
  local t0=$1 i
  for ((i = 0; i < 100; i++)); do
    if ip netns exec "$NS_HOSP" ping -c1 -W0.2 -q $AR_CORE >/dev/null 2>&1; then
      pass "$label: first ping hospital -> archive through the tunnel $(($(now_ms) - t0)) ms after initiate"
      return 0
    fi
  done
  fail "$label: no ping from the hospital to the archive within 20 s"
  return 1
}

# peer_seen archive|hosp TAG: the address the transfer TAG to that host's server came from (the
# server logs it just after answering).
peer_seen() {
  local i seen=
  for ((i = 0; i < 20; i++)); do
    seen=$(mx_json "$MX_TMP/serve-$1.log" '" ".join(l["peer"].rsplit(":", 1)[0] for l in lines if l["tag"] == "'"$2"'")')
    [ -n "$seen" ] && break
    sleep 0.1
  done
  echo "$seen"
}

# json_true FILE EXPR: the expression over the JSON file is true.
json_true() { mx_json "$1" "$2" | grep -q '^True$'; }

# A DICOM study (pydicom), sent by dcmtk's storescu from the hospital to storescp on the archive.
DICOM_IMAGES=${IKE_DICOM_IMAGES:-40}
"$MX_PY" "$IKE_DIR/dicom.py" make "$MX_TMP/study" "$DICOM_IMAGES" || mx_die "could not make the DICOM study"
dicom_send() {
  local dir=$MX_TMP/archive-$1 out=$MX_TMP/dicom-$1.json t0 rc
  mkdir -p "$dir"
  ip netns exec "$NS_AR" storescp -aet ARCHIVE -od "$dir" -B 11112 >"$MX_TMP/storescp-$1.log" 2>&1 &
  local scp=$!
  sleep 0.3
  t0=$(now_ms)
  ip netns exec "$NS_HOSP" timeout 60 storescu -aet HOSPITAL-A -aec ARCHIVE +sd $AR_CORE 11112 "$MX_TMP/study" \
    >"$MX_TMP/storescu-$1.log" 2>&1
  rc=$?
  local ms=$(($(now_ms) - t0))
  kill $scp 2>/dev/null
  wait $scp 2>/dev/null
  "$MX_PY" "$IKE_DIR/dicom.py" compare "$MX_TMP/study" "$dir" >"$out"
  info "storescu exit $rc in $ms ms; $(cat "$out")"
  [ $rc -eq 0 ] && json_true "$out" 'd["identical"] == d["sent"] > 0'
}

# Servers on both hosts for the whole run.
: >"$MX_TMP/serve-archive.log" >"$MX_TMP/serve-hosp.log"
mx_bg archive "$MX_PY" "$MX_LIB_DIR/xfer.py" serve 192.168.1.10 5001 "$MX_TMP/serve-archive.log"
ip netns exec "$NS_HOSP" "$MX_PY" "$MX_LIB_DIR/xfer.py" serve 10.0.1.5 5001 "$MX_TMP/serve-hosp.log" &
disown # killed with its namespace at exit, without a job notice

# begin LABEL IKE ESP [INTENT_EXTRA [GW_CHILD_LINES]]: medix-cp with its intent, the gateway
# with its config. Returns 1 (after a FAIL) if either could not start.
begin() {
  label=$1
  case " ${IKE_ONLY:-$1} " in *" $1 "*) ;; *) return 1 ;; esac
  echo "== $label ($AUTH)"
  if [ "$AUTH" = x509 ]; then
    GW_AUTH=pubkey GW_CERTS="      certs = gw.pem"
    CP_X509=" \"certificate\": \"$PKI/ix.pem\", \"private_key\": \"$PKI/ix.key\", \"ca_certificate\": \"$PKI/ca.pem\","
    intent "$3" "${4:-}" "" >"$MX_TMP/intent-$label.json"
  else
    GW_AUTH=psk GW_CERTS= CP_X509=
    intent "$3" "${4:-}" >"$MX_TMP/intent-$label.json"
  fi
  if ! cp_start "$MX_TMP/intent-$label.json"; then
    fail "$label: medix-cp started"
    return 1
  fi
  pass "$label: medix-cp started and brought medix-dp to its intent (tunnel t-carrier-b)"
  if ! gw_conf "$2" "$3" "${5:-}"; then
    fail "$label: the gateway loaded its config: $(cat "$GW/load.log")"
    cp_stop
    return 1
  fi
}

# gw_initiate: the gateway starts IKE; PASS with the time to CHILD_SA up, then first_ping.
gw_initiate() {
  local t0
  t0=$(now_ms)
  if swan --initiate --child hosp --timeout 15 >"$MX_TMP/initiate-$label.log" 2>&1; then
    pass "$label: the gateway initiated; CHILD_SA up in $(($(now_ms) - t0)) ms"
  else
    fail "$label: the gateway's initiate failed: $(grep -v '^\[' "$MX_TMP/initiate-$label.log" | tail -2)"
    tail -15 "$CP_LOG" | sed 's/^/  | /'
    return 1
  fi
  first_ping "$t0"
}

# finish: the gateway closes the IKE_SA; no SA nor route of it stays in medix-dp; medix-cp
# stops cleanly.
finish() {
  local left= i
  swan --terminate --ike ix --timeout 10 >"$MX_TMP/terminate-$label.log" 2>&1
  for ((i = 0; i < 50; i++)); do
    left=$(dp_sas)
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  check "$label: after the gateway's DELETE, medix-dp has no SA on t-carrier-b ($left left)" test "$left" = 0
  check "$label: ... and no route to 10.0.1.0/24 in hosp-a" test "$(dp_route)" = 0
  # Every IKE_SA that came up went down (0 = 0 where none came up).
  check "$label: metrics: medix_cp_peer_up{peer=carrier-b} 0, as many ike_down events as ike_up" \
    eval 'metric_is "medix_cp_peer_up{peer=\"carrier-b\"}" -eq 0 &&
      metric_is "medix_cp_ike_events_total{event=\"ike_down\"}" -eq "$(cp_metric "medix_cp_ike_events_total{event=\"ike_up\"}")"'
  check "$label: medix-cp stops cleanly on SIGTERM" cp_stop
}

# --- a bad intent is refused with the field and reason, before medix-dp is touched -----------
# bad_intent DESCRIPTION PYTHON_EDIT EXPECTED_REGEX: the good intent edited (`d` is its JSON);
# medix-cp (in medix-cp's namespace, pointed at no medix-dp) must exit 2 saying EXPECTED_REGEX.
bad_intent() {
  local out=$MX_TMP/bad-intent.out rc
  CP_X509= intent aes128gcm16 | "$MX_PY" -c 'import json, sys; d = json.load(sys.stdin); exec(sys.argv[1]); print(json.dumps(d))' "$2" \
    >"$MX_TMP/bad-intent.json"
  ip netns exec "$NS_CP" timeout 20 "$MX_CP" --intent "$MX_TMP/bad-intent.json" --dp unix:///nonexistent/api.sock \
    --listen "unix://$MX_TMP/bad-cp.sock" >"$out" 2>&1
  rc=$?
  check "bad intent, $1: exit 2 with \"$(grep -v '^[0-9:.]* [0-9][0-9]\[' "$out" | tail -1 | sed "s|$MX_TMP/||")\"" \
    exited_saying "$rc" 2 "$out" "$3"
}
# exited_saying RC EXPECTED_RC FILE REGEX
exited_saying() { [ "$1" -eq "$2" ] && grep -qE -- "$4" "$3"; }
bad_intent "no PSK nor certificate" 'd["peers"][0]["psk"] = ""' 'peers\[0\]\.psk: is required'
bad_intent "a selector that is no prefix" 'd["peers"][0]["remote_selectors"] = ["10.0.1.0/33"]' \
  'peers\[0\]\.remote_selectors\[0\]'
bad_intent "an unknown field" 'd["peers"][0]["pks"] = "x"' 'pks'
bad_intent "an IKE proposal charon does not know" 'd["peers"][0]["ike_proposals"] = ["aes128-nonsense"]' \
  "invalid IKE proposal 'aes128-nonsense'"
bad_intent "a certificate file that is not there" \
  'd["peers"][0].update(psk="", certificate="/nonexistent.pem", private_key="/x", ca_certificate="/y")' \
  'peers\[0\]\.certificate: cannot read'
bad_intent "a static mapping with two prefix lengths" 'd["static_mappings"][0]["core_prefix"] = "100.64.0.0/16"' \
  'static_mappings\[0\]\.core_prefix: must be as long as tenant_prefix'
bad_intent "a static route that is a peer's remote selector" \
  'd["routes"].append({"tenant": "hosp-a", "prefix": "10.0.1.0/24", "blackhole": {}})' \
  'routes\[4\]\.prefix: a peer'
bad_intent "two peers with the same endpoints" 'd["peers"].append(dict(d["peers"][0], name="other", tunnel="t-other"))' \
  'peers\[1\]\.remote_address: another peer has the same'

# --- 1. PSK, the gateway initiates: AES-GCM-128 and AES-CBC-256+HMAC-SHA-256 -----------------
# cipher_round LABEL IKE ESP CIPHER_NAME
cipher_round() {
  local cipher=$4 tunnels sas route port dp_bytes seen rules
  begin "$1" "$2" "$3" || return
  tunnels=$(dp_json tunnels '[t["name"] for t in d]')
  check "$label: medix-dp has tunnel t-carrier-b ($tunnels)" grep -q t-carrier-b <<<"$tunnels"
  if ! gw_initiate; then
    cp_stop
    return
  fi
  sas=$(dp_json sas '" ".join(sorted("%s:%s" % ("in" if s.get("inbound") else "out", s.get("cipher")) for s in d if s["tunnel"] == "t-carrier-b"))')
  check "$label: medix-dp has one inbound and one outbound $cipher SA on t-carrier-b ($sas)" \
    test "$sas" = "in:$cipher out:$cipher"
  route=$(dp_json routes '[r["via"]["interface"] for r in d if r["tenant"] == "hosp-a" and r["prefix"] == "10.0.1.0/24" and "via" in r]')
  check "$label: route hosp-a 10.0.1.0/24 via t-carrier-b ($route)" test "$route" = '["t-carrier-b"]'
  port=$(dp_json tunnels '[t.get("encap_udp_port", 0) for t in d if t["name"] == "t-carrier-b"]')
  check "$label: the tunnel carries ESP in UDP to the gateway's port 4500 ($port)" test "$port" = "[4500]"

  check "$label: TCP $TCP_MIB MiB hospital -> archive (tenant archive), byte-identical" \
    transfer "$NS_HOSP" $AR_CORE "$label-up"
  seen=$(peer_seen archive "$label-up")
  check "$label: the archive saw the hospital as its core address ($seen)" test "$seen" = "$HOSP_CORE"
  check "$label: TCP $TCP_MIB MiB archive -> hospital, byte-identical" transfer "$NS_AR" $HOSP_CORE "$label-down"
  seen=$(peer_seen hosp "$label-down")
  check "$label: the hospital saw the archive as its core address ($seen)" test "$seen" = "$AR_CORE"
  rules=$(ctl -o json counters | mx_json - '" ".join("%s:%s" % (r["name"], r.get("matched", 0)) for r in d.get("policy_rules", []))')
  check "$label: the flows crossed the core under both policy rules ($rules)" \
    grep -qE 'hosp-a-to-archive:[1-9].*archive-to-hosp-a:[1-9]|archive-to-hosp-a:[1-9].*hosp-a-to-archive:[1-9]' <<<"$rules"
  dp_bytes=$(ctl -o json counters | mx_json - 'sum(int(s.get("bytes", 0)) for s in d.get("sas", []) if s.get("tunnel") == "t-carrier-b")')
  check "$label: medix-dp counted the transfers on the SAs ($dp_bytes bytes)" \
    test "${dp_bytes:-0}" -gt $((2 * TCP_MIB * 1024 * 1024))
  check "$label: DICOM study ($DICOM_IMAGES CT images) hospital -> archive with dcmtk, complete and byte-identical" \
    dicom_send "$label"
  # medixctl's views, from medix-cp: the CHILD_SA with medix-dp's counters (through query_sa).
  ctl peers >"$MX_TMP/peers-$label.txt" 2>&1
  sed 's/^/  | /' "$MX_TMP/peers-$label.txt"
  ctl -o json peer carrier-b >"$MX_TMP/peer-$label.json" 2>&1
  check "$label: medixctl peer: IKE_SA ESTABLISHED, CHILD_SA INSTALLED with medix-dp's byte counts" \
    json_true "$MX_TMP/peer-$label.json" \
    'any(i["state"] == "ESTABLISHED" and any(c["state"] == "INSTALLED" and int(c["bytes_in"]) > 0 and int(c["bytes_out"]) > 0 for c in i["child_sas"]) for i in d["peers"][0]["ike_sas"])'
  check "$label: metrics: medix_cp_peer_up{peer=carrier-b} 1, a CHILD_SA installed, ike_up and child_up events" \
    eval 'metric_is "medix_cp_peer_up{peer=\"carrier-b\"}" -eq 1 && metric_is "medix_cp_peers{state=\"up\"}" -eq 1 &&
      metric_is "medix_cp_peer_child_sas{peer=\"carrier-b\"}" -eq 1 &&
      metric_is "medix_cp_ike_events_total{event=\"ike_up\"}" -ge 1 &&
      metric_is "medix_cp_ike_events_total{event=\"child_up\"}" -ge 1'
  finish
}

cipher_round gcm "aes128gcm16-prfsha256-x25519" "aes128gcm16" AES_GCM_128
cipher_round cbc "aes256-sha256-modp2048" "aes256-sha256" AES_CBC_256
AUTH=x509
cipher_round x509-gcm "aes128gcm16-prfsha256-x25519" "aes128gcm16" AES_GCM_128
cipher_round x509-cbc "aes256-sha256-modp2048" "aes256-sha256" AES_CBC_256

# refused LABEL WHAT REASON_REGEX: the gateway's initiate fails, medix-cp logs a reason matching
# REASON_REGEX, nothing reaches medix-dp; medix-cp stops.
refused() {
  local what=$2 reason
  if swan --initiate --child hosp --timeout 10 >"$MX_TMP/initiate-$label.log" 2>&1; then
    fail "$label: the gateway with $what got a tunnel"
  else
    pass "$label: the gateway with $what is refused"
  fi
  reason=$(grep -m1 -E "$3" "$CP_LOG" | sed -E 's/^[0-9:.]+ [0-9]+\[[A-Z]+\] (<[^>]*> )?//')
  check "$label: medix-cp logs why (${reason:-nothing matching '$3'})" test -n "$reason"
  ctl peer carrier-b errors >"$MX_TMP/errors-$label.txt" 2>&1
  sed 's/^/  | /' "$MX_TMP/errors-$label.txt"
  check "$label: medixctl peer carrier-b errors shows it" grep -qE "$3" "$MX_TMP/errors-$label.txt"
  check "$label: no SA in medix-dp" test "$(dp_sas)" = 0
  check "$label: no route in medix-dp" test "$(dp_route)" = 0
  check "$label: medix-cp stops cleanly on SIGTERM" cp_stop
}

# --- X.509 refusals: a certificate of another CA, an expired one ---------------------------
gw_cert gw-foreign
if begin x509-foreign-ca "aes128gcm16-prfsha256-x25519" "aes128gcm16"; then
  refused x509-foreign-ca "a certificate from another CA" 'no trusted .* public key found|constraint check failed|not trusted'
fi
gw_cert gw-expired
if begin x509-expired "aes128gcm16-prfsha256-x25519" "aes128gcm16"; then
  refused x509-expired "an expired certificate" 'certificate invalid \(valid from'
fi
gw_cert gw
AUTH=psk

# --- 2. medix-cp initiates ----------------------------------------------------------------------
if begin cp-initiates "aes128gcm16-prfsha256-x25519" "aes128gcm16"; then
  # Again, with "initiate": the gateway's config is loaded now.
  cp_stop
  intent aes128gcm16 ', "initiate": true' >"$MX_TMP/intent-$label.json"
  t0=$(now_ms)
  if cp_start "$MX_TMP/intent-$label.json"; then
    first_ping "$t0" && check "$label: TCP $TCP_MIB MiB hospital -> archive, byte-identical" \
      transfer "$NS_HOSP" $AR_CORE "$label-up"
    check "$label: medix-cp's IKE_SA_INIT went out through medix-dp" \
      grep -q 'generating IKE_SA_INIT request' "$CP_LOG"
    finish
  else
    fail "$label: medix-cp restarted with initiate"
  fi
fi

# --- 3. rekeys on time from both sides under traffic ----------------------------------------
# For REKEY_S seconds, under two sequenced UDP streams and DICOM studies, the CHILD_SA is rekeyed
# every 3-4 s by medix-cp's lifetime timers (soft expiry; the gateway's own 6 s never come), and
# the gateway starts rekeys too (swanctl --rekey, twice): nothing may be lost.
REKEY_S=${IKE_REKEY_SECONDS:-20}
if begin rekey "aes128gcm16-prfsha256-x25519" "aes128gcm16" ', "child_rekey_seconds": 4, "child_life_seconds": 5' \
  "$(printf '        rekey_time = 6s\n        life_time = 8s\n        rand_time = 0s')"; then
  if gw_initiate; then
    T=$MX_REPO/test/hitless/traffic.py
    rm -f "$MX_TMP"/ready-*
    ip netns exec "$NS_AR" "$MX_PY" "$T" receive 6000 --out "$MX_TMP/recv-up.json" \
      --sent-file "$MX_TMP/sent-up.json" --ready "$MX_TMP/ready-up" &
    r1=$!
    ip netns exec "$NS_HOSP" "$MX_PY" "$T" receive 6000 --out "$MX_TMP/recv-down.json" \
      --sent-file "$MX_TMP/sent-down.json" --ready "$MX_TMP/ready-down" &
    r2=$!
    for ((i = 0; i < 50; i++)); do [ -e "$MX_TMP/ready-up" ] && [ -e "$MX_TMP/ready-down" ] && break; sleep 0.1; done
    ip netns exec "$NS_HOSP" "$MX_PY" "$T" send $AR_CORE 6000 --pps 500 --max-seconds "$REKEY_S" \
      --out "$MX_TMP/sent-up.json" &
    s1=$!
    ip netns exec "$NS_AR" "$MX_PY" "$T" send $HOSP_CORE 6000 --pps 500 --max-seconds "$REKEY_S" \
      --out "$MX_TMP/sent-down.json" &
    s2=$!
    # And DICOM studies, one after the other, while the streams and the rekeys go on.
    (
      n=0 ok=0
      while [ $n -lt 8 ] && mx_alive $s1; do
        n=$((n + 1))
        dicom_send "$label-$n" && ok=$((ok + 1))
      done
      echo "$ok/$n" >"$MX_TMP/dicom-rekey.txt"
    ) &
    d1=$!
    # The gateway rekeys too, between medix-cp's timers.
    (
      for _ in 1 2; do
        sleep 3.5
        swan --rekey --child hosp >>"$MX_TMP/gw-rekey.log" 2>&1
      done
    ) &
    g1=$!
    wait $s1 $s2 $d1 $g1
    sleep 1 # the last datagrams in flight
    check "$label: DICOM studies sent during the rekeys all byte-identical ($(cat "$MX_TMP/dicom-rekey.txt"))" \
      grep -qE '^([1-9][0-9]*)/\1$' "$MX_TMP/dicom-rekey.txt"
    kill -TERM $r1 $r2 2>/dev/null
    wait $r1 $r2 2>/dev/null
    for dir in up down; do
      info "$dir: $(mx_json "$MX_TMP/recv-$dir.json" '{k: d.get(k) for k in ("expect", "received", "missing_count", "duplicates", "foreign")}')"
      check "$label: UDP $dir at 500/s for ${REKEY_S} s across the rekeys: nothing lost or duplicated" \
        json_true "$MX_TMP/recv-$dir.json" 'd["missing_count"] == 0 and d["duplicates"] == 0 and d["expect"] > 0'
    done
    timers=$(grep -c 'soft time lifetime reached' "$CP_LOG")
    ours=$(grep -c 'generating CREATE_CHILD_SA request' "$CP_LOG")
    theirs=$(grep -c 'parsed CREATE_CHILD_SA request' "$CP_LOG")
    check "$label: CHILD_SA rekeys started by medix-cp's timers ($timers soft expiries, $ours rekeys)" \
      test "$timers" -ge 3 -a "$ours" -ge 3
    check "$label: ... and by the gateway ($theirs)" test "$theirs" -ge 2
    check "$label: metrics: medix_cp_ike_events_total{event=child_rekey} counts the rekeys ($(cp_metric 'medix_cp_ike_events_total{event="child_rekey"}'))" \
      metric_is 'medix_cp_ike_events_total{event="child_rekey"}' -ge 3
    ike_sas=$(grep -c 'IKE_SA carrier-b\[[0-9]*\] established' "$CP_LOG")
    check "$label: one IKE_SA all along ($ike_sas established)" test "$ike_sas" = 1
    # (Rekeyed inbound SAs stay for charon's delete_rekeyed_delay, 5 s: several at a time here.
    # That none is left behind is checked when the gateway closes, below.)
    info "SAs in medix-dp now: $(dp_sas)"
  fi
  finish
fi

# --- medix-dp restarts under traffic: medix-cp replays tunnel, SAs and route, and rekeys the
# CHILD_SA (the new medix-dp's sequence numbers start again); the IKE_SA stays ------------------
if begin dp-restart "aes128gcm16-prfsha256-x25519" "aes128gcm16"; then
  if gw_initiate; then
    T=$MX_REPO/test/hitless/traffic.py
    rm -f "$MX_TMP"/ready-*
    ip netns exec "$NS_AR" "$MX_PY" "$T" receive 6001 --out "$MX_TMP/recv-restart.json" \
      --sent-file "$MX_TMP/sent-restart.json" --ready "$MX_TMP/ready-restart" &
    r1=$!
    for ((i = 0; i < 50; i++)); do [ -e "$MX_TMP/ready-restart" ] && break; sleep 0.1; done
    ip netns exec "$NS_HOSP" "$MX_PY" "$T" send $AR_CORE 6001 --pps 200 --max-seconds 15 \
      --out "$MX_TMP/sent-restart.json" &
    s1=$!
    sleep 3
    t0=$(now_ms)
    mx_stop_dp 10
    if mx_start_dp "$MX_TMP/dp.json" && attach_tap; then
      pass "$label: medix-dp restarted ($(($(now_ms) - t0)) ms) and its new TAP moved to medix-cp"
      first_ping "$t0"
    else
      fail "$label: medix-dp restarted"
    fi
    wait $s1
    sleep 1
    kill -TERM $r1 2>/dev/null
    wait $r1 2>/dev/null
    info "UDP hospital -> archive at 200/s: $(mx_json "$MX_TMP/recv-restart.json" '{k: d.get(k) for k in ("expect", "received", "missing_count", "last")}')"
    check "$label: the UDP stream resumed after the restart (its last datagrams arrived)" \
      json_true "$MX_TMP/recv-restart.json" 'd["last"] is not None and d["last"] >= d["expect"] - 20'
    check "$label: medix-cp replayed its state into the new medix-dp" grep -q 'medix-dp restarted: replayed' "$CP_LOG"
    ike_sas=$(grep -c 'IKE_SA carrier-b\[[0-9]*\] established' "$CP_LOG")
    check "$label: no new IKE_SA ($ike_sas established in all)" test "$ike_sas" = 1
    check "$label: TCP $TCP_MIB MiB hospital -> archive after the restart, byte-identical" \
      transfer "$NS_HOSP" $AR_CORE "$label-up"
    check "$label: TCP $TCP_MIB MiB archive -> hospital after the restart, byte-identical" \
      transfer "$NS_AR" $HOSP_CORE "$label-down"
  fi
  finish
fi

# --- medix-cp killed and started again: it removes what its predecessor left in medix-dp and
# brings the tunnel back (it initiates; the gateway replaces its old IKE_SA) --------------------
if begin cp-restart "aes128gcm16-prfsha256-x25519" "aes128gcm16" ', "initiate": true'; then
  # (The gateway had no config yet when this medix-cp initiated: once more.)
  cp_stop
  if cp_start "$MX_TMP/intent-$label.json" && first_ping "$(now_ms)"; then
    old=$(dp_json sas '" ".join(sorted("%x" % s["spi"] for s in d if s["tunnel"] == "t-carrier-b"))')
    kill -KILL "$cp_pid"
    wait "$cp_pid" 2>/dev/null
    cp_pid=
    check "$label: medix-cp killed: its SAs stay in medix-dp ($old)" test -n "$old"
    # While it is down its intent loses a policy rule: the new medix-cp deletes it from medix-dp.
    "$MX_PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); d["policy_rules"] = d["policy_rules"][:1]; json.dump(d, open(sys.argv[1], "w"))' \
      "$MX_TMP/intent-$label.json"
    t0=$(now_ms)
    if cp_start "$MX_TMP/intent-$label.json"; then
      grep -m1 'medix-dp prepared' "$CP_LOG" | sed 's/^/  /'
      grep -m1 'no longer in the intent' "$CP_LOG" | sed 's/^/  /'
      rules=$(dp_json policy-rules '" ".join(r["name"] for r in d)')
      check "$label: the rule it no longer has is gone from medix-dp ($rules)" test "$rules" = hosp-a-to-archive
      first_ping "$t0"
      new=$(dp_json sas '" ".join(sorted("%x" % s["spi"] for s in d if s["tunnel"] == "t-carrier-b"))')
      check "$label: medix-dp holds only the new SAs ($new; the old ones were $old)" \
        test -n "$new" -a "$(comm -12 <(tr ' ' '\n' <<<"$old" | sort) <(tr ' ' '\n' <<<"$new" | sort))" = ""
      check "$label: TCP $TCP_MIB MiB hospital -> archive, byte-identical" transfer "$NS_HOSP" $AR_CORE "$label-up"
    else
      fail "$label: medix-cp started again"
    fi
  fi
  finish
fi

# --- medixctl drives a peer: initiate, rekey, terminate -----------------------------------------
if begin medixctl "aes128gcm16-prfsha256-x25519" "aes128gcm16"; then
  t0=$(now_ms)
  check "$label: medixctl peer carrier-b initiate" quiet ctl peer carrier-b initiate
  if first_ping "$t0"; then
    spi0=$(ctl -o json peer carrier-b | mx_json - '[c["spi_out"] for i in d["peers"][0]["ike_sas"] for c in i["child_sas"] if c["state"] == "INSTALLED"]')
    check "$label: medixctl peer carrier-b rekey" quiet ctl peer carrier-b rekey
    spi1=$spi0
    for ((i = 0; i < 50; i++)); do
      spi1=$(ctl -o json peer carrier-b | mx_json - '[c["spi_out"] for i in d["peers"][0]["ike_sas"] for c in i["child_sas"] if c["state"] == "INSTALLED"]')
      [ "$spi1" != "$spi0" ] && break
      sleep 0.1
    done
    check "$label: ... the CHILD_SA was rekeyed (outbound SPI $spi0 -> $spi1)" test "$spi1" != "$spi0"
    check "$label: traffic after the rekey" quiet ip netns exec "$NS_HOSP" ping -c1 -W1 -q $AR_CORE
    check "$label: medixctl peer carrier-b terminate" quiet ctl peer carrier-b terminate
    for ((i = 0; i < 50; i++)); do [ "$(dp_sas)" = 0 ] && break; sleep 0.1; done
    check "$label: ... no SA left in medix-dp" test "$(dp_sas)" = 0
  fi
  finish
fi

# --- the intent replaced through medix-cp's API (medixctl intent apply) ----------------------
# edited_intent ESP PYTHON_EDIT: the intent for ESP, edited (`d` is its JSON).
edited_intent() {
  intent "$1" | "$MX_PY" -c 'import json, sys; d = json.load(sys.stdin); exec(sys.argv[1]); print(json.dumps(d))' "$2"
}
# gw_ike: the gateway's IKE_SA's SPIs ("initiator responder"); gw_child_in: its CHILD_SA's inbound SPI.
gw_ike() { swan --list-sas --raw 2>/dev/null | grep -o 'initiator-spi=[0-9a-f]* responder-spi=[0-9a-f]*' | head -1; }
gw_child_in() { swan --list-sas --raw 2>/dev/null | grep -o 'spi-in=[0-9a-f]*' | head -1; }
# lifetimes_in_place: a peer's lifetimes alone changed (docs/cp.md, "Lifetimes changed in place")
# keep its IKE_SA and CHILD_SA (the same SPIs at the gateway just after, no DELETE); the new
# times, shorter than their ages allow, bring their rekeys forward: the CHILD_SA's by medix-cp's
# timer, the IKE_SA's by charon's rekey job (a CREATE_CHILD_SA, no IKE_SA_INIT).
lifetimes_in_place() {
  local rekey_in ages ike0 child0 inits0 mark out
  # Both at least 6 s old first: the new lifetimes (their ages and a little more) are then long
  # enough that the SAs they make do not rekey again before the round goes on.
  sleep 5
  ages=$(ctl -o json peers | mx_json - '"%s %s" % (d["peers"][0]["ike_sas"][0]["established_seconds"], d["peers"][0]["ike_sas"][0]["child_sas"][0]["installed_seconds"])')
  ike0=$(gw_ike) child0=$(gw_child_in) inits0=$(grep -c 'parsed IKE_SA_INIT request' "$CP_LOG") mark=$(wc -l <"$CP_LOG")
  # CHILD_SA: due 1-2 s from now (its jitter under 1 s); IKE_SA: due 3 s from now less its jitter.
  edited_intent aes128gcm16 "a, c = map(int, '${ages:-0 0}'.split()); d['peers'][0].update(ike_rekey_seconds=a + 3,
    child_rekey_seconds=c + 2, child_life_seconds=c + 3)" >"$MX_TMP/lifetimes.json"
  out=$(ctl intent apply "$MX_TMP/lifetimes.json" 2>&1)
  # The CHILD_SA's rekey brought forward to 1-2 s from now: medixctl peers says that (charon's own
  # time from its install is still far off). Read at once: it is rekeyed soon.
  rekey_in=$(ctl -o json peers | mx_json - 'd["peers"][0]["ike_sas"][0]["child_sas"][0].get("rekey_in_seconds", 0)')
  check "$label: lifetimes alone changed (the IKE_SA's and CHILD_SA's ages: $ages s): $out" \
    grep -q "lifetimes changed in place: 1 IKE_SA(s) kept, [12] SA rekey(s) brought forward" "$CP_LOG"
  check "$label: ... the same IKE_SA and CHILD_SA at the gateway ($ike0, $child0)" \
    test -n "$ike0" -a "$(gw_ike)" = "$ike0" -a "$(gw_child_in)" = "$child0"
  check "$label: ... medixctl peers: the CHILD_SA's rekey in ${rekey_in:-?} s, the brought-forward time" \
    test -n "$rekey_in" -a "${rekey_in:--1}" -ge 0 -a "${rekey_in:-9}" -le 2
  check "$label: ... the CHILD_SA rekeyed by medix-cp's timer at the new time" \
    mx_wait_eval 8 'tail -n +$((mark + 1)) "$CP_LOG" | grep -q "soft time lifetime reached" && c=$(gw_child_in) && [ -n "$c" ] && [ "$c" != "$child0" ]'
  check "$label: ... the IKE_SA rekeyed by charon's job at the new time (new SPIs), no IKE_SA_INIT" \
    mx_wait_eval 10 'tail -n +$((mark + 1)) "$CP_LOG" | grep -q "IKE_SA carrier-b\[[0-9]*\] rekeyed between" && i=$(gw_ike) &&
      [ -n "$i" ] && [ "$i" != "$ike0" ] && [ "$(grep -c "parsed IKE_SA_INIT request" "$CP_LOG")" = "$inits0" ]'
  check "$label: ... the tunnel carries traffic" quiet ip netns exec "$NS_HOSP" ping -c1 -W1 $AR_CORE
  info "$label: lifetimes in place: $(tail -n +$((mark + 1)) "$CP_LOG" | grep -o 'lifetimes changed in place, rekeying in.*' | head -1); IKE_SA $ike0 -> $(gw_ike)"
}
if begin intent-api "aes128gcm16-prfsha256-x25519" "aes128gcm16"; then
  if gw_initiate; then
    file=$MX_TMP/intent-$label.json
    cp "$file" "$MX_TMP/intent-before.json"
    # Refused by validation, and by medix-dp (no such tenant): nothing changes, file included.
    edited_intent aes128gcm16 'd["peers"][0]["remote_selectors"] = ["10.0.1.0/40"]' >"$MX_TMP/bad1.json"
    edited_intent aes128gcm16 'd["peers"][0]["tenant"] = "no-such-tenant"' >"$MX_TMP/bad2.json"
    # The rest of the IX: a route into a tenant medix-dp does not have (refused by medix-dp,
    # named by the intent's field), a static mapping of two lengths (refused by medix-cp).
    edited_intent aes128gcm16 'd["routes"].append({"tenant": "ix", "prefix": "100.99.0.0/16", "next_tenant": "nowhere"})' \
      >"$MX_TMP/bad3.json"
    edited_intent aes128gcm16 'd["static_mappings"][1]["core_prefix"] = "100.100.1.0/25"' >"$MX_TMP/bad4.json"
    declare -A bad_says=([bad1]='peers\[0\]\.remote_selectors' [bad2]='peers\[0\]' [bad3]='routes\[4\]'
      [bad4]='static_mappings\[1\]\.core_prefix')
    for bad in bad1 bad2 bad3 bad4; do
      ctl intent apply "$MX_TMP/$bad.json" >"$MX_TMP/$bad.out" 2>&1
      rc=$?
      check "$label: medixctl intent apply $bad refused: $(tail -1 "$MX_TMP/$bad.out")" \
        exited_saying $rc 1 "$MX_TMP/$bad.out" "INVALID_ARGUMENT.*${bad_says[$bad]}"
      check "$label: ... the intent file is unchanged" cmp -s "$file" "$MX_TMP/intent-before.json"
      check "$label: ... the tunnel still carries traffic" quiet ip netns exec "$NS_HOSP" ping -c1 -W1 $AR_CORE
    done
    lifetimes_in_place
    # Changed (ESP proposal): medix-cp closes the old IKE_SA; the gateway, reconfigured, comes back.
    gw_conf "aes128gcm16-prfsha256-x25519" "aes256-sha256"
    intent aes256-sha256 >"$MX_TMP/changed.json"
    check "$label: medixctl intent apply: $(ctl intent apply "$MX_TMP/changed.json" 2>&1)" \
      grep -q '"aes256-sha256"' "$file"
    gw_initiate
    sas=$(dp_json sas '" ".join(sorted(s.get("cipher") for s in d if s["tunnel"] == "t-carrier-b"))')
    check "$label: the new SAs are AES-CBC-256 ($sas)" test "$sas" = "AES_CBC_256 AES_CBC_256"
    # Removed: its IKE_SA closed, its tunnel deleted from medix-dp.
    echo '{"schema_version": 1}' >"$MX_TMP/empty.json"
    check "$label: medixctl intent apply (no peer): $(ctl intent apply "$MX_TMP/empty.json" 2>&1)" \
      test "$(dp_json tunnels 'len([t for t in d if t["name"] == "t-carrier-b"])')" = 0
    check "$label: ... no SA and no route left" test "$(dp_sas)" = 0 -a "$(dp_route)" = 0
    left=$(for k in tenants interfaces routes static-mappings napt-pools policy-rules; do dp_json $k 'len(d)'; done | tr '\n' ' ')
    left+=$(dp_json neighbours 'len([n for n in d if not n.get("learned")])')
    check "$label: ... nor tenants, interfaces, routes, mappings, pools, rules, neighbours medix-cp had made ($left)" \
      test "$left" = "0 0 0 0 0 0 0"
    check "$label: ... medixctl peers lists none" test -z "$(ctl -o json peers | mx_json - 'd.get("peers", [])' | tr -d '[]')"
    # And back: the whole intent again, the static part recreated, the tunnel comes up.
    intent aes128gcm16 >"$MX_TMP/again.json"
    check "$label: medixctl intent apply (all again): $(ctl intent apply "$MX_TMP/again.json" 2>&1)" \
      test "$(dp_json tenants 'len(d)')" = 4
    gw_conf "aes128gcm16-prfsha256-x25519" "aes128gcm16"
    gw_initiate
  fi
  finish
fi

# --- 4. rekeys on volume: medix-dp's SOFT_EXPIRED events ------------------------------------
if begin volume "aes128gcm16-prfsha256-x25519" "aes128gcm16" \
  ', "child_rekey_bytes": "1000000", "child_life_bytes": "100000000"'; then
  if gw_initiate; then
    check "$label: TCP $TCP_MIB MiB hospital -> archive across rekeys, byte-identical" \
      transfer "$NS_HOSP" $AR_CORE "$label-up"
    check "$label: TCP $TCP_MIB MiB archive -> hospital across rekeys, byte-identical" \
      transfer "$NS_AR" $HOSP_CORE "$label-down"
    sleep 1
    events=$(grep -c 'SOFT_EXPIRED after' "$CP_LOG")
    rekeys=$(grep -c 'generating CREATE_CHILD_SA request' "$CP_LOG")
    check "$label: medix-dp's SOFT_EXPIRED events ($events) made medix-cp rekey ($rekeys)" \
      test "$events" -ge 1 -a "$rekeys" -ge 1
  fi
  finish
fi

# --- 5. a wrong PSK, proposals that do not match: refused, nothing reaches medix-dp ---------
if begin wrong-psk "aes128gcm16-prfsha256-x25519" "aes128gcm16"; then
  gw_conf "aes128gcm16-prfsha256-x25519" "aes128gcm16" "" "$WRONG_PSK"
  refused wrong-psk "a wrong PSK" 'MAC mismatched|pre-shared key failed'
fi
if begin unknown-id "aes128gcm16-prfsha256-x25519" "aes128gcm16"; then
  # The gateway says it is someone no peer of the intent is: no peer config matches it.
  saved_id=$GW_ID
  GW_ID=gw.unknown.example
  gw_conf "aes128gcm16-prfsha256-x25519" "aes128gcm16"
  GW_ID=$saved_id
  refused unknown-id "an identity no peer has" 'no matching peer config'
fi
if begin no-proposal "aes128gcm16-prfsha256-x25519" "aes128gcm16"; then
  gw_conf "aes256gcm16-prfsha384-ecp384" "aes256gcm16"
  refused no-proposal "IKE proposals medix-cp does not accept" 'received proposals'
fi
if begin no-esp-proposal "aes128gcm16-prfsha256-x25519" "aes128gcm16"; then
  gw_conf "aes128gcm16-prfsha256-x25519" "aes256gcm16"
  refused no-esp-proposal "ESP proposals medix-cp does not accept" 'no acceptable proposal found'
fi

check "medix-dp is still running" mx_alive "$MX_DP_PID"

# --- last: no key or PSK in any log or error of the suite ---------------------------------------
# Everything medix-dp, medix-cp (each round's log, refused starts' output), medixctl, the gateway's
# charon and swanctl, and this script wrote under $MX_TMP, searched for the PSKs, the private keys
# of the PKI, any key of the intents, and every CHILD_SA key the gateway derived (keys.log, which
# medix-cp derived too and handed medix-dp); the files that hold them by right (intents, the PEM
# keys and the gateway's copy, its swanctl.conf, keys.log) are not searched, nor the DICOM images.
if grep -q "CHILD_SA up" "$MX_TMP/suite.log"; then
  check "the gateway logged the CHILD_SAs' keys for the key check (gw/keys.log)" \
    grep -q "encryption initiator key =>" "$GW/keys.log"
fi
pems=()
for key in "$PKI"/*.key "$GW"/swanctl/private/*.key; do pems+=(--pem "${key#"$MX_TMP"/}=$key"); done
keygrep_check pass fail --secret "PSK=$PSK" --secret "the wrong PSK=$WRONG_PSK" "${pems[@]}" \
  --strongswan-keys "$GW/keys.log" \
  --config "$MX_TMP"/*intent*.json "$MX_TMP"/{changed,empty,again,bad1,bad2,bad3,bad4,lifetimes}.json \
  --skip swanctl.conf --skip 'study/*' --skip 'archive-*' --scan "$MX_TMP"
echo "ike: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
