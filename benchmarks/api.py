#!/usr/bin/python3
"""API benchmark: how fast medix-dp takes changes through its gRPC API, what a route costs in
memory, and what a continuous stream of changes costs the forwarding worker.

Called by benchmarks/api after scripts/setup and scripts/build.
Reuses benchmarks/forwarding.py's harness (config, pcap, processes) and test/api/medixapi.py's
client. Every process it starts runs in its own session and is killed on exit; its temporary
files are removed on exit.

One medix-dp, `-l 0,1 --no-huge -m 2048`, rx net_pcap infinite_rx=1 -> tx net_null (the
forwarding benchmark's ports, config and 64-byte frames: tenant `bench`, 1,024 routes, 1,024
flows), plus a tenant `bulk` (max_routes = N + 64) with an interface on the null port. Traffic
runs the whole time. In order:

 1. bulk: N (1,000,000) routes via one gateway into `bulk` in ONE transaction: routes/s (wall
    time of the Apply RPC at the client, request built beforehand); VmRSS of medix-dp before,
    right after and 2 s after -> bytes per route; VmHWM (the peak). Then List of all N routes
    (100,000 per page), timed.
 2. latency: single-route transactions (CREATE, DELETE alternately, distinct prefixes) into
    `bench` with the N routes present in `bulk`, p50/p99/max; then the N routes deleted in one
    transaction (timed, and VmRSS after); then the same latency series again on the small FIBs.
 3. forwarding under updates: windows of W s, alternately idle and with a client thread applying
    single-route transactions (or batches, --stream-batch) back to back, ROUNDS of each,
    interleaved. Per window: packets/s from GetCounters (port out tx), TSC Hz / pps (the worker
    polls at 100%), per-stage cycles/packet from GetRuntime deltas, the worker's share of its
    CPU (schedstat) and drops; the updates applied per second in the window. A window in which
    the worker lost more than 3% of its CPU to other processes (this machine is shared) is
    marked disturbed, run again (up to --extra-rounds), and left out of the medians.
 4. the same N routes in transactions of 10,000 (--batched) on a fresh medix-dp: routes/s and
    the memory a route keeps when no giant transaction's buffers linger in the allocator.

The latencies are those seen by a Python client over the unix socket, whose floor (a GetRuntime
round trip) is ~0.08 ms on these machines. On a 2-core machine anything else running on CPU 0
time-slices the client and the API threads at the scheduler tick (4 ms), which shows as p99
outliers of 8-20 ms: /proc/loadavg is recorded with each series.

Results: benchmarks/results/api.json and api.png.
"""
import argparse
import datetime
import json
import os
import platform
import random
import signal
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "api"))

import forwarding as fwd  # noqa: E402
import medixapi as api  # noqa: E402
from medixapi import pb, dp, create, delete, route_via, rpc  # noqa: E402

BULK_IF_MAC = "02:00:00:00:03:01"
BULK_VLAN, BULK_ADDR, BULK_GW = 30, "192.168.3.1/24", "192.168.3.2"


def git_head():
    try:
        import subprocess
        r = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"], capture_output=True,
                           text=True, timeout=10)
        return r.stdout.strip() or None
    except Exception:  # noqa: BLE001
        return None


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def log(*a):
    print("api-bench:", *a, file=sys.stderr, flush=True)


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


def prefix_str(p):
    return "%d.%d.%d.0/24" % (p >> 16, (p >> 8) & 255, p & 255)


def make_config(path, prefixes, bulk_routes):
    """forwarding.py's config (tenant bench, in10/out20, the routes) plus tenant `bulk`."""
    fwd.make_config(path, prefixes)
    with open(path) as f:
        cfg = json.load(f)
    cfg["tenants"].append({"name": "bulk", "description": "API benchmark: bulk routes",
                           "max_routes": bulk_routes + 64})
    cfg["interfaces"].append({"name": "bulk30", "tenant": "bulk", "port": "out", "vlan": BULK_VLAN,
                              "addresses": [BULK_ADDR], "mac": BULK_IF_MAC})
    cfg["neighbours"].append({"interface": "bulk30", "address": BULK_GW, "mac": "02:00:00:00:03:02"})
    with open(path, "w") as f:
        json.dump(cfg, f)


class Sampler:
    """Counters of one window: out tx packets, per-stage runtime, worker CPU share, drops."""

    def __init__(self, client, pid):
        self.c = client
        self.pid = pid
        self.task = fwd.worker_thread(pid)

    def sample(self):
        cn = self.c.counters()
        rt = self.c.runtime()
        return {"t": time.monotonic(), "out_tx": next(p.tx_packets for p in cn.ports if p.name == "out"),
                "in_rx": next(p.rx_packets for p in cn.ports if p.name == "in"),
                "drops": {x.reason: x.packets for x in cn.drops},
                "stages": {s.stage: (s.calls, s.packets, s.cycles) for s in rt.stages},
                "tsc_hz": rt.tsc_hz, "sched": fwd.sched_sample(self.task), "version": cn.version}

    @staticmethod
    def window(a, b, tsc_hz):
        dt = b["t"] - a["t"]
        pps = (b["out_tx"] - a["out_tx"]) / dt
        stages = {}
        for name, (calls, pkts, cyc) in b["stages"].items():
            c0, p0, y0 = a["stages"].get(name, (0, 0, 0))
            if pkts - p0 > 0:
                stages[name] = round((cyc - y0) / (pkts - p0), 1)
        tick = os.sysconf("SC_CLK_TCK")
        s0, s1 = a["sched"], b["sched"]
        return {
            "seconds": round(dt, 2),
            "mpps": round(pps / 1e6, 3),
            "cycles_per_packet": round(tsc_hz / pps, 1) if pps else None,
            # What the worker spent per packet while it had its CPU: TSC Hz x on-CPU share / pps
            # (other processes of a shared machine take the worker's core now and then).
            "cycles_per_packet_on_cpu": round(tsc_hz * (s1[0] - s0[0]) / 1e9 / dt / pps, 1)
            if pps and s1[0] else None,
            "stages": stages,
            "stages_sum": round(sum(stages.values()), 1),
            "drops": {k: v - a["drops"].get(k, 0) for k, v in b["drops"].items() if v - a["drops"].get(k, 0)},
            "worker_cpu_share": round((s1[0] - s0[0]) / 1e9 / dt, 3) if s1[0] else None,
            "steal": round((s1[2] - s0[2]) / tick / dt, 3),
            "versions": b["version"] - a["version"],
        }


def single_route_latencies(client, tenant, via_if, gw, count, base, budget):
    """`count` single-route transactions (CREATE then DELETE of distinct /32s), ms each."""
    out = []
    t_end = time.monotonic() + budget
    for i in range(count):
        if time.monotonic() > t_end:
            break
        prefix = "%d.%d.%d.%d/32" % (base, (i // 2) >> 16 & 255, (i // 2) >> 8 & 255, (i // 2) & 255)
        op = create(route_via(tenant, prefix, via_if, gw)) if i % 2 == 0 else \
            delete(pb.Route(tenant=tenant, prefix=prefix))
        req = dp.ApplyRequest(operations=[op])
        t = time.perf_counter()
        client.stub.Apply(req, timeout=30)
        out.append((time.perf_counter() - t) * 1000)
    if len(out) % 2:  # the last CREATE: delete it again
        i = len(out) - 1
        prefix = "%d.%d.%d.%d/32" % (base, (i // 2) >> 16 & 255, (i // 2) >> 8 & 255, (i // 2) & 255)
        client.apply([delete(pb.Route(tenant=tenant, prefix=prefix))])
    return out


def lat_summary(ms):
    if not ms:
        return {"count": 0}
    return {"count": len(ms), "p50_ms": round(pct(ms, 50), 3), "p90_ms": round(pct(ms, 90), 3),
            "p99_ms": round(pct(ms, 99), 3), "max_ms": round(max(ms), 3),
            "mean_ms": round(statistics.mean(ms), 3)}


class Stream(threading.Thread):
    """Applies changes back to back until stopped: single-route create/delete pairs, or
    batches of `batch` routes created then deleted (distinct prefixes in 10.x/8, unused by the
    traffic)."""

    def __init__(self, target, batch, rate=0):
        super().__init__(daemon=True)
        self.rate = rate  # route changes per second at most; 0: as fast as the server takes them
        self.client = api.Client(target)
        self.batch = batch
        self.running = threading.Event()
        self.quit = False
        self.count = 0   # route changes applied
        self.txns = 0
        self.errors = []
        self.i = 0

    def run(self):
        c = self.client
        while not self.quit:
            if not self.running.wait(0.05):
                continue
            n = self.batch
            base = self.i
            self.i += n
            prefixes = ["10.%d.%d.%d/32" % ((base + k) >> 16 & 255, (base + k) >> 8 & 255, (base + k) & 255)
                        for k in range(n)]
            for ops in ([create(route_via("bench", p, "out20", fwd.GATEWAY)) for p in prefixes],
                        [delete(pb.Route(tenant="bench", prefix=p)) for p in prefixes]):
                t = time.monotonic()
                err, _ = rpc(c.apply, ops, 0, 30)
                if err is not None:
                    self.errors.append("%s %s" % (err.code().name, err.details()))
                    time.sleep(0.1)
                else:
                    self.count += n
                    self.txns += 1
                if self.rate:
                    time.sleep(max(0.0, n / self.rate - (time.monotonic() - t)))

    def stop(self):
        self.quit = True
        self.running.set()
        self.join(30)
        self.client.close()


def forwarding_under_updates(args, client, target, pid, tsc_hz):
    sampler = Sampler(client, pid)
    stream = Stream(target, args.stream_batch, args.stream_rate)
    stream.start()
    rounds = {"idle": [], "updating": []}

    def clean(mode):
        return [w for w in rounds[mode] if not w["disturbed"]]

    plan = [(r, mode) for r in range(args.rounds) for mode in ("idle", "updating")]
    extra = 0
    try:
        while plan:
            r, mode = plan.pop(0)
            if True:
                if mode == "updating":
                    stream.running.set()
                time.sleep(args.warmup)
                c0, t0 = stream.count, time.monotonic()
                a = sampler.sample()
                time.sleep(args.window)
                b = sampler.sample()
                c1, t1 = stream.count, time.monotonic()
                stream.running.clear()
                w = Sampler.window(a, b, tsc_hz)
                w["route_changes_per_second"] = round((c1 - c0) / (t1 - t0))
                w["loadavg"] = loadavg()
                share = w["worker_cpu_share"]
                w["disturbed"] = (share is not None and share < 1 - args.disturbance) or w["steal"] > args.disturbance
                rounds[mode].append(w)
                log("round %d %-8s %7.2f Mpps %6.1f cycles/pkt (on CPU %5.1f, stages %5.1f)  %6d route changes/s  "
                    "worker CPU %s%s" % (r + 1, mode, w["mpps"], w["cycles_per_packet"] or 0,
                                         w["cycles_per_packet_on_cpu"] or 0, w["stages_sum"],
                                         w["route_changes_per_second"], share, "  DISTURBED" if w["disturbed"] else ""))
                time.sleep(0.3)  # let the stream's last transaction finish
                # A window in which the worker lost its CPU to something else says nothing
                # about medix-dp: run that mode again (a few times at most).
                if w["disturbed"] and extra < args.extra_rounds * 2:
                    extra += 1
                    plan.append((r, mode))
    finally:
        stream.stop()

    def med(mode, key):
        ws = clean(mode) or rounds[mode]
        vals = [w[key] for w in ws if w.get(key) is not None]
        return round(statistics.median(vals), 2) if vals else None

    def med_all(mode, key):
        vals = [w[key] for w in rounds[mode] if w.get(key) is not None]
        return round(statistics.median(vals), 2) if vals else None

    summary = {m: {"mpps_median": med(m, "mpps"), "cycles_per_packet_median": med(m, "cycles_per_packet"),
                   "cycles_per_packet_on_cpu_median_all_windows": med_all(m, "cycles_per_packet_on_cpu"),
                   "worker_cpu_share_median_all_windows": med_all(m, "worker_cpu_share"),
                   "undisturbed_windows": len(clean(m)),
                   "stages_sum_median": med(m, "stages_sum"),
                   "route_changes_per_second_median": med(m, "route_changes_per_second")} for m in rounds}
    i, u = summary["idle"], summary["updating"]
    if i["cycles_per_packet_median"] and u["cycles_per_packet_median"]:
        summary["cycles_per_packet_increase"] = round(u["cycles_per_packet_median"] - i["cycles_per_packet_median"], 1)
        summary["cycles_per_packet_ratio"] = round(u["cycles_per_packet_median"] / i["cycles_per_packet_median"], 3)
        summary["stages_sum_increase"] = round(u["stages_sum_median"] - i["stages_sum_median"], 1)
    a, b = i["cycles_per_packet_on_cpu_median_all_windows"], u["cycles_per_packet_on_cpu_median_all_windows"]
    if a and b:
        summary["cycles_per_packet_on_cpu_increase"] = round(b - a, 1)
    summary["stream"] = {"batch": args.stream_batch, "rate_limit": args.stream_rate, "transactions": stream.txns,
                         "errors": stream.errors[:5]}
    summary["windows_used"] = {m: len(clean(m)) or len(rounds[m]) for m in rounds}
    summary["windows_disturbed"] = {m: len(rounds[m]) - len(clean(m)) for m in rounds}
    summary["rounds"] = rounds
    return summary


def start_medix(args, config, pcap):
    """A medix-dp on the forwarding harness's ports; (process, API client)."""
    prefix = fwd.new_prefix()
    cmd = [args.binary] + fwd.eal_args(prefix, args.mem, pcap) + ["--", "--config", config]
    p = fwd.start(cmd, os.path.join(fwd.workdir, prefix + ".log"))
    tel = fwd.wait_for(p, prefix, r"medix-dp: ready", 120)
    tel.close()
    sock = "/var/run/dpdk/%s/api.sock" % prefix
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.1)
    client = api.Client("unix:" + sock)
    client.wait_ready(10)
    p.prefix = prefix
    p.target = "unix:" + sock
    return p, client


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])


def batched_memory(args, config, pcap, bulk_prefixes):
    """The same N routes in transactions of args.batched on a fresh medix-dp: routes/s and the
    memory a route keeps once no big transaction's buffers are around."""
    p, client = start_medix(args, config, pcap)
    try:
        time.sleep(1)
        rss0 = status_kb(p.pid, "VmRSS")
        reqs = [api.encode_apply(api.encode_route_op(dp.Operation.CREATE, "bulk", prefix_str(x), "bulk30", BULK_GW)
                                 for x in bulk_prefixes[s:s + args.batched])
                for s in range(0, len(bulk_prefixes), args.batched)]
        t = time.monotonic()
        for raw in reqs:
            client.raw_apply(raw, timeout=600)
        apply_s = time.monotonic() - t
        time.sleep(2)
        rss1, hwm = status_kb(p.pid, "VmRSS"), status_kb(p.pid, "VmHWM")
        n = len(bulk_prefixes)
        return {"routes": n, "routes_per_transaction": args.batched, "transactions": len(reqs),
                "apply_s": round(apply_s, 2), "apply_routes_per_second": round(n / apply_s),
                "rss_kb_before": rss0, "rss_kb_after_2s": rss1, "hwm_kb_after": hwm,
                "bytes_per_route": round((rss1 - rss0) * 1024 / n, 1),
                "peak_bytes_per_route": round((hwm - rss0) * 1024 / n, 1)}
    finally:
        client.close()
        fwd.stop(p)
        fwd.cleanup_runtime_dir(p.prefix)


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(10, 3.2), dpi=100)
    # 1: bulk
    ax = axes[0]
    b = results.get("bulk", {})
    bars, labels = [], []
    for key, label in (("apply_routes_per_second", "apply"), ("delete_routes_per_second", "delete"),
                       ("list_routes_per_second", "list")):
        if b.get(key):
            bars.append(b[key] / 1e3)
            labels.append(label)
    ax.bar(labels, bars, color=["#1f77b4", "#ff7f0e", "#2ca02c"][:len(bars)])
    for x, y in enumerate(bars):
        ax.annotate("%.0fk" % y, (x, y), ha="center", va="bottom", fontsize=7)
    ax.set_ylabel("thousand routes / s")
    ax.set_title("%s routes, one transaction\n%s B/route (RSS); %s B/route in txns of %s" % (
        fwd.human_routes(b.get("routes", 0)), b.get("bytes_per_route", "?"),
        results.get("bulk_batched", {}).get("bytes_per_route", "?"),
        fwd.human_routes(results.get("bulk_batched", {}).get("routes_per_transaction", 0))), fontsize=7)
    # 2: latency CDFs
    ax = axes[1]
    for key, label, color in (("with_bulk", "with %s routes" % fwd.human_routes(b.get("routes", 0)), "#d62728"),
                              ("small", "small FIBs", "#1f77b4")):
        ms = results.get("latency", {}).get(key, {}).get("samples_ms")
        if ms:
            v = sorted(ms)
            ax.plot(v, [(i + 1) / len(v) for i in range(len(v))], label=label, color=color)
    ax.set_xscale("log")
    ax.set_xlabel("single-route transaction, ms")
    ax.set_ylabel("fraction")
    ax.set_title("Apply latency (CDF)", fontsize=8)
    ax.legend(fontsize=7)
    # 3: cycles per packet, idle vs updating, every round
    ax = axes[2]
    fu = results.get("forwarding_under_updates", {})
    for x, mode in enumerate(("idle", "updating")):
        ws = fu.get("rounds", {}).get(mode, [])
        oncpu = [w["cycles_per_packet_on_cpu"] for w in ws if w.get("cycles_per_packet_on_cpu")]
        wall = [w["cycles_per_packet"] for w in ws if w.get("cycles_per_packet")]
        if oncpu:
            ax.bar(x, statistics.median(oncpu), color=["#9e9e9e", "#ff7f0e"][x], width=0.6)
            ax.annotate("%.0f" % statistics.median(oncpu), (x, statistics.median(oncpu)), ha="center",
                        va="bottom", fontsize=7)
        if wall:
            ax.scatter([x] * len(wall), wall, color="k", s=8, zorder=3, label="wall, per window" if x == 0 else None)
    ax.legend(fontsize=6, loc="upper left")
    ax.set_xticks([0, 1])
    ax.set_xticklabels(["idle", "updating\n(%s changes/s)" % fu.get("updating", {}).get(
        "route_changes_per_second_median", "?")], fontsize=7)
    ax.set_ylabel("TSC cycles / packet")
    ax.set_title("forwarding, 64 B, one worker\n(bars: while the worker had its CPU, median)", fontsize=8)
    fig.suptitle("medix-dp API (%s, %s)" % (results["cpu_model"], results["date"][:10]), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/dataplane/medix-dp"))
    ap.add_argument("--routes", type=int, default=1000000, help="routes in the bulk transaction")
    ap.add_argument("--latency-txns", type=int, default=1000)
    ap.add_argument("--latency-budget", type=float, default=60, help="s per latency series at most")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--stream-batch", type=int, default=1, help="routes per transaction of the update stream")
    ap.add_argument("--stream-rate", type=int, default=0,
                    help="route changes per second at most in the update stream (0: back to back)")
    ap.add_argument("--disturbance", type=float, default=0.03,
                    help="a window is disturbed when the worker lost more than this share of its CPU")
    ap.add_argument("--extra-rounds", type=int, default=3, help="re-runs of disturbed windows, per mode")
    ap.add_argument("--batched", type=int, default=10000,
                    help="also apply the N routes in transactions of this many on a fresh medix-dp, for the "
                    "steady memory per route (0: skip)")
    ap.add_argument("--mem", type=int, default=2048, help="EAL -m MB")
    ap.add_argument("--skip-bulk", action="store_true")
    ap.add_argument("--results", default=os.path.join(ROOT, "benchmarks/results"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    if not os.access(args.binary, os.X_OK):
        sys.exit("api-bench: %s is missing (scripts/build did not produce it)" % args.binary)
    api.self_test()
    os.makedirs(args.results, exist_ok=True)
    fwd.workdir = tempfile.mkdtemp(prefix="medix-api-bench-")
    if 0 in fwd.ALL_CPUS and len(fwd.ALL_CPUS) > 1:
        os.sched_setaffinity(0, {0})  # the client stays on the main lcore's CPU
    t_begin = time.monotonic()

    rng = random.Random(args.seed)
    prefixes = fwd.random_prefixes(1024, rng)
    config = os.path.join(fwd.workdir, "config.json")
    make_config(config, prefixes, args.routes)
    pcap = os.path.join(fwd.workdir, "frames.pcap")
    dests = fwd.flow_destinations(prefixes, 1024, random.Random(args.seed + 1))
    fwd.write_pcap(pcap, [fwd.frame(d, 1024 + i, 64) for i, d in enumerate(dests)])
    bulk_prefixes = fwd.random_prefixes(args.routes, random.Random(args.seed + 2)) if not args.skip_bulk else []
    log("inputs ready in %.1f s" % (time.monotonic() - t_begin))

    p, client = start_medix(args, config, pcap)
    target = p.target
    rt = client.runtime()
    tsc_hz, tsc_src = fwd.tsc_hz_from_system()
    if not tsc_hz or abs(tsc_hz / rt.tsc_hz - 1) > 0.01:
        tsc_hz, tsc_src = float(rt.tsc_hz), "GetRuntime tsc_hz"

    def rss(field):
        return status_kb(p.pid, field)

    results = {
        "benchmark": "medix-dp gRPC API: bulk apply, memory per route, transaction latency, forwarding under updates",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": fwd.cpu_model(), "kernel": platform.release(), "tsc_hz": tsc_hz, "tsc_hz_source": tsc_src,
        "loadavg_at_start": loadavg(),
        "binary": {"path": args.binary, "mtime": datetime.datetime.fromtimestamp(
            os.path.getmtime(args.binary), datetime.timezone.utc).isoformat(timespec="seconds"),
            "git_head": git_head() if os.path.realpath(args.binary).startswith(ROOT + os.sep) else None},
        "method": {
            "eal": "-l 0,1 --no-huge -m %d --no-pci; rx net_pcap infinite_rx=1 (64 B, 1024 flows), tx net_null"
                   % args.mem,
            "client": "Python grpcio %s over the unix socket, pinned to CPU 0 (the main lcore's)"
                      % __import__("grpc").__version__,
            "apply_time": "wall time of the Apply RPC at the client (request serialized beforehand)",
            "bytes_per_route": "(VmRSS 2 s after the apply - VmRSS before) / routes",
            "cycles_per_packet": "TSC Hz / out-port packets per second (the worker polls at 100%)",
        },
    }

    # 1. bulk
    if not args.skip_bulk:
        n = args.routes
        t = time.monotonic()
        raw = api.encode_apply(api.encode_route_op(dp.Operation.CREATE, "bulk", prefix_str(x), "bulk30", BULK_GW)
                               for x in bulk_prefixes)
        encode_s = time.monotonic() - t
        time.sleep(1)
        rss0, hwm0 = rss("VmRSS"), rss("VmHWM")
        v0 = client.version()
        log("applying %d routes in one transaction (%.1f MB request)" % (n, len(raw) / 1e6))
        t = time.monotonic()
        err, res = rpc(client.raw_apply, raw, timeout=600)
        apply_s = time.monotonic() - t
        rss1 = rss("VmRSS")
        bulk = {"routes": n, "request_bytes": len(raw), "encode_s": round(encode_s, 2)}
        if err is not None:
            bulk["error"] = "%s: %s" % (err.code().name, err.details())
            log("bulk apply failed after %.1f s: %s" % (apply_s, bulk["error"]))
        else:
            time.sleep(2)
            rss2, hwm = rss("VmRSS"), rss("VmHWM")
            bulk.update({
                "apply_s": round(apply_s, 2), "apply_routes_per_second": round(n / apply_s),
                "changed": res.changed, "version": [v0, res.version],
                "rss_kb_before": rss0, "rss_kb_after": rss1, "rss_kb_after_2s": rss2,
                "hwm_kb_before": hwm0, "hwm_kb_after": hwm,
                "bytes_per_route": round((rss2 - rss0) * 1024 / n, 1),
                "peak_bytes_per_route": round((hwm - rss0) * 1024 / n, 1),
            })
            log("bulk: %.1f s, %.0f routes/s, %.1f bytes/route (RSS), peak %.1f bytes/route"
                % (apply_s, n / apply_s, bulk["bytes_per_route"], bulk["peak_bytes_per_route"]))
            t = time.monotonic()
            err, listed = rpc(client.list_all, "route", "bulk", 100000, 600)
            list_s = time.monotonic() - t
            if err is None:
                objs = listed[0]
                bulk.update({"list_s": round(list_s, 2), "listed": len(objs),
                             "list_routes_per_second": round(len(objs) / list_s)})
                log("list: %d routes in %.1f s" % (len(objs), list_s))
                del objs, listed
            else:
                bulk["list_error"] = "%s: %s" % (err.code().name, err.details())
        results["bulk"] = bulk

    # 2. latency
    lat = {}
    if not args.skip_bulk and "error" not in results["bulk"]:
        load0 = loadavg()
        ms = single_route_latencies(client, "bench", "out20", fwd.GATEWAY, args.latency_txns, 10, args.latency_budget)
        lat["with_bulk"] = dict(lat_summary(ms), samples_ms=[round(x, 3) for x in ms],
                                note="tenant bench (1k routes) while tenant bulk holds %d" % args.routes,
                                loadavg=[load0, loadavg()])
        log("latency with %d routes present: %s" % (args.routes, {k: v for k, v in lat["with_bulk"].items()
                                                                    if k != "samples_ms"}))
        raw = api.encode_apply(api.encode_route_op(dp.Operation.DELETE, "bulk", prefix_str(x)) for x in bulk_prefixes)
        t = time.monotonic()
        err, res = rpc(client.raw_apply, raw, timeout=600)
        del_s = time.monotonic() - t
        if err is None:
            time.sleep(2)
            results["bulk"].update({"delete_s": round(del_s, 2), "delete_routes_per_second": round(args.routes / del_s),
                                    "rss_kb_after_delete": rss("VmRSS")})
            log("bulk delete: %.1f s" % del_s)
        else:
            results["bulk"]["delete_error"] = "%s: %s" % (err.code().name, err.details())
        del raw
    load0 = loadavg()
    ms = single_route_latencies(client, "bench", "out20", fwd.GATEWAY, args.latency_txns, 10, args.latency_budget)
    lat["small"] = dict(lat_summary(ms), samples_ms=[round(x, 3) for x in ms], note="every FIB small (1k routes)",
                        loadavg=[load0, loadavg()])
    log("latency, small FIBs: %s" % {k: v for k, v in lat["small"].items() if k != "samples_ms"})
    results["latency"] = lat

    # 3. forwarding under updates
    results["forwarding_under_updates"] = forwarding_under_updates(args, client, target, p.pid, tsc_hz)
    fu = results["forwarding_under_updates"]
    log("forwarding: idle %s cycles/pkt, updating %s cycles/pkt (%s route changes/s)"
        % (fu["idle"]["cycles_per_packet_median"], fu["updating"]["cycles_per_packet_median"],
           fu["updating"]["route_changes_per_second_median"]))
    client.close()
    fwd.stop(p)
    fwd.cleanup_runtime_dir(p.prefix)
    results["medix_dp_exit_status"] = p.returncode

    # 4. the same routes in smaller transactions, on a fresh medix-dp
    if not args.skip_bulk and args.batched:
        try:
            results["bulk_batched"] = batched_memory(args, config, pcap, bulk_prefixes)
            bb = results["bulk_batched"]
            log("batched: %d routes in %d transactions of %d: %.1f s, %d routes/s, %.1f bytes/route"
                % (bb["routes"], bb["transactions"], bb["routes_per_transaction"], bb["apply_s"],
                   bb["apply_routes_per_second"], bb["bytes_per_route"]))
        except Exception as e:  # noqa: BLE001
            results["bulk_batched"] = {"error": "%s: %s" % (type(e).__name__, e)}
    results["elapsed_s"] = round(time.monotonic() - t_begin, 1)
    results["loadavg_at_end"] = loadavg()

    fwd.save_results(args.results, "api", results, plot, log)
    print_summary(results)
    return 0


def print_summary(r):
    b = r.get("bulk", {})
    if b:
        if "error" in b:
            print("bulk: %d routes in one transaction FAILED: %s" % (b["routes"], b["error"]))
        else:
            print("bulk: %d routes in one transaction: %.1f s = %d routes/s; delete %s s; list %s s"
                  % (b["routes"], b["apply_s"], b["apply_routes_per_second"], b.get("delete_s"), b.get("list_s")))
            print("memory: %.1f bytes/route (RSS after - before), peak %.1f bytes/route (VmHWM)"
                  % (b["bytes_per_route"], b["peak_bytes_per_route"]))
    bb = r.get("bulk_batched", {})
    if bb.get("routes"):
        print("same routes in %d transactions of %d: %.1f s = %d routes/s; %.1f bytes/route"
              % (bb["transactions"], bb["routes_per_transaction"], bb["apply_s"], bb["apply_routes_per_second"],
                 bb["bytes_per_route"]))
    for k, v in r.get("latency", {}).items():
        if v.get("count"):
            print("latency (%s): %d single-route transactions, p50 %.2f ms, p99 %.2f ms, max %.2f ms"
                  % (k, v["count"], v["p50_ms"], v["p99_ms"], v["max_ms"]))
    fu = r.get("forwarding_under_updates", {})
    if fu:
        print("forwarding 64 B: idle %s cycles/pkt (%s Mpps), under %s route changes/s %s cycles/pkt (%s Mpps); "
              "undisturbed windows: %d idle, %d updating"
              % (fu["idle"]["cycles_per_packet_median"], fu["idle"]["mpps_median"],
                 fu["updating"]["route_changes_per_second_median"], fu["updating"]["cycles_per_packet_median"],
                 fu["updating"]["mpps_median"], fu["idle"]["undisturbed_windows"],
                 fu["updating"]["undisturbed_windows"]))
        print("  per packet while the worker had its CPU (all windows): idle %s, updating %s cycles; worker CPU "
              "share idle %s, updating %s" % (
                  fu["idle"]["cycles_per_packet_on_cpu_median_all_windows"],
                  fu["updating"]["cycles_per_packet_on_cpu_median_all_windows"],
                  fu["idle"]["worker_cpu_share_median_all_windows"],
                  fu["updating"]["worker_cpu_share_median_all_windows"]))


if __name__ == "__main__":
    fwd.run(main)
