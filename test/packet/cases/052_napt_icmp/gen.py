#!/usr/bin/python3
"""NAPT of ICMP echo (docs/nat.md "NAPT": identifiers translated like ports). The clinic's
10.0.0.5 id 77 leaves as 100.64.9.1 id 20000 (the first identifier of the pool), 10.0.0.6 id
77 as id 20001; 10.0.0.5 id 77 to a second destination keeps 20000 (endpoint-independent).
Replies come back with the inside identifier and address, ICMP checksum correct. An echo
reply no session knows: nat_no_session (replies never make sessions), to the pool and to a
static address."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixnat import *

c = NatCase(__file__)
ph = Phases(c)
POOL = "100.64.9.1"

e5 = IP(src="10.0.0.5", dst="100.100.2.10", id=1) / ICMP(type=8, id=77, seq=1) / Raw(b"ping five")
c.send("c0", H1, e5)
c.expect("r0", H3, xlated(e5, POOL, "192.168.1.10", icmp_id=20000))
e6 = IP(src="10.0.0.6", dst="100.100.2.10", id=2) / ICMP(type=8, id=77, seq=1) / Raw(b"ping six")
c.send("c0", H4, e6)
c.expect("r0", H3, xlated(e6, POOL, "192.168.1.10", icmp_id=20001))
e5b = IP(src="10.0.0.5", dst="100.100.2.11", id=3) / ICMP(type=8, id=77, seq=2) / Raw(b"ping five b")
c.send("c0", H1, e5b)
c.expect("r0", H3, xlated(e5b, POOL, "192.168.1.11", icmp_id=20000))

ph.next()
r5 = IP(src="192.168.1.10", dst=POOL, id=11) / ICMP(type=0, id=20000, seq=1) / Raw(b"ping five")
c.send("r0", H3, r5)
c.expect("c0", H1, xlated(r5, "100.100.2.10", "10.0.0.5", icmp_id=77))
r6 = IP(src="192.168.1.10", dst=POOL, id=12) / ICMP(type=0, id=20001, seq=1) / Raw(b"ping six")
c.send("r0", H3, r6)
c.expect("c0", H4, xlated(r6, "100.100.2.10", "10.0.0.6", icmp_id=77))
r5b = IP(src="192.168.1.11", dst=POOL, id=13) / ICMP(type=0, id=20000, seq=2) / Raw(b"ping five b")
c.send("r0", H3, r5b)
c.expect("c0", H1, xlated(r5b, "100.100.2.11", "10.0.0.5", icmp_id=77))
# echo replies with no session
c.send("r0", H3, IP(src="192.168.1.10", dst=POOL, id=14) / ICMP(type=0, id=20500, seq=1))
c.drop("nat_no_session")
c.send("r0", H3, IP(src="192.168.1.10", dst=POOL, id=15) / ICMP(type=0, id=77, seq=1))
c.drop("nat_no_session")
c.send("r0", H3, IP(src="192.168.1.10", dst="100.64.1.5", id=16) / ICMP(type=0, id=77, seq=1))
c.drop("nat_no_session")
# a reply from the wrong host (no session for 192.168.1.20 -> pool id 20000)
c.send("r0", H3, IP(src="192.168.1.20", dst=POOL, id=17) / ICMP(type=0, id=20000, seq=1))
c.drop("nat_no_session")

ph.next()
# the session goes on: a second request and its reply
e5 = IP(src="10.0.0.5", dst="100.100.2.10", id=21) / ICMP(type=8, id=77, seq=3) / Raw(b"again")
c.send("c0", H1, e5)
c.expect("r0", H3, xlated(e5, POOL, "192.168.1.10", icmp_id=20000))

ph.finish()
c.write()
