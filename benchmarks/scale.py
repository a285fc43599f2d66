#!/usr/bin/python3
"""Scale benchmark (issue 13): medix-dp with many tenants. Called by benchmarks/scale after
scripts/build; see benchmarks/README.md. Reuses benchmarks/forwarding.py's process harness and
test/api/medixapi.py's client; every process it starts is killed and its files removed on exit.

For each tenant count N (--tenants, default 10,100,1000), a config of N tenants, each with one
interface (port p0, VLAN i, 10.0.0.1/24: one plan for all) and R routes (--routes: "1" as a new
user would, "100" random /24s per tenant) via 10.0.0.2, a static neighbour; with --core-routes,
one more tenant `core` with that many random /24s (its FIB kind: --core-fib). Per config:

 - start: from exec to "medix-dp: ready" (the config is the first transaction), `-m` (--mem);
 - memory: VmRSS after start (and the same medix-dp with no tenant, for the difference), and
   GetFib's summary (compact plies and bytes, DIR24_8 bytes);
 - tenant create/delete with N present: --cycles times, one more tenant (with its interface,
   neighbour and a route) created in one transaction and deleted in another; wall time of
   each Apply at the Python client over the unix socket (its floor, a GetFib round trip, is
   recorded too), and the time medix-dp itself reports (ApplyResponse.apply_ns: validation,
   build, publish, grace period, reclaim), also less the grace period (grace_ns: waiting for
   the worker to pass a quiescent state, which on a 2-core machine shared with builds is where
   the OS's scheduling shows: a worker thread off its CPU for a tick or more).

Then medix-cp (--cp-tenants, default 1,000; 0: skip): an intent of that many tenants (the same
objects: tenant, interface, neighbour, one route each) and no IKE peer; medix-dp starts with
its ports only. Timed: medix-cp's start until medix-dp holds every tenant (the intent applied);
`medixctl intent apply` of the same intent with every tenant's description changed (ApplyIntent:
1,000 updates); medix-dp killed and started again until medix-cp has replayed every tenant
into it (from the new medix-dp's `ready`).

Results: benchmarks/results/scale.json and scale.png.
"""
import argparse
import datetime
import json
import os
import random
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "api"))

import forwarding as fwd  # noqa: E402
import medixapi as api  # noqa: E402
from medixapi import pb, dp, create, delete, route_via, rpc  # noqa: E402


def log(*a):
    print("scale-bench:", *a, file=sys.stderr, flush=True)


def pct(values, p):
    v = sorted(values)
    if not v:
        return None
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (k - lo), 2)


def prefix_str(p):
    return "%d.%d.%d.0/24" % (p >> 16, (p >> 8) & 255, p & 255)


def tenant_objects(i, prefixes):
    """Tenant i: its interface (VLAN i+1 on p0), a static neighbour, its routes."""
    t = "t%d" % i
    objs = [pb.Tenant(name=t),
            pb.Interface(name="if%d" % i, tenant=t, port="p0", vlan=i + 1, addresses=["10.0.0.1/24"]),
            pb.Neighbour(interface="if%d" % i, address="10.0.0.2", mac="02:00:00:00:%02x:%02x" % (i >> 8, i & 255))]
    objs += [route_via(t, prefix_str(p), "if%d" % i, "10.0.0.2") for p in prefixes]
    return objs


def write_config(path, n, routes, core_prefixes, core_fib):
    """The config as JSON, written by hand (1M core routes is ~100 MB)."""
    rng = random.Random(n * 7919 + routes)
    pool = fwd.random_prefixes(max(routes, 1) * 4 if routes > 1 else 1, rng)
    with open(path, "w") as f:
        f.write('{"schema_version": 1,\n "ports": [{"name": "p0", "device": "net_null0"}, '
                '{"name": "p1", "device": "net_null1"}],\n')
        tenants = ['{"name": "t%d"}' % i for i in range(n)]
        if core_prefixes:
            tenants.append('{"name": "core", "core": true, "max_routes": %d, "fib": "%s"}'
                           % (len(core_prefixes) + 64, "FIB_DIR24_8" if core_fib == "dir24_8" else "FIB_COMPACT"))
        f.write(' "tenants": [%s],\n' % ", ".join(tenants))
        ifs = ['{"name": "if%d", "tenant": "t%d", "port": "p0", "vlan": %d, "addresses": ["10.0.0.1/24"]}'
               % (i, i, i + 1) for i in range(n)]
        if core_prefixes:
            ifs.append('{"name": "core-if", "tenant": "core", "port": "p1", "vlan": 10, "addresses": ["10.0.0.1/24"]}')
        f.write(' "interfaces": [%s],\n' % ",\n  ".join(ifs))
        nbs = ['{"interface": "if%d", "address": "10.0.0.2", "mac": "02:00:00:00:%02x:%02x"}' % (i, i >> 8, i & 255)
               for i in range(n)]
        if core_prefixes:
            nbs.append('{"interface": "core-if", "address": "10.0.0.2", "mac": "02:00:00:00:ff:ff"}')
        f.write(' "neighbours": [%s],\n' % ",\n  ".join(nbs))
        f.write(' "routes": [\n')
        first = True
        for i in range(n):
            mine = rng.sample(pool, routes) if routes > 1 else pool[:1]
            for p in mine:
                f.write(('' if first else ',\n') + '  {"tenant": "t%d", "prefix": "%s", "via": {"interface": "if%d", '
                        '"address": "10.0.0.2"}}' % (i, prefix_str(p), i))
                first = False
        for p in core_prefixes or []:
            f.write(('' if first else ',\n') + '  {"tenant":"core","prefix":"%s","via":{"interface":"core-if",'
                    '"address":"10.0.0.2"}}' % prefix_str(p))
            first = False
        f.write('\n ]\n}\n')


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])


def start(args, config):
    prefix = fwd.new_prefix()
    cmd = [args.binary, "-l", "0,1", "--no-huge", "-m", str(args.mem), "--no-pci", "--file-prefix", prefix,
           "--vdev", "net_null0", "--vdev", "net_null1", "--", "--config", config]
    t0 = time.monotonic()
    p = fwd.start(cmd, os.path.join(fwd.workdir, prefix + ".log"))
    tel = fwd.wait_for(p, prefix, r"medix-dp: ready", args.start_timeout)
    ready_s = time.monotonic() - t0
    tel.close()
    sock = "/var/run/dpdk/%s/api.sock" % prefix
    for _ in range(100):
        if os.path.exists(sock):
            break
        time.sleep(0.1)
    client = api.Client("unix:" + sock)
    client.wait_ready(10)
    p.prefix = prefix
    return p, client, ready_s


def stop(p, client):
    client.close()
    fwd.stop(p)
    fwd.cleanup_runtime_dir(p.prefix)


def fib_summary(client):
    r = client.stub.GetFib(dp.GetFibRequest(), timeout=30)
    m = r.memory
    return {"tenants": m.tenants, "compact_tenants": m.compact_tenants, "dir24_8_tenants": m.dir24_8_tenants,
            "entries": m.entries, "compact_plies": m.compact_plies, "compact_bytes": m.compact_bytes,
            "dir24_8_bytes": m.dir24_8_bytes}


def churn(client, n, cycles):
    """Tenant create/delete latencies (ms) with n tenants present: one of them (a new one,
    with its interface, neighbour and one route) created, then deleted, `cycles` times."""
    create_ms, delete_ms, errors = [], [], []
    server = {"create": [], "delete": []}  # ApplyResponse.apply_ns: inside medix-dp
    work = {"create": [], "delete": []}  # ... less grace_ns: without waiting for the worker
    rng = random.Random(5)
    extra = n + 10  # a slot and VLAN no config tenant uses
    prefixes = fwd.random_prefixes(1, rng)
    objs = tenant_objects(extra, prefixes)
    floor = []
    for _ in range(50):
        t = time.monotonic()
        client.stub.GetFib(dp.GetFibRequest(tenant="t0", page_size=1), timeout=10)
        floor.append((time.monotonic() - t) * 1000)
    for _ in range(cycles):
        for ops, into, what in (([create(o) for o in objs], create_ms, "create"),
                                ([delete(o) for o in reversed(objs)], delete_ms, "delete")):
            t = time.monotonic()
            err, res = rpc(client.apply, ops, 0, 60)
            into.append((time.monotonic() - t) * 1000)
            if err is not None:
                errors.append("%s %s" % (err.code().name, err.details()))
            else:
                server[what].append(res.apply_ns / 1e6)
                work[what].append((res.apply_ns - res.grace_ns) / 1e6)
    summary = lambda v: {"p50": pct(v, 50), "p99": pct(v, 99), "max": round(max(v), 2) if v else None}
    return {"cycles": cycles, "objects_per_transaction": len(objs), "create_ms": summary(create_ms),
            "delete_ms": summary(delete_ms), "client_floor_ms": summary(floor),
            "server_create_ms": summary(server["create"]), "server_delete_ms": summary(server["delete"]),
            "server_create_ms_without_grace": summary(work["create"]),
            "server_delete_ms_without_grace": summary(work["delete"]),
            "errors": errors[:5],
            "loadavg": open("/proc/loadavg").read().split()[:3]}


def write_intent(path, n, description=""):
    tenants = [{"name": "t%d" % i, "description": description} for i in range(n)]
    interfaces = [{"name": "if%d" % i, "tenant": "t%d" % i, "port": "p0", "vlan": i + 1, "addresses": ["10.0.0.1/24"]}
                  for i in range(n)]
    neighbours = [{"interface": "if%d" % i, "address": "10.0.0.2", "mac": "02:00:00:00:%02x:%02x" % (i >> 8, i & 255)}
                  for i in range(n)]
    routes = [{"tenant": "t%d" % i, "prefix": "10.9.0.0/16", "via": {"interface": "if%d" % i, "address": "10.0.0.2"}}
              for i in range(n)]
    intent = {"schema_version": 1, "ports": [{"name": "p0", "device": "net_null0"},
                                             {"name": "p1", "device": "net_null1"}],
              "tenants": tenants, "interfaces": interfaces, "neighbours": neighbours, "routes": routes}
    with open(path, "w") as f:
        json.dump(intent, f)


def wait_tenants(client, n, timeout):
    """Seconds until medix-dp lists n tenants (polling every 50 ms), or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            r = client.stub.List(dp.ListRequest(kind=dp.TENANT, page_size=100000), timeout=10)
            if len(r.objects) >= n:
                return time.monotonic() - t0
        except Exception:  # noqa: BLE001
            pass
        time.sleep(0.05)
    return None


def cp_point(args, n):
    """medix-cp with an intent of n tenants: apply at start, ApplyIntent, replay."""
    import subprocess
    cp_bin = os.path.join(ROOT, "build/controlplane/medix-cp")
    ctl = os.path.join(ROOT, "build/controlplane/cli/medixctl")
    ports = os.path.join(fwd.workdir, "ports.json")
    write_config(ports, 0, 0, None, "compact")
    intent = os.path.join(fwd.workdir, "intent-%d.json" % n)
    write_intent(intent, n)
    prefix = fwd.new_prefix()
    cmd = [args.binary, "-l", "0,1", "--no-huge", "-m", str(args.mem), "--no-pci", "--file-prefix", prefix,
           "--vdev", "net_null0", "--vdev", "net_null1", "--", "--config", ports]
    out = {"tenants": n}
    p = fwd.start(cmd, os.path.join(fwd.workdir, prefix + "-dp.log"))
    tel = fwd.wait_for(p, prefix, r"medix-dp: ready", args.start_timeout)
    tel.close()
    sock = "/var/run/dpdk/%s/api.sock" % prefix
    client = api.Client("unix:" + sock)
    client.wait_ready(10)
    cp_sock = "unix://" + os.path.join(fwd.workdir, "cp.sock")
    t0 = time.monotonic()
    cp = fwd.start([cp_bin, "--intent", intent, "-p", prefix, "--listen", cp_sock],
                   os.path.join(fwd.workdir, prefix + "-cp.log"))
    try:
        waited = wait_tenants(client, n, 120)
        out["start_apply_s"] = round(time.monotonic() - t0, 2) if waited is not None else None
        changed = os.path.join(fwd.workdir, "intent-%d-changed.json" % n)
        write_intent(changed, n, "changed")
        t0 = time.monotonic()
        r = subprocess.run([ctl, "--cp", cp_sock, "intent", "apply", changed], capture_output=True, text=True,
                           timeout=300)
        out["apply_intent_s"] = round(time.monotonic() - t0, 2)
        out["apply_intent_output"] = (r.stdout + r.stderr).strip()[-300:]
        # medix-dp restarts: medix-cp replays the intent into the new one.
        client.close()
        fwd.stop(p)
        fwd.cleanup_runtime_dir(prefix)
        p = fwd.start(cmd, os.path.join(fwd.workdir, prefix + "-dp2.log"))
        tel = fwd.wait_for(p, prefix, r"medix-dp: ready", args.start_timeout)
        tel.close()
        t0 = time.monotonic()
        client = api.Client("unix:" + sock)
        client.wait_ready(10)
        waited = wait_tenants(client, n, 120)
        out["replay_s"] = round(time.monotonic() - t0, 2) if waited is not None else None
        r = client.stub.List(dp.ListRequest(kind=dp.TENANT, page_size=100000), timeout=10)
        out["replayed_descriptions_changed"] = all(t.tenant.description == "changed" for t in r.objects)
    finally:
        client.close()
        fwd.stop(cp)
        fwd.stop(p)
        fwd.cleanup_runtime_dir(prefix)
    return out


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = results["points"]
    labels = ["%d tenants\n%s" % (p["tenants"], p["label"]) for p in pts]
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))
    axes[0].bar(range(len(pts)), [p["ready_s"] for p in pts], color="#2a7ab9")
    axes[0].set_title("start to ready (s)", fontsize=10)
    axes[1].bar(range(len(pts)), [p["fib_bytes"] / 1e6 for p in pts], color="#2a7ab9", label="FIB")
    axes[1].bar(range(len(pts)), [p["rss_over_empty_kb"] / 1e3 for p in pts], color="#bbbbbb", width=0.4,
                label="VmRSS over an empty medix-dp")
    axes[1].set_title("memory (MB)", fontsize=10)
    axes[1].legend(fontsize=7)
    w = 0.4
    axes[2].bar([i - w / 2 for i in range(len(pts))], [p["churn"]["create_ms"]["p99"] for p in pts], w,
                label="create p99", color="#2a7ab9")
    axes[2].bar([i + w / 2 for i in range(len(pts))], [p["churn"]["delete_ms"]["p99"] for p in pts], w,
                label="delete p99", color="#d9822b")
    axes[2].axhline(10, color="#c00", lw=0.8, ls="--")
    axes[2].set_title("tenant transaction p99 (ms, Python client)", fontsize=10)
    axes[2].legend(fontsize=7)
    for ax in axes:
        ax.set_xticks(range(len(pts)))
        ax.set_xticklabels(labels, fontsize=7)
    fig.suptitle("medix-dp with many tenants (%s)" % results["git"], fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/dataplane/medix-dp"))
    ap.add_argument("--tenants", default="10,100,1000")
    ap.add_argument("--routes", default="1,100", help="routes per tenant, one config each")
    ap.add_argument("--core-routes", type=int, default=0, help="a core tenant with this many routes")
    ap.add_argument("--core-fib", default="compact", choices=("compact", "dir24_8"))
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--mem", type=int, default=1024)
    ap.add_argument("--start-timeout", type=float, default=300)
    ap.add_argument("--results", default=os.path.join(ROOT, "benchmarks/results"))
    ap.add_argument("--name", default="scale", help="results file name (without .json)")
    ap.add_argument("--cp-tenants", type=int, default=1000, help="medix-cp with an intent of this many tenants; 0: skip")
    args = ap.parse_args()
    fwd.workdir = tempfile.mkdtemp(prefix="medix-scale-")
    if 0 in fwd.ALL_CPUS and len(fwd.ALL_CPUS) > 1:
        os.sched_setaffinity(0, {0})
    results = {"benchmark": "medix-dp with many tenants", "date": datetime.datetime.now(
        datetime.timezone.utc).isoformat(timespec="seconds"), "cpu_model": fwd.cpu_model(), "git": fwd.git_state(),
        "binary": args.binary, "mem_mb": args.mem, "core_routes": args.core_routes, "core_fib": args.core_fib,
        "points": []}
    empty = os.path.join(fwd.workdir, "empty.json")
    write_config(empty, 0, 0, None, args.core_fib)
    p, client, _ = start(args, empty)
    time.sleep(1)
    rss_empty = status_kb(p.pid, "VmRSS")
    stop(p, client)
    results["rss_empty_kb"] = rss_empty
    core = fwd.random_prefixes(args.core_routes, random.Random(99)) if args.core_routes else None
    for routes in [int(x) for x in args.routes.split(",")]:
        for n in [int(x) for x in args.tenants.split(",")]:
            config = os.path.join(fwd.workdir, "t%d-r%d.json" % (n, routes))
            write_config(config, n, routes, core, args.core_fib)
            log("%d tenants x %d routes%s: starting" % (n, routes, " + core %d" % len(core) if core else ""))
            p, client, ready_s = start(args, config)
            try:
                time.sleep(1)
                rss = status_kb(p.pid, "VmRSS")
                fib = fib_summary(client)
                ch = churn(client, n, args.cycles)
            finally:
                stop(p, client)
            fib_bytes = fib["compact_bytes"] + fib["dir24_8_bytes"]
            pt = {"tenants": n, "routes_per_tenant": routes, "label": "%d route%s" % (routes, "s" * (routes > 1))
                  + (" + core" if core else ""), "ready_s": round(ready_s, 2), "rss_kb": rss,
                  "rss_over_empty_kb": rss - rss_empty, "fib": fib, "fib_bytes": fib_bytes,
                  "fib_bytes_per_tenant": round(fib["compact_bytes"] / max(1, fib["compact_tenants"])),
                  "churn": ch}
            results["points"].append(pt)
            log("  ready in %.2f s, VmRSS %d MB (+%d over empty), FIB %.1f MB (%d plies), create p50/p99 %s/%s ms, "
                "delete p50/p99 %s/%s ms (client floor p50 %s ms); inside medix-dp: create p50/p99 %s/%s, "
                "delete %s/%s ms; without the grace period: create p50/p99 %s/%s, delete %s/%s ms%s"
                % (ready_s, rss // 1024, (rss - rss_empty) // 1024, fib_bytes / 1e6, fib["compact_plies"],
                   ch["create_ms"]["p50"], ch["create_ms"]["p99"], ch["delete_ms"]["p50"], ch["delete_ms"]["p99"],
                   ch["client_floor_ms"]["p50"], ch["server_create_ms"]["p50"], ch["server_create_ms"]["p99"],
                   ch["server_delete_ms"]["p50"], ch["server_delete_ms"]["p99"],
                   ch["server_create_ms_without_grace"]["p50"], ch["server_create_ms_without_grace"]["p99"],
                   ch["server_delete_ms_without_grace"]["p50"], ch["server_delete_ms_without_grace"]["p99"],
                   "; errors: %s" % ch["errors"] if ch["errors"] else ""))
    if args.cp_tenants:
        log("medix-cp with %d tenants" % args.cp_tenants)
        results["cp"] = cp_point(args, args.cp_tenants)
        log("  %s" % results["cp"])
    fwd.save_results(args.results, args.name, results, plot, log)
    return 0


if __name__ == "__main__":
    fwd.run(main)
