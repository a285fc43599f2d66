#!/usr/bin/python3
"""ip_input's RFC 1812 checks, each with its reason, in order: ip_truncated, ip_bad_version,
ip_bad_ihl, ip_bad_total_length (too small and beyond the frame), ip_bad_checksum. Every
other field is right (the checksum matches unless it is the point), so only the intended
check can fire. A good packet passes after them. (A header longer than the whole frame is
case 024.)"""
import os, struct, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

def hdr(version=4, ihl=5, total=None, payload=b"", fix_checksum=True, csum_delta=0, opts=b""):
    """A raw IPv4 header (+ options + payload) with chosen version/IHL/total length."""
    body = opts + payload
    total = 20 + len(body) if total is None else total
    h = bytearray(struct.pack("!BBHHHBBH4s4s", (version << 4) | ihl, 0, total, 0x1234, 0, 64, 17, 0,
                              bytes([10, 1, 0, 5]), bytes([10, 20, 0, 1])) + opts)
    if fix_checksum:
        n = max(20, min(len(h), ihl * 4))
        cs = (ip_header_checksum(bytes(h[:n])) + csum_delta) & 0xFFFF
        h[10:12] = struct.pack("!H", cs)
    return bytes(h) + payload

udp8 = bytes(UDP(sport=1, dport=2, len=8, chksum=0))

def bad(reason, ip, iface="u0", mac=H1):
    c.send(iface, mac, ip, ethertype=ETH_P_IP)
    c.drop(reason)

bad("ip_truncated", b"")                                     # Ethernet header alone
bad("ip_truncated", hdr(payload=udp8)[:19])                  # 19 bytes
bad("ip_truncated", hdr()[:10], iface="q0", mac=H2)
bad("ip_bad_version", hdr(version=6, payload=udp8))
bad("ip_bad_version", hdr(version=5, payload=udp8))
bad("ip_bad_version", hdr(version=0, payload=udp8), iface="v10")
bad("ip_bad_ihl", hdr(ihl=4, payload=udp8))
bad("ip_bad_ihl", hdr(ihl=0, payload=udp8))
bad("ip_bad_total_length", hdr(total=19, payload=udp8))                 # < 20
bad("ip_bad_total_length", hdr(total=0, payload=udp8))
bad("ip_bad_total_length", hdr(ihl=6, total=22, opts=b"\x01\x01\x01\x00", payload=udp8))  # < IHL*4
bad("ip_bad_total_length", hdr(ihl=15, total=40, payload=bytes(40))[:60] + bytes(20))  # IHL 60 > total 40, frame 80
bad("ip_bad_total_length", hdr(total=29, payload=udp8))                 # one beyond the frame
bad("ip_bad_total_length", hdr(total=1500, payload=udp8))
bad("ip_bad_total_length", hdr(ihl=6, total=48, opts=b"\x01\x01\x01\x00", payload=udp8), iface="q0", mac=H2)
bad("ip_bad_checksum", hdr(payload=udp8, csum_delta=1))
bad("ip_bad_checksum", hdr(payload=udp8, fix_checksum=False))           # checksum 0, should not be
bad("ip_bad_checksum", hdr(ihl=6, opts=b"\x01\x01\x01\x00", payload=udp8, csum_delta=0x100))
bad("ip_bad_checksum", hdr(payload=udp8, csum_delta=-1), iface="v10")

good = IP(src="10.1.0.5", dst="10.20.0.1", id=1) / UDP(sport=1, dport=2) / Raw(b"after the bad ones")
c.send("u0", H1, good)
c.expect("u1", GW2, forwarded(good))

c.write()
