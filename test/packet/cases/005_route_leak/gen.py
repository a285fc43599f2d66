#!/usr/bin/python3
"""Route leaks (next_tenant): the customer's default route continues the lookup in the core
tenant and back; one TTL decrement however many FIBs are consulted; no route in the leaked-to
tenant gives ICMP net unreachable from the ingress interface; a leak cycle is dropped as
leak_loop (forwarding.md names no ICMP error for it); a local address of the leaked-to
tenant answers echo."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

# cust -> (default, leak) -> core -> via k1
p = IP(src="10.1.0.5", dst="198.51.100.7", ttl=64, id=1) / UDP(sport=1, dport=2) / Raw(b"leak out")
c.send("c0", H1, p)
c.expect("k1", GW2, forwarded(p))
p = IP(src="10.1.0.5", dst="198.51.100.8", ttl=2, id=2) / TCP(sport=3, dport=4, flags="A")
c.send("c0", H1, p)
c.expect("k1", GW2, forwarded(p))

# core -> (leak) -> cust connected 10.1.0.5
p = IP(src="198.51.100.7", dst="10.1.0.5", ttl=50, id=3) / UDP(sport=2, dport=1) / Raw(b"leak back")
c.send("k1", GW2, p)
c.expect("c0", H1, forwarded(p))

# cust -> core, which has no route: no_route, ICMP from c0's address back to the host
p = IP(src="10.1.0.5", dst="203.0.113.9", ttl=64, id=4) / UDP(sport=5, dport=6) / Raw(b"nowhere")
c.send("c0", H1, p)
c.drop("no_route")
c.expect_icmp_error("c0", H1, p, 3, 0)

# cust -> core -> cust -> core ...: leak_loop
p = IP(src="10.1.0.5", dst="192.0.2.1", ttl=64, id=5) / UDP(sport=7, dport=8)
c.send("c0", H1, p)
c.drop("leak_loop")
p = IP(src="10.9.0.2", dst="192.0.2.2", ttl=64, id=6) / UDP(sport=7, dport=8)
c.send("k1", GW2, p)
c.drop("leak_loop")

# echo to the core's interface address through the leak: local in core, answered from that
# address out of the ingress interface c0
req = IP(src="10.1.0.5", dst="10.9.0.1", ttl=64, id=0) / ICMP(type=8, id=9, seq=9) / Raw(b"via leak")
c.send("c0", H1, req)
c.expect("c0", H1, echo_reply(req), stream="echo")

c.write()
