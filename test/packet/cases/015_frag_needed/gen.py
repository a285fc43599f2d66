#!/usr/bin/python3
"""DF and larger than the egress interface's MTU: mtu_exceeded and ICMP fragmentation needed
(3/4) with the next-hop MTU in the low 16 bits of the second ICMP word. Exactly the MTU
passes. The MTU is the interface's (1300 on u1) or else the port's (1500 on v1).

The quoted header is the one received (TTL not decremented), the baseline of RFC 1812
4.3.2.3 (a router may also quote it with the TTL decremented: forwarding.md does not say)."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

def udp(dst, total, i, **kw):
    return IP(src="10.1.0.5", dst=dst, id=i, flags="DF", **kw) / UDP(sport=1, dport=2) / Raw(bytes([i]) * (total - 28))

def too_big(p, mtu):
    c.send("u0", H1, p)
    c.drop("mtu_exceeded")
    c.expect_icmp_error("u0", H1, p, 3, 4, rest=mtu)

def fwd(p, out_if, mac):
    c.send("u0", H1, p)
    c.expect(out_if, mac, forwarded(p))

fwd(udp("10.20.0.1", 1300, 1), "u1", GW2)        # exactly the MTU
too_big(udp("10.20.0.1", 1301, 2), 1300)
too_big(udp("10.20.0.1", 1500, 3, tos=0x28), 1300)
too_big(IP(src="10.1.0.5", dst="10.20.0.1", id=4, flags="DF") / TCP(sport=1, dport=2, flags="PA") / Raw(b"t" * 1400), 1300)
fwd(udp("10.30.0.1", 1500, 5), "v1", GW3)        # the port's MTU, 1500
fwd(IP(src="10.1.0.5", dst="10.20.0.1", id=6) / UDP(sport=1, dport=2) / Raw(b"small, DF clear"), "u1", GW2)

c.write()
