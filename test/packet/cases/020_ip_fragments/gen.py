#!/usr/bin/python3
"""Fragments are forwarded like any packet (TTL - 1, checksum); a fragment addressed to
medix-dp itself is local_fragment (no reassembly for local delivery), even the first
fragment of an echo request."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

def fwd(p):
    c.send("u0", H1, p)
    c.expect("u1", GW2, forwarded(p))

whole = bytes(IP(src="10.1.0.5", dst="10.20.0.1", id=0x777, ttl=33) / UDP(sport=1, dport=2) / Raw(bytes(range(200))))
data = whole[20:]
hdr = lambda **kw: IP(src="10.1.0.5", dst="10.20.0.1", id=0x777, ttl=33, proto=17, **kw)
fwd(hdr(flags="MF", frag=0) / Raw(data[:80]))         # first
fwd(hdr(flags="MF", frag=10) / Raw(data[80:160]))     # middle
fwd(hdr(frag=20) / Raw(data[160:]))                  # last
fwd(hdr(flags="DF+MF", frag=0) / Raw(data[:80]))      # odd flags, still just forwarded
fwd(hdr(frag=8191) / Raw(b"z" * 8))                  # the largest offset

for p in (IP(src="10.1.0.5", dst="10.1.0.1", id=1, flags="MF") / ICMP(type=8, id=1, seq=1) / Raw(b"e" * 64),
          IP(src="10.1.0.5", dst="10.1.0.1", id=1, proto=1, frag=9) / Raw(b"e" * 8),
          IP(src="10.1.0.5", dst="10.2.0.1", id=2, proto=17, flags="MF", frag=3) / Raw(b"u" * 16)):
    c.send("u0", H1, p)
    c.drop("local_fragment")

c.write()
