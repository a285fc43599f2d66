#!/usr/bin/python3
"""802.1Q: tagged to tagged (other VLAN, other port and same port), tagged to untagged and
back; the egress frame carries the egress interface's tag, PCP 0."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

def fwd(in_if, src_mac, ip, out_if, dst_mac):
    c.send(in_if, src_mac, ip)
    c.expect(out_if, dst_mac, forwarded(ip))

n = 0
def udp(src, dst, ttl=64):
    global n
    n += 1
    return IP(src=src, dst=dst, ttl=ttl, id=100 + n) / UDP(sport=1000 + n, dport=2000) / Raw(b"dot1q %d" % n)

# from p0
fwd("v10", H1, udp("10.10.0.5", "10.20.0.1"), "v30", GW2)    # vlan 10 -> vlan 30 (p1)
fwd("v10", H1, udp("10.10.0.5", "10.40.0.1"), "u1", GW4)     # vlan 10 -> untagged (p1)
fwd("u0", H1, udp("10.50.0.5", "10.20.0.2"), "v30", GW2)     # untagged -> vlan 30 (p1)
fwd("v10", H1, udp("10.10.0.5", "10.60.0.1"), "v4094", H2)   # vlan 10 -> vlan 4094 (p1)
fwd("v10", H1, udp("10.10.0.5", "10.30.0.1"), "v20", GW3)    # vlan 10 -> vlan 20, same port
fwd("v20", GW3, udp("10.30.0.5", "10.10.0.1"), "v10", GW1)   # vlan 20 -> vlan 10, same port
fwd("u0", H1, udp("10.50.0.5", "10.30.0.9"), "v20", GW3)     # untagged -> vlan 20, same port
# from p1
fwd("v30", GW2, udp("10.20.0.1", "10.10.0.5"), "v10", GW1)   # vlan 30 -> vlan 10
fwd("u1", GW4, udp("10.40.0.1", "10.50.0.5"), "u0", H1)      # untagged -> untagged
fwd("v4094", H2, udp("10.60.0.1", "10.50.0.6"), "u0", H1)    # vlan 4094 -> untagged
fwd("u1", GW4, udp("10.40.0.1", "10.10.0.6"), "v10", GW1)    # untagged -> vlan 10

c.write()
