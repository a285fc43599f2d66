#!/usr/bin/env bash
# medix-cp on a full disk (issue 12, item 4): the intent file's directory is a tiny tmpfs.
#   - an ApplyIntent that cannot write the intent file fails with the true cause (the file and
#     "No space left on device"), and medix-dp and the intent file stay as they were, whole;
#   - with room again the same apply succeeds, and survives a medix-cp restart;
#   - medix-cp started on a full disk exits at once, naming the cause;
#   - and, while it runs: server reflection and grpc.health.v1 on its socket, its version, SIGHUP.
# medix-dp runs on a net_null port; medix-cp in a network namespace of its own (charon's IKE
# sockets stay out of the host's). Ends with "cp-disk-full: N passed, M failed".
#
# MEDIX_DP, MEDIX_CP and MEDIXCTL override the binaries (default: build/).
set -u
cd "$(dirname "$0")/../.."
# shellcheck source=test/lib/keygrep.sh
source test/lib/keygrep.sh
dp=${MEDIX_DP:-build/dataplane/medix-dp}
cp=${MEDIX_CP:-build/controlplane/medix-cp}
ctl=${MEDIXCTL:-build/controlplane/cli/medixctl}
py=/usr/bin/python3
prefix=medix-cp-disk-$$
tmp=$(mktemp -d /tmp/medix-cp-disk.XXXXXX)
state=$tmp/state
passed=0 failed=0
dp_pid= cp_pid=

cleanup() {
  [ -n "$cp_pid" ] && kill -KILL "$cp_pid" 2>/dev/null && wait "$cp_pid" 2>/dev/null
  [ -n "$dp_pid" ] && kill -TERM "$dp_pid" 2>/dev/null && wait "$dp_pid" 2>/dev/null
  mountpoint -q "$state" && umount "$state"
  [ -n "${MX_KEEP_TMP:-}" ] || rm -rf "$tmp" "/var/run/dpdk/$prefix"
}
trap cleanup EXIT

# What the suite prints, and what the programs it runs print into its variables, goes to
# $tmp/suite.log too: the last check searches it (and the daemons' logs) for the PSK.
say() { echo "$*"; echo "$*" >>"$tmp/suite.log"; }
pass() { say "PASS $1"; passed=$((passed + 1)); }
fail() {
  say "FAIL $1"
  [ -n "${2:-}" ] && sed 's/^/  | /' <<<"$2" | tail -12
  failed=$((failed + 1))
}
check() { # check NAME COMMAND...
  local name=$1; shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}
finish() {
  # Last: no byte of the PSK in medix-dp's or medix-cp's log, medixctl's output or its errors
  # (the intent files hold it by right and are not searched).
  keygrep_check pass fail --config "$tmp/next.json" "$state/intent.json" --skip 'filler.*' --scan "$tmp"
  echo "cp-disk-full: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}
ctl() { # medixctl's output and errors, kept in $tmp/medixctl.log too
  local out rc
  out=$(timeout 30 "$ctl" -p "$prefix" "$@" 2>&1)
  rc=$?
  printf '%s\n' "$out" | tee -a "$tmp/medixctl.log"
  return $rc
}
free_bytes() { $py -c 'import os, sys; s = os.statvfs(sys.argv[1]); print(s.f_bavail * s.f_frsize)' "$state"; }
# fill N: the tmpfs keeps N bytes free.
fill() { fallocate -l $(($(free_bytes) - $1)) "$state/filler.$RANDOM"; }

for binary in "$dp" "$cp" "$ctl"; do
  [ -x "$binary" ] || { fail "$binary is not built"; finish; }
done
mkdir -p "$state"
mount -t tmpfs -o size=256k,mode=0700 medix-cp-disk-test "$state" || { fail "mount a tmpfs"; finish; }

cat >"$tmp/dp.json" <<'JSON'
{"schema_version": 1, "ports": [{"name": "p0", "device": "net_null0"}], "settings": {"max_sessions": 4096}}
JSON
# The intent before, and the one applied: a new tenant and a peer, whose long PSK makes the
# intent file (4 pages) larger than FILE.owned (1 page), as a real IX's intent is.
STATIC='"tenants": [{"name": "carrier"}, {"name": "hosp"}],
 "interfaces": [{"name": "carrier", "tenant": "carrier", "port": "p0", "addresses": ["192.0.2.1/24"]}]'
echo "{\"schema_version\": 1, $STATIC}" >"$state/intent.json"
psk=$(head -c 9000 /dev/zero | tr '\0' k)
cat >"$tmp/next.json" <<JSON
{"schema_version": 1,
 "tenants": [{"name": "carrier"}, {"name": "hosp"}, {"name": "added"}],
 "interfaces": [{"name": "carrier", "tenant": "carrier", "port": "p0", "addresses": ["192.0.2.1/24"]}],
 "peers": [{"name": "gw", "tenant": "hosp", "underlay_tenant": "carrier", "tunnel": "t-gw",
   "local_address": "192.0.2.1", "remote_address": "192.0.2.2", "psk": "$psk",
   "ike_proposals": ["aes128gcm16-prfsha256-x25519"], "esp_proposals": ["aes128gcm16"],
   "local_selectors": ["100.100.1.0/24"], "remote_selectors": ["10.0.1.0/24"]}]}
JSON
cat >"$tmp/strongswan.conf" <<'EOF2'
medix-cp {
  port = 0
  port_nat_t = 0
}
EOF2

"$dp" --no-huge -m 512 --no-pci --log-level=error -l 0,1 --file-prefix "$prefix" --vdev net_null0 -- \
  --config "$tmp/dp.json" >"$tmp/dp.log" 2>&1 &
dp_pid=$!
for _ in $(seq 300); do grep -qs "^medix-dp: ready" "$tmp/dp.log" && break; kill -0 $dp_pid 2>/dev/null || break; sleep 0.1; done
grep -q "^medix-dp: ready" "$tmp/dp.log" || { fail "medix-dp starts" "$(cat "$tmp/dp.log")"; finish; }

# cp_start: medix-cp with the tmpfs's intent file; waits for its ready line.
cp_start() {
  : >"$tmp/cp.log"
  unshare --net "$cp" --intent "$state/intent.json" -p "$prefix" --strongswan-conf "$tmp/strongswan.conf" \
    --log-level 0 >"$tmp/cp.log" 2>&1 &
  cp_pid=$!
  for _ in $(seq 150); do
    grep -q "medix-cp: ready" "$tmp/cp.log" && return 0
    kill -0 $cp_pid 2>/dev/null || break
    sleep 0.1
  done
  tail -8 "$tmp/cp.log" | sed 's/^/  | /'
  return 1
}
cp_stop() {
  kill -TERM "$cp_pid" 2>/dev/null
  wait "$cp_pid"
  cp_pid=
}
has() { grep -qE "$2" <<<"$(ctl show "$1")"; } # has KIND REGEX: a line of `medixctl show KIND` matches

check "medix-cp starts with its intent on the tmpfs" cp_start || finish
check "medix-dp has the intent's tenants" has tenants '^hosp '

# 1. One page free: FILE.owned could be rewritten, the intent file cannot.
fill 4096
before=$(sha256sum <"$state/intent.json")
out=$(ctl intent apply "$tmp/next.json"); rc=$?
if [ $rc -ne 0 ] && grep -qF "$state/intent.json: No space left on device" <<<"$out"; then
  pass "a full disk: the apply fails naming the intent file and ENOSPC"
else
  fail "a full disk: exit $rc, want the intent file and \"No space left on device\"" "$out"
fi
check "a full disk: medix-dp did not get the new tenant" eval '! has tenants "^added "'
check "a full disk: medix-dp did not get the peer's tunnel" eval '! has tunnels "^t-gw "'
check "a full disk: the intent file is unchanged" test "$(sha256sum <"$state/intent.json")" = "$before"
check "a full disk: the intent file is whole JSON" $py -c 'import json, sys; json.load(open(sys.argv[1]))' "$state/intent.json"
left=$(cd "$state" && ls | grep -v '^filler\.' | tr '\n' ' ')
check "a full disk: no temporary file left ($left)" test "$left" = "intent.json intent.json.owned "
out=$(ctl intent show)
check "a full disk: medix-cp's running intent is the old one" eval '! grep -q added <<<"$out"'

# 2. Room again: the same apply goes through, and a restart keeps it.
rm -f "$state"/filler.*
out=$(ctl intent apply "$tmp/next.json"); rc=$?
if [ $rc -eq 0 ]; then pass "room again: the apply succeeds"; else fail "room again: exit $rc" "$out"; fi
check "room again: medix-dp has the new tenant" has tenants '^added '
check "room again: medix-dp has the peer's tunnel" has tunnels '^t-gw '
check "room again: the intent file has the peer" grep -q '"name": "gw"' "$state/intent.json"
# What medixctl shows of the intent names the peer; its PSK is for the key check to miss.
check "medixctl -o json intent show: the peer" grep -q '"name": "gw"' <<<"$(ctl -o json intent show)"
cp_stop
check "medix-cp restarts" cp_start || finish
check "after the restart: medix-dp still has the new tenant" has tenants '^added '
check "after the restart: medix-dp still has the peer's tunnel" has tunnels '^t-gw '
# What a generic gRPC tool sees (test/api/grpcstd.py): server reflection lists the services,
# describes ours, and grpc.health.v1 answers SERVING for the server and for ControlPlane.
out=$(timeout 60 $py test/api/grpcstd.py "unix:///var/run/dpdk/$prefix/cp.sock" medix.controlplane.v1.ControlPlane 2>&1)
rc=$?
echo "$out" >>"$tmp/grpcstd.log"
if [ $rc -eq 0 ] &&
  grep -qx "services: grpc.health.v1.Health grpc.reflection.v1alpha.ServerReflection medix.controlplane.v1.ControlPlane" <<<"$out" &&
  grep -q "^methods medix.controlplane.v1.ControlPlane: .*ApplyIntent" <<<"$out" &&
  [ "$(grep -c '^health .*: SERVING$' <<<"$out")" -eq 2 ]; then
  pass "medix-cp: server reflection lists and describes its services; health answers SERVING"
else
  fail "medix-cp: server reflection lists and describes its services; health answers SERVING" "$out"
fi
# medix-cp's version through its API, and SIGHUP: said, not fatal.
check "medixctl version: medix-cp's, with strongSwan and uptime" \
  grep -qE '^medix-cp  [0-9.]+ \(git [0-9a-f]+\+?\), strongSwan [0-9].*; up [0-9]+' <<<"$(ctl version)"
kill -HUP "$cp_pid"
sleep 0.3
check "medix-cp lives through SIGHUP and says so" eval 'kill -0 $cp_pid && grep -q "SIGHUP: nothing to reload" "$tmp/cp.log"'
cp_stop

# --log-level 4 (charon's dumps of keys and the PSK) is refused, before anything starts.
out=$("$cp" --intent "$state/intent.json" -p "$prefix" --log-level 4 2>&1)
rc=$?
echo "$out" >"$tmp/cp-log-level-4.log"
if [ $rc -eq 2 ] && grep -qF -- "--log-level 4: one of -1..3 (level 4 would log keys and PSKs)" <<<"$out"; then
  pass "medix-cp --log-level 4 (charon's key dumps): refused, exit 2"
else
  fail "medix-cp --log-level 4: exit $rc, want 2 and the reason" "$out"
fi
# And so is a strongswan.conf that sets a logger to level 4.
printf 'charon {\n  filelog {\n    keys {\n      path = %s\n      chd = 4\n    }\n  }\n}\n' "$tmp/keys.log" \
  >"$tmp/strongswan-4.conf"
out=$(timeout -s KILL 20 unshare --net "$cp" --intent "$state/intent.json" -p "$prefix" \
  --strongswan-conf "$tmp/strongswan-4.conf" 2>&1)
rc=$?
echo "$out" >"$tmp/cp-strongswan-4.log"
if [ $rc -ne 0 ] && grep -qF "charon.filelog.keys.chd = 4: level 4 would log keys and PSKs (at most 3)" <<<"$out"; then
  pass "medix-cp with a strongswan.conf logger at level 4: refused, naming the setting"
else
  fail "medix-cp with a strongswan.conf logger at level 4: exit $rc, want the setting named" "$out"
fi
# 3. medix-cp started on a full disk says why at once (not after waiting for medix-dp).
fill 0
start=$(date +%s%3N)
out=$(timeout -s KILL 20 unshare --net "$cp" --intent "$state/intent.json" -p "$prefix" \
  --strongswan-conf "$tmp/strongswan.conf" --log-level 0 2>&1)
rc=$? ms=$(($(date +%s%3N) - start))
echo "$out" >"$tmp/cp-full-disk-start.log"
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && [ $ms -lt 3000 ] && grep -qF "No space left on device" <<<"$out" &&
  grep -qF "$state" <<<"$out"; then
  pass "a full disk at start: exit $rc in $ms ms, naming the cause"
else
  fail "a full disk at start: exit $rc in $ms ms, want non-zero within 3 s with the directory and ENOSPC" "$out"
fi
check "a full disk at start: the intent file is unchanged" grep -q '"name": "gw"' "$state/intent.json"
finish
