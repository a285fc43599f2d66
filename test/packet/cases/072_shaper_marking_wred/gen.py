#!/usr/bin/python3
"""A shaper class's DSCP marking and its WRED (docs/qos.md "Shapers", "WRED").

Marking (u1, shaper "marking", a contract nothing here reaches): class imaging (DSCP 26) leaves
with DSCP 34, its ECN bits kept (ECT(1), ECT(0), CE), the header checksum right (forwarded()
computes it from scratch); class rest (anything else) leaves as it came. The classes are
scheduled by DRR, so their packets interleave: order is checked within each class.

WRED (u2, shaper "wred"): a contract of 1 byte a second and a burst of 1535 bytes, so the class
sends 13 frames of 118 bytes (13 * 118 = 1534; a 14th needs 117 bytes more: 117 s) and keeps the
rest queued. Class af: green (AFx1, any non-AF DSCP) from 100 to 200 packets of average queue,
red (AFx3) from 0 to 2, average weight 1/2. 25 AF11 packets are queued (the queue, and so its
average, never reaches 100). Then 10 AF13 packets meet an average of at least 10 packets (the
queue holds at least 25 - 13 whatever the scheduler sent meanwhile): at or above red's max_th,
each is dropped (drop reason shaper_wred), CE-capable or not: ECN marking is for the
probabilistic region only. Then 5 AF11 queued again. Counters from telemetry: queued 30, sent
13, WRED drops 10, tail drops 0, depth 17.
"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

HOST1 = "02:aa:00:00:01:07"  # u1's static neighbour
HOST2 = "02:aa:00:00:05:07"  # u2's
c = Case(__file__)
n = 0


def packet(src_iface, dst, tos):
    global n
    n += 1
    p = IP(src=c.addr(src_iface)[:-1] + "9", dst=dst, id=n, tos=tos) / UDP(sport=7, dport=9) / Raw(b"x" * 72)
    assert len(p) == 100
    return p


AF11, AF13, AF31, AF41 = 10, 14, 26, 34
ECT1, ECT0, CE = 1, 2, 3

# Marking.
for dscp, ecn, cls in [(AF31, ECT1, "imaging"), (0, 0, "rest"), (AF31, ECT0, "imaging"), (AF31, CE, "imaging"),
                       (46, ECT0, "rest"), (AF31, 0, "imaging"), (AF11, CE, "rest")]:
    p = packet("v10", "10.2.0.7", dscp << 2 | ecn)
    c.send("v10", H2, p)
    out = p.copy()
    if cls == "imaging":
        out[IP].tos = AF41 << 2 | ecn
    c.expect("u1", HOST1, forwarded(out), stream=cls)
c.counters("shaper_classes", "marking/imaging", queued_packets=4, sent_packets=4, sent_bytes=4 * 114, dropped=0,
           wred_dropped=0, depth=0)
c.counters("shaper_classes", "marking/rest", queued_packets=3, sent_packets=3, dropped=0, depth=0)

# WRED.
for i in range(25):
    p = packet("v20", "10.5.0.7", AF11 << 2)
    c.send("v20", H2, p)
    if i < 13:
        c.expect("u2", HOST2, forwarded(p), stream="af")
for i in range(10):
    c.send("v20", H2, packet("v20", "10.5.0.7", AF13 << 2 | (ECT0 if i % 2 else 0)))
    c.drop("shaper_wred")
for i in range(5):
    c.send("v20", H2, packet("v20", "10.5.0.7", AF11 << 2))
c.counters("shaper_classes", "wred/af", queued_packets=30, sent_packets=13, sent_bytes=13 * 118, dropped=0,
           wred_dropped=10, ecn_marked=0, depth=17)

c.write()
