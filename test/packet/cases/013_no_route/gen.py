#!/usr/bin/python3
"""No route: no_route and ICMP net unreachable (3/0) from the ingress interface's address on
the sender's subnet (else its first address), back to the sender's MAC with the ingress tags. The lookup comes before the TTL
check, so TTL 1 without a route is no_route too. No ICMP error about an ICMP error or a
non-first fragment."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

def noroute(iface, mac, p, icmp=True, src=None):
    c.send(iface, mac, p)
    c.drop("no_route")
    if icmp:
        c.expect_icmp_error(iface, mac, p, 3, 0, src=src)

noroute("u0", H1, IP(src="10.1.0.5", dst="192.0.2.1", id=1) / UDP(sport=1, dport=2) / Raw(b"nowhere at all"))
# From u0's second subnet: answered from u0's address there, 10.1.9.1.
noroute("u0", H1, IP(src="10.1.9.5", dst="10.21.0.1", id=2) / TCP(sport=3, dport=4, flags="S"), src="10.1.9.1")
noroute("u0", H1, IP(src="10.1.0.5", dst="8.8.8.8", id=3, ttl=1) / UDP(sport=1, dport=53))       # TTL 1: lookup first
noroute("q0", H2, IP(src="10.7.0.5", dst="192.0.2.2", id=4) / ICMP(type=8, id=1, seq=1) / Raw(b"ping"))
noroute("u1", GW2, IP(src="10.20.0.5", dst="203.0.113.1", id=5) / UDP(sport=1, dport=2))
noroute("u0", H1, IP(src="10.1.0.5", dst="192.0.2.3", id=6, flags="MF") / UDP(sport=1, dport=2) / Raw(b"first fragment"))
noroute("u0", H1, IP(src="10.1.0.5", dst="192.0.2.3", id=6, frag=3) / Raw(b"second fragment"), icmp=False)
noroute("u0", H1, IP(src="10.1.0.5", dst="192.0.2.4", id=7) / ICMP(type=3, code=3) / Raw(bytes(IP(src="192.0.2.4", dst="10.1.0.5") / UDP())), icmp=False)
noroute("u0", H1, IP(src="10.1.0.5", dst="192.0.2.5", id=8) / ICMP(type=11, code=0) / Raw(bytes(IP(src="192.0.2.5", dst="10.1.0.5") / UDP())), icmp=False)

c.write()
