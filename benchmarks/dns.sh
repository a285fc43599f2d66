#!/usr/bin/env bash
# Issue 17's throughput figure: dnsperf (Debian's) against the IX's knotd, from a hospital host
# through medix-dp's core (translated, admitted by medix-cp's dns-udp rule; af_packet ports, one
# worker) and from the DNS tenant's own host straight to the same server, in the same run
# (test/dns/netns.sh's IX). Prints qps, lost queries and p50/p99 latency for each, and the ratio.
#
#   benchmarks/dns.sh [SECONDS]     (root; default 5 s each)
# Writes benchmarks/results/issue17/dnsperf.txt (the lines), dnsperf.json and dnsperf.png.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dnsperf >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq dnsperf >/dev/null; }
mkdir -p benchmarks/results/issue17
out=benchmarks/results/issue17/dnsperf.txt
{
  echo "# benchmarks/dns.sh ${1:-5}: $(date -u +%FT%TZ), $(nproc) CPUs, load $(cut -d' ' -f1 /proc/loadavg), medix $(git describe --always --dirty)"
  DNS_BENCH_SECONDS=${1:-5} test/dns/netns.sh | grep -E '^BENCH|dns-netns:'
} | tee "$out"
/usr/bin/python3 - "$out" <<'PY'
import json, re, sys
txt = sys.argv[1]
lines = open(txt).read().splitlines()
runs = {}
for line in lines:
    m = re.match(r"BENCH (\w+)\s+qps\s+(\d+)\s+lost (\S+)\s+latency ms: p50 ([0-9.]+)\s+p99 ([0-9.]+)\s+\((\d+) answers\)", line)
    if m:
        runs[m.group(1)] = {"qps": int(m.group(2)), "lost": int(m.group(3)) if m.group(3).isdigit() else None,
                            "p50_ms": float(m.group(4)), "p99_ms": float(m.group(5)), "answers": int(m.group(6))}
if "direct" not in runs or "core" not in runs:
    sys.exit("dns.sh: dnsperf gave no figures (see %s)" % txt)
ratio = runs["core"]["qps"] / runs["direct"]["qps"]
print("core/direct qps ratio: %.2f" % ratio)
with open(txt, "a") as f:
    f.write("core/direct qps ratio: %.2f\n" % ratio)
result = {"benchmark": "dns", "header": lines[0].lstrip("# "), "direct": runs["direct"], "core": runs["core"],
          "core_over_direct_qps": round(ratio, 3)}
base = txt[:-len(".txt")]
json.dump(result, open(base + ".json", "w"), indent=1)
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
fig, (a, b) = plt.subplots(1, 2, figsize=(8, 3.2))
labels = ["direct", "through medix-dp's core"]
a.bar(labels, [runs["direct"]["qps"], runs["core"]["qps"]], color=["grey", "tab:blue"])
a.set_ylabel("queries per second")
a.set_title("dnsperf qps (ratio %.2f)" % ratio)
x = range(2)
b.bar([i - 0.2 for i in x], [runs["direct"]["p50_ms"], runs["core"]["p50_ms"]], 0.4, label="p50")
b.bar([i + 0.2 for i in x], [runs["direct"]["p99_ms"], runs["core"]["p99_ms"]], 0.4, label="p99")
b.set_xticks(list(x), labels)
b.set_ylabel("latency, ms")
b.set_title("latency")
b.legend()
fig.suptitle("The IX's Knot DNS: %s" % result["header"], fontsize=7)
fig.tight_layout()
fig.savefig(base + ".png", dpi=90)
PY
