#!/usr/bin/python3
"""Policy across the core (docs/nat.md "Sessions", objects.proto PolicyRule): rules by
ascending priority, ties by name (config.json lists the tied rules in the other order), the
first match decides, no match denies (policy_denied). Matches on from_tenant / to_tenant
("" any; the core tenant "ix" for core interfaces), destination_prefix (the core-side
destination, before translation into the exit), protocol and destination port range.
svc is a tenant with unique addresses (no translation); x0 and x1 are core interfaces.
Core-to-core forwarding does not cross and is not subject to policy. Replies of permitted
sessions pass both ways."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixnat import *

c = NatCase(__file__)
ph = Phases(c)
SVC, CORE0, CORE1 = "100.70.0.10", "100.127.0.10", "100.127.1.10"
n = [0]


def pkt(src, dst, l4, payload=b"x"):
    n[0] += 1
    return IP(src=src, dst=dst, id=n[0]) / l4 / Raw(payload)


def permit(iface, mac, p, out, out_mac, src, dst):
    c.send(iface, mac, p)
    c.expect(out, out_mac, xlated(p, src, dst))


def deny(iface, mac, p):
    c.send(iface, mac, p)
    c.drop("policy_denied")


# hosp-a -> archive: priority 5 denies TCP 22 before priority 10 permits TCP
deny("a0", H1, pkt("10.0.0.5", "100.100.2.10", TCP(sport=40000, dport=22, flags="S")))
permit("a0", H1, pkt("10.0.0.5", "100.100.2.10", TCP(sport=40000, dport=104, flags="S")), "r0", H3, "100.64.1.5", "192.168.1.10")
permit("a0", H1, pkt("10.0.0.5", "100.100.2.10", TCP(sport=40001, dport=23, flags="S")), "r0", H3, "100.64.1.5", "192.168.1.10")
permit("a0", H1, pkt("10.0.0.5", "100.100.2.10", ICMP(type=8, id=5, seq=1)), "r0", H3, "100.64.1.5", "192.168.1.10")
deny("a0", H1, pkt("10.0.0.5", "100.100.2.10", UDP(sport=40000, dport=53)))             # no rule: default deny
# ties by name: tie-a-deny before tie-b-permit; tie-c-permit before tie-d-deny
deny("b0", H1, pkt("10.0.0.5", "100.100.2.30", UDP(sport=1000, dport=9)))
permit("b0", H1, pkt("10.0.0.5", "100.100.2.31", UDP(sport=1000, dport=9)), "r0", H3, "100.64.2.5", "192.168.1.31")
# destination_prefix is the core-side destination (100.100.2.0/28, not 192.168.1.0/28)
permit("b0", H1, pkt("10.0.0.5", "100.100.2.10", TCP(sport=1000, dport=8080, flags="S")), "r0", H3, "100.64.2.5", "192.168.1.10")
deny("b0", H1, pkt("10.0.0.5", "100.100.2.20", TCP(sport=1000, dport=8080, flags="S")))
# protocol and port range (UDP 5000..5010 anywhere in the archive)
permit("b0", H1, pkt("10.0.0.5", "100.100.2.20", UDP(sport=1001, dport=5000)), "r0", H3, "100.64.2.5", "192.168.1.20")
permit("b0", H1, pkt("10.0.0.5", "100.100.2.20", UDP(sport=1001, dport=5010)), "r0", H3, "100.64.2.5", "192.168.1.20")
deny("b0", H1, pkt("10.0.0.5", "100.100.2.20", UDP(sport=1001, dport=4999)))
deny("b0", H1, pkt("10.0.0.5", "100.100.2.20", UDP(sport=1001, dport=5011)))
deny("b0", H1, pkt("10.0.0.5", "100.100.2.20", TCP(sport=1001, dport=5000, flags="S")))
# from "" (any) to svc, UDP only; svc is not translated
permit("a0", H1, pkt("10.0.0.5", SVC, UDP(sport=3000, dport=53)), "s0", H3, "100.64.1.5", SVC)
permit("b0", H1, pkt("10.0.0.5", SVC, UDP(sport=3000, dport=53)), "s0", H3, "100.64.2.5", SVC)
deny("a0", H1, pkt("10.0.0.5", SVC, TCP(sport=3000, dport=53, flags="S")))
# the core as to_tenant (a core interface's host): hosp-a UDP permitted, hosp-b not
permit("a0", H1, pkt("10.0.0.5", CORE0, UDP(sport=4000, dport=514)), "x0", GW1, "100.64.1.5", CORE0)
deny("b0", H1, pkt("10.0.0.5", CORE0, UDP(sport=4000, dport=514)))
# ... and the core's own address: a-core lets hosp-a's UDP cross, then it is delivered locally
# (local_unsupported, forwarding.md); hosp-b's is denied before that
c.send("a0", H1, pkt("10.0.0.5", "100.127.0.1", UDP(sport=4001, dport=514)))
c.drop("local_unsupported")
deny("b0", H1, pkt("10.0.0.5", "100.127.0.1", UDP(sport=4001, dport=514)))

# p1 side, same phase (no reply yet)
# archive to "" (any) ICMP: to hosp-a and to svc; its UDP to hosp-a: no rule
permit("r0", H3, pkt("192.168.1.10", "100.64.1.5", ICMP(type=8, id=6, seq=1)), "a0", H1, "100.100.2.10", "10.0.0.5")
permit("r0", H3, pkt("192.168.1.10", SVC, ICMP(type=8, id=7, seq=1)), "s0", H3, "100.100.2.10", SVC)
deny("r0", H3, pkt("192.168.1.10", "100.64.1.5", UDP(sport=53, dport=53)))
# the core as from_tenant: a core host to hosp-a, TCP 443 only
permit("x0", GW1, pkt(CORE0, "100.64.1.5", TCP(sport=50000, dport=443, flags="S")), "a0", H1, CORE0, "10.0.0.5")
deny("x0", GW1, pkt(CORE0, "100.64.1.5", TCP(sport=50000, dport=80, flags="S")))
# svc has no rule of its own: nothing it starts crosses
deny("s0", H3, pkt(SVC, "100.100.2.10", UDP(sport=53, dport=53)))
# core to core: not crossing, no policy, plain forwarding
p = pkt(CORE0, CORE1, UDP(sport=7, dport=7))
c.send("x0", GW1, p)
c.expect("x1", GW2, forwarded(p))
p = pkt(CORE0, CORE1, TCP(sport=22, dport=22, flags="S"))
c.send("x0", GW1, p)
c.expect("x1", GW2, forwarded(p))

ph.next()
# replies of permitted sessions, both ways (no rule needed for them)
permit("s0", H3, pkt(SVC, "100.64.1.5", UDP(sport=53, dport=3000)), "a0", H1, SVC, "10.0.0.5")
permit("x0", GW1, pkt(CORE0, "100.64.1.5", UDP(sport=514, dport=4000)), "a0", H1, CORE0, "10.0.0.5")
permit("r0", H3, pkt("192.168.1.10", "100.64.1.5", TCP(sport=104, dport=40000, flags="SA")), "a0", H1, "100.100.2.10", "10.0.0.5")
permit("r0", H3, pkt("192.168.1.20", "100.64.2.5", UDP(sport=5000, dport=1001)), "b0", H1, "100.100.2.20", "10.0.0.5")
permit("a0", H1, pkt("10.0.0.5", "100.100.2.10", ICMP(type=0, id=6, seq=1)), "r0", H3, "100.64.1.5", "192.168.1.10")
permit("a0", H1, pkt("10.0.0.5", CORE0, TCP(sport=443, dport=50000, flags="SA")), "x0", GW1, "100.64.1.5", CORE0)

ph.finish()
c.write()
