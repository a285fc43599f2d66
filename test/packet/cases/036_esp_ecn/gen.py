#!/usr/bin/python3
"""ECN at decapsulation, RFC 6040 4.2 (Figure 4), every outer/inner combination, through
tunnel te (AES-GCM-128, raw ESP): the inner packet leaves with the ECN field the table gives
(header checksum recomputed), or is dropped as esp_ecn (outer CE, inner not-ECT). The inner
DSCP is kept whatever the outer one (the outer DSCP is the carrier's). Outbound, the ECN field (and DSCP) is
copied to the outer header (normal mode, RFC 6040 4.1), checked in 030..034.

       outer:  Not-ECT   ECT(0)    ECT(1)    CE
inner Not-ECT  Not-ECT   Not-ECT   Not-ECT   drop
      ECT(0)   ECT(0)    ECT(0)    ECT(1)    CE
      ECT(1)   ECT(1)    ECT(1)    ECT(1)    CE
      CE       CE        CE        CE        CE
"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *
from medixesp import EspCase

c = Case(__file__)
e = EspCase(c)
sa = e.sa("te", True)
G = "02:bb:00:00:00:11"
NOT, ECT0, ECT1, CE = 0, 2, 1, 3
TABLE = {  # (inner, outer): inner after decapsulation, None: dropped
    (NOT, NOT): NOT, (NOT, ECT0): NOT, (NOT, ECT1): NOT, (NOT, CE): None,
    (ECT0, NOT): ECT0, (ECT0, ECT0): ECT0, (ECT0, ECT1): ECT1, (ECT0, CE): CE,
    (ECT1, NOT): ECT1, (ECT1, ECT0): ECT1, (ECT1, ECT1): ECT1, (ECT1, CE): CE,
    (CE, NOT): CE, (CE, ECT0): CE, (CE, ECT1): CE, (CE, CE): CE,
}
seq = 0
for (inner_ecn, outer_ecn), result in TABLE.items():
    for inner_dscp, outer_dscp in ((0x28, 0x00), (0x00, 0xB8)):   # AF11 inside / EF outside
        seq += 1
        p = IP(src="10.11.0.5", dst="10.0.1.10", id=seq, tos=inner_dscp | inner_ecn) \
            / UDP(sport=5000 + seq, dport=53) / Raw(b"ecn %d" % seq)
        e.send_esp("c0", G, sa, bytes(p), seq, outer_kw={"tos": outer_dscp | outer_ecn})
        if result is None:
            c.drop("esp_ecn")
            continue
        out = p.copy()
        out.tos = inner_dscp | result
        del out.chksum
        c.expect("h0", H1, forwarded(IP(bytes(out))))

e.write()
