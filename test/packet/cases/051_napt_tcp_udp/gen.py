#!/usr/bin/python3
"""NAPT (docs/nat.md "NAPT"): the clinic (10.0.0.0/24, the hospitals' plan) leaves through a
pool of one address, 100.64.9.1, ports from 20000. With one worker, ports are handed out from
port_low up by one, each after the last port given: 10.0.0.5:40000 gets 20000, 10.0.0.6:40000
20001, the UDP endpoint 10.0.0.5:5000 20002 ("after the last port given": one cursor for all
protocols; docs/nat.md gives ports per protocol but one cursor, this case reads it so).
Endpoint-independent mapping: 10.0.0.5:40000 to a second destination keeps 20000. TCP
SYN / SYN-ACK / ACK and UDP both ways; replies translated back to the inside endpoint.
A packet to a pool port with no mapping: nat_no_session. Another tenant reaching an existing
mapping: permitted only by a policy rule (hosp-b, to clinic, destination 100.64.9.1/32), else
policy_denied (hosp-a). Another address of the clinic's core prefix, not in the pool:
nat_no_mapping. Phases (lib/medixnat.py) order replies after what they answer."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixnat import *

c = NatCase(__file__)
ph = Phases(c)
POOL = "100.64.9.1"

# --- phase 0: the clinic opens flows
syn5 = IP(src="10.0.0.5", dst="100.100.2.10", id=1) / TCP(sport=40000, dport=104, flags="S", seq=1000)
c.send("c0", H1, syn5)
c.expect("r0", H3, xlated(syn5, POOL, "192.168.1.10", sport=20000))
syn6 = IP(src="10.0.0.6", dst="100.100.2.10", id=2) / TCP(sport=40000, dport=104, flags="S", seq=2000)
c.send("c0", H4, syn6)
c.expect("r0", H3, xlated(syn6, POOL, "192.168.1.10", sport=20001))
# the same endpoint to another destination: the same mapping (RFC 4787 REQ-1)
syn5b = IP(src="10.0.0.5", dst="100.100.2.11", id=3) / TCP(sport=40000, dport=104, flags="S", seq=3000)
c.send("c0", H1, syn5b)
c.expect("r0", H3, xlated(syn5b, POOL, "192.168.1.11", sport=20000))
udp5 = IP(src="10.0.0.5", dst="100.100.2.10", id=4) / UDP(sport=5000, dport=53) / Raw(b"query")
c.send("c0", H1, udp5)
c.expect("r0", H3, xlated(udp5, POOL, "192.168.1.10", sport=20002))

ph.next()
# --- phase 1: replies, and others reaching the pool
sa5 = IP(src="192.168.1.10", dst=POOL, id=11) / TCP(sport=104, dport=20000, flags="SA", seq=5000, ack=1001)
c.send("r0", H3, sa5)
c.expect("c0", H1, xlated(sa5, "100.100.2.10", "10.0.0.5", dport=40000))
sa6 = IP(src="192.168.1.10", dst=POOL, id=12) / TCP(sport=104, dport=20001, flags="SA", seq=6000, ack=2001)
c.send("r0", H3, sa6)
c.expect("c0", H4, xlated(sa6, "100.100.2.10", "10.0.0.6", dport=40000))
sa5b = IP(src="192.168.1.11", dst=POOL, id=13) / TCP(sport=104, dport=20000, flags="SA", seq=7000, ack=3001)
c.send("r0", H3, sa5b)
c.expect("c0", H1, xlated(sa5b, "100.100.2.11", "10.0.0.5", dport=40000))
rep = IP(src="192.168.1.10", dst=POOL, id=14) / UDP(sport=53, dport=20002) / Raw(b"answer")
c.send("r0", H3, rep)
c.expect("c0", H1, xlated(rep, "100.100.2.10", "10.0.0.5", dport=5000))
# a pool port nobody holds (UDP and TCP)
for i, l4 in enumerate([UDP(sport=53, dport=20999), TCP(sport=104, dport=20998, flags="S")]):
    c.send("r0", H3, IP(src="192.168.1.10", dst=POOL, id=15 + i) / l4)
    c.drop("nat_no_session")
# the UDP mapping 100.64.9.1:20002 from hosp-b: a rule permits it (filtering by policy)
inb = IP(src="10.0.0.7", dst=POOL, id=21) / UDP(sport=6000, dport=20002) / Raw(b"from b")
c.send("b0", H2, inb)
c.expect("c0", H1, xlated(inb, "100.64.2.7", "10.0.0.5", dport=5000))
# ... from hosp-a: no rule
c.send("a0", H2, IP(src="10.0.0.7", dst=POOL, id=22) / UDP(sport=6000, dport=20002) / Raw(b"from a"))
c.drop("policy_denied")
# the clinic's core route covers 100.64.9.0/24, its pool only .1: no translation for .2
c.send("b0", H2, IP(src="10.0.0.7", dst="100.64.9.2", id=23) / UDP(sport=6000, dport=20002))
c.drop("nat_no_mapping")

ph.next()
# --- phase 2: the third packets, both ways
ack5 = IP(src="10.0.0.5", dst="100.100.2.10", id=31) / TCP(sport=40000, dport=104, flags="A", seq=1001, ack=5001)
c.send("c0", H1, ack5)
c.expect("r0", H3, xlated(ack5, POOL, "192.168.1.10", sport=20000))
ack6 = IP(src="10.0.0.6", dst="100.100.2.10", id=32) / TCP(sport=40000, dport=104, flags="A", seq=2001, ack=6001)
c.send("c0", H4, ack6)
c.expect("r0", H3, xlated(ack6, POOL, "192.168.1.10", sport=20001))
udp5 = IP(src="10.0.0.5", dst="100.100.2.10", id=33) / UDP(sport=5000, dport=53) / Raw(b"again")
c.send("c0", H1, udp5)
c.expect("r0", H3, xlated(udp5, POOL, "192.168.1.10", sport=20002))
# the clinic answers hosp-b's flow: back from the pool address and port it reached
back = IP(src="10.0.0.5", dst="100.64.2.7", id=34) / UDP(sport=5000, dport=6000) / Raw(b"to b")
c.send("c0", H1, back)
c.expect("b0", H2, xlated(back, POOL, "10.0.0.7", sport=20002))
data = IP(src="192.168.1.10", dst=POOL, id=35) / TCP(sport=104, dport=20000, flags="PA", seq=5001, ack=1001) / Raw(b"dicom")
c.send("r0", H3, data)
c.expect("c0", H1, xlated(data, "100.100.2.10", "10.0.0.5", dport=40000))

ph.finish()
c.write()
