#!/usr/bin/python3
"""An intent of many tenants over two areas, loaded from etcd (issue 18's goal: 1,000 tenants over
2 areas in <= 30 s). See benchmarks/README.md ("An intent in etcd at scale") and docs/areas.md.

One etcd member on loopback (free ports, its data in a temporary folder), an intent of --tenants
tenants split over areas east and west (tenant i in east if i is even), written with etcdctl in
docs/areas.md's layout (PREFIX/intent/global, PREFIX/intent/areas/NAME). Each tenant is what an
attachment has: the tenant, an interface (port p0, VLAN i+1, 10.0.0.1/24: one plan for all), a
static mapping 10.0.0.0/24 <-> its own /24 of 100.64.0.0/10, its route into the core
(100.64.0.0/10 next_tenant ix) and the core's route back (its /24 in ix, next_tenant it). Global:
the core tenant ix and one policy rule. One medix-dp holds 1,024 tenants, the core included: at
most 2,046 tenants, and the file reference only up to 1,023.

Per round (--rounds):
 - the reference: the same tenants in one intent file (no areas), one medix-dp and one file-backed
   medix-cp; timed from medix-cp's exec until medix-dp lists every object;
 - the areas: one medix-dp per area (net_null port, --no-huge, a file prefix of its own), then both
   medix-cp (--intent-store etcd://... --area NAME, no local copy yet: a first start) started
   together; per area, from its medix-cp's exec until its medix-dp lists every object of its area
   (polled every 50 ms; checked whole once seen).

Where the time goes, per medix-cp (its log lines, timestamped here as they arrive; its metrics):
start (exec to "medix-cp: ready"), etcd read (ready to "etcd ...: connected": the Range of the
intent's prefix, parsed and checked), medix-cp's own work (connected to "intent applied", less the
reconcile run: the intent checked, the local copy written, prune), the reconcile run
(medix_cp_reconcile_seconds: medix-dp's objects listed, the diff, FILE.owned written, the Apply),
of which medix-dp's transaction (its log: "... changed in X ms"), and the poll's lag. The etcd
Range alone is also timed with etcdctl (less an etcdctl call for a missing key).

Results: benchmarks/results/areas/etcd-scale.json and .png. Every process it starts is killed and
its files removed on exit (benchmarks/forwarding.py's harness).
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "test", "api"))

import forwarding as fwd  # noqa: E402
import areas_harness as harness  # noqa: E402
from areas_harness import Etcd, count, cp_start, dp_start, dp_stop, first, metric, wait_line  # noqa: E402
from medixapi import dp  # noqa: E402

AREAS = ("east", "west")
GOAL_S = 30.0
MAX_TENANTS = 1024  # one medix-dp's, the core included (dataplane/infra/limits.h)
# How medix-dp's objects are named, per kind checked (the intent's JSON field -> List kind, key).
KINDS = {
    "tenants": (dp.TENANT, lambda o: o.tenant.name, lambda j: j["name"]),
    "interfaces": (dp.INTERFACE, lambda o: o.interface.name, lambda j: j["name"]),
    "routes": (dp.ROUTE, lambda o: (o.route.tenant, o.route.prefix), lambda j: (j["tenant"], j["prefix"])),
    "static_mappings": (dp.STATIC_MAPPING, lambda o: (o.static_mapping.tenant, o.static_mapping.tenant_prefix),
                        lambda j: (j["tenant"], j["tenant_prefix"])),
    "policy_rules": (dp.POLICY_RULE, lambda o: o.policy_rule.name, lambda j: j["name"]),
}


def log(*a):
    print("etcd-scale:", *a, file=sys.stderr, flush=True)


# --- the intent ---------------------------------------------------------------------------------

def attachment(i):
    """Tenant i: its objects, one list per kind. Its VLAN is its number's (unique on the file
    reference's one medix-dp too)."""
    t = "t%d" % i
    core = "100.%d.%d.0/24" % (64 + i // 256, i % 256)  # 100.64.0.0/10: 16,384 tenants
    interface = {"name": "if%d" % i, "tenant": t, "port": "p0", "vlan": i % 4094 + 1, "addresses": ["10.0.0.1/24"]}
    if i >= 4094:  # QinQ past 4,094 tenants
        interface["inner_vlan"] = i // 4094
    return {"tenants": [{"name": t, "description": "regional network %d" % i}],
            "interfaces": [interface],
            "static_mappings": [{"tenant": t, "tenant_prefix": "10.0.0.0/24", "core_prefix": core}],
            "routes": [{"tenant": t, "prefix": "100.64.0.0/10", "next_tenant": "ix"},
                       {"tenant": "ix", "prefix": core, "next_tenant": t}]}


def make_intent(n):
    """(the global objects, {area: its section}); tenant i in AREAS[i % 2]."""
    glob = {"schema_version": 1, "tenants": [{"name": "ix", "description": "the IX core", "core": True}],
            "policy_rules": [{"name": "regions-to-core", "priority": 10, "to_tenant": "", "permit": True}]}
    areas = {a: {} for a in AREAS}
    for i in range(n):
        section = areas[AREAS[i % len(AREAS)]]
        for kind, objs in attachment(i).items():
            section.setdefault(kind, []).extend(objs)
    return glob, areas


def merged(glob, sections):
    """Global objects then each section's, one list per kind (what medix-cp applies)."""
    out = json.loads(json.dumps(glob))
    for s in sections:
        for kind, objs in s.items():
            out.setdefault(kind, []).extend(objs)
    return out


def expected_keys(intent):
    return {kind: {key(j) for j in intent.get(kind, [])} for kind, (_, _, key) in KINDS.items()}


def verify(client, expected):
    """{kind: objects of the intent missing in medix-dp}, only the kinds with some missing."""
    missing = {}
    for kind, (list_kind, key_of, _) in KINDS.items():
        r = client.stub.List(dp.ListRequest(kind=list_kind, page_size=100000), timeout=30)
        have = {key_of(o) for o in r.objects}
        gone = expected[kind] - have
        if gone:
            missing[kind] = len(gone)
    return missing


def stray(client, others):
    """{kind: how many of the other areas' objects medix-dp has} (there must be none)."""
    out = {}
    for kind, (list_kind, key_of, _) in KINDS.items():
        theirs = set().union(*(expected_keys(s)[kind] for s in others))
        if not theirs:
            continue
        r = client.stub.List(dp.ListRequest(kind=list_kind, page_size=100000), timeout=30)
        n = len(theirs & {key_of(o) for o in r.objects})
        if n:
            out[kind] = n
    return out


def wait_applied(pairs, timeout):
    """pairs: {name: (medix-cp, medix-dp, static mappings expected)}. Seconds from each medix-cp's
    exec until its medix-dp lists every static mapping (medix-cp applies an intent in one
    transaction: the last kind there is every kind there; verify() checks), None if not by then."""
    seen = {}
    deadline = time.monotonic() + timeout
    while len(seen) < len(pairs) and time.monotonic() < deadline:
        for name, (cp, dpp, want) in pairs.items():
            if name in seen:
                continue
            try:
                if count(dpp.client, dp.STATIC_MAPPING) >= want:
                    seen[name] = round(time.monotonic() - cp.t0, 3)
            except Exception:  # noqa: BLE001 (medix-dp busy: asked again)
                pass
            if cp.poll() is not None:
                raise RuntimeError("medix-cp %s exited with status %d:\n%s" % (name, cp.returncode, fwd.log_tail(cp)))
        time.sleep(0.05)
    return {name: seen.get(name) for name in pairs}


def dp_transaction(dpp, after_t0):
    """medix-dp's largest transaction after after_t0: (its ms inside medix-dp, objects changed,
    seconds from after_t0 to its log line)."""
    best = None
    for t, line in list(dpp.lines):
        m = re.search(r"medix-dp: API: version \d+ by .*; (\d+) changed in ([\d.]+) ms", line)
        if m and t >= after_t0 and (best is None or int(m.group(1)) > best[1]):
            best = (float(m.group(2)), int(m.group(1)), round(t - after_t0, 3))
    return best


def breakdown(cp, dpp, trigger, seen_s):
    """Where the time from medix-cp's exec to every object seen went (seconds)."""
    out = {"seen_s": seen_s}
    out["ready_s"], _ = first(cp, r"medix-cp: ready")
    out["etcd_connected_s"], _ = first(cp, r"medix-cp: etcd \S+: connected")
    out["cp_applied_s"], m = first(cp, r"medix-cp: intent applied: .*medix-dp objects (\d+) changed")
    out["cp_objects_changed"] = int(m.group(1)) if m else None
    out["version_applied_s"], _ = first(cp, r"medix-cp: intent version \d+ applied \(area")
    reconcile = metric(cp.metrics_port, "medix_cp_reconcile_seconds", {"trigger": trigger})
    out["reconcile_s"] = round(reconcile, 3) if reconcile is not None else None
    tx = dp_transaction(dpp, cp.t0)
    if tx:
        out["dp_transaction_ms"], out["dp_transaction_objects"], out["dp_transaction_line_s"] = tx
    phases = {}
    if out["ready_s"] is not None:
        phases["start"] = out["ready_s"]
    done = out["cp_applied_s"]
    if trigger == "apply" and None not in (out["ready_s"], out["etcd_connected_s"], done, reconcile):
        phases["etcd_read"] = out["etcd_connected_s"] - out["ready_s"]
        phases["cp_check_and_local_copy"] = done - out["etcd_connected_s"] - reconcile
    elif trigger == "start" and None not in (out["ready_s"], reconcile):
        # The file store applies before "ready": the reconcile run is inside start.
        phases["start"] = out["ready_s"] - reconcile
        done = out["ready_s"]
    if reconcile is not None and tx:
        phases["dp_list_diff_owned"] = reconcile - tx[0] / 1000
        phases["dp_transaction"] = tx[0] / 1000
    if seen_s is not None and done is not None:
        phases["poll_lag"] = seen_s - done
    out["phases_s"] = {k: round(max(v, 0.0), 3) for k, v in phases.items()}
    return out


# --- one round ----------------------------------------------------------------------------------

def file_reference(args, ports, whole):
    path = os.path.join(fwd.workdir, "intent-file.json")
    with open(path, "w") as f:
        json.dump(whole, f)
    dpp = dp_start(args, ports, "file")
    cp = None
    try:
        cp = cp_start(args, dpp, "file", ["--intent", path])
        seen = wait_applied({"file": (cp, dpp, len(whole["static_mappings"]))}, args.timeout)["file"]
        missing = verify(dpp.client, expected_keys(whole)) if seen is not None else None
        wait_line(cp, r"medix-cp: ready", 10)
        res = breakdown(cp, dpp, "start", seen)
        res.update({"tenants": len(whole["tenants"]) - 1, "objects": sum(len(v) for v in whole.values()
                                                                          if isinstance(v, list)),
                    "missing": missing, "intent_bytes": os.path.getsize(path)})
        return res
    finally:
        if cp:
            fwd.stop(cp)
        dp_stop(dpp)


def etcd_areas(args, ports, etcd, key, glob, areas):
    sizes = {"global": len(json.dumps(glob))}
    for a in AREAS:
        etcd.put("%s/intent/areas/%s" % (key, a), json.dumps(areas[a]))
        sizes["areas/" + a] = len(json.dumps(areas[a]))
    etcd.put(key + "/intent/global", json.dumps(glob))
    floor = etcd.timed_get(key + "/none")
    whole_get = etcd.timed_get("--prefix", key + "/intent/", "-w", "json")
    dps, cps = {}, {}
    try:
        for a in AREAS:
            dps[a] = dp_start(args, ports, a)
        url = "etcd://127.0.0.1:%d%s" % (etcd.client, key)
        for a in AREAS:  # together: both areas load at once, as after a site-wide start
            cps[a] = cp_start(args, dps[a], a, ["--intent", os.path.join(fwd.workdir, "%s-%s.json" % (key[1:], a)),
                                                 "--intent-store", url, "--area", a])
        seen = wait_applied({a: (cps[a], dps[a], len(areas[a]["static_mappings"])) for a in AREAS}, args.timeout)
        out = {"key_bytes": sizes, "etcdctl_get_floor_s": round(floor, 3),
               "etcdctl_get_intent_s": round(whole_get, 3),
               "etcd_range_s": round(max(whole_get - floor, 0), 3), "areas": {}}
        for a in AREAS:
            wait_line(cps[a], r"medix-cp: intent version \d+ applied \(area", 10)
            want = expected_keys(merged(glob, [areas[a]]))
            res = breakdown(cps[a], dps[a], "apply", seen[a])
            res["tenants"] = len(areas[a]["tenants"])
            res["objects"] = sum(len(v) for v in merged(glob, [areas[a]]).values() if isinstance(v, list))
            res["missing"] = verify(dps[a].client, want) if seen[a] is not None else None
            res["other_area_objects"] = stray(dps[a].client, [areas[o] for o in AREAS if o != a])
            r = etcd.ctl("get", "--print-value-only", "%s/status/%s" % (key, a))
            try:
                st = json.loads(r.stdout)
                res["status_key"] = {k: st.get(k) for k in ("applied_version", "version", "connected", "last_error",
                                                            "dataplane_intent_version")}
            except ValueError:
                res["status_key"] = None
            out["areas"][a] = res
        done = [out["areas"][a]["seen_s"] for a in AREAS]
        out["all_areas_s"] = max(done) if None not in done else None
        return out
    finally:
        for a in AREAS:
            if a in cps:
                fwd.stop(cps[a])
        for a in AREAS:
            if a in dps:
                dp_stop(dps[a])


def limits(rnd):
    """What the slowest area's time was spent on, largest first (measured, in words)."""
    a = max(AREAS, key=lambda x: rnd["etcd"]["areas"][x]["seen_s"] or 1e9)
    phases = rnd["etcd"]["areas"][a]["phases_s"]
    order = sorted(phases.items(), key=lambda kv: -kv[1])
    total = sum(phases.values()) or 1
    return {"area": a, "phases_s": dict(order),
            "reading": "area %s: %s" % (a, ", ".join("%s %.2f s (%.0f%%)" % (k, v, 100 * v / total) for k, v in order))}


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = ["start", "etcd_read", "cp_check_and_local_copy", "dp_list_diff_owned", "dp_transaction", "poll_lag"]
    colors = ["#bbbbbb", "#d9822b", "#8e6bbf", "#2a7ab9", "#1b4f7a", "#eeeeee"]
    rows, labels = [], []
    for k, rnd in enumerate(results["rounds"]):
        if rnd["file"]:
            rows.append((rnd["file"]["phases_s"], rnd["file"]["seen_s"]))
            labels.append("round %d: file, %d tenants, 1 medix-dp" % (k + 1, rnd["file"]["tenants"]))
        for a in AREAS:
            rows.append((rnd["etcd"]["areas"][a]["phases_s"], rnd["etcd"]["areas"][a]["seen_s"]))
            labels.append("round %d: etcd, area %s (%d tenants)" % (k + 1, a, rnd["etcd"]["areas"][a]["tenants"]))
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.45 * len(rows)))
    for i, (row, seen) in enumerate(rows):
        left = 0.0
        for name, color in zip(names, colors):
            v = row.get(name, 0.0)
            ax.barh(i, v, left=left, color=color, edgecolor="#555555", lw=0.3, label=name if i == 0 else None)
            left += v
        ax.text(left, i, " %s s" % seen, va="center", fontsize=8)
    ax.set_xlim(0, ax.get_xlim()[1] * 1.12)  # room for the labels
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds from medix-cp's exec until its medix-dp lists every object (goal: %d s)" % GOAL_S)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    reference = " vs. one intent file" if any(r["file"] for r in results["rounds"]) else ""
    ax.set_title("%d tenants over 2 areas from etcd%s (%s)" % (results["tenants"], reference, results["git"]),
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tenants", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=1)
    harness.add_args(ap, "etcd-scale", 1024, 120, (300, "seconds to wait for an intent to be applied"))
    args = ap.parse_args()
    if harness.replot(args, plot):
        return 0
    if args.tenants > 2 * (MAX_TENANTS - 1):
        sys.exit("--tenants: at most %d (each area's medix-dp holds %d tenants, the core included)"
                 % (2 * (MAX_TENANTS - 1), MAX_TENANTS))
    reference = args.tenants + 1 <= MAX_TENANTS
    ports = harness.prepare(args, (args.binary, args.cp), "etcd-scale")
    glob, areas = make_intent(args.tenants)
    whole = merged(glob, [areas[a] for a in AREAS])
    started = time.monotonic()
    results = {"benchmark": "an intent of many tenants over 2 areas loaded from etcd (issue 18)",
               "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "cpu_model": fwd.cpu_model(), "cpus": len(fwd.ALL_CPUS), "git": fwd.git_state(),
               "tenants": args.tenants, "goal_s": GOAL_S, "mem_mb": args.mem,
               "objects_per_tenant": "tenant, interface, static mapping, route into the core, the core's route back",
               "etcd": subprocess.run(["etcd", "--version"], capture_output=True, text=True).stdout.split("\n")[0],
               "loadavg_start": open("/proc/loadavg").read().split()[:3], "rounds": []}
    etcd = Etcd(fwd.workdir)
    errors = []
    for k in range(args.rounds):
        log("round %d: reference, %d tenants in one intent file" % (k + 1, args.tenants))
        if reference:
            rnd = {"file": file_reference(args, ports, whole)}
            log("  file: every object in medix-dp %s s after medix-cp's exec; %s"
                % (rnd["file"]["seen_s"], rnd["file"]["phases_s"]))
        else:  # not measurable: one medix-dp cannot hold them
            rnd = {"file": None, "file_skipped": "%d tenants and the core: one medix-dp holds %d" % (
                args.tenants, MAX_TENANTS)}
            log("  file: skipped (%s)" % rnd["file_skipped"])
        log("round %d: etcd, %d tenants over %s" % (k + 1, args.tenants, " and ".join(AREAS)))
        rnd["etcd"] = etcd_areas(args, ports, etcd, "/medix-bench-%d-%d" % (os.getpid(), k), glob, areas)
        for a in AREAS:
            r = rnd["etcd"]["areas"][a]
            log("  %s: %s s; %s; missing %s" % (a, r["seen_s"], r["phases_s"], r["missing"]))
            if r["seen_s"] is None or r["missing"] or r["other_area_objects"]:
                errors.append("round %d, area %s: not applied whole (seen %s, missing %s, other area's %s)"
                              % (k + 1, a, r["seen_s"], r["missing"], r["other_area_objects"]))
        if rnd["file"] and (rnd["file"]["seen_s"] is None or rnd["file"]["missing"]):
            errors.append("round %d, file: not applied whole" % (k + 1))
        if rnd["etcd"]["all_areas_s"] and rnd["file"] and rnd["file"]["seen_s"]:
            rnd["ratio_etcd_to_file"] = round(rnd["etcd"]["all_areas_s"] / rnd["file"]["seen_s"], 2)
        rnd["goal_met"] = rnd["etcd"]["all_areas_s"] is not None and rnd["etcd"]["all_areas_s"] <= GOAL_S
        rnd["limits"] = limits(rnd) if rnd["etcd"]["all_areas_s"] else None
        rnd["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        results["rounds"].append(rnd)
        log("  all areas: %s s (goal <= %d s: %s), file %s s, ratio %s; %s"
            % (rnd["etcd"]["all_areas_s"], GOAL_S, "met" if rnd["goal_met"] else "MISSED",
               rnd["file"]["seen_s"] if rnd["file"] else None,
               rnd.get("ratio_etcd_to_file"), rnd["limits"]["reading"] if rnd["limits"] else ""))
    figures = [r["etcd"]["all_areas_s"] for r in results["rounds"]]
    results["all_areas_s_worst"] = None if None in figures else max(figures)
    results["goal_met_every_round"] = all(r["goal_met"] for r in results["rounds"])
    results["errors"] = errors
    results["elapsed_s"] = round(time.monotonic() - started, 1)
    fwd.save_results(args.results, args.name, results, plot, log)
    log("results in %s (%.0f s)%s" % (args.results, results["elapsed_s"], "; errors: %s" % errors if errors else ""))
    return 1 if errors else 0


if __name__ == "__main__":
    fwd.run(main)
