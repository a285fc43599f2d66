#!/usr/bin/env bash
# Issue 17's throughput figure: dnsperf (Debian's) against the IX's knotd, from a hospital host
# through medix-dp's core (translated, admitted by medix-cp's dns-udp rule; af_packet ports, one
# worker) and from the DNS tenant's own host straight to the same server, in the same run
# (test/dns/netns.sh's IX). Prints qps, lost queries and p50/p99 latency for each, and the ratio.
#
#   benchmarks/dns.sh [SECONDS]     (root; default 5 s each; writes benchmarks/results/issue17/dnsperf.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dnsperf >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq dnsperf >/dev/null; }
mkdir -p benchmarks/results/issue17
out=benchmarks/results/issue17/dnsperf.txt
{
  echo "# benchmarks/dns.sh ${1:-5}: $(date -u +%FT%TZ), $(nproc) CPUs, medix $(git describe --always --dirty)"
  DNS_BENCH_SECONDS=${1:-5} test/dns/netns.sh | grep -E '^BENCH|dns-netns:'
} | tee "$out"
awk '/^BENCH direct/ {d = $4} /^BENCH core/ {c = $4} END { if (d) printf "core/direct qps ratio: %.2f\n", c / d }' "$out" |
  tee -a "$out"
