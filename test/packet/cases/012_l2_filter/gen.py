#!/usr/bin/python3
"""l2_input: a frame whose (port, outer VLAN, inner VLAN) has no interface is unknown_vlan;
one whose destination MAC is not the interface's (nor broadcast for ARP) is l2_not_for_us.
One good packet passes, to show the rest is not dropped for a dull reason."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)
ip = lambda i: IP(src="10.1.0.5", dst="10.20.0.9", id=i) / UDP(sport=1, dport=2) / Raw(b"l2 %d" % i)

good = ip(0)
c.send("u0", H1, good)
c.expect("v20", GW2, forwarded(good))

M0 = c.mac("u0")
unknown = [
    ("p0", l2(M0, H1, vlan=11) + bytes(ip(1))),                              # VLAN 11 on p0
    ("p0", l2(c.mac("q0"), H1, vlan=100, inner_vlan=201) + bytes(ip(2))),    # 100/201
    ("p0", l2(c.mac("q0"), H1, vlan=101, inner_vlan=200) + bytes(ip(3))),    # 101/200
    ("p0", l2(c.mac("q0"), H1, vlan=100) + bytes(ip(4))),                    # 100 alone
    ("p0", l2(c.mac("v10"), H1, vlan=10, inner_vlan=5) + bytes(ip(5))),      # 10/5
    ("p0", l2(c.mac("v10"), H1, vlan=4095) + bytes(ip(6))),                  # VLAN 4095
    ("p1", l2(c.mac("v20"), H1) + bytes(ip(7))),                             # untagged on a tagged-only port
    ("p1", l2(c.mac("v20"), H1, vlan=10) + bytes(ip(8))),                    # VLAN 10 lives on p0
    ("p1", l2(BROADCAST, H1, ethertype=ETH_P_ARP)
     + bytes(ARP(op=1, hwsrc=H1, psrc="10.2.0.5", pdst="10.2.0.1"))),       # ARP, untagged on p1
]
for port, frame in unknown:
    c.send_raw(port, frame)
    c.drop("unknown_vlan")

not_for_us = [
    l2(OTHER_MAC, H1) + bytes(ip(10)),                      # someone else's MAC
    l2(BROADCAST, H1) + bytes(ip(11)),                      # broadcast is for ARP only
    l2("01:00:5e:00:00:05", H1) + bytes(ip(12)),            # IPv4 multicast
    l2(c.mac("v10"), H1) + bytes(ip(13)),                   # v10's MAC, but untagged (u0)
    l2(M0, H1, vlan=10) + bytes(ip(14)),                    # u0's MAC on VLAN 10 (v10)
    l2("03:00:00:00:00:01", H1, ethertype=ETH_P_ARP)
    + bytes(ARP(op=1, hwsrc=H1, psrc="10.1.0.5", pdst="10.1.0.1")),   # ARP to a multicast MAC
]
for frame in not_for_us:
    c.send_raw("p0", frame)
    c.drop("l2_not_for_us")

c.write()
