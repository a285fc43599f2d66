#!/usr/bin/env bash
# medix-dp's command line and start-up errors: a bad config names file, field and reason,
# exits 2, and nothing starts half-configured. Ends with "cli: N passed, M failed".
set -u
cd "$(dirname "$0")/../.."
# shellcheck source=test/lib/keygrep.sh
source test/lib/keygrep.sh
dp=build/dataplane/medix-dp
ctl=build/controlplane/cli/medixctl
tmp=$(mktemp -d /tmp/medix-cli.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1"; failed=$((failed + 1)); }
eal=(--no-huge -m 256 --no-pci --log-level=error -l 0,1)

# expect NAME STATUS PATTERN -- command...: the exit status and a line of its output.
expect() {
  local name=$1 status=$2 pattern=$3; shift 4
  local out rc
  out=$(timeout 60 "$@" 2>&1); rc=$?
  printf '%s\n' "$out" >>"$tmp/outputs.log" # searched for keys at the end
  if [ "$rc" -eq "$status" ] && grep -qF -- "$pattern" <<<"$out"; then
    echo "PASS $name"; passed=$((passed + 1))
  else
    echo "FAIL $name: exit $rc (want $status), output:"; sed 's/^/  | /' <<<"$out" | tail -8
    failed=$((failed + 1))
  fi
}

# expect_hidden NAME STATUS PATTERN SECRET -- command...: as expect, and SECRET (key material in
# the file) appears nowhere in the output.
expect_hidden() {
  local name=$1 status=$2 pattern=$3 secret=$4; shift 5
  local out rc
  out=$(timeout 60 "$@" 2>&1); rc=$?
  printf '%s\n' "$out" >>"$tmp/outputs.log"
  if [ "$rc" -eq "$status" ] && grep -qF -- "$pattern" <<<"$out" && ! grep -qF -- "$secret" <<<"$out"; then
    echo "PASS $name"; passed=$((passed + 1))
  else
    echo "FAIL $name: exit $rc (want $status, \"$pattern\" and no \"$secret\"), output:"
    sed 's/^/  | /' <<<"$out" | tail -8
    failed=$((failed + 1))
  fi
}

cat >"$tmp/good.json" <<'JSON'
{"schema_version": 1,
 "ports": [{"name": "p0", "device": "net_null0"}],
 "tenants": [{"name": "t"}],
 "interfaces": [{"name": "i0", "tenant": "t", "port": "p0", "vlan": 10, "addresses": ["10.0.0.1/24"]}],
 "routes": [{"tenant": "t", "prefix": "0.0.0.0/0", "via": {"interface": "i0", "address": "10.0.0.254"}}]}
JSON
sed 's/"vlan": 10/"vlan": 5000/' "$tmp/good.json" >"$tmp/vlan.json"
sed 's/"schema_version": 1/"schema_version": 1, "tunnelz": []/' "$tmp/good.json" >"$tmp/unknown.json"
sed 's/"0.0.0.0\/0"/"10.0.0.0\/33"/' "$tmp/good.json" >"$tmp/prefix.json"
sed 's/"tenant": "t", "port"/"port"/' "$tmp/good.json" >"$tmp/missing.json"
head -c 60 "$tmp/good.json" >"$tmp/truncated.json"
sed 's/"schema_version": 1/"schema_version": 1, "settings": {"arp_pending_limit": 4097}/' "$tmp/good.json" >"$tmp/pending.json"
sed 's/"schema_version": 1/"schema_version": 1, "settings": {"arp_pending_limit": 4096}/' "$tmp/good.json" \
  >"$tmp/pending-most.json"
sed 's/net_null0/net_pcap0/' "$tmp/good.json" >"$tmp/pcap.json"
printf '\xd4\xc3\xb2\xa1\x02\x00\x04\x00\0\0\0\0\0\0\0\0\xff\xff\0\0\x01\0\0\0' >"$tmp/empty.pcap"

expect "no --config: usage" 2 "usage: medix-dp" -- $dp "${eal[@]}" --
expect "unknown option" 2 "unknown option --frobnicate" -- $dp "${eal[@]}" -- --config "$tmp/good.json" --frobnicate
expect "missing file" 2 "$tmp/none.json: cannot open the file" -- $dp -- --config "$tmp/none.json"
expect "--check accepts a good file" 0 "$tmp/good.json: ok" -- $dp -- --config "$tmp/good.json" --check
expect "--check with HA sync counts each worker's sync rings" 0 "1 worker x 16384 records out, 65536 in, 56 B each" -- \
  $dp -l 0,1 -- --config "$tmp/good.json" --check --ha-sync-local 127.0.0.1:1 --ha-sync-peer 127.0.0.1:2 \
  --ha-sync-key-file /nonexistent
expect "VLAN out of range names the field" 2 "$tmp/vlan.json: interfaces[0].vlan: 5000 is out of range 0..4094" -- \
  $dp -- --config "$tmp/vlan.json" --check
expect "unknown field is an error" 2 "tunnelz" -- $dp -- --config "$tmp/unknown.json" --check
expect "invalid prefix names the route" 2 "routes[0].prefix: \"10.0.0.0/33\" is not a prefix" -- \
  $dp -- --config "$tmp/prefix.json" --check
expect "missing required field" 2 "interfaces[0].tenant: is required" -- $dp -- --config "$tmp/missing.json" --check
expect "truncated JSON names the file" 2 "$tmp/truncated.json: " -- $dp -- --config "$tmp/truncated.json" --check
expect "an ARP pending limit above the queue's 4096 names the field" 2 \
  "$tmp/pending.json: settings.arp_pending_limit: 4097 is above the most, 4096" -- \
  $dp -- --config "$tmp/pending.json" --check
expect "an ARP pending limit of 4096 is accepted" 0 "$tmp/pending-most.json: ok" -- \
  $dp -- --config "$tmp/pending-most.json" --check
expect "a port EAL does not have" 2 "ports[0].device: no DPDK port named \"net_null0\"" -- \
  $dp "${eal[@]}" --file-prefix "medix-cli-$$-1" -- --config "$tmp/good.json"
expect "fewer queues than workers" 2 "needs one per worker (2)" -- \
  $dp --no-huge -m 256 --no-pci --log-level=error --lcores 0@0,1@1,2@1 --file-prefix "medix-cli-$$-2" \
  --vdev "net_pcap0,rx_pcap=$tmp/empty.pcap,tx_pcap=$tmp/out.pcap" -- --config "$tmp/pcap.json"

# Key material never reaches the output: a key that is not base64, a key given as a number,
# a syntax error right beside a key; medixctl reads the same files before it connects.
sed 's/"routes"/"sas": [{"spi": 4096, "tunnel": "t", "cipher_key": "SECRETKEY-not*base64"}], "routes"/' \
  "$tmp/good.json" >"$tmp/badkey.json"
sed 's/"routes"/"sas": [{"spi": 4096, "integrity_key": 900123456789}], "routes"/' "$tmp/good.json" >"$tmp/numkey.json"
sed 's/"routes"/"sas": [{"spi": 4096, "cipher_key": SECRETKEY}], "routes"/' "$tmp/good.json" >"$tmp/synkey.json"
printf '{"schema_version": 1, "peers": [{"name": "c", "psk": 900123456789}]}' >"$tmp/numpsk.json"
expect_hidden "a key that is not base64 is named, not shown" 2 "$tmp/badkey.json: sas[0].cipher_key: is not base64" \
  SECRETKEY -- $dp -- --config "$tmp/badkey.json" --check
expect_hidden "a key that is a number is named, not shown" 2 "sas[0].integrity_key: is not base64" 900123456789 -- \
  $dp -- --config "$tmp/numkey.json" --check
expect_hidden "a syntax error beside a key: line and column, not the text" 2 "Unexpected token at line 5, column" \
  SECRETKEY -- $dp -- --config "$tmp/synkey.json" --check
expect_hidden "medixctl apply: the key is named, not shown" 1 "sas[0].cipher_key: is not base64" SECRETKEY -- \
  $ctl -p "medix-cli-none-$$" apply "$tmp/badkey.json"
expect_hidden "medixctl intent apply: a PSK that does not parse is not shown" 1 "peers[0].psk: is not a valid STRING" \
  900123456789 -- $ctl -p "medix-cli-none-$$" intent apply "$tmp/numpsk.json"
# Good keys: --check and a start that runs; a good key of the wrong length: named with its
# length. The check at the end wants none of these keys, in any form, in any output.
b64() { head -c "$1" /dev/urandom | base64 -w0; }
cat >"$tmp/keys.json" <<JSON
{"schema_version": 1,
 "ports": [{"name": "p0", "device": "net_null0"}],
 "tenants": [{"name": "t"}, {"name": "u"}],
 "interfaces": [{"name": "i0", "tenant": "u", "port": "p0", "vlan": 10, "addresses": ["192.0.2.1/24"]}],
 "tunnels": [{"name": "tun", "tenant": "t", "underlay_tenant": "u", "local_address": "192.0.2.1",
   "remote_address": "192.0.2.2"}],
 "sas": [{"spi": 4096, "tunnel": "tun", "inbound": true, "cipher": "AES_GCM_128", "cipher_key": "$(b64 20)"},
   {"spi": 4097, "tunnel": "tun", "inbound": false, "cipher": "AES_CBC_128", "cipher_key": "$(b64 16)",
    "integrity": "HMAC_SHA256_128", "integrity_key": "$(b64 32)"}]}
JSON
sed -E "s|(\"AES_GCM_128\", \"cipher_key\": )\"[^\"]*\"|\1\"$(b64 16)\"|" "$tmp/keys.json" >"$tmp/shortkey.json"
expect "--check accepts SAs with good keys" 0 "$tmp/keys.json: ok" -- $dp -- --config "$tmp/keys.json" --check
expect "a key of the wrong length: its length, not the key" 2 \
  "$tmp/shortkey.json: sas[0].cipher_key: 16 bytes; AES_GCM_128 takes 20" -- $dp -- --config "$tmp/shortkey.json" --check
expect "medixctl apply of SAs: the daemon's absence, not the keys" 1 "medix-cli-none" -- \
  $ctl -p "medix-cli-none-$$" apply "$tmp/keys.json"

# SIGTERM: a clean stop with the final counters (the config with SAs: their keys pass through start-up).
$dp "${eal[@]}" --file-prefix "medix-cli-$$-3" --vdev net_null0 -- --config "$tmp/keys.json" >"$tmp/run.log" 2>&1 &
pid=$!
for _ in $(seq 100); do grep -q "ready" "$tmp/run.log" && break; sleep 0.1; done
kill -TERM $pid; wait $pid; rc=$?
if [ $rc -eq 0 ] && grep -q "final counters" "$tmp/run.log" && grep -q "^i0 " "$tmp/run.log"; then
  echo "PASS SIGTERM stops cleanly with final counters"; passed=$((passed + 1))
else
  echo "FAIL SIGTERM: exit $rc"; tail -5 "$tmp/run.log"; failed=$((failed + 1))
fi

# --api-socket replaces only a stale socket: a regular file there is refused and left as it
# was, and so is a socket another medix-dp serves; a socket left by a killed one is taken over.
echo "not a socket" >"$tmp/file.sock"
expect "--api-socket: a regular file is refused" 2 "--api-socket $tmp/file.sock: exists and is not a socket" -- \
  $dp "${eal[@]}" --file-prefix "medix-cli-$$-4" --vdev net_null0 -- --config "$tmp/good.json" --api-socket "$tmp/file.sock"
if [ "$(cat "$tmp/file.sock")" = "not a socket" ]; then
  echo "PASS --api-socket: the regular file is left as it was"; passed=$((passed + 1))
else
  echo "FAIL --api-socket: the regular file changed or is gone"; failed=$((failed + 1))
fi
/usr/bin/python3 -c 'import socket, sys; s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' "$tmp/api.sock"
$dp "${eal[@]}" --file-prefix "medix-cli-$$-5" --vdev net_null0 -- --config "$tmp/good.json" \
  --api-socket "$tmp/api.sock" >"$tmp/first.log" 2>&1 &
first=$!
for _ in $(seq 100); do grep -q "ready" "$tmp/first.log" && break; sleep 0.1; done
expect "--api-socket: a stale socket is taken over" 0 "p0    net_null0" -- $ctl --dp "unix://$tmp/api.sock" show ports
expect "--api-socket: a socket a running medix-dp serves is refused" 2 "a running server listens on it" -- \
  $dp "${eal[@]}" --file-prefix "medix-cli-$$-6" --vdev net_null0 -- --config "$tmp/good.json" --api-socket "$tmp/api.sock"
expect "--api-socket: the first medix-dp still serves" 0 "p0    net_null0" -- $ctl --dp "unix://$tmp/api.sock" show ports
# packet_buffers below the minimum is raised, and said so.
sed 's/"schema_version": 1/"schema_version": 1, "settings": {"packet_buffers": 100}/' "$tmp/good.json" >"$tmp/few.json"
$dp "${eal[@]}" --file-prefix "medix-cli-$$-7" --vdev net_null0 -- --config "$tmp/few.json" \
  --api-socket "$tmp/few.sock" >"$tmp/few.log" 2>&1 &
few=$!
for _ in $(seq 100); do grep -q "ready" "$tmp/few.log" && break; sleep 0.1; done
kill -TERM $few; wait $few
if grep -q "settings.packet_buffers 100 is below what 1 worker(s) need (.*): using" "$tmp/few.log" &&
  grep -q "ready" "$tmp/few.log"; then
  echo "PASS packet_buffers below the minimum: raised, and said so"; passed=$((passed + 1))
else
  echo "FAIL packet_buffers below the minimum:"; tail -5 "$tmp/few.log" | sed 's/^/  | /'; failed=$((failed + 1))
fi

# --check estimates the EAL memory a config needs (runtime/memory.cpp): medix-dp starts with the
# suggested -m, and with the total rounded up; with much less it is refused, saying to give more.
cat >"$tmp/core.json" <<'JSON'
{"schema_version": 1,
 "ports": [{"name": "p0", "device": "net_null0"}],
 "tenants": [{"name": "t"}, {"name": "ix", "core": true, "max_routes": 4096}],
 "interfaces": [{"name": "i0", "tenant": "t", "port": "p0", "vlan": 10, "addresses": ["10.0.0.1/24"]}],
 "settings": {"max_sessions": 65536}}
JSON
# starts NAME M CONFIG PATTERN: medix-dp with -m M prints a line matching PATTERN ("ready", or why not).
starts() {
  local name=$1 m=$2 config=$3 pattern=$4 n=$((++runs)) pid
  $dp --no-huge -m "$m" --no-pci --log-level=error -l 0,1 --file-prefix "medix-cli-$$-m$n" --vdev net_null0 -- \
    --config "$config" --api-socket "$tmp/m$n.sock" >"$tmp/m$n.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do grep -q "ready" "$tmp/m$n.log" && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
  kill -TERM $pid 2>/dev/null; wait $pid
  if grep -qE -- "$pattern" "$tmp/m$n.log"; then
    echo "PASS $name"; passed=$((passed + 1))
  else
    echo "FAIL $name: no line matches /$pattern/:"; grep -v '^EAL' "$tmp/m$n.log" | tail -4 | sed 's/^/  | /'
    failed=$((failed + 1))
  fi
}
runs=0
for config in good core; do
  out=$($dp "${eal[@]}" -- --config "$tmp/$config.json" --check 2>&1)
  total=$(sed -nE 's/^  total +([0-9.]+) MiB$/\1/p' <<<"$out")
  suggested=$(sed -nE 's/^suggested: -m ([0-9]+) .*/\1/p' <<<"$out")
  if grep -q "^memory (EAL -m), with 1 worker and 4 KiB pages:" <<<"$out" && grep -qE "^  packet buffers +[0-9.]+ MiB" <<<"$out" &&
    grep -qE "^  tenant FIBs +[0-9.]+ MiB  [12] tenants?: [0-9]+ DIR24_8 x 2 copies .*, [0-9]+ compact " <<<"$out" && [ -n "$total" ] && [ -n "$suggested" ]; then
    echo "PASS --check $config.json: the memory it needs, by item ($total MiB; -m $suggested)"; passed=$((passed + 1))
  else
    echo "FAIL --check $config.json: no memory estimate:"; sed 's/^/  | /' <<<"$out" | tail -8; failed=$((failed + 1))
    continue
  fi
  starts "$config.json starts with the suggested -m $suggested" "$suggested" "$tmp/$config.json" "^medix-dp: ready"
  above=$(( ${total%.*} + 1 ))
  starts "$config.json starts with -m $above, just above the estimate" "$above" "$tmp/$config.json" "^medix-dp: ready"
  half=$(( ${total%.*} / 2 ))
  [ "$config" = core ] && starts "$config.json with -m $half, half the estimate: refused, saying to give more" "$half" \
    "$tmp/$config.json" "give EAL more memory with -m \(medix-dp --check estimates"
done

# The same --file-prefix as a running medix-dp (or one killed a moment ago, not yet gone).
expect "the same --file-prefix: which process holds it" 1 "another primary process (pid $first) uses this --file-prefix" -- \
  $dp "${eal[@]}" --file-prefix "medix-cli-$$-5" --vdev net_null0 -- --config "$tmp/good.json" --api-socket "$tmp/other.sock"
kill -TERM $first; wait $first

# Last: no key of the files above, in any form, in any output of medix-dp or medixctl (their
# logs and what expect saw); synkey.json is no JSON: its key is given as text.
keygrep_check pass fail --config "$tmp"/{keys,shortkey,badkey,numkey,numpsk}.json --secret "synkey.json cipher_key=SECRETKEY" \
  --skip synkey.json --scan "$tmp"
echo "cli: $passed passed, $failed failed"
[ $failed -eq 0 ]
