#!/usr/bin/python3
"""ARP that is not Ethernet/IPv4 or is truncated: arp_malformed (dataplane/infra/drop.h, the
drop table forwarding.md refers to). A request padded to the 60-byte minimum frame is answered
without the padding."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)
M0 = c.mac("u0")
req = ARP(op=1, hwsrc=H1, psrc="10.1.0.5", hwdst=ZERO_MAC, pdst="10.1.0.1")
for bad in (bytes(req)[:20],                       # truncated
            bytes(req)[:27],
            b"\x00\x06" + bytes(req)[2:],           # hardware type 6: not Ethernet
            bytes(req)[:2] + b"\x86\xdd" + bytes(req)[4:],  # protocol IPv6: not IPv4
            bytes(req)[:4] + b"\x08" + bytes(req)[5:],   # hardware address length 8
            bytes(req)[:5] + b"\x10" + bytes(req)[6:]):  # protocol address length 16
    c.send("u0", H1, bad, dst_mac=BROADCAST, ethertype=ETH_P_ARP)
    c.drop("arp_malformed")
# padded request: answered, 42-byte reply
c.send_raw("p0", padded(c.frame_in("u0", H1, req, dst_mac=BROADCAST), 60))
c.expect("u0", H1, ARP(op=2, hwsrc=M0, psrc="10.1.0.1", hwdst=H1, pdst="10.1.0.5"), stream="arp")
c.event("arp_replies_sent")

c.write()
