#!/usr/bin/python3
"""The API side of the hitless test (test/hitless/run.sh): medix-dp's gRPC client.

  hitless.py setup  --target T --dst-mac M --other-mac M     static neighbours for the hosts
  hitless.py state  --target T --out FILE                    objects + counters as JSON
  hitless.py churn  --target T --out FILE [--budget S] [--min-seconds S]
  hitless.py probe-setup --target T --out FILE               routes for the probes (see below)
  hitless.py tenants --target T --out FILE [--tenants N] [--cycles C]   tenant churn at scale (below)
  hitless.py touch  --target T [--n N]                       one unrelated changing transaction
  hitless.py ops    --target T --json '[OPERATION, ...]'     one transaction, Operations as JSON
  hitless.py check  --dir DIR                                PASS/FAIL lines from the results

The churn: 10,000 route changes (4,000 routes created in batches of 100, 1,000 of them updated,
500 single-route create + delete transactions, the 4,000 deleted in batches of 100) in tenants
`hosp` and `core`, none covering the traffic's destination; interleaved with them, tenants and
interfaces the traffic does not use are added and removed (also on the traffic's own ports), and
the routes the traffic does use are replaced by equivalent ones, in a 7-step cycle:

  S0   hosp 198.18.0.0/16 -> next_tenant core; core 198.18.5.0/24 via dst-lan 100.100.2.10
  a    UPDATE core 198.18.5.0/24 via 100.100.2.11 (the same host, its second address)
  b,c  CREATE hosp 198.18.5.0/24 -> core; DELETE hosp 198.18.0.0/16       (make before break)
  d,e  CREATE core 198.18.5.0/25 via .10; DELETE core 198.18.5.0/24        (more specific first)
  f    one transaction: DELETE core 198.18.5.0/25 + CREATE core 198.18.5.0/24 via .10
  g    one transaction: CREATE hosp 198.18.0.0/16 -> core + DELETE hosp 198.18.5.0/24  (= S0)

Tenant churn at scale (`tenants`, after the churn, under the same traffic): N tenants (1,000)
are created in batches of 100, each with one plan (a VLAN interface on p2, 10.0.0.1/24, and
10.9.0.0/16 via 10.0.0.2); then C times (200) one of them is deleted (tenant, interface and
route in one transaction) and created again, each a transaction timed; then all are deleted.
"""
import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "api"))
from google.protobuf import json_format  # noqa: E402

import medixapi as api  # noqa: E402
from medixapi import pb, create, update, delete, route_via, route_leak, rpc  # noqa: E402

DST_GW, DST_GW2, OTHER_GW = "100.100.2.10", "100.100.2.11", "100.100.3.10"


def connect(target):
    c = api.Client(target)
    c.wait_ready(10)
    return c


def cmd_setup(args):
    c = connect(args.target)
    r = c.apply([create(pb.Neighbour(interface="dst-lan", address=DST_GW, mac=args.dst_mac)),
                 create(pb.Neighbour(interface="dst-lan", address=DST_GW2, mac=args.dst_mac)),
                 create(pb.Neighbour(interface="other-lan", address=OTHER_GW, mac=args.other_mac))])
    print("setup: 3 static neighbours, version %d" % r.version)
    return 0


def cmd_state(args):
    c = connect(args.target)
    out = {"objects": {}}
    versions = set()
    for kind in api.IMPLEMENTED_KINDS:
        objs, vs = c.list_all(kind)
        versions.update(vs)
        out["objects"][kind] = sorted(json.dumps(json_format.MessageToDict(o), sort_keys=True) for o in objs)
    cn = c.counters()
    out["counters"] = json_format.MessageToDict(cn, preserving_proto_field_name=True)
    out["version"] = cn.version
    out["list_versions"] = sorted(versions)
    with open(args.out, "w") as f:
        json.dump(out, f)
    return 0


def swap_steps(broken=False):
    """One cycle of replacements of the routes the traffic uses; each item: (label, ops).
    `broken` adds a step that is NOT equivalent (the route gone for one transaction), to check
    that the test notices (HITLESS_BREAK=1 test/hitless/run.sh must fail)."""
    core, hosp = "core", "hosp"
    extra = [("x: core /24 deleted (not hitless: self-check)", [delete(pb.Route(tenant=core, prefix="198.18.5.0/24"))]),
             ("y: core /24 created again", [create(route_via(core, "198.18.5.0/24", "dst-lan", DST_GW))])]
    return (extra if broken else []) + [
        ("a: core /24 re-pointed to the equivalent next hop",
         [update(route_via(core, "198.18.5.0/24", "dst-lan", DST_GW2))]),
        ("b: hosp /24 leak added under the /16", [create(route_leak(hosp, "198.18.5.0/24", core))]),
        ("c: hosp /16 leak removed", [delete(pb.Route(tenant=hosp, prefix="198.18.0.0/16"))]),
        ("d: core /25 added under the /24", [create(route_via(core, "198.18.5.0/25", "dst-lan", DST_GW))]),
        ("e: core /24 removed", [delete(pb.Route(tenant=core, prefix="198.18.5.0/24"))]),
        ("f: core /25 replaced by /24 in one transaction",
         [delete(pb.Route(tenant=core, prefix="198.18.5.0/25")),
          create(route_via(core, "198.18.5.0/24", "dst-lan", DST_GW))]),
        ("g: hosp /24 replaced by /16 in one transaction",
         [create(route_leak(hosp, "198.18.0.0/16", core)),
          delete(pb.Route(tenant=hosp, prefix="198.18.5.0/24"))]),
    ]


def side_steps(k):
    """One cycle of tenants and interfaces the traffic does not use (k: cycle number; the
    previous cycle removed everything, so numbers, VLANs and addresses are reused mod 250)."""
    k %= 250
    t = "spare-%d" % k
    return [
        ("tenant %s with an interface on p2 and a default route" % t,
         [create(pb.Tenant(name=t, description="hitless spare", max_routes=1024)),
          create(pb.Interface(name=t + "-if", tenant=t, port="p2", vlan=100 + k, addresses=["10.200.%d.1/24" % k])),
          create(route_via(t, "0.0.0.0/0", t + "-if", "10.200.%d.2" % k))]),
        ("VLAN interfaces on the traffic's ports p0 (hosp) and p1 (core)",
         [create(pb.Interface(name="hosp-x%d" % k, tenant="hosp", port="p0", vlan=400 + k,
                              addresses=["10.201.%d.1/24" % k])),
          create(pb.Interface(name="core-x%d" % k, tenant="core", port="p1", vlan=300 + k, inner_vlan=7,
                              addresses=["100.101.%d.1/24" % k]))]),
        ("a leak from hosp into %s; its description updated" % t,
         [create(route_leak("hosp", "10.202.%d.0/24" % k, t)),
          update(pb.Tenant(name=t, description="hitless spare, updated", max_routes=1024))]),
        ("the leak and the VLAN interfaces removed",
         [delete(pb.Route(tenant="hosp", prefix="10.202.%d.0/24" % k)),
          delete(pb.Interface(name="hosp-x%d" % k)), delete(pb.Interface(name="core-x%d" % k))]),
        ("%s's route and interface removed" % t,
         [delete(pb.Route(tenant=t, prefix="0.0.0.0/0")), delete(pb.Interface(name=t + "-if"))]),
        ("tenant %s removed" % t, [delete(pb.Tenant(name=t))]),
    ]


PROBES = 40


def cmd_probe_setup(args):
    """Routes 22.0.K.0/24 (K < 40) in core, each pointed at dst or other-lan and re-pointed by
    many separate transactions (every one publishes the other copy of a left-right FIB), so that
    a copy that missed a change sends a probe to the wrong host. Writes {K: host} and the
    probe destinations 22.0.K.1 (both hosts accept 22.0.0.0/16 on lo)."""
    c = connect(args.target)
    where = {}
    txns = [0]
    apply = c.apply

    def counted(ops):
        txns[0] += 1
        return apply(ops)
    c.apply = counted

    def point(k, host):
        gw = (DST_GW if k % 4 else DST_GW2) if host == "dst" else OTHER_GW
        where[k] = host
        return route_via("core", "22.0.%d.0/24" % k, host + "-lan", gw)

    c.apply([create(route_leak("hosp", "22.0.0.0/16", "core"))])
    for k in range(PROBES):
        c.apply([create(point(k, "dst" if k % 2 == 0 else "other"))])
    for k in range(0, PROBES, 3):
        c.apply([update(point(k, "other" if where[k] == "dst" else "dst"))])
    for k in range(0, PROBES, 5):
        c.apply([delete(pb.Route(tenant="core", prefix="22.0.%d.0/24" % k))])
        c.apply([create(point(k, "dst"))])
    c.apply([update(point(k, "other" if where[k] == "dst" else "dst")) for k in range(30, PROBES)])
    for k in range(1, PROBES, 7):
        c.apply([update(point(k, "other" if where[k] == "dst" else "dst"))])
        c.apply([create(route_via("core", "23.0.%d.0/24" % k, "other-lan", OTHER_GW))])
    # A transaction that fails in the commit, not in validation: it first re-points every probe
    # route's /25 at the wrong host, then needs more distinct next hops (33,000 gateways in a
    # new tenant) than the FIBs hold. Rejected whole, it must leave no trace in either FIB copy:
    # the probes tell.
    v = c.version()
    poison = [create(route_via("core", "22.0.%d.0/25" % k, ("other" if h == "dst" else "dst") + "-lan",
                               OTHER_GW if h == "dst" else DST_GW)) for k, h in where.items()]
    poison += [create(pb.Tenant(name="poison", max_routes=40000)),
               create(pb.Interface(name="poison-if", tenant="poison", port="p2", vlan=999, addresses=["10.0.0.1/8"]))]
    poison += [create(route_via("poison", "60.%d.%d.0/24" % (i >> 8, i & 255), "poison-if",
                                "10.1.%d.%d" % (i // 250, i % 250 + 2))) for i in range(33000)]
    err, res = rpc(apply, poison, 0, 120)
    rejected = {"code": err.code().name if err else "OK", "message": err.details() if err else "",
                "version_unchanged": c.version() == v}
    with open(args.out, "w") as f:
        json.dump({"where": where, "dests": ["22.0.%d.1" % k for k in range(PROBES)], "transactions": txns[0],
                   "rounds": args.rounds, "count": args.count, "poison": rejected}, f)
    print(",".join("22.0.%d.1" % k for k in range(PROBES)))
    return 0


def cmd_ops(args):
    """One transaction from JSON: a list of medix.dataplane.v1.Operation in their JSON mapping."""
    c = connect(args.target)
    ops = [json_format.ParseDict(o, api.dp.Operation()) for o in json.loads(args.json)]
    err, res = rpc(c.apply, ops, 0, 30)
    if err is not None:
        print("%s %s" % (err.code().name, err.details()))
        return 1
    print("changed %d, version %d" % (res.changed, res.version))
    return 0


def cmd_touch(args):
    """One changing transaction unrelated to any traffic (publishes the other FIB copy)."""
    c = connect(args.target)
    c.apply([create(route_via("core", "23.1.%d.0/24" % args.n, "other-lan", OTHER_GW))])
    return 0


def churn_route(i):
    prefix = "20.%d.%d.0/24" % (i >> 8, i & 255)
    if i % 2 == 0:
        return route_via("core", prefix, "other-lan", OTHER_GW)
    return route_leak("hosp", prefix, "core")


def churn_route_updated(i):
    prefix = "20.%d.%d.0/24" % (i >> 8, i & 255)
    if i % 2 == 0:
        return pb.Route(tenant="core", prefix=prefix, blackhole=pb.Blackhole())
    return pb.Route(tenant="hosp", prefix=prefix, blackhole=pb.Blackhole(unreachable=True))


def route_plan():
    """(route changes, ops) per transaction: 10,000 route changes in all."""
    n, b = 4000, 100
    for s in range(0, n, b):
        yield [create(churn_route(i)) for i in range(s, s + b)]
    for s in range(0, 1000, b):
        yield [update(churn_route_updated(i)) for i in range(s, s + b)]
    for j in range(500):
        r = route_via("core", "21.%d.%d.0/24" % (j >> 8, j & 255), "other-lan", OTHER_GW)
        yield [create(r)]
        yield [delete(pb.Route(tenant="core", prefix=r.prefix))]
    for s in range(0, n, b):
        yield [delete(pb.Route(tenant=churn_route(i).tenant, prefix=churn_route(i).prefix))
               for i in range(s, s + b)]


def cmd_churn(args):
    c = connect(args.target)
    t0 = time.monotonic()
    log = {"route_changes": 0, "route_transactions": 0, "swaps": 0, "swap_cycles": 0, "side_steps": 0,
           "side_cycles": 0, "errors": [], "versions_increase": True, "latencies_ms": [],
           "swap_latencies_ms": [], "completed": False}
    last_version = [c.version()]
    log["version_before"] = last_version[0]

    def do(label, ops, kind):
        t = time.monotonic()
        err, res = rpc(c.apply, ops, 0, 60)
        ms = (time.monotonic() - t) * 1000
        if err is not None:
            log["errors"].append("%s: %s %s" % (label, err.code().name, err.details()))
            return False
        if res.changed != len(ops):
            log["errors"].append("%s: changed %d of %d" % (label, res.changed, len(ops)))
        if res.version <= last_version[0]:
            log["versions_increase"] = False
            log["errors"].append("%s: version %d after %d" % (label, res.version, last_version[0]))
        last_version[0] = res.version
        if kind == "route":
            log["latencies_ms"].append(round(ms, 2))
        elif kind == "swap":
            log["swap_latencies_ms"].append(round(ms, 2))
        return True

    swaps = swap_steps(args.broken)
    swap_i = 0
    side_k, side_i = 0, 0
    sides = side_steps(0)
    every = args.every

    def side_step():
        nonlocal swap_i, side_k, side_i, sides
        # Alternate: a replacement of the traffic's route, then a tenant/interface step.
        if (log["swaps"] + log["side_steps"]) % 2 == 0:
            label, ops = swaps[swap_i]
            if not do("swap " + label, ops, "swap"):
                return False
            log["swaps"] += 1
            swap_i = (swap_i + 1) % len(swaps)
            if swap_i == 0:
                log["swap_cycles"] += 1
        else:
            label, ops = sides[side_i]
            if not do("side " + label, ops, "side"):
                return False
            log["side_steps"] += 1
            side_i += 1
            if side_i == len(sides):
                side_i = 0
                side_k += 1
                log["side_cycles"] += 1
                sides = side_steps(side_k)
        return True

    ok = True
    for n, ops in enumerate(route_plan()):
        if time.monotonic() - t0 > args.budget:
            log["errors"].append("budget of %d s spent after %d route changes" % (args.budget, log["route_changes"]))
            ok = False
            break
        if not do("route transaction %d" % n, ops, "route"):
            ok = False
            break
        log["route_changes"] += len(ops)
        log["route_transactions"] += 1
        if n % every == every - 1 and not side_step():
            ok = False
            break
    # Keep replacing the traffic's route (and churning spares) until min-seconds, then finish
    # the open cycles so that the end state is the start state.
    while ok and time.monotonic() - t0 < args.min_seconds:
        if not side_step():
            ok = False
        time.sleep(0.05)
    while ok and (swap_i != 0 or side_i != 0):
        if swap_i != 0:
            label, ops = swaps[swap_i]
            ok = do("swap " + label, ops, "swap")
            log["swaps"] += 1
            swap_i = (swap_i + 1) % len(swaps)
            if swap_i == 0:
                log["swap_cycles"] += 1
        else:
            label, ops = sides[side_i]
            ok = do("side " + label, ops, "side")
            log["side_steps"] += 1
            side_i = (side_i + 1) % len(sides)
            if side_i == 0:
                log["side_cycles"] += 1
    log["completed"] = ok and log["route_changes"] == 10000
    log["seconds"] = round(time.monotonic() - t0, 2)
    log["version_after"] = last_version[0]
    with open(args.out, "w") as f:
        json.dump(log, f)
    print("churn: %d route changes in %d transactions, %d swaps, %d side steps, %.1f s, %d errors"
          % (log["route_changes"], log["route_transactions"], log["swaps"], log["side_steps"], log["seconds"],
             len(log["errors"])))
    return 0 if ok else 1


def scale_tenant(i):
    """Tenant i of the churn at scale: its objects, in creation order."""
    t = "scale-%04d" % i
    return [pb.Tenant(name=t, description="tenant churn at scale"),
            pb.Interface(name=t + "-if", tenant=t, port="p2", vlan=1000 + i, addresses=["10.0.0.1/24"]),
            route_via(t, "10.9.0.0/16", t + "-if", "10.0.0.2")]


def cmd_tenants(args):
    c = connect(args.target)
    log = {"tenants": args.tenants, "cycles": 0, "errors": [], "create_ms": [], "delete_ms": [],
           "setup_s": None, "teardown_s": None}

    def do(label, ops, into=None):
        t = time.monotonic()
        err, res = rpc(c.apply, ops, 0, 120)
        ms = (time.monotonic() - t) * 1000
        if err is not None:
            log["errors"].append("%s: %s %s" % (label, err.code().name, err.details()))
            return False
        if res.changed != len(ops):
            log["errors"].append("%s: changed %d of %d" % (label, res.changed, len(ops)))
        if into is not None:
            into.append(round(ms, 2))
        return True

    t0 = time.monotonic()
    for first in range(0, args.tenants, 100):
        objs = [o for i in range(first, min(args.tenants, first + 100)) for o in scale_tenant(i)]
        if not do("create tenants %d.." % first, [create(o) for o in objs]):
            break
    log["setup_s"] = round(time.monotonic() - t0, 2)
    for k in range(args.cycles if not log["errors"] else 0):
        i = (k * 7) % args.tenants
        objs = scale_tenant(i)
        if not do("delete tenant %d" % i, [delete(o) for o in reversed(objs)], log["delete_ms"]):
            break
        if not do("create tenant %d" % i, [create(o) for o in objs], log["create_ms"]):
            break
        log["cycles"] += 1
    t0 = time.monotonic()
    for first in range(0, args.tenants, 100):
        objs = [o for i in range(first, min(args.tenants, first + 100)) for o in scale_tenant(i)]
        do("delete tenants %d.." % first, [delete(o) for o in reversed(objs)])
    log["teardown_s"] = round(time.monotonic() - t0, 2)
    log["version_after"] = c.version()
    with open(args.out, "w") as f:
        json.dump(log, f)
    return 0


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


def load(d, name):
    try:
        with open(os.path.join(d, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cmd_check(args):
    d = args.dir
    sent, dst, other = load(d, "sent.json"), load(d, "recv-dst.json"), load(d, "recv-other.json")
    churn, before, after = load(d, "churn.json"), load(d, "state-before.json"), load(d, "state-after.json")
    kern = load(d, "kernel.json") or {}
    out = []

    def check(ok, name, detail=""):
        out.append(("PASS " if ok else "FAIL ") + name + ("" if ok or not detail else ": " + detail))

    if churn:
        lat = churn["latencies_ms"]
        check(churn["completed"] and not churn["errors"],
              "churn: %d route changes in %d transactions (+%d replacements of the traffic's routes, "
              "%d tenant/interface steps) in %.1f s"
              % (churn["route_changes"], churn["route_transactions"], churn["swaps"], churn["side_steps"],
                 churn["seconds"]), "; ".join(churn["errors"][:5]))
        check(churn["swaps"] >= 7 and churn["side_steps"] >= 6,
              "churn: at least one full cycle of route replacements (%d cycles) and of tenant/interface "
              "changes (%d cycles)" % (churn["swap_cycles"], churn["side_cycles"]))
        check(churn["versions_increase"], "every change returned a higher version (%d -> %d)"
              % (churn["version_before"], churn["version_after"]))
        print("     transaction latency: routes p50 %s ms, p99 %s ms, max %s ms; route replacements p50 %s ms, "
              "max %s ms" % (pct(lat, 50), pct(lat, 99), max(lat) if lat else None,
                             pct(churn["swap_latencies_ms"], 50), max(churn["swap_latencies_ms"] or [0])))
    else:
        check(False, "churn results", "no churn.json")
    scale = load(d, "tenants.json")
    if scale:
        check(not scale["errors"] and scale["cycles"] > 0,
              "tenant churn at scale under traffic: %d tenants present (created in %s s), %d deletes and %d "
              "creates of one of them (tenant, VLAN interface and route in one transaction), all removed in %s s"
              % (scale["tenants"], scale["setup_s"], scale["cycles"], scale["cycles"], scale["teardown_s"]),
              "; ".join(scale["errors"][:5]))
        print("     tenant transactions with %d present: create p50 %s ms, p99 %s ms, max %s ms; delete p50 %s ms, "
              "p99 %s ms, max %s ms" % (scale["tenants"], pct(scale["create_ms"], 50), pct(scale["create_ms"], 99),
                                        max(scale["create_ms"] or [0]), pct(scale["delete_ms"], 50),
                                        pct(scale["delete_ms"], 99), max(scale["delete_ms"] or [0])))
    else:
        check(False, "tenant churn at scale", "no tenants.json")
    if before and after:
        same = before["objects"] == after["objects"]
        diff = []
        for k in before["objects"]:
            a, b = set(before["objects"][k]), set(after["objects"][k])
            if a != b:
                diff.append("%s: +%s -%s" % (k, sorted(b - a)[:3], sorted(a - b)[:3]))
        check(same, "after the churn every object is as before (%s)" %
              ", ".join("%d %ss" % (len(v), k) for k, v in before["objects"].items()), "; ".join(diff))
        check(len(after["list_versions"]) == 1 and after["version"] == after["list_versions"][0]
              and (not churn or after["version"] == (scale or churn)["version_after"]),
              "reads agree on the final version (%d)" % after["version"])
    else:
        check(False, "state before and after the churn", "missing state-before/after.json")
    if not (sent and dst and other):
        check(False, "traffic results", "missing sent/recv-dst/recv-other.json")
        return report(out)
    print("     traffic: %d sent in %.1f s (%d pps); received at dst %d (%d distinct), at the other host %d"
          % (sent["sent"], sent["seconds"], sent["pps"], dst["received"], dst["distinct"], other["received"]))
    check(sent["sent"] > 0 and sent["pps"] >= 0.9 * sent["target_pps"],
          "the sender kept its rate (%d of %d pps)" % (sent["pps"], sent["target_pps"]))
    lost = dst.get("missing_count")
    lost_str = "lost %s: first missing %s" % (lost, dst.get("missing", [])[:20])
    check(lost == 0 and dst["distinct"] == sent["sent"],
          "every one of the %d sequence numbers arrived at dst (0 lost)" % sent["sent"],
          lost_str + "; " + diagnose(kern, sent, dst))
    check(dst["duplicates"] == 0 and dst.get("beyond_expect", 0) == 0,
          "no sequence number arrived twice (%d duplicates)" % dst["duplicates"])
    check(other["received"] == 0 and other["foreign"] == 0 and dst["foreign"] == 0,
          "nothing misrouted: the other host got %d, foreign datagrams at dst %d" % (other["received"],
                                                                                       dst["foreign"]))
    probes = load(d, "probes.json")
    if probes:
        rounds = probes.get("rounds", 2) * probes.get("count", 3)
        wrong = []
        for k, host in probes["where"].items():
            at_dst = dst.get("probes", {}).get(str(k), 0)
            at_other = other.get("probes", {}).get(str(k), 0)
            want = (rounds, 0) if host == "dst" else (0, rounds)
            if (at_dst, at_other) != want:
                wrong.append("22.0.%s.1 -> %s: dst got %d, other-lan %d" % (k, host, at_dst, at_other))
        p = probes.get("poison", {})
        check(p.get("code") not in (None, "OK") and p.get("version_unchanged"),
              "a transaction re-pointing every probe route's /25 that then runs out of next hops (33,000 "
              "gateways) is rejected (%s), version unchanged" % p.get("code"), str(p))
        print("     (its message: %r)" % p.get("message"))
        check(not wrong, "probes after %d separate transactions re-pointing their routes: each of %d destinations "
              "reached only the host its route names (%d probes each, over both FIB copies)"
              % (probes.get("transactions", 0), len(probes["where"]), rounds), "; ".join(wrong[:6]))
    else:
        check(False, "probe results", "no probes.json")
    if dst["reordered"]:
        print("     (%d datagrams arrived after a higher sequence number)" % dst["reordered"])
    final = load(d, "state-final.json") or after
    if final:
        cn = final["counters"]
        drops = {x["reason"]: int(x.get("packets", 0)) for x in cn.get("drops", [])}
        nz = {k: v for k, v in drops.items() if v}
        check(drops and not nz, "medix-dp drops all zero (%d reasons)" % len(drops), str(nz))
        txd = {p["name"]: int(p.get("tx_dropped", 0)) for p in cn.get("ports", [])}
        check(not any(txd.values()), "medix-dp ports tx_dropped all zero", str(txd))
        ports = {p["name"]: p for p in cn.get("ports", [])}
        p0rx = int(ports.get("p0", {}).get("rx_packets", 0))
        p1tx = int(ports.get("p1", {}).get("tx_packets", 0))
        print("     medix-dp: p0 rx %d, p1 tx %d, p2 tx %s; host src eth0 tx %s, dst eth0 rx %s"
              % (p0rx, p1tx, ports.get("p2", {}).get("tx_packets", 0), kern.get("src_tx"), kern.get("dst_rx")))
    return report(out)


def diagnose(kern, sent, dst):
    """Where along the path the difference appears (kernel and medix-dp counters)."""
    return ("src eth0 tx %s -> root veth rx %s -> medix-dp p0 rx %s -> p1 tx %s -> dst eth0 rx %s -> "
            "socket %d (UDP RcvbufErrors %s)" % (kern.get("src_tx"), kern.get("src_peer_rx"), kern.get("p0_rx"),
                                                 kern.get("p1_tx"), kern.get("dst_rx"), dst["received"],
                                                 kern.get("dst_rcvbuf_errors")))


def report(lines):
    for line in lines:
        print(line)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("setup")
    a.add_argument("--target", required=True)
    a.add_argument("--dst-mac", required=True)
    a.add_argument("--other-mac", required=True)
    a = sub.add_parser("state")
    a.add_argument("--target", required=True)
    a.add_argument("--out", required=True)
    a = sub.add_parser("churn")
    a.add_argument("--target", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--budget", type=float, default=80, help="give up the route plan after S seconds")
    a.add_argument("--min-seconds", type=float, default=15, help="keep replacing routes until S seconds")
    a.add_argument("--every", type=int, default=15, help="a replacement or tenant step every N route txns")
    a.add_argument("--broken", action="store_true", help="add a replacement that is not hitless (self-check)")
    a = sub.add_parser("probe-setup")
    a.add_argument("--target", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--rounds", type=int, default=2, help="(recorded) probe rounds run.sh sends")
    a.add_argument("--count", type=int, default=3, help="(recorded) probes per destination and round")
    a = sub.add_parser("ops")
    a.add_argument("--target", required=True)
    a.add_argument("--json", required=True, help='[{"op": "UPDATE", "object": {"port": {...}}}, ...]')
    a = sub.add_parser("touch")
    a.add_argument("--target", required=True)
    a.add_argument("--n", type=int, default=0)
    a = sub.add_parser("tenants")
    a.add_argument("--target", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--tenants", type=int, default=1000)
    a.add_argument("--cycles", type=int, default=200)
    a = sub.add_parser("check")
    a.add_argument("--dir", required=True)
    args = ap.parse_args()
    return {"setup": cmd_setup, "state": cmd_state, "churn": cmd_churn, "check": cmd_check,
            "probe-setup": cmd_probe_setup, "touch": cmd_touch, "ops": cmd_ops, "tenants": cmd_tenants}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
