#!/usr/bin/python3
"""Colour-aware policing (RFC 2697 and 2698 "color-aware mode", RFC 4115 likewise): the colour
a packet comes in with is its DSCP's AF drop precedence (RFC 2597: AFx1 green, AFx2 yellow,
AFx3 red; docs/qos.md), and the meter can only make it worse. Three policers, one on each of
v10, v20, v30, at 1 byte a second: in the case's time the buckets hold what they started
with. Every packet is 100 bytes of IPv4 with ECN 01 (kept by a remark). The colours below are
each RFC's arithmetic on the bucket contents, written out here; the per-colour counters and
the actions (transmit, remark, drop) are checked.

srTCM (v10, C 1500, E 1500; yellow: remark AF12, red: drop):
  5 AF12 while C is full: yellow, never green (E 1500 -> 1000)
  3 AF13: red, dropped, no tokens taken
  10 AF11: green (C 1500 -> 500)
  10 AF11: 5 green (C -> 0), 5 yellow (E 1000 -> 500), remarked AF12
  6 AF12: 5 yellow (E -> 0), 1 red
  2 AF11: red (both empty)
  green 15, yellow 15, red 6 (dropped 6)

trTCM (v20, C 1500, P 2500; green transmit, yellow remark AF22, red remark AF23):
  5 AF22 while both are full: yellow, takes from P only (P 2500 -> 2000)
  3 AF23: red (with P full), no tokens taken, remarked AF23 (as it came)
  12 AF21: green (C 1500 -> 300, P 2000 -> 800)
  5 AF21: 3 green (C -> 0, P -> 500), 2 yellow (P -> 300)
  5 AF22: 3 yellow (P -> 0), 2 red
  green 15, yellow 10, red 5 (none dropped: a marker)

RFC 4115 (v30, C 1500, E 2000; green and yellow transmit, red drop):
  4 AF32 while C is full: yellow (E 2000 -> 1600)
  2 AF33: red, dropped
  18 AF31: 15 green (C -> 0), 3 yellow (E -> 1300)
  14 AF32: 13 yellow (E -> 0), 1 red
  1 best effort (DSCP 0, green in): red (both empty)
  green 15, yellow 20, red 4 (dropped 4)
"""
import os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "lib"))
from medixpkt import *

HOST1 = "02:aa:00:00:01:07"  # static neighbour in config.json
ECN = 0x01
c = Case(__file__)
n = 0


def packet(iface, dscp):
    global n
    n += 1
    p = IP(src=c.addr(iface)[:-1] + "9", dst="10.2.0.7", id=n, tos=dscp << 2 | ECN) / UDP(sport=7, dport=9) / Raw(b"x" * 72)
    assert len(p) == 100
    return p


def run(iface, steps):
    """steps: (DSCP in, [the colours, in order]); actions: {colour: None (transmit), 'drop' or
    a DSCP to remark to}."""
    counts = {"green": 0, "yellow": 0, "red": 0}
    for dscp, colours, actions in steps:
        for colour in colours:
            p = packet(iface, dscp)
            c.send(iface, H2, p)
            counts[colour] += 1
            a = actions[colour]
            if a == "drop":
                c.drop("policed")
                continue
            out = p.copy()
            if a is not None:
                out[IP].tos = a << 2 | ECN
            c.expect("u1", HOST1, forwarded(out))
    return counts


AF11, AF12, AF13 = 10, 12, 14
AF21, AF22, AF23 = 18, 20, 22
AF31, AF32, AF33 = 26, 28, 30
G, Y, R = "green", "yellow", "red"

sr = {G: None, Y: AF12, R: "drop"}
counts = run("v10", [(AF12, [Y] * 5, sr), (AF13, [R] * 3, sr), (AF11, [G] * 10, sr),
                     (AF11, [G] * 5 + [Y] * 5, sr), (AF12, [Y] * 5 + [R], sr), (AF11, [R] * 2, sr)])
assert counts == {G: 15, Y: 15, R: 6}
c.counters("policers", "srtcm_aware", green_packets=15, green_bytes=1500, yellow_packets=15,
           yellow_bytes=1500, red_packets=6, red_bytes=600, dropped=6)

tr = {G: None, Y: AF22, R: AF23}
counts = run("v20", [(AF22, [Y] * 5, tr), (AF23, [R] * 3, tr), (AF21, [G] * 12, tr),
                     (AF21, [G] * 3 + [Y] * 2, tr), (AF22, [Y] * 3 + [R] * 2, tr)])
assert counts == {G: 15, Y: 10, R: 5}
c.counters("policers", "trtcm_aware", green_packets=15, green_bytes=1500, yellow_packets=10,
           yellow_bytes=1000, red_packets=5, red_bytes=500, dropped=0)

rfc = {G: None, Y: None, R: "drop"}
counts = run("v30", [(AF32, [Y] * 4, rfc), (AF33, [R] * 2, rfc), (AF31, [G] * 15 + [Y] * 3, rfc),
                     (AF32, [Y] * 13 + [R], rfc), (0, [R], rfc)])
assert counts == {G: 15, Y: 20, R: 4}
c.counters("policers", "rfc4115_aware", green_packets=15, green_bytes=1500, yellow_packets=20,
           yellow_bytes=2000, red_packets=4, red_bytes=400, dropped=4)

c.write()
