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
