#!/usr/bin/python3
"""A tunnel's shaper (docs/qos.md "Shaping a tunnel"): inner packets are classed, ordered and
marked before ESP, so sequence numbers follow the order the shaper sends in.

Tunnel tr is shaped ("vpn": a contract of 3 bytes a second with a burst of 1420 bytes, so
fourteen 100-byte inner packets go at once and a fifteenth would wait 27 s); its classes:
voice (EF, strict priority), imaging (AF31, a guarantee, marked AF41 with its ECN kept), bulk
(the rest, a weight). Fifteen packets from the host arrive in one burst, bulk first and the
classes mixed; out of c0 come ESP packets of tr's SA with sequence numbers 1..14, decrypted and
compared whole (run.py, lib/medixesp.py): the three voice packets, then the four imaging ones
(marked), then seven bulk ones in their order; the eighth bulk packet stays queued (the
contract). The outer DSCP is the inner's as the class marked it (DSCP_COPY).

Tunnel tu, not shaped, on the same underlay: its packets, fed after tr's, leave at once with
sequence numbers 1..3 (the shaped tunnel holds nothing else back). Both tunnels' ESP leaves
through c0's own shaper ("carrier": a tunnel shaper under a port shaper), which counts them.
Counters from telemetry: each class's queued, sent (inner bytes), depth; c0's class, its
frames' bytes.
"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *
from medixesp import EspCase

c = Case(__file__)
e = EspCase(c)
TR, TU = "02:bb:00:00:00:11", "02:bb:00:00:00:13"
EF, AF31, AF41 = 46, 26, 34
ECT0 = 2
n = 0


def inner(dst, tos):
    global n
    n += 1
    p = IP(src="10.0.1.10", dst=dst, id=n, tos=tos, ttl=30) / UDP(sport=5000 + n, dport=9) / Raw(bytes([n]) * 72)
    assert len(p) == 100
    return p


arrivals = ["bulk", "bulk", "bulk", "imaging", "voice", "bulk", "imaging", "voice", "bulk", "imaging", "bulk",
            "voice", "imaging", "bulk", "bulk"]
by_class = {"voice": [], "imaging": [], "bulk": []}
for k, cls in enumerate(arrivals):
    tos = {"voice": EF << 2, "imaging": AF31 << 2 | (ECT0 if k % 2 else 0), "bulk": 0}[cls]
    p = inner("10.11.0.7", tos)
    c.send("h0", H1, p)
    out = p.copy()
    if cls == "imaging":
        out[IP].tos = AF41 << 2 | (tos & 3)
    by_class[cls].append((forwarded(out), out[IP].tos))
# Strict priority, then the guarantee, then the rest; the contract holds the last bulk packet.
leaving = by_class["voice"] + by_class["imaging"] + by_class["bulk"][:-1]
sa = e.sa("tr", False)
for seq, (p, tos) in enumerate(leaving, 1):
    e.expect_esp("c0", TR, sa, seq, p, tos=tos, df=False, stream="vpn")

sa_u = e.sa("tu", False)
for seq in (1, 2, 3):
    p = inner("10.13.0.7", 0)
    c.send("h0", H1, p)
    e.expect_esp("c0", TU, sa_u, seq, forwarded(p), tos=0, df=False, stream="plain")

c.counters("shaper_classes", "vpn/voice", queued_packets=3, sent_packets=3, sent_bytes=300, dropped=0, depth=0)
c.counters("shaper_classes", "vpn/imaging", queued_packets=4, sent_packets=4, sent_bytes=400, dropped=0, depth=0)
c.counters("shaper_classes", "vpn/bulk", queued_packets=8, sent_packets=7, sent_bytes=700, dropped=0, depth=1)
# ESP frames on c0: Ethernet and tag 18, IPv4 20, (UDP 8,) ESP 8, IV 8, 100 + 2 padded to 4: 104, ICV 16.
esp_frame = 18 + 20 + 8 + 8 + 104 + 16
c.counters("shaper_classes", "carrier/all", queued_packets=17, sent_packets=17,
           sent_bytes=14 * esp_frame + 3 * (esp_frame + 8), dropped=0, depth=0)
e.write()
