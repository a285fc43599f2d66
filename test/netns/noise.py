#!/usr/bin/python3
"""The noisy neighbour of test/netns/noisy.sh: one host that wastes every budget of medix-dp it
can reach, at once, through one raw socket (run it in the host's namespace).

  noise.py SRC SECONDS RATE SCAN_NET ARP_NET FLOW_DST IKE_DST
      For SECONDS, RATE packets a second of each kind, from SRC:
        scan  UDP to random addresses of SCAN_NET (unrouted: ICMP net unreachable each),
        arp   UDP to random addresses of ARP_NET (a connected subnet without those hosts),
        flow  UDP from random ports to FLOW_DST:9 (a new session crossing the core each),
        ike   UDP to IKE_DST:500 and :4500 (non-ESP marker: IKE, punted to medix-cp).
      Prints one JSON line: packets sent of each kind.
"""
import ipaddress
import json
import random
import socket
import struct
import sys
import time


def udp_packet(src, dst, sport, dport, payload):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload  # checksum 0: none
    # The kernel fills in the IPv4 checksum, the total length and (id 0) the id.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    return ip + udp


def main(argv):
    if len(argv) != 8:
        sys.exit(__doc__)
    src, seconds, rate = argv[1], float(argv[2]), int(argv[3])
    scan, arp = ipaddress.ip_network(argv[4]), ipaddress.ip_network(argv[5])
    flow_dst, ike_dst = argv[6], argv[7]
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    sock.setsockopt(socket.SOL_IP, socket.IP_HDRINCL, 1)
    rand = random.Random(21)
    pick = lambda net: str(net[rand.randrange(2, net.num_addresses - 1)])
    ike_body = bytes(4) + bytes(rand.randrange(256) for _ in range(28))  # non-ESP marker, then "IKE"
    sent = {"scan": 0, "arp": 0, "flow": 0, "ike": 0}
    start = time.monotonic()
    end = start + seconds
    tick = 0.01  # a round of each kind every 10 ms
    per_tick = max(1, int(rate * tick))
    next_tick = start
    while time.monotonic() < end:
        for _ in range(per_tick):
            packets = (("scan", udp_packet(src, pick(scan), 40000, 33434, b"scan")),
                       ("arp", udp_packet(src, pick(arp), 40001, 9, b"arp")),
                       ("flow", udp_packet(src, flow_dst, rand.randrange(1024, 65536), 9, b"flow")),
                       ("ike", udp_packet(src, ike_dst, 500, rand.choice((500, 4500)), ike_body)))
            for kind, packet in packets:
                try:
                    sock.sendto(packet, (socket.inet_ntoa(packet[16:20]), 0))
                    sent[kind] += 1
                except OSError:
                    pass  # a full queue: the next round tries again
        next_tick += tick
        pause = next_tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    sent["seconds"] = round(time.monotonic() - start, 2)
    print(json.dumps(sent), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
