#!/usr/bin/python3
"""API tests: a real gRPC client against a real medix-dp (service medix.dataplane.v1.Dataplane).

    /usr/bin/python3 test/api/run.py [--binary PATH] [--keep] [-k SUBSTRING ...]

Checks what proto/medix/dataplane/v1/dataplane.proto promises: every implemented object kind
round-trips through Apply/Get/List; identical re-creates and a replay of the whole state are
no-ops that leave the version unchanged; every kind of bad request is rejected whole with the
right status and a message naming `operations[i].<field path>`, leaving the running state and
the version as they were; expected_version; deleting what is still used; concurrent clients;
unimplemented kinds; counters, runtime and the counters stream; watch streams nobody reads
(capped, ended when stalled, neither Apply nor SIGTERM waits on them); the unix socket's mode;
TCP with mutual TLS (client certificates from the configured CA only); roles (--api-roles: each
RPC for each role over TCP, by CN, DNS and URI names, an unnamed certificate refused, uid 0
mapped to monitor on the unix socket, other uids (setpriv) by their mapping or refused,
refusals logged); gRPC's standard services (a real reflection client lists and describes the
services, grpc.health.v1 answers SERVING, on the unix socket and over TLS for a certificate
without a role, and a health Watch sees NOT_SERVING on SIGTERM); medixctl's reason for a failed
TLS connection; a clean exit on SIGTERM; last, no SA key or TLS private key in any log or error
of the suite, in any form (test/lib/keygrep.py).

medix-dp runs on virtual ports only (net_null), `-l 0,1 --no-huge -m 1024`. Prints PASS/FAIL
lines and, last, `api: N passed, M failed`; exit status 1 on any failure. Every process it
starts is killed on exit; --keep keeps the temp dir (config, certificates, medix-dp logs).
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import traceback

if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") and \
        os.path.exists("/usr/bin/python3"):
    os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)  # Debian's grpcio

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "lib"))
import grpc  # noqa: E402
from google.protobuf import json_format  # noqa: E402

import medixapi as api  # noqa: E402
import grpcstd  # noqa: E402
import keygrep  # noqa: E402
from medixapi import pb, dp, create, update, delete, route_via, route_leak, rpc  # noqa: E402

ROOT = api.ROOT
TOTAL_TIMEOUT = 420          # s: the whole run; a watchdog fails it and cleans up after that
READY_TIMEOUT = 60           # s: medix-dp ready and its API socket present
C = grpc.StatusCode

CONFIG = {
    "schema_version": 1,
    "ports": [
        {"name": "p0", "device": "net_null0", "promiscuous": True},
        {"name": "p1", "device": "net_null1"},
    ],
    "tenants": [
        {"name": "hosp-a", "description": "Hospital A", "max_routes": 4096},
        {"name": "core", "description": "IX core", "max_routes": 4096},
    ],
    "interfaces": [
        {"name": "a-lan", "tenant": "hosp-a", "port": "p0", "vlan": 10, "addresses": ["10.0.0.1/24"]},
        {"name": "core-1", "tenant": "core", "port": "p1", "vlan": 200, "inner_vlan": 7,
         "addresses": ["100.100.2.1/24"]},
    ],
    "routes": [
        {"tenant": "hosp-a", "prefix": "100.100.0.0/16", "next_tenant": "core"},
        {"tenant": "core", "prefix": "100.100.9.0/24", "via": {"interface": "core-1", "address": "100.100.2.2"}},
    ],
    "neighbours": [{"interface": "core-1", "address": "100.100.2.2", "mac": "02:00:00:00:00:22"}],
}
# net_null0 generates frames (counters move); net_null1 is quiet; net_null2 is in no config
# (a port the API may add).
VDEVS = ["net_null0", "net_null1,no-rx=1", "net_null2,no-rx=1"]


# --- results --------------------------------------------------------------------------------

class Results:
    def __init__(self):
        self.passed = 0
        self.failed = 0
        self.lock = threading.Lock()

    def check(self, ok, name, detail=""):
        with self.lock:
            if ok:
                self.passed += 1
                # MEDIX_TEST_DETAIL=1: the detail of passing checks too (margins of timing-bound checks)
                print("PASS " + name + (": " + detail if detail and os.environ.get("MEDIX_TEST_DETAIL") else ""),
                      flush=True)
            else:
                self.failed += 1
                print("FAIL " + name + (": " + detail if detail else ""), flush=True)
        return ok

    def info(self, text):
        print("     " + text, flush=True)


R = Results()
# The keys this suite hands medix-dp (SAs' keys, TLS private keys) and what it and the programs
# it runs print: at the end no log or error may hold any of them (test/lib/keygrep.py).
SECRETS = keygrep.Secrets()
OUTPUTS = keygrep.Outputs()


def short(err):
    if err is None:
        return "OK"
    return "%s %r" % (err.code().name, err.details())


def drop_reasons_from_source():
    """The drop reasons of dataplane/infra/drop.h, in order."""
    with open(os.path.join(ROOT, "dataplane/infra/drop.h")) as f:
        return re.findall(r"^\s*X\((\w+),", f.read(), re.M)


# --- the fixture ---------------------------------------------------------------------------

class Fixture:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="medix-api-test.")
        self.seq = 0

    def eal(self, cpus="0,1"):
        self.seq += 1
        prefix = "medix-api-%d-%d" % (os.getpid(), self.seq)
        eal = ["--no-huge", "-m", "1024", "--no-pci", "--file-prefix", prefix, "-l", cpus,
               "--log-level=error"]
        for v in VDEVS:
            eal += ["--vdev", v]
        return eal

    def start(self, extra=(), config=None):
        path = os.path.join(self.tmp, "config-%d.json" % (self.seq + 1))
        with open(path, "w") as f:
            json.dump(config or CONFIG, f, indent=1)
        eal = self.eal()
        d = api.Dataplane(self.args.binary, eal, ["--config", path] + list(extra),
                          os.path.join(self.tmp, "medix-dp-%d.log" % self.seq))
        d.wait_ready(READY_TIMEOUT)
        return d

    def close(self):
        api.kill_all()
        if self.args.keep:
            print("kept %s" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


def config_objects():
    """The startup config's objects as messages, in dependency order."""
    c = json_format.ParseDict(CONFIG, pb.Config())
    return list(c.ports) + list(c.tenants) + list(c.interfaces) + list(c.routes) + list(c.neighbours)


class State:
    """What a client can see of the running state: every object of every implemented kind,
    the names GetCounters reports, and the version (which every read must agree on)."""

    def __init__(self, client):
        self.objects = {}
        versions = set()
        for kind in api.KIND_OF:
            try:
                objs, vs = client.list_all(kind)
            except grpc.RpcError as e:
                if kind not in api.IMPLEMENTED_KINDS and e.code() == C.UNIMPLEMENTED:
                    continue
                raise
            versions.update(vs)
            self.objects[kind] = sorted(o.SerializeToString(deterministic=True) for o in objs)
        c = client.counters()
        versions.add(c.version)
        self.running = (sorted(p.name for p in c.ports), sorted(i.name for i in c.interfaces),
                        sorted(t.name for t in c.tenants))
        self.versions = versions
        self.version = max(versions)

    def diff(self, other):
        out = []
        if self.version != other.version or len(other.versions) > 1:
            out.append("version %s -> %s" % (sorted(self.versions), sorted(other.versions)))
        for kind in self.objects:
            a, b = set(self.objects[kind]), set(other.objects.get(kind, []))
            if a != b:
                out.append("%s: %d added, %d removed" % (kind, len(b - a), len(a - b)))
        if self.running != other.running:
            out.append("GetCounters names %s -> %s" % (self.running, other.running))
        return "; ".join(out)


# --- the tests -----------------------------------------------------------------------------

TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


def expect_rejected(c, name, ops, codes, path, expected_version=0, timeout=30, raw=None):
    """Apply `ops` (or the serialized request `raw`): must fail with one of `codes`, a message
    containing `path` (a string, or a list of acceptable ones), and leave the state as it was."""
    if isinstance(codes, C):
        codes = (codes,)
    paths = [path] if isinstance(path, str) else list(path)
    before = State(c)
    if raw is not None:
        err, res = rpc(c.raw_apply, raw, timeout=timeout)
    else:
        err, res = rpc(c.apply, ops, expected_version, timeout)
    after = State(c)
    changed = before.diff(after)
    ok_code = err is not None and err.code() in codes
    ok_path = err is not None and any(p in (err.details() or "") for p in paths)
    detail = []
    if not ok_code:
        detail.append("got %s, want %s" % (short(err) if err else "OK (%s)" % str(res).strip(),
                                           "/".join(x.name for x in codes)))
    elif not ok_path:
        detail.append("message %r does not name %s" % (err.details(), " or ".join(paths)))
    if changed:
        detail.append("state changed: " + changed)
    R.check(not detail, "%s -> %s naming %s, state and version unchanged" %
            (name, "/".join(x.name for x in codes), paths[0]), "; ".join(detail))
    if err is None and res is not None and res.changed:
        # Something was applied: put the startup state back as well as we can.
        restore(c, before)
    return err


def restore(c, before):
    """Best effort after a failed check: remove objects that were added."""
    after = State(c)
    for kind in reversed(api.IMPLEMENTED_KINDS):
        cls = {"port": pb.Port, "tenant": pb.Tenant, "interface": pb.Interface, "route": pb.Route,
               "neighbour": pb.Neighbour}[kind]
        for blob in set(after.objects[kind]) - set(before.objects[kind]):
            rpc(c.apply, [delete(cls.FromString(blob))])


@test
def socket_mode(f, d, c):
    st = os.stat(d.socket_path)
    R.check(stat.S_ISSOCK(st.st_mode), "API socket %s is a unix socket" % d.socket_path)
    R.check(stat.S_IMODE(st.st_mode) == 0o600, "API socket has mode 0600",
            "mode is %o" % stat.S_IMODE(st.st_mode))


def standard_services(channel, where, service="medix.dataplane.v1.Dataplane"):
    """Server reflection lists our service beside health and reflection, and describes its
    methods; grpc.health.v1 answers SERVING for the server and for our service."""
    try:
        listed = grpcstd.services(channel)
        described = grpcstd.methods(channel, service)
        health = (grpcstd.health(channel), grpcstd.health(channel, service))
    except (grpc.RpcError, RuntimeError) as e:
        R.check(False, "%s: reflection lists the services, health answers SERVING" % where,
                short(e) if isinstance(e, grpc.RpcError) else str(e))
        return None
    want = sorted([service, grpcstd.HEALTH, grpcstd.REFLECTION])
    R.check(listed == want, "%s: server reflection lists %s" % (where, ", ".join(want)), "got %s" % listed)
    R.check(health == ("SERVING", "SERVING"), "%s: grpc.health.v1 Check answers SERVING (server and %s)" %
            (where, service), "got %s" % (health,))
    return described


@test
def reflection_and_health(f, d, c):
    described = standard_services(c.channel, "unix socket")
    if described is not None:
        R.check(sorted(described) == sorted(RPC_ROLES), "unix socket: reflection describes the service's methods, "
                "each with a role in the test's table", "reflected %s" % sorted(described))
    try:
        grpcstd.health(c.channel, "no.such.Service")
        R.check(False, "health of an unknown service: NOT_FOUND", "it answered")
    except grpc.RpcError as e:
        R.check(e.code() == C.NOT_FOUND, "health of an unknown service: NOT_FOUND", short(e))


@test
def startup_state_readable(f, d, c):
    s = State(c)
    R.check(len(s.versions) == 1 and s.version > 0,
            "every read (List of each kind, GetCounters) reports one version > 0",
            "versions %s" % sorted(s.versions))
    for m in config_objects():
        err, got = rpc(c.get, m)
        kind = api.FIELD_OF[type(m)]
        key = getattr(m, "name", "") or "%s %s" % (getattr(m, "tenant", getattr(m, "interface", "")),
                                                   getattr(m, "prefix", getattr(m, "address", "")))
        if err:
            R.check(False, "Get %s %s from the startup config" % (kind, key), short(err))
            continue
        g = api.inner(got.object)
        want = type(m)()
        want.CopyFrom(m)
        if kind == "port":
            R.check(bool(g.mac), "Get port %s fills the output-only mac" % key, "mac empty")
            g.mac = ""
        if kind == "neighbour":
            R.check(not g.learned, "Get static neighbour %s: learned is false" % key)
        R.check(g == want and got.version == s.version,
                "Get %s %s returns the configured object and the version" % (kind, key),
                "got %s (version %d), want %s (version %d)" % (
                    json_format.MessageToDict(g), got.version, json_format.MessageToDict(want), s.version))


@test
def replay_is_noop(f, d, c):
    """A controller replays its whole state after a restart: identical creates change nothing."""
    v0 = c.version()
    ops = [create(m) for m in config_objects()]
    err, res = rpc(c.apply, ops)
    R.check(err is None and res.changed == 0 and res.version == v0 and c.version() == v0,
            "replaying the whole startup config as CREATEs is a no-op (changed 0, version unchanged)",
            short(err) if err else "changed %d, version %d -> %d" % (res.changed, v0, res.version))
    ops = [update(m) for m in config_objects()]
    err, res = rpc(c.apply, ops)
    R.check(err is None and res.changed == 0 and res.version == v0,
            "identical UPDATEs of every object are no-ops",
            short(err) if err else "changed %d, version %d -> %d" % (res.changed, v0, res.version))
    # What List returns (output-only fields filled in) sent back as CREATEs: still a no-op.
    ops = [create(o) for kind in api.IMPLEMENTED_KINDS for o in c.list_all(kind)[0]]
    err, res = rpc(c.apply, ops)
    R.check(err is None and res.changed == 0 and res.version == v0,
            "re-CREATE of everything List returns (with output-only fields) is a no-op",
            short(err) if err else "changed %d, version %d -> %d" % (res.changed, v0, res.version))


@test
def transaction_log(f, d, c):
    """One log line per transaction: the version, who (the unix peer's uid), what per kind; a
    refused one with its reason."""
    def line_with(text, timeout=3):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hit = [x for x in list(d.lines) if text in x]
            if hit:
                return hit[-1]
            time.sleep(0.05)
        return None
    t = pb.Tenant(name="log-tenant")
    i = pb.Interface(name="log-if", tenant="log-tenant", port="p0", vlan=3999, addresses=["10.250.0.1/24"])
    err, res = rpc(c.apply, [create(t), create(i)])
    line = line_with("medix-dp: API: version %d by uid 0 (root): tenant +1, interface +1; 2 changed in"
                     % (res.version if res else 0)) if err is None else None
    R.check(line is not None, "an applied transaction is one log line: version, the unix peer's uid, counts per kind",
            short(err) if err else "log: %s" % [x for x in d.lines if "API:" in x][-3:])
    err2, _ = rpc(c.apply, [delete(i), create(route_via("no-such-tenant", "10.9.0.0/16", "log-if", "10.250.0.2"))])
    line = line_with("medix-dp: API: transaction of uid 0 (root) refused (interface -1, route +1): ")
    R.check(err2 is not None and line is not None and "no-such-tenant" in line,
            "a refused transaction is one log line with what it asked and why",
            "log: %s" % [x for x in d.lines if "API:" in x][-3:])
    err, _ = rpc(c.apply, [delete(i), delete(t)])
    R.check(err is None and line_with("interface -1, tenant -1") is None and line_with("tenant -1, interface -1;"),
            "a deletion's line counts per kind in the kinds' order", short(err))


def round_trip(c, kind, first, second, key_only, name):
    """create first -> get/list; identical re-create no-op; update to second; delete by key."""
    v0 = c.version()
    err, res = rpc(c.apply, [create(first)])
    if not R.check(err is None and res.changed == 1 and res.version > v0,
                   "%s: CREATE applies (changed 1, version up)" % name,
                   short(err) if err else "changed %d, version %d -> %d" % (res.changed, v0, res.version)):
        return
    v1 = res.version
    err, got = rpc(c.get, key_only)
    g = api.inner(got.object) if got else None
    if g is not None and kind == "port":
        g.mac = ""
    R.check(err is None and g == first and got.version == v1,
            "%s: Get returns it with the new version" % name,
            short(err) if err else "got %s v%d, want %s v%d" % (json_format.MessageToDict(g), got.version,
                                                               json_format.MessageToDict(first), v1))
    tenant = getattr(first, "tenant", "") if kind in ("route",) else ""
    objs, versions = c.list_all(kind, tenant=tenant)
    listed = [o for o in objs if o == first or (kind == "port" and o.name == first.name)]
    R.check(len(listed) == 1 and set(versions) == {v1}, "%s: List shows it once, with the version" % name,
            "found %d times, versions %s" % (len(listed), versions))
    err, res = rpc(c.apply, [create(first)])
    R.check(err is None and res.changed == 0 and res.version == v1 and c.version() == v1,
            "%s: identical re-CREATE is a no-op, version unchanged" % name,
            short(err) if err else "changed %d version %d -> %d" % (res.changed, v1, res.version))
    if second is not None:
        err, res = rpc(c.apply, [create(second)])
        R.check(err is not None and err.code() == C.ALREADY_EXISTS and "operations[0]" in err.details()
                and c.version() == v1,
                "%s: CREATE of a different object with the same key -> ALREADY_EXISTS" % name, short(err))
        err, res = rpc(c.apply, [update(second)])
        R.check(err is None and res.changed == 1 and res.version > v1,
                "%s: UPDATE applies (changed 1, version up)" % name,
                short(err) if err else "changed %d version %d -> %d" % (res.changed, v1, res.version))
        v2 = res.version if res else c.version()
        err, got = rpc(c.get, key_only)
        g = api.inner(got.object) if got else None
        if g is not None and kind == "port":
            g.mac = ""
        R.check(err is None and g == second and got.version == v2,
                "%s: Get shows the update" % name,
                short(err) if err else "got %s" % json_format.MessageToDict(g))
        err, res = rpc(c.apply, [update(second)])
        R.check(err is None and res.changed == 0 and res.version == v2,
                "%s: identical UPDATE is a no-op" % name,
                short(err) if err else "changed %d" % res.changed)
    v2 = c.version()
    err, res = rpc(c.apply, [delete(key_only)])
    R.check(err is None and res.changed == 1 and res.version > v2,
            "%s: DELETE with only the key fields applies" % name, short(err))
    err, got = rpc(c.get, key_only)
    R.check(err is not None and err.code() == C.NOT_FOUND, "%s: Get after DELETE -> NOT_FOUND" % name,
            short(err))
    objs, _ = c.list_all(kind, tenant=tenant)
    R.check(not any(o == first or o == second for o in objs if o is not None),
            "%s: List no longer shows it" % name)
    v3 = c.version()
    err, _ = rpc(c.apply, [delete(key_only)])
    R.check(err is not None and err.code() == C.NOT_FOUND and "operations[0]" in err.details()
            and c.version() == v3, "%s: DELETE of an absent one -> NOT_FOUND" % name, short(err))
    err, _ = rpc(c.apply, [update(first)])
    R.check(err is not None and err.code() == C.NOT_FOUND and "operations[0]" in err.details()
            and c.version() == v3, "%s: UPDATE of an absent one -> NOT_FOUND" % name, short(err))


@test
def tenant_round_trip(f, d, c):
    round_trip(c, "tenant", pb.Tenant(name="rt-tenant", description="round trip", max_routes=1024),
               pb.Tenant(name="rt-tenant", description="round trip, updated", max_routes=1024),
               pb.Tenant(name="rt-tenant"), "tenant")


@test
def interface_round_trip(f, d, c):
    round_trip(c, "interface",
               pb.Interface(name="rt-if", tenant="hosp-a", port="p1", vlan=300, inner_vlan=9,
                            addresses=["10.9.0.1/24", "10.9.1.1/24"], mtu=1400, mac="02:00:00:00:09:01"),
               pb.Interface(name="rt-if", tenant="hosp-a", port="p1", vlan=300, inner_vlan=9,
                            addresses=["10.9.0.1/24"], mtu=1300, mac="02:00:00:00:09:02"),
               pb.Interface(name="rt-if"), "interface")


@test
def route_round_trips(f, d, c):
    key = pb.Route(tenant="hosp-a", prefix="172.16.0.0/12")
    round_trip(c, "route", route_via("hosp-a", "172.16.0.0/12", "a-lan", "10.0.0.2"),
               route_leak("hosp-a", "172.16.0.0/12", "core"), key, "route via->next_tenant")
    round_trip(c, "route", pb.Route(tenant="core", prefix="192.0.2.0/24", local=pb.Local()),
               pb.Route(tenant="core", prefix="192.0.2.0/24", blackhole=pb.Blackhole(unreachable=True)),
               pb.Route(tenant="core", prefix="192.0.2.0/24"), "route local->blackhole")
    round_trip(c, "route", route_via("core", "0.0.0.0/0", "core-1", ""),
               route_via("core", "0.0.0.0/0", "core-1", "100.100.2.254"),
               pb.Route(tenant="core", prefix="0.0.0.0/0"), "default route connected->gateway")


@test
def neighbour_round_trip(f, d, c):
    round_trip(c, "neighbour",
               pb.Neighbour(interface="a-lan", address="10.0.0.77", mac="02:00:00:00:77:01"),
               pb.Neighbour(interface="a-lan", address="10.0.0.77", mac="02:00:00:00:77:02"),
               pb.Neighbour(interface="a-lan", address="10.0.0.77"), "neighbour")


@test
def port_round_trip(f, d, c):
    # A configured port: UPDATE (promiscuous, admin_down), then back.
    err, got = rpc(c.get, pb.Port(name="p1"))
    if not R.check(err is None, "port: Get p1", short(err)):
        return
    orig = api.inner(got.object)
    orig.mac = ""
    for field, value in (("promiscuous", True), ("admin_down", True)):
        m = pb.Port()
        m.CopyFrom(orig)
        setattr(m, field, value)
        v0 = c.version()
        err, res = rpc(c.apply, [update(m)])
        err2, got = rpc(c.get, pb.Port(name="p1"))
        g = api.inner(got.object) if got else None
        R.check(err is None and res.changed == 1 and res.version > v0 and g is not None
                and getattr(g, field) == value, "port: UPDATE p1 %s=%s applies" % (field, value),
                short(err or err2))
        err, res = rpc(c.apply, [update(orig)])
        R.check(err is None and res.changed == 1, "port: UPDATE p1 back to %s=false" % field, short(err))
    # A port the config does not name, on an ethdev EAL has (net_null2).
    round_trip(c, "port", pb.Port(name="p9", device="net_null2", mtu=1500),
               pb.Port(name="p9", device="net_null2", mtu=1500, promiscuous=True),
               pb.Port(name="p9"), "port on a spare ethdev")


@test
def key_only_and_noop_rules(f, d, c):
    r = route_via("hosp-a", "10.60.0.0/16", "a-lan", "10.0.0.2")
    err, res = rpc(c.apply, [create(r)])
    if not R.check(err is None and res.changed == 1, "create a route", short(err)):
        return
    v = res.version
    # DELETE: only the key fields matter.
    err, res = rpc(c.apply, [delete(pb.Route(tenant="hosp-a", prefix="10.60.0.0/16", blackhole=pb.Blackhole()))])
    R.check(err is None and res.changed == 1 and res.version > v and rpc(c.get, r)[0] is not None,
            "DELETE of a route given with a different target deletes it (only key fields matter)", short(err))
    # expected_version with a transaction of no-ops: applies (a no-op) on the version, refused on another.
    v = c.version()
    err, res = rpc(c.apply, [create(pb.Tenant(name="core", description="IX core", max_routes=4096))], v)
    R.check(err is None and res.changed == 0 and res.version == v,
            "a no-op transaction with expected_version = running version: OK, version unchanged", short(err))
    err, res = rpc(c.apply, [create(pb.Tenant(name="core", description="IX core", max_routes=4096))], v + 3)
    R.check(err is not None and err.code() == C.FAILED_PRECONDITION and c.version() == v,
            "a no-op transaction with a wrong expected_version: FAILED_PRECONDITION", short(err))
    err, res = rpc(c.apply, [])
    R.info("(an empty ApplyRequest: %s)" % (short(err) if err else "OK, changed %d, version %d (running %d)"
                                           % (res.changed, res.version, v)))
    R.check(err is not None or (res.changed == 0 and res.version == v),
            "an empty ApplyRequest changes nothing", short(err))
    expect_rejected(c, "DELETE of a port an interface uses", [delete(pb.Port(name="p0"))],
                    C.FAILED_PRECONDITION, "operations[0]")


@test
def counters_of_new_objects(f, d, c):
    """An object created in the place of a deleted one starts its counters from zero. net_null0
    sends junk frames (untagged) to p0 as fast as the worker takes them: an untagged interface
    on p0 counts them as received."""
    def rx_of(name):
        return next((i.rx_packets for i in c.counters().interfaces if i.name == name), None)

    def tenant_rx(name):
        return next((t.rx_packets for t in c.counters().tenants if t.name == name), None)

    ops = [create(pb.Tenant(name="cnt-t1", max_routes=1024)),
           create(pb.Interface(name="cnt-if1", tenant="cnt-t1", port="p0", vlan=0))]
    err, _ = rpc(c.apply, ops)
    if not R.check(err is None, "an untagged interface on p0 (net_null junk frames)", short(err)):
        return
    time.sleep(1)
    first, first_t = rx_of("cnt-if1"), tenant_rx("cnt-t1")
    R.check(first and first > 1000 and first_t and first_t > 1000,
            "it and its tenant count received frames (%s, %s)" % (first, first_t))
    err, _ = rpc(c.apply, [delete(pb.Interface(name="cnt-if1")), delete(pb.Tenant(name="cnt-t1"))])
    err2, _ = rpc(c.apply, [create(pb.Tenant(name="cnt-t2", max_routes=1024)),
                            create(pb.Interface(name="cnt-if2", tenant="cnt-t2", port="p0", vlan=0))])
    second, second_t = rx_of("cnt-if2"), tenant_rx("cnt-t2")
    R.check(err is None and err2 is None and second is not None and second < first / 2
            and second_t is not None and second_t < first_t / 2,
            "a new interface and tenant in their place start from zero, not from their counters",
            "%s; new interface %s after old %s, new tenant %s after old %s" % (short(err or err2), second, first,
                                                                               second_t, first_t))
    rpc(c.apply, [delete(pb.Interface(name="cnt-if2")), delete(pb.Tenant(name="cnt-t2"))])


@test
def batch_semantics(f, d, c):
    # Dependent objects in one batch, in order.
    v0 = c.version()
    objs = [pb.Tenant(name="batch-t", max_routes=1024),
            pb.Interface(name="batch-if", tenant="batch-t", port="p1", vlan=400, addresses=["10.40.0.1/24"]),
            route_via("batch-t", "10.41.0.0/16", "batch-if", "10.40.0.2"),
            pb.Neighbour(interface="batch-if", address="10.40.0.2", mac="02:00:00:00:40:02"),
            route_leak("hosp-a", "10.40.0.0/16", "batch-t")]
    err, res = rpc(c.apply, [create(m) for m in objs])
    R.check(err is None and res.changed == len(objs) and res.version > v0,
            "a batch creating tenant, interface, route, neighbour and a leak into it applies",
            short(err) if err else "changed %d" % res.changed)
    if err:
        return
    cn = c.counters()
    R.check("batch-t" in {t.name for t in cn.tenants} and "batch-if" in {i.name for i in cn.interfaces},
            "GetCounters lists the tenant and interface created by the API")
    # Mixed no-op and change: changed counts only the change.
    v1 = c.version()
    err, res = rpc(c.apply, [create(objs[0]), create(objs[2]),
                             create(route_via("batch-t", "10.42.0.0/16", "batch-if", "10.40.0.2"))])
    R.check(err is None and res.changed == 1 and res.version > v1,
            "a batch of two identical creates and one new route reports changed 1",
            short(err) if err else "changed %d" % res.changed)
    # Deleting the tenant while used: FAILED_PRECONDITION, nothing changes.
    expect_rejected(c, "DELETE of a tenant that interfaces and routes still use",
                    [delete(pb.Tenant(name="batch-t"))], C.FAILED_PRECONDITION, "operations[0]")
    expect_rejected(c, "DELETE of a tenant another tenant's route leaks into (its own objects deleted first)",
                    [delete(pb.Neighbour(interface="batch-if", address="10.40.0.2")),
                     delete(pb.Route(tenant="batch-t", prefix="10.41.0.0/16")),
                     delete(pb.Route(tenant="batch-t", prefix="10.42.0.0/16")),
                     delete(pb.Interface(name="batch-if")),
                     delete(pb.Tenant(name="batch-t"))], C.FAILED_PRECONDITION, "operations[4]")
    # An interface still used by a route or a neighbour: refused, or (if the server cascades)
    # every route/neighbour through it must go with it. Dangling references are a bug.
    before = State(c)
    err, res = rpc(c.apply, [delete(pb.Interface(name="batch-if"))])
    if err is not None:
        R.check(err.code() == C.FAILED_PRECONDITION and "operations[0]" in err.details()
                and not before.diff(State(c)),
                "DELETE of an interface routes and a neighbour use -> FAILED_PRECONDITION, nothing changes",
                short(err))
    else:
        routes, _ = c.list_all("route", tenant="batch-t")
        neigh, _ = c.list_all("neighbour")
        dangling = [r.prefix for r in routes if r.WhichOneof("target") == "via" and r.via.interface == "batch-if"]
        dangling += [n.address for n in neigh if n.interface == "batch-if"]
        R.check(not dangling, "DELETE of a used interface was accepted: nothing may still refer to it",
                "still referring: %s" % dangling)
    # Users deleted before the tenant in the same batch: applies.
    v2 = c.version()
    ops = [delete(pb.Route(tenant="hosp-a", prefix="10.40.0.0/16")),
           delete(pb.Neighbour(interface="batch-if", address="10.40.0.2")),
           delete(pb.Route(tenant="batch-t", prefix="10.41.0.0/16")),
           delete(pb.Route(tenant="batch-t", prefix="10.42.0.0/16")),
           delete(pb.Interface(name="batch-if")),
           delete(pb.Tenant(name="batch-t"))]
    if err is None:  # the interface (and whatever cascaded) is already gone
        ops = [o for o in ops if rpc(c.get, api.inner(o.object))[0] is None]
    err, res = rpc(c.apply, ops)
    R.check(err is None and res.version > v2 and rpc(c.get, pb.Tenant(name="batch-t"))[0] is not None,
            "one batch deleting a tenant's users, then the tenant, applies", short(err))
    cn = c.counters()
    R.check("batch-t" not in {t.name for t in cn.tenants} and "batch-if" not in {i.name for i in cn.interfaces},
            "GetCounters no longer lists the deleted tenant and interface")


@test
def bad_requests(f, d, c):
    IA, FP, NF, AE = C.INVALID_ARGUMENT, C.FAILED_PRECONDITION, C.NOT_FOUND, C.ALREADY_EXISTS
    ok_tenant = create(pb.Tenant(name="bad-t1", max_routes=4096))
    ok_route = create(route_via("hosp-a", "10.77.0.0/16", "a-lan", "10.0.0.2"))
    ok_neigh = create(pb.Neighbour(interface="a-lan", address="10.0.0.99", mac="02:00:00:00:99:01"))
    # References to objects that do not exist.
    ref = (IA, FP, NF)
    expect_rejected(c, "interface in an unknown tenant",
                    [create(pb.Interface(name="x-if", tenant="nope", port="p1", vlan=500))],
                    ref, "operations[0].interface.tenant")
    expect_rejected(c, "route in an unknown tenant", [ok_tenant, create(route_leak("nope", "10.0.0.0/8", "core"))],
                    ref, "operations[1].route.tenant")
    expect_rejected(c, "route leaking to an unknown tenant", [create(route_leak("hosp-a", "10.0.0.0/8", "nope"))],
                    ref, "operations[0].route.next_tenant")
    expect_rejected(c, "route via an unknown interface",
                    [create(route_via("hosp-a", "10.1.0.0/16", "nope", "10.0.0.2"))],
                    ref, "operations[0].route.via.interface")
    expect_rejected(c, "interface on an unknown port",
                    [create(pb.Interface(name="x-if", tenant="hosp-a", port="nope", vlan=500))],
                    ref, "operations[0].interface.port")
    expect_rejected(c, "neighbour on an unknown interface",
                    [create(pb.Neighbour(interface="nope", address="10.0.0.5", mac="02:00:00:00:00:05"))],
                    ref, "operations[0].neighbour.interface")
    # Overlapping interfaces: same port and VLAN tags as an existing one, or as another in the batch.
    overlap = ["operations[0].interface.vlan", "operations[0].interface.port", "operations[0].interface.inner_vlan"]
    expect_rejected(c, "interface with the port and VLAN of an existing one",
                    [create(pb.Interface(name="x-if", tenant="core", port="p0", vlan=10))],
                    (IA, FP, AE), overlap)
    expect_rejected(c, "QinQ interface with the port and VLANs of an existing one",
                    [create(pb.Interface(name="x-if", tenant="hosp-a", port="p1", vlan=200, inner_vlan=7))],
                    (IA, FP, AE), overlap)
    expect_rejected(c, "two new interfaces with the same port and VLAN in one batch",
                    [create(pb.Interface(name="x-if1", tenant="core", port="p1", vlan=600)),
                     create(pb.Interface(name="x-if2", tenant="hosp-a", port="p1", vlan=600))],
                    (IA, FP, AE), [p.replace("[0]", "[1]") for p in overlap])
    expect_rejected(c, "UPDATE moving an interface onto another's port and VLAN",
                    [update(pb.Interface(name="a-lan", tenant="hosp-a", port="p1", vlan=200, inner_vlan=7,
                                         addresses=["10.0.0.1/24"]))],
                    (IA, FP, AE), overlap)
    # Invalid values.
    for bad in ("10.1.0.0/33", "10.1.0.1/16", "10.1.0/16", "banana", "300.1.0.0/16", ""):
        expect_rejected(c, "route prefix %r" % bad, [ok_tenant, ok_route,
                                                     create(pb.Route(tenant="hosp-a", prefix=bad, local=pb.Local()))],
                        IA, "operations[2].route.prefix")
    for field, value in (("vlan", 4095), ("vlan", 5000), ("inner_vlan", 4095), ("inner_vlan", 70000)):
        m = pb.Interface(name="x-if", tenant="hosp-a", port="p1", vlan=700)
        setattr(m, field, value)
        expect_rejected(c, "interface %s %d" % (field, value), [ok_tenant, create(m)], IA,
                        "operations[1].interface.%s" % field)
    expect_rejected(c, "QinQ inner_vlan without an outer vlan",
                    [create(pb.Interface(name="x-if", tenant="hosp-a", port="p1", vlan=0, inner_vlan=5))],
                    IA, "operations[0].interface.inner_vlan")
    expect_rejected(c, "interface address without a prefix length",
                    [create(pb.Interface(name="x-if", tenant="hosp-a", port="p1", vlan=701, addresses=["10.70.0.1"]))],
                    IA, "operations[0].interface.addresses[0]")
    expect_rejected(c, "interface mac 'zz'",
                    [create(pb.Interface(name="x-if", tenant="hosp-a", port="p1", vlan=702, mac="zz"))],
                    IA, "operations[0].interface.mac")
    expect_rejected(c, "neighbour mac that is multicast",
                    [create(pb.Neighbour(interface="a-lan", address="10.0.0.6", mac="01:00:5e:00:00:01"))],
                    IA, "operations[0].neighbour.mac")
    expect_rejected(c, "neighbour address '10.0.0'",
                    [create(pb.Neighbour(interface="a-lan", address="10.0.0", mac="02:00:00:00:00:06"))],
                    IA, "operations[0].neighbour.address")
    expect_rejected(c, "route via an interface of another tenant",
                    [create(route_via("hosp-a", "10.2.0.0/16", "core-1", "100.100.2.2"))],
                    (IA, FP), "operations[0].route.via.interface")
    expect_rejected(c, "route leaking into its own tenant",
                    [create(route_leak("hosp-a", "10.3.0.0/16", "hosp-a"))], IA, "operations[0].route.next_tenant")
    expect_rejected(c, "tenant max_routes beyond 2^24",
                    [create(pb.Tenant(name="x-t", max_routes=(1 << 24) + 1))], IA, "operations[0].tenant.max_routes")
    expect_rejected(c, "tenant session_limit beyond 2^28",
                    [create(pb.Tenant(name="x-t", session_limit=(1 << 28) + 1))], IA, "operations[0].tenant.session_limit")
    expect_rejected(c, "tenant name of 64 characters", [create(pb.Tenant(name="t" * 64))], IA,
                    "operations[0].tenant.name")
    expect_rejected(c, "interface MTU above its port's (1500)",
                    [create(pb.Interface(name="x-if", tenant="hosp-a", port="p1", vlan=704, mtu=9000))],
                    IA, "operations[0].interface.mtu")
    expect_rejected(c, "interface address already used in the tenant",
                    [create(pb.Interface(name="x-if", tenant="hosp-a", port="p1", vlan=705, addresses=["10.0.0.1/24"]))],
                    (IA, AE, FP), "operations[0].interface.addresses[0]")
    expect_rejected(c, "interface with 9 addresses (8 at most)",
                    [create(pb.Interface(name="x-if", tenant="hosp-a", port="p1", vlan=706,
                                         addresses=["10.71.%d.1/24" % i for i in range(9)]))],
                    (IA, C.RESOURCE_EXHAUSTED), "operations[0].interface.addresses")
    expect_rejected(c, "route via gateway '10.0.0.300'",
                    [create(route_via("hosp-a", "10.8.0.0/16", "a-lan", "10.0.0.300"))],
                    IA, "operations[0].route.via.address")
    # Missing required fields.
    expect_rejected(c, "tenant without a name", [create(pb.Tenant(description="x"))], IA, "operations[0].tenant.name")
    expect_rejected(c, "interface without a name",
                    [create(pb.Interface(tenant="hosp-a", port="p1", vlan=703))], IA, "operations[0].interface.name")
    expect_rejected(c, "interface without a tenant",
                    [create(pb.Interface(name="x-if", port="p1", vlan=703))], IA, "operations[0].interface.tenant")
    expect_rejected(c, "interface without a port",
                    [create(pb.Interface(name="x-if", tenant="hosp-a", vlan=703))], IA, "operations[0].interface.port")
    expect_rejected(c, "route without a tenant", [create(pb.Route(prefix="10.4.0.0/16", local=pb.Local()))],
                    IA, "operations[0].route.tenant")
    expect_rejected(c, "route without a target", [ok_tenant, create(pb.Route(tenant="hosp-a", prefix="10.4.0.0/16"))],
                    IA, "operations[1].route.target")
    expect_rejected(c, "neighbour without a mac",
                    [create(pb.Neighbour(interface="a-lan", address="10.0.0.7"))], IA, "operations[0].neighbour.mac")
    expect_rejected(c, "operation without an op (OP_UNSPECIFIED)",
                    [ok_tenant, dp.Operation(object=api.obj(pb.Tenant(name="x-t")))], IA, "operations[1].op")
    expect_rejected(c, "operation without an object", [ok_tenant, dp.Operation(op=dp.Operation.CREATE)],
                    IA, "operations[1].object")
    expect_rejected(c, "DELETE without the key fields", [delete(pb.Route(tenant="hosp-a"))],
                    (IA, NF), "operations[0].route")
    # Within one batch: the same key created twice, differently.
    expect_rejected(c, "one batch creating the same route twice with different targets",
                    [create(route_leak("hosp-a", "10.5.0.0/16", "core")),
                     create(pb.Route(tenant="hosp-a", prefix="10.5.0.0/16", local=pb.Local()))],
                    (IA, AE), "operations[1]")
    # State conflicts.
    expect_rejected(c, "CREATE of a different tenant under an existing name",
                    [ok_tenant, create(pb.Tenant(name="core", description="other"))], AE, "operations[1]")
    expect_rejected(c, "UPDATE of an absent route", [ok_tenant, update(route_leak("hosp-a", "10.6.0.0/16", "core"))],
                    NF, "operations[1]")
    expect_rejected(c, "DELETE of an absent neighbour", [ok_neigh, delete(pb.Neighbour(interface="a-lan",
                                                                                        address="10.0.0.200"))],
                    NF, "operations[1]")
    # A long batch whose LAST operation is bad: nothing of it applies.
    good = [ok_tenant, create(pb.Interface(name="bad-if1", tenant="bad-t1", port="p1", vlan=800,
                                           addresses=["10.80.0.1/24"]))]
    good += [create(route_via("bad-t1", "10.%d.%d.0/24" % (81 + i // 256, i % 256), "bad-if1", "10.80.0.2"))
             for i in range(2000)]
    good.append(ok_neigh)
    n = len(good)
    expect_rejected(c, "a batch of %d good operations whose last one has VLAN 4095" % n,
                    good + [create(pb.Interface(name="bad-if2", tenant="bad-t1", port="p1", vlan=4095))],
                    IA, "operations[%d].interface.vlan" % n)
    expect_rejected(c, "a batch of %d good operations whose last one deletes an absent route" % n,
                    good + [delete(pb.Route(tenant="bad-t1", prefix="10.99.0.0/16"))], NF, "operations[%d]" % n)
    # expected_version.
    v = c.version()
    for ev in (v + 1, v - 1 if v > 1 else v + 7, v + 1000):
        expect_rejected(c, "expected_version %d while %d runs" % (ev, v), [ok_tenant], FP, "version",
                        expected_version=ev)
    err, res = rpc(c.apply, [ok_tenant], v)
    R.check(err is None and res.changed == 1 and res.version > v,
            "expected_version equal to the running version applies", short(err))
    err, res2 = rpc(c.apply, [delete(pb.Tenant(name="bad-t1"))], res.version if res else 0)
    R.check(err is None and res2.changed == 1, "expected_version from the last ApplyResponse applies", short(err))


@test
def resource_limits(f, d, c):
    """Limits that only the apply (not the message) can find: still all or nothing."""
    err, res = rpc(c.apply, [create(pb.Tenant(name="small-t", max_routes=16))] +
                   [create(pb.Route(tenant="small-t", prefix="10.%d.0.0/16" % i, blackhole=pb.Blackhole()))
                    for i in range(16)])
    if R.check(err is None and res.changed == 17, "a tenant with max_routes 16 takes 16 routes", short(err)):
        expect_rejected(c, "a batch whose 17th route exceeds the tenant's max_routes (16)",
                        [create(route_leak("hosp-a", "10.250.0.0/16", "core"))] +
                        [create(pb.Route(tenant="small-t", prefix="10.%d.0.0/16" % i, blackhole=pb.Blackhole()))
                         for i in range(100, 101)],
                        (C.RESOURCE_EXHAUSTED, C.FAILED_PRECONDITION, C.INVALID_ARGUMENT), "operations[1]")
        err, _ = rpc(c.apply, [delete(pb.Route(tenant="small-t", prefix="10.%d.0.0/16" % i)) for i in range(16)] +
                     [delete(pb.Tenant(name="small-t"))])
        R.check(err is None, "deleting it again", short(err))
    expect_rejected(c, "a port on a device EAL does not have",
                    [create(pb.Port(name="p8", device="net_null7"))],
                    (C.INVALID_ARGUMENT, C.FAILED_PRECONDITION, C.NOT_FOUND), "operations[0].port.device")
    # More DIR24_8 tenants (each a FIB of 2^24 entries, ~34 MB, twice) than -m 1024 holds: the
    # commit runs out of memory midway and must undo everything, and give the memory back.
    # (Compact FIBs, the default, cost a kilobyte each: 64 of them fit.)
    rss0 = d.rss_kb()
    expect_rejected(c, "a batch of 64 tenants, more than medix-dp's memory holds",
                    [create(pb.Tenant(name="mem-%02d" % i, max_routes=1024, fib=pb.FIB_DIR24_8)) for i in range(64)],
                    (C.RESOURCE_EXHAUSTED,), "operations[", timeout=120)
    R.info("(VmRSS %d MB before, %d MB after)" % (rss0 // 1024, d.rss_kb() // 1024))
    ops = [create(pb.Tenant(name="mem-%02d" % i, max_routes=1024, fib=pb.FIB_DIR24_8)) for i in range(4)]
    err, res = rpc(c.apply, ops, 0, 60)
    R.check(err is None and res.changed == 4, "after that, 4 tenants can still be created (memory given back)",
            short(err))
    if err is None:
        rpc(c.apply, [delete(pb.Tenant(name="mem-%02d" % i)) for i in range(4)], 0, 60)


@test
def oversized_batch(f, d, c):
    """proto: `operations` holds at most 1,000,000. 1,000,001 identical route CREATEs (hand-
    encoded, ~36 MB) must be refused as a whole; exactly 1,000,000 are accepted (identical
    creates: one change, the rest no-ops)."""
    one = create(pb.Route(tenant="hosp-a", prefix="198.51.100.0/24",
                          blackhole=pb.Blackhole())).SerializeToString()
    t = time.monotonic()
    raw = api.encode_apply([one] * 1000001)
    err = expect_rejected(c, "a batch of 1,000,001 operations", None, (C.INVALID_ARGUMENT,),
                          ["operations: ", "1000000", "1,000,000"], raw=raw, timeout=120)
    R.info("(oversized batch answered in %.1f s: %s)" % (time.monotonic() - t, short(err)))
    v0 = c.version()
    t = time.monotonic()
    err, res = rpc(c.raw_apply, api.encode_apply([one] * 1000000), timeout=120)
    R.check(err is None and res.changed == 1 and res.version > v0,
            "a batch of exactly 1,000,000 identical route CREATEs applies (changed 1)",
            short(err) if err else "changed %d version %d -> %d" % (res.changed, v0, res.version))
    R.info("(1,000,000-operation batch answered in %.1f s)" % (time.monotonic() - t))
    rpc(c.apply, [delete(pb.Route(tenant="hosp-a", prefix="198.51.100.0/24"))])


@test
def ipsec_and_nat_kinds(f, d, c):
    gcm_key = os.urandom(20)
    SECRETS.add("ipsec_and_nat_kinds: sa 0x1000 cipher_key", gcm_key)
    samples = [
        pb.Tunnel(name="tun0", tenant="hosp-a", underlay_tenant="core", local_address="100.100.2.1",
                  remote_address="100.100.2.9", encap_udp_port=4500, mtu=1400,
                  local_selectors=["10.0.0.0/24"], remote_selectors=["10.9.0.0/24"]),
        pb.SecurityAssociation(spi=0x1000, tunnel="tun0", inbound=True, cipher=pb.AES_GCM_128,
                               cipher_key=gcm_key, replay_window=64),
        pb.StaticMapping(tenant="hosp-a", tenant_prefix="10.0.0.0/16", core_prefix="100.65.0.0/16"),
        pb.NaptPool(tenant="hosp-a", addresses=["100.64.9.1"], session_limit=1000),
        pb.PolicyRule(name="allow-pacs", priority=10, from_tenant="hosp-a", to_tenant="core",
                      destination_prefix="100.100.2.0/24", protocol=6, port_low=104, port_high=104, permit=True),
    ]
    # Every kind is implemented now: each must round-trip (the UNIMPLEMENTED branch stays for
    # a medix-dp built without some of them).
    may_exist = ("tunnel", "sa", "static_mapping", "napt_pool", "policy_rule")
    created = []
    for m in samples:
        kind = api.FIELD_OF[type(m)]
        err, res = rpc(c.list_page, api.KIND_OF[kind])
        R.check(err is None and not res.objects or err is not None and err.code() == C.UNIMPLEMENTED,
                "List %s: empty or UNIMPLEMENTED" % kind, short(err))
        ops = [create(pb.Tenant(name="unimpl-t", max_routes=1024)), create(m)]
        if kind not in may_exist:
            expect_rejected(c, "CREATE %s (after a good op)" % kind, ops, C.UNIMPLEMENTED, "operations[1]")
            continue
        before = State(c)
        err, res = rpc(c.apply, ops)
        if err is not None and err.code() == C.UNIMPLEMENTED:
            changed = before.diff(State(c))
            R.check("operations[1]" in err.details() and not changed,
                    "CREATE %s (after a good op) -> UNIMPLEMENTED naming operations[1], state and version unchanged"
                    % kind, "%s %s" % (short(err), changed))
            continue
        if not R.check(err is None and res.changed == 2, "CREATE %s: implemented in this medix-dp: applies" % kind,
                       short(err)):
            continue
        created.append(m)
        rpc(c.apply, [delete(pb.Tenant(name="unimpl-t"))])
        err, got = rpc(c.get, m)
        R.check(err is None and api.inner(got.object).SerializeToString() and
                getattr(api.inner(got.object), "name", None) == getattr(m, "name", None) and
                getattr(api.inner(got.object), "spi", None) == getattr(m, "spi", None),
                "Get %s returns what was created" % kind, short(err))
    if any(type(m) is pb.Tunnel for m in created):
        sa_keys(d, c)
    if created:
        err, _ = rpc(c.apply, [delete(m) for m in reversed(created)])
        R.check(err is None, "DELETE of the %s created" % " and ".join(api.FIELD_OF[type(m)] for m in created),
                short(err))
    err, _ = rpc(c.list_page, dp.KIND_UNSPECIFIED)
    R.check(err is not None and err.code() == C.INVALID_ARGUMENT, "List KIND_UNSPECIFIED -> INVALID_ARGUMENT",
            short(err))
    err, _ = rpc(c.stub.Get, dp.GetRequest(), timeout=10)
    R.check(err is not None and err.code() == C.INVALID_ARGUMENT, "Get without a key -> INVALID_ARGUMENT",
            short(err))


@test
def shaper_kind(f, d, c):
    """QoS's shaper (dataplane/qos/): the round trip, its classes' counters, bad ones refused whole."""
    first = pb.Shaper(name="rt-shp", interface="a-lan", rate=25000000, burst=250000, classes=[
        pb.ShaperClass(name="ef", priority=True, rate=1000000, dscp=[46]),
        pb.ShaperClass(name="rest", weight=1)])
    second = pb.Shaper(name="rt-shp", interface="a-lan", rate=12500000, burst=100000, classes=[
        pb.ShaperClass(name="img", rate=5000000, weight=2, tenant="hosp-a", set_dscp=True, mark_dscp=34),
        pb.ShaperClass(name="rest", weight=1, wred=pb.ShaperWred(
            green=pb.WredProfile(min_th=64, max_th=200), red=pb.WredProfile(min_th=8, max_th=32, maxp_inv=2),
            weight_log2=6, ecn=True))])
    round_trip(c, "shaper", first, second, pb.Shaper(name="rt-shp"), "shaper")
    err, res = rpc(c.apply, [create(first)])
    if R.check(err is None and res.changed == 1, "shaper: CREATE again", short(err)):
        names = [(k.name, getattr(k, "class")) for k in c.counters().shaper_classes]
        R.check(names == [("rt-shp", "ef"), ("rt-shp", "rest")], "GetCounters lists the shaper's classes",
                "names %s" % names)
        rpc(c.apply, [delete(pb.Shaper(name="rt-shp"))])
    over = pb.Shaper(name="bad-shp", interface="core-1", rate=1000000, burst=30000, classes=[
        pb.ShaperClass(name="a", rate=800000), pb.ShaperClass(name="b", rate=400000)])
    expect_rejected(c, "CREATE a good shaper and one whose guarantees exceed its rate", [create(first), create(over)],
                    C.INVALID_ARGUMENT, "operations[1].shaper.classes")
    small = pb.Shaper(name="bad-shp", interface="core-1", rate=1000000, burst=100,
                      classes=[pb.ShaperClass(name="a", weight=1)])
    expect_rejected(c, "CREATE a shaper whose burst is below one frame", [create(small)], C.INVALID_ARGUMENT,
                    "operations[0].shaper.burst")
    deep = pb.Shaper(name="bad-shp", interface="core-1", rate=1000000, burst=30000, classes=[
        pb.ShaperClass(name="a", weight=1, queue_limit=128,
                       wred=pb.ShaperWred(green=pb.WredProfile(min_th=64, max_th=200)))])
    expect_rejected(c, "CREATE a shaper whose WRED max_th is beyond its class's queue", [create(deep)],
                    C.INVALID_ARGUMENT, "operations[0].shaper.classes[0].wred.green.max_th")
    # A tunnel's shaper (docs/qos.md "Shaping a tunnel"): the tunnel and its shaper in one transaction.
    tunnel = pb.Tunnel(name="shp-tun", tenant="hosp-a", underlay_tenant="core", local_address="100.100.2.1",
                       remote_address="100.100.2.77", mtu=1300)
    on_tunnel = pb.Shaper(name="tun-shp", interface="shp-tun", rate=12500000, burst=1300, classes=[
        pb.ShaperClass(name="ef", priority=True, rate=125000, dscp=[46]),
        pb.ShaperClass(name="img", rate=6250000, weight=1, dscp=[26], set_dscp=True, mark_dscp=34),
        pb.ShaperClass(name="rest", weight=1)])
    low = pb.Shaper(name="bad-shp", interface="shp-tun", rate=1000000, burst=1299,
                    classes=[pb.ShaperClass(name="a", weight=1)])
    expect_rejected(c, "CREATE a tunnel and its shaper whose burst is below one packet of its MTU",
                    [create(tunnel), create(low)], C.INVALID_ARGUMENT, "operations[1].shaper.burst")
    nowhere = pb.Shaper(name="bad-shp", interface="no-tun", rate=1000000, burst=3000,
                        classes=[pb.ShaperClass(name="a", weight=1)])
    expect_rejected(c, "CREATE a shaper of a tunnel that does not exist", [create(nowhere)], C.INVALID_ARGUMENT,
                    "operations[0].shaper.interface")
    err, res = rpc(c.apply, [create(tunnel), create(on_tunnel)])
    if R.check(err is None and res.changed == 2, "CREATE a tunnel and a shaper on it in one transaction", short(err)):
        err, got = rpc(c.get, pb.Shaper(name="tun-shp"))
        R.check(err is None and api.inner(got.object) == on_tunnel, "Get the tunnel's shaper", short(err))
        names = [(k.name, getattr(k, "class")) for k in c.counters().shaper_classes]
        R.check(names == [("tun-shp", "ef"), ("tun-shp", "img"), ("tun-shp", "rest")],
                "GetCounters lists the tunnel's shaper's classes", "names %s" % names)
        again = pb.Shaper(name="tun-shp2", interface="shp-tun", rate=1000000, burst=3000,
                          classes=[pb.ShaperClass(name="a", weight=1)])
        expect_rejected(c, "CREATE a second shaper on the tunnel (after a good op)",
                        [create(pb.Tenant(name="shp-t")), create(again)], C.INVALID_ARGUMENT,
                        "operations[1].shaper.interface")
        expect_rejected(c, "DELETE a shaped tunnel", [delete(pb.Tunnel(name="shp-tun"))], C.FAILED_PRECONDITION,
                        "operations[0].tunnel")
        err, _ = rpc(c.apply, [delete(pb.Shaper(name="tun-shp")), delete(pb.Tunnel(name="shp-tun"))])
        R.check(err is None, "DELETE the tunnel's shaper and the tunnel", short(err))


@test
def spread_tunnel(f, d, c):
    # One SA over several workers (docs/ipsec.md): a tunnel's setting, off unless set, kept as set.
    t = pb.Tunnel(name="spr-tun", tenant="hosp-a", underlay_tenant="core", local_address="100.100.2.1",
                  remote_address="100.100.2.78", spread=True)
    err, res = rpc(c.apply, [create(t)])
    if R.check(err is None and res.changed == 1, "CREATE a spread tunnel", short(err)):
        err, got = rpc(c.get, pb.Tunnel(name="spr-tun"))
        R.check(err is None and api.inner(got.object) == t, "Get the spread tunnel as created", short(err))
        off = pb.Tunnel(name="spr-tun", tenant="hosp-a", underlay_tenant="core", local_address="100.100.2.1",
                        remote_address="100.100.2.78")
        err, _ = rpc(c.apply, [update(off)])
        err, got = rpc(c.get, pb.Tunnel(name="spr-tun")) if err is None else (err, None)
        R.check(err is None and not api.inner(got.object).spread, "UPDATE it: spread off by default", short(err))
        err, _ = rpc(c.apply, [delete(pb.Tunnel(name="spr-tun"))])
        R.check(err is None, "DELETE the spread tunnel", short(err))


@test
def policer_kind(f, d, c):
    """QoS's policer (dataplane/qos/): the round trip, its counters, bad ones refused whole."""
    remark = pb.PolicerColourAction(action=pb.POLICER_REMARK, dscp=10)
    first = pb.Policer(name="rt-pol", tenant="hosp-a", interface="a-lan", mode=pb.POLICER_SRTCM,
                       cir=1250000, cbs=3000, ebs=6000, yellow=remark)
    second = pb.Policer(name="rt-pol", tenant="hosp-a", mode=pb.POLICER_TRTCM, cir=1250000, pir=2500000,
                        cbs=3000, pbs=6000, match_dscp=True, dscp=46,
                        red=pb.PolicerColourAction(action=pb.POLICER_DROP))
    round_trip(c, "policer", first, second, pb.Policer(name="rt-pol"), "policer")
    err, res = rpc(c.apply, [create(first)])
    if R.check(err is None and res.changed == 1, "policer: CREATE again", short(err)):
        names = [p.name for p in c.counters().policers]
        R.check(names == ["rt-pol"], "GetCounters lists the policer's colours", "names %s" % names)
        rpc(c.apply, [delete(pb.Policer(name="rt-pol"))])
    bad = pb.Policer(name="bad-pol", tenant="hosp-a", mode=pb.POLICER_SRTCM, cir=0, cbs=3000, ebs=3000)
    expect_rejected(c, "CREATE a good policer and one with cir 0", [create(first), create(bad)],
                    C.INVALID_ARGUMENT, "operations[1].policer.cir")
    small = pb.Policer(name="bad-pol", tenant="hosp-a", mode=pb.POLICER_TRTCM, cir=1000, pir=2000, cbs=100,
                       pbs=3000)
    expect_rejected(c, "CREATE a policer whose cbs is below one packet", [create(small)], C.INVALID_ARGUMENT,
                    "operations[0].policer.cbs")
    stranger = pb.Policer(name="bad-pol", tenant="nobody", mode=pb.POLICER_SRTCM, cir=1000, cbs=3000, ebs=3000)
    expect_rejected(c, "CREATE a policer of a tenant that does not exist", [create(stranger)],
                    C.INVALID_ARGUMENT, "operations[0].policer.tenant")
    # RFC 4115, colour-aware: eir is its own; a rule's class (no tenant), which rules may name.
    no_eir = pb.Policer(name="bad-pol", tenant="hosp-a", mode=pb.POLICER_TRTCM_RFC4115, colour_aware=True,
                        cir=1000, cbs=3000, ebs=3000)
    expect_rejected(c, "CREATE an RFC 4115 policer with no eir", [create(no_eir)], C.INVALID_ARGUMENT,
                    "operations[0].policer.eir")
    by_rule = pb.Policer(name="rule-pol", mode=pb.POLICER_TRTCM_RFC4115, colour_aware=True, cir=1250000,
                         eir=625000, cbs=3000, ebs=3000)
    rule = pb.PolicyRule(name="rule-qos", priority=5, from_tenant="hosp-a", permit=True, policer="rule-pol")
    expect_rejected(c, "CREATE a rule naming a policer that does not exist (and a good policer after it)",
                    [create(rule), create(by_rule)], C.INVALID_ARGUMENT, "operations[0].policy_rule.policer")
    err, res = rpc(c.apply, [create(by_rule), create(rule)])
    if R.check(err is None and res.changed == 2, "a rule's policer and the rule naming it: CREATE", short(err)):
        err, got = rpc(c.get, pb.PolicyRule(name="rule-qos"))
        policer = api.inner(got.object).policer if got else None
        R.check(err is None and policer == "rule-pol", "Get gives the rule's policer back",
                short(err) if err else "policer %r" % policer)
        names = [p.name for p in c.counters().policers]
        R.check("rule-pol" in names, "GetCounters lists the rule's policer", "names %s" % names)
        expect_rejected(c, "DELETE a policer a rule names", [delete(pb.Policer(name="rule-pol"))],
                        C.FAILED_PRECONDITION, "operations[0].policer")
        rpc(c.apply, [delete(pb.PolicyRule(name="rule-qos")), delete(pb.Policer(name="rule-pol"))])


@test
def vrrp_kind(f, d, c):
    """VRRP instances (dataplane/vrrp/): the round trip, GetVrrp's view of one, bad ones refused
    whole with their field path."""
    first = pb.VrrpInstance(name="rt-vr", interface="a-lan", vrid=9, priority=150, addresses=["10.0.0.250"],
                            advert_interval_cs=100)
    second = pb.VrrpInstance(name="rt-vr", interface="a-lan", vrid=9, priority=50, preempt=True,
                             addresses=["10.0.0.250", "10.0.0.251"], advert_interval_cs=1, group="g1")
    round_trip(c, "vrrp_instance", first, second, pb.VrrpInstance(name="rt-vr"), "vrrp_instance")
    err, res = rpc(c.apply, [create(first)])
    if R.check(err is None and res.changed == 1, "vrrp_instance: CREATE again", short(err)):
        got = None
        for _ in range(50):  # the main lcore's control loop picks it up within a millisecond or so
            got = [i for i in c.stub.GetVrrp(dp.GetVrrpRequest(), timeout=10).instances if i.name == "rt-vr"]
            if got:
                break
            time.sleep(0.02)
        R.check(bool(got) and got[0].state == "backup" and got[0].vrid == 9 and got[0].interface == "a-lan"
                and got[0].priority == 150 and got[0].last_transitions[0].reason == "start",
                "GetVrrp: rt-vr starts as backup on a-lan, VRID 9, priority 150", "got %s" % got)
        rpc(c.apply, [delete(pb.VrrpInstance(name="rt-vr"))])
    bad = pb.VrrpInstance(name="bad-vr", interface="a-lan", vrid=0, addresses=["10.0.0.250"])
    expect_rejected(c, "CREATE a good VRRP instance and one of VRID 0", [create(first), create(bad)],
                    C.INVALID_ARGUMENT, "operations[1].vrrp_instance.vrid")
    off = pb.VrrpInstance(name="bad-vr", interface="a-lan", vrid=3, addresses=["192.0.2.1"])
    expect_rejected(c, "CREATE a VRRP instance whose address is on none of its interface's subnets",
                    [create(off)], C.INVALID_ARGUMENT, "operations[0].vrrp_instance.addresses[0]")


def sa_keys(d, c):
    """An AES-CBC SA with its integrity key applied, and one refused for a cipher key of the wrong
    length: the transaction's log line, the refusal's line and the error name fields, and the
    suite's last check finds none of these keys in any log or error."""
    cbc_key, hmac_key, bad_key, hmac_key2 = os.urandom(16), os.urandom(32), os.urandom(24), os.urandom(32)
    SECRETS.add("sa_keys: sa 0x1001 cipher_key", cbc_key)
    SECRETS.add("sa_keys: sa 0x1001 integrity_key", hmac_key)
    SECRETS.add("sa_keys: refused sa 0x1002 cipher_key", bad_key)
    SECRETS.add("sa_keys: refused sa 0x1002 integrity_key", hmac_key2)
    cbc = pb.SecurityAssociation(spi=0x1001, tunnel="tun0", inbound=False, cipher=pb.AES_CBC_128, cipher_key=cbc_key,
                                 integrity=pb.HMAC_SHA256_128, integrity_key=hmac_key)
    err, res = rpc(c.apply, [create(cbc)])
    R.check(err is None and res.changed == 1, "CREATE sa AES-CBC-128 with HMAC-SHA-256-128 and their keys applies",
            short(err))
    bad = pb.SecurityAssociation(spi=0x1002, tunnel="tun0", inbound=True, cipher=pb.AES_CBC_128, cipher_key=bad_key,
                                 integrity=pb.HMAC_SHA256_128, integrity_key=hmac_key2)
    expect_rejected(c, "CREATE sa with a 24-byte AES-CBC-128 key", [create(bad)], C.INVALID_ARGUMENT,
                    "operations[0].sa.cipher_key")
    deadline = time.monotonic() + 3
    want = ("medix-dp: API: version %d by uid 0 (root): sa +1; 1 changed in" % (res.version if res else 0),
            "medix-dp: API: transaction of uid 0 (root) refused (sa +1): operations[0].sa.cipher_key: 24 bytes")
    while time.monotonic() < deadline and not all(any(w in x for x in list(d.lines)) for w in want):
        time.sleep(0.05)
    R.check(all(any(w in x for x in list(d.lines)) for w in want),
            "medix-dp logged both transactions carrying SAs (keys: the last check)",
            "log: %s" % [x for x in d.lines if "API:" in x][-3:])
    err, _ = rpc(c.apply, [delete(pb.SecurityAssociation(spi=0x1001, tunnel="tun0", inbound=False))])
    R.check(err is None, "DELETE of that SA", short(err))


@test
def list_paging(f, d, c):
    n = 2500
    routes = [route_via("core", "203.0.%d.%d/32" % (i // 256, i % 256), "core-1", "100.100.2.2") for i in range(n)]
    err, res = rpc(c.apply, [create(r) for r in routes])
    if not R.check(err is None and res.changed == n, "a batch of %d routes applies" % n, short(err)):
        return
    v = res.version
    pages, token, got = 0, "", []
    while True:
        r = c.list_page("route", tenant="core", page_size=1000, page_token=token)
        pages += 1
        got.extend(r.objects)
        if not r.next_page_token or pages > 10:
            break
        token = r.next_page_token
    want = {x.SerializeToString(deterministic=True) for x in routes}
    have = [api.inner(o).SerializeToString(deterministic=True) for o in got]
    R.check(pages == 3 and want <= set(have) and len(have) == len(set(have)) == n + 1,
            "List route tenant=core page_size=1000: 3 pages, every route once (2,500 + 1 configured)",
            "%d pages, %d objects (%d distinct), %d of ours" % (pages, len(have), len(set(have)),
                                                               len(want & set(have))))
    objs, versions = c.list_all("route", tenant="hosp-a")
    R.check(all(o.tenant == "hosp-a" for o in objs) and len(objs) == 1 and set(versions) == {v},
            "List route tenant=hosp-a shows only hosp-a's route", "%d objects" % len(objs))
    objs, _ = c.list_all("route", page_size=100000)
    R.check(len(objs) == n + 2, "List route (every tenant) page_size=100000", "%d objects" % len(objs))
    err, r = rpc(c.list_page, "route", "", 200000)
    R.check(err is not None and err.code() == C.INVALID_ARGUMENT or err is None and len(r.objects) <= 100000,
            "List page_size 200000: INVALID_ARGUMENT or at most 100,000 objects", short(err))
    err, res = rpc(c.apply, [delete(r) for r in routes])
    R.check(err is None and res.changed == n, "a batch deleting them applies", short(err))


@test
def concurrent_clients(f, d, c):
    """Two clients, each on its own connection, applying 40 transactions at the same time."""
    target = d.unix_target
    results = {0: [], 1: []}
    errors = []
    barrier = threading.Barrier(2)

    def worker(w):
        cl = api.Client(target)
        try:
            barrier.wait(10)
            for t in range(40):
                ops = [create(route_via("core", "198.18.%d.%d/32" % (w * 100 + t, k), "core-1", "100.100.2.2"))
                       for k in range(25)]
                err, res = rpc(cl.apply, ops, 0, 30)
                if err:
                    errors.append((w, t, short(err)))
                else:
                    results[w].append(res)
        finally:
            cl.close()

    v0 = c.version()
    threads = [threading.Thread(target=worker, args=(w,)) for w in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    R.check(not errors and all(len(results[w]) == 40 for w in (0, 1)),
            "two clients, 40 concurrent transactions each: all succeed", "errors %s" % errors[:3])
    for w in (0, 1):
        vs = [r.version for r in results[w]]
        R.check(all(a < b for a, b in zip(vs, vs[1:])) and all(r.changed == 25 for r in results[w]),
                "client %d: its versions strictly increase, every transaction changed 25" % w, str(vs[:10]))
    allv = [r.version for w in (0, 1) for r in results[w]]
    R.check(len(allv) == len(set(allv)) and min(allv or [0]) > v0,
            "no two changing transactions got the same version", "%d versions, %d distinct" % (len(allv),
                                                                                             len(set(allv))))
    objs, versions = c.list_all("route", tenant="core")
    ours = {o.prefix for o in objs if o.prefix.startswith("198.18.")}
    R.check(len(ours) == 2000 and set(versions) == {max(allv or [0])} and c.version() == max(allv or [0]),
            "final state: all 2,000 routes present, version = the last one returned",
            "%d routes, list versions %s, last %s" % (len(ours), set(versions), max(allv or [0])))

    # Compare-and-set: both read the version, both apply with expected_version = it.
    outcomes = []
    for rnd in range(15):
        v = c.version()
        got = {}

        def racer(w):
            cl = clients[w]
            barrier.wait(10)
            got[w] = rpc(cl.apply, [create(route_via("core", "198.19.%d.%d/32" % (rnd, w), "core-1", ""))], v, 30)

        clients = [api.Client(target), api.Client(target)]
        for cl in clients:
            cl.wait_ready(10)
        ts = [threading.Thread(target=racer, args=(w,)) for w in (0, 1)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        for cl in clients:
            cl.close()
        oks = [w for w in (0, 1) if got.get(w, (1, None))[0] is None]
        fps = [w for w in (0, 1) if got.get(w, (None, None))[0] is not None
               and got[w][0].code() == C.FAILED_PRECONDITION]
        present = {w for w in (0, 1) if rpc(c.get, pb.Route(tenant="core", prefix="198.19.%d.%d/32" % (rnd, w)))[0]
                   is None}
        outcomes.append((len(oks) == 1 and len(fps) == 1 and present == set(oks),
                         [short(got.get(w, (None, None))[0]) for w in (0, 1)], sorted(present)))
    bad = [o for o in outcomes if not o[0]]
    R.check(not bad, "15 races of two clients with the same expected_version: exactly one applies, the other "
            "gets FAILED_PRECONDITION", str(bad[:3]))
    ops = [delete(pb.Route(tenant="core", prefix=p)) for p in sorted(
        {o.prefix for o in c.list_all("route", tenant="core")[0] if o.prefix.startswith(("198.18.", "198.19."))})]
    err, _ = rpc(c.apply, ops, 0, 60)
    R.check(err is None, "deleting the %d race routes in one batch" % len(ops), short(err))


@test
def counters_and_runtime(f, d, c):
    # Every drop reason: those the same binary's telemetry lists (/medix/drop_reasons), which are
    # drop.h's when the binary is built from this tree.
    sys.path.insert(0, os.path.join(ROOT, "test", "netns"))
    import telemetry  # noqa: E402
    tele = telemetry.query(d.prefix, "/medix/drop_reasons")
    reasons = list(tele)
    if reasons != drop_reasons_from_source():
        R.info("(this binary's drop reasons differ from dataplane/infra/drop.h: built from another tree?)")
    v = c.version()
    c1 = c.counters()
    now = time.time()
    R.check(c1.version == v, "GetCounters reports the running version", "%d vs %d" % (c1.version, v))
    R.check(abs(c1.timestamp_ns / 1e9 - now) < 5, "GetCounters timestamp_ns is CLOCK_REALTIME now",
            "%.3f vs %.3f" % (c1.timestamp_ns / 1e9, now))
    R.check(sorted(p.name for p in c1.ports) == ["p0", "p1"], "GetCounters lists the ports p0, p1",
            str([p.name for p in c1.ports]))
    R.check({"a-lan", "core-1"} <= {i.name for i in c1.interfaces}
            and {"hosp-a", "core"} <= {t.name for t in c1.tenants},
            "GetCounters lists every interface and tenant")
    R.check([x.reason for x in c1.drops] == reasons and all(x.description == tele[x.reason] for x in c1.drops),
            "GetCounters drops: every reason (%d, as telemetry's /medix/drop_reasons), in order, with its "
            "description" % len(reasons), str([x.reason for x in c1.drops]))
    R.check([l.lcore for l in c1.lcores] == [1] and [x.reason for x in c1.lcores[0].drops] == reasons,
            "GetCounters lcores: worker lcore 1 with every reason",
            str([(l.lcore, len(l.drops)) for l in c1.lcores]))
    time.sleep(0.3)
    c2 = c.counters()
    p0a = next((p for p in c1.ports if p.name == "p0"), None)
    p0b = next((p for p in c2.ports if p.name == "p0"), None)
    R.check(p0a and p0b and p0b.rx_packets > p0a.rx_packets > 0 and p0b.rx_bytes > p0a.rx_bytes,
            "port p0 (net_null rx) rx_packets and rx_bytes grow between two GetCounters",
            "%s -> %s" % (p0a and p0a.rx_packets, p0b and p0b.rx_packets))
    total = sum(x.packets for x in c2.drops)
    per = sum(x.packets for l in c2.lcores for x in l.drops)
    R.check(abs(total - per) <= 0.01 * total and total <= 1.01 * p0b.rx_packets and total > 0,
            "drops summed over lcores match the per-lcore drops (1%); net_null's junk frames are dropped",
            "sum %d, per-lcore %d, p0 rx %d" % (total, per, p0b.rx_packets))
    R.check(c2.timestamp_ns > c1.timestamp_ns and c2.events.icmp_sent >= c1.events.icmp_sent,
            "timestamps and event counters never go back")

    r1 = c.runtime()
    time.sleep(0.3)
    r2 = c.runtime()
    R.check(abs(r1.tsc_hz - 2.6e9) < 2e9 and r1.tsc_hz > 5e8, "GetRuntime tsc_hz is plausible (%d)" % r1.tsc_hz)
    names = [s.stage for s in r2.stages]
    R.check("rx" in names and len(names) >= 3 and len(set(names)) == len(names),
            "GetRuntime lists the stages (%s)" % ",".join(names))
    s1 = {s.stage: s for s in r1.stages}
    s2 = {s.stage: s for s in r2.stages}
    R.check(s2["rx"].calls > s1["rx"].calls and s2["rx"].cycles > s1["rx"].cycles if "rx" in s1 else False,
            "GetRuntime rx calls and cycles grow (the worker polls)")
    bad = [s.stage for s in r2.stages if s.packets and abs(s.cycles_per_packet - s.cycles / s.packets) >
           max(1.0, 0.01 * s.cycles_per_packet)]
    R.check(not bad, "cycles_per_packet = cycles / packets for every stage", str(bad))
    R.check([l.lcore for l in r2.lcores] == [1], "GetRuntime lcores: worker lcore 1",
            str([l.lcore for l in r2.lcores]))
    if r2.lcores:
        per = {s.stage: s for s in r2.lcores[0].stages}
        bad = ["%s: %d/%d vs %d/%d" % (s.stage, s.packets, s.cycles, per[s.stage].packets, per[s.stage].cycles)
               for s in r2.stages if s.stage not in per
               or abs(per[s.stage].cycles - s.cycles) > 0.01 * s.cycles
               or abs(per[s.stage].packets - s.packets) > 0.01 * s.packets]
        R.check(not bad, "GetRuntime: summed stages match lcore 1's (1%) with one worker", "; ".join(bad))


@test
def nic_counters(f, d, c):
    """Issue 14: each port's NIC (link, rte_eth_stats, xstats) in GetCounters, its drops as
    reasons of their own; per-worker loops and busy share in GetRuntime."""
    s = c.counters()
    ports = {p.name: p for p in s.ports}
    p0, p1 = ports.get("p0"), ports.get("p1")
    R.check(p0 is not None and p0.HasField("nic") and p0.nic.link_up and p0.nic.speed_mbps > 0,
            "GetCounters: p0's NIC link is up with a speed (net_null: %s Mbps)" % (p0 and p0.nic.speed_mbps))
    # One snapshot reads the workers' counters, then the NIC: the NIC has seen at least as many.
    R.check(p0 is not None and p0.nic.rx_packets >= p0.rx_packets > 0
            and p0.nic.rx_packets - p0.rx_packets <= 0.05 * p0.nic.rx_packets + 10000,
            "p0: the NIC's rx_packets (ipackets) matches what the worker received (5%)",
            "nic %d, worker %d" % (p0 and p0.nic.rx_packets, p0 and p0.rx_packets))
    names = {x.name for x in p0.nic.xstats} if p0 else set()
    R.check("rx_good_packets" in names and "rx_good_bytes" in names,
            "p0: xstats by name (rx_good_packets, rx_good_bytes, ...)", str(sorted(names)[:8]))
    good = next((x.value for x in p0.nic.xstats if x.name == "rx_good_packets"), 0) if p0 else 0
    R.check(p0 is not None and good >= p0.nic.rx_packets * 0.95,
            "p0: xstat rx_good_packets agrees with ipackets", "%d vs %d" % (good, p0 and p0.nic.rx_packets))
    R.check(p1 is not None and p1.nic.rx_packets == 0 and p1.rx_packets == 0,
            "p1 (no-rx): its NIC received nothing")
    nic = [(x.port, x.reason) for x in s.nic_drops]
    want = [(p, r) for p in sorted(ports) for r in ("nic_rx_missed", "nic_rx_errors", "nic_rx_nombuf",
                                                    "nic_tx_errors")]
    R.check(sorted(nic) == sorted(want) and all(x.description for x in s.nic_drops),
            "GetCounters nic_drops: every port with nic_rx_missed, nic_rx_errors, nic_rx_nombuf, nic_tx_errors",
            str(nic))
    by = {(x.port, x.reason): x.packets for x in s.nic_drops}
    R.check(p0 is not None and by.get(("p0", "nic_rx_missed")) == p0.nic.rx_missed
            and by.get(("p0", "nic_rx_nombuf")) == p0.nic.rx_nombuf,
            "nic_drops carry the NIC's imissed and rx_nombuf")

    # ports_only (medix-cp's BGP speaker reads the backbone's link with it every 200 ms): the
    # ports, their NICs and the version, nothing else; p0's counters between two full reads.
    light = c.stub.GetCounters(dp.GetCountersRequest(ports_only=True), timeout=10)
    after = c.counters()
    lp = {p.name: p for p in light.ports}
    a0 = next((p for p in after.ports if p.name == "p0"), None)
    R.check(sorted(lp) == sorted(ports) and lp["p0"].nic.link_up and light.version == after.version
            and not light.tenants and not light.interfaces and not light.lcores and not light.nic_drops
            and not light.nat and not light.drops,
            "GetCounters ports_only: the ports (p0's link up), the version, no tenant, interface, lcore or drop",
            str(light)[:300])
    R.check(p0 is not None and a0 is not None and p0.rx_packets <= lp["p0"].rx_packets <= a0.rx_packets
            and p0.nic.rx_packets <= lp["p0"].nic.rx_packets <= a0.nic.rx_packets,
            "GetCounters ports_only: p0's rx_packets (worker and NIC) between two full reads",
            "%d <= %d <= %d" % (p0 and p0.rx_packets, lp.get("p0") and lp["p0"].rx_packets, a0 and a0.rx_packets))

    r1 = c.runtime()
    time.sleep(0.3)
    r2 = c.runtime()
    ok = len(r2.lcores) == 1
    for l1, l2 in zip(r1.lcores, r2.lcores):
        ok = ok and l2.loops > l1.loops > 0 and l2.empty_polls <= l2.loops and l2.busy_cycles <= l2.cycles \
            and 0.0 <= l2.busy_share <= 1.0 and l2.cycles > 0 \
            and abs(l2.busy_share - l2.busy_cycles / l2.cycles) < 1e-6
    R.check(ok, "GetRuntime: each worker's loops grow, empty_polls <= loops, busy_cycles <= cycles, "
            "busy_share = busy/cycles in 0..1",
            str([(l.loops, l.empty_polls, l.busy_cycles, l.cycles, l.busy_share) for l in r2.lcores]))
    if r2.lcores:
        # net_null0 always has frames: the worker is busy nearly every loop.
        R.check(r2.lcores[0].busy_share > 0.5, "net_null0 keeps the worker busy (busy_share %.3f)"
                % r2.lcores[0].busy_share)


@test
def clear_counters(f, d, c):
    """ClearCounters: every reader starts from zero (bases subtracted; nothing reset), and
    counters and runtime report since when."""
    before = c.counters()
    r_before = c.runtime()
    time.sleep(0.2)
    t0 = time.time()
    err, resp = rpc(c.stub.ClearCounters, dp.ClearCountersRequest(), timeout=10)
    if not R.check(err is None, "ClearCounters", short(err)):
        return
    R.check(abs(resp.since_ns / 1e9 - t0) < 5 and resp.since_ns > before.since_ns,
            "ClearCounters returns since_ns: now, later than the start's")
    after = c.counters()
    r_after = c.runtime()
    R.check(after.since_ns == resp.since_ns and r_after.since_ns == resp.since_ns,
            "GetCounters and GetRuntime report since_ns of the clear")
    a = {p.name: p for p in after.ports}
    b = {p.name: p for p in before.ports}
    R.check(a["p1"].rx_packets == 0 and a["p1"].tx_packets == 0 and a["p1"].nic.rx_packets == 0,
            "after the clear the quiet port p1 reads 0")
    # net_null0 goes on receiving: p0 counts only what came since, far less than before.
    R.check(a["p0"].rx_packets < b["p0"].rx_packets and a["p0"].nic.rx_packets < b["p0"].nic.rx_packets,
            "after the clear p0 (always receiving) counts from zero: less than before",
            "%d -> %d, nic %d -> %d" % (b["p0"].rx_packets, a["p0"].rx_packets, b["p0"].nic.rx_packets,
                                       a["p0"].nic.rx_packets))
    # The NIC and the workers are read a moment apart while net_null0 delivers millions a second:
    # a busy machine may preempt the reader between the two, so the gap allowed is 5% plus 20 ms
    # of the rate measured here, read half a second on (a forgotten base would be off by the
    # whole count before the clear).
    t1 = time.monotonic()
    time.sleep(0.5)
    a2 = {p.name: p for p in c.counters().ports}
    rate = (a2["p0"].nic.rx_packets - a["p0"].nic.rx_packets) / max(time.monotonic() - t1, 0.1)
    nic, wrk = a2["p0"].nic.rx_packets, a2["p0"].rx_packets
    R.check(nic >= wrk and nic - wrk <= 0.05 * nic + 0.02 * rate,
            "after the clear p0's NIC and worker counts still agree (5% and 20 ms of traffic)",
            "nic %d, worker %d, %.0f packets/s" % (nic, wrk, rate))
    drops_b = sum(x.packets for x in before.drops)
    drops_a = sum(x.packets for x in after.drops)
    lcore_a = sum(x.packets for l in after.lcores for x in l.drops)
    # (the ports, the sum and each lcore's are read a moment apart while net_null0 goes on: the
    # same 5% and 20 ms of traffic as above; a forgotten base would be off by everything before)
    R.check(drops_a < drops_b / 10 and drops_a <= a["p0"].rx_packets * 1.05 + 0.02 * rate + 100
            and lcore_a < drops_b / 10 and abs(drops_a - lcore_a) <= 0.05 * drops_a + 0.02 * rate + 100,
            "drops (summed and per lcore) count from the clear",
            "%d -> %d, lcore %d, p0 received %d, %.0f packets/s" % (drops_b, drops_a, lcore_a, a["p0"].rx_packets, rate))
    quiet = [t for t in after.tenants if t.name == "core"]
    R.check(quiet and quiet[0].rx_packets == 0 and quiet[0].tx_packets == 0, "the quiet tenant core reads 0")
    R.check(r_after.lcores and r_after.lcores[0].loops < r_before.lcores[0].loops
            and all(s.calls <= s2.calls for s, s2 in zip(r_after.stages, r_before.stages)),
            "runtime (loops, stage calls) counts from the clear")


@test
def capture_requests(f, d, c):
    """Issue 14: Capture refuses what it cannot do with a status naming the field, and runs one
    capture at a time."""
    def first(req, timeout=5):
        call = c.stub.Capture(req, timeout=timeout)
        try:
            return next(call), None
        except StopIteration:
            return None, None
        except grpc.RpcError as e:
            return None, e
        finally:
            call.cancel()

    for name, req, code, field in [
            ("a BPF expression libpcap cannot compile", dp.CaptureRequest(bpf="udp port"), C.INVALID_ARGUMENT, "bpf:"),
            ("an unknown tenant", dp.CaptureRequest(tenant="no-such-tenant"), C.NOT_FOUND, "tenant:"),
            ("an unknown interface", dp.CaptureRequest(interface="no-such-if"), C.NOT_FOUND, "interface:"),
            ("an unknown port", dp.CaptureRequest(port="p99"), C.NOT_FOUND, "port:"),
            ("an unknown drop reason", dp.CaptureRequest(drop_reason="no_such_reason"), C.INVALID_ARGUMENT,
             "drop_reason:"),
            ("a drop reason with points that leave drops out",
             dp.CaptureRequest(drop_reason="no_route", points=[dp.CAPTURE_RX]), C.INVALID_ARGUMENT, "drop_reason:"),
            ("a snap length above 2048", dp.CaptureRequest(snaplen=9000), C.INVALID_ARGUMENT, "snaplen:"),
            ("VLAN 5000", dp.CaptureRequest(vlan=5000), C.INVALID_ARGUMENT, "vlan:"),
            ("an SPI no SA has", dp.CaptureRequest(sa_spi=0x7777), C.NOT_FOUND, "sa_spi:")]:
        _, err = first(req)
        R.check(err is not None and err.code() == code and (err.details() or "").startswith(field),
                "Capture with %s: %s naming the field (%s)" % (name, code.name, field), short(err))
    # A good filter (tenant, VLAN, BPF) runs and ends at its duration with no error.
    t0 = time.monotonic()
    _, err = first(dp.CaptureRequest(tenant="hosp-a", vlan=10, bpf="udp port 5000 or icmp", duration_ms=300))
    R.check(err is None and time.monotonic() - t0 < 3, "Capture with tenant, VLAN and BPF runs and ends at its "
            "duration_ms", short(err))
    # One at a time: a second is refused while the first runs, and the slot is free after it.
    call = c.stub.Capture(dp.CaptureRequest(duration_ms=3000), timeout=10)
    time.sleep(0.5)
    _, err = first(dp.CaptureRequest(duration_ms=200))
    R.check(err is not None and err.code() == C.RESOURCE_EXHAUSTED and "one at a time" in err.details(),
            "a second concurrent Capture: RESOURCE_EXHAUSTED, one at a time", short(err))
    call.cancel()
    time.sleep(0.3)
    _, err = first(dp.CaptureRequest(duration_ms=200))
    R.check(err is None, "once the first client went away, a new Capture runs", short(err))


@test
def trace_requests(f, d, c):
    """Issue 14: StartTrace refuses a bad count and a filter capture's make_filter refuses, and
    capture's own fields, each naming the field; GetTrace reports the running trace (count,
    and packets only of the filter) and ClearTrace ends it."""
    def start(count, **filt):
        try:
            c.stub.StartTrace(dp.StartTraceRequest(count=count, filter=dp.CaptureRequest(**filt)), timeout=5)
            return None
        except grpc.RpcError as e:
            return e
    for name, count, filt, code, field in [
            ("count 0", 0, {}, C.INVALID_ARGUMENT, "count:"),
            ("count 1001", 1001, {}, C.INVALID_ARGUMENT, "count:"),
            ("an unknown tenant", 5, dict(tenant="no-such-tenant"), C.NOT_FOUND, "filter.tenant:"),
            ("a BPF expression libpcap cannot compile", 5, dict(bpf="udp port"), C.INVALID_ARGUMENT, "filter.bpf:"),
            ("capture points", 5, dict(points=[dp.CAPTURE_RX]), C.INVALID_ARGUMENT, "filter.points:"),
            ("a capture's duration", 5, dict(duration_ms=100), C.INVALID_ARGUMENT, "filter.duration_ms:")]:
        err = start(count, **filt)
        R.check(err is not None and err.code() == code and (err.details() or "").startswith(field),
                "StartTrace with %s: %s naming the field (%s)" % (name, code.name, field), short(err))
    g = c.stub.GetTrace(dp.GetTraceRequest(), timeout=5)
    R.check(not g.running and not g.packets, "GetTrace with none started: not running, no packets", str(g))
    # A filter no packet of this suite matches (BPF), so the trace stays empty whatever runs.
    err = start(7, tenant="hosp-a", bpf="udp port 9")
    g = c.stub.GetTrace(dp.GetTraceRequest(), timeout=5)
    R.check(err is None and g.running and g.count == 7 and not g.packets,
            "StartTrace(7, tenant and BPF) runs: GetTrace running, count 7, no packet yet", short(err) + " " + str(g))
    c.stub.ClearTrace(dp.ClearTraceRequest(), timeout=5)
    g = c.stub.GetTrace(dp.GetTraceRequest(), timeout=5)
    R.check(not g.running, "ClearTrace ends it", str(g))


@test
def watch_counters(f, d, c):
    def collect(interval_ms, count, timeout):
        call = c.stub.WatchCounters(dp.WatchCountersRequest(interval_ms=interval_ms), timeout=timeout)
        snaps, t0 = [], time.monotonic()
        err = None
        try:
            for s in call:
                snaps.append((time.monotonic() - t0, s))
                if len(snaps) >= count:
                    break
        except grpc.RpcError as e:
            err = e
        call.cancel()
        return snaps, err

    snaps, err = collect(200, 4, 10)
    gaps = [(b[1].timestamp_ns - a[1].timestamp_ns) / 1e6 for a, b in zip(snaps, snaps[1:])]
    # (a snapshot late by over half an interval starts the cadence again: never closer than 100 ms)
    R.check(len(snaps) >= 4 and all(100 <= g <= 600 for g in gaps),
            "WatchCounters interval 200 ms: 4 snapshots, ~200 ms apart, never closer than half of it", "%s, gaps %s ms" % (short(err),
                                                                                           [round(g) for g in gaps]))
    if len(snaps) >= 2:
        a, b = snaps[0][1], snaps[-1][1]
        p0 = lambda s: next((p.rx_packets for p in s.ports if p.name == "p0"), 0)  # noqa: E731
        R.check(p0(b) > p0(a) and b.version == c.version() and len(b.drops) == len(a.drops) > 0,
                "WatchCounters snapshots carry growing counters, the version and every drop reason")
    snaps, err = collect(0, 2, 10)
    gaps = [(b[1].timestamp_ns - a[1].timestamp_ns) / 1e6 for a, b in zip(snaps, snaps[1:])]
    R.check(len(snaps) >= 2 and all(800 <= g <= 1500 for g in gaps),
            "WatchCounters interval 0: the default, 1000 ms", "%s, gaps %s" % (short(err), [round(g) for g in gaps]))
    snaps, err = collect(10, 3, 10)
    gaps = [(b[1].timestamp_ns - a[1].timestamp_ns) / 1e6 for a, b in zip(snaps, snaps[1:])]
    # Raised to the 100 ms floor, kept to its cadence as any interval is (watch.cpp: a snapshot
    # late by under half an interval keeps it, so two may come 50 ms apart, never closer): the
    # span is the cadence's, (n - 1) x 100 ms less under half of it, never 10 ms steps.
    span = sum(gaps)
    R.check(err is not None and err.code() == C.INVALID_ARGUMENT or
            len(snaps) >= 3 and all(g >= 50 for g in gaps) and span >= 100 * len(gaps) - 50,
            "WatchCounters interval 10 ms: INVALID_ARGUMENT or the 100 ms floor's cadence",
            "%s, gaps %s ms, span %d ms" % (short(err), [round(g) for g in gaps], round(span)))
    # A change during a stream: the next snapshots carry the new version.
    call = c.stub.WatchCounters(dp.WatchCountersRequest(interval_ms=100), timeout=10)
    try:
        first = next(call)
        err, res = rpc(c.apply, [create(pb.Tenant(name="watch-t", max_routes=1024))])
        later = [next(call) for _ in range(3)]
        R.check(err is None and first.version < res.version == later[-1].version
                and "watch-t" in {t.name for t in later[-1].tenants},
                "a change during WatchCounters: later snapshots carry its version and its tenant",
                short(err) if err else "versions %d -> %s" % (first.version, [s.version for s in later]))
    except grpc.RpcError as e:
        R.check(False, "a change during WatchCounters", short(e))
    finally:
        call.cancel()
        rpc(c.apply, [delete(pb.Tenant(name="watch-t"))])
    err, _ = rpc(c.list_page, "route", "", 10, "not-a-token")
    R.info("(List with a page_token no response gave: %s)" % short(err))
    # Clients that vanish mid-stream: the server goes on.
    threads0 = d.threads()
    for _ in range(10):
        cl = api.Client(d.unix_target)
        it = cl.stub.WatchCounters(dp.WatchCountersRequest(interval_ms=100), timeout=10)
        next(it)
        cl.close()
    time.sleep(1)
    err, _ = rpc(c.runtime)
    R.check(err is None and d.alive(), "after 10 watchers closed their connections mid-stream, the server answers",
            short(err))
    R.info("(medix-dp threads: %s before the watchers, %s after)" % (threads0, d.threads()))


def unread_streams(f):
    """Issue 12, item 3: watch streams nobody reads must not starve the API or hold shutdown.
    Its own medix-dp with a cap of 12 streams and a stall timeout of 2 s."""
    cap, stall_ms = 12, 2000
    try:
        d = f.start(["--api-max-streams", str(cap), "--api-max-streams-per-client", str(cap),
                     "--api-stall-timeout", str(stall_ms)])
    except Exception as e:  # noqa: BLE001
        R.check(False, "medix-dp starts with --api-max-streams and --api-stall-timeout", str(e).splitlines()[0])
        return
    c = api.Client(d.unix_target)
    # Four connections of their own, as separate clients would have.
    own = [("grpc.use_local_subchannel_pool", 1)]
    clients = [api.Client(d.unix_target, options=own) for _ in range(4)]
    calls = [clients[i % 4].stub.WatchCounters(dp.WatchCountersRequest(interval_ms=100), timeout=60)
             for i in range(3 * cap)]
    calls += [clients[i % 4].stub.WatchSaEvents(dp.WatchSaEventsRequest(), timeout=60) for i in range(4)]
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sum(x.done() for x in calls) < len(calls) - cap:
        time.sleep(0.1)
    time.sleep(0.5)  # no more should end
    ended = [x for x in calls if x.done()]
    open_calls = [x for x in calls if not x.done()]
    bad = [short(x.exception()) for x in ended
           if x.code() != C.RESOURCE_EXHAUSTED or "--api-max-streams %d" % cap not in (x.details() or "")]
    R.check(len(open_calls) == cap and not bad,
            "%d never-read streams opened (36 WatchCounters at 100 ms, 4 WatchSaEvents): %d served, the rest "
            "RESOURCE_EXHAUSTED naming --api-max-streams %d" % (len(calls), cap, cap),
            "%d open, %d ended; unexpected: %s" % (len(open_calls), len(ended), bad[:3]))
    if ended:
        R.info("(refused: %r)" % ended[0].details())
    # The API goes on, promptly, with the cap of streams open and unread.
    route = route_leak("hosp-a", "10.77.0.0/16", "core")
    t0 = time.monotonic()
    err, _ = rpc(c.apply, [create(route)], 0, 10)
    t_apply = time.monotonic() - t0
    t0 = time.monotonic()
    err2, got = rpc(c.get, route, 10)
    t_get = time.monotonic() - t0
    R.check(err is None and err2 is None and t_apply < 2 and t_get < 2,
            "with %d unread streams open: Apply and Get answer within 2 s" % cap,
            "Apply %s in %.2f s, Get %s in %.2f s" % (short(err), t_apply, short(err2), t_get))
    R.info("(Apply %.3f s, Get %.3f s; medix-dp threads %s, RSS %s kB)" % (t_apply, t_get, d.threads(), d.rss_kb()))
    # A client that takes nothing (small flow-control windows: the server's write blocks) is
    # ended after the stall timeout, with the reason after what was in flight; its slot frees.
    open_calls[0].cancel()
    time.sleep(0.3)
    slow = api.Client(d.unix_target, options=own + [("grpc.http2.lookahead_bytes", 16384),
                                                    ("grpc.http2.bdp_probe", 0)])
    call = slow.stub.WatchCounters(dp.WatchCountersRequest(interval_ms=100), timeout=30)
    time.sleep(0.5)
    admitted = not call.done()
    time.sleep(stall_ms / 1000 + 1)  # past the stall timeout, before it is cut off
    got, err = 0, None
    try:
        for _ in call:
            got += 1
    except grpc.RpcError as e:
        err = e
    R.check(admitted and err is not None and err.code() == C.RESOURCE_EXHAUSTED
            and "--api-stall-timeout" in (err.details() or "") and got >= 1,
            "a stream its client does not read is ended after --api-stall-timeout %d: RESOURCE_EXHAUSTED after "
            "what was in flight" % stall_ms,
            "admitted %s, %d messages, then %s" % (admitted, got, short(err)))
    time.sleep(0.3)
    again = clients[0].stub.WatchCounters(dp.WatchCountersRequest(interval_ms=100), timeout=10)
    try:
        first = next(again)
        R.check(first.version > 0, "its slot is free again: a new stream is served")
    except grpc.RpcError as e:
        R.check(False, "its slot is free again: a new stream is served", short(e))
    slow.close()
    # SIGTERM with the cap of streams open and unread: a prompt, clean exit.
    runtime_dir = os.path.dirname(d.socket_path)
    t0 = time.monotonic()
    os.kill(d.pid, signal.SIGTERM)
    try:
        rc = d.proc.wait(10)
    except subprocess.TimeoutExpired:
        rc = None
    took = time.monotonic() - t0
    left = [p for p in (d.socket_path, runtime_dir) if os.path.exists(p)]
    R.check(rc == 0 and took < 5 and not left,
            "SIGTERM with %d unread streams: exit 0 within 5 s, no socket or runtime dir left" % cap,
            "exit %s after %.1f s; left: %s" % (rc, took, left))
    R.info("(stopped in %.2f s)" % took)
    d.stop()
    for x in calls + [again]:
        x.cancel()
    for cl in clients + [c]:
        cl.close()


def make_certs(tmp):
    """Two CAs; a server certificate (localhost, 127.0.0.1) and client certificates from CA 1
    (medixctl; nms with a DNS name, noc, remote-cp with a URI, stranger: for the roles file);
    a client certificate from CA 2."""
    def run(*a):
        subprocess.run(["openssl"] + list(a), check=True, capture_output=True, cwd=tmp, timeout=60)

    def key(name):
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-out", name + ".key")

    def ca(name):
        key(name)
        run("req", "-x509", "-new", "-key", name + ".key", "-out", name + ".crt", "-days", "2",
            "-subj", "/CN=medix test " + name, "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def leaf(name, ca_name, cn, ext):
        key(name)
        run("req", "-new", "-key", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn)
        with open(os.path.join(tmp, name + ".ext"), "w") as fh:
            fh.write(ext)
        run("x509", "-req", "-in", name + ".csr", "-CA", ca_name + ".crt", "-CAkey", ca_name + ".key",
            "-CAcreateserial", "-out", name + ".crt", "-days", "2", "-extfile", name + ".ext")

    ca("ca1")
    ca("ca2")
    leaf("server", "ca1", "localhost", "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    leaf("client1", "ca1", "medixctl", "extendedKeyUsage=clientAuth\n")
    leaf("client2", "ca2", "intruder", "extendedKeyUsage=clientAuth\n")
    leaf("monitor", "ca1", "nms", "subjectAltName=DNS:nms.hosp.example\nextendedKeyUsage=clientAuth\n")
    leaf("operator", "ca1", "noc", "extendedKeyUsage=clientAuth\n")
    leaf("controller", "ca1", "remote-cp",
         "subjectAltName=URI:spiffe://ix.example/medix-cp\nextendedKeyUsage=clientAuth\n")
    leaf("stranger", "ca1", "stranger", "extendedKeyUsage=clientAuth\n")
    return {n: open(os.path.join(tmp, n), "rb").read() for n in os.listdir(tmp) if n.endswith((".crt", ".key"))}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls_tests(f):
    certs_dir = os.path.join(f.tmp, "certs")
    os.makedirs(certs_dir)
    try:
        certs = make_certs(certs_dir)
    except Exception as e:  # noqa: BLE001
        R.check(False, "make the test CA and certificates with openssl", str(e))
        return
    port = free_port()
    p = lambda n: os.path.join(certs_dir, n)  # noqa: E731
    # No plaintext TCP: --api-listen without the TLS files is refused at start.
    cfg = os.path.join(f.tmp, "tls-config.json")
    with open(cfg, "w") as fh:
        json.dump(CONFIG, fh)
    r = subprocess.run([f.args.binary] + f.eal() + ["--", "--config", cfg, "--api-listen", "127.0.0.1:%d" % port,
                                                    "--tls-cert", p("server.crt"), "--tls-key", p("server.key")],
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    R.check(r.returncode == 2 and "--tls-client-ca" in out and "unknown option" not in out,
            "--api-listen without --tls-client-ca: refused at start (exit 2, names the option)",
            "exit %d: %s" % (r.returncode, [x for x in out.splitlines() if "medix-dp:" in x][:1]))
    # --api-socket PATH.
    custom = os.path.join(f.tmp, "custom-api.sock")
    try:
        d = f.start(["--api-socket", custom])
        cl = api.Client("unix:" + custom)
        err, _ = rpc(cl.runtime, 5) if os.path.exists(custom) else (RuntimeError("no socket"), None)
        cl.close()
        ok = err is None and stat.S_IMODE(os.stat(custom).st_mode) == 0o600
        R.check(ok, "--api-socket PATH: the API answers there, mode 0600", short(err) if err else "")
        d.stop()
    except Exception as e:  # noqa: BLE001
        R.check(False, "--api-socket PATH: the API answers there, mode 0600", str(e).splitlines()[0])
    # Roles (issue 12, item 9): --api-listen without --api-roles is refused; so is a bad file.
    tls_args = ["--api-listen", "127.0.0.1:%d" % port, "--tls-cert", p("server.crt"), "--tls-key", p("server.key"),
                "--tls-client-ca", p("ca1.crt")]
    r = subprocess.run([f.args.binary] + f.eal() + ["--", "--config", cfg] + tls_args,
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    R.check(r.returncode == 2 and "--api-roles" in out and "unknown option" not in out,
            "--api-listen without --api-roles: refused at start (exit 2, names the option)",
            "exit %d: %s" % (r.returncode, [x for x in out.splitlines() if "medix-dp:" in x][:1]))
    bad_roles = os.path.join(f.tmp, "bad-roles.json")
    with open(bad_roles, "w") as fh:
        json.dump({"identities": {"CN=nms": "admin"}}, fh)
    r = subprocess.run([f.args.binary] + f.eal() + ["--", "--config", cfg, "--api-roles", bad_roles] + tls_args,
                       capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    R.check(r.returncode == 2 and 'identities["CN=nms"]' in out and "monitor" in out,
            "a roles file with an unknown role: refused at start naming the identity and the roles",
            "exit %d: %s" % (r.returncode, [x for x in out.splitlines() if "medix-dp:" in x][:1]))
    roles = os.path.join(f.tmp, "roles.json")
    with open(roles, "w") as fh:
        json.dump({"identities": {"CN=medixctl": "controller", "DNS:nms.hosp.example": "monitor",
                                  "CN=noc": "operator", "URI:spiffe://ix.example/medix-cp": "controller",
                                  "uid:0": "monitor"}}, fh)
    try:
        d = f.start(tls_args + ["--api-roles", roles, "--api-max-streams-per-client", "2"])
    except Exception as e:  # noqa: BLE001
        R.check(False, "medix-dp starts with --api-listen 127.0.0.1:%d, mTLS options and --api-roles" % port, str(e))
        return
    R.check(True, "medix-dp starts with --api-listen 127.0.0.1:%d, mTLS options and --api-roles" % port)
    target = "127.0.0.1:%d" % port
    override = [("grpc.ssl_target_name_override", "localhost")]

    def attempt(creds, secure=True):
        cl = api.Client(target, creds, override) if secure else api.Client(target)
        try:
            return rpc(cl.runtime, 5)
        finally:
            cl.close()

    good = grpc.ssl_channel_credentials(certs["ca1.crt"], certs["client1.key"], certs["client1.crt"])
    err, res = attempt(good)
    R.check(err is None and res.tsc_hz > 0, "TCP+mTLS: a client with a certificate from the configured CA is served",
            short(err))
    err, res = attempt(grpc.ssl_channel_credentials(certs["ca1.crt"]))
    R.check(err is not None and res is None, "TCP+mTLS: a client without a certificate gets nothing",
            "it was served" if err is None else "")
    R.info("(no certificate: %s)" % short(err))
    err, res = attempt(grpc.ssl_channel_credentials(certs["ca1.crt"], certs["client2.key"], certs["client2.crt"]))
    R.check(err is not None and res is None,
            "TCP+mTLS: a client with a certificate from another CA gets nothing",
            "it was served" if err is None else "")
    R.info("(other CA: %s)" % short(err))
    # A client presenting CA 1's own self-signed CA certificate (not a leaf) with its key.
    err, res = attempt(None, secure=False)
    R.check(err is not None and res is None, "TCP+mTLS: a plaintext client gets nothing")
    # Applying over TLS, and the unix socket still there.
    cl = api.Client(target, good, override)
    err, res = rpc(cl.apply, [create(pb.Tenant(name="tls-t", max_routes=1024))], 0, 10)
    cl.close()
    u = api.Client(d.unix_target)
    err2, got = rpc(u.get, pb.Tenant(name="tls-t"))
    u.close()
    R.check(err is None and err2 is None, "TCP+mTLS: Apply works; the unix socket serves too and sees it",
            short(err or err2))
    st = os.stat(d.socket_path)
    R.check(stat.S_IMODE(st.st_mode) == 0o600, "API socket has mode 0600 with --api-listen too")
    roles_tests(d, target, override, certs)
    # Reflection and health over TLS, for any certificate of the client CA: this one has no role.
    stranger = grpc.ssl_channel_credentials(certs["ca1.crt"], certs["stranger.key"], certs["stranger.crt"])
    channel = grpc.secure_channel(target, stranger, override)
    standard_services(channel, "TCP+mTLS, a certificate without a role")
    channel.close()
    medixctl_tls_reasons(f, target, p)
    rc, killed = d.stop()
    R.check(rc == 0 and not killed, "medix-dp (TLS) exits 0 on SIGTERM", "status %s%s" % (rc, ", killed" if killed else ""))


def medixctl_tls_reasons(f, target, p):
    """medixctl says why a TLS connection fails, not only UNAVAILABLE; it never prints a key."""
    ctl = os.environ.get("MEDIXCTL", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(f.args.binary))),
                                                  "controlplane/cli/medixctl"))
    keys = [open(p(n)).read().split("-----")[2].strip().splitlines()[0] for n in ("client1.key", "client2.key")]
    cases = [
        ("no client certificate", ["--tls-ca", p("ca1.crt")], "requires a client certificate"),
        ("a certificate of another CA", ["--tls-ca", p("ca1.crt"), "--tls-cert", p("client2.crt"),
                                         "--tls-key", p("client2.key")], "refused our certificate --tls-cert"),
        ("--tls-ca that did not sign the server's", ["--tls-ca", p("ca2.crt"), "--tls-cert", p("client1.crt"),
                                                     "--tls-key", p("client1.key")],
         "not signed by --tls-ca " + p("ca2.crt")),
        ("no TLS at all", [], "serves TLS: give --tls-ca"),
        ("a port nothing listens on", ["--tls-ca", p("ca1.crt")], "Connection refused"),
        # The same listener by an address its certificate (localhost, 127.0.0.1) does not hold.
        ("an address the server's certificate does not hold", ["--tls-ca", p("ca1.crt"), "--tls-cert",
                                                              p("client1.crt"), "--tls-key", p("client1.key")],
         "is not for ::ffff:127.0.0.1 (name mismatch"),
    ]
    try:
        socket.socket(socket.AF_INET6).close()
    except OSError:
        R.info("(no IPv6 here: the name mismatch case is left out)")
        cases = [x for x in cases if "does not hold" not in x[0]]
    for name, tls, want in cases:
        where = target
        if "nothing listens" in name:
            where = "127.0.0.1:%d" % free_port()
        elif "does not hold" in name:
            where = "[::ffff:127.0.0.1]:%s" % target.rsplit(":", 1)[1]
        r = subprocess.run([ctl, "--dp", where] + tls + ["runtime"], capture_output=True, text=True, timeout=60)
        out = r.stdout + r.stderr
        leaked = [k for k in keys if k in out]
        R.check(r.returncode == 1 and want in out and not leaked,
                "medixctl over TLS, %s: the error says why (%s)" % (name, want),
                "exit %d%s: %s" % (r.returncode, ", a key printed" if leaked else "", out.strip()))
    r = subprocess.run([ctl, "--dp", target, "--tls-ca", p("ca1.crt"), "--tls-cert", p("client1.crt"), "--tls-key",
                        p("client1.key"), "runtime"], capture_output=True, text=True, timeout=60)
    R.check(r.returncode == 0, "medixctl over TLS with a certificate of the client CA is served",
            (r.stdout + r.stderr).strip()[-300:])


# Each RPC and the least role that may call it (docs/running.md, "Who may do what"). A method
# of the service missing here fails the test: a new RPC must be given a role.
RPC_ROLES = {"Get": "monitor", "List": "monitor", "GetCounters": "monitor", "GetRuntime": "monitor",
             "WatchCounters": "monitor", "WatchSaEvents": "monitor", "ListSessions": "monitor", "GetVersion": "monitor",
             "GetFib": "monitor", "Lookup": "monitor", "GetHaSync": "monitor", "GetVrrp": "monitor",
             "ClearSessions": "operator", "ClearCounters": "operator", "Capture": "operator",
             "StartTrace": "operator", "GetTrace": "operator", "ClearTrace": "operator",
             "Apply": "controller", "SetHaRole": "controller"}
ROLE_ORDER = ["none", "monitor", "operator", "controller"]


def call_method(cl, method, timeout=2):
    """Calls `method` (a MethodDescriptor) with an empty request; for a stream, its first message.
    Returns the error or None."""
    req = getattr(dp, method.input_type.name)()
    path = api.SERVICE + method.name
    try:
        if method.server_streaming:
            it = cl.channel.unary_stream(path, request_serializer=type(req).SerializeToString)(req, timeout=timeout)
            try:
                next(it)
            finally:
                it.cancel()
        else:
            cl.channel.unary_unary(path, request_serializer=type(req).SerializeToString)(req, timeout=timeout)
        return None
    except grpc.RpcError as e:
        return e


def roles_tests(d, target, override, certs):
    """Issue 12, item 9: who may do what, over TCP by certificate and on the unix socket by uid."""
    def client(name):
        return api.Client(target, grpc.ssl_channel_credentials(certs["ca1.crt"], certs[name + ".key"],
                                                               certs[name + ".crt"]), override)
    who = {"none": ("stranger", "CN=stranger"), "monitor": ("monitor", "DNS:nms.hosp.example"),
           "operator": ("operator", "CN=noc"), "controller": ("controller", "URI:spiffe://ix.example/medix-cp")}
    methods = dp.DESCRIPTOR.services_by_name["Dataplane"].methods
    unknown = [m.name for m in methods if m.name not in RPC_ROLES]
    R.check(not unknown, "every RPC of the service has a role in the test's table", "missing: %s" % unknown)
    for role, (cert, identity) in who.items():
        cl = client(cert)
        wrong = []
        for m in methods:
            if m.name not in RPC_ROLES:
                continue
            may = ROLE_ORDER.index(role) >= ROLE_ORDER.index(RPC_ROLES[m.name])
            err = call_method(cl, m)
            denied = err is not None and err.code() == C.PERMISSION_DENIED
            if denied == may:
                wrong.append("%s: %s" % (m.name, short(err)))
            elif denied and not all(x in (err.details() or "") for x in (m.name, identity, "role " + role)):
                wrong.append("%s: the refusal %r does not name the RPC, %s and role %s" % (
                    m.name, err.details(), identity, role))
        cl.close()
        R.check(not wrong, "TCP: %s (certificate %s) may call exactly what %s may; each refusal is "
                "PERMISSION_DENIED naming the RPC, the identity and its role" % (role, identity, role),
                "; ".join(wrong))
    # The refusals themselves, as a client sees them.
    cl = client("monitor")
    err, res = rpc(cl.apply, [create(pb.Tenant(name="mon-t", max_routes=1024))], 0, 5)
    R.info("(monitor's Apply: %s)" % short(err))
    err2, _ = rpc(cl.list_page, "tenant")
    R.check(err is not None and err.code() == C.PERMISSION_DENIED and err2 is None,
            "TCP: a monitor certificate can List but its Apply is PERMISSION_DENIED", short(err or err2))
    cl.close()
    cl = client("controller")
    err, res = rpc(cl.apply, [create(pb.Tenant(name="cp-t", max_routes=1024))], 0, 10)
    R.check(err is None and res.changed == 1, "TCP: a controller certificate (by its URI) can Apply", short(err))
    rpc(cl.apply, [delete(pb.Tenant(name="cp-t"))], 0, 10)
    cl.close()
    cl = client("stranger")
    err, _ = rpc(cl.runtime, 5)
    R.check(err is not None and err.code() == C.PERMISSION_DENIED and "CN=stranger" in err.details()
            and "role none" in err.details(),
            "TCP: a certificate of the CA that the roles file does not name is refused even GetRuntime",
            short(err))
    cl.close()
    # The unix socket: this file maps uid 0 to monitor.
    u = api.Client(d.unix_target)
    err, _ = rpc(u.apply, [create(pb.Tenant(name="unix-t", max_routes=1024))], 0, 5)
    err2, _ = rpc(u.get, pb.Tenant(name="hosp-a"))
    R.check(err is not None and err.code() == C.PERMISSION_DENIED and "uid 0" in err.details()
            and "role monitor" in err.details() and err2 is None,
            "unix socket: uid 0, mapped to monitor by the roles file, can Get but its Apply is PERMISSION_DENIED",
            "%s; Get %s" % (short(err), short(err2)))
    u.close()
    # Per-client stream cap (--api-max-streams-per-client 2): one client cannot take them all.
    mon = client("monitor")
    streams = [mon.stub.WatchCounters(dp.WatchCountersRequest(interval_ms=100), timeout=10) for _ in range(3)]

    def first(x):
        try:
            next(x)
            return None
        except grpc.RpcError as e:
            return e
    errs = [first(x) for x in streams]  # the server may take them in any order
    refused = [e for e in errs if e is not None]
    ctl = client("controller")
    other = ctl.stub.WatchCounters(dp.WatchCountersRequest(interval_ms=100), timeout=10)
    err2 = first(other)
    R.check(len(refused) == 1 and refused[0].code() == C.RESOURCE_EXHAUSTED
            and "--api-max-streams-per-client 2" in (refused[0].details() or "") and err2 is None,
            "a client's third stream is RESOURCE_EXHAUSTED naming --api-max-streams-per-client 2; "
            "another client's is served", "%s; other client: %s" % ([short(e) for e in errs], short(err2)))
    if refused:
        R.info("(%s)" % refused[0].details())
    for x in streams + [other]:
        x.cancel()
    mon.close()
    ctl.close()
    # Refusals are logged, one line each, naming who and what; never a key.
    time.sleep(0.2)
    log = "\n".join(d.lines)
    R.check("refused Apply: CN=nms, DNS:nms.hosp.example (role monitor)" in log and "PRIVATE KEY" not in log
            and "BEGIN" not in log,
            "refusals are logged on medix-dp's stderr, one line naming the RPC, identity and role; no key",
            "log: %s" % [x for x in d.lines if "refused" in x][:2])


def journal_and_levels(f):
    """Under systemd (stdout is the stream JOURNAL_STREAM names) each line carries its syslog
    priority for journald; --log-level notice leaves out the info lines (transactions)."""
    eal = f.eal()
    prefix = eal[eal.index("--file-prefix") + 1]
    path = os.path.join(f.tmp, "journal-config.json")
    with open(path, "w") as out:
        json.dump(CONFIG, out)
    log_path = os.path.join(f.tmp, "journal.log")
    out = open(log_path, "w")
    st = os.fstat(out.fileno())
    env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    p = subprocess.Popen([f.args.binary] + eal + ["--", "--config", path, "--log-level", "notice"],
                         stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                         start_new_session=True)
    out.close()
    text = ""
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        while "medix-dp: ready" not in text and time.monotonic() < deadline and p.poll() is None:
            time.sleep(0.1)
            text = open(log_path).read()
        c = api.Client("unix:/var/run/dpdk/%s/api.sock" % prefix)
        c.wait_ready(10)
        err, _ = rpc(c.apply, [create(pb.Tenant(name="journal-tenant"))])
        c.close()
        time.sleep(0.3)
        text = open(log_path).read()
        R.check(err is None and "<5>medix-dp: ready" in text and "API: version" not in text
                and "objects, version" not in text,
                "under journald lines carry their priority (<5> notice); --log-level notice leaves out "
                "the info lines (the config's and the transaction's)", text[-600:])
    finally:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree("/var/run/dpdk/%s" % prefix, ignore_errors=True)
    bad = subprocess.run([f.args.binary, "--", "--config", path, "--log-level", "loud"], capture_output=True,
                         text=True, timeout=10)
    R.check(bad.returncode == 2 and "--log-level loud: one of error, warning, notice, info, debug" in bad.stderr,
            "an unknown --log-level is refused naming the levels", bad.stderr[-300:])


UID_CLIENT = """
import sys
sys.path.insert(0, %r)
import medixapi as api
from medixapi import pb, create, rpc
c = api.Client("unix:" + sys.argv[1])
for name, (err, _) in (("GetRuntime", rpc(c.runtime, 5)),
                       ("Apply", rpc(c.apply, [create(pb.Tenant(name="uid-t", max_routes=1024))], 0, 5))):
    print(name, api.code_name(err), err.details() if err else "")
""" % HERE


def unix_peer_roles(f):
    """Issue 12, item 9, on the unix socket: other uids, by the peer's credentials. The socket is
    made reachable (0666, in a folder of its own) so that the mode is not what refuses them."""
    if not shutil.which("setpriv") or not os.path.exists("/etc/passwd"):
        R.info("(no setpriv: the unix socket's uid roles are not tested)")
        return
    folder = tempfile.mkdtemp(prefix="medix-api-uid.")
    os.chmod(folder, 0o755)
    sock = os.path.join(folder, "api.sock")
    roles = os.path.join(f.tmp, "uid-roles.json")
    with open(roles, "w") as fh:
        json.dump({"identities": {"uid:65534": "monitor"}}, fh)
    try:
        d = f.start(["--api-socket", sock, "--api-roles", roles])
    except Exception as e:  # noqa: BLE001
        R.check(False, "medix-dp starts with --api-roles mapping uid 65534", str(e).splitlines()[0])
        shutil.rmtree(folder, ignore_errors=True)
        return
    os.chmod(sock, 0o666)

    def as_uid(uid):
        r = subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid, "--clear-groups",
                           "/usr/bin/python3", "-c", UID_CLIENT, sock], capture_output=True, text=True, timeout=60)
        out = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
        return out, r.stderr.strip().splitlines()[-1:]
    out, err = as_uid(65534)
    R.check(out.get("GetRuntime", "").startswith("OK") and out.get("Apply", "").startswith("PERMISSION_DENIED")
            and "uid 65534" in out.get("Apply", "") and "role monitor" in out.get("Apply", ""),
            "unix socket: uid 65534, mapped to monitor, can GetRuntime; its Apply is PERMISSION_DENIED naming it",
            "%s %s" % (out, err))
    out, err = as_uid(65533)
    R.check(out.get("GetRuntime", "").startswith("PERMISSION_DENIED") and "role none" in out.get("GetRuntime", ""),
            "unix socket: a uid the roles file does not name (65533) may call nothing, the socket's mode aside",
            "%s %s" % (out, err))
    u = api.Client(d.unix_target)
    e, res = rpc(u.apply, [create(pb.Tenant(name="root-t", max_routes=1024))], 0, 10)
    u.close()
    R.check(e is None and res.changed == 1, "unix socket: root, not in the file, is still a controller", short(e))
    d.stop()
    shutil.rmtree(folder, ignore_errors=True)


def shutdown_with_stream(f, d, c):
    """SIGTERM while a WatchCounters stream is open: medix-dp must still exit 0 promptly."""
    call = c.stub.WatchCounters(dp.WatchCountersRequest(interval_ms=100), timeout=60)
    got = []

    def reader():
        try:
            for s in call:
                got.append(s)
        except grpc.RpcError:
            pass
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    health_channel = grpc.insecure_channel(d.unix_target)
    watch = grpcstd.watch_health(health_channel)
    seen = []

    def health_reader():
        try:
            for r in watch:
                seen.append(grpcstd.status_name(r.status))
        except grpc.RpcError:
            pass
    h = threading.Thread(target=health_reader, daemon=True)
    h.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    rc, killed = d.stop(timeout=15)
    h.join(5)
    watch.cancel()
    health_channel.close()
    R.check(seen[:1] == ["SERVING"] and "NOT_SERVING" in seen,
            "SIGTERM: a grpc.health.v1 Watch sees SERVING, then NOT_SERVING before the server goes",
            "saw %s" % seen)
    R.check(rc == 0 and not killed, "medix-dp exits 0 on SIGTERM with a WatchCounters stream open",
            "status %s%s after %.1f s" % (rc, ", had to be killed" if killed else "", time.monotonic() - t0))
    R.info("(API socket left behind after exit: %s)" % d.socket_left)
    t.join(5)
    call.cancel()


# --- main ----------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.environ.get("MEDIX_DP", os.path.join(ROOT, "build/dataplane/medix-dp")))
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    ap.add_argument("-k", action="append", default=[], help="run only tests whose name contains this")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("api: must run as root (DPDK)")
        print("api: 0 passed, 1 failed")
        return 1
    api.self_test()
    OUTPUTS.start()
    problems = keygrep.self_test()  # the last check would find a leak
    R.check(not problems, "the key check finds a planted key in every form", "; ".join(problems))

    def on_alarm(signum, frame):
        raise TimeoutError("the whole run took longer than %d s" % TOTAL_TIMEOUT)
    signal.signal(signal.SIGALRM, on_alarm)
    signal.signal(signal.SIGTERM, lambda s, fr: (_ for _ in ()).throw(KeyboardInterrupt("SIGTERM")))
    signal.alarm(TOTAL_TIMEOUT)

    f = Fixture(args)
    d = c = None
    try:
        try:
            d = f.start()
            c = api.Client(d.unix_target)
            c.wait_ready(10)
            R.check(True, "medix-dp ready; the API answers on %s" % d.socket_path)
        except Exception as e:  # noqa: BLE001
            R.check(False, "medix-dp ready; the API answers on its unix socket", str(e))
            return finish(f)
        for t in TESTS:
            if args.k and not any(k in t.__name__ for k in args.k):
                continue
            print("--- %s" % t.__name__, flush=True)
            try:
                t(f, d, c)
            except grpc.RpcError as e:
                R.check(False, "%s: unexpected RPC error" % t.__name__, short(e))
            except (TimeoutError, KeyboardInterrupt):
                raise
            except Exception as e:  # noqa: BLE001
                R.check(False, "%s: %s" % (t.__name__, type(e).__name__), "%s\n%s" % (e, traceback.format_exc()))
            if not d.alive():
                R.check(False, "medix-dp still running after %s" % t.__name__,
                        "exit status %s:\n%s" % (d.proc.returncode, d.tail()))
                return finish(f)
        if not args.k or any(k in "shutdown_with_stream" for k in args.k):
            print("--- shutdown_with_stream", flush=True)
            shutdown_with_stream(f, d, c)
        c.close()
        if not args.k or any(k in "unread_streams" for k in args.k):
            print("--- unread_streams", flush=True)
            unread_streams(f)
        if not args.k or any(k in "tls" for k in args.k):
            print("--- tls", flush=True)
            tls_tests(f)
        if not args.k or any(k in "journal_and_levels" for k in args.k):
            print("--- journal_and_levels", flush=True)
            journal_and_levels(f)
        if not args.k or any(k in "unix_peer_roles" for k in args.k):
            print("--- unix_peer_roles", flush=True)
            unix_peer_roles(f)
    except (TimeoutError, KeyboardInterrupt) as e:
        R.check(False, "run interrupted", str(e))
    return finish(f)


def finish(f):
    signal.alarm(0)
    # Last, over everything: the medix-dp logs and all else in the temp dir (the TLS keys' own
    # files aside), this suite's output, the output of every program it ran, every gRPC error.
    api.kill_all()
    for d, _, files in os.walk(f.tmp):
        for n in files:
            if n.endswith(".key"):
                SECRETS.add_pem("TLS private key " + n, os.path.join(d, n))
    ok, what, details = SECRETS.check([f.tmp], OUTPUTS.texts() + [("gRPC error", e) for e in api.errors])
    R.check(ok, "no key or PSK in any log or error of this suite (%s)" % what, details)
    if R.failed:
        for p in list(api._processes):
            print("--- last lines of %s:" % p.log_path)
            print(p.tail(15))
        f.args.keep = True
    f.close()
    print("api: %d passed, %d failed" % (R.passed, R.failed), flush=True)
    return 1 if R.failed else 0


if __name__ == "__main__":
    sys.exit(main())
