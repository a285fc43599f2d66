#!/usr/bin/python3
"""The pipeline microbenchmark's driver (build/benchmarks/micro/pipeline-micro*, see
benchmarks/README.md "Pipeline microbenchmark"): binaries alternating, order rotated every
round, one invocation. Each binary runs the worker loop's body on synthetic bursts in its own
process, without ports; each block of 2,000 bursts gives its minimum, 10th percentile and
median of TSC cycles a packet (a block's low percentiles are the bursts nobody preempted).

  pipeline_micro.py OUT_NAME [--modes forward,napt] [--rounds 5] [NAME=BINARY ...]
  pipeline_micro.py OUT_NAME --modes new [--sessions 1048576] [--rounds 3] NAME=BINARY ...
  pipeline_micro.py --replot OUT_NAME

Default binaries: `in` (accounting compiled in: stage timing off and on in alternate blocks of
one process) and `out` (compiled out), build/benchmarks/micro/. Writes
benchmarks/results/issue19/OUT_NAME.{json,png}.
"""
import argparse, json, os, statistics, subprocess, sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forwarding as fw  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results", "issue19")
BUILD = os.path.join(fw.ROOT, "build", "benchmarks", "micro")  # ninja -C build benchmarks/micro/pipeline-micro{,-noacct}


def run(binary, args):
    out = subprocess.run([binary] + args, check=True, capture_output=True, text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def load():
    with open(os.path.join("/proc/loadavg")) as f:
        return float(f.read().split()[0])


def summarize(blocks, modes):
    """Per mode and series (binary, and timing where the binary switches it): medians over the
    blocks of each block's min / p10 / p50; for a binary with both timings, the difference on
    minus off per pair of adjacent blocks."""
    out = {}
    for mode in modes:
        rows = [b for b in blocks if b["mode"] == mode]
        series = {}
        for b in rows:
            key = b["name"] if mode == "new" else "%s timing %s" % (b["name"], "on" if b["timing"] else "off")
            series.setdefault(key, []).append(b)
        m = {}
        for key, bs in series.items():
            if mode == "new":
                bs = [b for b in bs if not b["timing"]]
                if not bs:
                    continue
                fields = ("mean", "on_cpu", "p50", "p50_last_tenth", "p10_last_tenth")
            else:
                fields = ("min", "p10", "p50")
            m[key] = {f: {"median": statistics.median(b[f] for b in bs), "min": min(b[f] for b in bs),
                          "max": max(b[f] for b in bs)} for f in fields}
            m[key]["blocks"] = len(bs)
            staged = [b["stages"] for b in bs if b.get("stages")]
            if staged:  # timing on: each stage's cycles a packet, median over blocks
                m[key]["stages"] = {st: statistics.median(s.get(st, 0) for s in staged)
                                    for st in sorted({st for s in staged for st in s})}
            if mode == "new":
                hz = bs[0]["tsc_hz"]
                m[key]["sessions_per_s_at_p50_last_tenth"] = hz / m[key]["p50_last_tenth"]["median"]
                m[key]["sessions_per_s_at_p50"] = hz / m[key]["p50"]["median"]
                m[key]["sessions_per_s_on_cpu"] = hz / m[key]["on_cpu"]["median"]
                timed = [b for b in series[key] if b["timing"] and b["nat_stage"]]
                if timed:
                    m[key]["nat_stage_cycles_per_new_session"] = timed[-1]["nat_stage"]
        if mode != "new":
            # Paired: the same process, adjacent blocks (off on on off ...), on minus off.
            for name in sorted({b["name"] for b in rows}):
                by = {}
                for b in rows:
                    if b["name"] == name:
                        by.setdefault((b["run"], b["block"]), {})[b["timing"]] = b
                pairs = [v for v in by.values() if len(v) == 2]
                if pairs:
                    for f in ("p10", "p50"):
                        d = sorted(v[True][f] - v[False][f] for v in pairs)
                        m["%s on - off %s" % (name, f)] = {"median": statistics.median(d), "min": d[0],
                                                           "max": d[-1], "pairs": len(d)}
        out[mode] = m
    return out


def table(blocks):
    """Every block's line as a row under one list of columns (a dict each would be 20 lines)."""
    columns = sorted({k for b in blocks for k in b})
    return {"columns": columns, "rows": [[b.get(k) for k in columns] for b in blocks]}


def save(name, results):
    """forwarding.save_results' JSON and PNG, with one line a block."""
    raw = results["blocks_raw"]
    text = json.dumps(dict(results, blocks_raw="@RAW@"), indent=1)
    rows = ",\n   ".join(json.dumps(r) for r in raw["rows"])
    text = text.replace('"@RAW@"', '{"columns": %s,\n  "rows": [\n   %s]}' % (json.dumps(raw["columns"]), rows))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, name + ".json"), "w") as f:
        f.write(text + "\n")
    plot(results, os.path.join(RESULTS, name + ".png"))


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    modes = list(results["summary"])
    fig, axes = plt.subplots(1, len(modes), figsize=(max(6, 1.6 * sum(len([k for k in results["summary"][m] if " - " not in k]) for m in modes)), 4.5),
                             squeeze=False)
    for ax, mode in zip(axes[0], modes):
        s = results["summary"][mode]
        keys = [k for k in s if " - " not in k]
        field = "p50" if mode == "new" else "p10"
        vals = [s[k][field]["median"] for k in keys]
        lo = [s[k][field]["median"] - s[k][field]["min"] for k in keys]
        hi = [s[k][field]["max"] - s[k][field]["median"] for k in keys]
        bars = ax.bar(range(len(keys)), vals, yerr=[lo, hi], capsize=4, color="#4878a8")
        for b, v in zip(bars, vals):
            ax.text(b.get_x() + b.get_width() / 2, v, "%.1f" % v, ha="center", va="bottom", fontsize=8)
        ax.set_xticks(range(len(keys)))
        ax.set_xticklabels([k.replace(" timing ", "\ntiming ") for k in keys], fontsize=8)
        ax.set_ylabel("TSC cycles a %s (%s, median of blocks)" % ("new session" if mode == "new" else "packet",
                                                                  field))
        ax.set_title(mode, fontsize=9)
    fig.suptitle("pipeline-micro: the worker loop's body,\n32-packet bursts, one process per binary", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("binaries", nargs="*")
    ap.add_argument("--modes", default="forward,napt")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--bursts", type=int, default=2000)
    ap.add_argument("--sessions", type=int, default=1 << 20)
    ap.add_argument("--flows", type=int, default=1024, help="forward, napt: distinct flows (sessions)")
    ap.add_argument("--replot", action="store_true")
    a = ap.parse_intermixed_args()
    if a.replot:  # and the JSON written again as `save` writes it
        with open(os.path.join(RESULTS, a.name + ".json")) as f:
            save(a.name, json.load(f))
        return
    binaries = [b.split("=", 1) for b in a.binaries] or [
        ["in", os.path.join(BUILD, "pipeline-micro")], ["out", os.path.join(BUILD, "pipeline-micro-noacct")]]
    modes = a.modes.split(",")
    blocks, loads = [], []
    for r in range(a.rounds):
        order = binaries[r % len(binaries):] + binaries[:r % len(binaries)]
        for mode in modes:
            for name, binary in order:
                args = [mode, str(a.sessions), "1"] if mode == "new" else [mode, str(a.blocks), str(a.bursts)]
                if mode != "new" and a.flows != 1024:
                    args.append(str(a.flows))
                loads.append(load())
                for b in run(binary, args):
                    b.update(name=name, run=r)
                    blocks.append(b)
                    if mode == "new":
                        print(json.dumps(b), flush=True)
            if mode != "new":
                print("round %d %s done (load %.1f)" % (r, mode, loads[-1]), flush=True)
    results = {
        "benchmark": "pipeline-micro: the worker loop's body (nat_sweep, rx accounting, process_burst, flush_tx to "
                     "net_null) on 32-packet bursts of 64-byte frames written beforehand; no ports, one process "
                     "per binary, binaries alternating",
        "binaries": dict(binaries), "modes": modes, "rounds": a.rounds, "blocks": a.blocks, "bursts": a.bursts,
        "sessions": a.sessions if "new" in modes else None, "load_average": [min(loads), max(loads)],
        "summary": summarize(blocks, modes), "blocks_raw": table(blocks),
    }
    print(json.dumps(results["summary"], indent=1))
    save(a.name, results)


if __name__ == "__main__":
    main()
