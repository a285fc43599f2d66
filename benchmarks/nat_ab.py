#!/usr/bin/python3
"""NAPT session rate and established crossing, binaries A and B (and more) alternating in one
invocation: round r runs every binary once at each session count (order rotated each round),
plus plain forwarding with the same pcap (from the last binary). Uses benchmarks/nat.py's
run_point. Prints and writes per-binary minimum/median/best of: new sessions per second (wall,
and per second of the worker's own CPU time), the nat stage's cycles per new session, cycles
per established packet and Mpps; the machine's load average around each run.

  nat_ab.py OUT.json NAME=BINARY NAME=BINARY ... [--rounds 6] [--sessions 1000000] [--modes napt]

With --modes static,napt each binary runs each mode (summary keys NAME:MODE@SESSIONS, NAME@SESSIONS
for napt alone as before), and each mode's cycles per packet over plain forwarding's in the
same round (wall, and on the worker's own CPU: cycles x its CPU share) are paired per round:
`over_forward`, the figure of issue 19's "crossing the core" goal.
"""
import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import forwarding as fw  # noqa: E402
import nat  # noqa: E402


def plot(summary, path):
    """Each binary's cycles per packet over plain forwarding's, paired per round (median, on the
    worker's own CPU), per mode and session count; the goal's 1.3x as a line."""
    rows = [(k, v["over_forward"]["median_on_cpu"] or v["over_forward"]["median_wall"])
            for k, v in summary.items() if "over_forward" in v]
    if not rows:
        return
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(rows)), 4))
    ax.bar(range(len(rows)), [r[1] for r in rows])
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels([r[0] for r in rows], rotation=45, ha="right", fontsize=8)
    ax.axhline(1.3, color="red", linestyle="--", label="goal 1.3x")
    ax.set_ylabel("cycles/packet over plain forwarding (paired median)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--sessions", default="1000000")
    ap.add_argument("--window", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--forward", type=int, default=1, help="also plain forwarding (1) or not (0)")
    ap.add_argument("--modes", default="napt", help="crossing modes each binary runs: static, napt")
    args = ap.parse_args()
    bins = [b.split("=", 1) for b in args.binaries]
    counts = [int(x) for x in args.sessions.split(",")]
    modes = args.modes.split(",")
    label = lambda name, mode: name if modes == ["napt"] else "%s:%s" % (name, mode)  # noqa: E731
    fw.workdir = tempfile.mkdtemp(prefix="medix-natab-")
    if 0 in fw.ALL_CPUS and len(fw.ALL_CPUS) > 1:
        os.sched_setaffinity(0, {0})
    pcaps = {}
    for n in counts:
        pcaps[n] = os.path.join(fw.workdir, "flows-%d.pcap" % n)
        fw.write_pcap(pcaps[n], nat.flows(n, random.Random(7 + n)))
    runs = []
    opts = argparse.Namespace(start_timeout=180.0, warmup=args.warmup, window=args.window, binary=None)
    for rnd in range(args.rounds):
        order = bins[rnd % len(bins):] + bins[:rnd % len(bins)]
        for n in counts:
            this_round = [(label(name, mode), path, mode) for mode in modes for name, path in order]
            if args.forward:
                this_round.append(("forward", bins[-1][1], "forward"))
            for name, path, mode in this_round:
                opts.binary = path
                load0 = os.getloadavg()[0]
                try:
                    res = nat.run_point(opts, mode, n, pcaps[n], n)
                except Exception as e:  # noqa: BLE001
                    fw.log("%s %d failed: %s" % (name, n, e))
                    continue
                res.update(name=name, mode=mode, sessions_point=n, round=rnd, load=[load0, os.getloadavg()[0]])
                res["stages"] = fw.stage_breakdown(res.pop("runtime", None) or {})
                runs.append(res)
                fw.log("round %d %-8s %8d: %6.2f Mpps est, new %s/s (on-cpu %s/s), nat %s cyc/new, share %.2f, load %.1f" % (
                    rnd, name, n, res["pps"] / 1e6, res.get("new_sessions_per_s"), res.get("new_sessions_per_cpu_s"),
                    res.get("nat_cycles_new_session"), res.get("cpu_share") or 0, load0))
    tsc_hz, _ = fw.tsc_hz_from_system()
    summary = {}
    for n in counts:
        for name in [label(b[0], m) for m in modes for b in bins] + (["forward"] if args.forward else []):
            rs = [r for r in runs if r["name"] == name and r["sessions_point"] == n]
            if not rs:
                continue
            s = {"runs": len(rs)}
            for key in ("new_sessions_per_s", "new_sessions_per_cpu_s", "nat_cycles_new_session", "pps",
                        "nat_cycles_hit", "cpu_share", "first_pass_cpu_share"):
                v = [r[key] for r in rs if r.get(key) is not None]
                if v:
                    s[key] = {"min": min(v), "median": statistics.median(v), "max": max(v)}
            s["cycles_per_packet_best"] = round(tsc_hz / max(r["pps"] for r in rs), 1)
            s["cycles_per_packet_median"] = round(tsc_hz / statistics.median(r["pps"] for r in rs), 1)
            # Per-stage TSC cycles a packet (the stage stamps; a share of the time others took
            # on the core lands in them too), median over the rounds.
            stages = {st for r in rs for st in (r.get("stages") or {})}
            s["stages_median"] = {st: round(statistics.median(r["stages"][st] for r in rs if st in r.get("stages", {})), 1)
                                  for st in sorted(stages)}
            if name != "forward":
                fwd = {r["round"]: r for r in runs if r["name"] == "forward" and r["sessions_point"] == n}
                wall = [fwd[r["round"]]["pps"] / r["pps"] for r in rs if r["round"] in fwd]
                on_cpu = [fwd[r["round"]]["pps"] / r["pps"] * r["cpu_share"] / fwd[r["round"]]["cpu_share"]
                          for r in rs if r["round"] in fwd and r.get("cpu_share") and fwd[r["round"]].get("cpu_share")]
                if wall:
                    s["over_forward"] = {"paired_wall": sorted(round(x, 3) for x in wall),
                                         "median_wall": round(statistics.median(wall), 3),
                                         "paired_on_cpu": sorted(round(x, 3) for x in on_cpu),
                                         "median_on_cpu": round(statistics.median(on_cpu), 3) if on_cpu else None}
            summary["%s@%d" % (name, n)] = s
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git": fw.git_state(), "tsc_hz": tsc_hz,
           "cpu_model": fw.cpu_model(), "binaries": dict(bins), "rounds": args.rounds, "summary": summary,
           "runs": runs}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    plot(summary, os.path.splitext(args.out)[0] + ".png")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    fw.run(main)
