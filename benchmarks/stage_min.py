#!/usr/bin/python3
"""Per-stage cycles a packet on a shared core, robust to preemption: medix-dp binaries
alternating (benchmarks/nat.py's configs and pcap), /medix/runtime sampled every ~20 ms
during the window; per sample interval, each stage's cycles / packets; the 10th percentile
over the intervals (an interval in which the worker was not preempted inside a stage shows
the stage's own cost; the median counts others' time). And the packet rate out of the
worker over intervals of >= 2 ms (port `out`'s tx_packets polled back to back): its 90th
percentile, as cycles a packet (`rate_p90_cycles`), is the rate while the worker held its core.
--timing-off switches stage timing off first (then only the rate says anything). Prints and
writes JSON.

  stage_min.py OUT.json MODE[,MODE] SESSIONS NAME=BINARY ... [--rounds 3] [--samples 150]
  stage_min.py --replot OUT.json
"""
import argparse, json, os, random, statistics, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import forwarding as fw  # noqa: E402
import nat  # noqa: E402


def sample(binary, mode, sessions, pcap, samples, timing_off, tsc_hz):
    prefix = fw.new_prefix()
    path = os.path.join(fw.workdir, "%s-%s.json" % (prefix, mode))
    conf = nat.config(mode, sessions, sessions)
    with open(path, "w") as f:
        json.dump(conf, f)
    mem = nat.eal_mb(mode, conf, sessions)
    p = fw.start([binary] + fw.eal_args(prefix, mem, pcap) + ["--", "--config", path],
                 os.path.join(fw.workdir, prefix + ".log"))
    try:
        tel = fw.wait_for(p, prefix, r"medix-dp: ready", 180)
        try:
            if timing_off:
                tel("/medix/runtime,off")
            time.sleep(1.5)  # the first pass (every session made) and a warm-up
            ticks = []
            for _ in range(samples * 10):
                ticks.append((time.monotonic(), fw.by_name(tel("/medix/ports"))["out"]["tx_packets"]))
            rates, j = [], 0
            for i in range(len(ticks)):
                while j < len(ticks) and ticks[j][0] - ticks[i][0] < 0.002:
                    j += 1
                if j < len(ticks):
                    rates.append((ticks[j][1] - ticks[i][1]) / (ticks[j][0] - ticks[i][0]))
            rates.sort()
            rate_p90 = rates[len(rates) * 9 // 10] if rates else 0
            prev, per = tel("/medix/runtime"), {}
            for _ in range(samples):
                time.sleep(0.02)
                cur = tel("/medix/runtime")
                for st, v in cur.items():
                    if not isinstance(v, dict) or st not in prev or not isinstance(prev[st], dict):
                        continue
                    dp = v.get("packets", 0) - prev[st].get("packets", 0)
                    dc = v.get("cycles", 0) - prev[st].get("cycles", 0)
                    if dp >= 512:
                        per.setdefault(st, []).append(dc / dp)
                prev = cur
        finally:
            tel.close()
    finally:
        fw.stop(p)
        fw.cleanup_runtime_dir(prefix)
    out = {st: round(sorted(v)[len(v) // 10], 1) for st, v in per.items() if len(v) >= 10}
    return out, round(tsc_hz / rate_p90, 1) if rate_p90 else None


def plot(out, path):
    """Stacked per-stage cycles a packet (median of the rounds' 10th percentiles) per binary and mode."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    med = out["median_of_p10"]
    names = list(med)
    stages = sorted({s for v in med.values() for s in v if isinstance(v[s], float) and s != "sum"
                     and not s.startswith("rate")})
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(names)), 4.5))
    bottom = [0.0] * len(names)
    for st in stages:
        vals = [med[n].get(st, 0.0) for n in names]
        ax.bar(range(len(names)), vals, bottom=bottom, label=st)
        bottom = [b + v for b, v in zip(bottom, vals)]
    for i, b in enumerate(bottom):
        ax.text(i, b + 2, "%.0f" % b, ha="center", fontsize=8)
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("TSC cycles a packet (p10 of 20 ms intervals)")
    ax.set_title("%d sessions" % out["sessions"])
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path)


def main():
    if sys.argv[1:2] == ["--replot"]:
        plot(json.load(open(sys.argv[2])), os.path.splitext(sys.argv[2])[0] + ".png")
        return 0
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("modes")
    ap.add_argument("sessions", type=int)
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--samples", type=int, default=150)
    ap.add_argument("--timing-off", action="store_true")
    args = ap.parse_args()
    bins = [b.split("=", 1) for b in args.binaries]
    fw.workdir = tempfile.mkdtemp(prefix="medix-stagemin-")
    if 0 in fw.ALL_CPUS and len(fw.ALL_CPUS) > 1:
        os.sched_setaffinity(0, {0})
    pcap = os.path.join(fw.workdir, "flows.pcap")
    fw.write_pcap(pcap, nat.flows(args.sessions, random.Random(7 + args.sessions)))
    tsc_hz, _ = fw.tsc_hz_from_system()
    runs = []
    for rnd in range(args.rounds):
        order = bins[rnd % len(bins):] + bins[:rnd % len(bins)]
        for mode in args.modes.split(","):
            for name, path in order:
                if mode == "forward" and name != bins[-1][0]:
                    continue
                load = os.getloadavg()[0]
                st, rate = sample(path, mode, args.sessions, pcap, args.samples, args.timing_off, tsc_hz)
                runs.append({"name": name, "mode": mode, "round": rnd, "load": load, "p10": st,
                             "rate_p90_cycles": rate})
                fw.log("round %d %-9s %-7s load %.1f rate %s cyc/pkt, %s" % (
                    rnd, name, mode, load, rate, " ".join("%s=%.0f" % kv for kv in sorted(st.items()))))
    summary = {}
    for r in runs:
        summary.setdefault("%s:%s" % (r["name"], r["mode"]), []).append(r)
    med = {}
    for k, v in summary.items():
        st = {s for r in v for s in r["p10"]}
        m = {s: round(statistics.median(r["p10"][s] for r in v if s in r["p10"]), 1) for s in sorted(st)}
        if m:
            m["sum"] = round(sum(m.values()), 1)
        rates = [r["rate_p90_cycles"] for r in v if r["rate_p90_cycles"]]
        m["rate_p90_cycles_median"] = round(statistics.median(rates), 1) if rates else None
        m["rate_p90_cycles"] = rates
        med[k] = m
    out = {"what": __doc__, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git": fw.git_state(),
           "sessions": args.sessions, "binaries": dict(bins), "runs": runs, "median_of_p10": med}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    plot(out, os.path.splitext(args.out)[0] + ".png")
    print(json.dumps(med, indent=1))


if __name__ == "__main__":
    fw.run(main)
