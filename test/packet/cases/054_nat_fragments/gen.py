#!/usr/bin/python3
"""Fragments crossing the core (docs/nat.md "Fragments"): reassembled, translated as one
packet, fragmented again when larger than the egress MTU (1500 here, DF clear).

- a 1000-byte UDP datagram in 3 fragments (hosp-a, static mapping): one packet out, addresses
  translated, UDP checksum right; the same in reverse order (last fragment first), and one in
  2 fragments with the UDP checksum 0 (stays 0);
- a NAPT one (clinic, in 2 fragments, out of order): the pool address and port;
- a 3028-byte UDP datagram sent as fragments of 1000/1000/1008 data bytes: reassembled,
  translated, then cut again for the 1500 MTU as forwarding.md and 016_fragmentation say
  (data in the largest multiple of 8 that fits, 1480; each fragment a copy of the header with
  its own length, offset, MF and checksum).

The reassembled packet's header is the first fragment's with the fragment field zero (MF and
offset cleared; the fragments carry no DF), TTL − 1."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixnat import *

c = NatCase(__file__)
ph = Phases(c)
POOL = "100.64.9.1"


def cut(whole, sizes):
    """RFC 791 fragments of `whole` (scapy, no DF) with the given data sizes (multiples of 8
    but the last)."""
    p = IP(bytes(whole))
    data = bytes(p)[p.ihl * 4:p.len]
    assert sum(sizes) == len(data)
    out, off = [], 0
    for i, n in enumerate(sizes):
        f = p.copy()
        f.remove_payload()
        f.len = None
        f.chksum = None
        f.frag = off // 8
        f.flags = 0 if i == len(sizes) - 1 else 1
        out.append(IP(bytes(f / Raw(data[off:off + n]))))
        off += n
    return out


def fragments(ip, mtu):
    """RFC 791 fragmentation of an (already forwarded) IPv4 packet, as in 016_fragmentation."""
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
        f.flags = (p.flags & ~1) | (p.flags & 1 if last else 1)
        out.append(bytes(f / Raw(chunk)))
    return out


def payload(n, seed):
    return bytes((seed + i * 7) & 0xFF for i in range(n))


# 1000-byte datagram (8 + 972 + IP 20), 3 fragments in order
w1 = IP(src="10.0.0.5", dst="100.100.2.10", id=0x1001) / UDP(sport=5000, dport=5001) / Raw(payload(972, 1))
for f in cut(w1, [400, 400, 180]):
    c.send("a0", H1, f)
c.expect("r0", H3, xlated(w1, "100.64.1.5", "192.168.1.10"))
# the same size, fragments last first
w2 = IP(src="10.0.0.5", dst="100.100.2.10", id=0x1002) / UDP(sport=5002, dport=5001) / Raw(payload(972, 2))
for f in reversed(cut(w2, [400, 400, 180])):
    c.send("a0", H1, f)
c.expect("r0", H3, xlated(w2, "100.64.1.5", "192.168.1.10"))
# UDP checksum 0, 2 fragments, the middle... the second first
w3 = IP(src="10.0.0.5", dst="100.100.2.10", id=0x1003) / UDP(sport=5003, dport=5001, chksum=0) / Raw(payload(592, 3))
for f in reversed(cut(w3, [304, 296])):
    c.send("a0", H1, f)
c.expect("r0", H3, xlated(w3, "100.64.1.5", "192.168.1.10"))
# NAPT: the first port of the pool; fragments out of order
w4 = IP(src="10.0.0.5", dst="100.100.2.10", id=0x1004) / UDP(sport=6000, dport=5001) / Raw(payload(1200, 4))
fr = cut(w4, [512, 400, 296])
for f in (fr[1], fr[2], fr[0]):
    c.send("c0", H1, f)
c.expect("r0", H3, xlated(w4, POOL, "192.168.1.10", sport=20000))
# larger than the egress MTU once whole: fragmented again at 1480-byte data
w5 = IP(src="10.0.0.5", dst="100.100.2.10", id=0x1005) / UDP(sport=5004, dport=5001) / Raw(payload(3000, 5))
for f in cut(w5, [1000, 1000, 1008]):
    c.send("a0", H1, f)
for f in fragments(xlated(w5, "100.64.1.5", "192.168.1.10"), 1500):
    c.expect("r0", H3, f)
# and the same, fragments in the order 2, 3, 1
w6 = IP(src="10.0.0.5", dst="100.100.2.10", id=0x1006) / UDP(sport=5005, dport=5001) / Raw(payload(3000, 6))
fr = cut(w6, [1000, 1000, 1008])
for f in (fr[1], fr[2], fr[0]):
    c.send("a0", H1, f)
for f in fragments(xlated(w6, "100.64.1.5", "192.168.1.10"), 1500):
    c.expect("r0", H3, f)
# TCP whose first fragment holds only 8 bytes of its header (RFC 1858's tiny fragment): once
# reassembled the header is whole, so it is translated like any other
w7 = IP(src="10.0.0.5", dst="100.100.2.10", id=0x1007) / TCP(sport=40000, dport=104, flags="PA", seq=1, ack=1) / Raw(payload(100, 7))
for f in cut(w7, [8, 112]):
    c.send("a0", H1, f)
c.expect("r0", H3, xlated(w7, "100.64.1.5", "192.168.1.10"))

ph.next()
# an ICMP error that itself arrives in fragments: port unreachable from the archive host
# quoting all of w5 as it got it (3028 bytes), cut 1480/1480/84 by the host. Reassembled,
# translated back (quoted header and UDP checksum), ICMP checksum over all 3036 bytes, then
# fragmented again for a0's MTU.
seen5 = xlated(w5, "100.64.1.5", "192.168.1.10")
err = icmp_err("192.168.1.10", "100.64.1.5", 3, 3, quote(seen5, None), ip_id=0x2001)
for f in cut(err, [1480, 1480, 76]):
    c.send("r0", H3, f)
back = icmp_err("100.100.2.10", "10.0.0.5", 3, 3, quote(xlated(w5, "10.0.0.5", "100.100.2.10"), None),
                ttl=63, ip_id=0x2001)
for f in fragments(back, 1500):
    c.expect("a0", H1, f)

ph.finish()
c.write()
