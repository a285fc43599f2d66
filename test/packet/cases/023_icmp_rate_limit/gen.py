#!/usr/bin/python3
"""ICMP errors are rate-limited by a token bucket (icmp_burst 5, 1 per second here): of 30
TTL-expired packets, received within a few microseconds, exactly the first 5 are answered;
the other 25 count as icmp_rate_limited. All 30 are ttl_expired. Forwarding is not limited."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

BURST = 5
c = Case(__file__)
assert c.config["settings"]["icmp_burst"] == BURST
for i in range(30):
    p = IP(src="10.1.0.5", dst="10.20.0.%d" % (i + 1), ttl=1, id=i) / UDP(sport=33434 + i, dport=33434) / Raw(b"probe %02d" % i)
    c.send("u0", H1, p)
    c.drop("ttl_expired")
    if i < BURST:
        c.expect_icmp_error("u0", H1, p, 11, 0)
    else:
        c.event("icmp_rate_limited")
for i in range(10):
    p = IP(src="10.1.0.5", dst="10.20.1.%d" % i, ttl=64, id=100 + i) / UDP(sport=1, dport=2)
    c.send("u0", H1, p)
    c.expect("u1", GW2, forwarded(p))

c.write()
