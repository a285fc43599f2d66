#!/usr/bin/python3
"""The tunnel MTU (inner bytes; default 1400) decides before encryption, like an interface's:
DF and larger: mtu_exceeded and ICMP fragmentation needed (3/4) with the tunnel MTU, back out
of the ingress interface; DF clear: the inner packet is fragmented (forwarding.md's rules,
as in 016) and each fragment encrypted on its own, with the next sequence number.

tf (AES-GCM-128, raw, MTU 1400, DF_COPY): outer DF is the fragment's (clear).
tg (AES-CBC-128 + HMAC-SHA256-128, raw, MTU 1200, DF_SET): outer DF set on every fragment.
Inbound, a decrypted packet larger than h0's MTU (1300) without DF is fragmented out of h0.
"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *
from medixesp import EspCase

c = Case(__file__)
e = EspCase(c)
F, G = "02:bb:00:00:00:11", "02:bb:00:00:00:12"
tf_in, tf_out, tg_out = e.sa("tf", True), e.sa("tf", False), e.sa("tg", False)


def fragments(ip, mtu):
    """RFC 791 fragmentation of an (already forwarded) IPv4 packet, as in 016."""
    p = IP(ip)
    hlen = p.ihl * 4
    data = bytes(p)[hlen:p.len]
    step = (mtu - hlen) // 8 * 8
    out = []
    for off in range(0, len(data), step):
        f = p.copy()
        f.remove_payload()
        f.len = None
        f.chksum = None
        f.frag = p.frag + off // 8
        f.flags = (p.flags & ~1) | (p.flags & 1 if off + step >= len(data) else 1)
        out.append(bytes(f / Raw(data[off:off + step])))
    return out


def udp(dst, total, i, df, tos=0):
    return IP(src="10.0.1.10", dst=dst, id=0x100 + i, tos=tos, flags="DF" if df else 0) \
        / UDP(sport=1, dport=2) / Raw((bytes(range(256)) * 12)[:total - 28])


seq = {"tf": 0, "tg": 0}


def through(tunnel, sa, mac, p, mtu, outer_df):
    c.send("h0", H1, p)
    for f in fragments(forwarded(p), mtu) if len(p) > mtu else [forwarded(p)]:
        seq[tunnel] += 1
        e.expect_esp("c0", mac, sa, seq[tunnel], f, tos=IP(f).tos, df=outer_df(IP(f)))


def too_big(p, mtu):
    c.send("h0", H1, p)
    c.drop("mtu_exceeded")
    c.expect_icmp_error("h0", H1, p, 3, 4, rest=mtu)


copy_df = lambda f: bool(f.flags & 2)
through("tf", tf_out, F, udp("10.11.0.7", 1400, 1, df=True), 1400, copy_df)   # exactly the MTU
too_big(udp("10.11.0.7", 1401, 2, df=True), 1400)
through("tf", tf_out, F, udp("10.11.0.7", 1401, 3, df=False, tos=0x2A), 1400, copy_df)
through("tf", tf_out, F, udp("10.11.0.7", 3000, 4, df=False), 1400, copy_df)
too_big(udp("10.11.0.7", 1500, 5, df=True), 1400)
through("tg", tg_out, G, udp("10.12.0.7", 1200, 6, df=True), 1200, lambda f: True)
too_big(udp("10.12.0.7", 1201, 7, df=True), 1200)
through("tg", tg_out, G, udp("10.12.0.7", 1400, 8, df=False), 1200, lambda f: True)
through("tg", tg_out, G, udp("10.12.0.7", 100, 9, df=False), 1200, lambda f: True)

# inbound: decrypted, then fragmented to h0's MTU
for i, total in enumerate((1300, 1350), 1):
    p = IP(src="10.11.0.5", dst="10.0.1.10", id=0x200 + i) / UDP(sport=3, dport=4) \
        / Raw((bytes(range(256)) * 6)[:total - 28])
    e.send_esp("c0", F, tf_in, bytes(p), i)
    for f in fragments(forwarded(p), 1300) if total > 1300 else [forwarded(p)]:
        c.expect("h0", H1, f)

e.write()
