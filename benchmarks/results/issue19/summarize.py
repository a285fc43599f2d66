#!/usr/bin/python3
"""Summarizes benchmarks/compare rounds (A = main, B = this branch) by on-CPU cycles per packet
(cycles/pkt x the worker's CPU share: on this shared 2-core machine every run is disturbed),
pairing round r of A with round r of B. Usage: summarize.py COMPARE_DIR OUT_NAME"""
import glob, json, os, statistics, sys

src, name = sys.argv[1], sys.argv[2]
here = os.path.dirname(os.path.abspath(__file__))
rounds = {}  # (which, r) -> json
for path in glob.glob(os.path.join(src, "forwarding-*-*/forwarding.json")):
    which, r = os.path.basename(os.path.dirname(path)).split("-")[1:3]
    rounds[which, int(r)] = json.load(open(path))
points = {}
for (which, r), d in sorted(rounds.items()):
    for p in d["points"]:
        if "cycles_per_packet" not in p:
            continue
        key = "%d B, %d routes" % (p["frame_bytes"], p["routes"])
        ceil = d["ceiling"].get(str(p["frame_bytes"]), {})
        ceil_on_cpu = ceil.get("cycles_per_packet", 0) * ceil.get("worker_cpu_share", 1)
        on_cpu = p.get("cycles_per_packet_on_cpu") or p["cycles_per_packet"] * p.get("worker_cpu_share", 1)
        points.setdefault(key, {}).setdefault(which, {})[r] = {
            "cycles_per_packet": p["cycles_per_packet"], "on_cpu": round(on_cpu, 1),
            "worker_cpu_share": p.get("worker_cpu_share"), "ceiling_on_cpu": round(ceil_on_cpu, 1),
            "over_ceiling_on_cpu": round(on_cpu - ceil_on_cpu, 1), "stages": p.get("stages"),
            "stage_timing": d["method"].get("stage_timing", "on")}
out = {"what": __doc__, "source": src, "points": {}}
for key, v in points.items():
    a, b = v.get("a", {}), v.get("b", {})
    pairs = [b[r]["on_cpu"] / a[r]["on_cpu"] for r in sorted(set(a) & set(b))]
    row = {"a_rounds": a, "b_rounds": b,
           "a_best_on_cpu": min(x["on_cpu"] for x in a.values()) if a else None,
           "b_best_on_cpu": min(x["on_cpu"] for x in b.values()) if b else None,
           "paired_b_over_a": [round(x, 3) for x in pairs],
           "median_b_over_a": round(statistics.median(pairs), 3) if pairs else None}
    if a and b:
        row["best_b_over_a"] = round(row["b_best_on_cpu"] / row["a_best_on_cpu"], 3)
        row["a_median_over_ceiling_on_cpu"] = statistics.median(x["over_ceiling_on_cpu"] for x in a.values())
        row["b_median_over_ceiling_on_cpu"] = statistics.median(x["over_ceiling_on_cpu"] for x in b.values())
    out["points"][key] = row
    print("%-20s A best %6.1f  B best %6.1f  best B/A %s  paired B/A %s median %s" % (
        key, row["a_best_on_cpu"] or 0, row["b_best_on_cpu"] or 0, row.get("best_b_over_a"),
        row["paired_b_over_a"], row["median_b_over_a"]))
json.dump(out, open(os.path.join(here, name + ".json"), "w"), indent=1)
try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    keys = [k for k in out["points"] if out["points"][k]["median_b_over_a"]]
    fig, ax = plt.subplots(figsize=(6, 0.4 * len(keys) + 1.2))
    ax.barh(keys, [out["points"][k]["median_b_over_a"] for k in keys], color="#4c72b0")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("branch / main, on-CPU cycles per packet (median of paired rounds)")
    ax.set_title(name, fontsize=9)
    fig.tight_layout()
    fig.savefig(os.path.join(here, name + ".png"), dpi=80)
except ImportError:
    pass
