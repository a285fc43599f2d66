#!/usr/bin/python3
"""ESP that must not get through, each dropped and counted under its reason, and nothing of it
reaching any tenant (clinic on p2 has hosp's addresses: a leak would show there). Between the
bad packets, good ones show the SA is unharmed: a forged packet (bad ICV) neither marks its
sequence number nor moves the replay window.

tg: AES-GCM-128, raw ESP from 198.51.100.11, replay window 64, remote selectors 10.11/16,
local selectors 10.0.1/24 and 10.50/16. tc: AES-CBC-128 + HMAC-SHA256-128 with ESN, UDP 4500
from 198.51.100.13, window 64 (ICVs computed with Python's hmac over ESP || seq_hi).
c0 also has 203.0.113.1; carrier2 on p3 (d0) has the same 198.51.100.1 as carrier.

Conventions pinned here (esp.cpp / drop.h, not an RFC): sequence number 0 is esp_too_old;
an inner packet that is not IPv4 (next header 4, version 6) is esp_bad_next_header; ESP to a
local address in any tenant other than the tunnel's underlay is esp_unknown_spi; UDP 4500
with the non-ESP marker, and UDP 500, are ike_no_listener (no exception interface).
"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *
from medixesp import EspCase
from scapy.all import fragment

c = Case(__file__)
e = EspCase(c)
G = "02:bb:00:00:00:11"   # tg's peer
T = "02:bb:00:00:00:13"   # tc's peer
tg, tc = e.sa("tg", True), e.sa("tc", True)
n = [0]


def inner(src="10.11.0.5", dst="10.0.1.10", tos=0, size=40):
    n[0] += 1
    return bytes(IP(src=src, dst=dst, id=n[0], tos=tos) / UDP(sport=1000 + n[0], dport=2000)
                 / Raw(bytes((n[0] + i) & 0xFF for i in range(size))))


def good(sa, mac, seq, **kw):
    p = inner(src="10.11.0.5" if sa is tg else "10.13.0.5", **kw)
    e.send_esp("c0", mac, sa, p, seq)
    c.expect("h0", H1, forwarded(p))


def bad(sa, mac, seq, reason, p=None, outer_kw=None, **enc):
    p = p if p is not None else inner(src="10.11.0.5" if sa.spi == tg.spi else "10.13.0.5")
    e.send_esp("c0", mac, sa, p, seq, outer_kw=outer_kw, **enc)
    c.drop(reason)


def raw_esp(payload, dst="198.51.100.1"):
    return bytes(IP(src="198.51.100.11", dst=dst, proto=50, id=7) / Raw(payload))


# --- ICV and anti-replay (tg, window 64) --------------------------------------------------
good(tg, G, 1)
bad(tg, G, 2, "esp_bad_icv", bad_icv=True)
good(tg, G, 2)                                   # the forged 2 did not mark 2
bad(tg, G, 1, "esp_replayed")
bad(tg, G, 1000, "esp_bad_icv", bad_icv=True)    # a forged 1000 must not move the window
good(tg, G, 10)                                  # else 10 would be too old
good(tg, G, 100)
bad(tg, G, 36, "esp_too_old")                    # 100 - 36 = 64: just left of the window
good(tg, G, 37)                                  # the window's left edge, not seen yet
bad(tg, G, 37, "esp_replayed")
bad(tg, G, 0, "esp_too_old")                     # 0 is never sent (RFC 4303 3.3.3)

# --- SPI and endpoint ---------------------------------------------------------------------
bad(tg.with_spi(0xDEAD), G, 101, "esp_unknown_spi")
bad(tg.with_spi(2011), G, 101, "esp_unknown_spi")                 # the outbound SA's SPI
bad(tg, G, 102, "esp_unknown_spi", outer_kw={"dst": "203.0.113.1"})  # ours, not the endpoint
c.send("d0", G, tg.outer(tg.encrypt(inner(), 103)))               # same address, other underlay
c.drop("esp_unknown_spi")
c.send("h0", H1, tg.outer(tg.encrypt(inner(), 104), src="10.0.1.10", dst="10.0.1.1"))
c.drop("esp_unknown_spi")                                         # ESP inside hosp itself

# --- truncated -----------------------------------------------------------------------------
c.send("c0", G, raw_esp(b"\x00\x00\x03\xf3"))                     # not even SPI + sequence
c.drop("esp_truncated")
full = tg.encrypt(inner(), 105)
c.send("c0", G, raw_esp(full[:8 + 8 + 1] + full[-16:]))           # 1 byte of ciphertext
c.drop("esp_truncated")
c.send("c0", G, raw_esp(full[:8 + 8 + 6] + full[-16:]))           # not 4-byte aligned
c.drop("esp_truncated")
c.send("c0", G, raw_esp(full[:8 + 8] + full[-16:]))               # no ciphertext at all
c.drop("esp_truncated")

# --- trailer (valid ICV over what is sent) -------------------------------------------------
p = inner(size=39)   # 67 bytes + 3 of padding + 2 = 72, a multiple of 4 as GCM needs
bad(tg, G, 106, "esp_bad_padding", p=p, padding=b"\x01\x02\x04")
bad(tg, G, 107, "esp_bad_padding", p=inner(size=40), padding=b"\x00\x00", padlen=2)
bad(tg, G, 108, "esp_bad_padding", p=inner(size=40), padding=b"\x01\x02", padlen=200)
bad(tg, G, 109, "esp_bad_next_header", nh=41)
bad(tg, G, 110, "esp_bad_next_header", nh=17)
ipv6 = bytes.fromhex("6000000000083b40") + bytes(32) + b"\x00" * 8
bad(tg, G, 111, "esp_bad_next_header", p=ipv6, crafted=True)
# RFC 4303 2.7: TFC padding after the inner packet, removed by its total length
p = inner()
e.send_esp("c0", G, tg, p, 112, tfc=b"\xee" * 24)
c.expect("h0", H1, forwarded(p))
lying = bytearray(inner())
lying[2:4] = (len(lying) + 8).to_bytes(2, "big")                  # claims 8 more bytes
lying[10:12] = b"\0\0"
lying[10:12] = ip_header_checksum(bytes(lying[:20])).to_bytes(2, "big")
bad(tg, G, 113, "ip_bad_total_length", p=bytes(lying), crafted=True)

# --- selectors ----------------------------------------------------------------------------
bad(tg, G, 114, "esp_selector_mismatch", p=inner(src="10.99.0.5"))
bad(tg, G, 115, "esp_selector_mismatch", p=inner(dst="10.0.2.1"))
# inside the selectors, routed into a blackhole in hosp: not into clinic, which has 10.50/16
bad(tg, G, 116, "blackhole", p=inner(dst="10.50.0.1"))

# --- ECN: outer CE on a not-ECT inner packet (RFC 6040 4.2) -------------------------------
bad(tg, G, 117, "esp_ecn", p=inner(tos=0x00), outer_kw={"tos": 0x03})

# --- fragments of ESP: medix-dp does not reassemble ---------------------------------------
for f in fragment(IP(tg.outer(tg.encrypt(inner(size=600), 118), id=0x777)), fragsize=256):
    c.send("c0", G, bytes(f))
    c.drop("local_fragment")

# --- tc: CBC + HMAC with ESN over UDP 4500 -------------------------------------------------
good(tc, T, 1)
bad(tc, T, 2, "esp_bad_icv", bad_icv=True)
bad(tc, T, 1, "esp_replayed")
p = inner(src="10.13.0.5", size=40)     # 68 bytes + 2: 10 bytes of padding to 80
bad(tc, T, 3, "esp_bad_padding", p=p, padding=bytes([1, 2, 3, 4, 5, 6, 7, 8, 9, 11]))
bad(tc, T, 4, "esp_bad_next_header", p=inner(src="10.13.0.5"), nh=0)
good(tc, T, 5)
ok = tc.encrypt(inner(src="10.13.0.5"), 6)
udp = lambda esp: bytes(IP(src="198.51.100.13", dst="198.51.100.1", id=9)
                        / UDP(sport=4500, dport=4500, chksum=0) / Raw(esp))
c.send("c0", T, udp(ok[:8 + 16 + 20] + ok[-16:]))        # 20 bytes: not a multiple of 16
c.drop("esp_truncated")
c.send("c0", T, udp(ok[:8]))                             # SPI and sequence only
c.drop("esp_truncated")
for f in fragment(IP(tc.outer(tc.encrypt(inner(src="10.13.0.5", size=600), 7), id=0x778)),
                  fragsize=256):
    c.send("c0", T, bytes(f))
    c.drop("local_fragment")

# --- not ESP on the NAT-T port ------------------------------------------------------------
ka = IP(src="198.51.100.13", dst="198.51.100.1") / UDP(sport=4500, dport=4500) / Raw(b"\xff")
c.send("c0", T, ka)
c.drop("nat_keepalive")
ike = bytes(8) + b"\x00" * 20   # non-ESP marker, then the start of an IKE header
c.send("c0", T, IP(src="198.51.100.13", dst="198.51.100.1") / UDP(sport=4500, dport=4500) / Raw(ike))
c.drop("ike_no_listener")
c.send("c0", T, IP(src="198.51.100.13", dst="198.51.100.1") / UDP(sport=500, dport=500) / Raw(ike[4:]))
c.drop("ike_no_listener")

e.write()
