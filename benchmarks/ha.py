#!/usr/bin/python3
"""HA state sync benchmark (docs/ha.md): an active medix-dp making NAPT sessions as fast as its
one worker can (net_pcap replays N distinct flows: nat.py's), a standby syncing them over UDP on
loopback. Reports the standby's sync lag (p99, max) while the active makes them, the records
lost, the bytes per session on the wire, and the time of a bulk resync of all N sessions when
the standby restarts. Results: benchmarks/results/ha/sync-N.json.

Both nodes run on this machine: the active's worker on CPU 1, the standby's on CPU 0 beside
both main threads, sync threads and this script. Figures on a 2-CPU machine are lower bounds.
"""
import argparse
import datetime
import json
import os
import random
import subprocess
import tempfile
import time

import forwarding as fw
import nat

ROOT = fw.ROOT
CTL = os.path.join(ROOT, "build/controlplane/cli/medixctl")


def status(prefix):
    out = subprocess.run([CTL, "-p", prefix, "-o", "json", "ha-sync"], capture_output=True, text=True, timeout=20)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def num(d, key):
    return float(d.get(key, 0) or 0)


def node(args, prefix, pcap, lcores, config, local, peer, key, role, mem):
    cmd = [args.binary, "--lcores", lcores, "--no-huge", "-m", str(mem), "--no-pci", "--file-prefix", prefix,
           "--vdev", "net_pcap0,rx_pcap=%s%s" % (pcap, ",infinite_rx=1" if role == "active" else ""),
           "--vdev", "net_null0,no-rx=1", "--", "--config", config, "--ha-role", role,
           "--ha-sync-local", "127.0.0.1:%d" % local, "--ha-sync-peer", "127.0.0.1:%d" % peer,
           "--ha-sync-key-file", key, "--ha-sync-refresh", "86400"]
    p = fw.start(cmd, os.path.join(fw.workdir, prefix + ".log"))
    fw.wait_for(p, prefix, r"medix-dp: ready", args.start_timeout).close()
    return p


def wait(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return None


def run(args, n):
    pcap = os.path.join(fw.workdir, "flows-%d.pcap" % n)
    fw.write_pcap(pcap, nat.flows(n, random.Random(args.seed * 7 + n)))
    one = os.path.join(fw.workdir, "one.pcap")
    fw.write_pcap(one, nat.flows(1, random.Random(1)))
    config = os.path.join(fw.workdir, "napt-%d.json" % n)
    with open(config, "w") as f:
        json.dump(nat.config("napt", n, n), f)
    key = os.path.join(fw.workdir, "sync.key")
    with open(key, "wb") as f:
        f.write(os.urandom(48).hex().encode())
    mem = 1024 + n * 4000 // (1 << 20) + n * 400 // (1 << 20)
    port = 30000 + os.getpid() % 20000
    pa, pb = fw.new_prefix(), fw.new_prefix()
    res = {"sessions": n}
    b = node(args, pb, one, "0@0,1@0", config, port + 1, port, key, "standby", mem)
    a = None
    try:
        t0 = time.monotonic()
        a = node(args, pa, pcap, "0@0,1@1", config, port, port + 1, key, "active", mem)
        # The first pass through the pcap makes every session; the standby installs them.
        made = wait(lambda: num(status(pa), "sessions") >= n * 0.99 or None, 120)
        res["make_seconds"] = round(time.monotonic() - t0, 2) if made else None
        synced = wait(lambda: num(status(pb), "sessions") >= num(status(pa), "sessions") * 0.99 or None, 60)
        sa, sb = status(pa), status(pb)
        res.update({
            "active_sessions": int(num(sa, "sessions")), "standby_sessions": int(num(sb, "sessions")),
            "all_synced": bool(synced),
            "lag_ms_p99": num(sb, "lag_ms_p99"), "lag_ms_max": num(sb, "lag_ms_max"),
            "lag_samples": int(num(sb, "lag_samples")),
            "records_sent": int(num(sa, "records_sent")), "bytes_sent": int(num(sa, "bytes_sent")),
            "ring_full": int(num(sa, "ring_full")), "install_ring_full": int(num(sb, "install_ring_full")),
            "install_failed": int(num(sb, "install_failed")),
        })
        res["bytes_per_record"] = round(res["bytes_sent"] / res["records_sent"], 1) if res["records_sent"] else None
        # The standby restarts: a bulk resync of every session.
        fw.stop(b)
        fw.cleanup_runtime_dir(pb)
        t1 = time.monotonic()
        b = node(args, pb, one, "0@0,1@0", config, port + 1, port, key, "standby", mem)
        t_ready = time.monotonic()
        done = wait(lambda: num(status(pb), "resyncs_completed") >= 1 or None, 120)
        res["resync_wall_s"] = round(time.monotonic() - t1, 2)
        # The last datagram is in; its records may still wait in the workers' install rings.
        installed = wait(lambda: num(status(pb), "sessions") >= res["active_sessions"] or None, 60, 0.02)
        res["resync_installed_s_from_ready"] = round(time.monotonic() - t_ready, 2) if installed else None
        sb = status(pb)
        res.update({"resync_completed": bool(done), "resync_ms_request_to_last_datagram": int(num(sb, "last_resync_ms")),
                    "standby_sessions_after_resync": int(num(sb, "sessions")),
                    "resync_install_ring_full": int(num(sb, "install_ring_full")),
                    "resync_datagrams_lost": int(num(sb, "datagrams_lost")),
                    "resyncs_incomplete": int(num(sb, "resyncs_incomplete"))})
    finally:
        for p, prefix in ((a, pa), (b, pb)):
            if p:
                fw.stop(p)
            fw.cleanup_runtime_dir(prefix)
    return res


def plot(res, path):
    """The two goals of docs/ha.md beside their figures: the standby's lag while the active makes
    sessions (p99 ≤ 100 ms) and a bulk resync of every session (≤ 10 s)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (lag, resync) = plt.subplots(1, 2, figsize=(7, 3.5), dpi=100)
    bars = lag.bar(["p99", "max"], [res.get("lag_ms_p99") or 0, res.get("lag_ms_max") or 0], color="#1f77b4")
    lag.axhline(100, color="#d62728", ls="--", lw=1, label="goal: p99 ≤ 100 ms")
    lag.set_ylabel("standby's sync lag, ms")
    lag.legend(fontsize=8)
    # From the standby's ready (as docs/ha.md's table): its own start, allocating the tables, is not the resync.
    seconds = [res.get("resync_ms_request_to_last_datagram", 0) / 1000, res.get("resync_installed_s_from_ready") or 0]
    bars += resync.bar(["request to\nlast datagram", "ready to every\nsession installed"], seconds, color="#ff7f0e")
    resync.axhline(10, color="#d62728", ls="--", lw=1, label="goal: ≤ 10 s")
    resync.set_ylabel("bulk resync, s")
    resync.legend(fontsize=8, loc="upper left")
    for b in bars:
        b.axes.annotate("%.2f" % b.get_height(), (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                        va="bottom", fontsize=8)
    fig.suptitle("HA sync, %d sessions (%s B a session on the wire), %s" %
                 (res["sessions"], res.get("bytes_per_record"), res.get("cpu_model", "")), fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/dataplane/medix-dp"))
    ap.add_argument("--sessions", default="100000")
    ap.add_argument("--start-timeout", type=float, default=180.0)
    ap.add_argument("--results", default=os.path.join(ROOT, "benchmarks/results/ha"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--replot", metavar="JSON", help="draw the PNG again from a results file, run nothing")
    args = ap.parse_args()
    if args.replot:
        with open(args.replot) as f:
            plot(json.load(f), os.path.splitext(args.replot)[0] + ".png")
        return 0
    os.makedirs(args.results, exist_ok=True)
    fw.workdir = tempfile.mkdtemp(prefix="medix-bench-ha-")
    for n in [int(x) for x in args.sessions.split(",")]:
        res = run(args, n)
        res.update({"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                    "cpu_model": fw.cpu_model(), "git": fw.git_state()})
        fw.log(json.dumps(res))
        fw.save_results(args.results, "sync-%d" % n, res, plot)
    return 0


if __name__ == "__main__":
    fw.run(main)
