#!/usr/bin/python3
"""No DF and larger than the egress MTU (1300 on u1): fragmented. Each fragment carries a copy
of the (TTL-decremented) header with its own total length, offset, MF and checksum; data is
cut in the largest multiple of 8 bytes that fits (1280 here); the last fragment keeps the MF
flag of the original, so a fragment is fragmented correctly too."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

MTU = 1300
c = Case(__file__)

def fragments(ip, mtu):
    """RFC 791 fragmentation of an (already forwarded) IPv4 packet, built with scapy."""
    p = IP(ip)
    hlen = p.ihl * 4
    data = bytes(p)[hlen:p.len]
    step = (mtu - hlen) // 8 * 8
    out = []
    for off in range(0, len(data), step):
        chunk = data[off:off + step]
        last = off + step >= len(data)
        f = p.copy()
        f.remove_payload()
        f.len = None
        f.chksum = None
        f.frag = p.frag + off // 8
        f.flags = (p.flags & ~1) | (p.flags & 1 if last else 1)   # MF: original's on the last
        out.append(bytes(f / Raw(chunk)))
    return out

def frag(p):
    c.send("u0", H1, p)
    for f in fragments(forwarded(p), MTU):
        c.expect("u1", GW2, f)

def udp(total, i, **kw):
    return IP(src="10.1.0.5", dst="10.20.0.1", id=0x4000 + i, **kw) / UDP(sport=1, dport=2) / Raw((bytes(range(256)) * 6)[:total - 28])

frag(udp(1500, 1))                                   # 1280 + 200
frag(udp(1301, 2))                                   # 1280 + 1
frag(udp(1400, 3, tos=0xb8, ttl=9))                  # 1280 + 100
frag(IP(src="10.1.0.5", dst="10.20.0.2", id=0x4004, flags="MF") / Raw(b"m" * 1480))          # a first fragment: both keep MF
frag(IP(src="10.1.0.5", dst="10.20.0.2", id=0x4005, frag=185) / Raw(b"l" * 1480))            # a last fragment at offset 1480
p = IP(src="10.1.0.5", dst="10.20.0.3", id=0x4006) / UDP(sport=1, dport=2) / Raw(b"u" * 1272)  # exactly 1300: whole
c.send("u0", H1, p)
c.expect("u1", GW2, forwarded(p))

c.write()
