#!/usr/bin/python3
"""Small tools the IPsec test (test/ipsec/run.sh) runs inside host namespaces. No gRPC here:
this starts fast.

  tools.py burst DEST PORT COUNT [--pps N] [--run-id ID]
      COUNT UDP datagrams in test/hitless/traffic.py's format (b"MXHL", run id, sequence,
      64 bytes), paced at N per second; `traffic.py receive` counts them.
  tools.py ike-listen PORTS --log FILE --ready FILE
      What charon would be on the exception interface: UDP sockets on 0.0.0.0:PORT for each
      port (500, 4500). Each datagram is logged as one JSON line {port, src, sport, dst, data}
      (dst: the address it was sent to, from IP_PKTINFO) and answered from that address:
      on 500 with b"REPLY:" + data, on 4500 with the non-ESP marker + b"REPLY:" + the rest.
  tools.py ike-send SRC DST PORT COUNT [--marker] [--wait S]
      A kernel UDP socket bound to SRC:PORT sends COUNT datagrams b"IKE-<port>-<i>" (after the
      non-ESP marker with --marker) to DST:PORT and collects what comes back for S seconds.
      Prints one JSON line {sent, replies: [{src, sport, data}]}.
  tools.py ike-raw IFNAME --vlan V --src-mac M --dst-mac M SRC DST PORT COUNT [--marker]
      The same through an AF_PACKET socket, 802.1Q-tagged with VLAN V (the kernel here has no
      8021q): frames out, and every UDP frame to SRC:PORT that comes back, with its VLAN (from
      the packet auxdata: the kernel strips tags before packet sockets see them).
  tools.py nat-keepalive SRC DST
      One NAT-T keepalive (a single 0xFF byte) from SRC:4500 to DST:4500.
"""
import argparse
import json
import select
import socket
import struct
import sys
import time

HEAD = struct.Struct("!4sIQ")
PAYLOAD = 64
MARKER = b"\x00\x00\x00\x00"
IP_PKTINFO = 8
SOL_PACKET = 263
PACKET_AUXDATA = 8
TP_STATUS_VLAN_VALID = 0x10
ETH_P_ALL = 0x0003


def burst(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pad = bytes(PAYLOAD - HEAD.size)
    t0 = time.monotonic()
    for seq in range(args.count):
        due = t0 + seq / args.pps
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        s.sendto(HEAD.pack(b"MXHL", args.run_id, seq) + pad, (args.dest, args.port))
    print(json.dumps({"sent": args.count}))
    return 0


def ike_listen(args):
    socks = []
    for port in args.ports.split(","):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        s.bind(("0.0.0.0", int(port)))
        socks.append((int(port), s))
    open(args.ready, "w").close()
    log = open(args.log, "a")
    while True:
        ready, _, _ = select.select([s for _, s in socks], [], [], 1.0)
        for port, s in socks:
            if s not in ready:
                continue
            data, anc, _, (src, sport) = s.recvmsg(65535, 256)
            dst = None
            for level, kind, value in anc:
                if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                    dst = socket.inet_ntoa(value[8:12])  # in_pktinfo: ifindex, spec_dst, addr
            log.write(json.dumps({"port": port, "src": src, "sport": sport, "dst": dst,
                                  "data": data.hex()}) + "\n")
            log.flush()
            if port == 4500:
                reply = MARKER + b"REPLY:" + data[4:] if data[:4] == MARKER else None
            else:
                reply = b"REPLY:" + data
            if reply is None:
                continue
            # Answer from the address the peer wrote to, as charon does.
            info = struct.pack("=I4s4s", 0, socket.inet_aton(dst), bytes(4)) if dst else None
            anc_out = [(socket.IPPROTO_IP, IP_PKTINFO, info)] if info else []
            s.sendmsg([reply], anc_out, 0, (src, sport))


def payloads(port, count, marker):
    return [(MARKER if marker else b"") + b"IKE-%d-%d" % (port, i) for i in range(count)]


def ike_send(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.src, args.port))
    sent = payloads(args.port, args.count, args.marker)
    for p in sent:
        s.sendto(p, (args.dst, args.port))
        time.sleep(0.02)
    replies = []
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], max(0, deadline - time.monotonic()))
        if r:
            data, (src, sport) = s.recvfrom(65535)
            replies.append({"src": src, "sport": sport, "data": data.hex()})
    print(json.dumps({"sent": [p.hex() for p in sent], "replies": replies}))
    return 0


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def mac_bytes(text):
    return bytes(int(x, 16) for x in text.split(":"))


def ipv4_udp(src, dst, sport, dport, body, ident):
    udp = struct.pack("!HHHH", sport, dport, 8 + len(body), 0) + body
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0, 64, 17, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", checksum(hdr)) + hdr[12:]
    return hdr + udp


def ike_raw(args):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    s.bind((args.ifname, ETH_P_ALL))
    src_mac, dst_mac = mac_bytes(args.src_mac), mac_bytes(args.dst_mac)
    sent = payloads(args.port, args.count, args.marker)
    for i, p in enumerate(sent):
        frame = dst_mac + src_mac
        if args.vlan:
            frame += struct.pack("!HH", 0x8100, args.vlan)
        frame += struct.pack("!H", 0x0800) + ipv4_udp(args.src, args.dst, args.port, args.port, p, 0x4000 + i)
        s.send(frame)
        time.sleep(0.02)
    replies = []
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        r, _, _ = select.select([s], [], [], max(0, deadline - time.monotonic()))
        if not r:
            continue
        frame, anc, _, addr = s.recvmsg(65535, 256)
        if addr[2] == socket.PACKET_OUTGOING:
            continue
        vlan = None
        for level, kind, value in anc:
            if level == SOL_PACKET and kind == PACKET_AUXDATA:
                status, _, _, _, _, tci, _ = struct.unpack("=IIIHHHH", value[:20])
                if status & TP_STATUS_VLAN_VALID:
                    vlan = tci & 0xFFF
        etype = struct.unpack("!H", frame[12:14])[0]
        off = 14
        if etype == 0x8100:  # a tag the kernel left in place
            vlan = struct.unpack("!H", frame[14:16])[0] & 0xFFF
            etype = struct.unpack("!H", frame[16:18])[0]
            off = 18
        if etype != 0x0800:
            continue
        ip = frame[off:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 17:
            continue
        sport, dport = struct.unpack("!HH", ip[ihl:ihl + 4])
        if socket.inet_ntoa(ip[16:20]) != args.src or dport != args.port:
            continue
        total = struct.unpack("!H", ip[2:4])[0]
        replies.append({"src": socket.inet_ntoa(ip[12:16]), "sport": sport, "vlan": vlan,
                        "src_mac": frame[6:12].hex(":"), "data": ip[ihl + 8:total].hex()})
    print(json.dumps({"sent": [p.hex() for p in sent], "replies": replies}))
    return 0


def nat_keepalive(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((args.src, 4500))
    s.sendto(b"\xff", (args.dst, 4500))
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("burst")
    a.add_argument("dest")
    a.add_argument("port", type=int)
    a.add_argument("count", type=int)
    a.add_argument("--pps", type=float, default=1000)
    a.add_argument("--run-id", type=int, default=1)
    a = sub.add_parser("ike-listen")
    a.add_argument("ports")
    a.add_argument("--log", required=True)
    a.add_argument("--ready", required=True)
    for name in ("ike-send", "ike-raw"):
        a = sub.add_parser(name)
        if name == "ike-raw":
            a.add_argument("ifname")
            a.add_argument("--vlan", type=int, default=0)
            a.add_argument("--src-mac", required=True)
            a.add_argument("--dst-mac", required=True)
        a.add_argument("src")
        a.add_argument("dst")
        a.add_argument("port", type=int)
        a.add_argument("count", type=int)
        a.add_argument("--marker", action="store_true")
        a.add_argument("--wait", type=float, default=1.5)
    a = sub.add_parser("nat-keepalive")
    a.add_argument("src")
    a.add_argument("dst")
    args = ap.parse_args()
    return {"burst": burst, "ike-listen": ike_listen, "ike-send": ike_send, "ike-raw": ike_raw,
            "nat-keepalive": nat_keepalive}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
