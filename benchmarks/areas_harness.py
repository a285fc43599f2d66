#!/usr/bin/python3
"""What the benchmarks of several areas share (benchmarks/etcd_scale.py, benchmarks/etcd_changes.py;
docs/areas.md): one etcd member on loopback, a medix-dp per area (net_null port, --no-huge, a file
prefix of its own) and its medix-cp, processes whose output lines are timestamped as they arrive.
Processes are started through benchmarks/forwarding.py's harness (fwd.start, fwd.children: killed
and their files removed on exit); `args` is the benchmark's: binary, cp, mem, start_timeout,
strongswan_conf."""
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import forwarding as fwd
import medixapi as api
from medixapi import dp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def add_args(ap, name, mem, start_timeout, timeout):
    """The options both benchmarks take: binaries, memory, timeouts, where results go."""
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/dataplane/medix-dp"))
    ap.add_argument("--cp", default=os.path.join(ROOT, "build/controlplane/medix-cp"))
    ap.add_argument("--mem", type=int, default=mem)
    ap.add_argument("--start-timeout", type=float, default=start_timeout)
    ap.add_argument("--timeout", type=float, default=timeout[0], help=timeout[1])
    ap.add_argument("--results", default=os.path.join(ROOT, "benchmarks/results/areas"))
    ap.add_argument("--name", default=name, help="results file name (without .json)")
    ap.add_argument("--replot", metavar="JSON", help="draw the PNG again from a results file, run nothing")


def replot(args, plot):
    """--replot: the PNG drawn again from its JSON; True if that was the whole job."""
    if not args.replot:
        return False
    with open(args.replot) as f:
        plot(json.load(f), os.path.splitext(args.replot)[0] + ".png")
    return True


def prepare(args, binaries, tag):
    """Binaries checked; the work folder (fwd.workdir), off the workers' CPU; medix-cp's
    strongswan.conf without an IKE socket (args.strongswan_conf); the ports file, returned."""
    for b in binaries:
        if not os.access(b, os.X_OK):
            sys.exit("%s is not built (scripts/build)" % b)
    fwd.workdir = tempfile.mkdtemp(prefix="medix-%s-" % tag)
    if 0 in fwd.ALL_CPUS and len(fwd.ALL_CPUS) > 1:
        os.sched_setaffinity(0, {0})  # as the other benchmarks: off the workers' CPU 1
    args.strongswan_conf = os.path.join(fwd.workdir, "strongswan.conf")
    with open(args.strongswan_conf, "w") as f:
        f.write("medix-cp {\n  port = 0\n  port_nat_t = 0\n}\n")  # no IKE socket: nothing to clash with
    ports = os.path.join(fwd.workdir, "ports.json")
    with open(ports, "w") as f:
        json.dump({"schema_version": 1, "ports": [{"name": "p0", "device": "net_null0"}]}, f)
    return ports


def free_ports(n=1):
    """n distinct loopback TCP ports free now (held together while chosen)."""
    held = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        held.append(s)
    ports = [s.getsockname()[1] for s in held]
    for s in held:
        s.close()
    return ports


# --- processes whose output lines are timestamped as they arrive --------------------------------

def start_stamped(cmd, logpath):
    """fwd.start's process, its output read here: p.lines holds (monotonic time, line); p.t0 is
    the time just before exec."""
    logf = open(logpath, "w")
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         start_new_session=True, cwd=ROOT,
                         preexec_fn=lambda: os.sched_setaffinity(0, fwd.ALL_CPUS))
    p.t0, p.lines, p.logf, p.logpath = t0, [], logf, logpath

    def pump():
        for raw in p.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            p.lines.append((time.monotonic(), line))
            try:
                logf.write(line + "\n")
                logf.flush()
            except ValueError:  # closed by fwd.stop
                return
    threading.Thread(target=pump, daemon=True).start()
    fwd.children.append(p)
    return p


def first(p, pattern, since=None):
    """(seconds after `since` (default p.t0), the match) of the first line matching, or (None, None)."""
    for t, line in list(p.lines):
        m = re.search(pattern, line)
        if m:
            return round(t - (p.t0 if since is None else since), 3), m
    return None, None


def wait_line(p, pattern, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if first(p, pattern)[0] is not None:
            return True
        time.sleep(0.05)
    return False


def metric(port, name, labels):
    """A sample of medix-cp's Prometheus metrics, or None."""
    try:
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5).read().decode()
    except Exception:  # noqa: BLE001
        return None
    for line in text.splitlines():
        if line.startswith(name + "{") and all('%s="%s"' % kv in line for kv in labels.items()):
            return float(line.split()[-1])
    return None


# --- etcd ---------------------------------------------------------------------------------------

class Etcd:
    def __init__(self, workdir):
        self.client, peer = free_ports(2)
        c, pu = "http://127.0.0.1:%d" % self.client, "http://127.0.0.1:%d" % peer
        # test/lib/etcd.sh's etcd_member, on the host's loopback with ports of our own.
        self.p = fwd.start(["etcd", "--name", "medix-bench", "--data-dir", os.path.join(workdir, "etcd"),
                            "--listen-client-urls", c, "--advertise-client-urls", c, "--listen-peer-urls", pu,
                            "--initial-advertise-peer-urls", pu, "--initial-cluster", "medix-bench=" + pu,
                            "--log-level", "error"], os.path.join(workdir, "etcd.log"))
        for _ in range(100):
            if self.ctl("endpoint", "health").returncode == 0:
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError("etcd did not start:\n" + fwd.log_tail(self.p))

    def ctl(self, *args, stdin=None):
        return subprocess.run(["/usr/bin/etcdctl", "--endpoints", "127.0.0.1:%d" % self.client, "--dial-timeout",
                               "2s"] + list(args), input=stdin, capture_output=True, text=True, timeout=60,
                              env=dict(os.environ, ETCDCTL_API="3"))

    def put(self, key, value):
        r = self.ctl("put", key, stdin=value)  # the value from stdin: no argv limit
        if r.returncode != 0:
            raise RuntimeError("etcdctl put %s: %s" % (key, r.stderr.strip()))

    def timed_get(self, *args, times=3):
        best = None
        for _ in range(times):
            t = time.monotonic()
            r = self.ctl("get", *args)
            took = time.monotonic() - t
            if r.returncode != 0:
                raise RuntimeError("etcdctl get: %s" % r.stderr.strip())
            best = took if best is None else min(best, took)
        return best


# --- medix-dp and medix-cp ----------------------------------------------------------------------

def dp_start(args, ports_config, tag):
    prefix = fwd.new_prefix()
    p = start_stamped([args.binary, "-l", "0,1", "--no-huge", "-m", str(args.mem), "--no-pci", "--file-prefix",
                       prefix, "--vdev", "net_null0,no-rx=1", "--", "--config", ports_config],
                      os.path.join(fwd.workdir, "%s-%s-dp.log" % (prefix, tag)))
    fwd.wait_for(p, prefix, r"medix-dp: ready", args.start_timeout).close()
    p.prefix = prefix
    p.client = api.Client("unix:/var/run/dpdk/%s/api.sock" % prefix)
    p.client.wait_ready(10)
    return p


def dp_stop(p):
    p.client.close()
    fwd.stop(p)
    fwd.cleanup_runtime_dir(p.prefix)


def cp_start(args, dpp, tag, extra):
    port, = free_ports()
    cmd = [args.cp, "-p", dpp.prefix, "--listen", "unix://" + os.path.join(fwd.workdir, "cp-%s.sock" % tag),
           "--metrics-listen", "127.0.0.1:%d" % port, "--strongswan-conf", args.strongswan_conf,
           "--log-level", "0"] + extra
    p = start_stamped(cmd, os.path.join(fwd.workdir, "%s-%s-cp.log" % (dpp.prefix, tag)))
    p.metrics_port = port
    return p


def count(client, kind):
    r = client.stub.List(dp.ListRequest(kind=kind, page_size=100000), timeout=10)
    return len(r.objects)
