#!/usr/bin/python3
"""A rekey in packets: each tunnel has an old and a new inbound SA, both accepted with
their own replay windows, and an old and a new outbound SA, of which the new one (listed
later in config.json, as IKE installs it later) carries everything sent.

ta (AES-GCM-128, raw): old SAs 1011 in / 2011 out, new 1111 in / 2111 out (the new outbound
SPI is the higher one). tb (AES-CBC-128 + HMAC-SHA256-128, UDP 4500): old 1012 in / 2512 out,
new 1112 in / 2112 out: the new outbound SA has the *lower* SPI (IKE picks SPIs at random), so
"newest" must mean the order SAs were created in, not SPI order.
"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *
from medixesp import EspCase

c = Case(__file__)
e = EspCase(c)
A, B = "02:bb:00:00:00:11", "02:bb:00:00:00:12"

for tunnel, mac, n, old_in, new_in, new_out in (("ta", A, 11, 1011, 1111, 2111),
                                                ("tb", B, 12, 1012, 1112, 2112)):
    old, new = e.sa(tunnel, True, old_in), e.sa(tunnel, True, new_in)
    k = 0
    for sa, seq in ((old, 1), (new, 1), (old, 2), (new, 2), (old, 3)):
        k += 1
        p = bytes(IP(src=f"10.{n}.0.5", dst="10.0.1.10", id=k) / UDP(sport=k, dport=53)
                  / Raw(b"spi %d seq %d" % (sa.spi, seq)))
        e.send_esp("c0", mac, sa, p, seq)
        c.expect("h0", H1, forwarded(p))
    e.send_esp("c0", mac, new, bytes(IP(src=f"10.{n}.0.5", dst="10.0.1.10") / UDP()), 2)
    c.drop("esp_replayed")                   # each SA has its own window
    out = e.sa(tunnel, False, new_out)
    for seq in (1, 2, 3):
        p = bytes(IP(src="10.0.1.10", dst=f"10.{n}.0.7", id=40 + seq) / UDP(sport=seq, dport=53)
                  / Raw(b"after the rekey"))
        c.send("h0", H1, p)
        e.expect_esp("c0", mac, out, seq, forwarded(p), tos=0, df=False)

e.write()
