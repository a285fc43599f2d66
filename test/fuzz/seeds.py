#!/usr/bin/python3
"""Writes the fuzzers' seed corpora (test/fuzz/corpus/<harness>/) and dictionaries
(test/fuzz/<name>.dict). Deterministic: run it again after changing pipeline.json, a packet
case or a proto, and commit what changed.

    /usr/bin/python3 test/fuzz/seeds.py

pipeline  frames made with scapy for pipeline.json: every path (L2, ARP, local, leaks, ICMP
          errors, ARP pending, fragments, crossing the core with NAPT and static mappings and
          replies in the same input, ESP in and out with the SAs' known keys, IKE, keep-alives),
          and the frames of every test/packet case (its gen.py), one input per case.
config    pipeline.json and every packet case's config.json, and a few that are refused.
apply     transactions against pipeline.json's IX (every kind, CREATE, UPDATE and DELETE,
          accepted and refused), as JSON and as protobuf's binary encoding.
intent    medix-cp intents: docs/cp.md's, pipeline.json's static objects with peers, and a few
          that are refused.

An input of the pipeline fuzzer is frames, each [port][length, 2 bytes big endian][frame]
(test/fuzz/pipeline.cpp).
"""

import base64
import copy
import glob
import hashlib
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "test", "packet", "lib"))

from medixpkt import (ARP, ICMP, IP, TCP, UDP, Raw, l2, read_pcap, BROADCAST, ZERO_MAC,  # noqa: E402
                      OTHER_MAC, ETH_P_ARP, ETH_P_8021Q, ETH_P_IPV6)
from medixesp import Sa  # noqa: E402
from scapy.all import fragment  # noqa: E402

CONFIG = json.load(open(os.path.join(HERE, "pipeline.json")))
PORTS = {p["name"]: i for i, p in enumerate(CONFIG["ports"])}
IFACES = {i["name"]: i for i in CONFIG["interfaces"]}
TUNNELS = {t["name"]: t for t in CONFIG["tunnels"]}
HOST = "02:aa:00:00:00:01"


def record(port, frame):
    frame = bytes(frame)
    return bytes([port]) + struct.pack("!H", len(frame)) + frame


def frame_in(iface, payload, src=HOST, dst=None, ethertype=None):
    i = IFACES[iface]
    if ethertype is None:
        ethertype = ETH_P_ARP if isinstance(payload, ARP) else 0x0800
    return record(PORTS[i["port"]], l2(dst or i["mac"], src, i.get("vlan", 0), i.get("inner_vlan", 0), ethertype)
                  + bytes(payload))


def addr(iface):
    return IFACES[iface]["addresses"][0].split("/")[0]


def sa(tunnel, inbound=True, spi=None):
    t = TUNNELS[tunnel]
    hits = [s for s in CONFIG["sas"] if s["tunnel"] == tunnel and bool(s.get("inbound")) == inbound
            and (spi is None or s["spi"] == spi)]
    return Sa.from_config(hits[0], t)


def esp_in(tunnel, inner, seq=1, spi=None, **kw):
    """`inner` encrypted by the peer of `tunnel`, arriving on the carrier's c0."""
    s = sa(tunnel, True, spi)
    return frame_in("c0", s.outer(s.encrypt(bytes(inner), seq, **kw)), src="02:bb:00:00:00:%02x" %
                    int(s.src.split(".")[3]))


def sealed(tunnel, inner, seq=1, spi=None, padding=None, nh=4, tfc=b""):
    """ESP in plaintext for the harness to seal (pipeline.cpp, seal()): the record's port byte
    has its top bit set; the frame holds SPI, sequence number, IV, the inner packet with its
    trailer, and room for the ICV."""
    s = sa(tunnel, True, spi)
    body = bytes(inner) + tfc
    if padding is None:
        n = (-(len(body) + 2)) % s.block
        padding = bytes(range(1, n + 1))
    body += padding + bytes([len(padding), nh])
    esp = struct.pack("!LL", s.spi, seq & 0xFFFFFFFF) + s.default_iv(seq) + body + bytes(s.icv_len)
    f = frame_in("c0", s.outer(esp), src="02:bb:00:00:00:%02x" % int(s.src.split(".")[3]))
    return bytes([f[0] | 0x80]) + f[1:]


def pipeline_seeds():
    seeds = {}
    udp = lambda src, dst, **kw: IP(src=src, dst=dst, **kw) / UDP(sport=40000, dport=104) / Raw(b"x" * 18)
    echo = lambda src, dst, **kw: IP(src=src, dst=dst, **kw) / ICMP(id=7, seq=1) / Raw(b"ping" * 4)
    syn = lambda src, dst, sport=40000, dport=104: IP(src=src, dst=dst) / TCP(sport=sport, dport=dport, flags="S",
                                                                             options=[("MSS", 1460)])
    # L2 and IP on hosp's i0 (untagged), q0 (QinQ) and h0.
    seeds["ip-forward"] = frame_in("i0", udp("10.1.0.5", "10.10.1.1"))
    seeds["ip-echo"] = frame_in("i0", echo("10.1.0.5", "10.1.0.1"))
    seeds["ip-echo-qinq"] = frame_in("q0", echo("10.3.0.5", "10.3.0.1"))
    seeds["ip-ttl-expired"] = frame_in("i0", udp("10.1.0.5", "10.10.1.1", ttl=1))
    seeds["ip-no-route"] = frame_in("i0", udp("10.1.0.5", "8.8.8.8"))
    seeds["ip-unreachable"] = frame_in("i0", udp("10.1.0.5", "172.16.1.1"))
    seeds["ip-blackhole"] = frame_in("i0", udp("10.1.0.5", "172.32.1.1"))
    seeds["ip-leak-loop"] = frame_in("i0", udp("10.1.0.5", "10.99.1.1"))
    seeds["ip-local-route"] = frame_in("i0", echo("10.1.0.5", "10.97.0.1"))
    seeds["ip-arp-pending"] = frame_in("h0", udp("10.0.1.10", "10.20.0.5"))
    seeds["ip-options"] = frame_in("i0", IP(src="10.1.0.5", dst="10.10.1.1", options=b"\x94\x04\x00\x00")
                                   / UDP(sport=1, dport=2))
    bad = bytearray(bytes(udp("10.1.0.5", "10.10.1.1")))
    bad[10] ^= 0xFF
    seeds["ip-bad-checksum"] = frame_in("i0", bytes(bad))
    seeds["ip-fragment"] = frame_in("i0", udp("10.1.0.5", "10.10.1.1", flags="MF", frag=0))
    big = IP(src="10.0.1.10", dst="10.98.1.1") / UDP(sport=1, dport=2) / Raw(b"b" * 2400)
    seeds["ip-fragmented-out"] = frame_in("h0", big)
    seeds["ip-frag-needed"] = frame_in("h0", IP(src="10.0.1.10", dst="10.98.1.1", flags="DF") / UDP(sport=1, dport=2)
                                       / Raw(b"b" * 1200))
    seeds["l2-ipv6"] = frame_in("i0", b"\x60" + b"\0" * 39, ethertype=ETH_P_IPV6)
    seeds["l2-unknown-vlan"] = record(0, l2(IFACES["i0"]["mac"], HOST, 77, 0) + bytes(udp("10.1.0.5", "10.10.1.1")))
    seeds["l2-not-for-us"] = frame_in("i0", udp("10.1.0.5", "10.10.1.1"), dst=OTHER_MAC)
    # ARP: requests for our addresses, a reply to learn, a gratuitous one, a malformed one.
    arp_req = lambda iface, ip: frame_in(iface, ARP(op=1, hwsrc=HOST, psrc=ip, hwdst=ZERO_MAC, pdst=addr(iface)),
                                         dst=BROADCAST)
    seeds["arp-request"] = arp_req("i0", "10.1.0.5")
    seeds["arp-request-vlan"] = arp_req("c0", "198.51.100.99")
    seeds["arp-request-qinq"] = arp_req("q0", "10.3.0.7")
    seeds["arp-reply"] = frame_in("h0", ARP(op=2, hwsrc=HOST, psrc="10.0.1.20", hwdst=IFACES["h0"]["mac"],
                                            pdst="10.0.1.1"))
    seeds["arp-malformed"] = frame_in("i0", bytes(ARP(op=1, psrc="10.1.0.5", pdst="10.1.0.1"))[:20],
                                      ethertype=ETH_P_ARP, dst=BROADCAST)
    # ESP in: every inbound SA with a packet for hosp's h0 (clinic's k0 for ts).
    for t in ("tr", "tre", "tu", "tue", "tc", "tce"):
        seeds[f"esp-in-{t}"] = esp_in(t, udp("10.%d.0.5" % (11 if t == "tr" else 12), "10.0.1.10"), seq=1)
    seeds["esp-in-ts"] = esp_in("ts", udp("10.23.0.5", "10.0.1.10"))
    seeds["esp-in-tg-selectors"] = esp_in("tg", udp("10.24.0.5", "10.0.1.10"), spi=1024)
    seeds["esp-in-tg-no-replay"] = esp_in("tg", udp("10.24.0.5", "10.0.1.10"), spi=1025, seq=7)
    seeds["esp-in-esn-wrap"] = esp_in("tre", udp("10.12.0.5", "10.0.1.10"), seq=0xFFFFFFF0) + esp_in(
        "tre", udp("10.12.0.5", "10.0.1.10"), seq=(1 << 32) + 3)
    seeds["esp-in-echo-back"] = esp_in("tr", echo("10.11.0.5", "10.0.1.1"))
    seeds["esp-in-crossing"] = esp_in("tr", syn("10.0.1.77", "100.100.2.10"))
    seeds["esp-in-to-tunnel"] = esp_in("tr", udp("10.11.0.5", "10.21.0.9"))
    seeds["esp-in-bad-icv"] = esp_in("tc", udp("10.21.0.5", "10.0.1.10"), bad_icv=True)
    seeds["esp-in-bad-padding"] = esp_in("tr", udp("10.11.0.5", "10.0.1.10"), padding=b"\x09\x09\x09\x09")
    seeds["esp-in-tfc"] = esp_in("tu", udp("10.13.0.5", "10.0.1.10"), tfc=b"\0" * 16)
    seeds["esp-in-fragment-inner"] = esp_in("tr", IP(src="10.11.0.5", dst="100.100.2.10", flags="MF", id=9)
                                            / UDP(sport=5, dport=104) / Raw(b"f" * 32))
    seeds["esp-in-replayed"] = esp_in("tr", udp("10.11.0.5", "10.0.1.10"), seq=3) * 2
    seeds["esp-in-lifetime"] = b"".join(esp_in("tg", udp("10.24.0.5", "10.0.1.10"), spi=1024, seq=k)
                                        for k in range(1, 8))
    # Sealed by the harness: mutations of the plaintext reach what follows decryption.
    for t in ("tr", "tre", "tu", "tue", "tc", "tce"):
        seeds[f"sealed-{t}"] = sealed(t, udp("10.%d.0.5" % (11 if t == "tr" else 12), "10.0.1.10"))
    seeds["sealed-ts"] = sealed("ts", echo("10.23.0.5", "10.0.1.1"))
    seeds["sealed-tg"] = sealed("tg", syn("10.24.0.5", "10.0.1.10"), spi=1024)
    seeds["sealed-tg-no-replay"] = sealed("tg", udp("10.24.0.5", "10.0.1.10"), spi=1025)
    seeds["sealed-crossing"] = sealed("tr", syn("10.0.1.77", "100.100.2.10", dport=104))
    seeds["sealed-fragment"] = sealed("tc", IP(src="10.21.0.5", dst="100.100.2.10", flags="MF", id=3)
                                      / UDP(sport=5, dport=104) / Raw(b"f" * 40))
    seeds["sealed-tfc"] = sealed("tu", udp("10.13.0.5", "10.0.1.10"), tfc=b"\0" * 12)
    seeds["sealed-ecn"] = sealed("tr", udp("10.11.0.5", "10.0.1.10", tos=2))
    seeds["sealed-echo-back"] = sealed("tce", echo("10.22.0.5", "10.0.1.1"))
    seeds["sealed-to-tunnel"] = sealed("tre", udp("10.12.0.5", "10.24.0.9"))
    seeds["sealed-burst"] = b"".join(sealed("tr", udp("10.11.0.5", "10.0.1.10"), seq=k) for k in (3, 1, 2, 3))
    s = sa("tr")
    seeds["esp-unknown-spi"] = frame_in("c0", s.with_spi(4242).outer(s.with_spi(4242).encrypt(
        bytes(udp("10.11.0.5", "10.0.1.10")), 1)))
    seeds["esp-transit"] = frame_in("c0", IP(src="198.51.100.11", dst="203.0.113.99", proto=50) / Raw(
        b"\0\0\x03\xf3\0\0\0\1" + b"e" * 40))
    seeds["ike-500"] = frame_in("c0", IP(src="198.51.100.13", dst="198.51.100.1") / UDP(sport=500, dport=500)
                                / Raw(b"\0" * 28))
    seeds["ike-4500"] = frame_in("c0", IP(src="198.51.100.13", dst="198.51.100.1") / UDP(sport=4500, dport=4500)
                                 / Raw(b"\0\0\0\0" + b"i" * 28))
    seeds["nat-keepalive"] = frame_in("c0", IP(src="198.51.100.13", dst="198.51.100.1")
                                      / UDP(sport=4500, dport=4500) / Raw(b"\xff"))
    # ESP out: hosp's h0 into each tunnel (tc: MTU 1000 and an MSS clamp).
    for t, net in (("tr", 11), ("tre", 12), ("tu", 13), ("tue", 14), ("tce", 22), ("tg", 24)):
        seeds[f"esp-out-{t}"] = frame_in("h0", udp("10.0.1.10", "10.%d.0.5" % net))
    seeds["esp-out-ts"] = frame_in("k0", udp("10.0.1.10", "10.23.0.5"))
    seeds["esp-out-mss-clamp"] = frame_in("h0", syn("10.0.1.10", "10.21.0.5"))
    seeds["esp-out-fragment"] = frame_in("h0", IP(src="10.0.1.10", dst="10.21.0.5") / UDP(sport=1, dport=2)
                                         / Raw(b"t" * 1400))
    seeds["esp-out-df"] = frame_in("h0", IP(src="10.0.1.10", dst="10.21.0.5", flags="DF") / UDP(sport=1, dport=2)
                                   / Raw(b"t" * 1400))
    # Crossing the core: static mappings (hosp-a, archive), NAPT (nclinic), replies in the
    # same input, policy refusals, ICMP errors about crossed packets, fragments.
    r0 = lambda p: frame_in("r0", p, src="02:aa:00:00:00:03")
    seeds["nat-static"] = frame_in("a0", syn("10.0.0.5", "100.100.2.10")) + r0(
        IP(src="192.168.1.10", dst="100.64.1.5") / TCP(sport=104, dport=40000, flags="SA"))
    seeds["nat-napt-tcp"] = frame_in("n0", syn("10.0.0.5", "100.100.2.10")) + b"".join(r0(
        IP(src="192.168.1.10", dst="100.64.9.1") / TCP(sport=104, dport=p, flags="SA")) for p in (20000, 20001))
    seeds["nat-napt-udp"] = frame_in("n0", udp("10.0.0.6", "100.100.2.11")) + b"".join(r0(
        IP(src="192.168.1.11", dst="100.64.9.1") / UDP(sport=104, dport=p) / Raw(b"r")) for p in (20000, 20001))
    seeds["nat-napt-icmp"] = frame_in("n0", echo("10.0.0.5", "100.100.2.10")) + b"".join(r0(
        IP(src="192.168.1.10", dst="100.64.9.1") / ICMP(type=0, id=p, seq=1)) for p in (20000, 20001))
    seeds["nat-policy-denied"] = frame_in("b0", udp("10.0.0.5", "100.100.2.10"))
    seeds["nat-pool-from-b"] = frame_in("n0", syn("10.0.0.5", "100.100.2.10")) + b"".join(frame_in(
        "b0", IP(src="10.0.0.5", dst="100.64.9.1") / TCP(sport=7, dport=p, flags="S")) for p in (20000, 20001))
    seeds["nat-no-session"] = r0(IP(src="192.168.1.10", dst="100.64.9.1") / UDP(sport=104, dport=20002))
    seeds["nat-icmp-error"] = frame_in("a0", udp("10.0.0.5", "100.100.2.10")) + r0(
        IP(src="192.168.1.1", dst="100.64.1.5") / ICMP(type=3, code=1)
        / Raw(bytes(IP(src="100.64.1.5", dst="192.168.1.10") / UDP(sport=40000, dport=104))[:28]))
    seeds["nat-to-core"] = frame_in("a0", echo("10.0.0.5", "100.127.1.9"))
    seeds["nat-from-core"] = frame_in("x0", udp("100.127.0.9", "100.64.1.5"))
    seeds["nat-ttl-expired"] = frame_in("a0", udp("10.0.0.5", "100.100.2.10", ttl=1))
    frags = fragment(IP(src="10.0.0.5", dst="100.100.2.10", id=77) / UDP(sport=5, dport=104) / Raw(b"q" * 600),
                     fragsize=256)
    seeds["nat-fragments"] = b"".join(frame_in("a0", f) for f in frags)
    seeds["nat-fragments-reversed"] = b"".join(frame_in("a0", f) for f in reversed(frags))
    seeds["nat-gre"] = frame_in("a0", IP(src="10.0.0.5", dst="100.100.2.10", proto=47) / Raw(b"\0\0\x08\0" * 4))
    # One burst of many tenants.
    seeds["burst-mixed"] = (frame_in("c0", udp("198.51.100.50", "198.51.100.1")) + frame_in(
        "i0", udp("10.1.0.5", "10.10.1.1")) + frame_in("q0", echo("10.3.0.5", "10.3.0.1")) + esp_in(
            "tu", udp("10.13.0.5", "10.0.1.10"), seq=2))
    return seeds


def port_of_case(case, port_name):
    """The fuzz port for a case's port: the NAT cases' p0/p1 are pipeline.json's p3/p4."""
    n = int(port_name[1:])
    if case.startswith("05") or case.startswith("06"):
        return {0: 3, 1: 4}.get(n, n % len(PORTS))
    return n % len(PORTS)


def case_seeds():
    """One input per test/packet case: up to 8 frames of each port it feeds, filler left out."""
    seeds = {}
    for gen in sorted(glob.glob(os.path.join(ROOT, "test", "packet", "cases", "*", "gen.py"))):
        case = os.path.basename(os.path.dirname(gen))
        with tempfile.TemporaryDirectory() as out:
            r = subprocess.run([sys.executable, gen, out], capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit(f"{case}/gen.py failed: {r.stderr[-500:]}")
            data = b""
            for pcap in sorted(glob.glob(os.path.join(out, "send_*.pcap"))):
                port = os.path.basename(pcap)[len("send_"):].split(".")[0]
                frames = [f for f in read_pcap(pcap) if f[:6] != bytes.fromhex(OTHER_MAC.replace(":", ""))]
                for f in frames[:8]:
                    data += record(port_of_case(case, port), f)
            if data:
                seeds["case-" + case] = data
    return seeds


def config_seeds():
    seeds = {"pipeline": open(os.path.join(HERE, "pipeline.json")).read()}
    for path in sorted(glob.glob(os.path.join(ROOT, "test", "packet", "cases", "*", "config.json"))):
        seeds["case-" + os.path.basename(os.path.dirname(path))] = open(path).read()
    c = copy.deepcopy(CONFIG)
    c["sas"][0]["cipher_key"] = "bm90IGEga2V5IG9mIHRoZSByaWdodCBsZW5ndGg="
    seeds["bad-key-length"] = json.dumps(c)
    seeds["bad-key-base64"] = json.dumps(CONFIG).replace(CONFIG["sas"][2]["cipher_key"], "not base64 at all!!")
    seeds["bad-twice"] = '{"schema_version": 1, "tenants": [{"name": "a", "name": "b"}]}'
    seeds["bad-comma"] = '{"schema_version": 1, "tenants": [{"name": "a"},]}'
    seeds["bad-field"] = '{"schema_version": 1, "interfaces": [{"name": "a", "vlna": 3}]}'
    seeds["bad-schema"] = '{"schema_version": 2}'
    seeds["bad-syntax"] = '{"schema_version": 1,\n "sas": [{"cipher_key": SECRET}]}'
    return {k: v.encode() for k, v in seeds.items()}


def apply_requests():
    """Transactions against pipeline.json's IX, as dicts of ApplyRequest."""
    op = lambda o, kind, obj: {"op": o, "object": {kind: obj}}
    key = base64.b64encode(bytes(range(20))).decode()
    cbc = base64.b64encode(bytes(range(16))).decode()
    sha = base64.b64encode(bytes(range(32))).decode()
    t = {
        "create-tenant-interface-route": [
            op("CREATE", "tenant", {"name": "new"}),
            op("CREATE", "interface", {"name": "new0", "tenant": "new", "port": "p2", "vlan": 5,
                                       "addresses": ["10.5.0.1/24"], "mac": "02:00:00:00:05:01"}),
            op("CREATE", "route", {"tenant": "new", "prefix": "10.6.0.0/16",
                                   "via": {"interface": "new0", "address": "10.5.0.9"}}),
            op("CREATE", "neighbour", {"interface": "new0", "address": "10.5.0.9", "mac": "02:aa:00:00:05:09"})],
        "rekey": [
            op("CREATE", "sa", {"spi": 3011, "tunnel": "tr", "inbound": True, "cipher": "AES_GCM_128",
                                "cipher_key": key}),
            op("CREATE", "sa", {"spi": 4011, "tunnel": "tr", "cipher": "AES_GCM_128", "cipher_key": key}),
            op("DELETE", "sa", {"spi": 1011, "tunnel": "tr", "inbound": True})],
        "create-cbc-sa": [op("CREATE", "sa", {"spi": 3021, "tunnel": "tc", "inbound": True, "cipher": "AES_CBC_128",
                                              "cipher_key": cbc, "integrity": "HMAC_SHA256_128",
                                              "integrity_key": sha, "esn": True, "replay_window": 128})],
        "bad-sa-key": [op("CREATE", "sa", {"spi": 3012, "tunnel": "tr", "inbound": True, "cipher": "AES_GCM_128",
                                           "cipher_key": cbc})],
        "bad-sa-tunnel": [op("CREATE", "sa", {"spi": 3013, "tunnel": "nope", "inbound": True,
                                              "cipher": "AES_GCM_128", "cipher_key": key})],
        "update-interface": [op("UPDATE", "interface", dict(IFACES["k0"], mtu=1400))],
        "update-port-mtu": [op("UPDATE", "port", {"name": "p2", "device": "net_null2", "mtu": 2000})],
        "delete-in-use": [op("DELETE", "tenant", {"name": "hosp"})],
        "delete-route-then-tunnel": [
            op("DELETE", "route", {"tenant": "hosp", "prefix": "10.11.0.0/16"}),
            op("DELETE", "sa", {"spi": 1011, "tunnel": "tr", "inbound": True}),
            op("DELETE", "sa", {"spi": 2011, "tunnel": "tr"}),
            op("DELETE", "tunnel", {"name": "tr"})],
        "create-then-fail": [
            op("CREATE", "tenant", {"name": "t2"}),
            op("CREATE", "route", {"tenant": "t2", "prefix": "10.0.0.0/8", "next_tenant": "nobody"})],
        "nat": [
            op("CREATE", "static_mapping", {"tenant": "clinic", "tenant_prefix": "10.0.1.0/24",
                                            "core_prefix": "100.64.6.0/24"}),
            op("CREATE", "route", {"tenant": "ix", "prefix": "100.64.6.0/24", "next_tenant": "clinic"}),
            op("CREATE", "policy_rule", {"name": "clinic-any", "priority": 70, "from_tenant": "clinic",
                                         "permit": True}),
            op("UPDATE", "napt_pool", {"tenant": "nclinic", "addresses": ["100.64.9.8/29"], "port_low": 1024})],
        "nat-overlap": [op("CREATE", "static_mapping", {"tenant": "hosp-b", "tenant_prefix": "10.1.0.0/24",
                                                        "core_prefix": "100.64.1.0/24"})],
        "tunnel": [op("CREATE", "tunnel", {"name": "tn", "tenant": "clinic", "underlay_tenant": "carrier",
                                           "local_address": "198.51.100.1", "remote_address": "198.51.100.30",
                                           "encap_udp_port": 4500, "mtu": 1300, "df": "DF_SET"})],
        "blackhole-and-local": [
            op("CREATE", "route", {"tenant": "clinic", "prefix": "172.20.0.0/16", "blackhole": {"unreachable": True}}),
            op("CREATE", "route", {"tenant": "clinic", "prefix": "10.96.0.1/32", "local": {}})],
        "delete-port-in-use": [op("DELETE", "port", {"name": "p0"})],
        "replay-existing": [op("CREATE", "tenant", {"name": "hosp"}), op("CREATE", "interface", IFACES["h0"])],
        "no-op": [{"object": {"tenant": {"name": "x"}}}],
        "qinq-clash": [op("CREATE", "interface", {"name": "q1", "tenant": "hosp", "port": "p0", "vlan": 100,
                                                  "inner_vlan": 200, "addresses": ["10.4.0.1/24"]})],
    }
    out = {name: {"operations": ops} for name, ops in t.items()}
    out["expected-version"] = {"operations": t["nat"], "expected_version": 3}
    return out


def binary_requests(requests):
    """The same requests in protobuf's binary encoding (protoc's Python code in a temp dir)."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(["protoc", "--proto_path=" + os.path.join(ROOT, "proto"), "--python_out=" + out,
                        "medix/dataplane/v1/objects.proto", "medix/dataplane/v1/dataplane.proto"], check=True)
        sys.path.insert(0, out)
        from google.protobuf import json_format
        from medix.dataplane.v1 import dataplane_pb2
        binary = {}
        for name, r in requests.items():
            msg = json_format.Parse(json.dumps(r), dataplane_pb2.ApplyRequest())
            binary[name] = msg.SerializeToString(deterministic=True)
        sys.path.remove(out)
        return binary


# test/dns's IX: hosts named by (tenant, tenant address), a CNAME, a TXT, reverse zones.
DNS_INTENT = {
    "schema_version": 1,
    "tenants": [{"name": "hosp-a"}, {"name": "archive"}, {"name": "ix", "core": True}],
    "static_mappings": [{"tenant": "hosp-a", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"},
                        {"tenant": "archive", "tenant_prefix": "192.168.0.0/20", "core_prefix": "100.100.0.0/20"}],
    "dns": {"domains": ["ix.example"], "zones": [{"name": "ix.example", "ttl": 60, "records": [
        {"name": "archive", "tenant": "archive", "tenant_address": "192.168.1.10"},
        {"name": "pacs.hospital-a", "tenant": "hosp-a", "tenant_address": "10.0.0.10", "ttl": 30},
        {"name": "dicom", "type": "CNAME", "target": "archive"},
        {"name": "@", "type": "TXT", "text": "medix"}]}]},
}


def intent_seeds():
    static = {k: CONFIG[k] for k in ("ports", "tenants", "interfaces", "routes", "neighbours", "static_mappings",
                                      "napt_pools", "policy_rules")}
    peer = {"name": "carrier-b", "tenant": "hosp", "underlay_tenant": "carrier", "tunnel": "t-carrier-b",
            "local_address": "198.51.100.1", "remote_address": "198.51.100.40",
            "local_id": "ix.medix.example", "remote_id": "gw.carrier-b.example", "psk": "a long shared secret",
            "ike_proposals": ["aes128gcm16-prfsha256-x25519", "aes256-sha256-modp2048"],
            "esp_proposals": ["aes128gcm16", "aes256-sha256"],
            "local_selectors": ["100.64.5.0/24"], "remote_selectors": ["10.40.0.0/16"],
            "child_rekey_seconds": 3600, "child_life_seconds": 3960, "child_rekey_bytes": 1000000,
            "child_life_bytes": 1100000, "tcp_mss_clamp": 1300, "dpd_seconds": 30, "initiate": True}
    x509 = dict(peer, name="carrier-c", tunnel="", remote_address="198.51.100.41", psk="",
                certificate="/etc/medix/ix.pem", private_key="/etc/medix/ix.key", ca_certificate="/etc/medix/ca.pem",
                remote_selectors=["10.41.0.0/16"])
    seeds = {
        "docs-cp": next(b[len("json"):] for b in open(os.path.join(ROOT, "docs", "cp.md")).read().split("```")
                        if b.startswith("json\n{") and '"peers"' in b),
        "ix": dict(schema_version=1, peers=[peer], **static),
        "peers-only": {"schema_version": 1, "peers": [peer, dict(peer, name="carrier-d", tunnel="td",
                                                                 remote_address="198.51.100.42")]},
        "x509": {"schema_version": 1, "peers": [x509]},
        "bad-psk-short": {"schema_version": 1, "peers": [dict(peer, psk="short")]},
        "bad-selector": {"schema_version": 1, "peers": [dict(peer, remote_selectors=["10.0.1.0/33"])]},
        "bad-route-selector": dict(schema_version=1, peers=[peer], routes=[
            {"tenant": "hosp", "prefix": "10.40.0.0/16", "blackhole": {}}]),
        "bad-same-endpoints": {"schema_version": 1, "peers": [peer, dict(peer, name="other", tunnel="t-other")]},
        "bad-mapping": {"schema_version": 1, "static_mappings": [
            {"tenant": "a", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.0.0/16"}]},
        "bad-psk-type": '{"schema_version": 1, "peers": [{"name": "c", "psk": 900123456789}]}',
        "empty": {"schema_version": 1},
        "dns": DNS_INTENT,
        "bad-dns-cname-loop": dict(DNS_INTENT, dns=dict(DNS_INTENT["dns"], zones=[{"name": "ix.example", "records": [
            {"name": "a", "type": "CNAME", "target": "b"}, {"name": "b", "type": "CNAME", "target": "a.ix.example."}]}])),
    }
    return {k: (v if isinstance(v, str) else json.dumps(v, indent=1)).encode() for k, v in seeds.items()}


def write_corpus(harness, seeds):
    d = os.path.join(HERE, "corpus", harness)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    for name, data in sorted(seeds.items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print(f"corpus/{harness}: {len(seeds)} inputs, {sum(len(v) for v in seeds.values())} bytes")


def write_dict(name, tokens):
    with open(os.path.join(HERE, name + ".dict"), "w") as f:
        f.write(f"# libFuzzer dictionary for fuzz-{name}, written by seeds.py\n")
        for t in sorted(set(tokens)):
            f.write('"' + "".join(chr(b) if 32 <= b < 127 and chr(b) not in '"\\' else "\\x%02x" % b for b in t)
                    + '"\n')


def json_tokens():
    """Field and enum names of the protos, quoted as JSON writes them."""
    tokens = set()
    for proto in glob.glob(os.path.join(ROOT, "proto", "medix", "*", "v1", "*.proto")):
        for line in open(proto):
            line = line.split("//")[0].strip().rstrip(";")
            parts = line.split()
            if "=" in parts and len(parts) >= 4 and parts[-2] == "=":
                tokens.add(('"%s":' % parts[-3]).encode())
            elif len(parts) == 3 and parts[1] == "=" and parts[0].isupper():
                tokens.add(('"%s"' % parts[0]).encode())
    return tokens | {b"true", b"false", b"[", b"]", b"{", b"}", b'"10.0.0.0/8"', b'"0.0.0.0/0"', b'"hosp"',
                     b'"p0"', b'"tr"', b'"02:00:00:00:00:01"'}


def pipeline_tokens():
    ip4 = lambda a: bytes(int(x) for x in a.split("."))
    tokens = {b"\x08\x00", b"\x08\x06", b"\x81\x00", b"\x88\xa8", b"\x86\xdd", b"\x45\x00", b"\x40\x00", b"\x20\x00",
              b"\x11\x94", b"\x01\xf4", b"\x00\x68", b"\xff\xff\xff\xff\xff\xff", b"\x00\x0a", b"\x00\xc8"}
    for i in CONFIG["interfaces"]:
        tokens.add(bytes.fromhex(i["mac"].replace(":", "")))
        for a in i["addresses"]:
            tokens.add(ip4(a.split("/")[0]))
        for v in (i.get("vlan", 0), i.get("inner_vlan", 0)):
            if v:
                tokens.add(struct.pack("!H", v))
    for s in CONFIG["sas"]:
        tokens.add(struct.pack("!L", s["spi"]))
    for t in CONFIG["tunnels"]:
        tokens.add(ip4(t["remote_address"]))
    for m in CONFIG["static_mappings"]:
        tokens.add(ip4(m["core_prefix"].split("/")[0]))
    return tokens


def main():
    seeds = pipeline_seeds()
    seeds.update(case_seeds())
    write_corpus("pipeline", seeds)
    write_corpus("config", config_seeds())
    requests = apply_requests()
    apply = {name + ".json": json.dumps(r, indent=1).encode() for name, r in requests.items()}
    apply.update({name + ".pb": b for name, b in binary_requests(requests).items()})
    write_corpus("apply", apply)
    write_corpus("intent", intent_seeds())
    write_dict("pipeline", pipeline_tokens())
    write_dict("json", json_tokens())


if __name__ == "__main__":
    main()
