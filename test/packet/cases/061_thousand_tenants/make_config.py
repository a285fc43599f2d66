#!/usr/bin/python3
"""Writes config.json of this case (committed; run again after changing it): 1,000 tenants
t1..t1000 with one plan. Tenant i: in<i> on p0 VLAN i and out<i> on p1 VLAN i, both with the
same addresses in every tenant (10.0.0.1/24, 10.0.1.1/24); 10.9.0.0/16 via out<i> 10.0.1.2,
a static neighbour whose MAC names the tenant (02:bb:00:00:HH:LL). Tenant 500 also routes
10.9.5.0/24 via 10.0.1.3; tenant 1000 blackholes it (with ICMP unreachable)."""
import json
import os

N = 1000


def mac(i, last=0):
    return "02:bb:%02x:00:%02x:%02x" % (last, i >> 8, i & 0xff)


tenants, interfaces, routes, neighbours = [], [], [], []
for i in range(1, N + 1):
    t = "t%d" % i
    tenants.append({"name": t})
    interfaces.append({"name": "in%d" % i, "tenant": t, "port": "p0", "vlan": i, "addresses": ["10.0.0.1/24"],
                       "mac": "02:00:00:00:00:01"})
    interfaces.append({"name": "out%d" % i, "tenant": t, "port": "p1", "vlan": i, "addresses": ["10.0.1.1/24"],
                       "mac": "02:00:00:00:01:01"})
    routes.append({"tenant": t, "prefix": "10.9.0.0/16", "via": {"interface": "out%d" % i, "address": "10.0.1.2"}})
    neighbours.append({"interface": "out%d" % i, "address": "10.0.1.2", "mac": mac(i)})
routes.append({"tenant": "t500", "prefix": "10.9.5.0/24", "via": {"interface": "out500", "address": "10.0.1.3"}})
neighbours.append({"interface": "out500", "address": "10.0.1.3", "mac": mac(500, 3)})
routes.append({"tenant": "t1000", "prefix": "10.9.5.0/24", "blackhole": {"unreachable": True}})
config = {
    "schema_version": 1,
    "ports": [{"name": "p0", "device": "net_pcap0", "promiscuous": True},
              {"name": "p1", "device": "net_pcap1", "promiscuous": True}],
    "tenants": tenants, "interfaces": interfaces, "routes": routes, "neighbours": neighbours,
    "settings": {"icmp_burst": 100},
}
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "config.json"), "w") as f:
    f.write("{\n")
    keys = list(config)
    for k, key in enumerate(keys):
        value = config[key]
        if isinstance(value, list):
            f.write('  "%s": [\n' % key)
            f.write(",\n".join("    " + json.dumps(x, separators=(", ", ": ")) for x in value))
            f.write("\n  ]")
        else:
            f.write('  "%s": %s' % (key, json.dumps(value)))
        f.write(",\n" if k + 1 < len(keys) else "\n")
    f.write("}\n")
