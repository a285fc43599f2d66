#!/usr/bin/python3
"""Untagged forwarding between two ports: TTL - 1, new MACs, longest prefix wins,
connected hosts, Ethernet padding trimmed."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

def fwd(in_if, src_mac, ip, out_if, dst_mac):
    c.send(in_if, src_mac, ip)
    c.expect(out_if, dst_mac, forwarded(ip))

# p0 -> p1 via gateway 10.2.0.2 (10.20.0.0/16)
fwd("i0", H1, IP(src="10.1.0.5", dst="10.20.1.1", ttl=64, id=1) / UDP(sport=1000, dport=2000) / Raw(b"udp"), "i1", GW2)
fwd("i0", H1, IP(src="10.1.0.5", dst="10.20.1.2", ttl=255, id=2, tos=0xb8, flags="DF") / TCP(sport=40000, dport=80, flags="S"), "i1", GW2)
fwd("i0", H1, IP(src="10.1.0.5", dst="10.20.1.3", ttl=2, id=3) / ICMP(type=8, id=7, seq=1) / Raw(b"ping" * 10), "i1", GW2)
fwd("i0", H1, IP(src="10.1.0.5", dst="10.20.1.4", ttl=128, id=0xffff) / UDP(sport=5, dport=6) / Raw(b"\xa5" * 1472), "i1", GW2)
# longest prefix match: /24 via 10.2.0.3, /25 back out of i0 (hairpin) via 10.1.0.2
fwd("i0", H1, IP(src="10.1.0.5", dst="10.20.5.1", ttl=64, id=4) / UDP(sport=1, dport=2), "i1", GW3)
fwd("i0", H1, IP(src="10.1.0.5", dst="10.20.5.200", ttl=64, id=5) / UDP(sport=1, dport=2), "i0", GW1)
# connected host with a static neighbour
fwd("i0", H1, IP(src="10.1.0.5", dst="10.2.0.7", ttl=64, id=6) / UDP(sport=1, dport=2) / Raw(b"host"), "i1", H2)
# p1 -> p0 via 10.1.0.2 and to the connected 10.1.0.5
fwd("i1", GW2, IP(src="10.20.9.9", dst="10.10.3.3", ttl=63, id=7) / UDP(sport=53, dport=3333) / Raw(b"answer"), "i0", GW1)
fwd("i1", GW2, IP(src="10.20.9.9", dst="10.1.0.5", ttl=9, id=8, proto=47) / Raw(b"\x00" * 24), "i0", H1)
# a short packet padded to the 60-byte minimum frame: forwarded without the padding
small = IP(src="10.1.0.5", dst="10.20.1.9", ttl=64, id=9) / UDP(sport=7, dport=7)
c.send_raw("p0", padded(c.frame_in("i0", H1, small), 60))
c.expect("i1", GW2, forwarded(small))
# a packet with 1 byte of garbage after it (total length < frame): forwarded, tail trimmed
small2 = IP(src="10.1.0.5", dst="10.20.1.10", ttl=64, id=10) / UDP(sport=7, dport=7) / Raw(b"x" * 40)
c.send_raw("p0", c.frame_in("i0", H1, small2) + b"\xee")
c.expect("i1", GW2, forwarded(small2))

c.write()
