#!/usr/bin/python3
"""Idle sessions end (docs/nat.md "Sessions", RFC 7857 / RFC 4787 REQ-5): with udp_timeout_s,
icmp_timeout_s and tcp_transitory_timeout_s 1, replies 2.5 s after the last packet find no
session. Timed phases (run.py feeds the ports through veth pairs, README.md):

0. the clinic (NAPT) opens UDP (port 20000) and an echo (identifier 20001); hosp-a (static)
   opens UDP, a TCP flow that will be established, and a SYN nobody answers;
1. 0.3 s later: the replies pass, the SYN-ACK establishes the first TCP flow
   (tcp_established_timeout_s stays 7440);
2. 2.5 s later: a reply to the pool's UDP port or echo identifier finds no mapping:
   nat_no_session; a UDP reply or SYN-ACK to hosp-a's static address is a new flow from the
   archive, which no rule permits: policy_denied; the established TCP flow goes on; the
   clinic's endpoint starts again and gets the next port, 20002 (after the last port given);
3. 0.3 s later: the reply to 20002 passes."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixnat import *

c = NatCase(__file__)
ph = Phases(c)
POOL = "100.64.9.1"

# 0
u = IP(src="10.0.0.5", dst="100.100.2.10", id=1) / UDP(sport=1000, dport=53) / Raw(b"napt udp")
c.send("c0", H1, u)
c.expect("r0", H3, xlated(u, POOL, "192.168.1.10", sport=20000))
e = IP(src="10.0.0.5", dst="100.100.2.10", id=2) / ICMP(type=8, id=7, seq=1) / Raw(b"napt echo")
c.send("c0", H1, e)
c.expect("r0", H3, xlated(e, POOL, "192.168.1.10", icmp_id=20001))
a = IP(src="10.0.0.5", dst="100.100.2.10", id=3) / UDP(sport=2000, dport=53) / Raw(b"static udp")
c.send("a0", H1, a)
c.expect("r0", H3, xlated(a, "100.64.1.5", "192.168.1.10"))
t = IP(src="10.0.0.5", dst="100.100.2.10", id=4) / TCP(sport=40000, dport=104, flags="S", seq=100)
c.send("a0", H1, t)
c.expect("r0", H3, xlated(t, "100.64.1.5", "192.168.1.10"))
t2 = IP(src="10.0.0.5", dst="100.100.2.10", id=5) / TCP(sport=40001, dport=104, flags="S", seq=200)
c.send("a0", H1, t2)
c.expect("r0", H3, xlated(t2, "100.64.1.5", "192.168.1.10"))

ph.next(wait_s=0.3)
# 1
for p, out, mac, src, dst, kw in [
        (IP(src="192.168.1.10", dst=POOL, id=11) / UDP(sport=53, dport=20000) / Raw(b"r1"), "c0", H1, "100.100.2.10", "10.0.0.5", {"dport": 1000}),
        (IP(src="192.168.1.10", dst=POOL, id=12) / ICMP(type=0, id=20001, seq=1) / Raw(b"napt echo"), "c0", H1, "100.100.2.10", "10.0.0.5", {"icmp_id": 7}),
        (IP(src="192.168.1.10", dst="100.64.1.5", id=13) / UDP(sport=53, dport=2000) / Raw(b"r3"), "a0", H1, "100.100.2.10", "10.0.0.5", {}),
        (IP(src="192.168.1.10", dst="100.64.1.5", id=14) / TCP(sport=104, dport=40000, flags="SA", seq=900, ack=101), "a0", H1, "100.100.2.10", "10.0.0.5", {})]:
    c.send("r0", H3, p)
    c.expect(out, mac, xlated(p, src, dst, **kw))

ph.next(wait_s=2.5)
# 2
c.send("r0", H3, IP(src="192.168.1.10", dst=POOL, id=21) / UDP(sport=53, dport=20000) / Raw(b"late"))
c.drop("nat_no_session")
c.send("r0", H3, IP(src="192.168.1.10", dst=POOL, id=22) / ICMP(type=0, id=20001, seq=2) / Raw(b"late"))
c.drop("nat_no_session")
c.send("r0", H3, IP(src="192.168.1.10", dst="100.64.1.5", id=23) / UDP(sport=53, dport=2000) / Raw(b"late"))
c.drop("policy_denied")
c.send("r0", H3, IP(src="192.168.1.10", dst="100.64.1.5", id=24) / TCP(sport=104, dport=40001, flags="SA", seq=5, ack=201))
c.drop("policy_denied")
d = IP(src="192.168.1.10", dst="100.64.1.5", id=25) / TCP(sport=104, dport=40000, flags="PA", seq=901, ack=101) / Raw(b"still here")
c.send("r0", H3, d)
c.expect("a0", H1, xlated(d, "100.100.2.10", "10.0.0.5"))
u = IP(src="10.0.0.5", dst="100.100.2.10", id=26) / UDP(sport=1000, dport=53) / Raw(b"napt udp again")
c.send("c0", H1, u)
c.expect("r0", H3, xlated(u, POOL, "192.168.1.10", sport=20002))

ph.next(wait_s=0.3)
# 3
r = IP(src="192.168.1.10", dst=POOL, id=31) / UDP(sport=53, dport=20002) / Raw(b"r again")
c.send("r0", H3, r)
c.expect("c0", H1, xlated(r, "100.100.2.10", "10.0.0.5", dport=1000))

ph.finish()
c.write()
