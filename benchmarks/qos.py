#!/usr/bin/env python3
"""QoS cost: medix-dp's forwarding with a policer on, and with a shaper on, against the same
forwarding with QoS off, in one invocation (benchmarks/README.md, "QoS cost").

Reuses benchmarks/forwarding.py's harness and topology (one tenant, VLAN 10 on a net_pcap port
replayed endlessly -> VLAN 20 on net_null, 10 routes in a DIR24_8 FIB, one worker core):

  off      the forwarding benchmark's config as it is (the reference);
  policer  plus a trTCM policer on the ingress interface whose rates no run reaches (every
           packet metered, coloured green and sent: the cost of the meter, not of drops);
  shaper   plus a shaper on the egress interface at a contract no run reaches, one class:
           every packet classified, queued in its ring and sent by the scheduler;
  wred     the same shaper with WRED on its class, at thresholds the queue never reaches
           (every packet through rte_red, none dropped): WRED's cost against `shaper`.

Writes benchmarks/results/qos/qos.{json,png}: cycles per packet and Mpps of each, and their
ratios to `off` at the same frame size.
"""
import argparse
import datetime
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import forwarding as fwd  # noqa: E402

log = fwd.log
MODES = ("off", "policer", "shaper", "wred")
ROUTES = 10

# Rates no run on this harness reaches (bytes a second): 1 Tbit/s. Bursts of 10 ms of it would
# pass 2^32; a few MB keep every packet green and the contract's bucket never empty.
FAST = 125_000_000_000
BURST = 4_000_000


def qos_config(path, base, mode):
    with open(base) as f:
        c = json.load(f)
    if mode == "policer":
        c["policers"] = [{"name": "bench-in", "tenant": "bench", "interface": "in10", "mode": "POLICER_TRTCM",
                          "cir": FAST, "cbs": BURST, "pir": FAST, "pbs": BURST}]
    elif mode in ("shaper", "wred"):
        c["shapers"] = [{"name": "bench-out", "interface": "out20", "rate": FAST, "burst": BURST,
                         "classes": [{"name": "all", "weight": 1, "queue_limit": 1024}]}]
        if mode == "wred":  # a queue of at most a burst or two: below min_th, never dropped
            c["shapers"][0]["classes"][0]["wred"] = {"green": {"min_th": 512, "max_th": 1000}, "ecn": True}
    with open(path, "w") as f:
        json.dump(c, f)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({p["frame_bytes"] for p in results["points"]})
    colours = {"off": "#9e9e9e", "policer": "#1f77b4", "shaper": "#ff7f0e", "wred": "#2ca02c"}
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    modes = [m for m in MODES if any(p["qos"] == m for p in results["points"])]
    width = 0.8 / len(modes)
    for i, mode in enumerate(modes):
        xs, ys, texts = [], [], []
        for j, s in enumerate(sizes):
            pt = next((p for p in results["points"] if p["frame_bytes"] == s and p["qos"] == mode), None)
            if not pt or not pt.get("mpps"):
                continue
            xs.append(j + (i - (len(modes) - 1) / 2) * width)
            ys.append(pt["cycles_per_packet"])
            texts.append("%.2f Mpps\n%.2fx" % (pt["mpps"], pt["cycles_to_off"]))
        bars = ax.bar(xs, ys, width, label=mode if mode != "off" else "QoS off (reference)", color=colours[mode])
        for b, t in zip(bars, texts):
            ax.annotate(t, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels(["%d B frames" % s for s in sizes])
    ax.set_ylabel("TSC cycles / packet (lower is better)")
    ax.set_title("QoS cost, one worker core, %s\n(labels: Mpps, cycles / QoS off's)" % results["cpu_model"],
                 fontsize=9)
    ax.legend(fontsize=8, loc="upper left")
    ax.margins(y=0.25)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/dataplane/medix-dp"))
    ap.add_argument("--sizes", default="64,1400", help="frame sizes on the wire, FCS included")
    ap.add_argument("--flows", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3, help="best of N per point")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--start-timeout", type=float, default=120.0)
    ap.add_argument("--disturbance", type=float, default=0.03)
    ap.add_argument("--quiet-wait", type=float, default=60.0)
    ap.add_argument("--stage-timing", choices=("on", "off"), default="on")
    ap.add_argument("--results", default=os.path.join(ROOT, "benchmarks/results/qos"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--modes", default=",".join(MODES), help="which of %s (off always runs)" % ",".join(MODES))
    args = ap.parse_args()
    modes = ["off"] + [m for m in MODES[1:] if m in args.modes.split(",")]

    sizes = [int(s) for s in args.sizes.split(",")]
    if not os.access(args.binary, os.X_OK):
        sys.exit("bench: %s is missing (scripts/build did not produce it)" % args.binary)
    os.makedirs(args.results, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="medix-bench-qos-")
    fwd.workdir = workdir  # forwarding's runners put their logs there; its cleanup removes it
    fwd.quiet_wait_left[0] = args.quiet_wait
    if 0 in fwd.ALL_CPUS and len(fwd.ALL_CPUS) > 1:
        os.sched_setaffinity(0, {0})
    t_begin = time.monotonic()
    # medix-dp from a copy: a rebuild during the run cannot mix binaries.
    binary = os.path.join(workdir, "medix-dp")
    shutil.copy2(args.binary, binary)
    run_args = argparse.Namespace(**vars(args))
    run_args.binary = binary

    rng = random.Random(args.seed)
    prefixes = fwd.random_prefixes(ROUTES, rng)
    base = os.path.join(workdir, "off.json")
    fwd.make_config(base, prefixes, "dir24_8")
    configs = {"off": base}
    for mode in modes[1:]:
        configs[mode] = os.path.join(workdir, mode + ".json")
        qos_config(configs[mode], base, mode)
    dests = fwd.flow_destinations(prefixes, args.flows, random.Random(args.seed * 1000 + ROUTES))
    pcaps = {}
    for s in sizes:
        pcaps[s] = os.path.join(workdir, "frames-%d.pcap" % s)
        fwd.write_pcap(pcaps[s], [fwd.frame(d, 1024 + i, s) for i, d in enumerate(dests)])

    points = [(s, mode) for s in sizes for mode in modes]
    runs = {pt: [] for pt in points}
    errors = {}
    # Rounds interleave the points so that a noisy moment does not land on one mode only.
    for rnd in range(args.runs):
        for pt in points:
            if pt in errors:
                continue
            s, mode = pt
            fwd.wait_quiet()
            try:
                res = fwd.run_medix(run_args, pcaps[s], configs[mode], 512)
            except Exception as e:  # noqa: BLE001
                errors[pt] = "%s: %s" % (type(e).__name__, e)
                log("%d B %s failed: %s" % (s, mode, e))
                continue
            res["disturbed"] = fwd.disturbed(res, args.disturbance)
            runs[pt].append(res)
            log("round %d %5d B  %-8s %7.2f Mpps%s%s" % (
                rnd + 1, s, mode, res["pps"] / 1e6, "  drops: %s" % res["drops"] if res["drops"] else "",
                "  DISTURBED" if res["disturbed"] else ""))

    tsc_hz, tsc_src = fwd.tsc_hz_from_system()
    dpdk_tsc_hz = next((float(r["runtime"]["tsc_hz"]) for rs in runs.values() for r in rs
                        if isinstance((r.get("runtime") or {}).get("tsc_hz"), (int, float))), None)
    if dpdk_tsc_hz and (not tsc_hz or abs(tsc_hz / dpdk_tsc_hz - 1) > 0.01):
        tsc_hz, tsc_src = dpdk_tsc_hz, "/medix/runtime tsc_hz"
    if not tsc_hz:
        sys.exit("bench: cannot tell the TSC rate")
    results = {
        "benchmark": "medix-dp QoS cost: VLAN->VLAN forwarding with a policer, with a shaper, and without, "
                     "one worker core, 10 routes (DIR24_8)",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": fwd.cpu_model(),
        "kernel": platform.release(),
        "binary": os.path.relpath(args.binary, ROOT) if args.binary.startswith(ROOT + "/") else args.binary,
        "git": fwd.git_state(),
        "tsc_hz": tsc_hz,
        "tsc_hz_source": tsc_src,
        "method": {
            "eal": "-l 0,1 --no-huge --no-pci; rx net_pcap infinite_rx=1, tx net_null no-rx=1",
            "modes": {"off": "forwarding benchmark config", "policer": "trTCM on in10, 1 Tbit/s (all green)",
                      "shaper": "shaper on out20, 1 Tbit/s contract, one class (queue 1024)",
                      "wred": "the shaper with WRED on its class, green 512-1000 packets (none dropped)"},
            "flows": args.flows, "warmup_s": args.warmup, "window_s": args.window, "runs": args.runs,
            "best_of": "highest Mpps of the runs; rounds interleave the modes",
            "cycles_per_packet": "TSC Hz / packets per second (the worker polls at 100%)",
        },
        "points": [],
    }
    for s, mode in points:
        pt = {"frame_bytes": s, "qos": mode}
        if not runs[s, mode]:
            pt["error"] = errors.get((s, mode), "no run")
            results["points"].append(pt)
            continue
        best = max(runs[s, mode], key=lambda x: x["pps"])
        cpp = tsc_hz / best["pps"]
        stages = fwd.stage_breakdown(best["runtime"])
        pt.update({
            "mpps": round(best["pps"] / 1e6, 3),
            "cycles_per_packet": round(cpp, 1),
            "cycles_per_packet_on_cpu": round(cpp * best["cpu_share"], 1) if best.get("cpu_share") else None,
            "stages": stages,
            "drops": best["drops"],
            "forwarded_share": best["forwarded_share"],
            "runs_mpps": [round(x["pps"] / 1e6, 3) for x in runs[s, mode]],
            "worker_cpu_share": best["cpu_share"], "steal": best["steal"], "disturbed": best["disturbed"],
        })
        results["points"].append(pt)
    for p in results["points"]:
        ref = next((q for q in results["points"] if q["frame_bytes"] == p["frame_bytes"] and q["qos"] == "off"
                    and q.get("mpps")), None)
        if ref and p.get("mpps"):
            p["cycles_to_off"] = round(p["cycles_per_packet"] / ref["cycles_per_packet"], 3)
            p["mpps_to_off"] = round(p["mpps"] / ref["mpps"], 3)
            p["cycles_over_off"] = round(p["cycles_per_packet"] - ref["cycles_per_packet"], 1)
            if p.get("cycles_per_packet_on_cpu") and ref.get("cycles_per_packet_on_cpu"):
                p["on_cpu_cycles_to_off"] = round(p["cycles_per_packet_on_cpu"] / ref["cycles_per_packet_on_cpu"], 3)
    if errors:
        results["errors"] = {"%d B %s" % k: v for k, v in errors.items()}
    results["elapsed_s"] = round(time.monotonic() - t_begin, 1)
    fwd.save_results(args.results, "qos", results, plot)
    print("%-8s %6s %8s %9s %9s %9s %9s  %s" % ("qos", "frame", "Mpps", "cyc/pkt", "x off", "Mpps/off",
                                               "on-cpu x", "stages"))
    for p in results["points"]:
        if not p.get("mpps"):
            print("%-8s %6d  %s" % (p["qos"], p["frame_bytes"], p.get("error")))
            continue
        print("%-8s %6d %8.2f %9.1f %9.3f %9.3f %9s  %s" % (
            p["qos"], p["frame_bytes"], p["mpps"], p["cycles_per_packet"], p["cycles_to_off"], p["mpps_to_off"],
            p.get("on_cpu_cycles_to_off", "-"), " ".join("%s=%.0f" % kv for kv in p["stages"].items())))
    log("results in %s (%.0f s)" % (args.results, results["elapsed_s"]))
    return 1 if errors else 0


if __name__ == "__main__":
    fwd.run(main)
