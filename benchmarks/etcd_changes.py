#!/usr/bin/python3
"""Intent changes through etcd, until every area's medix-dp has them (issue 18's goal: an intent
change written to etcd applied in every area's medix-dp within 1 s, p99 over 100 changes). See
benchmarks/README.md ("Intent changes through etcd") and docs/areas.md.

One etcd member on loopback, areas east and west, each a medix-dp (net_null port, --no-huge, a file
prefix of its own) and a medix-cp with --intent-store etcd://... --area NAME (benchmarks/
areas_harness.py, shared with etcd_scale.py). The intent: the core tenant ix and a policy rule
(global); east's section a hospital (tenant hosp-e, an interface on VLAN 10), west's an archive
(arch-w, VLAN 20).

Change k (--changes of them) is the operator's `medixctl intent apply FILE` against east's
medix-cp: both areas' tenants get the description "change k", so one etcd Txn writes both areas'
keys (docs/areas.md, "Versions and transactions"). Timed:
 - exec: medixctl's exec (the operator's view: medix-cp's read and Txn included);
 - commit: the moment an `etcdctl watch` of the intent's prefix, running throughout, received the
   revision (etcd's commit as a watcher sees it, what the areas' medix-cp wait for too);
 - seen: when each area's medix-dp returns the tenant with the new description (medix-dp's Get,
   both polled every --poll-ms, 10 by default); `all` is the later of the two.
The goal's figure is commit -> all areas seen (its p99 over the changes).

The reference, in the same invocation: the same changes applied with medixctl to one medix-cp
whose store is the intent file (one site, no etcd), timed from medixctl's exec until its medix-dp
has it; ratio = etcd's p99 from exec over the file's.

Results: benchmarks/results/areas/etcd-changes.json and .png.
"""
import argparse
import datetime
import json
import math
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "api"))

import forwarding as fwd  # noqa: E402
import areas_harness as harness  # noqa: E402
from areas_harness import Etcd, cp_start, dp_start, dp_stop, wait_line  # noqa: E402
from medixapi import dp, pb  # noqa: E402

AREAS = ("east", "west")
TENANT = {"east": "hosp-e", "west": "arch-w"}
GOAL_S = 1.0


def log(*a):
    print("etcd-changes:", *a, file=sys.stderr, flush=True)


def intent(k, with_areas=True):
    """Change k's intent: every area's tenant described "change k"."""
    glob = {"schema_version": 1, "tenants": [{"name": "ix", "description": "the IX core", "core": True}],
            "policy_rules": [{"name": "to-core", "priority": 10, "to_tenant": "ix", "permit": True}]}
    sections = {}
    for vlan, a in zip((10, 20), AREAS):
        t = TENANT[a]
        sections[a] = {"tenants": [{"name": t, "description": "change %d" % k}],
                       "interfaces": [{"name": "if-" + t, "tenant": t, "port": "p0", "vlan": vlan,
                                       "addresses": ["10.%d.0.1/24" % vlan]}]}
    if with_areas:
        glob["areas"] = sections
        return glob
    for s in sections.values():  # one site: everything in one intent
        for kind, objs in s.items():
            glob.setdefault(kind, []).extend(objs)
    return glob


def described(dpp, tenant):
    key = dp.Object(tenant=pb.Tenant(name=tenant))
    try:
        return dpp.client.stub.Get(dp.GetRequest(key=key), timeout=5).object.tenant.description
    except Exception:  # noqa: BLE001 (not there yet, or medix-dp busy: asked again)
        return None


class Watch:
    """`etcdctl watch --prefix` of the intent, its responses timestamped as they arrive."""

    def __init__(self, etcd, prefix):
        cmd = ["/usr/bin/etcdctl", "--endpoints", "127.0.0.1:%d" % etcd.client, "watch", "--prefix", prefix,
               "-w", "json"]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True,
                                  env=dict(os.environ, ETCDCTL_API="3"))
        fwd.children.append(self.p)
        self.seen = []  # (monotonic time, revision)
        threading.Thread(target=self.pump, daemon=True).start()

    def pump(self):
        for raw in self.p.stdout:
            t = time.monotonic()
            try:
                self.seen.append((t, int(json.loads(raw)["Header"]["revision"])))
            except (ValueError, KeyError, TypeError):
                pass

    def first_after(self, t0):
        return next((t for t, _ in list(self.seen) if t >= t0), None)


def apply_and_wait(args, sock, path, dps, k, timeout):
    """medixctl intent apply of change k through the medix-cp at `sock`; polls `dps` ({area:
    medix-dp}) until each has it. (exec time, {area: seen time or None}, medixctl's seconds, its
    error or None)."""
    want = "change %d" % k
    t0 = time.monotonic()
    ctl = subprocess.Popen([args.ctl, "--cp", "unix://" + sock, "intent", "apply", path], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    seen, ctl_s = {}, None
    deadline = t0 + timeout
    while time.monotonic() < deadline and (len(seen) < len(dps) or ctl_s is None):
        for a, dpp in dps.items():
            if a not in seen and described(dpp, TENANT.get(a, a)) == want:
                seen[a] = time.monotonic()
        if ctl_s is None and ctl.poll() is not None:
            ctl_s = time.monotonic() - t0
        time.sleep(args.poll_ms / 1000)
    error = None
    if ctl.poll() is None:
        ctl.kill()
        error = "medixctl did not return"
    out = ctl.communicate()[0].decode(errors="replace")
    if ctl.returncode:
        error = "medixctl: " + out.strip()[-300:]
    return t0, {a: seen.get(a) for a in dps}, ctl_s, error


def percentiles(values):
    """p50, p90, p99 (nearest rank) and max of the values, None when any is missing."""
    if not values or None in values:
        return None
    v = sorted(values)

    def rank(p):
        return v[max(0, math.ceil(p / 100 * len(v)) - 1)]
    return {"n": len(v), "p50": round(rank(50), 4), "p90": round(rank(90), 4), "p99": round(rank(99), 4),
            "max": round(v[-1], 4)}


def run_etcd(args, ports, etcd, key):
    dps, cps = {}, {}
    watch = Watch(etcd, key + "/intent/")
    path = os.path.join(fwd.workdir, "intent-etcd.json")
    changes, errors = [], []
    try:
        for a in AREAS:
            dps[a] = dp_start(args, ports, a)
        url = "etcd://127.0.0.1:%d%s" % (etcd.client, key)
        for a in AREAS:
            cps[a] = cp_start(args, dps[a], a, ["--intent", os.path.join(fwd.workdir, "local-%s.json" % a),
                                                 "--intent-store", url, "--area", a])
            if not wait_line(cps[a], r"medix-cp: ready", args.start_timeout):
                raise RuntimeError("medix-cp %s not ready:\n%s" % (a, fwd.log_tail(cps[a])))
        sock = os.path.join(fwd.workdir, "cp-east.sock")
        for k in range(args.changes + 1):  # change 0 creates the tenants: not counted
            with open(path, "w") as f:
                json.dump(intent(k), f)
            t0, seen, ctl_s, error = apply_and_wait(args, sock, path, dps, k, args.timeout)
            if k == 0:
                if error or None in seen.values():
                    raise RuntimeError("the first intent was not applied: %s %s" % (error, seen))
                continue
            commit = watch.first_after(t0)
            row = {"change": k, "medixctl_s": round(ctl_s, 4) if ctl_s is not None else None,
                   "commit_after_exec_s": round(commit - t0, 4) if commit else None,
                   "from_exec_s": {a: round(t - t0, 4) if t else None for a, t in seen.items()},
                   "from_commit_s": {a: round(t - commit, 4) if t and commit else None for a, t in seen.items()}}
            for d in ("from_exec_s", "from_commit_s"):
                v = list(row[d].values())
                row[d]["all"] = None if None in v else max(v)
            if error or None in seen.values() or commit is None:
                errors.append("change %d: %s" % (k, error or "seen %s, commit %s" % (row["from_exec_s"], commit)))
            changes.append(row)
            time.sleep(args.pause_ms / 1000)
    finally:
        for a in AREAS:
            if a in cps:
                fwd.stop(cps[a])
            if a in dps:
                dp_stop(dps[a])
    out = {"changes": changes, "errors": errors}
    for d in ("from_commit_s", "from_exec_s"):
        out[d.replace("_s", "")] = {a: percentiles([c[d][a] for c in changes]) for a in AREAS + ("all",)}
    out["medixctl"] = percentiles([c["medixctl_s"] for c in changes])
    out["commit_after_exec"] = percentiles([c["commit_after_exec_s"] for c in changes])
    return out


def run_file(args, ports):
    path = os.path.join(fwd.workdir, "intent-file.json")
    with open(path, "w") as f:
        json.dump(intent(0, with_areas=False), f)
    dpp = dp_start(args, ports, "file")
    cp = None
    changes, errors = [], []
    try:
        cp = cp_start(args, dpp, "file", ["--intent", path])
        if not wait_line(cp, r"medix-cp: ready", args.start_timeout):
            raise RuntimeError("medix-cp (file) not ready:\n" + fwd.log_tail(cp))
        sock = os.path.join(fwd.workdir, "cp-file.sock")
        apply_path = os.path.join(fwd.workdir, "change-file.json")
        for k in range(1, args.changes + 1):
            with open(apply_path, "w") as f:
                json.dump(intent(k, with_areas=False), f)
            # One medix-dp holds both tenants: both polled, each under its own name.
            t0, seen, ctl_s, error = apply_and_wait(args, sock, apply_path, {"hosp-e": dpp, "arch-w": dpp}, k,
                                                    args.timeout)
            v = list(seen.values())
            row = {"change": k, "medixctl_s": round(ctl_s, 4) if ctl_s is not None else None,
                   "from_exec_s": None if None in v else round(max(v) - t0, 4)}
            if error or None in v:
                errors.append("file change %d: %s" % (k, error or "not seen"))
            changes.append(row)
            time.sleep(args.pause_ms / 1000)
    finally:
        if cp:
            fwd.stop(cp)
        dp_stop(dpp)
    return {"changes": changes, "errors": errors, "from_exec": percentiles([c["from_exec_s"] for c in changes]),
            "medixctl": percentiles([c["medixctl_s"] for c in changes])}


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 4.5))
    series = [("etcd: commit -> every area's medix-dp", [c["from_commit_s"]["all"] for c in results["etcd"]["changes"]],
               "#d9822b"),
              ("etcd: medixctl exec -> every area's medix-dp", [c["from_exec_s"]["all"] for c in results["etcd"]["changes"]],
               "#1b4f7a")]
    if results.get("file"):
        series.append(("file store: medixctl exec -> medix-dp", [c["from_exec_s"] for c in results["file"]["changes"]],
                       "#888888"))
    for label, values, color in series:
        v = sorted(x * 1000 for x in values if x is not None)
        if v:
            ax.plot(v, [100 * (i + 1) / len(v) for i in range(len(v))], drawstyle="steps-post", color=color,
                    label="%s (p99 %.0f ms)" % (label, v[max(0, math.ceil(0.99 * len(v)) - 1)]))
    ax.axvline(GOAL_S * 1000, color="#aa0000", lw=0.8, ls="--", label="goal: 1 s")
    ax.set_xlabel("ms until the change is in medix-dp")
    ax.set_ylabel("% of changes")
    ax.set_title("%d intent changes over 2 areas from etcd (%s)" % (len(results["etcd"]["changes"]), results["git"]),
                 fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--changes", type=int, default=100)
    ap.add_argument("--ctl", default=os.path.join(ROOT, "build/controlplane/cli/medixctl"))
    ap.add_argument("--poll-ms", type=float, default=10, help="how often each medix-dp is asked")
    ap.add_argument("--pause-ms", type=float, default=100, help="between two changes")
    ap.add_argument("--no-file", action="store_true", help="without the file store's reference")
    harness.add_args(ap, "etcd-changes", 512, 60, (15, "seconds to wait for one change"))
    args = ap.parse_args()
    if harness.replot(args, plot):
        return 0
    ports = harness.prepare(args, (args.binary, args.cp, args.ctl), "etcd-changes")
    started = time.monotonic()
    results = {"benchmark": "intent changes through etcd until every area's medix-dp has them (issue 18)",
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "cpu_model": fwd.cpu_model(), "cpus": len(fwd.ALL_CPUS), "git": fwd.git_state(),
               "changes": args.changes, "goal_s": GOAL_S, "poll_ms": args.poll_ms, "pause_ms": args.pause_ms,
               "etcd_version": subprocess.run(["etcd", "--version"], capture_output=True,
                                              text=True).stdout.split("\n")[0],
               "loadavg_start": open("/proc/loadavg").read().split()[:3]}
    etcd = Etcd(fwd.workdir)
    log("%d changes through etcd, areas %s" % (args.changes, " and ".join(AREAS)))
    results["etcd"] = run_etcd(args, ports, etcd, "/medix-bench-%d" % os.getpid())
    log("  commit -> every area: %s" % results["etcd"]["from_commit"]["all"])
    log("  medixctl exec -> every area: %s" % results["etcd"]["from_exec"]["all"])
    results["file"] = None
    if not args.no_file:
        log("reference: the same changes to one medix-cp with the intent file")
        results["file"] = run_file(args, ports)
        log("  medixctl exec -> medix-dp: %s" % results["file"]["from_exec"])
        e, f = results["etcd"]["from_exec"]["all"], results["file"]["from_exec"]
        if e and f:
            results["ratio_p99_etcd_to_file"] = round(e["p99"] / f["p99"], 2)
            results["ratio_p50_etcd_to_file"] = round(e["p50"] / f["p50"], 2)
    results["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    goal = results["etcd"]["from_commit"]["all"]
    results["goal_met"] = bool(goal) and goal["p99"] <= GOAL_S
    results["errors"] = results["etcd"]["errors"] + (results["file"]["errors"] if results["file"] else [])
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    fwd.save_results(args.results, args.name, results, plot, log)
    log("goal (p99 commit -> every area <= %.0f s): %s; ratio p99 etcd/file (from exec): %s; results in %s (%.0f s)%s"
        % (GOAL_S, "met" if results["goal_met"] else "MISSED", results.get("ratio_p99_etcd_to_file"), args.results,
           results["elapsed_s"], "; errors: %s" % results["errors"][:5] if results["errors"] else ""))
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    fwd.run(main)
