#!/usr/bin/python3
"""Static neighbours are never overwritten by ARP: an unsolicited reply and a request that
claim the gateway's and a host's address with another MAC change nothing; traffic (fed on the
other port, after filler frames on p0) still goes to the configured MACs. The request asked
for our address, so it is answered, to the MAC that asked."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

EVIL = "02:ee:00:00:00:66"
HOST7 = "02:aa:00:00:00:07"  # static neighbour 10.1.0.7 in config.json
FILLER = 320
c = Case(__file__)
M0 = c.mac("u0")
c.send("u0", EVIL, ARP(op=2, hwsrc=EVIL, psrc="10.1.0.2", hwdst=M0, pdst="10.1.0.1"))
c.send("u0", EVIL, ARP(op=1, hwsrc=EVIL, psrc="10.1.0.7", hwdst=ZERO_MAC, pdst="10.1.0.1"), dst_mac=BROADCAST)
c.expect("u0", EVIL, ARP(op=2, hwsrc=M0, psrc="10.1.0.1", hwdst=EVIL, pdst="10.1.0.7"), stream="arp")
c.event("arp_replies_sent")
for i in range(FILLER):
    c.send("u0", H3, IP(src="10.1.0.9", dst="10.1.0.1", id=i) / UDP(sport=9, dport=9), dst_mac=OTHER_MAC)
c.drop("l2_not_for_us", FILLER)
# on p1 (polled in turn with p0)
for i in range(3):
    p = IP(src="10.2.0.5", dst="10.10.0.%d" % (i + 1), id=i) / UDP(sport=1, dport=2) / Raw(b"to the gateway")
    c.send("u1", H2, p)
    c.expect("u0", GW1, forwarded(p))
    p = IP(src="10.2.0.5", dst="10.1.0.7", id=10 + i) / UDP(sport=1, dport=2) / Raw(b"to the host")
    c.send("u1", H2, p)
    c.expect("u0", HOST7, forwarded(p))

c.write()
