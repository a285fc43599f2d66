"""Helpers for the packet-test generators (test/packet/cases/*/gen.py).

A generator builds what goes into each port (send) and what must come out of each port
(expect) from forwarding.md alone, with scapy. It never looks at medix-dp's output.

    from medixpkt import *
    c = Case(__file__)                      # reads config.json next to gen.py, OUTDIR from argv
    ip = IP(src="10.1.0.2", dst="10.2.0.2", ttl=64) / UDP(sport=1, dport=2)
    c.send("a0", H1, ip)                    # into interface a0 from host MAC H1
    c.expect("b0", GW2, forwarded(ip))      # out of interface b0 to the gateway's MAC
    c.drop("ttl_expired")                   # expected drop counter
    c.event("icmp_sent")                    # expected event counter
    c.write()

Conventions the expectations rely on where forwarding.md leaves a field open (see README.md):
packets medix-dp originates carry IPv4 ID 0 and no DF; ICMP errors TOS 0xc0 (RFC 1812
4.3.2.5), echo replies TOS 0; no Ethernet padding; VLAN tags it writes have PCP 0 and DEI 0.
The event icmp_sent counts ICMP errors, not echo replies.
"""

import json
import os
import struct
import sys
from collections import Counter, defaultdict

from scapy.all import ARP, ICMP, IP, TCP, UDP, Dot1Q, Ether, Raw, conf  # noqa: F401
from scapy.layers.inet import IPOption_NOP, IPOption_EOL, IPOption_Router_Alert  # noqa: F401
from scapy.utils import checksum

conf.verb = 0

BROADCAST = "ff:ff:ff:ff:ff:ff"
ZERO_MAC = "00:00:00:00:00:00"

# Peer MACs (hosts and gateways on the test links). Interface MACs live in config.json.
H1 = "02:aa:00:00:00:01"
H2 = "02:aa:00:00:00:02"
H3 = "02:aa:00:00:00:03"
H4 = "02:aa:00:00:00:04"
GW1 = "02:bb:00:00:00:01"
GW2 = "02:bb:00:00:00:02"
GW3 = "02:bb:00:00:00:03"
GW4 = "02:bb:00:00:00:04"
OTHER_MAC = "02:cc:00:00:00:99"  # a MAC that is nobody's on the link

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_IPV6 = 0x86DD

EVENTS = ("icmp_sent", "icmp_rate_limited", "arp_requests_sent", "arp_replies_sent")

PCAP_GLOBAL = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def write_pcap(path, frames):
    """Writes frames (bytes or scapy packets) byte-exact, linktype Ethernet."""
    with open(path, "wb") as f:
        f.write(PCAP_GLOBAL)
        for i, fr in enumerate(frames):
            b = bytes(fr)
            f.write(struct.pack("<IIII", 1, i, len(b), len(b)))
            f.write(b)


def read_pcap(path):
    """Returns the frames of a pcap file as bytes (classic pcap, either byte order)."""
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 24:
        raise ValueError(f"{path}: not a pcap file ({len(data)} bytes)")
    magic = struct.unpack("<I", data[:4])[0]
    if magic in (0xA1B2C3D4, 0xA1B23C4D):
        e = "<"
    elif magic in (0xD4C3B2A1, 0x4D3CB2A1):
        e = ">"
    else:
        raise ValueError(f"{path}: bad pcap magic {magic:#x}")
    off, frames = 24, []
    while off + 16 <= len(data):
        _, _, caplen, _ = struct.unpack(e + "IIII", data[off:off + 16])
        off += 16
        frames.append(data[off:off + caplen])
        off += caplen
    return frames


# --- building blocks -------------------------------------------------------------------------

def ethertype_of(payload):
    if isinstance(payload, ARP):
        return ETH_P_ARP
    if isinstance(payload, IP):
        return ETH_P_IP
    b = bytes(payload)
    if b and b[0] >> 4 == 4:
        return ETH_P_IP
    raise ValueError("ethertype_of: say the ethertype of a raw payload explicitly")


def l2(dst, src, vlan=0, inner_vlan=0, ethertype=ETH_P_IP, outer_type=None):
    """Ethernet header plus tags as bytes. QinQ uses 0x88a8 outside unless outer_type says
    otherwise; single tags 0x8100."""
    if not vlan:
        return bytes(Ether(dst=dst, src=src, type=ethertype))
    if not inner_vlan:
        return bytes(Ether(dst=dst, src=src, type=outer_type or ETH_P_8021Q)
                     / Dot1Q(vlan=vlan, type=ethertype))
    return bytes(Ether(dst=dst, src=src, type=outer_type or ETH_P_8021AD)
                 / Dot1Q(vlan=vlan, type=ETH_P_8021Q) / Dot1Q(vlan=inner_vlan, type=ethertype))


def ip_header_checksum(hdr):
    h = bytearray(hdr)
    h[10:12] = b"\0\0"
    return checksum(bytes(h))


def forwarded(ip, ttl_dec=1):
    """The IPv4 packet as medix-dp must forward it: TTL - 1, header checksum recomputed from
    scratch, every other byte unchanged (options, ID, flags, payload)."""
    b = bytearray(bytes(ip))
    ihl = (b[0] & 0x0F) * 4
    tot = struct.unpack("!H", b[2:4])[0]
    b = b[:tot]  # padding, if any, is not part of the packet
    b[8] -= ttl_dec
    b[10:12] = struct.pack("!H", ip_header_checksum(bytes(b[:ihl])))
    # Cross-check with scapy's own serializer that only TTL and checksum moved.
    p = IP(bytes(ip)[:tot])
    p.ttl -= ttl_dec
    del p.chksum
    assert bytes(p) == bytes(b), "forwarded(): scapy and byte-level rebuild disagree"
    return bytes(b)


def icmp_error(src, dst, icmp_type, code, offending, rest=0):
    """An ICMP error from `src` to `dst` quoting the offending IPv4 packet (its header with
    options and the first 8 bytes of its payload). `rest` is the 32-bit word after the
    checksum (the next-hop MTU for type 3 code 4). IP: TTL 64, ID 0, no DF, TOS 0xc0:
    precedence 6, internetwork control, as RFC 1812 4.3.2.5 says for ICMP errors."""
    off = bytes(offending)
    ihl = (off[0] & 0x0F) * 4
    tot = struct.unpack("!H", off[2:4])[0]
    quoted = off[:min(tot, ihl + 8)]
    body = struct.pack("!BBHI", icmp_type, code, 0, rest) + quoted
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    pkt = IP(src=src, dst=dst, ttl=64, id=0, tos=0xC0, flags=0, proto=1) / Raw(body)
    return bytes(pkt)


def echo_reply(request_ip, src=None):
    """The echo reply to an ICMP echo request: addresses swapped (from `src`, default the
    address asked), TTL 64, ID 0, TOS 0, no DF, same ICMP id/seq/data."""
    req = IP(bytes(request_ip))
    icmp = req[ICMP]
    data = bytes(icmp.payload)
    rep = (IP(src=src or req.dst, dst=req.src, ttl=64, id=0, tos=0, flags=0)
           / ICMP(type=0, code=0, id=icmp.id, seq=icmp.seq) / Raw(data))
    return bytes(rep)


def padded(frame, size=60):
    b = bytes(frame)
    return b + b"\0" * max(0, size - len(b))


# --- a test case ------------------------------------------------------------------------------

class Case:
    def __init__(self, gen_file, outdir=None):
        self.dir = os.path.dirname(os.path.abspath(gen_file))
        with open(os.path.join(self.dir, "config.json")) as f:
            self.config = json.load(f)
        self.outdir = outdir or (sys.argv[1] if len(sys.argv) > 1 else None)
        if not self.outdir:
            sys.exit(f"usage: {gen_file} OUTDIR")
        self.ports = {p["name"]: p for p in self.config.get("ports", [])}
        self.ifaces = {i["name"]: i for i in self.config.get("interfaces", [])}
        self.sends = defaultdict(list)
        self.expects = defaultdict(list)
        self.streams = defaultdict(list)  # per expected frame: its ordering stream
        self.last_in = None               # interface (or port) of the latest send
        self.drops = Counter()
        # Every event is checked; those a case never mentions must stay 0.
        self.events = Counter({e: 0 for e in EVENTS})
        self.logs = []
        self.kind_counters = defaultdict(dict)  # {list: {row: {column: n}}}

    # interface facts from config.json
    def iface(self, name):
        return self.ifaces[name]

    def mac(self, iface):
        return self.ifaces[iface]["mac"]

    def addr(self, iface, i=0):
        """The i-th address of an interface, without the prefix length."""
        return self.ifaces[iface]["addresses"][i].split("/")[0]

    def port_of(self, iface):
        return self.ifaces[iface]["port"]

    # frames
    def frame_in(self, iface, src_mac, payload, dst_mac=None, ethertype=None, outer_type=None):
        """A frame arriving on `iface` from `src_mac`, addressed to the interface's MAC."""
        i = self.ifaces[iface]
        return l2(dst_mac or i["mac"], src_mac, i.get("vlan", 0), i.get("inner_vlan", 0),
                  ethertype or ethertype_of(payload), outer_type) + bytes(payload)

    def frame_out(self, iface, dst_mac, payload, ethertype=None):
        """A frame leaving `iface` for `dst_mac`: the interface's MAC and tags (0x88a8 outer
        tag for QinQ)."""
        i = self.ifaces[iface]
        return l2(dst_mac, i["mac"], i.get("vlan", 0), i.get("inner_vlan", 0),
                  ethertype or ethertype_of(payload)) + bytes(payload)

    def send(self, iface, src_mac, payload, **kw):
        """Feeds `payload` (IPv4 or ARP; raw bytes need ethertype=) into interface `iface`
        from `src_mac`."""
        self.send_raw(self.port_of(iface), self.frame_in(iface, src_mac, payload, **kw))
        self.last_in = iface

    def send_raw(self, port, frame):
        self.sends[port].append(bytes(frame))
        self.last_in = port

    def expect(self, iface, dst_mac, payload, ethertype=None, stream="fwd"):
        """Expects a frame out of `iface`. Order is checked within a stream: frames caused
        by packets from one ingress interface (that of the latest send; the port for
        send_raw) of one kind ("fwd" for forwarded, "icmp", "echo", "arp"...). Different
        streams may interleave: forwarding.md orders neither ports, nor interfaces (tenants)
        of a burst, nor stages against each other; a router keeps order within a flow only."""
        self.expect_raw(self.port_of(iface), self.frame_out(iface, dst_mac, payload, ethertype),
                        stream)

    def expect_raw(self, port, frame, stream="fwd"):
        self.expects[port].append(bytes(frame))
        self.streams[port].append(f"{self.last_in}/{stream}")

    def expect_icmp_error(self, iface, peer_mac, offending, icmp_type, code, rest=0,
                          src=None):
        """An ICMP error back out of the ingress interface `iface` to the sender's MAC,
        from the interface's first address."""
        off_src = IP(bytes(offending)).src
        pkt = icmp_error(src or self.addr(iface), off_src, icmp_type, code, offending, rest)
        self.expect(iface, peer_mac, pkt, stream="icmp")
        self.event("icmp_sent")

    def arp_request_from_us(self, iface, target_ip, sender_ip=None):
        """The ARP request medix-dp sends to resolve `target_ip` out of `iface`."""
        mac = self.mac(iface)
        return ARP(op=1, hwsrc=mac, psrc=sender_ip or self.addr(iface), hwdst=ZERO_MAC,
                   pdst=target_ip)

    def expect_arp_request(self, iface, target_ip, sender_ip=None, stream="arp"):
        self.expect(iface, BROADCAST, self.arp_request_from_us(iface, target_ip, sender_ip),
                    stream=stream)
        self.event("arp_requests_sent")

    def drop(self, reason, n=1):
        self.drops[reason] += n

    def event(self, name, n=1):
        if name in self.events:
            self.events[name] += n

    def log(self, pattern):
        """A line medix-dp must write (a Python regex), within 3 s of the last frame."""
        self.logs.append(pattern)

    def counters(self, kind_list, row, **columns):
        """A kind's counters medix-dp must report (telemetry /medix/kind_counters,LIST): the
        row of object `row` ("name/part" for a part), the columns given (others unchecked)."""
        self.kind_counters[kind_list].setdefault(row, {}).update(columns)

    def unchecked_event(self, name):
        """Leaves an event counter out of the comparison (forwarding.md does not pin it)."""
        self.events.pop(name, None)

    def write(self):
        os.makedirs(self.outdir, exist_ok=True)
        for port in self.ports:
            write_pcap(os.path.join(self.outdir, f"send_{port}.pcap"), self.sends.get(port, []))
            write_pcap(os.path.join(self.outdir, f"expect_{port}.pcap"),
                       self.expects.get(port, []))
        for port in list(self.sends) + list(self.expects):
            if port not in self.ports:
                raise SystemExit(f"gen.py: port {port} is not in config.json")
        with open(os.path.join(self.outdir, "expect_streams.json"), "w") as f:
            json.dump({p: self.streams[p] for p in self.ports}, f)
        with open(os.path.join(self.outdir, "expect_drops.json"), "w") as f:
            json.dump(dict(self.drops), f, indent=1, sort_keys=True)
        with open(os.path.join(self.outdir, "expect_events.json"), "w") as f:
            json.dump(dict(self.events), f, indent=1, sort_keys=True)
        with open(os.path.join(self.outdir, "expect_log.json"), "w") as f:
            json.dump(self.logs, f, indent=1)
        if self.kind_counters:
            with open(os.path.join(self.outdir, "expect_kind_counters.json"), "w") as f:
                json.dump(self.kind_counters, f, indent=1, sort_keys=True)
