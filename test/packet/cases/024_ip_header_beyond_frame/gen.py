#!/usr/bin/python3
"""An IPv4 header whose IHL reaches beyond the frame (IHL 15 = 60 bytes, total length 40,
40 bytes of IP in the frame). forwarding.md's checks, in order: ip_bad_ihl is IHL < 5 or a
header that runs past the frame, so it is found before the total length is looked at."""
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


bad("ip_bad_ihl", hdr(ihl=15, total=40, payload=bytes(20)))   # 40 bytes of IP in the frame
bad("ip_bad_ihl", hdr(ihl=15, total=59, payload=bytes(39)))   # one byte short of the header

c.write()
