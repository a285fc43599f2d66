#!/usr/bin/python3
"""A policer on u0 (srTCM at 1 byte a second: in the case's time its buckets hold what they
started with, cbs 1500 and ebs 1500 bytes). 40 packets of 100 bytes (IPv4 length) from u0:
the first 15 are green and forwarded as they are, the next 15 yellow and forwarded with DSCP
10 (ECN bits kept, checksum right), the last 10 red and dropped (RFC 2697). Packets from u1
are in no policer's class and pass untouched."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

HOST0 = "02:aa:00:00:00:07"  # static neighbours in config.json
HOST1 = "02:aa:00:00:01:07"
c = Case(__file__)
for i in range(40):
    p = IP(src="10.1.0.9", dst="10.2.0.7", id=i, tos=0x01) / UDP(sport=7, dport=9) / Raw(b"x" * 72)
    assert len(p) == 100
    c.send("u0", H2, p)
    if i < 15:
        c.expect("u1", HOST1, forwarded(p))
    elif i < 30:
        remarked = p.copy()
        remarked[IP].tos = (10 << 2) | 0x01
        c.expect("u1", HOST1, forwarded(remarked))
c.drop("policed", 10)
for i in range(5):
    p = IP(src="10.2.0.9", dst="10.1.0.7", id=100 + i) / UDP(sport=7, dport=9) / Raw(b"y" * 72)
    c.send("u1", H3, p)
    c.expect("u0", HOST0, forwarded(p))

c.write()
