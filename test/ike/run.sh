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
# medix-dp tenants: carrier-b (underlay, 192.0.2.1/24), hosp-a (the tunnel's inner side),
# archive; route leaks hosp-a 192.168.1.0/24 -> archive, archive 10.0.1.0/24 ->
# hosp-a; medix-cp adds hosp-a 10.0.1.0/24 via the tunnel when the CHILD_SA is up.
#
# Rounds (PSK): AES-GCM-128 and AES-CBC-256+HMAC-SHA-256-128, each: the gateway initiates;
# tunnel up, time to first packet through, SAs and route in medix-dp, TCP both ways, SA
# counters; the gateway terminates: SAs and route gone from medix-dp; medix-cp stops cleanly.
#
# Usage: test/ike/run.sh   (root; binaries from build/, or MEDIX_DP, MEDIX_CP, MEDIXCTL)
# Env: IKE_TCP_MIB (2), MX_KEEP_TMP=1 keeps the temp dir (configs and logs).
# Ends with "ike: N passed, M failed"; exit status 1 on any failure.
set -uo pipefail
IKE_DIR=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=test/netns/lib.sh
source "$IKE_DIR/../netns/lib.sh"

MX_CP=${MEDIX_CP:-$MX_REPO/build/cp/medix-cp}
MX_CTL=${MEDIXCTL:-$MX_REPO/build/cli/medixctl}
TCP_MIB=${IKE_TCP_MIB:-2}
PSK="medix-ike-test-psk-0123456789"
GW_ID=gw.carrier-b.example
IX_ID=ix.medix.example

passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
check() { # check DESCRIPTION COMMAND...: PASS if the command succeeds
  local what=$1; shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
info() { echo "  $*"; }
now_ms() { date +%s%3N; }

cp_pid=
gw_pid=
ike_cleanup() {
  local rc=$? pid
  set +e
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
  "tenants": [{"name": "carrier-b", "description": "carrier B's underlay"},
              {"name": "hosp-a", "description": "hospital A, behind carrier B's IPsec"},
              {"name": "archive", "description": "imaging archive"}],
  "interfaces": [
    {"name": "carrier-b", "tenant": "carrier-b", "port": "p0", "addresses": ["192.0.2.1/24"]},
    {"name": "archive-lan", "tenant": "archive", "port": "p1", "addresses": ["192.168.1.1/24"]}],
  "routes": [
    {"tenant": "hosp-a", "prefix": "192.168.1.0/24", "next_tenant": "archive"},
    {"tenant": "archive", "prefix": "10.0.1.0/24", "next_tenant": "hosp-a"}],
  "settings": {"exception_interface": "$TAP"}
}
EOF
mx_start_dp "$MX_TMP/dp.json" || mx_die "medix-dp did not start"
ctl() { "$MX_CTL" -p "$MX_PREFIX" "$@"; }
(
  set -e
  ip link set "$TAP" netns "$NS_CP"
  ip -n "$NS_CP" addr add 192.0.2.1/24 dev "$TAP"
  ip -n "$NS_CP" link set "$TAP" up
)
[ $? -eq 0 ] || mx_die "could not move the exception TAP $TAP into $NS_CP"

# --- the carrier's gateway: stock charon with kernel-libipsec ----------------------------------
GW=$MX_TMP/gw
mkdir -p "$GW/run" "$GW/swanctl"
cat >"$GW/strongswan.conf" <<EOF
charon {
  load = random nonce openssl kdf kernel-libipsec kernel-netlink socket-default vici
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
swan() { ip netns exec "$NS_GW" env STRONGSWAN_CONF="$GW/strongswan.conf" SWANCTL_DIR="$GW/swanctl" swanctl "$@"; }
for ((i = 0; i < 100; i++)); do [ -S "$GW/charon.vici" ] && break; sleep 0.1; done
[ -S "$GW/charon.vici" ] || mx_die "the gateway's charon did not start: $(tail -5 "$GW/charon.log")"

# --- helpers for the rounds --------------------------------------------------------------------
# gw_conf IKE_PROPOSAL ESP_PROPOSAL: the gateway's swanctl.conf (one key = value per line).
gw_conf() {
  cat >"$GW/swanctl/swanctl.conf" <<EOF
connections {
  ix {
    version = 2
    local_addrs = 192.0.2.2
    remote_addrs = 192.0.2.1
    proposals = $1
    local {
      auth = psk
      id = $GW_ID
    }
    remote {
      auth = psk
      id = $IX_ID
    }
    children {
      hosp {
        local_ts = 10.0.1.0/24
        remote_ts = 192.168.1.0/24
        esp_proposals = $2
      }
    }
  }
}
secrets {
  ike-ix {
    id-1 = $GW_ID
    id-2 = $IX_ID
    secret = "$PSK"
  }
}
EOF
  swan --load-all >"$GW/load.log" 2>&1
}

# cp_start INTENT_FILE: medix-cp in the TAP's namespace; waits for its ready line.
cp_start() {
  local log=$MX_TMP/medix-cp.log
  : >"$log"
  ip netns exec "$NS_CP" "$MX_CP" --intent "$1" -p "$MX_PREFIX" --log-level 1 >"$log" 2>&1 &
  cp_pid=$!
  for ((i = 0; i < 100; i++)); do
    grep -q 'medix-cp: ready' "$log" && return 0
    mx_alive "$cp_pid" || break
    sleep 0.1
  done
  tail -20 "$log" | sed 's/^/  | /'
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

# intent ESP_PROPOSALS...: medix-cp's intent for carrier B.
intent() {
  local esp
  esp=$(printf '"%s",' "$@")
  cat <<EOF
{
  "schema_version": 1,
  "peers": [{
    "name": "carrier-b", "tenant": "hosp-a", "underlay_tenant": "carrier-b", "tunnel": "t-carrier-b",
    "local_address": "192.0.2.1", "remote_address": "192.0.2.2",
    "local_id": "$IX_ID", "remote_id": "$GW_ID", "psk": "$PSK",
    "ike_proposals": ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048"],
    "esp_proposals": [${esp%,}],
    "local_selectors": ["192.168.1.0/24"], "remote_selectors": ["10.0.1.0/24"],
    "tcp_mss_clamp": 1300
  }]
}
EOF
}

# dp_json KIND EXPR: EXPR over `d`, the list of medix-dp's objects of KIND (medixctl -o json).
dp_json() { ctl -o json show "$1" | mx_json - "(lambda d: $2)([list(o.values())[0] for o in d['objects']])"; }

# transfer FROM TO_ADDR TO TAG: xfer.py from one host to another's server, sha256 compared.
transfer() {
  local from_ns=$1 addr=$2 tag=$3 out=$MX_TMP/xfer-$3.json
  ip netns exec "$from_ns" timeout 60 "$MX_PY" "$MX_LIB_DIR/xfer.py" send "$addr" 5001 "$tag" "$TCP_MIB" >"$out" 2>&1
  local rc=$?
  info "$(cat "$out")"
  [ $rc -eq 0 ] && mx_json "$out" 'd["sha256"] == d["server_sha256"] and d["bytes"] > 0' | grep -q True
}

# Servers on both hosts for the whole run.
: >"$MX_TMP/serve-archive.log" >"$MX_TMP/serve-hosp.log"
mx_bg archive "$MX_PY" "$MX_LIB_DIR/xfer.py" serve 192.168.1.10 5001 "$MX_TMP/serve-archive.log"
ip netns exec "$NS_HOSP" "$MX_PY" "$MX_LIB_DIR/xfer.py" serve 10.0.1.5 5001 "$MX_TMP/serve-hosp.log" &
disown # killed with its namespace at exit, without a job notice

# round LABEL IKE_PROPOSAL ESP_PROPOSAL CIPHER_NAME
round() {
  local label=$1 ike=$2 esp=$3 cipher=$4
  echo "== $label"
  intent "$esp" >"$MX_TMP/intent.json"
  if ! cp_start "$MX_TMP/intent.json"; then
    fail "$label: medix-cp started"
    return
  fi
  pass "$label: medix-cp started and brought medix-dp to its intent (tunnel t-carrier-b)"
  local tunnels
  tunnels=$(dp_json tunnels '[t["name"] for t in d]')
  check "$label: medix-dp has tunnel t-carrier-b ($tunnels)" grep -q t-carrier-b <<<"$tunnels"
  if ! gw_conf "$ike" "$esp"; then
    fail "$label: the gateway loaded its config: $(cat "$GW/load.log")"
    cp_stop
    return
  fi

  local t0 t_up t_first i
  t0=$(now_ms)
  if swan --initiate --child hosp --timeout 15 >"$MX_TMP/initiate-$label.log" 2>&1; then
    t_up=$(now_ms)
    pass "$label: the gateway initiated; CHILD_SA up in $((t_up - t0)) ms"
  else
    fail "$label: the gateway's initiate failed: $(tail -3 "$MX_TMP/initiate-$label.log")"
    tail -15 "$MX_TMP/medix-cp.log" | sed 's/^/  | /'
    cp_stop
    return
  fi
  t_first=
  for ((i = 0; i < 100; i++)); do
    if ip netns exec "$NS_HOSP" ping -c1 -W0.2 -q 192.168.1.10 >/dev/null 2>&1; then
      t_first=$(now_ms)
      break
    fi
  done
  if [ -n "$t_first" ]; then
    pass "$label: first ping hospital -> archive through the tunnel $((t_first - t0)) ms after initiate"
  else
    fail "$label: no ping from the hospital to the archive within 20 s"
  fi

  local sas
  sas=$(dp_json sas '" ".join(sorted("%s:%s" % ("in" if s.get("inbound") else "out", s.get("cipher")) for s in d if s["tunnel"] == "t-carrier-b"))')
  check "$label: medix-dp has one inbound and one outbound $cipher SA on t-carrier-b ($sas)" \
    test "$sas" = "in:$cipher out:$cipher"
  local route
  route=$(dp_json routes '[r["via"]["interface"] for r in d if r["tenant"] == "hosp-a" and r["prefix"] == "10.0.1.0/24" and "via" in r]')
  check "$label: route hosp-a 10.0.1.0/24 via t-carrier-b ($route)" test "$route" = '["t-carrier-b"]'
  local port
  port=$(dp_json tunnels '[t.get("encap_udp_port", 0) for t in d if t["name"] == "t-carrier-b"]')
  check "$label: the tunnel carries ESP in UDP to the gateway's port 4500 ($port)" test "$port" = "[4500]"

  check "$label: TCP $TCP_MIB MiB hospital -> archive (tenant archive), byte-identical" \
    transfer "$NS_HOSP" 192.168.1.10 "$label-up"
  check "$label: TCP $TCP_MIB MiB archive -> hospital, byte-identical" transfer "$NS_AR" 10.0.1.5 "$label-down"

  # Counters: charon's view (query_sa -> medix-dp GetCounters), as swanctl shows them.
  swan --list-sas >"$MX_TMP/list-sas-$label.log" 2>&1
  local dp_bytes
  dp_bytes=$(ctl -o json counters | mx_json - 'sum(int(s.get("bytes", 0)) for s in d.get("sas", []) if s.get("tunnel") == "t-carrier-b")')
  check "$label: medix-dp counted the transfers on the SAs ($dp_bytes bytes)" \
    test "${dp_bytes:-0}" -gt $((2 * TCP_MIB * 1024 * 1024))

  # The gateway closes: charon deletes the CHILD_SA, medix-cp the SAs and the route.
  swan --terminate --ike ix --timeout 10 >"$MX_TMP/terminate-$label.log" 2>&1
  local left=
  for ((i = 0; i < 50; i++)); do
    left=$(dp_json sas 'len([s for s in d if s["tunnel"] == "t-carrier-b"])')
    [ "$left" = 0 ] && break
    sleep 0.1
  done
  check "$label: after the gateway's DELETE, medix-dp has no SA on t-carrier-b ($left left)" test "$left" = 0
  route=$(dp_json routes 'len([r for r in d if r["tenant"] == "hosp-a" and r["prefix"] == "10.0.1.0/24"])')
  check "$label: ... and no route to 10.0.1.0/24 in hosp-a" test "$route" = 0
  check "$label: medix-cp stops cleanly on SIGTERM" cp_stop
}

round gcm "aes128gcm16-prfsha256-x25519" "aes128gcm16" AES_GCM_128
round cbc "aes256-sha256-modp2048" "aes256-sha256" AES_CBC_256

check "medix-dp is still running" mx_alive "$MX_DP_PID"
echo "ike: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
