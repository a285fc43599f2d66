#!/usr/bin/python3
"""1,000 tenants with one plan (config.json, from make_config.py): packets in tenants 1, 500
and 1,000, in one burst, each go where its own tenant says: 10.9.1.1 via each tenant's
10.0.1.2 (out of its own VLAN, to its own gateway's MAC); 10.9.5.5 the same in tenant 1, via
10.0.1.3 in tenant 500 (its more specific route), blackholed with ICMP unreachable in 1000."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)


def gw(i, last=0):
    return "02:bb:%02x:00:%02x:%02x" % (last, i >> 8, i & 0xff)


def udp(dst, i):
    return IP(src="10.0.0.10", dst=dst, ttl=64, id=i) / UDP(sport=1000 + i, dport=2000) / Raw(b"tenant %d" % i)


for dst in ("10.9.1.1", "10.9.5.5"):
    for i in (1, 500, 1000):
        p = udp(dst, i)
        c.send("in%d" % i, H1, p)
        if dst == "10.9.5.5" and i == 1000:
            c.drop("blackhole")
            c.expect_icmp_error("in1000", H1, p, 3, 13)
        elif dst == "10.9.5.5" and i == 500:
            c.expect("out500", gw(500, 3), forwarded(p))
        else:
            c.expect("out%d" % i, gw(i), forwarded(p))

c.write()
