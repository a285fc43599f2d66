#!/usr/bin/python3
"""Frames shorter than their L2 headers: l2_truncated (runts, a VLAN tag cut short, QinQ cut
in the inner tag or before the ethertype). A good frame after them still passes."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)
M0, MV, MQ = c.mac("u0"), c.mac("v10"), c.mac("q0")
mac = lambda m: bytes.fromhex(m.replace(":", ""))
et = lambda t: t.to_bytes(2, "big")

truncated = [
    b"\x02",                                                          # 1 byte
    mac(M0) + mac(H1)[:4],                                            # 10 bytes
    mac(M0) + mac(H1) + b"\x08",                                      # 13 bytes: half an ethertype
    mac(MV) + mac(H1) + et(ETH_P_8021Q),                              # 14: tag missing
    mac(MV) + mac(H1) + et(ETH_P_8021Q) + b"\x00",                    # 15: half a TCI
    mac(MV) + mac(H1) + et(ETH_P_8021Q) + b"\x00\x0a",                # 16: no ethertype after the tag
    mac(MV) + mac(H1) + et(ETH_P_8021Q) + b"\x00\x0a\x08",            # 17
    mac(MQ) + mac(H1) + et(ETH_P_8021AD) + b"\x00\x64",               # 16: S-tag, nothing after
    mac(MQ) + mac(H1) + et(ETH_P_8021AD) + b"\x00\x64" + et(ETH_P_8021Q),            # 18: no C-tag TCI
    mac(MQ) + mac(H1) + et(ETH_P_8021AD) + b"\x00\x64" + et(ETH_P_8021Q) + b"\x00\xc8",  # 20: no ethertype
    mac(MQ) + mac(H1) + et(ETH_P_8021Q) + b"\x00\x64" + et(ETH_P_8021Q) + b"\x00",       # 19
]
for f in truncated:
    c.send_raw("p0", f)
    c.drop("l2_truncated")

good = IP(src="10.1.0.5", dst="10.20.0.1", id=1) / UDP(sport=1, dport=2) / Raw(b"after the runts")
c.send("u0", H1, good)
c.expect("u1", GW2, forwarded(good))

c.write()
