#!/usr/bin/python3
"""ICMP echo to a local address is answered from that address, TTL 64, out of the ingress
interface to the sender's MAC (with the ingress tags); anything else to a local address is
local_unsupported. Local delivery has no TTL check (only forwarded packets need TTL > 1)."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)
seq = 0

def echo(iface, mac, src, dst, ttl=64, data=b"abcdefgh", answered=True):
    global seq
    seq += 1
    req = IP(src=src, dst=dst, ttl=ttl, id=0) / ICMP(type=8, code=0, id=0x1234, seq=seq) / Raw(data)
    c.send(iface, mac, req)
    if answered:
        c.expect(iface, mac, echo_reply(req), stream="echo")

echo("u0", H1, "10.1.0.5", "10.1.0.1")                     # first address
echo("u0", H1, "10.1.0.5", "10.1.1.1")                     # second address
echo("u0", H2, "10.1.1.7", "10.2.0.1")                     # another interface's address
echo("u1", GW2, "10.20.3.3", "10.1.0.1")                   # from afar, via the other port
echo("q0", H3, "10.3.0.5", "10.3.0.1")                     # QinQ: reply with the same tags
echo("u0", H1, "10.1.0.5", "10.99.0.1")                    # a `local` route
echo("u0", H1, "10.1.0.5", "10.1.0.1", ttl=1)              # TTL 1 to a local address
echo("u0", H1, "10.1.0.5", "10.1.0.1", data=b"")           # no data
echo("u0", H1, "10.1.0.5", "10.1.0.1", data=bytes(range(256)) * 5 + b"odd")  # 1283 bytes of data

# IKE with no exception interface configured: ike_no_listener, nothing sent
c.send("u0", H1, IP(src="10.1.0.5", dst="10.1.0.1", id=0) / UDP(sport=500, dport=500) / Raw(b"ike"))
c.drop("ike_no_listener")

# not echo requests: local_unsupported, nothing sent
for p in (IP(src="10.1.0.5", dst="10.1.0.1", id=0) / TCP(sport=1, dport=179, flags="S"),
          IP(src="10.1.0.5", dst="10.1.0.1", id=0) / ICMP(type=0, id=1, seq=1),          # echo reply
          IP(src="10.1.0.5", dst="10.1.0.1", id=0) / ICMP(type=13),                        # timestamp
          IP(src="10.1.0.5", dst="10.99.0.1", id=0) / UDP(sport=1, dport=7)):
    c.send("u0", H1, p)
    c.drop("local_unsupported")

c.write()
