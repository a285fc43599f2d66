#!/usr/bin/python3
"""A next hop that never answers: one ARP request (arp_timeout_ms 50 is shorter than the
100 ms between requests), then after the timeout each waiting packet is dropped as
arp_timeout with ICMP host unreachable (type 3 code 1) to its sender.

The quoted header is the one the packet had when the error was found: after ip_lookup, i.e.
with the TTL already decremented (RFC 1812 4.3.2.3 allows not undoing it).

The log names the next hop, its interface and tenant, and the packets lost (one line a second
at most)."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)
pkts = [IP(src="10.1.0.5", dst="10.20.0.%d" % i, ttl=64, id=i) / UDP(sport=1000 + i, dport=53) / Raw(b"lost %d" % i)
        for i in range(1, 3)]
for p in pkts:
    c.send("u0", H1, p)
c.expect_arp_request("u1", "10.2.0.2")
for p in pkts:
    c.drop("arp_timeout")
    c.expect_icmp_error("u0", H1, forwarded(p), 3, 1)

c.log(r'medix-dp: ARP: 10\.2\.0\.2 on interface "u1" \(tenant "t1"\) did not answer in 50 ms: 2 packets dropped')
c.write()
