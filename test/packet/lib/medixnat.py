"""Helpers for the crossing-the-core cases (test/packet/cases/05x_*, docs/nat.md).

    from medixnat import *
    c = NatCase(__file__)    # a Case whose streams are per ingress and egress interface
    ph = Phases(c)           # packets of a later phase are processed after the earlier ones
    c.send(...)              # phase 0
    ph.next()
    c.send(...)              # phase 1: replies to what phase 0 made
    ph.finish()              # before c.write(): pads the ports with filler, declares its drops

Phases: net_pcap hands each port's whole file over at once and the one worker polls the
ports in turn, 32 frames (one burst) per port per round, processing each burst to the end
before the next port. So when every port's file is cut into slots of SLOT frames (the
phase's own frames, at most 32 per port, then filler frames to a MAC that is nobody's, dropped
as l2_not_for_us), the frames of phase k+1 are polled at least one whole round after every
port's frames of phase k were processed. README.md ("Order") describes the filler idea.
"""

import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from medixpkt import *  # noqa: F401,F403,E402
from medixpkt import IP, TCP, UDP, ICMP, Raw, OTHER_MAC, H1, Case, write_pcap  # noqa: E402
from scapy.utils import checksum  # noqa: E402

BURST = 32      # medix-dp's rx burst (dataplane/infra/limits.h)
SLOT = 3 * BURST


class NatCase(Case):
    """A Case whose default ordering stream is per (ingress, egress) interface: medix-dp groups
    a burst's packets by tenant at each FIB round, so what one interface sends to different
    tenants may leave in any order (forwarding.md orders a flow only)."""

    def expect(self, iface, dst_mac, payload, ethertype=None, stream=None):
        super().expect(iface, dst_mac, payload, ethertype, stream or f"fwd>{iface}")


class Phases:
    def __init__(self, case):
        self.c = case
        self.marks = []  # per phase boundary: {port: frames sent so far}
        self.waits = []  # per phase boundary: seconds to wait (timed phases) or None

    def next(self, wait_s=None):
        """Ends a phase. With wait_s, the case uses timed phases instead of filler (run.py
        feeds the ports through veth pairs, README.md): the next phase is fed wait_s seconds
        after every frame of this one was received."""
        self.marks.append({p: len(self.c.sends.get(p, [])) for p in self.c.ports})
        self.waits.append(wait_s)

    def filler(self, port, i):
        iface = next(n for n, x in self.c.ifaces.items() if x["port"] == port)
        payload = IP(src="192.0.2.1", dst="192.0.2.2", id=i & 0xFFFF) / UDP(sport=9, dport=9)
        return self.c.frame_in(iface, H1, payload, dst_mac=OTHER_MAC)

    def finish(self):
        if not self.marks:
            return
        if any(w is not None for w in self.waits):
            return self._timed()
        n_fill = 0
        for port in self.c.ports:
            frames = self.c.sends.get(port, [])
            cuts = [0] + [m[port] for m in self.marks] + [len(frames)]
            out = []
            for k in range(len(cuts) - 1):
                seg = frames[cuts[k]:cuts[k + 1]]
                assert len(seg) <= BURST, f"phase {k} has {len(seg)} frames on {port} (max {BURST})"
                out += seg
                if k < len(cuts) - 2:
                    for _ in range(SLOT - len(seg)):
                        out.append(self.filler(port, n_fill))
                        n_fill += 1
            self.c.sends[port] = out
        self.c.drop("l2_not_for_us", n_fill)
        self.marks = []


    def _timed(self):
        os.makedirs(self.c.outdir, exist_ok=True)
        for port in self.c.ports:
            frames = self.c.sends.get(port, [])
            cuts = [0] + [m[port] for m in self.marks] + [len(frames)]
            for k in range(1, len(cuts) - 1):
                write_pcap(os.path.join(self.c.outdir, f"send_{port}.phase{k}.pcap"),
                           frames[cuts[k]:cuts[k + 1]])
            self.c.sends[port] = frames[:cuts[1]]
        with open(os.path.join(self.c.outdir, "phases.json"), "w") as f:
            json.dump({"phases": [{"wait_s": w or 0} for w in self.waits]}, f)
        self.marks = []


def xlated(p, src, dst, sport=None, dport=None, icmp_id=None, ttl_dec=1):
    """`p` as it leaves after crossing the core: new addresses (and ports / echo identifier),
    TTL - 1, every checksum computed from scratch by scapy (a UDP checksum of 0 stays 0)."""
    q = IP(bytes(p))
    q.src, q.dst = src, dst
    q.ttl -= ttl_dec
    del q.chksum
    if q.haslayer(TCP) and not q.frag:
        if sport is not None:
            q[TCP].sport = sport
        if dport is not None:
            q[TCP].dport = dport
        del q[TCP].chksum
    if q.haslayer(UDP) and not q.frag:
        if sport is not None:
            q[UDP].sport = sport
        if dport is not None:
            q[UDP].dport = dport
        if q[UDP].chksum != 0:
            del q[UDP].chksum
    if q.haslayer(ICMP) and not q.frag:
        if icmp_id is not None:
            q[ICMP].id = icmp_id
        del q[ICMP].chksum
    return bytes(IP(bytes(q)))


def icmp_err(src, dst, icmp_type, code, quoted, ttl=64, ip_id=0, tos=0xC0, rest=0):
    """An ICMP error built from scratch: IPv4 (no DF) / ICMP type, code, `rest` word, then the
    quoted bytes as they are; the ICMP checksum over all of it."""
    body = struct.pack("!BBHI", icmp_type, code, 0, rest) + bytes(quoted)
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return bytes(IP(src=src, dst=dst, ttl=ttl, id=ip_id, tos=tos, flags=0, proto=1) / Raw(body))


def quote(p, n=8):
    """The first bytes of an IPv4 packet an ICMP error quotes: its header and `n` bytes of
    payload (None: all of it)."""
    b = bytes(p)
    ihl = (b[0] & 0x0F) * 4
    tot = struct.unpack("!H", b[2:4])[0]
    return b[:tot if n is None else min(tot, ihl + n)]
