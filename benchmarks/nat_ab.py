#!/usr/bin/python3
"""NAPT session rate and established crossing, binaries A and B (and more) alternating in one
invocation: round r runs every binary once at each session count (order rotated each round),
plus plain forwarding with the same pcap (from the last binary). Uses benchmarks/nat.py's
run_point. Prints and writes per-binary minimum/median/best of: new sessions per second (wall,
and per second of the worker's own CPU time), the nat stage's cycles per new session, cycles
per established packet and Mpps; the machine's load average around each run.

  nat_ab.py OUT.json NAME=BINARY NAME=BINARY ... [--rounds 6] [--sessions 1000000]
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("binaries", nargs="+")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--sessions", default="1000000")
    ap.add_argument("--window", type=float, default=2.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--forward", type=int, default=1, help="also plain forwarding (1) or not (0)")
    args = ap.parse_args()
    bins = [b.split("=", 1) for b in args.binaries]
    counts = [int(x) for x in args.sessions.split(",")]
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
            this_round = [(name, path, "napt") for name, path in order]
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
                res.update(name=name, sessions_point=n, round=rnd, load=[load0, os.getloadavg()[0]])
                res.pop("runtime", None)
                runs.append(res)
                fw.log("round %d %-8s %8d: %6.2f Mpps est, new %s/s (on-cpu %s/s), nat %s cyc/new, share %.2f, load %.1f" % (
                    rnd, name, n, res["pps"] / 1e6, res.get("new_sessions_per_s"), res.get("new_sessions_per_cpu_s"),
                    res.get("nat_cycles_new_session"), res.get("cpu_share") or 0, load0))
    tsc_hz, _ = fw.tsc_hz_from_system()
    summary = {}
    for n in counts:
        for name in [b[0] for b in bins] + (["forward"] if args.forward else []):
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
            summary["%s@%d" % (name, n)] = s
    out = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "git": fw.git_state(), "tsc_hz": tsc_hz,
           "cpu_model": fw.cpu_model(), "binaries": dict(bins), "rounds": args.rounds, "summary": summary,
           "runs": runs}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    fw.run(main)
