#!/usr/bin/python3
"""Crossing-the-core benchmark: medix-dp on one worker core forwarding 64-byte frames that cross
the IX core with static mapping or NAPT on established sessions (1k, 100k, 1M sessions), next to
plain VLAN->VLAN forwarding measured in the same invocation; new sessions per second; memory
per session. See benchmarks/README.md ("Crossing the core").

Uses forwarding.py's harness (processes, telemetry, disturbance checks, cleanup).
"""
import argparse
import datetime
import json
import os
import random
import struct
import sys
import tempfile
import time

import forwarding as fw

ROOT = fw.ROOT
IN_MAC, SENDER_MAC = "02:00:00:00:01:01", "02:00:00:00:01:02"
OUT_MAC, GATEWAY_MAC = "02:00:00:00:02:01", "02:00:00:00:02:02"
ARCHIVE_CORE = 0x64640000  # 100.100.0.0/16 ⇄ archive 192.168.0.0/16
ARCHIVE_LINK = "192.168.255.1/24"
GATEWAY = "192.168.255.2"


def config(mode, sessions, frames):
    """forward: one tenant, VLAN 10 -> VLAN 20 (the baseline). static / napt: tenant hosp
    (VLAN 10, 10.0.0.0/12) leaks 100.100.0.0/16 into the core, the core leaks it to tenant
    archive (VLAN 20), whose static mapping 192.168.0.0/16 ⇄ 100.100.0.0/16 translates the
    destination; hosp's source is translated by its static mapping 10.0.0.0/12 ⇄
    100.64.0.0/12 or by a NAPT pool of 64 addresses; one policy rule permits hosp -> archive."""
    # One tenant holds every session here. Without a quota of its own a tenant may hold a quarter
    # of the table (docs/fair-shares.md): NAPT's pool gives hosp its quota (session_limit); a
    # static mapping has no such knob yet, so the table is four times the sessions there.
    table = int(sessions * 1.05)
    settings = {"max_sessions": max(4096, table * 4 if mode == "static" else table),
                "packet_buffers": frames + 65536}
    if mode == "forward":
        return {
            "schema_version": 1,
            "ports": [{"name": "in", "device": "net_pcap0"}, {"name": "out", "device": "net_null0"}],
            "tenants": [{"name": "bench", "max_routes": 1024}],
            "interfaces": [
                {"name": "in10", "tenant": "bench", "port": "in", "vlan": 10, "addresses": ["10.15.255.254/12"],
                 "mac": IN_MAC},
                {"name": "out20", "tenant": "bench", "port": "out", "vlan": 20, "addresses": [ARCHIVE_LINK],
                 "mac": OUT_MAC}],
            "routes": [{"tenant": "bench", "prefix": "100.100.0.0/16",
                        "via": {"interface": "out20", "address": GATEWAY}}],
            "neighbours": [{"interface": "out20", "address": GATEWAY, "mac": GATEWAY_MAC}],
            "settings": {"packet_buffers": frames + 65536},
        }
    c = {
        "schema_version": 1,
        "ports": [{"name": "in", "device": "net_pcap0"}, {"name": "out", "device": "net_null0"}],
        "tenants": [{"name": "hosp", "max_routes": 1024}, {"name": "archive", "max_routes": 1024},
                    {"name": "ix", "core": True, "max_routes": 1024}],
        "interfaces": [
            {"name": "in10", "tenant": "hosp", "port": "in", "vlan": 10, "addresses": ["10.15.255.254/12"],
             "mac": IN_MAC},
            {"name": "out20", "tenant": "archive", "port": "out", "vlan": 20, "addresses": [ARCHIVE_LINK],
             "mac": OUT_MAC}],
        "routes": [
            {"tenant": "hosp", "prefix": "100.100.0.0/16", "next_tenant": "ix"},
            {"tenant": "ix", "prefix": "100.100.0.0/16", "next_tenant": "archive"},
            {"tenant": "ix", "prefix": "100.64.0.0/10", "next_tenant": "hosp"},
            {"tenant": "archive", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
            {"tenant": "archive", "prefix": "192.168.0.0/17", "via": {"interface": "out20", "address": GATEWAY}}],
        "neighbours": [{"interface": "out20", "address": GATEWAY, "mac": GATEWAY_MAC}],
        "static_mappings": [{"tenant": "archive", "tenant_prefix": "192.168.0.0/16", "core_prefix": "100.100.0.0/16"}],
        "policy_rules": [{"name": "hosp-archive", "priority": 10, "from_tenant": "hosp", "to_tenant": "archive",
                          "permit": True}],
        "settings": settings,
    }
    if mode == "static":
        c["static_mappings"].append({"tenant": "hosp", "tenant_prefix": "10.0.0.0/12", "core_prefix": "100.64.0.0/12"})
    else:
        c["napt_pools"] = [{"tenant": "hosp", "addresses": ["100.127.0.0/26"], "session_limit": max(4096, table)}]
    return c


def frame(src, sport, dst):
    """A 64-byte (on the wire) 802.1Q VLAN 10 IPv4/UDP frame to port 104."""
    ip_len = 60 - 18
    udp = struct.pack("!HHHH", sport, 104, ip_len - 20, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, 17, 0, src.to_bytes(4, "big"),
                     dst.to_bytes(4, "big"))
    ip = ip[:10] + struct.pack("!H", fw.checksum(ip)) + ip[12:]
    eth = fw.mac_bytes(IN_MAC) + fw.mac_bytes(SENDER_MAC) + struct.pack("!HHH", 0x8100, 10, 0x0800)
    return eth + ip + udp + bytes(ip_len - 28)


def flows(n, rng):
    """`n` distinct flows: inside hosts 10.0.x.y (256 source ports each), archive hosts in
    100.100.0.0/17, in random order."""
    out = []
    for i in range(n):
        src = 0x0A000000 + 1 + (i >> 8)
        out.append(frame(src, 1024 + (i & 255), ARCHIVE_CORE + rng.randrange(1, 1 << 15)))
    rng.shuffle(out)
    return out


def heap_alloc(tel):
    info = tel("/eal/heap_info,0") or {}
    return int(info.get("Alloc_size", 0))


def eal_mb(mode, conf, frames):
    """EAL memory: packet buffers (~2.6 kB each with the mempool's overhead) for the pcap, the
    session tables by the config's max_sessions (~375 B each with the index; static mode has
    four times the sessions), FIBs."""
    tables = conf["settings"].get("max_sessions", 0) * 450 if mode != "forward" else 0
    return 1024 + frames * 4000 // (1 << 20) + tables // (1 << 20)


def run_point(args, mode, sessions, pcap, frames):
    prefix = fw.new_prefix()
    path = os.path.join(fw.workdir, "%s-%s-%d.json" % (prefix, mode, sessions))
    conf = config(mode, sessions, frames)
    with open(path, "w") as f:
        json.dump(conf, f)
    mem = eal_mb(mode, conf, frames)
    cmd = [args.binary] + fw.eal_args(prefix, mem, pcap) + ["--", "--config", path]
    p = fw.start(cmd, os.path.join(fw.workdir, prefix + ".log"))
    try:
        tel = fw.wait_for(p, prefix, r"medix-dp: ready", args.start_timeout)
        try:
            nat_tenant = lambda: fw.by_name(tel("/medix/nat") or {}).get("hosp", {})  # noqa: E731
            # The first pass through the pcap makes every session (each frame is a new flow):
            # sample it closely; the slope between samples taken while it lasts is the rate of
            # new sessions, and the nat stage's cycles over the same packets their cost.
            # The worker's own CPU time (schedstat) too: on a shared core the wall rate
            # undercounts by the share others took.
            first_pass = []
            if mode != "forward":
                task = fw.worker_thread(p.pid)
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    t = time.monotonic()
                    n = nat_tenant().get("sessions_created", 0)
                    rt = tel("/medix/runtime")
                    first_pass.append((t, n, (rt or {}).get("nat") or {}, fw.sched_sample(task)[0]))
                    if n >= sessions:
                        break
                    time.sleep(0.01)
            res = fw.measure(p.pid, lambda: fw.by_name(tel("/medix/ports"))["out"]["tx_packets"],
                             args.warmup, args.window,
                             lambda: (tel("/medix/runtime"), tel("/medix/drops"), nat_tenant()))
            (rt0, dr0, n0), (rt1, dr1, n1) = res.pop("samples")
            res["runtime"] = fw.runtime_delta(rt0, rt1)
            res["drops"] = {k: v - dr0.get(k, 0) for k, v in (dr1 or {}).items() if v - dr0.get(k, 0)}
            res["heap_alloc"] = heap_alloc(tel)
            if mode != "forward":
                res["sessions"] = n1.get("sessions")
                res["new_in_window"] = n1.get("sessions_created", 0) - n0.get("sessions_created", 0)
                steady = res["runtime"].get("nat") or {}
                if steady.get("packets"):
                    res["nat_cycles_hit"] = round(steady["cycles"] / steady["packets"], 1)
                during = [s for s in first_pass if 0 < s[1] < 0.95 * sessions]
                if len(during) >= 2 and during[-1][1] - during[0][1] >= 1000:
                    (t0, n0_, r0, c0), (t1, n1_, r1, c1) = during[0], during[-1]
                    res["new_sessions_per_s"] = round((n1_ - n0_) / (t1 - t0))
                    if c1 > c0:
                        res["new_sessions_per_cpu_s"] = round((n1_ - n0_) / ((c1 - c0) / 1e9))
                        res["first_pass_cpu_share"] = round((c1 - c0) / 1e9 / (t1 - t0), 3)
                    if r1.get("packets", 0) > r0.get("packets", 0):
                        res["nat_cycles_new_session"] = round(
                            (r1["cycles"] - r0["cycles"]) / (r1["packets"] - r0["packets"]), 1)
                    res["first_pass_samples"] = len(during)
        finally:
            tel.close()
    finally:
        fw.stop(p)
        fw.cleanup_runtime_dir(prefix)
    return res


def memory_per_session(args, pcap, frames):
    """EAL heap in use with room for 1M sessions less with room for 4096, per session."""
    out = {}
    for cap in (4096, 1 << 20):
        prefix = fw.new_prefix()
        path = os.path.join(fw.workdir, "%s-mem.json" % prefix)
        c = config("napt", cap, frames)
        c["settings"]["max_sessions"] = cap
        with open(path, "w") as f:
            json.dump(c, f)
        p = fw.start([args.binary] + fw.eal_args(prefix, 1536, pcap) + ["--", "--config", path],
                     os.path.join(fw.workdir, prefix + ".log"))
        try:
            tel = fw.wait_for(p, prefix, r"medix-dp: ready", args.start_timeout)
            out[cap] = heap_alloc(tel)
            tel.close()
        finally:
            fw.stop(p)
            fw.cleanup_runtime_dir(prefix)
    return round((out[1 << 20] - out[4096]) / ((1 << 20) - 4096), 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/dataplane/medix-dp"))
    ap.add_argument("--sessions", default="1000,100000,1000000")
    ap.add_argument("--modes", default="static,napt")
    ap.add_argument("--runs", type=int, default=2)
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--window", type=float, default=4.0)
    ap.add_argument("--start-timeout", type=float, default=180.0)
    ap.add_argument("--disturbance", type=float, default=0.03)
    ap.add_argument("--results", default=os.path.join(ROOT, "benchmarks/results"))
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    counts = [int(x) for x in args.sessions.split(",")]
    modes = args.modes.split(",")
    os.makedirs(args.results, exist_ok=True)
    fw.workdir = tempfile.mkdtemp(prefix="medix-bench-")
    if 0 in fw.ALL_CPUS and len(fw.ALL_CPUS) > 1:
        os.sched_setaffinity(0, {0})
    t_begin = time.monotonic()
    pcaps = {}
    for n in counts:
        pcaps[n] = os.path.join(fw.workdir, "flows-%d.pcap" % n)
        fw.write_pcap(pcaps[n], flows(n, random.Random(args.seed * 7 + n)))
    fw.log("pcaps ready in %.1f s" % (time.monotonic() - t_begin))

    # Plain forwarding with the same pcap next to each session count: the harness's own cost
    # (net_pcap replaying N frames touches N buffers) is then the same on both sides.
    points = [(m, n) for n in counts for m in ["forward"] + modes]
    runs = {pt: [] for pt in points}
    for rnd in range(args.runs):
        for mode, n in points:
            fw.wait_quiet()
            try:
                res = run_point(args, mode, n, pcaps[n], n)
            except Exception as e:  # noqa: BLE001
                fw.log("%s %d failed: %s" % (mode, n, e))
                continue
            res["disturbed"] = fw.disturbed(res, args.disturbance)
            runs[mode, n].append(res)
            fw.log("round %d %-7s %8d sessions %6.2f Mpps%s%s" % (
                rnd + 1, mode, n, res["pps"] / 1e6, "  DISTURBED" if res["disturbed"] else "",
                "  drops %s" % res["drops"] if res["drops"] else ""))
    mem = memory_per_session(args, pcaps[min(counts)], min(counts))

    tsc_hz, _ = fw.tsc_hz_from_system()
    results = {
        "benchmark": "medix-dp crossing the IX core (static mapping, NAPT) vs plain forwarding, "
                     "64-byte frames, one worker core",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": fw.cpu_model(), "git": fw.git_state(), "tsc_hz": tsc_hz,
        "method": {
            "eal": "-l 0,1 --no-huge --no-pci; rx net_pcap infinite_rx=1 (one frame per session), tx net_null",
            "established": "the pcap holds one UDP frame per flow; the first pass makes every session, "
                           "the window (after it) measures packets of established sessions only",
            "baseline": "plain VLAN->VLAN forwarding (one tenant, no core) with the same pcap, in the same "
                        "invocation: the ratio and cycles over it are what crossing the core costs",
            "runs": args.runs, "best_of": "highest Mpps", "window_s": args.window,
            "new_sessions": "sampled every ~10 ms during the first pass (every frame a new flow): sessions "
                            "made per second of wall time on the worker core, and the nat stage's cycles per "
                            "packet over the same samples (only with >= 2 samples inside the pass)",
            "memory": "EAL heap in use with max_sessions 1M minus with 4096, per session",
        },
        "memory_bytes_per_session": mem,
        "points": [],
    }
    for mode, n in points:
        base = max(runs["forward", n], key=lambda r: r["pps"], default=None)
        base_cpp = tsc_hz / base["pps"] if base else None
        if not runs[mode, n]:
            results["points"].append({"mode": mode, "sessions": n, "error": "no run"})
            continue
        best = max(runs[mode, n], key=lambda r: r["pps"])
        cpp = tsc_hz / best["pps"]
        pt = {"mode": mode, "sessions": n, "frames_in_pcap": n, "mpps": round(best["pps"] / 1e6, 3),
              "cycles_per_packet": round(cpp, 1), "ratio_to_forwarding": round(base_cpp / cpp, 3) if base_cpp else None,
              "cycles_over_forwarding": round(cpp - base_cpp, 1) if base_cpp else None,
              "stages": fw.stage_breakdown(best["runtime"]), "drops": best["drops"],
              "runs_mpps": [round(r["pps"] / 1e6, 3) for r in runs[mode, n]], "disturbed": best["disturbed"],
              "worker_cpu_share": best["cpu_share"]}
        if mode != "forward":
            pt["sessions_live"] = best.get("sessions")
            pt["new_sessions_in_window"] = best.get("new_in_window")
            pt["nat_cycles_hit"] = best.get("nat_cycles_hit")
            made = [r for r in runs[mode, n] if r.get("new_sessions_per_s")]
            if made:
                fastest = max(made, key=lambda r: r["new_sessions_per_s"])
                pt["new_sessions_per_s"] = fastest["new_sessions_per_s"]
                pt["nat_cycles_new_session"] = fastest.get("nat_cycles_new_session")
        results["points"].append(pt)
    results["elapsed_s"] = round(time.monotonic() - t_begin, 1)
    fw.save_results(args.results, "nat", results, plot)
    print("%-8s %9s %7s %8s %7s %9s %10s %12s" % ("mode", "sessions", "Mpps", "cyc/pkt", "ratio", "nat hit",
                                                   "nat new", "new sess/s"))
    for p in results["points"]:
        if "mpps" not in p:
            print("%-8s %9d failed" % (p["mode"], p["sessions"]))
            continue
        print("%-8s %9d %7.2f %8.1f %7.3f %9s %10s %12s" % (
            p["mode"], p["sessions"], p["mpps"], p["cycles_per_packet"], p["ratio_to_forwarding"] or 0,
            p.get("nat_cycles_hit", "-"), p.get("nat_cycles_new_session", "-"), p.get("new_sessions_per_s", "-")))
    print("memory: %.0f bytes per session" % mem)
    return 0


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = [p for p in results["points"] if "mpps" in p]
    labels = ["%s\n%s" % (p["mode"], fw.human_routes(p["sessions"])) for p in pts]
    fig, ax = plt.subplots(figsize=(7, 3.4), dpi=100)
    colors = {"forward": "#9e9e9e", "static": "#1f77b4", "napt": "#ff7f0e"}
    bars = ax.bar(range(len(pts)), [p["cycles_per_packet"] for p in pts], color=[colors[p["mode"]] for p in pts])
    for b, p in zip(bars, pts):
        ax.annotate("%.1f Mpps\n%.2fx" % (p["mpps"], p["ratio_to_forwarding"] or 0),
                    (b.get_x() + b.get_width() / 2, b.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(pts)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_ylabel("TSC cycles / packet (lower is better)")
    ax.set_title("64 B frames crossing the IX core, one worker core (labels: Mpps, ratio to forwarding)", fontsize=9)
    ax.margins(y=0.2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    fw.run(main)
