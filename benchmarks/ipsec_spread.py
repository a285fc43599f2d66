#!/usr/bin/python3
# SPDX-License-Identifier: BSD-3-Clause
"""One ESP SA, one elephant flow, over 1 and 2 workers (docs/ipsec.md, "One SA over several
workers"). Outbound (plain -> encrypt -> ESP), one inner UDP flow (a single 5-tuple, like an
imaging transfer), net_pcap (one rx queue per worker, each replaying the flow) -> net_null.

Points, all in one invocation, alternating, best of --runs each:
  1w        one worker: it owns the SA and does everything;
  2w-owned  two workers, the tunnel not spread: the SA's owner encrypts everything, the other
            worker hands its packets over (what medix-dp did before `spread`);
  2w-spread two workers, `"spread": true`: each encrypts what it receives, the owner puts it
            in sequence order and sends it.
Reported: ESP packets sent per second (both tx queues) and inner Gbit/s, the ratio of each
point to 1w, and what was dropped (handoff_full: the owner's ring overflowed).

On a 2-CPU machine the second worker shares CPU 0 with the main lcore (asleep) and with this
script (asleep while measuring) and anything else running: the figure is what two cores
allow, not a scaling curve.

  ipsec_spread.py [--alg gcm|cbc] [--size 1400] [--runs 3]
  ipsec_spread.py --replot results/ipsec-spread-gcm-1400.json   # its PNG again, nothing run

Writes results/ipsec-spread-<alg>-<size>.{json,png}.
"""
import argparse
import copy
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import forwarding as fwd  # noqa: E402
import ipsec  # noqa: E402

log = fwd.log


def flow_pcap(path, size, count):
    """`count` inner packets of one flow (one 5-tuple), `size` bytes of inner IPv4 each."""
    from scapy.all import Ether, IP, UDP, Raw, wrpcap
    frames = [Ether(dst=ipsec.H0_MAC, src=ipsec.HOST_MAC) /
              IP(src=ipsec.HOST, dst="10.0.0.5", ttl=64, id=i) / UDP(sport=40000, dport=11112) /
              Raw(bytes((i + k) & 0xFF for k in range(size - 28))) for i in range(count)]
    wrpcap(path, frames)


def config(path, alg, spread):
    base = os.path.join(ipsec.workdir, "base.json")
    ipsec.medix_config(base, "out", alg)
    with open(base) as f:
        cfg = json.load(f)
    cfg = copy.deepcopy(cfg)
    cfg["tunnels"][0]["spread"] = spread
    with open(path, "w") as f:
        json.dump(cfg, f, indent=1)


def worker_threads(pid, workers):
    """/proc paths of the worker lcores' threads (lcore-worker-1 ..)."""
    found = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                name = f.read().strip()
        except OSError:
            continue
        for k in range(1, workers + 1):
            if name in ("lcore-worker-%d" % k, "rte-worker-%d" % k):
                found[k] = "/proc/%d/task/%s" % (pid, tid)
    return [found[k] for k in sorted(found)]


def on_cpu(task):
    """ns the thread spent on a CPU (schedstat)."""
    try:
        with open(task + "/schedstat") as f:
            return int(f.read().split()[0])
    except OSError:
        return 0


def run_point(args, pcap, cfg, workers):
    """medix-dp with `workers` worker lcores (lcore 2 on CPU 0 beside the sleeping main lcore)."""
    prefix = fwd.new_prefix()
    lcores = "0@0,1@1" if workers == 1 else "0@0,1@1,2@0"
    rx = ",".join(["rx_pcap=%s" % pcap] * workers)
    cmd = [args.binary, "--lcores", lcores, "--no-huge", "-m", "1024", "--no-pci", "--file-prefix", prefix,
           "--vdev", "net_pcap0,%s,infinite_rx=1" % rx, "--vdev", "net_null0,no-rx=1",
           "--", "--config", cfg]
    p = fwd.start(cmd, os.path.join(ipsec.workdir, prefix + ".log"))
    try:
        tel = fwd.wait_for(p, prefix, r"medix-dp: ready", args.start_timeout)
        try:
            # Every worker thread's time on a CPU over the window: on a shared machine the
            # workers do not get whole cores, so packets per CPU-second is given beside pps.
            threads = []
            res = fwd.measure(p.pid, lambda: fwd.by_name(tel("/medix/ports"))["out"]["tx_packets"],
                              args.warmup, args.window,
                              lambda: (tel("/medix/drops"), [on_cpu(t) for t in threads or
                                                             threads.extend(worker_threads(p.pid, workers)) or threads]))
            (d0, c0), (d1, c1) = res.pop("samples")
            res["worker_cpu_s_per_s"] = round(sum(b - a for a, b in zip(c0, c1)) / 1e9 / args.window, 3)
            res["drops"] = {k: v - (d0 or {}).get(k, 0) for k, v in (d1 or {}).items() if v - (d0 or {}).get(k, 0)}
        finally:
            tel.close()
    finally:
        fwd.stop(p)
        fwd.cleanup_runtime_dir(prefix)
    return res


def plot(results, path):
    """Mpps per point (every run as a dot, the best as the bar), each bar labelled with its
    worker CPU-s/s: on this shared machine the CPU the workers got says as much as the rate."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(results["points"])
    pts = [results["points"][n] for n in names]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.bar(names, [p["mpps"] for p in pts], color=["#8c8c8c", "#dd8452", "#4c72b0"][:len(pts)])
    for i, p in enumerate(pts):
        ax.scatter([i] * len(p["all_mpps"]), p["all_mpps"], color="black", s=10, zorder=3)
        ax.annotate("%.2f Mpps\n%.2f CPU-s/s" % (p["mpps"], p["worker_cpu_s_per_s"]), (i, p["mpps"]),
                    ha="center", va="bottom", fontsize=8, xytext=(0, 2), textcoords="offset points")
    ax.set_ylabel("ESP packets out, Mpps (best of %d)" % results["runs"])
    ax.set_ylim(0, max(max(p["all_mpps"]) for p in pts) * 1.3)
    ax.set_title("%s, %d B inner, one SA, one flow (%s)" % (results["alg"], results["inner_bytes"],
                                                         results["date"][:10]), fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/dataplane/medix-dp"))
    ap.add_argument("--alg", default="gcm", choices=["gcm", "cbc"])
    ap.add_argument("--size", type=int, default=1400, help="inner IPv4 bytes (64..1400)")
    ap.add_argument("--packets", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--window", type=float, default=1.5)
    ap.add_argument("--start-timeout", type=float, default=60.0)
    ap.add_argument("--results", default=os.path.join(ROOT, "benchmarks/results"))
    ap.add_argument("--replot", metavar="JSON", help="draw the PNG again from a results file, run nothing")
    args = ap.parse_args()
    if args.replot:
        with open(args.replot) as f:
            plot(json.load(f), os.path.splitext(args.replot)[0] + ".png")
        return 0
    if not os.access(args.binary, os.X_OK):
        sys.exit("bench: %s is missing (scripts/build did not produce it)" % args.binary)
    ipsec.workdir = fwd.workdir = tempfile.mkdtemp(prefix="medix-bench-spread-")
    args.binary = shutil.copy2(args.binary, os.path.join(ipsec.workdir, "medix-dp"))
    t_begin = time.monotonic()
    pcap = os.path.join(ipsec.workdir, "flow.pcap")
    flow_pcap(pcap, args.size, args.packets)
    cfgs = {}
    for spread in (False, True):
        cfgs[spread] = os.path.join(ipsec.workdir, "spread-%d.json" % spread)
        config(cfgs[spread], args.alg, spread)
    points = [("1w", 1, False), ("2w-owned", 2, False), ("2w-spread", 2, True)]
    runs = {name: [] for name, _, _ in points}
    for r in range(args.runs):
        for name, workers, spread in points:
            res = run_point(args, pcap, cfgs[spread], workers)
            log("run %d %-9s %.3f Mpps on %.2f worker CPU-s/s  drops %s"
                % (r + 1, name, res["pps"] / 1e6, res["worker_cpu_s_per_s"], res["drops"]))
            runs[name].append(res)
    inner_bits = args.size * 8
    results = {
        "benchmark": "one ESP SA, one inner flow, outbound, 1 vs 2 workers (docs/ipsec.md)",
        "alg": ipsec.ALGS[args.alg], "inner_bytes": args.size, "runs": args.runs,
        "cpus": len(fwd.ALL_CPUS), "cpu": fwd.cpu_model(), "git": fwd.git_state(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": "net_pcap (a queue per worker, infinite_rx, the same one-flow pcap) -> net_null; "
                  "ESP packets sent per second over %.1f s after %.1f s, best of %d, points alternating; "
                  "worker lcore 2 on CPU 0 with the sleeping main lcore" % (args.window, args.warmup, args.runs),
        "points": {},
    }
    for name, workers, spread in points:
        best = max(runs[name], key=lambda x: x["pps"])
        results["points"][name] = {
            "workers": workers, "spread": spread, "mpps": round(best["pps"] / 1e6, 4),
            "inner_gbit_s": round(best["pps"] * inner_bits / 1e9, 3),
            "all_mpps": [round(x["pps"] / 1e6, 4) for x in runs[name]],
            "drops": best["drops"], "worker_cpu_s_per_s": best["worker_cpu_s_per_s"],
            "mpps_per_worker_cpu_s": round(best["pps"] / 1e6 / best["worker_cpu_s_per_s"], 4)
            if best["worker_cpu_s_per_s"] else None,
            "best_mpps_per_worker_cpu_s": max(round(x["pps"] / 1e6 / x["worker_cpu_s_per_s"], 4)
                                              for x in runs[name] if x["worker_cpu_s_per_s"]),
            "steal": best["steal"]}
    one = results["points"]["1w"]["mpps"]
    for p in results["points"].values():
        p["to_1w"] = round(p["mpps"] / one, 3) if one else None
    results["elapsed_s"] = round(time.monotonic() - t_begin, 1)
    os.makedirs(args.results, exist_ok=True)
    out = os.path.join(args.results, "ipsec-spread-%s-%d.json" % (args.alg, args.size))
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    plot(results, os.path.splitext(out)[0] + ".png")
    for name, p in results["points"].items():
        print("%-10s %7.3f Mpps  %6.2f Gbit/s inner  x%.2f of 1w  on %.2f worker CPU-s/s  "
              "best %.3f Mpps per worker CPU-s  drops %s"
              % (name, p["mpps"], p["inner_gbit_s"], p["to_1w"], p["worker_cpu_s_per_s"],
                 p["best_mpps_per_worker_cpu_s"], p["drops"]))
    log("results in %s (%.0f s)" % (out, results["elapsed_s"]))
    return 0


if __name__ == "__main__":
    fwd.run(main)
