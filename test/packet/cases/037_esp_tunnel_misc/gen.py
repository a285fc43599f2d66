#!/usr/bin/python3
"""Tunnel features beyond the cipher.

tm (AES-GCM-128, raw, tcp_mss_clamp 1360): the MSS option of TCP SYNs (and SYN-ACKs) above
1360 is lowered to 1360 with the TCP checksum updated, in both directions: decrypted packets
before they are forwarded, inner packets before they are encrypted. Smaller MSS, segments
without SYN, and SYNs without the option pass unchanged.

tn (AES-CBC-256 + HMAC-SHA1-96, UDP, encap_udp_port 34567: a peer behind a NAT): outbound
is UDP 4500 -> 34567 with checksum 0; inbound from 34567 (and from 4500) is accepted, also
with a non-zero, even wrong, UDP checksum (RFC 3948 3.1.2: the receiver does not depend on
it; the ESP ICV protects the payload).

Outer IPv4 options (tm, tn) do not stop decapsulation: ESP starts after the header's IHL.

What tn decrypts is its own ordering stream: its AES-CBC jobs complete after tm's AES-GCM
packets of the same burst (docs/ipsec.md, "Crypto"); order is kept per tunnel.

tm -> ty (AES-CBC-128 + HMAC-SHA256-128, raw): a decrypted packet routed into another tunnel
is encrypted again (TTL - 1 once).

tx (AES-GCM-256, raw): an echo request to hosp's own 10.0.1.1 through the tunnel is answered
back through it (the reply built in place: TOS, ID, DF kept, TTL 64, as forwarding.md says).
"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *
from medixesp import EspCase

c = Case(__file__)
e = EspCase(c)
M, N, X = "02:bb:00:00:00:11", "02:bb:00:00:00:12", "02:bb:00:00:00:14"
tm_in, tm_out = e.sa("tm", True), e.sa("tm", False)
tn_in, tn_out = e.sa("tn", True), e.sa("tn", False)
tx_in, tx_out = e.sa("tx", True), e.sa("tx", False)

OPTS = [("MSS", None), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]


def tcp(src, dst, i, flags, mss, opts=OPTS, tos=0):
    o = [(k, mss if k == "MSS" else v) for k, v in opts if not (k == "MSS" and mss is None)]
    return IP(src=src, dst=dst, id=i, tos=tos, flags="DF") / TCP(sport=40000 + i, dport=443,
                                                               flags=flags, seq=1000 * i,
                                                               options=o)


CLAMP = 1360
ODD = [("NOP", None), ("NOP", None), ("NOP", None), ("MSS", None), ("NOP", None), ("WScale", 2)]
cases = [  # (flags, MSS sent, MSS expected, options)
    ("S", 1460, CLAMP, OPTS), ("SA", 1400, CLAMP, OPTS), ("S", 1361, CLAMP, OPTS),
    ("S", 1360, 1360, OPTS), ("S", 1200, 1200, OPTS), ("A", 1460, 1460, OPTS),
    ("S", 8960, CLAMP, ODD), ("S", None, None, [("NOP", None), ("WScale", 2)]),
]

# inbound through tm: clamped after decryption
for i, (flags, mss, want, opts) in enumerate(cases, 1):
    p = tcp("10.11.0.5", "10.0.1.10", i, flags, mss, opts)
    e.send_esp("c0", M, tm_in, bytes(p), i)
    c.expect("h0", H1, forwarded(tcp("10.11.0.5", "10.0.1.10", i, flags, want, opts)))

# outbound through tm: clamped before encryption
for i, (flags, mss, want, opts) in enumerate(cases, 1):
    p = tcp("10.0.1.10", "10.11.0.7", 50 + i, flags, mss, opts, tos=0x20)
    c.send("h0", H1, p)
    e.expect_esp("c0", M, tm_out, i,
                 forwarded(tcp("10.0.1.10", "10.11.0.7", 50 + i, flags, want, opts, tos=0x20)),
                 tos=0x20, df=True)

# tn: a NAT'd peer
for i, (sport, chksum) in enumerate([(34567, 0), (34567, 0x1234), (4500, 0), (4500, 0xFFFF)], 1):
    p = bytes(IP(src="10.12.0.5", dst="10.0.1.10", id=i) / UDP(sport=7, dport=7) / Raw(b"nat" * i))
    e.send_esp("c0", N, tn_in, p, i, outer_kw={"udp_sport": sport, "udp_chksum": chksum})
    c.expect("h0", H1, forwarded(p), stream="tn")
for i in (1, 2):
    p = bytes(IP(src="10.0.1.10", dst="10.12.0.7", id=70 + i) / UDP(sport=9, dport=9) / Raw(b"out" * i))
    c.send("h0", H1, p)
    e.expect_esp("c0", N, tn_out, i, forwarded(p), tos=0, df=False)

# outer IPv4 options
p = bytes(IP(src="10.11.0.5", dst="10.0.1.10", id=30) / UDP(sport=30, dport=30) / Raw(b"options"))
e.send_esp("c0", M, tm_in, p, 30, outer_kw={"options": [IPOption_Router_Alert(), IPOption_NOP()]})
c.expect("h0", H1, forwarded(p))
p = bytes(IP(src="10.12.0.5", dst="10.0.1.10", id=31) / UDP(sport=31, dport=31) / Raw(b"options"))
e.send_esp("c0", N, tn_in, p, 5, outer_kw={"options": [IPOption_NOP()] * 4})
c.expect("h0", H1, forwarded(p), stream="tn")

# tunnel to tunnel: in through tm, out through ty
ty_out = e.sa("ty", False)
for i in (1, 2):
    p = bytes(IP(src="10.11.0.5", dst="10.15.0.9", id=80 + i, tos=0x10, ttl=9) / UDP(sport=8, dport=8)
              / Raw(b"hairpin" * i))
    e.send_esp("c0", M, tm_in, p, 40 + i)
    e.expect_esp("c0", "02:bb:00:00:00:15", ty_out, i, forwarded(p), tos=0x10, df=False)

# tx: echo through the tunnel, to medix-dp's own address in hosp
for i, (tos, df) in enumerate([(0, False), (0xB8, True)], 1):
    req = IP(src="10.14.0.5", dst="10.0.1.1", id=90 + i, tos=tos, flags="DF" if df else 0) \
        / ICMP(type=8, id=0x77, seq=i) / Raw(b"ping through the tunnel")
    e.send_esp("c0", X, tx_in, bytes(req), i)
    rep = IP(bytes(req))
    rep.src, rep.dst, rep.ttl = req.dst, req.src, 64
    rep[ICMP].type = 0
    del rep.chksum, rep[ICMP].chksum
    e.expect_esp("c0", X, tx_out, i, bytes(IP(bytes(rep))), tos=tos, df=df)

e.write()
