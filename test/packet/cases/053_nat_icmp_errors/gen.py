#!/usr/bin/python3
"""ICMP errors crossing the core (docs/nat.md "ICMP errors", RFC 5508), static mappings and
NAPT. An error is matched by the packet it quotes (reversed) to that packet's session and goes
the reply direction: outer destination = the quoted packet's original source; outer source =
the quoted packet's original destination when the error comes from that host, else the
router's own static mapping (192.168.1.254 -> 100.100.2.254), else again the quoted
destination (172.16.0.1 has no mapping). The quoted header and ports (or echo identifier) go
back to how they were before crossing, with the quoted header checksum recomputed, the quoted
UDP / echo checksum updated (TCP quoted 8 bytes deep: no checksum to update) and the ICMP
checksum right. Expected errors are built from scratch (`icmp_err`), the quoted packets with
`xlated` (the packet as the other side saw it, checksums from scratch). Errors with no session:
nat_no_session. The outer TTL is decremented once, the quoted TTL is what was quoted."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixnat import *

c = NatCase(__file__)
ph = Phases(c)
POOL = "100.64.9.1"
ROUTER = "02:bb:00:00:00:03"

# --- phase 0: flows that cross
u1 = IP(src="10.0.0.5", dst="100.100.2.10", id=1) / UDP(sport=5000, dport=53) / Raw(b"hello archive")
c.send("a0", H1, u1)
seen1 = xlated(u1, "100.64.1.5", "192.168.1.10")          # as the archive host got it
c.expect("r0", H3, seen1)
u2 = IP(src="10.0.0.5", dst="100.100.50.9", id=2) / UDP(sport=5001, dport=161) / Raw(b"via the router")
c.send("a0", H1, u2)
seen2 = xlated(u2, "100.64.1.5", "192.168.50.9")
c.expect("r0", ROUTER, seen2)
t2 = IP(src="10.0.0.5", dst="100.100.50.9", id=3) / TCP(sport=40000, dport=443, flags="S", seq=12345)
c.send("a0", H1, t2)
seent2 = xlated(t2, "100.64.1.5", "192.168.50.9")
c.expect("r0", ROUTER, seent2)
u3 = IP(src="10.0.0.5", dst="100.100.2.10", id=4) / UDP(sport=5000, dport=53) / Raw(b"napt query")
c.send("c0", H1, u3)
seen3 = xlated(u3, POOL, "192.168.1.10", sport=20000)
c.expect("r0", H3, seen3)
e3 = IP(src="10.0.0.5", dst="100.100.50.9", id=5) / ICMP(type=8, id=77, seq=9) / Raw(b"echo napt")
c.send("c0", H1, e3)
seene3 = xlated(e3, POOL, "192.168.50.9", icmp_id=20001)
c.expect("r0", ROUTER, seene3)

ph.next()
# --- phase 1: errors about them, from the archive side; replies for phase 2
# A. port unreachable from the destination host itself, quoting the whole datagram
err = icmp_err("192.168.1.10", "100.64.1.5", 3, 3, quote(seen1, None), ip_id=0x101)
c.send("r0", H3, err)
c.expect("a0", H1, icmp_err("100.100.2.10", "10.0.0.5", 3, 3,
                            quote(xlated(u1, "10.0.0.5", "100.100.2.10"), None), ttl=63, ip_id=0x101))
# B. time exceeded from a router with a static mapping (8 bytes quoted: UDP checksum included)
err = icmp_err("192.168.1.254", "100.64.1.5", 11, 0, quote(seen2), ip_id=0x102)
c.send("r0", ROUTER, err)
c.expect("a0", H1, icmp_err("100.100.2.254", "10.0.0.5", 11, 0,
                            quote(xlated(u2, "10.0.0.5", "100.100.50.9")), ttl=63, ip_id=0x102))
# B'. host unreachable from that router about the TCP SYN, 8 bytes: ports only
err = icmp_err("192.168.1.254", "100.64.1.5", 3, 1, quote(seent2), ip_id=0x103)
c.send("r0", ROUTER, err)
c.expect("a0", H1, icmp_err("100.100.2.254", "10.0.0.5", 3, 1,
                            quote(xlated(t2, "10.0.0.5", "100.100.50.9")), ttl=63, ip_id=0x103))
# C. a router with no mapping: it speaks for the quoted destination
err = icmp_err("172.16.0.1", "100.64.1.5", 11, 0, quote(seen2), ip_id=0x104)
c.send("r0", ROUTER, err)
c.expect("a0", H1, icmp_err("100.100.50.9", "10.0.0.5", 11, 0,
                            quote(xlated(u2, "10.0.0.5", "100.100.50.9")), ttl=63, ip_id=0x104))
# D. NAPT: port unreachable about the clinic's datagram (pool address and port back)
err = icmp_err("192.168.1.10", POOL, 3, 3, quote(seen3, None), ip_id=0x105)
c.send("r0", H3, err)
c.expect("c0", H1, icmp_err("100.100.2.10", "10.0.0.5", 3, 3,
                            quote(xlated(u3, "10.0.0.5", "100.100.2.10"), None), ttl=63, ip_id=0x105))
# D'. NAPT: time exceeded from the router about the echo request (identifier back to 77)
err = icmp_err("192.168.1.254", POOL, 11, 0, quote(seene3), ip_id=0x106)
c.send("r0", ROUTER, err)
c.expect("c0", H1, icmp_err("100.100.2.254", "10.0.0.5", 11, 0,
                            quote(xlated(e3, "10.0.0.5", "100.100.50.9")), ttl=63, ip_id=0x106))
# parameter problem (type 12) from the host, whole datagram
err = icmp_err("192.168.1.10", "100.64.1.5", 12, 0, quote(seen1, None), ip_id=0x107, rest=0x08000000)
c.send("r0", H3, err)
c.expect("a0", H1, icmp_err("100.100.2.10", "10.0.0.5", 12, 0,
                            quote(xlated(u1, "10.0.0.5", "100.100.2.10"), None), ttl=63, ip_id=0x107,
                            rest=0x08000000))
# replies the inside hosts will complain about in phase 2
rep1 = IP(src="192.168.1.10", dst="100.64.1.5", id=21) / UDP(sport=53, dport=5000) / Raw(b"answer a")
c.send("r0", H3, rep1)
got1 = xlated(rep1, "100.100.2.10", "10.0.0.5")
c.expect("a0", H1, got1)
rep3 = IP(src="192.168.1.10", dst=POOL, id=22) / UDP(sport=53, dport=20000) / Raw(b"answer clinic")
c.send("r0", H3, rep3)
got3 = xlated(rep3, "100.100.2.10", "10.0.0.5", dport=5000)
c.expect("c0", H1, got3)
# no session: a datagram that never crossed; a pool port nobody holds
bogus = IP(src="100.64.1.5", dst="192.168.1.10", ttl=63, id=23) / UDP(sport=7777, dport=53) / Raw(b"never")
c.send("r0", H3, icmp_err("192.168.1.10", "100.64.1.5", 3, 3, quote(bogus), ip_id=0x108))
c.drop("nat_no_session")
bogus = IP(src=POOL, dst="192.168.1.10", ttl=63, id=24) / UDP(sport=20999, dport=53) / Raw(b"never")
c.send("r0", H3, icmp_err("192.168.1.10", POOL, 3, 3, quote(bogus), ip_id=0x109))
c.drop("nat_no_session")

ph.next()
# --- phase 2: errors from the inside about the replies: they go back to the archive host
err = icmp_err("10.0.0.5", "100.100.2.10", 3, 3, quote(got1, None), ip_id=0x201)
c.send("a0", H1, err)
c.expect("r0", H3, icmp_err("100.64.1.5", "192.168.1.10", 3, 3,
                            quote(xlated(rep1, "192.168.1.10", "100.64.1.5"), None), ttl=63, ip_id=0x201))
err = icmp_err("10.0.0.5", "100.100.2.10", 3, 3, quote(got3, None), ip_id=0x202)
c.send("c0", H1, err)
c.expect("r0", H3, icmp_err(POOL, "192.168.1.10", 3, 3,
                            quote(xlated(rep3, "192.168.1.10", POOL), None), ttl=63, ip_id=0x202))

ph.finish()
c.write()
