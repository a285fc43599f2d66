#!/usr/bin/python3
"""A NAPT pool of one address and two ports (30000..30001): the clinic's first two inside
endpoints get them; a third endpoint (another host, or another port of the first host) finds
none free: nat_pool_exhausted (docs/nat.md "NAPT"). The first endpoint to a new destination
reuses its mapping (no port needed), and replies still pass."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixnat import *

c = NatCase(__file__)
ph = Phases(c)
POOL = "100.64.9.1"

u5 = IP(src="10.0.0.5", dst="100.100.2.10", id=1) / UDP(sport=1000, dport=53) / Raw(b"five")
c.send("c0", H1, u5)
c.expect("r0", H3, xlated(u5, POOL, "192.168.1.10", sport=30000))
u6 = IP(src="10.0.0.6", dst="100.100.2.10", id=2) / UDP(sport=1000, dport=53) / Raw(b"six")
c.send("c0", H4, u6)
c.expect("r0", H3, xlated(u6, POOL, "192.168.1.10", sport=30001))
c.send("c0", H2, IP(src="10.0.0.7", dst="100.100.2.10", id=3) / UDP(sport=1000, dport=53) / Raw(b"seven"))
c.drop("nat_pool_exhausted")
c.send("c0", H1, IP(src="10.0.0.5", dst="100.100.2.10", id=4) / UDP(sport=1001, dport=53) / Raw(b"five again"))
c.drop("nat_pool_exhausted")
u5b = IP(src="10.0.0.5", dst="100.100.2.11", id=5) / UDP(sport=1000, dport=53) / Raw(b"five to .11")
c.send("c0", H1, u5b)
c.expect("r0", H3, xlated(u5b, POOL, "192.168.1.11", sport=30000))

ph.next()
r = IP(src="192.168.1.10", dst=POOL, id=11) / UDP(sport=53, dport=30001) / Raw(b"to six")
c.send("r0", H3, r)
c.expect("c0", H4, xlated(r, "100.100.2.10", "10.0.0.6", dport=1000))

ph.finish()
c.write()
