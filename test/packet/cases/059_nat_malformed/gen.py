#!/usr/bin/python3
"""What crossing cannot translate (docs/nat.md "Drops"): an L4 header cut short (TCP under 20
bytes, UDP or ICMP under 8, an ICMP error whose quoted header or its 8 bytes are cut) is
nat_truncated; ICMP other than echo and errors (timestamp, redirect, router advertisement,
information request; an error quoting such a message) is nat_unsupported; a protocol without
ports (GRE, 47) from a NAPT tenant is nat_unsupported, while from a static-mapped tenant it is
translated (addresses only) and its reply comes back through the session. The IPv4 headers
are all valid (total length = what is there)."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixnat import *

c = NatCase(__file__)
ph = Phases(c)
n = [0]


def raw(src, dst, proto, data, iface="a0", mac=H1):
    n[0] += 1
    c.send(iface, mac, IP(src=src, dst=dst, id=n[0], proto=proto) / Raw(data))


DST = "100.100.2.10"
# truncated L4 headers
raw("10.0.0.5", DST, 6, bytes(TCP(sport=1, dport=104, flags="S"))[:19])
c.drop("nat_truncated")
raw("10.0.0.5", DST, 6, b"\x9c\x40\x00\x68")
c.drop("nat_truncated")
raw("10.0.0.5", DST, 17, bytes(UDP(sport=1, dport=53))[:7])
c.drop("nat_truncated")
raw("10.0.0.5", DST, 1, bytes(ICMP(type=8, id=1, seq=1))[:4])
c.drop("nat_truncated")
raw("10.0.0.5", DST, 6, bytes(TCP(sport=1, dport=104, flags="S"))[:12], iface="c0")   # NAPT tenant
c.drop("nat_truncated")
raw("10.0.0.5", DST, 17, b"", iface="c0")
c.drop("nat_truncated")
# ICMP errors quoting too little: part of a header, a header without its 8 bytes
q = bytes(IP(src="192.168.1.10", dst="100.64.1.5", ttl=63, id=77) / UDP(sport=53, dport=5000) / Raw(b"quoted"))
raw("10.0.0.5", DST, 1, bytes(ICMP(type=3, code=3)) + q[:12])
c.drop("nat_truncated")
raw("10.0.0.5", DST, 1, bytes(ICMP(type=11, code=0)) + q[:24])
c.drop("nat_truncated")
# ICMP that is neither echo nor an error
for icmp in (ICMP(type=13, id=1, seq=1) / Raw(b"\0" * 12),      # timestamp
             ICMP(type=5, code=1, gw="10.0.0.9") / Raw(q[:28]),  # redirect
             ICMP(type=9) / Raw(b"\0" * 8),                      # router advertisement
             ICMP(type=15, id=2, seq=2)):                        # information request
    n[0] += 1
    c.send("a0", H1, IP(src="10.0.0.5", dst=DST, id=n[0]) / icmp)
    c.drop("nat_unsupported")
n[0] += 1
c.send("c0", H1, IP(src="10.0.0.5", dst=DST, id=n[0]) / ICMP(type=17, id=3, seq=3) / Raw(b"\0" * 4))  # mask request
c.drop("nat_unsupported")
# an error quoting a timestamp request
qt = bytes(IP(src="192.168.1.10", dst="100.64.1.5", ttl=63, id=78) / ICMP(type=13, id=1, seq=1) / Raw(b"\0" * 12))
raw("10.0.0.5", DST, 1, bytes(ICMP(type=3, code=1)) + qt[:28])
c.drop("nat_unsupported")
# GRE: NAPT needs ports; a static mapping does not
gre = bytes.fromhex("00000800") + bytes(IP(src="1.1.1.1", dst="2.2.2.2") / UDP(sport=1, dport=2))
raw("10.0.0.5", DST, 47, gre, iface="c0")
c.drop("nat_unsupported")
n[0] += 1
g = IP(src="10.0.0.5", dst=DST, id=n[0], proto=47) / Raw(gre)
c.send("a0", H1, g)
c.expect("r0", H3, xlated(g, "100.64.1.5", "192.168.1.10"))
n[0] += 1
g0 = IP(src="10.0.0.7", dst="100.100.2.11", id=n[0], proto=47)   # no payload at all
c.send("a0", H2, g0)
c.expect("r0", H3, xlated(g0, "100.64.1.7", "192.168.1.11"))

ph.next()
n[0] += 1
r = IP(src="192.168.1.10", dst="100.64.1.5", id=n[0], proto=47) / Raw(gre[::-1])
c.send("r0", H3, r)
c.expect("a0", H1, xlated(r, "100.100.2.10", "10.0.0.5"))

ph.finish()
c.write()
