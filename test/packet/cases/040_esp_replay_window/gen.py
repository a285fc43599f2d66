#!/usr/bin/python3
"""The anti-replay window is as wide as the SA's replay_window says (RFC 4303 3.4.3: the
receiver accepts sequence numbers down to the highest seen minus window + 1), also when it is
not a multiple of 64: tw has 32 (strongSwan's default), tv 100.

After 200 (and 1000 for tv), the last number inside the window is accepted, the first
outside is esp_too_old; both edges are probed with fresh numbers so no result depends on an
earlier one.
"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *
from medixesp import EspCase

c = Case(__file__)
e = EspCase(c)

for tunnel, mac, n, window in (("tw", "02:bb:00:00:00:11", 11, 32),
                               ("tv", "02:bb:00:00:00:12", 12, 100)):
    sa = e.sa(tunnel, True)

    def pkt(seq):
        return bytes(IP(src=f"10.{n}.0.5", dst="10.0.1.10", id=seq & 0xFFFF)
                     / UDP(sport=5, dport=6) / Raw(b"seq %d" % seq))

    for top in (200, 1000):
        for seq, ok in ((top, True), (top - window + 1, True), (top - window, False)):
            e.send_esp("c0", mac, sa, pkt(seq), seq)
            if ok:
                c.expect("h0", H1, forwarded(pkt(seq)))
            else:
                c.drop("esp_too_old")

e.write()
