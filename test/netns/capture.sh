#!/usr/bin/env bash
# medixctl capture (issue 14) on real traffic: two tenants with the same address plan through
# one medix-dp on net_af_packet ports, captured into pcapng and read back by tshark.
#
#   hospital-a-lan 10.0.0.10 ── p0 ─┐            ┌─ p1 ── 10.0.1.10 hospital-a-imaging
#   hospital-b-lan 10.0.0.10 ── p2 ─┴─ medix-dp ─┴─ p3 ── 10.0.1.10 hospital-b-imaging
#
# Checks: every captured packet sits on the pcapng interface of its medix interface and
# tenant ("hospital-a-lan (hospital-a)"), received ones commented "rx", sent ones "tx"; a
# packet to an address with no route is captured with "drop: no_route"; --tenant leaves the
# other tenant out; --filter 'udp port 5000' (BPF) keeps only that; --drops no_route only
# those drops. Then dpdk-dumpcap: only with hugepages, which this test sets up and restores
# where it can (it says why it skips otherwise).
#
# Usage: test/netns/capture.sh   (root; binaries from build/, or MEDIX_DP=path MEDIXCTL=path)
set -uo pipefail
shopt -s lastpipe
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/lib.sh"

CTL=${MEDIXCTL:-$MX_REPO/build/controlplane/cli/medixctl}
finish() { mx_finish netns-capture; }
command -v tshark >/dev/null || mx_die "tshark is needed (Debian package tshark)"

mx_init
mx_need_binary
mx_attach hospital-a-lan     hospital-a 10.0.0.10/24 10.0.0.1/24
mx_attach hospital-a-imaging hospital-a 10.0.1.10/24 10.0.1.1/24
mx_attach hospital-b-lan     hospital-b 10.0.0.10/24 10.0.0.1/24
mx_attach hospital-b-imaging hospital-b 10.0.1.10/24 10.0.1.1/24
config=$MX_TMP/config.json
mx_write_config "$config"
if mx_start_dp "$config"; then pass "medix-dp ready"; else fail "medix-dp did not start"; finish; fi
ctl() { "$CTL" -p "$MX_PREFIX" "$@"; }

# Neighbours learned first, so that the captures below hold the flows themselves.
for h in hospital-a-lan hospital-b-lan; do mx_in "$h" ping -n -c 1 -W 2 10.0.1.10 >/dev/null; done

# capture_start FILE ARGS...: medixctl capture in the background until it is told to stop (or
# its own --duration/-c); returns once medix-dp has published it.
capture_start() {
  local file=$1; shift
  local started
  started=$(grep -c "capture started" "$MX_DP_LOG")
  "$CTL" -p "$MX_PREFIX" capture "$@" -w "$file" >"$file.out" 2>&1 &
  CAP_PID=$!
  for _ in $(seq 100); do
    [ "$(grep -c "capture started" "$MX_DP_LOG")" -gt "$started" ] && return 0
    sleep 0.05
  done
  return 1
}
# capture_stop: Ctrl-C (SIGINT) as an engineer would; medixctl ends the stream and the file.
capture_stop() { sleep 0.3; kill -INT "$CAP_PID"; wait "$CAP_PID"; }
udp_5000() { mx_in "$1" bash -c "echo medix > /dev/udp/$2/5000"; }
fields() { tshark -r "$1" -T fields -E separator='|' -e frame.interface_name -e frame.comment -e ip.src -e ip.dst \
             -e _ws.col.Protocol "${@:2}" 2>/dev/null; }

# --- everything: rx, tx and drops of both tenants ---------------------------------------------
all=$MX_TMP/all.pcapng
if capture_start "$all"; then pass "capture started (medix-dp logs it)"; else fail "capture did not start"; fi
mx_in hospital-a-lan ping -n -c 2 -i 0.2 -W 2 10.0.1.10 >/dev/null
mx_in hospital-b-lan ping -n -c 2 -i 0.2 -W 2 10.0.1.10 >/dev/null
mx_in hospital-a-lan ping -n -c 1 -W 1 10.9.9.9 >/dev/null
udp_5000 hospital-a-lan 10.0.1.10
capture_stop
status=$?
[ "$status" -eq 0 ] && pass "medixctl capture ends on SIGINT with status 0 ($(cat "$all.out"))" \
  || fail "medixctl capture exit status $status: $(cat "$all.out")"
out=$(fields "$all")
if tshark -r "$all" >/dev/null 2>&1 && [ -n "$out" ]; then pass "tshark reads the pcapng: $(wc -l <<<"$out") packets"
else fail "tshark cannot read $all: $out"; fi
want() {  # want DESCRIPTION GREP-PATTERN
  if grep -qE "$2" <<<"$out"; then pass "$1"; else fail "$1: no line matches '$2' in:"; echo "$out" | sed 's/^/  | /'; fi
}
want "hospital-a's echo request captured rx on 'hospital-a-lan (hospital-a)'" \
  '^hospital-a-lan \(hospital-a\)\|rx\|10\.0\.0\.10\|10\.0\.1\.10\|ICMP'
want "and tx on 'hospital-a-imaging (hospital-a)'" '^hospital-a-imaging \(hospital-a\)\|tx\|10\.0\.0\.10\|10\.0\.1\.10\|ICMP'
want "hospital-b's echo request (the same addresses) rx on 'hospital-b-lan (hospital-b)'" \
  '^hospital-b-lan \(hospital-b\)\|rx\|10\.0\.0\.10\|10\.0\.1\.10\|ICMP'
want "hospital-b's echo reply tx on 'hospital-b-lan (hospital-b)'" \
  '^hospital-b-lan \(hospital-b\)\|tx\|10\.0\.1\.10\|10\.0\.0\.10\|ICMP'
want "the packet to 10.9.9.9 (no route) captured as 'drop: no_route' on hospital-a-lan" \
  '^hospital-a-lan \(hospital-a\)\|drop: no_route\|10\.0\.0\.10\|10\.9\.9\.9\|ICMP'
want "the ICMP net unreachable about it tx on 'hospital-a-lan (hospital-a)', back to the sender" \
  '^hospital-a-lan \(hospital-a\)\|tx\|10\.0\.0\.1,10\.0\.0\.10\|10\.0\.0\.10,10\.9\.9\.9\|ICMP'
bad=$(grep -vE '^hospital-[ab]-(lan|imaging) \(hospital-[ab]\)\|(rx|tx|drop: [a-z_]+)\|' <<<"$out")
wrong_tenant=$(grep -E '^hospital-a[^|]*\(hospital-b\)|^hospital-b[^|]*\(hospital-a\)' <<<"$out")
if [ -z "$bad" ] && [ -z "$wrong_tenant" ]; then pass "every packet has an 'interface (tenant)' of its own and a comment"
else fail "packets without a proper interface or comment: $bad $wrong_tenant"; fi

# --- --tenant: the other tenant is left out ----------------------------------------------------
tb=$MX_TMP/tenant-b.pcapng
capture_start "$tb" --tenant hospital-b || fail "capture --tenant did not start"
mx_in hospital-a-lan ping -n -c 2 -i 0.2 -W 2 10.0.1.10 >/dev/null
mx_in hospital-b-lan ping -n -c 2 -i 0.2 -W 2 10.0.1.10 >/dev/null
capture_stop
out=$(fields "$tb")
n_b=$(grep -c '(hospital-b)|' <<<"$out")
n_other=$(grep -vc '(hospital-b)|' <<<"$out")
if [ "$n_b" -ge 8 ] && [ "$n_other" -eq 0 ]; then pass "--tenant hospital-b: $n_b packets, all hospital-b's"
else fail "--tenant hospital-b: $n_b of hospital-b, $n_other others:"; echo "$out" | sed 's/^/  | /'; fi

# --- --filter (BPF, compiled by libpcap, run by the workers) ----------------------------------
bp=$MX_TMP/bpf.pcapng
capture_start "$bp" --filter 'udp port 5000' || fail "capture --filter did not start"
mx_in hospital-a-lan ping -n -c 2 -i 0.2 -W 2 10.0.1.10 >/dev/null
udp_5000 hospital-a-lan 10.0.1.10
udp_5000 hospital-b-lan 10.0.1.10
capture_stop
out=$(fields "$bp" -e udp.dstport)
n_udp=$(grep -c '|UDP|5000$' <<<"$out")
n_other=$(grep -vc '|UDP|5000$' <<<"$out")
if [ "$n_udp" -eq 4 ] && [ "$n_other" -eq 0 ]; then pass "--filter 'udp port 5000': the 2 datagrams rx and tx, nothing else"
else fail "--filter 'udp port 5000': $n_udp UDP/5000, $n_other others:"; echo "$out" | sed 's/^/  | /'; fi

# --- --drops REASON, and -c ends the capture by itself -----------------------------------------
dr=$MX_TMP/drops.pcapng
capture_start "$dr" --drops no_route -c 2 || fail "capture --drops did not start"
mx_in hospital-a-lan ping -n -c 1 -W 1 10.0.1.10 >/dev/null
mx_in hospital-b-lan ping -n -c 3 -i 0.2 -W 1 10.9.9.9 >/dev/null
if wait "$CAP_PID"; then pass "capture -c 2 ended by itself: $(cat "$dr.out")"; else fail "capture -c 2: $(cat "$dr.out")"; fi
out=$(fields "$dr")
if [ "$(grep -c '^hospital-b-lan (hospital-b)|drop: no_route|10.0.0.10|10.9.9.9|ICMP$' <<<"$out")" -eq 2 ] \
   && [ "$(wc -l <<<"$out")" -eq 2 ]; then
  pass "--drops no_route -c 2: two dropped packets, each with its reason, nothing else"
else fail "--drops no_route -c 2:"; echo "$out" | sed 's/^/  | /'; fi

# --- without -w: a line a packet -----------------------------------------------------------------
lines=$MX_TMP/lines.txt
( ctl capture --tenant hospital-a --duration 2 >"$lines" 2>&1 ) &
lp=$!
sleep 0.5
mx_in hospital-a-lan ping -n -c 1 -W 1 10.0.1.10 >/dev/null
wait "$lp"
if grep -q ' rx hospital-a-lan (hospital-a) len ' "$lines" && grep -q "packets captured" "$lines"; then
  pass "capture without -w prints a line a packet and ends at --duration"
else fail "capture without -w: $(cat "$lines")"; fi

# --- SIGTERM ends a running capture: medix-dp exits 0, medixctl ends its file and exits 0 -----
tc=$MX_TMP/term.pcapng
capture_start "$tc" || fail "capture before SIGTERM did not start"
mx_in hospital-a-lan ping -n -c 1 -W 1 10.0.1.10 >/dev/null
sleep 0.3
if mx_stop_dp; then pass "medix-dp exits 0 on SIGTERM with a capture running"; else fail "medix-dp exit status on SIGTERM"; fi
if timeout 10 tail --pid="$CAP_PID" -f /dev/null && wait "$CAP_PID" && tshark -r "$tc" >/dev/null 2>&1; then
  pass "medixctl capture ended with medix-dp, status 0, its pcapng readable ($(cat "$tc.out"))"
else
  fail "medixctl capture at medix-dp's SIGTERM: $(cat "$tc.out")"
fi

# --- dpdk-dumpcap: a DPDK secondary process, so only with hugepages --------------------------
# The test reserves 2 MB pages and mounts a hugetlbfs of its own, and gives back both on exit.
HUGE_OLD=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo none)
HUGE_DIR=$MX_TMP/huge
restore_huge() {
  mountpoint -q "$HUGE_DIR" 2>/dev/null && umount "$HUGE_DIR"
  [ "$HUGE_OLD" != none ] && [ "$(cat /proc/sys/vm/nr_hugepages)" != "$HUGE_OLD" ] &&
    echo "$HUGE_OLD" >/proc/sys/vm/nr_hugepages
}
trap 'rc=$?; restore_huge; (exit $rc); mx_cleanup' EXIT  # mx_cleanup exits with $?: the script's own status
huge_reason=
if ! command -v dpdk-dumpcap >/dev/null; then
  huge_reason="dpdk-dumpcap is not installed (Debian package dpdk)"
elif [ "$HUGE_OLD" = none ]; then
  huge_reason="/proc/sys/vm/nr_hugepages cannot be read"
elif ! (echo $((HUGE_OLD + 384)) >/proc/sys/vm/nr_hugepages) 2>/dev/null ||
     [ "$(cat /proc/sys/vm/nr_hugepages)" -lt $((HUGE_OLD + 384)) ]; then
  huge_reason="this kernel would not reserve 384 more 2 MB hugepages (nr_hugepages $(cat /proc/sys/vm/nr_hugepages))"
elif ! { mkdir -p "$HUGE_DIR" && mount -t hugetlbfs -o pagesize=2M none "$HUGE_DIR"; } 2>/dev/null; then
  huge_reason="hugetlbfs cannot be mounted here"
fi
if [ -n "$huge_reason" ]; then
  echo "SKIP dpdk-dumpcap: $huge_reason; secondary processes cannot attach to a --no-huge medix-dp," \
    "medixctl capture (above) is the way there"
else
  if MX_EAL_MEM="--huge-dir $HUGE_DIR -m 512" mx_start_dp "$config"; then
    pass "medix-dp ready on hugepages ($HUGE_DIR)"
    dc=$MX_TMP/dumpcap.pcapng
    mx_in hospital-a-lan ping -n -c 1 -W 2 10.0.1.10 >/dev/null  # neighbours first: the capture is the echoes
    timeout 30 dpdk-dumpcap --file-prefix "$MX_PREFIX" -i net_af_packet0 -c 8 -w "$dc" -q >"$MX_TMP/dumpcap.log" 2>&1 &
    dpid=$!
    sleep 3  # the secondary's EAL start and the port's capture enabled
    mx_in hospital-a-lan ping -n -c 4 -i 0.2 -W 2 10.0.1.10 >/dev/null
    wait "$dpid"
    rc=$?
    out=$(tshark -r "$dc" -T fields -E separator='|' -e ip.src -e ip.dst -e _ws.col.Protocol 2>/dev/null)
    if [ "$rc" -eq 0 ] && [ "$(grep -c '^10.0.*ICMP$' <<<"$out")" -eq 8 ]; then
      pass "dpdk-dumpcap attached to medix-dp (rte_pdump) and captured the 4 echoes and replies of port p0, read by tshark"
    else
      fail "dpdk-dumpcap: status $rc, packets: $out; log: $(tail -n 5 "$MX_TMP/dumpcap.log")"
    fi
    if mx_stop_dp; then pass "medix-dp on hugepages exits 0 on SIGTERM"; else fail "medix-dp on hugepages: exit status"; fi
  else
    fail "medix-dp did not start on hugepages"
  fi
  restore_huge
  if [ "$(cat /proc/sys/vm/nr_hugepages)" = "$HUGE_OLD" ]; then pass "hugepages given back (nr_hugepages $HUGE_OLD)"
  else fail "nr_hugepages is $(cat /proc/sys/vm/nr_hugepages), was $HUGE_OLD"; fi
fi
finish
