#!/usr/bin/python3
"""NaptPool.session_limit 2 (one worker: all of it): the clinic's third session, whatever its
endpoint, is refused with nat_session_limit (docs/nat.md "NAPT"); packets of its existing
sessions, both ways, still pass; another tenant (hosp-a, static) is not limited."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixnat import *

c = NatCase(__file__)
ph = Phases(c)
POOL = "100.64.9.1"

s1 = IP(src="10.0.0.5", dst="100.100.2.10", id=1) / UDP(sport=1000, dport=53) / Raw(b"one")
c.send("c0", H1, s1)
c.expect("r0", H3, xlated(s1, POOL, "192.168.1.10", sport=20000))
s2 = IP(src="10.0.0.5", dst="100.100.2.11", id=2) / UDP(sport=1000, dport=53) / Raw(b"two")
c.send("c0", H1, s2)
c.expect("r0", H3, xlated(s2, POOL, "192.168.1.11", sport=20000))
c.send("c0", H4, IP(src="10.0.0.6", dst="100.100.2.10", id=3) / UDP(sport=1000, dport=53) / Raw(b"three"))
c.drop("nat_session_limit")
c.send("c0", H1, IP(src="10.0.0.5", dst="100.100.2.10", id=4) / TCP(sport=1000, dport=104, flags="S"))
c.drop("nat_session_limit")
c.send("c0", H1, IP(src="10.0.0.5", dst="100.100.2.10", id=5) / ICMP(type=8, id=9, seq=1))
c.drop("nat_session_limit")
for i in range(3):
    p = IP(src="10.0.0.5", dst="100.100.2.10", id=6 + i) / UDP(sport=2000 + i, dport=53) / Raw(b"hosp-a")
    c.send("a0", H1, p)
    c.expect("r0", H3, xlated(p, "100.64.1.5", "192.168.1.10"))
s1b = IP(src="10.0.0.5", dst="100.100.2.10", id=10) / UDP(sport=1000, dport=53) / Raw(b"one more")
c.send("c0", H1, s1b)
c.expect("r0", H3, xlated(s1b, POOL, "192.168.1.10", sport=20000))

ph.next()
r = IP(src="192.168.1.11", dst=POOL, id=11) / UDP(sport=53, dport=20000) / Raw(b"reply two")
c.send("r0", H3, r)
c.expect("c0", H1, xlated(r, "100.100.2.11", "10.0.0.5", dport=1000))

ph.finish()
c.write()
