#!/usr/bin/python3
"""The pending queue is bounded (arp_pending_limit 4; arp_pending_tenant_limit 4, so the one
tenant may take all of it): of 7 packets for an unresolved next hop, 4 wait and 3 are
arp_pending_full (no ICMP: forwarding.md names none); one ARP request; the 4 time out
(arp_timeout_ms 50) as arp_timeout with ICMP host unreachable (3/1), quoting the header as it
was when queued (TTL decremented, as in 008)."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

LIMIT = 4
c = Case(__file__)
assert c.config["settings"]["arp_pending_limit"] == LIMIT
for i in range(7):
    p = IP(src="10.1.0.5", dst="10.20.0.%d" % (i + 1), ttl=64, id=i) / UDP(sport=1000 + i, dport=53) / Raw(b"queued %d" % i)
    c.send("u0", H1, p)
    if i < LIMIT:
        c.drop("arp_timeout")
        c.expect_icmp_error("u0", H1, forwarded(p), 3, 1)
    else:
        c.drop("arp_pending_full")
c.expect_arp_request("u1", "10.2.0.2")

c.write()
