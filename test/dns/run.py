#!/usr/bin/python3
"""Names in the IX's domain (issue 17, docs/dns.md): a real Knot DNS (knotd, Debian's `knot`)
driven by a real medix-cp over its control socket, medix-cp bringing a real medix-dp (net_null
port) to the same intent. Answers are read with kdig, and through a real unbound forwarding the IX's
domain to Knot (the hospitals' resolver of docs/dns.md):
  - A of a name given as (tenant, tenant address) is the host's core address from the tenant's
    static mapping; PTR of that core address is the name; CNAME and TXT as the intent says;
  - moving the mapping (an intent change) moves the answer within 1 s of `medixctl intent apply`
    returning, and a loop of kdig queries during the change sees only the old or the new answer;
  - a bad intent (a CNAME loop, a zone outside the IX's domains, an address nobody owns, a host no
    mapping holds) is refused whole, naming the field, and the zone (its serial) is unchanged;
  - knotd restarted empty: medix-cp fills it again; medix-cp restarted: nothing changes in Knot
    (the zone's serial is the same);
  - Knot signs the zones (dnssec-signing) and unbound, trusting the IX's key, validates the
    answers (AD; SERVFAIL with another key);
  - per-tenant answers (Knot's geoip module, subnet mode, views written by medix-cp): a hospital
    asking for its own PACS gets its tenant address, the other hospital the core address;
  - medixctl dns lists the zones (forward, and the core's reverse ones) and records Knot serves (the
    same as kdig gets), and resolves a name as a tenant's host would.
Everything runs in a network namespace of its own (knotd on 127.0.0.1:53, unbound on 127.0.0.2:53).

    /usr/bin/python3 test/dns/run.py [--keep]     (MEDIX_DP, MEDIX_CP: other binaries)

Prints PASS/FAIL lines and, last, `dns: N passed, M failed`.
"""
import argparse
import copy
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DP = os.environ.get("MEDIX_DP", os.path.join(ROOT, "build/dataplane/medix-dp"))
CP = os.environ.get("MEDIX_CP", os.path.join(ROOT, "build/controlplane/medix-cp"))
MEDIXCTL = os.path.join(ROOT, "build/controlplane/cli/medixctl")
KNOT = "127.0.0.1"
UNBOUND = "127.0.0.2"
METRICS = 9153  # medix-cp's --metrics-listen, in this suite's own namespace
HOSP_A, HOSP_B, ARCHIVE_MOVED = "100.64.1.5", "100.64.2.5", "100.100.3.5"  # tenants' hosts as the core sees them

sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
import checks  # noqa: E402
from checks import check  # noqa: E402


def intent(archive_core="100.100.1.0/24", records=None, zones=None):
    """Two hospitals with the same plan, an archive, the core; the IX's zone ix.example."""
    recs = records if records is not None else [
        {"name": "archive", "tenant": "archive", "tenant_address": "192.168.1.10"},
        {"name": "pacs.hospital-a", "tenant": "hosp-a", "tenant_address": "10.0.0.10"},
        {"name": "pacs.hospital-b", "tenant": "hosp-b", "tenant_address": "10.0.0.10"},
        {"name": "dicom", "type": "CNAME", "target": "archive"},
        {"name": "@", "type": "TXT", "text": "medix test IX"},
        {"name": "ns", "address": "100.100.9.53"},
    ]
    return {"schema_version": 1,
            "tenants": [{"name": "hosp-a"}, {"name": "hosp-b"}, {"name": "archive"}, {"name": "dns"},
                        {"name": "ix", "core": True}],
            "static_mappings": [
                {"tenant": "hosp-a", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"},
                {"tenant": "hosp-b", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.2.0/24"},
                {"tenant": "archive", "tenant_prefix": "192.168.1.0/24", "core_prefix": archive_core},
                {"tenant": "dns", "tenant_prefix": "192.168.9.0/24", "core_prefix": "100.100.9.0/24"}],
            "dns": {"domains": ["ix.example"], "service_tenant": "dns", "service_address": "100.100.9.53",
                    "zones": zones if zones is not None else [{"name": "ix.example", "records": recs}]}}


def kdig(name, rtype="A", server=KNOT, source=None):
    """The answer's records (kdig +short), or None when the query failed; asked from `source`."""
    out = subprocess.run(["kdig", "@" + server, "+short", "+timeout=1", "+retry=0", name, rtype]
                         + (["-b", source] if source else []), capture_output=True, text=True, timeout=10)
    if out.returncode != 0 or ";;" in out.stdout:
        return None
    return sorted(out.stdout.split("\n")[:-1]) if out.stdout else []


def serial():
    soa = kdig("ix.example", "SOA")
    return soa[0].split()[2] if soa else None


def wait_until(fn, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.05)
    return fn()


class Daemons:
    def __init__(self, tmp):
        self.tmp, self.procs = tmp, {}

    def start(self, name, argv, ready=None, seconds=30):
        log = os.path.join(self.tmp, name + ".log")
        with open(log, "a") as f:
            self.procs[name] = subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT)
        if ready is None:
            return True
        deadline = time.time() + seconds
        while time.time() < deadline and self.procs[name].poll() is None:
            if ready in open(log).read():
                return True
            time.sleep(0.05)
        return False

    def log(self, name):
        return open(os.path.join(self.tmp, name + ".log")).read()

    def stop(self, name):
        p = self.procs.pop(name, None)
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode if p else None


def knot_conf(tmp):
    # Zones live in memory only (no zone file, no journal): a restarted knotd starts empty, and
    # medix-cp's catalog zone tells it which zones to make. Per-tenant answers: the geoip module
    # in subnet mode on every zone of the catalog, its views written by medix-cp.
    member = ("    storage: {t}/zones\n    zonefile-sync: -1\n    zonefile-load: none\n"
              "    journal-content: none\n").format(t=tmp)
    signed = "    dnssec-signing: on\n"
    return ("server:\n    rundir: {t}\n    listen: {k}@53\n    udp-workers: 2\n    tcp-workers: 1\n"
            "    background-workers: 1\n"
            "database:\n    storage: {t}/db\n"
            "mod-geoip:\n  - id: medix\n    config-file: {t}/views.geoip\n    mode: subnet\n"
            "mod-probe:\n  - id: medix\n    path: {t}\n    channels: 1\n"
            "template:\n  - id: default\n{m}    global-module: mod-probe/medix\n"
            "  - id: medix\n{m}{s}    module: mod-geoip/medix\n"
            "zone:\n  - domain: catalog.medix\n    catalog-role: interpret\n    catalog-template: medix\n"
            "control:\n    listen: {t}/knot.sock\n"
            "log:\n  - target: stderr\n    any: info\n").format(t=tmp, k=KNOT, m=member, s=signed)


def unbound_conf(tmp, anchor):
    # docs/dns.md's example: the IX's domain and the core's reverse zones forwarded to the IX's
    # server (here on loopback: do-not-query-localhost off), validating the IX's signed zone with
    # its key as trust anchor. The core's 100.64.0.0/10 is shared address space, whose reverse
    # zones unbound answers itself unless unblock-lan-zones.
    return ("server:\n    interface: {u}\n    port: 53\n    do-daemonize: no\n    use-syslog: no\n"
            "    username: \"\"\n    chroot: \"\"\n    directory: \"{t}\"\n    pidfile: \"{t}/unbound.pid\"\n"
            "    do-not-query-localhost: no\n    module-config: \"validator iterator\"\n"
            "    trust-anchor: \"{a}\"\n    domain-insecure: \"100.in-addr.arpa.\"\n"
            "    access-control: 127.0.0.0/8 allow\n    logfile: \"\"\n    verbosity: 1\n"
            "    unblock-lan-zones: yes\n    insecure-lan-zones: yes\n"
            "remote-control:\n    control-enable: no\n"
            "forward-zone:\n    name: \"ix.example.\"\n    forward-addr: {k}@53\n"
            "forward-zone:\n    name: \"100.in-addr.arpa.\"\n    forward-addr: {k}@53\n").format(t=tmp, u=UNBOUND, k=KNOT,
                                                                                      a=anchor)


def apply(prefix, tmp, name, doc):
    path = os.path.join(tmp, name + ".json")
    with open(path, "w") as f:
        json.dump(doc, f)
    return subprocess.run([MEDIXCTL, "-p", prefix, "intent", "apply", path], capture_output=True, text=True,
                          timeout=30)


def run(tmp, d, prefix):
    with open(os.path.join(tmp, "dp.json"), "w") as f:
        json.dump({"schema_version": 1, "ports": [{"name": "p0", "device": "net_null0"}]}, f)
    with open(os.path.join(tmp, "intent.json"), "w") as f:
        json.dump(intent(), f)
    with open(os.path.join(tmp, "knot.conf"), "w") as f:
        f.write(knot_conf(tmp))
    with open(os.path.join(tmp, "strongswan.conf"), "w") as f:
        f.write("medix-cp {\n  port = 0\n  port_nat_t = 0\n}\n")
    os.makedirs(os.path.join(tmp, "db"))  # knotd's catalog database: not made by knotd
    open(os.path.join(tmp, "views.geoip"), "w").close()  # read by knotd before medix-cp writes it
    # Queries arrive at the DNS service translated, each tenant's from its core prefix: hospital A's
    # host 10.0.0.5 asks from 100.64.1.5, hospital B's from 100.64.2.5.
    for a in (UNBOUND + "/8", HOSP_A + "/32", HOSP_B + "/32", ARCHIVE_MOVED + "/32"):
        subprocess.run(["ip", "addr", "add", a, "dev", "lo"], capture_output=True)
    knotd = ["knotd", "-c", os.path.join(tmp, "knot.conf")]
    if not check(d.start("knot", knotd, "control, binding to", 20), "knotd starts", d.log("knot")[-600:]):
        return
    if not check(d.start("dp", [DP, "--no-huge", "-m", "512", "--no-pci", "--file-prefix", prefix, "-l", "0,1",
                                "--log-level=error", "--vdev", "net_null0", "--", "--config",
                                os.path.join(tmp, "dp.json")], "medix-dp: ready", 30),
                 "medix-dp starts", d.log("dp")[-600:]):
        return
    cp = [CP, "--intent", os.path.join(tmp, "intent.json"), "-p", prefix, "--strongswan-conf",
          os.path.join(tmp, "strongswan.conf"), "--log-level", "0", "--knot", os.path.join(tmp, "knot.sock"),
          "--knot-geoip", os.path.join(tmp, "views.geoip"), "--knot-probe", tmp,
          "--metrics-listen", "127.0.0.1:%d" % METRICS]
    if not check(d.start("cp", cp, "medix-cp: ready", 30), "medix-cp starts with --knot", d.log("cp")[-800:]):
        return

    # 1. The answers.
    check(kdig("archive.ix.example") == ["100.100.1.10"], "A archive.ix.example: the archive host's core address",
          kdig("archive.ix.example"))
    a, b = kdig("pacs.hospital-a.ix.example"), kdig("pacs.hospital-b.ix.example")
    check(a == ["100.64.1.10"] and b == ["100.64.2.10"],
          "same tenant address 10.0.0.10 in two hospitals: each name gets its own core address", (a, b))
    check(kdig("10.1.100.100.in-addr.arpa", "PTR") == ["archive.ix.example."],
          "PTR of the archive's core address is its name (reverse zone of the core prefix)",
          kdig("10.1.100.100.in-addr.arpa", "PTR"))
    check(kdig("10.1.64.100.in-addr.arpa", "PTR") == ["pacs.hospital-a.ix.example."],
          "PTR of hospital A's host", kdig("10.1.64.100.in-addr.arpa", "PTR"))
    check(kdig("dicom.ix.example") == ["100.100.1.10", "archive.ix.example."], "CNAME dicom -> archive",
          kdig("dicom.ix.example"))
    check(kdig("ix.example", "TXT") == ['"medix test IX"'], "TXT at the apex", kdig("ix.example", "TXT"))
    check(kdig("ix.example", "NS") == ["ns.ix.example."], "NS made by medix-cp", kdig("ix.example", "NS"))

    # The DNS service's policy rules, made by medix-cp in medix-dp from dns.service_*.
    out = subprocess.run([MEDIXCTL, "-p", prefix, "-o", "json", "show", "policy-rule"], capture_output=True,
                         text=True, timeout=30)
    rules = {}
    try:
        rules = {o["policy_rule"]["name"]: o["policy_rule"] for o in json.loads(out.stdout).get("objects", [])}
    except (ValueError, KeyError):
        pass
    check({n: (r.get("protocol"), r.get("port_low"), r.get("destination_prefix"), r.get("to_tenant"), r.get("permit"))
           for n, r in rules.items()} == {"dns-udp": (17, 53, "100.100.9.53/32", "dns", True),
                                          "dns-tcp": (6, 53, "100.100.9.53/32", "dns", True)},
          "medix-dp has the DNS service's rules: every tenant to 100.100.9.53, UDP and TCP 53", out.stdout[-800:])

    # Per-tenant answers: a hospital's own PACS is its tenant address for it, the core address
    # for the other hospital.
    own = {(src, n): kdig(n, source=src) for src in (HOSP_A, HOSP_B)
           for n in ("pacs.hospital-a.ix.example", "pacs.hospital-b.ix.example")}
    check(own[(HOSP_A, "pacs.hospital-a.ix.example")] == ["10.0.0.10"]
          and own[(HOSP_B, "pacs.hospital-b.ix.example")] == ["10.0.0.10"],
          "per tenant: each hospital gets its own PACS at its tenant address 10.0.0.10", own)
    check(own[(HOSP_A, "pacs.hospital-b.ix.example")] == ["100.64.2.10"]
          and own[(HOSP_B, "pacs.hospital-a.ix.example")] == ["100.64.1.10"],
          "per tenant: the other hospital's PACS is its core address", own)
    signed = subprocess.run(["kdig", "@" + KNOT, "-b", HOSP_A, "+dnssec", "pacs.hospital-a.ix.example"],
                            capture_output=True, text=True, timeout=10).stdout
    check("10.0.0.10" in signed and "RRSIG" in signed, "per tenant: the view's answer is signed too (RRSIG)",
          signed[-600:])

    # Queries per tenant, from knotd's probe module: each hospital's from its own core prefix.
    def queries():
        out = subprocess.run([MEDIXCTL, "-p", prefix, "-o", "json", "dns", "queries"], capture_output=True, text=True,
                             timeout=30)
        try:
            return {t["tenant"]: t for t in json.loads(out.stdout)}
        except ValueError:
            return {"error": out.stdout + out.stderr}
    q0 = queries()
    for _ in range(5):
        kdig("archive.ix.example", source=HOSP_A)
    for name in ("archive.ix.example", "archive.ix.example", "absent.ix.example"):
        kdig(name, source=HOSP_B)
    grew = lambda q, t, k: q.get(t, {}).get(k, 0) - q0.get(t, {}).get(k, 0)
    q1 = wait_until(lambda: (lambda q: q if grew(q, "hosp-a", "queries") >= 5 and grew(q, "hosp-b", "queries") >= 3
                             else None)(queries()), 5) or queries()
    check(grew(q1, "hosp-a", "queries") == 5 and grew(q1, "hosp-b", "queries") == 3
          and grew(q1, "hosp-b", "nxdomain") == 1 and grew(q1, "hosp-a", "nxdomain") == 0,
          "medixctl dns queries: 5 queries from hospital A's core prefix, 3 (1 NXDOMAIN) from B's, by tenant",
          (q0, q1))
    out = subprocess.run([MEDIXCTL, "-p", prefix, "dns", "queries"], capture_output=True, text=True, timeout=30)
    check(out.returncode == 0 and out.stdout.startswith("TENANT") and "hosp-a" in out.stdout,
          "medixctl dns queries: the table", out.stdout + out.stderr)

    # medixctl dns: the zones and records medix-cp keeps Knot serving, equal to what kdig gets.
    ctl = lambda *a: subprocess.run([MEDIXCTL, "-p", prefix, "dns"] + list(a), capture_output=True, text=True,
                                    timeout=30)
    out = ctl()
    check(out.returncode == 0 and all(z in out.stdout for z in ("ix.example.", "1.100.100.in-addr.arpa.",
                                                                  "1.64.100.in-addr.arpa.")),
          "medixctl dns: the forward zone and the core's reverse zones", out.stdout + out.stderr)
    out = subprocess.run([MEDIXCTL, "-p", prefix, "-o", "json", "dns", "records", "ix.example"],
                         capture_output=True, text=True, timeout=30)
    try:
        listed = {(r["name"], r["type"], r["data"]) for r in json.loads(out.stdout) if r["type"] != "SOA"}
    except ValueError:
        listed = set()
    served = {(n + ".ix.example." if n else "ix.example.", t, v) for n, t in
              (("archive", "A"), ("pacs.hospital-a", "A"), ("pacs.hospital-b", "A"), ("dicom", "CNAME"),
               ("", "TXT"), ("", "NS"), ("ns", "A"))
              for v in (kdig((n + "." if n else "") + "ix.example", t) or ["?"])
              if not (t == "A" and n == "dicom")}
    check(listed == served, "medixctl -o json dns records ix.example: what kdig gets from Knot", (listed, served))
    out = ctl("resolve", "hosp-b", "dicom.ix.example")
    check(out.returncode == 0 and "CNAME" in out.stdout and "100.100.1.10" in out.stdout,
          "medixctl dns resolve hosp-b dicom.ix.example: the CNAME and the archive's core address", out.stdout)
    for tenant, src in (("hosp-a", HOSP_A), ("hosp-b", HOSP_B)):
        out = ctl("resolve", tenant, "pacs.hospital-a.ix.example")
        want = kdig("pacs.hospital-a.ix.example", source=src)
        check(out.returncode == 0 and want and want[0] in out.stdout,
              "medixctl dns resolve %s pacs.hospital-a.ix.example: %s, as Knot answers %s" % (tenant, want, tenant),
              out.stdout + out.stderr)
    out = ctl("resolve", "nobody", "dicom.ix.example")
    check(out.returncode != 0 and "no tenant named 'nobody'" in out.stderr, "medixctl dns resolve: unknown tenant",
          out.stdout + out.stderr)

    # 2. The hospitals' resolver: unbound forwarding the IX's domain and the core's reverse zones,
    # validating the zone Knot signs with the IX's key (its KSK as unbound's trust anchor).
    ksk = [k for k in kdig("ix.example", "DNSKEY") or [] if k.startswith("257 ")]
    check(len(ksk) == 1, "Knot signs the zone medix-cp fills: one KSK", kdig("ix.example", "DNSKEY"))
    with open(os.path.join(tmp, "unbound.conf"), "w") as f:
        f.write(unbound_conf(tmp, "ix.example. DNSKEY " + (ksk[0] if ksk else "")))
    if check(d.start("unbound", ["unbound", "-d", "-c", os.path.join(tmp, "unbound.conf")], "start of service", 20),
             "unbound starts with docs/dns.md's forward-zone", d.log("unbound")[-600:]):
        ub = wait_until(lambda: kdig("archive.ix.example", server=UNBOUND), 5)
        check(ub == ["100.100.1.10"], "through unbound: archive.ix.example is the archive's core address", ub)
        out = subprocess.run(["kdig", "@" + UNBOUND, "+dnssec", "archive.ix.example"], capture_output=True, text=True,
                             timeout=10).stdout
        flags = next((l for l in out.splitlines() if l.startswith(";; Flags:")), "")
        check(" ad" in flags and "NOERROR" in out, "through unbound: the answer is validated (AD, the IX's key)",
              flags)
        ub = kdig("10.1.100.100.in-addr.arpa", "PTR", server=UNBOUND)
        check(ub == ["archive.ix.example."], "through unbound: the reverse lookup of the core address", ub)
        d.stop("unbound")
        # The same resolver trusting another key: validation fails, so AD above was earned.
        wrong = ksk[0][:-8] + ("AAAAAAA=" if not ksk[0].endswith("AAAAAAA=") else "BBBBBBB=")
        with open(os.path.join(tmp, "unbound.conf"), "w") as f:
            f.write(unbound_conf(tmp, "ix.example. DNSKEY " + wrong))
        if d.start("unbound-wrong-key", ["unbound", "-d", "-c", os.path.join(tmp, "unbound.conf")],
                   "start of service", 20):
            out = subprocess.run(["kdig", "@" + UNBOUND, "+timeout=5", "archive.ix.example"], capture_output=True,
                                 text=True, timeout=20).stdout
            check("SERVFAIL" in out, "through unbound trusting another key: SERVFAIL", out[-300:])
            d.stop("unbound-wrong-key")

    # 3. Moving the archive's mapping moves the answer; queries meanwhile see the old or the new one.
    before = serial()
    seen, stop = [], threading.Event()

    def hammer():
        while not stop.is_set():
            seen.append((time.time(), kdig("archive.ix.example")))
    t = threading.Thread(target=hammer)
    t.start()
    time.sleep(0.3)
    out = apply(prefix, tmp, "moved", intent(archive_core="100.100.3.0/24"))
    applied = time.time()
    check(out.returncode == 0, "medixctl intent apply: the archive's mapping moved to 100.100.3.0/24",
          out.stdout + out.stderr)
    moved = wait_until(lambda: kdig("archive.ix.example") == ["100.100.3.10"], 5)
    moved_at = time.time()
    time.sleep(0.3)
    stop.set()
    t.join()
    check(moved and moved_at - applied < 1.0, "the new answer within 1 s of the apply returning (%.3f s)"
          % (moved_at - applied), moved_at - applied)
    answers = {tuple(x) if x is not None else None for _, x in seen}
    check(answers <= {("100.100.1.10",), ("100.100.3.10",)} and len(seen) > 5,
          "%d queries during the change: only the old or the new answer, none failed" % len(seen), answers)
    old_after = [x for when, x in seen if when > moved_at + 0.05 and x != ["100.100.3.10"]]
    check(not old_after, "no old answer once the new one is served", old_after)
    check(kdig("10.3.100.100.in-addr.arpa", "PTR") == ["archive.ix.example."]
          and kdig("10.1.100.100.in-addr.arpa", "PTR") is not None
          and kdig("10.1.100.100.in-addr.arpa", "PTR") == [],
          "the reverse zone follows: PTR at the new core address, none at the old",
          (kdig("10.3.100.100.in-addr.arpa", "PTR"), kdig("10.1.100.100.in-addr.arpa", "PTR")))
    check(serial() != before, "the zone's serial went up with the change", (before, serial()))
    view = wait_until(lambda: kdig("archive.ix.example", source=ARCHIVE_MOVED) == ["192.168.1.10"], 3)
    check(view, "the archive's view follows its mapping: asked from its new core prefix, its tenant address",
          kdig("archive.ix.example", source=ARCHIVE_MOVED))

    # 4. Bad intents: refused whole, naming the field; nothing changes in Knot.
    good = intent(archive_core="100.100.3.0/24")
    now = serial()
    loop = copy.deepcopy(good)
    loop["dns"]["zones"][0]["records"] += [{"name": "a", "type": "CNAME", "target": "b"},
                                           {"name": "b", "type": "CNAME", "target": "a.ix.example."}]
    outside = copy.deepcopy(good)
    outside["dns"]["zones"].append({"name": "elsewhere.example", "records": []})
    nobody = copy.deepcopy(good)
    nobody["dns"]["zones"][0]["records"][0] = {"name": "archive", "address": "203.0.113.9"}
    unmapped = copy.deepcopy(good)
    unmapped["dns"]["zones"][0]["records"][1]["tenant_address"] = "10.0.5.10"
    bad_name = copy.deepcopy(good)
    bad_name["dns"]["zones"][0]["records"][0]["name"] = "arch_ive"
    service = copy.deepcopy(good)
    service["dns"]["service_address"] = "100.100.1.53"
    for name, doc, field in (("DNS service outside its tenant's core prefix", service, "dns.service_address:"),
                             ("CNAME loop", loop, "dns.zones[0].records[6].target: a CNAME loop"),
                             ("zone outside the IX's domains", outside, "dns.zones[1].name:"),
                             ("address nobody owns", nobody, "dns.zones[0].records[0].address: 203.0.113.9"),
                             ("host no mapping holds", unmapped, "dns.zones[0].records[1].tenant_address:"),
                             ("bad name", bad_name, "dns.zones[0].records[0].name:")):
        out = apply(prefix, tmp, "bad", doc)
        check(out.returncode != 0 and field in out.stderr + out.stdout,
              "refused whole: %s (%s...)" % (name, field), out.stdout + out.stderr)
    # The rest of the checks, by medix-cp --check (the same validation, no daemon needed).
    def variant(change):
        doc = copy.deepcopy(good)
        change(doc["dns"])
        return doc
    recs = lambda d: d["zones"][0]["records"]
    for name, doc, field in (
            ("CNAME beside an A", variant(lambda d: recs(d).append({"name": "archive", "type": "CNAME",
                                                                       "target": "x"})), "has a CNAME and other"),
            ("CNAME at the apex", variant(lambda d: recs(d).append({"name": "@", "type": "CNAME", "target": "x"})),
             "dns.zones[0].records[6].name: a CNAME cannot be at the zone's apex"),
            ("two zones of one name", variant(lambda d: d["zones"].append({"name": "IX.example."})),
             "dns.zones[1].name: another zone"),
            ("TXT with a quote", variant(lambda d: recs(d).append({"name": "t", "type": "TXT", "text": 'a"b'})),
             "dns.zones[0].records[6].text:"),
            ("type MX", variant(lambda d: recs(d).append({"name": "m", "type": "MX"})),
             "dns.zones[0].records[6].type: 'MX'"),
            ("unknown tenant", variant(lambda d: recs(d).append({"name": "h", "tenant": "nobody",
                                                                  "tenant_address": "10.0.0.1"})),
             "dns.zones[0].records[6].tenant: no tenant named 'nobody'"),
            ("the same record twice", variant(lambda d: recs(d).append(dict(recs(d)[5]))),
             "dns.zones[0].records[6].name: the same A record"),
            ("bad domain", variant(lambda d: d.update(domains=["-ix.example"])), "dns.domains[0]:")):
        path = os.path.join(tmp, "check.json")
        with open(path, "w") as f:
            json.dump(doc, f)
        out = subprocess.run([CP, "--check", "--intent", path], capture_output=True, text=True, timeout=30)
        check(out.returncode == 2 and field in out.stderr, "medix-cp --check refuses: %s (%s)" % (name, field),
              out.stdout + out.stderr)
    check(serial() == now and kdig("archive.ix.example") == ["100.100.3.10"] and kdig("a.ix.example") == [],
          "after the refusals the zone is unchanged (serial %s)" % now, (serial(), kdig("a.ix.example")))

    # A zone added (a catalog member: Knot makes it) and removed again (Knot drops it); a TTL changed.
    extra = copy.deepcopy(good)
    extra["dns"]["zones"].append({"name": "svc.ix.example", "ttl": 60,
                                  "records": [{"name": "wado", "tenant": "archive", "tenant_address": "192.168.1.11"}]})
    extra["dns"]["zones"][0]["records"][0]["ttl"] = 42
    out = apply(prefix, tmp, "extra", extra)
    full = subprocess.run(["kdig", "@" + KNOT, "archive.ix.example"], capture_output=True, text=True).stdout
    check(out.returncode == 0 and kdig("wado.svc.ix.example") == ["100.100.3.11"] and "\t42\tIN\tA" in full,
          "a zone added by an intent change is served at once; a record's TTL changed (42)",
          (out.stdout + out.stderr, kdig("wado.svc.ix.example"), full[-300:]))
    out = apply(prefix, tmp, "good", good)
    # Knot drops a member zone just after the catalog's commit: asked until it is gone.
    ask = lambda: subprocess.run(["kdig", "@" + KNOT, "wado.svc.ix.example"], capture_output=True, text=True).stdout
    gone = wait_until(lambda: "NXDOMAIN" in ask() and ask(), 3) or ask()
    check(out.returncode == 0 and "NXDOMAIN" in gone and "svc.ix.example" not in ctl().stdout,
          "the zone removed from the intent is gone from Knot (the name is NXDOMAIN in ix.example)", gone[-300:])

    # A transaction someone left open on the zone (knotc zone-begin) does not block medix-cp.
    subprocess.run(["knotc", "-s", os.path.join(tmp, "knot.sock"), "zone-begin", "ix.example"], capture_output=True)
    txt = copy.deepcopy(good)
    txt["dns"]["zones"][0]["records"][4]["text"] = "changed past an open transaction"
    out = apply(prefix, tmp, "txt", txt)
    check(out.returncode == 0 and kdig("ix.example", "TXT") == ['"changed past an open transaction"'],
          "a zone transaction left open is aborted and the change goes through", kdig("ix.example", "TXT"))
    good = txt

    # 5. knotd restarted, empty: medix-cp fills it again.
    d.stop("knot")
    check(d.start("knot", knotd, "control, binding to", 20), "knotd restarts (zones in memory only: empty)")
    t0 = time.time()
    back = wait_until(lambda: kdig("archive.ix.example") == ["100.100.3.10"]
                      and kdig("10.3.100.100.in-addr.arpa", "PTR") == ["archive.ix.example."], 10)
    check(back, "medix-cp restores the zones within %.1f s" % (time.time() - t0), d.log("cp")[-600:])

    # 6. medix-cp restarted: Knot already equals the intent, no transaction.
    time.sleep(0.6)
    now = serial()
    metrics = {}
    try:
        body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS, timeout=5).read().decode()
        metrics = {l.split()[0]: float(l.split()[1]) for l in body.splitlines() if l.startswith("medix_cp_dns_")}
    except OSError as e:
        metrics = {"error": str(e)}
    check(metrics.get("medix_cp_dns_in_sync") == 1 and metrics.get("medix_cp_dns_transactions_total", 0) >= 4,
          "medix-cp's metrics: in sync, %s transactions so far" % metrics.get("medix_cp_dns_transactions_total"),
          metrics)
    asked = metrics.get('medix_cp_dns_queries_total{tenant="hosp-a",answer="all"}', 0)
    check(asked >= 5 and metrics.get('medix_cp_dns_queries_total{tenant="hosp-b",answer="nxdomain"}', 0) >= 1,
          "medix-cp's metrics: medix_cp_dns_queries_total by tenant (hosp-a: %d)" % asked,
          {k: v for k, v in metrics.items() if "queries" in k})
    d.stop("cp")
    check(d.start("cp", cp, "medix-cp: ready", 30), "medix-cp restarts", d.log("cp")[-600:])
    time.sleep(1.2)  # two background passes
    check(serial() == now and kdig("archive.ix.example") == ["100.100.3.10"],
          "after medix-cp's restart the zone is unchanged (serial %s)" % now, (now, serial()))
    body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS, timeout=5).read().decode()
    check("medix_cp_dns_transactions_total 0" in body and "medix_cp_dns_in_sync 1" in body,
          "the restarted medix-cp committed no transaction and is in sync",
          [l for l in body.splitlines() if l.startswith("medix_cp_dns")])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    # A network namespace of our own: knotd and unbound on its loopback, charon's sockets in it.
    if os.environ.get("MEDIX_DNS_NETNS") != "1":
        os.environ["MEDIX_DNS_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                              sys.executable] + sys.argv)
    for tool in ("knotd", "kdig", "unbound"):
        if not check(shutil.which(tool) is not None, tool + " is installed (scripts/setup)"):
            print(checks.summary("dns"))
            return 1
    tmp = tempfile.mkdtemp(prefix="medix-dns.")
    prefix = "medix-dns-%d" % os.getpid()
    d = Daemons(tmp)
    try:
        run(tmp, d, prefix)
    except Exception as e:  # noqa: BLE001
        check(False, "the test ran to its end", "%s: %s" % (type(e).__name__, e))
    for name in ("unbound", "unbound-wrong-key", "cp", "dp", "knot"):
        d.stop(name)
    shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)
    return checks.finish("dns", tmp, args.keep)


if __name__ == "__main__":
    sys.exit(main())
