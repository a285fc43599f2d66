#!/usr/bin/python3
"""ARP resolution of a next hop. The packets for 10.20.0.0/16 (gateway 10.2.0.2, no static
neighbour) wait while one ARP request goes out of v1 (VLAN 7); the gateway's reply, fed into
p1, resolves it and the waiting packets leave in order.

net_pcap reads its file at once, so the reply must not be seen before the packets: it comes
after FILLER frames on p1 (to a foreign MAC: l2_not_for_us). With one worker polling p0 and p1
in turn, the packets on p0 are processed many bursts before the reply."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

FILLER = 320  # 10 bursts of 32

c = Case(__file__)
pkts = [IP(src="10.1.0.5", dst="10.20.0.%d" % i, ttl=64, id=i) / UDP(sport=1000 + i, dport=53) / Raw(b"wait %d" % i)
        for i in range(1, 4)]
for p in pkts:
    c.send("u0", H1, p)
# out of v1: one ARP request (from v1's address, broadcast, same tag), then the packets
c.expect_arp_request("v1", "10.2.0.2", stream="fwd")
for p in pkts:
    c.expect("v1", GW2, forwarded(p))

for i in range(FILLER):
    c.send("v1", GW3, IP(src="10.2.0.9", dst="10.2.0.1", id=i) / UDP(sport=9, dport=9), dst_mac=OTHER_MAC)
c.drop("l2_not_for_us", FILLER)
# the gateway answers (unicast to v1's MAC); learning it is no drop
c.send("v1", GW2, ARP(op=2, hwsrc=GW2, psrc="10.2.0.2", hwdst=c.mac("v1"), pdst="10.2.0.1"))

c.write()
