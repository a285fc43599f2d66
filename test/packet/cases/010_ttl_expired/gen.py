#!/usr/bin/python3
"""TTL <= 1 on a packet to forward: ttl_expired and ICMP time exceeded (11/0) from the ingress
interface's first address, TTL 64, quoting the header as received and 8 bytes of payload.
No ICMP error for ICMP errors or non-first fragments. TTL 2 is forwarded with TTL 1."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

def expired(iface, mac, p, icmp=True):
    c.send(iface, mac, p)
    c.drop("ttl_expired")
    if icmp:
        c.expect_icmp_error(iface, mac, p, 11, 0)

U = lambda **kw: IP(src="10.1.0.5", dst="10.20.0.9", **kw)
expired("u0", H1, U(ttl=1, id=1) / UDP(sport=1, dport=2) / Raw(b"0123456789abcdef"))  # quotes 8 of 24 bytes
expired("u0", H1, U(ttl=0, id=2) / UDP(sport=1, dport=2) / Raw(b"ttl zero"))
expired("u0", H1, U(ttl=1, id=3, tos=0x10, flags="DF") / TCP(sport=5, dport=6, flags="S"))
expired("u0", H1, U(ttl=1, id=4) / ICMP(type=8, id=1, seq=1) / Raw(b"traceroute"))   # echo request is no error
expired("u0", H1, U(ttl=1, id=5, proto=253) / Raw(b"abc"))                          # payload shorter than 8
expired("u0", H1, U(ttl=1, id=6, options=[IPOption_Router_Alert()]) / UDP(sport=1, dport=2) / Raw(b"options!"))
expired("u0", H1, U(ttl=1, id=7, flags="MF", frag=0) / UDP(sport=1, dport=2, len=1008) / Raw(b"f" * 40))  # first fragment
expired("u0", H1, IP(src="10.1.0.5", dst="10.2.0.7", ttl=1, id=8) / UDP(sport=1, dport=2))  # to a connected host
expired("v0", H2, IP(src="10.5.0.5", dst="10.20.0.9", ttl=1, id=9) / UDP(sport=1, dport=2))  # tagged ingress
# padded to the 60-byte minimum frame: the quote stops at the IP total length (23 bytes)
p = U(ttl=1, id=13, proto=253) / Raw(b"xyz")
c.send_raw("p0", padded(c.frame_in("u0", H1, p), 60))
c.drop("ttl_expired")
c.expect_icmp_error("u0", H1, p, 11, 0)
# no ICMP error for these
expired("u0", H1, U(ttl=1, id=10, frag=100) / Raw(b"g" * 40), icmp=False)            # non-first fragment
expired("u0", H1, U(ttl=1, id=11, flags="MF", frag=5) / Raw(b"h" * 40), icmp=False)   # middle fragment
for t, code in ((3, 1), (11, 0), (3, 4), (12, 0), (5, 1), (4, 0)):
    err = IP(src="10.20.0.9", dst="10.1.0.5", ttl=64, id=0) / UDP(sport=2, dport=1)
    expired("u0", H1, U(ttl=1, id=20 + t) / ICMP(type=t, code=code) / Raw(bytes(err)[:28]), icmp=False)
# TTL 2 leaves with TTL 1
p = U(ttl=2, id=12) / UDP(sport=1, dport=2) / Raw(b"ttl two")
c.send("u0", H1, p)
c.expect("u1", GW2, forwarded(p))

c.write()
