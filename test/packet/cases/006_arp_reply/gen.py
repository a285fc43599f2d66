#!/usr/bin/python3
"""ARP requests for our own addresses are answered out of the same interface with the same
tags; requests for other addresses (including another interface's) are arp_not_for_us."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)

def request(iface, mac, sender_ip, target_ip, dst=BROADCAST, answered=True):
    c.send(iface, mac, ARP(op=1, hwsrc=mac, psrc=sender_ip, hwdst=ZERO_MAC, pdst=target_ip), dst_mac=dst)
    if answered:
        c.expect(iface, mac, ARP(op=2, hwsrc=c.mac(iface), psrc=target_ip, hwdst=mac, pdst=sender_ip),
                 stream="arp")
        c.event("arp_replies_sent")
    else:
        c.drop("arp_not_for_us")

request("u0", H1, "10.1.0.5", "10.1.0.1")                   # broadcast, first address
request("u0", H2, "10.1.1.5", "10.1.1.1")                   # second address
request("u0", H3, "10.1.0.6", "10.1.0.1", dst=c.mac("u0"))  # unicast to our MAC
request("v10", H1, "10.5.0.5", "10.5.0.1")                  # 802.1Q
request("q0", H4, "10.7.0.5", "10.7.0.1")                   # QinQ: reply with 0x88a8/0x8100
request("q0", H4, "10.7.0.5", "10.7.0.1", answered=True)    # again: answered again
# not ours
request("u0", H1, "10.1.0.5", "10.1.0.99", answered=False)  # a neighbour's address
request("u0", H1, "10.1.0.5", "10.5.0.1", answered=False)   # another interface's address
request("q0", H4, "10.7.0.5", "10.1.0.1", answered=False)   # u0's address asked on q0
# an ARP request to somebody else's MAC is not for us at L2
c.send("u0", H1, ARP(op=1, hwsrc=H1, psrc="10.1.0.5", hwdst=ZERO_MAC, pdst="10.1.0.1"),
       dst_mac=OTHER_MAC)
c.drop("l2_not_for_us")

c.write()
