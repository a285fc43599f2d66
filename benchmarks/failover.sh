#!/usr/bin/env bash
# Failover figures of the redundant pair (docs/ha.md, issue 15): runs the netns-failover suite
# (test/netns/failover.sh) N times and gathers what each run measured: the takeover time after a
# kill -9 of the active (from the kill to the arrival of the first probe sent once the killed
# medix-dp was reaped, which only the new active can have forwarded; a 1 kHz UDP probe through
# static NAT), the probes lost then, and the probes lost in a planned
# switchover. Results: benchmarks/results/ha/failover.json.
#
# Usage: benchmarks/failover.sh [RUNS]   (root; default 5 runs; binaries from build/)
# Both nodes and every host run on this machine: on a loaded 2-CPU machine the figures are
# upper bounds of what the protocol needs (10 cs adverts: master down interval 0.36 s).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
runs=${1:-5}
out=benchmarks/results/ha/failover.json
tmp=$(mktemp -d /tmp/medix-failover-bench.XXXX)
trap 'rm -rf "$tmp"' EXIT
for ((i = 1; i <= runs; i++)); do
  if MX_FAILOVER_JSON=$tmp/run-$i.json test/netns/failover.sh >"$tmp/run-$i.log" 2>&1; then
    echo "run $i: $(cat "$tmp/run-$i.json")"
  else
    echo "run $i failed: $(grep -E '^FAIL|passed, ' "$tmp/run-$i.log" | tr '\n' ' ')"
    rm -f "$tmp/run-$i.json"
  fi
done
/usr/bin/python3 - "$tmp" "$out" "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . || echo +dirty)" <<'PY'
import datetime, glob, json, statistics, sys
tmp, out, git = sys.argv[1:]
runs = [json.load(open(f)) for f in sorted(glob.glob(tmp + "/run-*.json"))]
if not runs:
    sys.exit("no run succeeded")
take = [r["takeover_ms"] for r in runs]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "")
result = {
    "what": "netns-failover: two medix-dp on Linux bridges, VRRP 10 cs adverts, one group, --ha-vrrp-group; "
            "kill -9 of the active under a 1 kHz UDP probe (archive -> hosp-a, static NAT) and two DICOM studies",
    "runs": len(runs),
    "takeover_ms": {"min": min(take), "median": statistics.median(take), "max": max(take), "all": take},
    "goal_takeover_ms": 1000,
    "probes_lost_at_kill": [r["kill_probe"]["lost"] for r in runs],
    "switchover_probes_lost": [r["switchover_probe"]["lost"] for r in runs],
    "switchover_probes_sent": [r["switchover_probe"]["sent"] for r in runs],
    "switchover_max_gap_ms": [r["switchover_probe"]["max_gap_ms"] for r in runs],
    "switchover_ms_apply_to_roles_swapped": [r["switchover_ms"] for r in runs],
    "studies_in_flight_at_kill": [r["studies_in_flight_at_kill"] for r in runs],
    "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    "cpu_model": cpu, "cpus": len([l for l in open("/proc/cpuinfo") if l.startswith("processor")]),
    "git": git,
}
json.dump(result, open(out, "w"), indent=1)
print(json.dumps(result["takeover_ms"]))
PY
