#!/usr/bin/python3
"""Sends one ESP frame as a tunnel peer would (test/netns/trace.sh): a UDP datagram inside,
encrypted by scapy with the inbound SA of the config's tunnel (test/packet/lib/medixesp.py).

Usage: esp_send.py CONFIG TUNNEL SPI SEQ INNER_SRC INNER_DST DPORT DST_MAC IFACE"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "packet", "lib"))
from medixesp import Sa  # noqa: E402
from scapy.all import IP, UDP, Ether, Raw, get_if_hwaddr, sendp  # noqa: E402


def main():
    config, tunnel, spi, seq, src, dst, dport, mac, iface = sys.argv[1:]
    c = json.load(open(config))
    t = next(x for x in c["tunnels"] if x["name"] == tunnel)
    sa = next(x for x in c["sas"] if x["spi"] == int(spi, 0) and x.get("inbound"))
    s = Sa.from_config(sa, t)
    inner = bytes(IP(src=src, dst=dst, ttl=64) / UDP(sport=40000, dport=int(dport)) / Raw(b"medix trace"))
    outer = s.outer(s.encrypt(inner, int(seq)))
    sendp(Ether(dst=mac, src=get_if_hwaddr(iface)) / IP(outer), iface=iface, verbose=False)


main()
