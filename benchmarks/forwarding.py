#!/usr/bin/python3
"""Forwarding benchmark: medix-dp VLAN->VLAN forwarding on one worker core, against the
harness ceiling (dpdk-testpmd io-forward on the same virtual ports and the same pcaps).

Called by benchmarks/run after scripts/setup and scripts/build; see benchmarks/README.md.
Every process it starts runs in its own session and is killed on exit; every file it writes
outside --results lives in one temporary folder that is removed on exit.
"""
import argparse
import datetime
import ipaddress
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Addresses and MACs of the benchmark topology (docs in README.md).
IN_MAC, SENDER_MAC = "02:00:00:00:01:01", "02:00:00:00:01:02"
OUT_MAC, GATEWAY_MAC = "02:00:00:00:02:01", "02:00:00:00:02:02"
IN_VLAN, OUT_VLAN = 10, 20
IN_ADDR, SENDER = "192.168.1.1/24", "192.168.1.2"
OUT_ADDR, GATEWAY = "192.168.2.1/24", "192.168.2.2"

children = []  # Popen objects still running
workdir = None


def log(*a):
    print("bench:", *a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Inputs: routes, configs, pcaps


def random_prefixes(count, rng):
    """`count` distinct random /24s (as 24-bit ints: a.b.c) from unicast space, avoiding
    0/8, 10/8 (free for later use), 127/8, 192.168/16 (the benchmark links) and 224/3."""
    def ok(p):
        a = p >> 16
        return a not in (0, 10, 127) and (p >> 8) != (192 << 8 | 168)
    out, seen = [], set()
    while len(out) < count:
        for p in rng.sample(range(1 << 16, 224 << 16), min(count - len(out) + 1024, 1 << 23)):
            if p not in seen and ok(p):
                seen.add(p)
                out.append(p)
                if len(out) == count:
                    break
    return out


FIB_KINDS = {"dir24_8": "FIB_DIR24_8", "compact": "FIB_COMPACT"}


def make_config(path, prefixes, fib=None, tenants=1):
    """The JSON mapping of medix.dataplane.v1.Config: one tenant, ingress VLAN 10 on the pcap
    port, egress VLAN 20 on the null port, a static neighbour for the egress gateway, and one
    route per prefix via that gateway. Written by hand: 1M routes is ~100 MB. `fib` names the
    tenants' FIB kind (None: medix-dp's default for the max_routes). With `tenants` > 1, tenant
    i (t0, t1, ...) has in<i> on VLAN 100+i and out<i> on VLAN 2000+i, the same addresses and
    gateway, and its own share of `prefixes` (len(prefixes) / tenants each)."""
    if tenants > 1:
        return make_tenants_config(path, prefixes, fib, tenants)
    tenant = {"name": "bench", "description": "forwarding benchmark", "max_routes": len(prefixes) + 64}
    if fib:
        tenant["fib"] = FIB_KINDS[fib]
    head = {
        "schema_version": 1,
        "ports": [
            {"name": "in", "device": "net_pcap0"},
            {"name": "out", "device": "net_null0"},
        ],
        "tenants": [tenant],
        "interfaces": [
            {"name": "in10", "tenant": "bench", "port": "in", "vlan": IN_VLAN,
             "addresses": [IN_ADDR], "mac": IN_MAC},
            {"name": "out20", "tenant": "bench", "port": "out", "vlan": OUT_VLAN,
             "addresses": [OUT_ADDR], "mac": OUT_MAC},
        ],
        "neighbours": [{"interface": "out20", "address": GATEWAY, "mac": GATEWAY_MAC}],
    }
    text = json.dumps(head, indent=1)[:-2]  # drop the closing "\n}"
    route = ('{"tenant":"bench","prefix":"%d.%d.%d.0/24",'
             '"via":{"interface":"out20","address":"' + GATEWAY + '"}}')
    with open(path, "w") as f:
        f.write(text)
        f.write(',\n "routes": [\n')
        f.write(",\n".join(route % (p >> 16, (p >> 8) & 255, p & 255) for p in prefixes))
        f.write("\n ]\n}\n")


def tenant_vlans(i):
    """Ingress and egress VLAN of tenant i of a many-tenant config."""
    return 100 + i, 2000 + i


def make_tenants_config(path, prefixes, fib, n):
    per = len(prefixes) // n
    tenants, interfaces, neighbours = [], [], []
    for i in range(n):
        t = {"name": "t%d" % i}
        if fib:
            t["fib"] = FIB_KINDS[fib]
        tenants.append(t)
        vin, vout = tenant_vlans(i)
        interfaces.append({"name": "in%d" % i, "tenant": t["name"], "port": "in", "vlan": vin,
                           "addresses": [IN_ADDR], "mac": IN_MAC})
        interfaces.append({"name": "out%d" % i, "tenant": t["name"], "port": "out", "vlan": vout,
                           "addresses": [OUT_ADDR], "mac": OUT_MAC})
        neighbours.append({"interface": "out%d" % i, "address": GATEWAY, "mac": GATEWAY_MAC})
    head = {"schema_version": 1,
            "ports": [{"name": "in", "device": "net_pcap0"}, {"name": "out", "device": "net_null0"}],
            "tenants": tenants, "interfaces": interfaces, "neighbours": neighbours}
    text = json.dumps(head)[:-1]
    route = '{"tenant":"t%d","prefix":"%d.%d.%d.0/24","via":{"interface":"out%d","address":"' + GATEWAY + '"}}'
    with open(path, "w") as f:
        f.write(text)
        f.write(',\n "routes": [\n')
        f.write(",\n".join(route % (i, p >> 16, (p >> 8) & 255, p & 255, i)
                            for i in range(n) for p in prefixes[i * per:(i + 1) * per]))
        f.write("\n ]\n}\n")


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac_bytes(mac):
    return bytes(int(x, 16) for x in mac.split(":"))


def frame(dst_ip, sport, wire_size, vlan=IN_VLAN):
    """An 802.1Q (VLAN 10, or `vlan`) IPv4/UDP frame to the ingress interface's MAC whose length on the
    wire, FCS included, is `wire_size` (the pcap holds it without the 4-byte FCS)."""
    length = wire_size - 4
    ip_len = length - 18
    udp = struct.pack("!HHHH", sport, 9, ip_len - 20, 0)
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, ip_len, 0, 0x4000, 64, 17, 0,
                     ipaddress.IPv4Address(SENDER).packed, dst_ip.to_bytes(4, "big"))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    eth = mac_bytes(IN_MAC) + mac_bytes(SENDER_MAC) + struct.pack("!HHH", 0x8100, vlan, 0x0800)
    payload = bytes((i * 7) & 0xFF for i in range(ip_len - 28))
    return eth + ip + udp + payload


def write_pcap(path, frames):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", 1, i, len(fr), len(fr)))
            f.write(fr)


def flow_destinations(prefixes, flows, rng):
    """`flows` destination addresses spread over the routes: round robin when there are fewer
    routes than flows, else each flow in a different randomly chosen route; random hosts."""
    if len(prefixes) < flows:
        picks = [prefixes[i % len(prefixes)] for i in range(flows)]
    else:
        picks = rng.sample(prefixes, flows)
    rng.shuffle(picks)
    return [(p << 8) | rng.randint(1, 254) for p in picks]


def verify_pcap_with_scapy(path, wire_size):
    """Decode the first frame with scapy, so a mistake in the hand-built frames shows."""
    try:
        from scapy.all import rdpcap, Dot1Q, IP, UDP  # noqa: E402
    except ImportError:
        return
    p = rdpcap(path, count=1)[0]
    assert len(p) == wire_size - 4, len(p)
    assert p.dst == IN_MAC and p[Dot1Q].vlan == IN_VLAN
    ip = p[IP]
    chk = ip.chksum
    del ip.chksum
    assert IP(bytes(ip)).chksum == chk, "bad IP checksum in generated frame"
    assert p[UDP].dport == 9


# ---------------------------------------------------------------------------------------------
# Processes and telemetry


class Telemetry:
    """A client of DPDK's telemetry socket (v2): one JSON reply per command."""

    def __init__(self, prefix):
        self.path = "/var/run/dpdk/%s/dpdk_telemetry.v2" % prefix
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.sock.settimeout(5)
        self.sock.connect(self.path)
        info = json.loads(self.sock.recv(1 << 16))
        self.max_len = int(info.get("max_output_len", 16384))

    def __call__(self, cmd):
        self.sock.send(cmd.encode())
        reply = json.loads(self.sock.recv(max(self.max_len, 1 << 16)).decode())
        return reply.get(cmd.split(",")[0])

    def close(self):
        self.sock.close()


ALL_CPUS = set(os.sched_getaffinity(0))


def by_name(reply):
    """{object name: counters} from a /medix/ports-like reply: keyed by a sanitised name
    with the exact `name` inside (docs/running.md), or a list of such objects."""
    items = reply.items() if isinstance(reply, dict) else enumerate(reply or [])
    return {v.get("name", k) if isinstance(v, dict) else k: v for k, v in items}


def start(cmd, logpath):
    logf = open(logpath, "w")
    # This script keeps to CPU 0 (the main lcore's) so as not to disturb the worker on CPU 1;
    # the child gets every CPU back and EAL pins its lcores itself.
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                         start_new_session=True, cwd=ROOT,
                         preexec_fn=lambda: os.sched_setaffinity(0, ALL_CPUS))
    p.logf = logf
    p.logpath = logpath
    children.append(p)
    return p


def stop(p, timeout=20):
    """SIGINT (both binaries stop cleanly on it), then SIGKILL to its process group."""
    if p.poll() is None:
        try:
            os.kill(p.pid, signal.SIGINT)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            log("pid %d did not stop on SIGINT; killing it" % p.pid)
    if p.poll() is None:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
    p.logf.close()
    if p in children:
        children.remove(p)


def save_results(directory, name, results, plot, log_fn=None):
    """RESULTS as DIRECTORY/NAME.json and PLOT's NAME.png beside it (a failed plot is said, not fatal)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, name + ".json"), "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    try:
        plot(results, os.path.join(directory, name + ".png"))
    except Exception as e:  # noqa: BLE001
        (log_fn or log)("plot failed: %s" % e)


def log_tail(p, lines=15):
    with open(p.logpath, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def wait_for(p, prefix, ready_re, timeout):
    """Wait until the log matches `ready_re` and the telemetry socket answers."""
    deadline = time.monotonic() + timeout
    sock = "/var/run/dpdk/%s/dpdk_telemetry.v2" % prefix
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError("%s exited with status %d:\n%s"
                               % (os.path.basename(p.args[0]), p.returncode, log_tail(p)))
        with open(p.logpath, errors="replace") as f:
            text = f.read()
        if re.search(ready_re, text) and os.path.exists(sock):
            return Telemetry(prefix)
        time.sleep(0.1)
    raise RuntimeError("%s not ready after %d s:\n%s"
                       % (os.path.basename(p.args[0]), timeout, log_tail(p)))


def eal_args(prefix, mem_mb, pcap):
    # MEDIX_BENCH_HUGE_DIR: a hugetlbfs mount to take the memory from (2 MiB pages, as in
    # production) instead of --no-huge's 4 KiB pages.
    huge = os.environ.get("MEDIX_BENCH_HUGE_DIR")
    pages = ["--huge-dir", huge] if huge else ["--no-huge"]
    return ["-l", "0,1"] + pages + ["-m", str(mem_mb), "--no-pci", "--file-prefix", prefix,
            "--vdev", "net_pcap0,rx_pcap=%s,infinite_rx=1" % pcap, "--vdev", "net_null0,no-rx=1"]


def worker_thread(pid):
    """/proc path of the EAL thread of worker lcore 1 (named rte-worker-1 or lcore-worker-1)."""
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                if re.fullmatch(r"(rte|lcore)-worker-1", f.read().strip()):
                    return "/proc/%d/task/%s" % (pid, tid)
        except OSError:
            pass
    return None


def sched_sample(task):
    """(ns on a CPU, ns waiting for one) of a thread, and cpu1's steal ticks (/proc/stat)."""
    on = wait = 0
    if task:
        try:
            with open(task + "/schedstat") as f:
                on, wait = (int(x) for x in f.read().split()[:2])
        except OSError:
            pass
    steal = 0
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("cpu1 "):
                steal = int(line.split()[8])
    return on, wait, steal


def measure(pid, counter, warmup, window, sample=None, task_of=None):
    """Packets per second of `counter()` (a cumulative packet count) over `window` seconds
    after `warmup` seconds, and how much of the window the worker thread really had its CPU
    (schedstat: other processes on CPU 1 take it away; steal: the hypervisor does).
    `task_of(pid)` finds the thread that forwards (default: lcore 1's worker thread)."""
    time.sleep(warmup)
    task = (task_of or worker_thread)(pid)
    s0 = sched_sample(task)
    t0, c0 = time.monotonic(), counter()
    x0 = sample() if sample else None
    time.sleep(window)
    t1, c1 = time.monotonic(), counter()
    x1 = sample() if sample else None
    s1 = sched_sample(task)
    dt = t1 - t0
    tick = os.sysconf("SC_CLK_TCK")
    return {
        "samples": (x0, x1),
        "pps": (c1 - c0) / dt,
        "cpu_share": round((s1[0] - s0[0]) / 1e9 / dt, 3) if task else None,
        "runqueue_wait": round((s1[1] - s0[1]) / 1e9 / dt, 3) if task else None,
        "steal": round((s1[2] - s0[2]) / tick / dt, 3),
    }


def cpu1_busy(interval=0.5):
    """Share of cpu1's time spent busy (anything but idle and iowait) over `interval`."""
    def sample():
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu1 "):
                    v = [int(x) for x in line.split()[1:]]
                    return sum(v[:8]) - v[3] - v[4], sum(v[:8])
        return 0, 1
    b0, t0 = sample()
    time.sleep(interval)
    b1, t1 = sample()
    return (b1 - b0) / max(t1 - t0, 1)


quiet_wait_left = [0.0]


def wait_quiet(threshold=0.15):
    """Before a run: wait (within the --quiet-wait budget) until CPU 1 is mostly idle, so that
    a build or test running beside the benchmark does not land on the worker's core."""
    waited = 0.0
    while quiet_wait_left[0] > 0:
        t = time.monotonic()
        if cpu1_busy() < threshold:
            break
        time.sleep(0.5)
        quiet_wait_left[0] -= time.monotonic() - t
        waited += time.monotonic() - t
    if waited:
        log("waited %.0f s for CPU 1 to be idle (%.0f s of waiting left)"
            % (waited, max(quiet_wait_left[0], 0)))


def disturbed(res, limit):
    """A run in which the worker lost more than `limit` of its core to anything else."""
    share = res.get("cpu_share")
    return (share is not None and share < 1 - limit) or res.get("steal", 0) > limit


prefix_seq = 0


def new_prefix():
    global prefix_seq
    prefix_seq += 1
    return "medixbench-%d-%d" % (os.getpid(), prefix_seq)


def cleanup_runtime_dir(prefix):
    shutil.rmtree("/var/run/dpdk/%s" % prefix, ignore_errors=True)


def run_testpmd(args, pcap, mem_mb):
    prefix = new_prefix()
    cmd = [args.testpmd] + eal_args(prefix, mem_mb, pcap) + [
        "--", "--forward-mode=io", "--nb-cores=1", "--rxq=1", "--txq=1", "--burst=32",
        "--total-num-mbufs=16384", "--auto-start", "--stats-period=100000"]
    p = start(cmd, os.path.join(workdir, prefix + ".log"))
    try:
        tel = wait_for(p, prefix, r"Port 1: |Start automatic packet forwarding|Checking link",
                       args.start_timeout)
        try:
            res = measure(p.pid, lambda: tel("/ethdev/stats,1")["opackets"], args.warmup,
                          args.window)
            res.pop("samples")
        finally:
            tel.close()
    finally:
        stop(p)
        cleanup_runtime_dir(prefix)
    return res


def run_medix(args, pcap, config, mem_mb):
    prefix = new_prefix()
    cmd = [args.binary] + eal_args(prefix, mem_mb, pcap) + ["--", "--config", config]
    p = start(cmd, os.path.join(workdir, prefix + ".log"))
    try:
        t_start = time.monotonic()
        tel = wait_for(p, prefix, r"medix-dp: ready", args.start_timeout)
        startup_s = time.monotonic() - t_start
        try:
            # Before the warm-up; builds that predate it ignore it; ipsec.py has no such option.
            if getattr(args, "stage_timing", "on") == "off":
                tel("/medix/runtime,off")
            res = measure(p.pid, lambda: by_name(tel("/medix/ports"))["out"]["tx_packets"],
                          args.warmup, args.window,
                          lambda: (tel("/medix/runtime"), tel("/medix/drops"),
                                   by_name(tel("/medix/ports"))))
            (rt0, dr0, po0), (rt1, dr1, po1) = res.pop("samples")
            runtime = runtime_delta(rt0, rt1)
            drops = {k: v - dr0.get(k, 0) for k, v in (dr1 or {}).items()}
            # Frames taken from the pcap port in the window vs frames sent: all forwarded?
            rx = po1["in"]["rx_packets"] - po0["in"]["rx_packets"]
            tx = po1["out"]["tx_packets"] - po0["out"]["tx_packets"]
        finally:
            tel.close()
    finally:
        stop(p)
        cleanup_runtime_dir(prefix)
    res.update({"startup_s": startup_s, "runtime": runtime,
                "forwarded_share": round(tx / rx, 4) if rx else None,
                "drops": {k: v for k, v in (drops or {}).items() if v}})
    return res


# ---------------------------------------------------------------------------------------------
# Results


def git_state():
    """The commit the tree is at, '+dirty' when tracked files changed (the binary under test
    may be built from either; --binary may name any build)."""
    try:
        head = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "-uno"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return head + ("+dirty" if dirty else "") if head else None
    except Exception:  # noqa: BLE001
        return None


def cpu_model():
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def tsc_hz_from_system():
    """The TSC rate: the kernel's (dmesg 'tsc: Detected'/'Refined') if readable, else the
    'cpu MHz' of /proc/cpuinfo, which equals it on CPUs with constant_tsc + tsc_known_freq."""
    try:
        out = subprocess.run(["dmesg"], capture_output=True, text=True, timeout=5).stdout
        m = re.findall(r"tsc: (?:Refined TSC clocksource calibration|Detected) ([0-9.]+) MHz", out)
        if m:
            return float(m[-1]) * 1e6, "dmesg"
    except Exception:  # noqa: BLE001
        pass
    with open("/proc/cpuinfo") as f:
        text = f.read()
    m = re.search(r"cpu MHz\s*:\s*([0-9.]+)", text)
    if m and "constant_tsc" in text:
        return float(m.group(1)) * 1e6, "/proc/cpuinfo cpu MHz"
    return None, None


def runtime_delta(a, b):
    """/medix/runtime over the window: b - a per stage counter; scalars (tsc_hz) from b."""
    out = {}
    for name, v in (b or {}).items():
        if isinstance(v, dict):
            old = (a or {}).get(name) or {}
            out[name] = {k: x - old.get(k, 0) for k, x in v.items()
                         if k in ("calls", "packets", "cycles")}
        else:
            out[name] = v
    return out


def stage_breakdown(runtime):
    """{stage: cycles_per_packet} from /medix/runtime (non-stage scalars such as tsc_hz are
    left out)."""
    out = {}
    for name, v in (runtime or {}).items():
        if not isinstance(v, dict):
            continue
        if v.get("packets"):  # cycles / packets: one decimal, where the reply rounds down
            out[name] = round(float(v["cycles"]) / float(v["packets"]), 1)
        elif "cycles_per_packet" in v and v.get("calls"):
            out[name] = float(v["cycles_per_packet"])
    return out


def rx_burst_fill(runtime):
    """Average packets per non-empty rx burst (32 = the worker never catches up: saturated)."""
    rx = (runtime or {}).get("rx")
    if isinstance(rx, dict) and rx.get("calls"):
        return round(float(rx["packets"]) / float(rx["calls"]), 1)
    return None


def human_routes(n):
    return "%dM" % (n // 1000000) if n >= 1000000 and n % 1000000 == 0 else \
        "%dk" % (n // 1000) if n >= 1000 and n % 1000 == 0 else str(n)


def point_label(p):
    """"10 routes, dir24_8", "100 routes x 1000 tenants, compact"."""
    n = p.get("tenants", 1)
    return "%s routes%s%s" % (human_routes(p["routes"]), " x %d tenants" % n if n > 1 else "",
                              ", " + p["fib"] if p.get("fib") and p["fib"] != "default" else "")


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({p["frame_bytes"] for p in results["points"]})
    labels = []
    for p in results["points"]:
        if point_label(p) not in labels:
            labels.append(point_label(p))
    series = [("testpmd io (ceiling)", None)] + [("medix-dp, " + label, label) for label in labels]
    fig, ax = plt.subplots(figsize=(max(7, 1.0 * len(series) * len(sizes)) + 3, 4), dpi=100)
    width = 0.8 / len(series)
    colors = ["#9e9e9e", "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#9467bd",
              "#8c564b", "#e377c2"]
    for i, (label, key) in enumerate(series):
        xs, ys, texts = [], [], []
        for j, s in enumerate(sizes):
            if key is None:
                c = results["ceiling"].get(str(s))
                if not c:
                    continue
                y, t = c["cycles_per_packet"], "%.1f" % c["mpps"]
            else:
                pt = next((p for p in results["points"] if p["frame_bytes"] == s and point_label(p) == key), None)
                if not pt or not pt.get("mpps"):
                    continue
                y = pt["cycles_per_packet"]
                t = "%.1f" % pt["mpps"] + ("\n%.2fx" % pt["cycles_to_reference"]
                                          if pt.get("cycles_to_reference") else "")
            xs.append(j + (i - (len(series) - 1) / 2) * width)
            ys.append(y)
            texts.append(t)
        bars = ax.bar(xs, ys, width, label=label, color=colors[i % len(colors)])
        for b, t in zip(bars, texts):
            ax.annotate(t, (b.get_x() + b.get_width() / 2, b.get_height()), ha="center",
                        va="bottom", fontsize=7)
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels(["%d B frames" % s for s in sizes])
    ax.set_ylabel("TSC cycles / packet (lower is better)")
    ax.set_title("One worker core, %s, TSC %.0f MHz (labels: Mpps, cycles / the one-tenant DIR24_8's)"
                 % (results["cpu_model"], results["tsc_hz"] / 1e6), fontsize=9)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.margins(y=0.2)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_table(results):
    print("%-36s %6s %8s %10s %10s %8s %10s %7s  %s" % ("point", "frame", "Mpps", "cyc/pkt", "ceil c/p", "ratio",
                                                         "over ceil", "vs ref", "stages"))
    for s, c in sorted(results["ceiling"].items(), key=lambda kv: int(kv[0])):
        print("%-36s %6s %8.2f %10.1f %10s %8s %10s" % ("testpmd", s, c["mpps"], c["cycles_per_packet"], "-", "-",
                                                        "-"))
    for p in results["points"]:
        if not p.get("mpps"):
            print("%-36s %6d  failed: %s" % (point_label(p), p["frame_bytes"], p.get("error", "?").splitlines()[0]))
            continue
        st = " ".join("%s=%.0f" % kv for kv in p["stages"].items())
        print("%-36s %6d %8.2f %10.1f %10.1f %8.3f %10.1f %7s  %s" % (
            point_label(p), p["frame_bytes"], p["mpps"], p["cycles_per_packet"], p["ceiling_cycles_per_packet"],
            p["ratio_to_ceiling"], p["cycles_over_ceiling"], p.get("cycles_to_reference", "-"), st))


# ---------------------------------------------------------------------------------------------


def main():
    global workdir
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/dataplane/medix-dp"))
    ap.add_argument("--testpmd", default=shutil.which("dpdk-testpmd") or "dpdk-testpmd")
    ap.add_argument("--sizes", default="64,1400", help="frame sizes on the wire, FCS included")
    ap.add_argument("--routes", default="10,100000,1000000", help="routes of the one-tenant points")
    ap.add_argument("--fibs", default="dir24_8,compact",
                    help="FIB kinds of the one-tenant points (dir24_8, compact; empty: medix-dp's default)")
    ap.add_argument("--tenants", default="1,1000",
                    help="tenant counts: above 1, a point with that many tenants (compact FIBs, "
                    "--tenant-routes routes each), flows spread over all of them")
    ap.add_argument("--tenant-routes", type=int, default=100, help="routes per tenant of the many-tenant points")
    ap.add_argument("--flows", type=int, default=1024, help="distinct destinations in the pcap")
    ap.add_argument("--runs", type=int, default=3, help="best of N per point")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--window", type=float, default=5.0)
    ap.add_argument("--start-timeout", type=float, default=120.0)
    ap.add_argument("--disturbance", type=float, default=0.03,
                    help="a run is disturbed when the worker lost more than this share of "
                    "its core (other processes, hypervisor steal)")
    ap.add_argument("--extra-runs", type=int, default=2,
                    help="extra runs for a point whose every run was disturbed")
    ap.add_argument("--quiet-wait", type=float, default=60.0,
                    help="seconds in all the script may wait for CPU 1 to be idle before runs")
    ap.add_argument("--budget", type=float, default=420.0,
                    help="no extra runs start after this many seconds")
    ap.add_argument("--mem", type=int, default=0,
                    help="EAL -m MB for medix-dp (default: by route count)")
    ap.add_argument("--results", default=os.path.join(ROOT, "benchmarks/results"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--stage-timing", choices=("on", "off"), default="on",
                    help="medix-dp's per-stage TSC stamps (off: no stage cycles, calls and packets only)")
    ap.add_argument("--skip-medix", action="store_true", help="only the testpmd ceiling")
    args = ap.parse_args()

    sizes = [int(s) for s in args.sizes.split(",")]
    route_counts = [int(r) for r in args.routes.split(",")]
    fibs = [f or None for f in args.fibs.split(",")]  # "" (the default for the max_routes) -> None
    many = [int(n) for n in args.tenants.split(",") if int(n) > 1]
    if not args.skip_medix and not os.access(args.binary, os.X_OK):
        sys.exit("bench: %s is missing (scripts/build did not produce it)" % args.binary)
    os.makedirs(args.results, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="medix-bench-")
    quiet_wait_left[0] = args.quiet_wait
    if 0 in ALL_CPUS and len(ALL_CPUS) > 1:
        os.sched_setaffinity(0, {0})
    t_begin = time.monotonic()

    # What is measured: (routes per tenant, tenants, FIB kind): one tenant with each route
    # count and each FIB kind; then each many-tenant count with --tenant-routes routes each,
    # in compact FIBs (1,000 DIR24_8 tenants would need ~70 GB).
    setups = [(r, 1, f) for r in route_counts for f in fibs] + [(args.tenant_routes, n, "compact") for n in many]

    # Inputs: per setup a config and, per frame size, a pcap whose destinations fall in that
    # config's routes (many tenants: flow k in tenant k mod N, on its VLAN).
    rng = random.Random(args.seed)
    all_prefixes = random_prefixes(max([max(route_counts)] + [args.tenant_routes * n for n in many]), rng)
    configs, pcaps = {}, {}
    for r, n, f in setups:
        prefixes = all_prefixes[:r * n]
        configs[r, n, f] = os.path.join(workdir, "routes-%d-tenants-%d-%s.json" % (r, n, f or "default"))
        make_config(configs[r, n, f], prefixes, f, n)
        if (sizes[0], r, n) in pcaps:
            continue
        if n == 1:
            dests = [(d, IN_VLAN) for d in flow_destinations(prefixes, args.flows, random.Random(args.seed * 1000 + r))]
        else:
            frng = random.Random(args.seed * 1000 + n)
            dests = [((prefixes[(k % n) * r + frng.randrange(r)] << 8) | frng.randint(1, 254), tenant_vlans(k % n)[0])
                     for k in range(args.flows)]
            frng.shuffle(dests)
        for s in sizes:
            pcaps[s, r, n] = os.path.join(workdir, "frames-%d-routes-%d-tenants-%d.pcap" % (s, r, n))
            write_pcap(pcaps[s, r, n], [frame(d, 1024 + i, s, vlan) for i, (d, vlan) in enumerate(dests)])
    verify_pcap_with_scapy(pcaps[sizes[0], route_counts[0], 1], sizes[0])
    log("inputs ready in %.1f s (%s)" % (time.monotonic() - t_begin, workdir))

    def mem_for(routes):
        if args.mem:
            return args.mem
        return 1024 if routes > 65536 else 512

    def name_of(r, n, f):
        return "%s routes%s%s" % (human_routes(r), " x %d tenants" % n if n > 1 else "", ", " + f if f else "")

    # Every measured point: the ceiling per frame size, medix-dp per (frame size, setup).
    points = []
    for s in sizes:
        points.append(("testpmd", s, None))
        if not args.skip_medix:
            points += [("medix", s, setup) for setup in setups]
    runs = {pt: [] for pt in points}
    errors = {}

    def run_point(pt, label):
        kind, s, setup = pt
        wait_quiet()
        try:
            if kind == "testpmd":
                # io-forward does not look at addresses: the first route count's pcap serves.
                res = run_testpmd(args, pcaps[s, route_counts[0], 1], 512)
                what = "testpmd io"
            else:
                r, n, f = setup
                res = run_medix(args, pcaps[s, r, n], configs[setup], mem_for(r * n if f == "dir24_8" else r))
                what = "medix %s" % name_of(*setup)
        except Exception as e:  # noqa: BLE001
            errors[pt] = "%s: %s" % (type(e).__name__, e)
            log("%s %d B %s failed: %s" % (kind, s, name_of(*setup) if setup else "", e))
            return
        res["disturbed"] = disturbed(res, args.disturbance)
        runs[pt].append(res)
        notes = []
        if res.get("startup_s", 0) > 1:
            notes.append("ready in %.1f s" % res["startup_s"])
        if res.get("drops"):
            notes.append("drops: %s" % res["drops"])
        if res["disturbed"]:
            notes.append("DISTURBED: worker had %.0f%% of its core, steal %.0f%%"
                         % (100 * (res["cpu_share"] or 0), 100 * res["steal"]))
        log("%-8s %5d B  %-18s %7.2f Mpps  %s" % (label, s, what, res["pps"] / 1e6,
                                                  "; ".join(notes)))

    # Rounds interleave the points so that a noisy moment does not hit one point only.
    for rnd in range(args.runs):
        for pt in points:
            if pt not in errors:
                run_point(pt, "round %d" % (rnd + 1))
    # Points whose every run was disturbed get extra runs while the time budget lasts.
    for extra in range(args.extra_runs):
        for pt in points:
            if pt in errors or not runs[pt] or not all(x["disturbed"] for x in runs[pt]):
                continue
            if time.monotonic() - t_begin > args.budget:
                break
            run_point(pt, "extra %d" % (extra + 1))
    ceiling = {s: runs["testpmd", s, None] for s in sizes}
    medix = {(s, setup): runs.get(("medix", s, setup), []) for s in sizes for setup in setups}

    # TSC rate: the kernel's calibration (to the kHz) where it has one; medix-dp's tsc_hz is
    # DPDK's, which on CPUs without a TSC-rate CPUID leaf (AMD) is estimated over a sleep and
    # rounded to 10 MHz, so it serves only when the kernel's is missing or far off.
    tsc_hz, tsc_src = tsc_hz_from_system()
    dpdk_tsc_hz = next((float(res["runtime"]["tsc_hz"]) for pruns in medix.values()
                        for res in pruns if isinstance((res.get("runtime") or {}).get("tsc_hz"),
                                                       (int, float))), None)
    if dpdk_tsc_hz and (not tsc_hz or abs(tsc_hz / dpdk_tsc_hz - 1) > 0.01):
        tsc_hz, tsc_src = dpdk_tsc_hz, "/medix/runtime tsc_hz"
    if not tsc_hz:
        sys.exit("bench: cannot tell the TSC rate (no dmesg, no constant_tsc, no medix-dp run)")

    results = {
        "benchmark": "medix-dp VLAN->VLAN forwarding, one worker core",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "binary": os.path.relpath(args.binary, ROOT) if args.binary.startswith(ROOT + "/")
        else args.binary,
        "git": git_state(),
        "tsc_hz": tsc_hz,
        "tsc_hz_source": tsc_src,
        "dpdk_tsc_hz": dpdk_tsc_hz,
        "method": {
            "eal": "-l 0,1 --no-huge --no-pci; rx net_pcap infinite_rx=1, tx net_null no-rx=1",
            "frame_bytes": "on the wire with FCS; pcap frames are 4 bytes shorter",
            "flows": args.flows, "warmup_s": args.warmup, "window_s": args.window,
            "runs": args.runs, "best_of": "highest Mpps of the runs",
            "cycles_per_packet": "TSC Hz / packets per second (the worker polls at 100%)",
            "ceiling": "dpdk-testpmd --forward-mode=io on the same vdevs and pcap",
            "stage_timing": args.stage_timing,
        },
        "ceiling": {},
        "points": [],
    }
    for s in sizes:
        if ceiling[s]:
            best = max(ceiling[s], key=lambda x: x["pps"])
            results["ceiling"][str(s)] = {
                "mpps": round(best["pps"] / 1e6, 3),
                "cycles_per_packet": round(tsc_hz / best["pps"], 1),
                "runs_mpps": [round(x["pps"] / 1e6, 3) for x in ceiling[s]],
                "worker_cpu_share": best["cpu_share"], "steal": best["steal"],
                "disturbed": best["disturbed"]}
    for s in sizes:
        for setup in setups:
            r, n, f = setup
            pt = {"frame_bytes": s, "routes": r, "tenants": n, "fib": f or "default"}
            pruns = medix[s, setup]
            if not pruns:
                if not args.skip_medix:
                    pt["error"] = errors.get(("medix", s, setup), "no run")
                    results["points"].append(pt)
                continue
            best = max(pruns, key=lambda x: x["pps"])
            cpp = tsc_hz / best["pps"] if best["pps"] else None
            ceil = results["ceiling"].get(str(s), {}).get("cycles_per_packet")
            pt.update({
                "mpps": round(best["pps"] / 1e6, 3),
                "gbps_l2": round(best["pps"] * s * 8 / 1e9, 2),
                "cycles_per_packet": round(cpp, 1) if cpp else None,
                # What a packet cost while the worker had its CPU (a shared machine takes it away
                # now and then: schedstat): TSC Hz x on-CPU share / pps. Best run.
                "cycles_per_packet_on_cpu": round(cpp * best["cpu_share"], 1)
                if cpp and best.get("cpu_share") else None,
                "ceiling_cycles_per_packet": ceil,
                # ratio: medix-dp rate / ceiling rate = ceiling cycles / medix-dp cycles.
                "ratio_to_ceiling": round(ceil / cpp, 3) if ceil and cpp else None,
                "cycles_over_ceiling": round(cpp - ceil, 1) if ceil and cpp else None,
                "stages": stage_breakdown(best["runtime"]),
                "stages_sum": round(sum(stage_breakdown(best["runtime"]).values()), 1),
                "rx_burst_fill": rx_burst_fill(best["runtime"]),
                "drops": best["drops"],
                "forwarded_share": best["forwarded_share"],
                "startup_s": round(best["startup_s"], 1),
                "runs_mpps": [round(x["pps"] / 1e6, 3) for x in pruns],
                "worker_cpu_share": best["cpu_share"], "steal": best["steal"],
                "disturbed": best["disturbed"],
                "cpu_model": results["cpu_model"],
                "date": results["date"],
            })
            results["points"].append(pt)
    # Relative to the smallest route count at the same frame size (one tenant, the same FIB
    # kind): what the FIB size costs. And cycles per packet relative to the reference, one
    # tenant in a DIR24_8 with the smallest route count (what every tenant had before compact
    # FIBs): what compact FIBs and many tenants cost.
    for p in results["points"]:
        base = next((q for q in results["points"] if q["frame_bytes"] == p["frame_bytes"]
                     and q["routes"] == min(route_counts) and q.get("tenants", 1) == 1
                     and q.get("fib") == p.get("fib") and q.get("mpps")), None)
        if base and p.get("mpps") and p.get("tenants", 1) == 1:
            p["ratio_to_min_routes"] = round(p["mpps"] / base["mpps"], 3)
        ref = next((q for q in results["points"] if q["frame_bytes"] == p["frame_bytes"]
                    and q["routes"] == min(route_counts) and q.get("tenants", 1) == 1
                    and q.get("fib") == "dir24_8" and q.get("mpps")), None)
        if ref and p.get("mpps"):
            p["cycles_to_reference"] = round(p["cycles_per_packet"] / ref["cycles_per_packet"], 3)
            if p.get("cycles_per_packet_on_cpu") and ref.get("cycles_per_packet_on_cpu"):
                p["on_cpu_cycles_to_reference"] = round(p["cycles_per_packet_on_cpu"] / ref["cycles_per_packet_on_cpu"], 3)
    if errors:
        results["errors"] = {" ".join(str(x) for x in k if x): v for k, v in errors.items()}
    results["elapsed_s"] = round(time.monotonic() - t_begin, 1)

    save_results(args.results, "forwarding", results, plot)
    print_table(results)
    log("results in %s (%.0f s)" % (args.results, results["elapsed_s"]))
    return 1 if errors else 0


def cleanup():
    for p in list(children):
        try:
            stop(p, timeout=5)
        except Exception:  # noqa: BLE001
            pass
    for p in list(children):
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except Exception:  # noqa: BLE001
            pass
    if workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    for d in os.listdir("/var/run/dpdk") if os.path.isdir("/var/run/dpdk") else []:
        if d.startswith("medixbench-%d-" % os.getpid()):
            cleanup_runtime_dir(d)


def on_signal(signum, _frame):
    raise KeyboardInterrupt("signal %d" % signum)


def run(main):
    """Runs a benchmark's main(): SIGTERM and SIGHUP stop it like Ctrl-C, and whatever it
    started is killed and its files removed however it ends. Exits with main's status."""
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    rc = 1
    try:
        rc = main()
    except KeyboardInterrupt as e:
        log("interrupted (%s); cleaning up" % (e or "SIGINT"))
        rc = 130
    finally:
        cleanup()
    sys.exit(rc)


if __name__ == "__main__":
    run(main)
