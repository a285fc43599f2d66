#!/usr/bin/python3
"""Jumbo frames: ports with MTU 9000 forward an 8000-byte and a 9000-byte packet whole (the
frames exceed one 2 KiB mbuf); 9001 bytes with DF is mtu_exceeded (next-hop MTU 9000); an
8000-byte packet without DF to an interface with MTU 1500 is fragmented (1480-byte pieces);
an echo request of 8000 bytes to a local address is answered whole."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)
pattern = bytes(range(251)) * 40

def udp(dst, total, i, **kw):
    return IP(src="10.1.0.5", dst=dst, id=i, **kw) / UDP(sport=1, dport=2) / Raw(pattern[:total - 28])

p = udp("10.20.0.1", 8000, 1)
c.send("u0", H1, p)
c.expect("u1", GW2, forwarded(p))
p = udp("10.20.0.1", 9000, 2, flags="DF")
c.send("u0", H1, p)
c.expect("u1", GW2, forwarded(p))
p = udp("10.20.0.1", 9001, 3, flags="DF")
c.send("u0", H1, p)
c.drop("mtu_exceeded")
c.expect_icmp_error("u0", H1, p, 3, 4, rest=9000)
# fragmented to the 1500-byte interface: 5 x 1480 + 572 bytes of data
p = udp("10.30.0.1", 8000, 4)
c.send("u0", H1, p)
f = IP(forwarded(p))
data = bytes(f)[20:]
for off in range(0, len(data), 1480):
    chunk = data[off:off + 1480]
    h = IP(src=f.src, dst=f.dst, id=f.id, ttl=f.ttl, proto=17, tos=f.tos,
           flags="MF" if off + 1480 < len(data) else 0, frag=off // 8)
    c.expect("v1", GW3, bytes(h / Raw(chunk)))
# back from p1: 8000 bytes the other way, to a connected host
p = IP(src="10.20.0.5", dst="10.1.0.5", id=5) / TCP(sport=80, dport=5000, flags="A") / Raw(pattern[:8000 - 40])
c.send("u1", GW2, p)
c.expect("u0", H1, forwarded(p))
# an 8000-byte echo request to our address: answered whole
req = IP(src="10.1.0.5", dst="10.1.0.1", id=0) / ICMP(type=8, id=9, seq=9) / Raw(pattern[:8000 - 28])
c.send("u0", H1, req)
c.expect("u0", H1, echo_reply(req), stream="echo")

c.write()
