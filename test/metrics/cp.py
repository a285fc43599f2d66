#!/usr/bin/python3
"""Prometheus scrapes medix-cp and medix-dp together: one real Prometheus server (Debian's
`prometheus`), its config with a job for each daemon's --metrics-listen, and its HTTP API
(/api/v1/query) must show both targets up and medix-cp's state as the test made it:
  - medix-cp started with an intent of one peer (`gw`, not initiated: configured, down) and then
    given a new intent through `medixctl intent apply` (a tenant added): reconcile runs at the
    start and on the apply, none failed; medix-dp connected; the intent's objects by kind;
  - medix_cp_peers{state="configured"} 1, {state="up"} 0, medix_cp_peer_up{peer="gw"} 0;
  - medix_cp_build_info's version is `medix-cp --version`'s, medix_build_info's medix-dp's;
  - the peer's PSK appears nowhere in the exposition; anything but GET /metrics is 404;
  - medix-dp restarted: medix_cp_dataplane_connected goes 0, then 1 with a replay run.
Everything runs in a network namespace of its own (charon's IKE sockets stay out of the host's).

    /usr/bin/python3 test/metrics/cp.py [--keep]     (MEDIX_DP, MEDIX_CP: other binaries)

Prints PASS/FAIL lines and, last, `metrics-cp: N passed, M failed`.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from run import ROOT, MEDIXCTL, check, free_port, http_get, query, terminate  # noqa: E402
sys.path.insert(0, os.path.join(ROOT, "test", "lib"))
import checks  # noqa: E402
import keygrep  # noqa: E402
OUTPUTS = keygrep.Outputs()  # what this suite and the programs it runs print: searched for the PSK

DP = os.environ.get("MEDIX_DP", os.path.join(ROOT, "build/dataplane/medix-dp"))
CP = os.environ.get("MEDIX_CP", os.path.join(ROOT, "build/controlplane/medix-cp"))
PSK = "metrics-psk-%d-never-shown" % os.getpid()


def intent(extra_tenant):
    tenants = [{"name": "carrier"}, {"name": "hosp"}] + ([{"name": "added"}] if extra_tenant else [])
    return {"schema_version": 1, "tenants": tenants,
            "interfaces": [{"name": "carrier", "tenant": "carrier", "port": "p0", "addresses": ["192.0.2.1/24"]}],
            "peers": [{"name": "gw", "tenant": "hosp", "underlay_tenant": "carrier", "tunnel": "t-gw",
                       "local_address": "192.0.2.1", "remote_address": "192.0.2.2", "psk": PSK,
                       "ike_proposals": ["aes128gcm16-prfsha256-x25519"], "esp_proposals": ["aes128gcm16"],
                       "local_selectors": ["100.100.1.0/24"], "remote_selectors": ["10.0.1.0/24"]}]}


def wait_for(path, text, proc, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if text in open(path).read():
            return True
        time.sleep(0.1)
    return text in open(path).read()


def value(prom, expr):
    r = query(prom, expr)
    return float(r[0]["value"][1]) if r else None


def scrape(port):
    """medix-cp's exposition as {series: value}, from GET /metrics."""
    status, body = http_get("http://127.0.0.1:%d/metrics" % port)
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
            if line and not line.startswith("#")} if status == 200 else {}


class Daemons:
    def __init__(self, tmp, prefix):
        self.tmp, self.prefix, self.procs = tmp, prefix, {}

    def start(self, name, argv):
        log = open(os.path.join(self.tmp, name + ".log"), "a")
        self.procs[name] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        return self.procs[name]

    def stop(self, name):
        p = self.procs.pop(name, None)
        return terminate(p) if p else None


def start_dp(d, mport):
    log = os.path.join(d.tmp, "dp.log")
    open(log, "w").close()
    p = d.start("dp", [DP, "--no-huge", "-m", "512", "--no-pci", "--file-prefix", d.prefix, "-l", "0,1",
                       "--log-level=error", "--vdev", "net_null0", "--", "--config",
                       os.path.join(d.tmp, "dp.json"), "--metrics-listen", "127.0.0.1:%d" % mport])
    return wait_for(log, "medix-dp: ready", p, 20)


def run(args, tmp, d, prometheus):
    with open(os.path.join(tmp, "dp.json"), "w") as f:
        json.dump({"schema_version": 1, "ports": [{"name": "p0", "device": "net_null0"}]}, f)
    with open(os.path.join(tmp, "intent.json"), "w") as f:
        json.dump(intent(False), f)
    with open(os.path.join(tmp, "next.json"), "w") as f:
        json.dump(intent(True), f)
    with open(os.path.join(tmp, "strongswan.conf"), "w") as f:
        f.write("medix-cp {\n  port = 0\n  port_nat_t = 0\n}\n")
    dport, cport, pport = free_port(), free_port(), free_port()
    if not check(start_dp(d, dport), "medix-dp starts with --metrics-listen",
                 open(os.path.join(tmp, "dp.log")).read()[-800:]):
        return
    cp_log = os.path.join(tmp, "cp.log")
    open(cp_log, "w").close()
    cp = d.start("cp", [CP, "--intent", os.path.join(tmp, "intent.json"), "-p", d.prefix, "--strongswan-conf",
                        os.path.join(tmp, "strongswan.conf"), "--log-level", "0",
                        "--metrics-listen", "127.0.0.1:%d" % cport])
    if not check(wait_for(cp_log, "medix-cp: ready", cp, 30), "medix-cp starts with --metrics-listen",
                 open(cp_log).read()[-800:]):
        return
    out = subprocess.run([MEDIXCTL, "-p", d.prefix, "intent", "apply", os.path.join(tmp, "next.json")],
                         capture_output=True, text=True, timeout=30)
    check(out.returncode == 0, "medixctl intent apply: a tenant added", out.stdout + out.stderr)

    status, body = http_get("http://127.0.0.1:%d/metrics" % cport)
    check(status == 200 and "# TYPE medix_cp_reconcile_runs_total counter" in body
          and "# HELP medix_cp_peer_up " in body, "medix-cp GET /metrics: 200 with HELP and TYPE lines", status)
    check(PSK not in body, "medix-cp's exposition holds no PSK")
    OUTPUTS.add("medix-cp's GET /metrics", body)
    status, text = http_get("http://127.0.0.1:%d/" % cport)
    check(status == 404 and "medix-cp" in text, "medix-cp: anything but GET /metrics is 404", (status, text))

    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
                "  - job_name: medix-dp\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n"
                "  - job_name: medix-cp\n    static_configs:\n      - targets: ['127.0.0.1:%d']\n" % (dport, cport))
    d.start("prometheus", [prometheus, "--config.file=%s/prometheus.yml" % tmp, "--storage.tsdb.path=%s/data" % tmp,
                           "--web.listen-address=127.0.0.1:%d" % pport])
    prom = "127.0.0.1:%d" % pport
    deadline = time.time() + 20
    both = None
    while time.time() < deadline:
        try:
            both = query(prom, 'medix_cp_build_info or medix_build_info')
        except (OSError, ValueError):
            both = None
        if both and len(both) == 2:
            break
        time.sleep(0.5)
    if not check(both and len(both) == 2, "Prometheus scraped both daemons (medix_build_info, medix_cp_build_info)",
                 open(os.path.join(tmp, "prometheus.log")).read()[-800:]):
        return
    for job in ("medix-dp", "medix-cp"):
        check(value(prom, 'up{job="%s"}' % job) == 1, "up{job=\"%s\"} is 1" % job)
    _, targets = http_get("http://%s/api/v1/targets" % prom)
    active = json.loads(targets)["data"]["activeTargets"]
    check(len(active) == 2 and all(t["health"] == "up" and not t["lastError"] for t in active),
          "both targets healthy: both expositions parse", [(t["labels"]["job"], t["lastError"]) for t in active])

    version = subprocess.run([CP, "--version"], capture_output=True, text=True).stdout
    r = query(prom, "medix_cp_build_info")
    label = r[0]["metric"].get("version", "") if r else ""
    check(label and label in version and r[0]["metric"].get("strongswan", "") in version,
          "medix_cp_build_info{version,strongswan} as medix-cp --version says", (label, version))
    version = subprocess.run([DP, "--version"], capture_output=True, text=True).stdout
    r = query(prom, "medix_build_info")
    label = r[0]["metric"].get("version", "") if r else ""
    check(label and label in version, "medix_build_info{version} as medix-dp --version says", (label, version))

    check(value(prom, "medix_cp_dataplane_connected") == 1, "Prometheus: medix_cp_dataplane_connected 1")
    check(value(prom, 'medix_cp_peers{state="configured"}') == 1, "Prometheus: medix_cp_peers{state=configured} 1")
    check(value(prom, 'medix_cp_peers{state="up"}') == 0, "Prometheus: medix_cp_peers{state=up} 0 (not initiated)")
    check(value(prom, 'medix_cp_peer_up{peer="gw"}') == 0, "Prometheus: medix_cp_peer_up{peer=gw} 0")
    check(value(prom, 'medix_cp_reconcile_runs_total{trigger="start"}') == 1,
          "Prometheus: medix_cp_reconcile_runs_total{trigger=start} 1")
    check(value(prom, 'medix_cp_reconcile_runs_total{trigger="apply"}') == 1,
          "Prometheus: medix_cp_reconcile_runs_total{trigger=apply} 1 (the intent apply)")
    check(value(prom, 'sum(medix_cp_reconcile_failures_total)') == 0, "Prometheus: no reconcile failed")
    ts = value(prom, 'medix_cp_reconcile_last_success_timestamp_seconds{trigger="apply"}')
    check(ts and time.time() - 60 < ts <= time.time(), "Prometheus: the apply's last success is a recent time", ts)
    secs = value(prom, 'medix_cp_reconcile_seconds{trigger="apply"}')
    check(secs is not None and 0 < secs < 10, "Prometheus: medix_cp_reconcile_seconds{trigger=apply} in (0, 10)", secs)
    check(value(prom, 'medix_cp_intent_objects{kind="tenant"}') == 3,
          "Prometheus: medix_cp_intent_objects{kind=tenant} 3 after the apply")
    # carrier, hosp, added, the interface and the peer's tunnel
    check(value(prom, "medix_cp_dataplane_owned_objects") == 5, "Prometheus: medix_cp_dataplane_owned_objects 5")
    r = query(prom, "medix_cp_ike_events_total")
    check(r and len(r) == 7 and all(float(x["value"][1]) == 0 for x in r),
          "Prometheus: medix_cp_ike_events_total, 7 events, all 0 (no IKE yet)", r)

    # medix-dp restarted: medix-cp sees the channel go, then replays into the new one.
    d.stop("dp")
    deadline = time.time() + 10
    while time.time() < deadline and scrape(cport).get("medix_cp_dataplane_connected") != 0:
        time.sleep(0.2)
    check(scrape(cport).get("medix_cp_dataplane_connected") == 0, "medix-dp stopped: medix_cp_dataplane_connected 0")
    if not check(start_dp(d, dport), "medix-dp starts again", open(os.path.join(tmp, "dp.log")).read()[-800:]):
        return
    key = 'medix_cp_reconcile_runs_total{trigger="replay"}'
    deadline = time.time() + 15
    while time.time() < deadline:
        m = scrape(cport)
        if m.get("medix_cp_dataplane_connected") == 1 and m.get(key, 0) >= 1 and \
                m.get('medix_cp_reconcile_last_success_timestamp_seconds{trigger="replay"}', 0) > 0:
            break
        time.sleep(0.2)
    check(m.get("medix_cp_dataplane_connected") == 1 and
          m.get('medix_cp_reconcile_last_success_timestamp_seconds{trigger="replay"}', 0) > 0,
          "medix-dp back: connected 1, a replay run succeeded", {k: v for k, v in m.items() if "reconcile" in k})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    # A network namespace of our own, its loopback up: Prometheus, both daemons and charon in it.
    if os.environ.get("MEDIX_METRICS_NETNS") != "1":
        os.environ["MEDIX_METRICS_NETNS"] = "1"
        os.execvp("unshare", ["unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
                              sys.executable] + sys.argv)
    prometheus = shutil.which("prometheus")
    for path, what in ((prometheus, "prometheus is installed (scripts/setup installs Debian's package)"),
                       (DP if os.access(DP, os.X_OK) else None, "medix-dp is built"),
                       (CP if os.access(CP, os.X_OK) else None, "medix-cp is built")):
        if not check(bool(path), what):
            return finish(None, None, args)
    OUTPUTS.start()
    problems = keygrep.self_test()  # the last check would find a leak
    check(not problems, "the key check finds a planted key in every form", "; ".join(problems))
    tmp = tempfile.mkdtemp(prefix="medix-metrics-cp.")
    d = Daemons(tmp, "medix-metrics-cp-%d" % os.getpid())
    try:
        run(args, tmp, d, prometheus)
    except Exception as e:  # noqa: BLE001
        check(False, "the test ran to its end", "%s: %s" % (type(e).__name__, e))
    return finish(tmp, d, args)


def finish(tmp, d, args):
    if d:
        d.stop("prometheus")
        check(d.stop("cp") in (0, None), "medix-cp exits 0 on SIGTERM")
        d.stop("dp")
        # The daemons' and Prometheus's logs, medixctl's output, medix-cp's exposition, this
        # suite's output: no byte of the PSK in any form (the intents hold it by right; the
        # TSDB is Prometheus's binary store).
        secrets = keygrep.Secrets()
        secrets.add("the peer's PSK", PSK)
        secrets.add_config(os.path.join(tmp, "intent.json"))
        secrets.add_config(os.path.join(tmp, "next.json"))
        ok, what, details = secrets.check([tmp], OUTPUTS.texts(), skip=("data/*",))
        check(ok, "no key or PSK in any log or error of this suite (%s)" % what, details)
        shutil.rmtree("/var/run/dpdk/" + d.prefix, ignore_errors=True)
    return checks.finish("metrics-cp", tmp, args.keep)


if __name__ == "__main__":
    sys.exit(main())
