#!/usr/bin/python3
"""Blackhole routes: dropped as blackhole, silently or (unreachable) with ICMP destination
unreachable code 13 (communication administratively prohibited); a more specific route
inside a blackhole prefix forwards; a /32 blackhole punches a hole in the default route."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

def bh(p, icmp):
    c.send("u0", H1, p)
    c.drop("blackhole")
    if icmp:
        c.expect_icmp_error("u0", H1, p, 3, 13)

def fwd(p):
    c.send("u0", H1, p)
    c.expect("u1", GW2, forwarded(p))

bh(IP(src="10.1.0.5", dst="10.99.1.1", id=1) / UDP(sport=1, dport=2) / Raw(b"silent"), icmp=False)
bh(IP(src="10.1.0.5", dst="10.98.1.1", id=2) / UDP(sport=1, dport=2) / Raw(b"unreachable"), icmp=True)
bh(IP(src="10.1.0.5", dst="10.98.200.1", id=3) / TCP(sport=1, dport=2, flags="S"), icmp=True)
bh(IP(src="10.1.0.5", dst="10.97.5.5", id=4) / UDP(sport=1, dport=2), icmp=False)
bh(IP(src="10.1.0.5", dst="10.98.1.2", id=5) / ICMP(type=3, code=1) / Raw(bytes(IP(src="10.98.1.2", dst="10.1.0.5") / UDP())), icmp=False)
bh(IP(src="10.1.0.5", dst="10.98.1.3", id=6, frag=10) / Raw(b"non-first fragment"), icmp=False)
fwd(IP(src="10.1.0.5", dst="10.98.7.1", id=7) / UDP(sport=1, dport=2) / Raw(b"more specific"))
fwd(IP(src="10.1.0.5", dst="10.97.5.4", id=8) / UDP(sport=1, dport=2) / Raw(b"next to the /32"))
fwd(IP(src="10.1.0.5", dst="10.100.0.1", id=9) / UDP(sport=1, dport=2) / Raw(b"default"))

c.write()
