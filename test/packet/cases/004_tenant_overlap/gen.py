#!/usr/bin/python3
"""Two tenants with the same prefixes (10.0.0.0/24 connected, 172.16.0.0/16 routed, even the
same gateway address 10.0.0.2 and the same interface address 192.168.1.1): each packet stays
in the tenant of its ingress interface and leaves by that tenant's interface."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)
RED_H, BLUE_H = H1, H2          # 192.168.1.10 in red and in blue
RED_C, BLUE_C = H3, H4          # 10.0.0.5 in red and in blue

def fwd(in_if, src_mac, ip, out_if, dst_mac):
    c.send(in_if, src_mac, ip)
    c.expect(out_if, dst_mac, forwarded(ip))

def udp(src, dst, tag):
    return IP(src=src, dst=dst, ttl=64, id=len(tag)) / UDP(sport=1111, dport=2222) / Raw(tag)

# the same destinations from both tenants
fwd("red0", RED_H, udp("192.168.1.10", "172.16.1.1", b"red routed"), "red1", GW1)
fwd("blue0", BLUE_H, udp("192.168.1.10", "172.16.1.1", b"blue routed"), "blue1", GW2)
fwd("red0", RED_H, udp("192.168.1.10", "10.0.0.5", b"red connected"), "red1", RED_C)
fwd("blue0", BLUE_H, udp("192.168.1.10", "10.0.0.5", b"blue connected"), "blue1", BLUE_C)
fwd("blue0", BLUE_H, udp("192.168.1.10", "172.18.0.1", b"blue only"), "blue1", GW3)

# a prefix only the other tenant has: no route, ICMP net unreachable in the own tenant
p = udp("192.168.1.10", "172.17.0.1", b"red-only prefix from blue")
c.send("blue0", BLUE_H, p)
c.drop("no_route")
c.expect_icmp_error("blue0", BLUE_H, p, 3, 0)
p = udp("192.168.1.10", "172.18.0.1", b"blue-only prefix from red")
c.send("red0", RED_H, p)
c.drop("no_route")
c.expect_icmp_error("red0", RED_H, p, 3, 0)

# echo to the same local address in each tenant: answered out of the own interface
for iface, mac in (("red0", RED_H), ("blue0", BLUE_H)):
    req = IP(src="192.168.1.10", dst="192.168.1.1", ttl=64, id=0) / ICMP(type=8, id=0x42, seq=len(iface)) / Raw(iface.encode())
    c.send(iface, mac, req)
    c.expect(iface, mac, echo_reply(req), stream="echo")

# back from the far side of each tenant
fwd("red1", GW1, udp("172.16.1.1", "192.168.1.10", b"red reply"), "red0", RED_H)
fwd("blue1", GW2, udp("172.16.1.1", "192.168.1.10", b"blue reply"), "blue0", BLUE_H)

c.write()
