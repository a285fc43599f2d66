#!/usr/bin/python3
"""TTL 1 on a packet that would cross the core: ttl_expired, and the ICMP time exceeded goes
back to the sender as forwarding.md and README.md ("Conventions") say for errors found up to
ip_lookup: from the ingress interface's first address (10.0.0.1), to the address the packet
came from (10.0.0.5, not its core translation), quoting the header as received (TTL 1, the
sender's own addresses). docs/nat.md: no untranslatable address enters another tenant, so the
quote must not carry the archive's inside address (192.168.1.10) into a hospital, nor the
pool address into the clinic. The same for a NAPT sender."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixnat import *

c = NatCase(__file__)

p = IP(src="10.0.0.5", dst="100.100.2.10", ttl=1, id=1) / UDP(sport=5000, dport=53) / Raw(b"ttl one")
c.send("a0", H1, p)
c.drop("ttl_expired")
c.expect_icmp_error("a0", H1, p, 11, 0)
p = IP(src="10.0.0.6", dst="100.100.2.10", ttl=1, id=2) / UDP(sport=5000, dport=53) / Raw(b"ttl one napt")
c.send("c0", H4, p)
c.drop("ttl_expired")
c.expect_icmp_error("c0", H4, p, 11, 0)

c.write()
