#!/usr/bin/python3
"""Anything but ARP and IPv4, addressed to the interface's MAC, is unsupported_ethertype:
IPv6, unknown types, an 802.3 length field, a third VLAN tag."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *
from scapy.layers.inet6 import IPv6

c = Case(__file__)
v6 = bytes(IPv6(src="2001:db8::5", dst="2001:db8::1") / UDP(sport=1, dport=2) / Raw(b"six"))
M0, MV, MQ = c.mac("u0"), c.mac("v10"), c.mac("q0")
frames = [
    l2(M0, H1, ethertype=ETH_P_IPV6) + v6,
    l2(MV, H1, vlan=10, ethertype=ETH_P_IPV6) + v6,
    l2(MQ, H1, vlan=100, inner_vlan=200, ethertype=ETH_P_IPV6) + v6,
    l2(M0, H1, ethertype=0x88B5) + b"local experimental" + bytes(28),
    l2(M0, H1, ethertype=0x8847) + bytes(46),                          # MPLS
    l2(M0, H1, ethertype=0x8035) + bytes(46),                          # RARP
    l2(M0, H1, ethertype=46) + b"\xaa\xaa\x03" + bytes(43),            # 802.3 length + LLC
    l2(MQ, H1, vlan=100, inner_vlan=200, ethertype=ETH_P_8021Q) + b"\x00\x05\x08\x00" + bytes(IP(src="10.7.0.5", dst="10.20.0.1") / UDP()),  # third tag
]
for f in frames:
    c.send_raw("p0", f)
    c.drop("unsupported_ethertype")

good = IP(src="10.1.0.5", dst="10.20.0.1", id=1) / UDP(sport=1, dport=2) / Raw(b"after them")
c.send("u0", H1, good)
c.expect("u1", GW2, forwarded(good))

c.write()
