#!/usr/bin/python3
"""IPv4 options are carried unchanged: only TTL and header checksum change (record route and
timestamp too: forwarding.md says unchanged). Up to the largest header, IHL 15."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

def fwd(p, iface="u0", mac=H1):
    c.send(iface, mac, p)
    c.expect("u1", GW2, forwarded(p))

def opt(i, raw_opts, payload=b"options"):
    p = IP(src="10.1.0.5", dst="10.20.0.%d" % i, id=i, ttl=64, options=[]) / UDP(sport=1, dport=2) / Raw(payload)
    b = bytearray(bytes(p))
    assert len(raw_opts) % 4 == 0
    b = b[:20] + raw_opts + b[20:]
    b[0] = 0x40 | (5 + len(raw_opts) // 4)
    b[2:4] = len(b).to_bytes(2, "big")
    b[10:12] = ip_header_checksum(bytes(b[:20 + len(raw_opts)])).to_bytes(2, "big")
    return bytes(b)

fwd(opt(1, b"\x01\x01\x01\x00"))                                   # NOP NOP NOP EOL
fwd(opt(2, b"\x94\x04\x00\x00"))                                   # router alert
fwd(opt(3, b"\x07\x0f\x04" + bytes(12) + b"\x00"))                 # record route, 3 empty slots
fwd(opt(4, b"\x44\x0c\x05\x00" + bytes(8)))                        # timestamp, 2 empty slots
fwd(opt(5, b"\x01" * 39 + b"\x00"))                                # 40 bytes of options: IHL 15
fwd(opt(6, b"\x83\x07\x04\x0a\x14\x00\x01\x00"))                   # loose source route (not acted on)
p = IP(bytes(opt(7, b"\x94\x04\x00\x00", payload=b"tagged")))
fwd(p, iface="q0", mac=H2)

c.write()
