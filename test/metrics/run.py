#!/usr/bin/python3
"""Prometheus scrapes medix-dp: a real Prometheus server (Debian's `prometheus`) started here
with a generated config (scrape_interval 1s, storage in a temp dir, its web API on 127.0.0.1)
scrapes `medix-dp --metrics-listen`, and its HTTP API (/api/v1/query) must give each
interface's and tenant's rx packets as `medixctl counters` reports them after known frames
(a pcap of 37 frames to tenant a's interface, 23 to tenant b's and 11 to c's) went through
net_pcap, and a policer's counters (a kind's counters, Kind::counters) as medixctl's.
Also: the target is up with no scrape error (the exposition parses), HELP/TYPE lines, drops by
reason summing to medixctl's, the NIC's ipackets, worker busy ratio in 0..1, the HA role of a
single node (active, no failover), and 404 for anything but GET /metrics.

    /usr/bin/python3 test/metrics/run.py [--binary PATH] [--keep]

Prints PASS/FAIL lines and, last, `metrics: N passed, M failed`.
"""
import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MEDIXCTL = os.path.join(ROOT, "build/controlplane/cli/medixctl")
FRAMES = {("a-lan", "a", 10): 37, ("b-lan", "b", 20): 23, ("c-lan", "c", 30): 11}
C_MAC = "02:00:00:00:00:0c"  # c-lan's: its frames reach the policer, the others are not for us

sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
import checks  # noqa: E402
from checks import check  # noqa: E402


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    """(status, body)"""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def write_pcap(path):
    from scapy.all import Ether, Dot1Q, IP, UDP, wrpcap  # noqa: E402
    frames = []
    for (_, _, vlan), n in FRAMES.items():
        for i in range(n):
            dst = C_MAC if vlan == 30 else "02:00:00:00:00:99"
            frames.append(Ether(src="02:00:00:00:01:01", dst=dst) / Dot1Q(vlan=vlan) /
                          IP(src="10.0.0.5", dst="10.9.9.%d" % (i + 1)) / UDP(sport=4000, dport=5000) / (b"x" * 20))
    wrpcap(path, frames)


def medixctl(prefix, *args):
    out = subprocess.run([MEDIXCTL, "-p", prefix, "-o", "json"] + list(args), capture_output=True, text=True,
                         timeout=20)
    if out.returncode != 0:
        raise RuntimeError("medixctl %s: %s" % (" ".join(args), out.stderr))
    return json.loads(out.stdout)


def query(prom, expr):
    status, body = http_get("http://%s/api/v1/query?%s" % (prom, urllib.parse.urlencode({"query": expr})))
    if status != 200:
        return None
    return json.loads(body)["data"]["result"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", default=os.path.join(ROOT, "build/dataplane/medix-dp"))
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    prometheus = shutil.which("prometheus")
    if not prometheus:
        check(False, "prometheus is installed (scripts/setup installs Debian's package)")
        return finish(None, [], args)
    tmp = tempfile.mkdtemp(prefix="medix-metrics.")
    procs = []
    try:
        run(args, tmp, procs, prometheus)
    except Exception as e:  # noqa: BLE001
        check(False, "the test ran to its end", "%s: %s" % (type(e).__name__, e))
    return finish(tmp, procs, args)


def run(args, tmp, procs, prometheus):
    write_pcap(os.path.join(tmp, "in.pcap"))
    config = {
        "schema_version": 1,
        "ports": [{"name": "p0", "device": "net_pcap0"}],
        "tenants": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
        "interfaces": [
            {"name": "a-lan", "tenant": "a", "port": "p0", "vlan": 10, "addresses": ["10.0.0.1/24"]},
            {"name": "b-lan", "tenant": "b", "port": "p0", "vlan": 20, "addresses": ["10.0.0.1/24"]},
            {"name": "c-lan", "tenant": "c", "port": "p0", "vlan": 30, "addresses": ["10.0.0.1/24"], "mac": C_MAC},
        ],
        # A kind's counters (Kind::counters): every frame of c's is green at this rate.
        "policers": [{"name": "c-in", "tenant": "c", "mode": "POLICER_SRTCM", "cir": 125000000, "cbs": 100000,
                      "ebs": 100000}],
    }
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(config, f)
    prefix = "medix-metrics-%d" % os.getpid()
    mport = free_port()
    dp_log = open(os.path.join(tmp, "dp.log"), "w")
    dp = subprocess.Popen([args.binary, "--no-huge", "-m", "512", "--no-pci", "--file-prefix", prefix, "-l", "0,1",
                           "--log-level=error", "--vdev",
                           "net_pcap0,rx_pcap=%s/in.pcap,tx_pcap=%s/out.pcap" % (tmp, tmp), "--",
                           "--config", os.path.join(tmp, "config.json"), "--metrics-listen", "127.0.0.1:%d" % mport],
                          stdout=dp_log, stderr=subprocess.STDOUT)
    procs.append(dp)
    deadline = time.time() + 20
    while time.time() < deadline and dp.poll() is None:
        if "medix-dp: ready" in open(os.path.join(tmp, "dp.log")).read():
            break
        time.sleep(0.1)
    if not check("medix-dp: ready" in open(os.path.join(tmp, "dp.log")).read(),
                 "medix-dp starts with --metrics-listen", open(os.path.join(tmp, "dp.log")).read()[-800:]):
        return

    # Every frame of the pcap received: what medixctl reports is final.
    want = {name: n for (name, _, _), n in FRAMES.items()}
    deadline = time.time() + 10
    while True:
        c = medixctl(prefix, "counters")
        got = {i["name"]: int(i["rx_packets"]) for i in c["interfaces"]}
        if all(got.get(k) == v for k, v in want.items()) or time.time() > deadline:
            break
        time.sleep(0.2)
    check(all(got.get(k) == v for k, v in want.items()), "medixctl counters: the pcap's frames reached a-lan, b-lan and c-lan",
          got)

    status, body = http_get("http://127.0.0.1:%d/metrics" % mport)
    check(status == 200 and "# TYPE medix_interface_rx_packets_total counter" in body
          and "# HELP medix_interface_rx_packets_total " in body,
          "GET /metrics: 200 with HELP and TYPE lines", status)
    status, _ = http_get("http://127.0.0.1:%d/" % mport)
    status2, _ = http_get("http://127.0.0.1:%d/metricsx" % mport)
    check(status == 404 and status2 == 404, "anything but GET /metrics: 404", (status, status2))

    pport = free_port()
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                "scrape_configs:\n  - job_name: medix-dp\n    static_configs:\n"
                "      - targets: ['127.0.0.1:%d']\n" % mport)
    prom_log = open(os.path.join(tmp, "prometheus.log"), "w")
    prom = subprocess.Popen([prometheus, "--config.file=%s/prometheus.yml" % tmp,
                             "--storage.tsdb.path=%s/data" % tmp, "--web.listen-address=127.0.0.1:%d" % pport],
                            stdout=prom_log, stderr=subprocess.STDOUT)
    procs.append(prom)
    target = "127.0.0.1:%d" % pport

    # The first scrapes: wait until the series are in.
    deadline = time.time() + 20
    result = None
    while time.time() < deadline and prom.poll() is None:
        try:
            result = query(target, 'medix_interface_rx_packets_total{interface="a-lan",tenant="a"}')
        except (OSError, ValueError):
            result = None
        if result:
            break
        time.sleep(0.5)
    if not check(bool(result), "Prometheus scraped medix-dp (a-lan's series is queryable)",
                 open(os.path.join(tmp, "prometheus.log")).read()[-800:]):
        return
    up = query(target, 'up{job="medix-dp"}')
    check(up and up[0]["value"][1] == "1", "up{job=\"medix-dp\"} is 1", up)
    _, targets = http_get("http://%s/api/v1/targets" % target)
    active = json.loads(targets)["data"]["activeTargets"]
    check(active and active[0]["health"] == "up" and not active[0]["lastError"],
          "the target is healthy: the exposition parses", active and active[0].get("lastError"))

    c = medixctl(prefix, "counters")
    for (name, tenant, _), n in FRAMES.items():
        ctl = next(int(i["rx_packets"]) for i in c["interfaces"] if i["name"] == name)
        r = query(target, 'medix_interface_rx_packets_total{interface="%s",tenant="%s"}' % (name, tenant))
        value = int(float(r[0]["value"][1])) if r else None
        check(value == ctl == n, "Prometheus: medix_interface_rx_packets_total{interface=%s,tenant=%s} = %d as "
              "medixctl counters says" % (name, tenant, n), "prometheus %s, medixctl %s" % (value, ctl))
        ctl_t = next(int(t["rx_packets"]) for t in c["tenants"] if t["name"] == tenant)
        r = query(target, 'medix_tenant_rx_packets_total{tenant="%s"}' % tenant)
        value = int(float(r[0]["value"][1])) if r else None
        check(value == ctl_t == n, "Prometheus: medix_tenant_rx_packets_total{tenant=%s} = medixctl's" % tenant,
              "prometheus %s, medixctl %s" % (value, ctl_t))
    r = query(target, 'sum(medix_drops_total)')
    drops = sum(int(d["packets"]) for d in c["drops"])
    check(r and int(float(r[0]["value"][1])) == drops and drops > 0,
          "Prometheus: sum(medix_drops_total) over reasons = medixctl's drops (%d)" % drops, r)
    r = query(target, 'count(medix_drops_total)')
    check(r and int(r[0]["value"][1]) == len(c["drops"]), "medix_drops_total: a series per reason", r)
    r = query(target, 'medix_port_nic_rx_packets_total{port="p0"}')
    check(r and int(float(r[0]["value"][1])) == sum(FRAMES.values()),
          "Prometheus: medix_port_nic_rx_packets_total{port=p0} = the pcap's %d frames" % sum(FRAMES.values()), r)
    ctl = next(p for p in c["policers"] if p["name"] == "c-in")
    want = FRAMES[("c-lan", "c", 30)]
    for field in ("green_packets", "green_bytes", "dropped"):
        r = query(target, 'medix_policer_%s_total{policer="c-in"}' % field)
        value = int(float(r[0]["value"][1])) if r else None
        check(value == int(ctl.get(field, 0)), "Prometheus: medix_policer_%s_total{policer=c-in} = medixctl's" % field,
              "prometheus %s, medixctl %s" % (value, ctl.get(field)))
    check(int(ctl.get("green_packets", 0)) == want and int(ctl.get("green_bytes", 0)) == want * 48
          and int(ctl.get("dropped", 0)) == 0,
          "the policer coloured c's %d frames (48 bytes of IP each) green, dropped none" % want, ctl)
    r = query(target, 'medix_worker_busy_ratio')
    check(r and all(0 <= float(x["value"][1]) <= 1 for x in r) and r[0]["metric"].get("lcore") == "1",
          "Prometheus: medix_worker_busy_ratio{lcore=1} in 0..1", r)
    r = query(target, 'medix_stage_packets_total{stage="l2_input"}')
    check(r and int(float(r[0]["value"][1])) == sum(FRAMES.values()),
          "Prometheus: medix_stage_packets_total{stage=l2_input} counts every frame", r)
    r = query(target, 'medix_ha_role')
    roles = {x["metric"].get("role"): int(x["value"][1]) for x in r or []}
    check(roles == {"active": 1, "standby": 0}, "Prometheus: medix_ha_role: a single node is active", r)
    r = query(target, 'medix_ha_failovers_total')
    check(r and int(r[0]["value"][1]) == 0, "Prometheus: medix_ha_failovers_total 0", r)


def terminate(p, seconds=10):
    """SIGTERM, then SIGKILL after `seconds`; the exit status."""
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(seconds)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def finish(tmp, procs, args):
    for p in reversed(procs):
        terminate(p)
    if procs:
        check(procs[0].returncode == 0, "medix-dp exits 0 on SIGTERM", procs[0].returncode)
    return checks.finish("metrics", tmp, args.keep)


if __name__ == "__main__":
    sys.exit(main())
