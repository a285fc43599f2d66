#!/usr/bin/python3
"""QinQ: 802.1ad outer (0x88a8) + 802.1Q inner. Interfaces are found by (port, outer, inner);
an outer 0x8100 tag is accepted as well (forwarding.md: "An 802.1Q (0x8100) or 802.1ad
(0x88a8) tag gives the outer VLAN"), a lone 0x88a8 tag selects the single-tag interface,
and frames always leave a QinQ interface with a 0x88a8 outer tag."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

def fwd(in_if, src_mac, ip, out_if, dst_mac, outer_type=None):
    c.send(in_if, src_mac, ip, outer_type=outer_type)
    c.expect(out_if, dst_mac, forwarded(ip))

n = 0
def udp(src, dst, ttl=64):
    global n
    n += 1
    return IP(src=src, dst=dst, ttl=ttl, id=300 + n) / UDP(sport=3000 + n, dport=4000) / Raw(b"qinq %d" % n)

# from p0
fwd("q1", H1, udp("10.10.0.5", "10.20.0.1"), "q2", GW2)                 # 100/200 -> 300/400
fwd("q1", H1, udp("10.10.0.5", "10.40.0.1"), "u1", GW4)                 # 100/200 -> untagged
fwd("q3", GW3, udp("10.30.0.5", "10.20.0.2"), "q2", GW2)                # 100/201 -> 300/400
fwd("d1", H1, udp("10.60.0.5", "10.20.0.3"), "q2", GW2)                 # 100 (0x8100) -> 300/400
fwd("q1", H1, udp("10.10.0.5", "10.20.0.4"), "q2", GW2, ETH_P_8021Q)    # 0x8100 outer 100/200
fwd("d1", H1, udp("10.60.0.5", "10.40.0.2"), "u1", GW4, ETH_P_8021AD)   # lone 0x88a8 tag 100
fwd("q1", H1, udp("10.10.0.5", "10.30.0.1"), "q3", GW3)                 # 100/200 -> 100/201, same port
fwd("q3", GW3, udp("10.30.0.5", "10.60.0.1"), "d1", H1)                 # 100/201 -> 100, same port
# from p1
fwd("q2", GW2, udp("10.20.0.1", "10.10.0.5"), "q1", GW1)                # 300/400 -> 100/200
fwd("u1", GW4, udp("10.40.0.1", "10.10.0.6"), "q1", GW1)                # untagged -> 100/200
fwd("q2", GW2, udp("10.20.0.1", "10.60.0.7"), "d1", H1, ETH_P_8021Q)    # 0x8100 outer 300/400 -> 100

c.write()
