#!/usr/bin/env bash
# Names through the IX core (issue 17, docs/dns.md): two hospitals with the same plan ask the IX's
# Knot DNS through medix-dp, translated, and each gets the right answer for itself.
#
#   hosp-a-lan 10.0.0.5 ── p0 ─┐  medix-dp, brought to the intent by medix-cp   ┌─ p2 ── 192.168.9.53
#   hosp-b-lan 10.0.0.5 ── p1 ─┘  core "ix": 100.64.1.0/24 hosp-a, 100.64.2.0/24 └─ knotd ("dns" tenant,
#                                 hosp-b, 100.100.9.0/24 dns                       100.100.9.53 in the core)
#
# medix-dp's config holds only its ports; everything else is medix-cp's intent: tenants,
# interfaces, leaks, static mappings, and dns (zone ix.example, the service's tenant and address:
# medix-cp makes the policy rules for port 53). Checks, with kdig on each hospital's host:
#   - hosp-a asking pacs.hospital-a.ix.example gets 10.0.0.10 (its own host: the view of its core
#     prefix), hosp-b gets 100.64.1.10 (A's core address); the same the other way round;
#   - the reverse lookup of a core address gives the name; TCP as well as UDP;
#   - each hospital host, with its own unbound forwarding the IX's domain (docs/dns.md), resolves
#     archive.ix.example to the archive's core address and stores a DICOM study on it by name
#     (dcmtk storescu to the name, storescp on the archive); its own PACS name to 10.0.0.10;
#   - the queries crossed the core by medix-cp's dns-udp and dns-tcp rules (their counters).
# The views answer by the query's source, so the right answers also show that knotd saw each
# hospital's queries from its own core prefix.
#
# Usage: test/dns/netns.sh (root; binaries from build/). Prints PASS/FAIL and "dns-netns: N passed, M failed".
set -uo pipefail
# shellcheck source=test/netns/lib.sh
source "$(dirname "$0")/../netns/lib.sh"

CTL=${MEDIXCTL:-$MX_REPO/build/controlplane/cli/medixctl}
CP=${MEDIX_CP:-$MX_REPO/build/controlplane/medix-cp}
CP_PID= KNOT_PID= SCP_PID=
UNBOUND_PIDS=()
finish() {
  local p
  for p in "${UNBOUND_PIDS[@]}" $SCP_PID; do kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done
  for h in hosp-a-lan hosp-b-lan; do rm -rf "/etc/netns/mx-$MX_ID-$h"; done
  [ -n "$CP_PID" ] && kill "$CP_PID" 2>/dev/null && wait "$CP_PID" 2>/dev/null
  [ -n "$KNOT_PID" ] && kill "$KNOT_PID" 2>/dev/null && wait "$KNOT_PID" 2>/dev/null
  if [ "$failed" -gt 0 ]; then
    for f in medix-cp.log knotd.log; do echo "--- $f"; tail -n 15 "$MX_TMP/$f" | sed 's/^/  | /'; done
    MX_KEEP_TMP=1
  fi
  echo "dns-netns: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
  exit
}

mx_init
# The hosts' resolv.conf files (below) go with the namespaces, however this script ends.
trap 'rm -rf /etc/netns/mx-$MX_ID-*; mx_cleanup' EXIT
mx_need_binary
for tool in knotd kdig "$CP" "$CTL"; do command -v "$tool" >/dev/null || mx_die "$tool not found (scripts/setup, scripts/build)"; done

mx_attach hosp-a-lan hosp-a 10.0.0.5/24 10.0.0.1/24
mx_attach hosp-b-lan hosp-b 10.0.0.5/24 10.0.0.1/24
mx_attach dns-lan dns 192.168.9.53/24 192.168.9.1/24
mx_attach archive-lan archive 192.168.1.10/24 192.168.1.1/24
mx_write_config "$MX_TMP/all.json"
"$MX_PY" - "$MX_TMP" <<'PY' || mx_die "could not write the configs"
import json, sys
tmp = sys.argv[1]
c = json.load(open(tmp + "/all.json"))
json.dump({"schema_version": 1, "ports": c["ports"]}, open(tmp + "/dp.json", "w"), indent=1)
leak = lambda t, p, n: {"tenant": t, "prefix": p, "next_tenant": n}
intent = {
    "schema_version": 1,
    "tenants": c["tenants"] + [{"name": "ix", "core": True}],
    "interfaces": c["interfaces"],
    "routes": [leak(t, "100.64.0.0/10", "ix") for t in ("hosp-a", "hosp-b", "dns", "archive")]
    + [leak("ix", "100.64.1.0/24", "hosp-a"), leak("ix", "100.64.2.0/24", "hosp-b"),
       leak("ix", "100.100.9.0/24", "dns"), leak("ix", "100.100.1.0/24", "archive")],
    "policy_rules": [{"name": h + "-pacs", "priority": 10, "from_tenant": h, "to_tenant": "archive", "protocol": 6,
                      "port_low": 11112, "port_high": 11112, "permit": True} for h in ("hosp-a", "hosp-b")],
    "static_mappings": [
        {"tenant": "hosp-a", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"},
        {"tenant": "hosp-b", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.2.0/24"},
        {"tenant": "dns", "tenant_prefix": "192.168.9.0/24", "core_prefix": "100.100.9.0/24"},
        {"tenant": "archive", "tenant_prefix": "192.168.1.0/24", "core_prefix": "100.100.1.0/24"}],
    "dns": {"domains": ["ix.example"], "service_tenant": "dns", "service_address": "100.100.9.53",
            "zones": [{"name": "ix.example", "records": [
                {"name": "pacs.hospital-a", "tenant": "hosp-a", "tenant_address": "10.0.0.10"},
                {"name": "pacs.hospital-b", "tenant": "hosp-b", "tenant_address": "10.0.0.10"},
                {"name": "ns", "tenant": "dns", "tenant_address": "192.168.9.53"},
                {"name": "archive", "tenant": "archive", "tenant_address": "192.168.1.10"}]}]},
}
json.dump(intent, open(tmp + "/intent.json", "w"), indent=1)
member = "    zonefile-sync: -1\n    zonefile-load: none\n    journal-content: none\n"
open(tmp + "/knot.conf", "w").write(
    f"server:\n    rundir: {tmp}\n    listen: 192.168.9.53@53\n    udp-workers: 1\n    tcp-workers: 1\n"
    f"    background-workers: 1\ndatabase:\n    storage: {tmp}/db\n"
    f"mod-geoip:\n  - id: medix\n    config-file: {tmp}/views.geoip\n    mode: subnet\n"
    f"template:\n  - id: default\n{member}  - id: medix\n{member}    module: mod-geoip/medix\n"
    f"zone:\n  - domain: catalog.medix\n    catalog-role: interpret\n    catalog-template: medix\n"
    f"control:\n    listen: {tmp}/knot.sock\nlog:\n  - target: stderr\n    any: info\n")
# Each hospital's own resolver: unbound on its host's loopback, forwarding the IX's domain and the
# core's reverse zones to the IX's DNS service (docs/dns.md's example; the zone is not signed here).
open(tmp + "/unbound.conf", "w").write(
    "server:\n    interface: 127.0.0.1\n    do-daemonize: no\n    use-syslog: no\n    username: \"\"\n"
    "    chroot: \"\"\n    pidfile: \"\"\n    module-config: \"iterator\"\n    unblock-lan-zones: yes\n"
    "    insecure-lan-zones: yes\n    verbosity: 1\n"
    "remote-control:\n    control-enable: no\n"
    "forward-zone:\n    name: \"ix.example.\"\n    forward-addr: 100.100.9.53\n"
    "forward-zone:\n    name: \"100.in-addr.arpa.\"\n    forward-addr: 100.100.9.53\n")
open(tmp + "/strongswan.conf", "w").write("medix-cp {\n  port = 0\n  port_nat_t = 0\n}\n")
PY
mkdir -p "$MX_TMP/db"
: >"$MX_TMP/views.geoip"

mx_start_dp "$MX_TMP/dp.json" || { fail "medix-dp starts"; finish; }
mx_in dns-lan knotd -c "$MX_TMP/knot.conf" >"$MX_TMP/knotd.log" 2>&1 &
KNOT_PID=$!
for _ in $(seq 100); do grep -q "control, binding" "$MX_TMP/knotd.log" && break; sleep 0.1; done
# medix-cp in the DNS tenant's namespace too: charon's sockets stay out of the host's.
mx_in dns-lan "$CP" --intent "$MX_TMP/intent.json" -p "$MX_PREFIX" --strongswan-conf "$MX_TMP/strongswan.conf" \
  --log-level 0 --knot "$MX_TMP/knot.sock" --knot-geoip "$MX_TMP/views.geoip" >"$MX_TMP/medix-cp.log" 2>&1 &
CP_PID=$!
for _ in $(seq 300); do grep -q "medix-cp: ready" "$MX_TMP/medix-cp.log" && break; sleep 0.1; done
if grep -q "medix-cp: ready" "$MX_TMP/medix-cp.log"; then pass "medix-cp brings medix-dp and knotd to the intent"
else fail "medix-cp starts"; finish; fi

ask() { # HOST NAME [TYPE] [kdig options]: the answer's records, one line
  local host=$1 name=$2 type=${3:-A}; shift 3 2>/dev/null || shift $#
  mx_in "$host" kdig @100.100.9.53 +short +timeout=2 +retry=1 "$@" "$name" "$type" 2>&1 | tr '\n' ' ' | sed 's/ $//'
}
expect() { # WHAT GOT WANT
  if [ "$2" = "$3" ]; then pass "$1: $2"; else fail "$1: got '$2', want '$3'"; fi
}
expect "hosp-a asks pacs.hospital-a.ix.example (its own host: tenant address)" \
  "$(ask hosp-a-lan pacs.hospital-a.ix.example)" 10.0.0.10
expect "hosp-b asks pacs.hospital-a.ix.example (A's host: A's core address)" \
  "$(ask hosp-b-lan pacs.hospital-a.ix.example)" 100.64.1.10
expect "hosp-b asks pacs.hospital-b.ix.example (its own host)" "$(ask hosp-b-lan pacs.hospital-b.ix.example)" 10.0.0.10
expect "hosp-a asks pacs.hospital-b.ix.example (B's core address)" \
  "$(ask hosp-a-lan pacs.hospital-b.ix.example)" 100.64.2.10
expect "hosp-a, over TCP" "$(ask hosp-a-lan pacs.hospital-b.ix.example A +tcp)" 100.64.2.10
expect "hosp-a: reverse lookup of B's host's core address" "$(ask hosp-a-lan 10.2.64.100.in-addr.arpa PTR)" \
  pacs.hospital-b.ix.example.
# Each hospital host resolves through its own unbound (its resolv.conf: /etc/netns/NS/, which
# `ip netns exec` mounts), the unbound asking the IX's knotd through the core.
for h in hosp-a-lan hosp-b-lan; do
  mkdir -p "/etc/netns/mx-$MX_ID-$h"
  echo "nameserver 127.0.0.1" >"/etc/netns/mx-$MX_ID-$h/resolv.conf"
  mx_in "$h" unbound -d -c "$MX_TMP/unbound.conf" >"$MX_TMP/unbound-$h.log" 2>&1 &
  UNBOUND_PIDS+=($!)
done
for _ in $(seq 100); do
  [ "$(grep -l "start of service" "$MX_TMP"/unbound-*.log 2>/dev/null | wc -l)" -eq 2 ] && break
  sleep 0.1
done
for h in hosp-a-lan hosp-b-lan; do
  expect "$h (its unbound) resolves archive.ix.example" "$(mx_in "$h" getent hosts archive.ix.example | awk '{print $1}')" \
    100.100.1.10
done
expect "hosp-a-lan (its unbound) resolves its own pacs.hospital-a.ix.example" \
  "$(mx_in hosp-a-lan getent hosts pacs.hospital-a.ix.example | awk '{print $1}')" 10.0.0.10
expect "hosp-b-lan (its unbound) resolves A's pacs.hospital-a.ix.example" \
  "$(mx_in hosp-b-lan getent hosts pacs.hospital-a.ix.example | awk '{print $1}')" 100.64.1.10

# A DICOM study stored on the archive by name, from both hospitals (dcmtk; test/ike's study maker).
if command -v storescu >/dev/null && "$MX_PY" -c 'import pydicom' 2>/dev/null; then
  "$MX_PY" "$MX_REPO/test/ike/dicom.py" make "$MX_TMP/study" 4 >/dev/null || mx_die "could not make the DICOM study"
  mkdir -p "$MX_TMP/received"
  mx_in archive-lan storescp -aet ARCHIVE -od "$MX_TMP/received" -B 11112 >"$MX_TMP/storescp.log" 2>&1 &
  SCP_PID=$!
  sleep 0.3
  for h in hosp-a-lan hosp-b-lan; do
    if mx_in "$h" timeout 30 storescu -aet HOSPITAL -aec ARCHIVE +sd archive.ix.example 11112 "$MX_TMP/study" \
      >"$MX_TMP/storescu-$h.log" 2>&1 &&
      "$MX_PY" "$MX_REPO/test/ike/dicom.py" compare "$MX_TMP/study" "$MX_TMP/received" >"$MX_TMP/dicom-$h.json"; then
      pass "$h: storescu to archive.ix.example: the study arrived whole ($(cat "$MX_TMP/dicom-$h.json"))"
    else
      fail "$h: storescu to archive.ix.example: $(tail -n 3 "$MX_TMP/storescu-$h.log" | tr '\n' ' ')"
    fi
    rm -rf "$MX_TMP/received"/*
  done
else
  fail "dcmtk's storescu and pydicom are installed (scripts/setup)"
fi

# DNS_BENCH_SECONDS=N (benchmarks/dns.sh): dnsperf against knotd from hospital A through the core,
# and from the DNS tenant's own host (the same server, directly), in this one run.
if [ -n "${DNS_BENCH_SECONDS:-}" ] && command -v dnsperf >/dev/null; then
  printf 'pacs.hospital-a.ix.example A\npacs.hospital-b.ix.example A\narchive.ix.example A\n10.2.64.100.in-addr.arpa PTR\n' \
    >"$MX_TMP/queries"
  perf() { # LABEL HOST SERVER
    mx_in "$2" dnsperf -s "$3" -d "$MX_TMP/queries" -l "$DNS_BENCH_SECONDS" -c 4 -q 64 -v >"$MX_TMP/perf-$1.out" 2>&1
    "$MX_PY" - "$1" "$MX_TMP/perf-$1.out" <<'PY'
import re, sys
label, text = sys.argv[1], open(sys.argv[2]).read()
qps = re.search(r"Queries per second:\s+([0-9.]+)", text)
lost = re.search(r"Queries lost:\s+([0-9]+)", text)
lat = sorted(float(m) for m in re.findall(r"^> \S+ .* ([0-9.]+)$", text, re.M))
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1e3 if lat else float("nan")
print("BENCH %-6s qps %9.0f  lost %s  latency ms: p50 %.3f  p99 %.3f  (%d answers)"
      % (label, float(qps.group(1)) if qps else 0, lost.group(1) if lost else "?", p(0.5), p(0.99), len(lat)))
PY
  }
  perf direct dns-lan 192.168.9.53
  perf core hosp-a-lan 100.100.9.53
fi

# The queries crossed the core by the rules medix-cp made from dns.service_*.
rules=$("$CTL" -p "$MX_PREFIX" -o json counters 2>/dev/null | "$MX_PY" -c '
import json, sys
d = json.load(sys.stdin)
print(" ".join("%s=%s" % (r.get("name"), r.get("matched", 0)) for r in d.get("policy_rules", [])
      if r.get("name", "").startswith("dns-")))' 2>&1)
case $rules in
  *dns-tcp=[1-9]*dns-udp=[1-9]* | *dns-udp=[1-9]*dns-tcp=[1-9]*) pass "the queries crossed the core through medix-cp's rule ($rules)" ;;
  *) fail "no query counted on the dns-udp rule: $rules" ;;
esac
finish
