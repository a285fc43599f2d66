#!/usr/bin/python3
"""Static mappings both ways: two hospitals with the same plan (10.0.0.0/24, same host) reach
one archive; the archive sees two distinct core addresses and its replies go back to the right
hospital; policy permits hosp-a only TCP 104, hosp-b anything; replies follow the session."""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

c = Case(__file__)
A, B, R = H1, H2, H3


def xlated(p, src, dst, ttl_dec=1):
    """`p` as it leaves after crossing the core: new addresses, TTL - 1, every checksum
    computed from scratch by scapy."""
    q = IP(bytes(p))
    q.src, q.dst = src, dst
    q.ttl -= ttl_dec
    del q.chksum
    if q.haslayer(TCP):
        del q[TCP].chksum
    if q.haslayer(UDP) and q[UDP].chksum != 0:
        del q[UDP].chksum
    if q.haslayer(ICMP):
        del q[ICMP].chksum
    return bytes(IP(bytes(q)))


# hosp-a 10.0.0.5:40000 -> archive core address 100.100.2.10:104 (SYN), and the SYN-ACK back
p = IP(src="10.0.0.5", dst="100.100.2.10", id=1) / TCP(sport=40000, dport=104, flags="S", seq=1000)
c.send("a0", A, p)
c.expect("r0", R, xlated(p, "100.64.1.5", "192.168.1.10"))
r = IP(src="192.168.1.10", dst="100.64.1.5", id=2) / TCP(sport=104, dport=40000, flags="SA", seq=5000, ack=1001)
c.send("r0", R, r)
c.expect("a0", A, xlated(r, "100.100.2.10", "10.0.0.5"))

# hosp-b, same host and port, same archive: a different core source
p = IP(src="10.0.0.5", dst="100.100.2.10", id=3) / TCP(sport=40000, dport=104, flags="S", seq=7000)
c.send("b0", B, p)
c.expect("r0", R, xlated(p, "100.64.2.5", "192.168.1.10"))
r = IP(src="192.168.1.10", dst="100.64.2.5", id=4) / TCP(sport=104, dport=40000, flags="SA", seq=9000, ack=7001)
c.send("r0", R, r)
c.expect("b0", B, xlated(r, "100.100.2.10", "10.0.0.5"))

# hosp-b UDP with checksum, and UDP with checksum 0 (stays 0)
p = IP(src="10.0.0.5", dst="100.100.2.10", id=5) / UDP(sport=5000, dport=53) / Raw(b"query")
c.send("b0", B, p)
c.expect("r0", R, xlated(p, "100.64.2.5", "192.168.1.10"))
p = IP(src="10.0.0.5", dst="100.100.2.10", id=6) / UDP(sport=5001, dport=53, chksum=0) / Raw(b"nosum")
c.send("b0", B, p)
c.expect("r0", R, xlated(p, "100.64.2.5", "192.168.1.10"))

# hosp-b ICMP echo and its reply (static: identifier kept)
p = IP(src="10.0.0.5", dst="100.100.2.10", id=7) / ICMP(type=8, id=77, seq=1) / Raw(b"ping")
c.send("b0", B, p)
c.expect("r0", R, xlated(p, "100.64.2.5", "192.168.1.10"))
r = IP(src="192.168.1.10", dst="100.64.2.5", id=8) / ICMP(type=0, id=77, seq=1) / Raw(b"ping")
c.send("r0", R, r)
c.expect("b0", B, xlated(r, "100.100.2.10", "10.0.0.5"))

# hosp-a to a port the policy does not permit: denied
p = IP(src="10.0.0.5", dst="100.100.2.10", id=9) / TCP(sport=40001, dport=22, flags="S")
c.send("a0", A, p)
c.drop("policy_denied")
# the archive may not start flows towards hospitals (no rule)
p = IP(src="192.168.1.10", dst="100.64.1.5", id=10) / TCP(sport=5555, dport=22, flags="S")
c.send("r0", R, p)
c.drop("policy_denied")
# an echo reply with no session
p = IP(src="192.168.1.10", dst="100.64.1.5", id=11) / ICMP(type=0, id=99, seq=1)
c.send("r0", R, p)
c.drop("nat_no_session")
# hosp-a source outside its mapping
p = IP(src="10.0.1.5", dst="100.100.2.10", id=12) / TCP(sport=40000, dport=104, flags="S")
c.send("a0", A, p)
c.drop("nat_no_mapping")

c.write()
