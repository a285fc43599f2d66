#!/usr/bin/python3
"""HA sync datagrams from outside medix-dp, for test/netns/hasync.sh (the wire: dataplane/ha/wire.h).

  hasync_tool.py forge PORT KEYFILE
      Sends the node on 127.0.0.1:PORT a records datagram with one NAPT session (10.9.9.9:999
      -> 100.100.2.10:5001) signed with KEYFILE's key: a forgery when KEYFILE is not the pair's.
  hasync_tool.py replay PORT
      Captures (AF_PACKET on lo) the next records datagram sent to 127.0.0.1:PORT by the
      active, waits until the standby took it, and sends the same bytes again.
"""
import hashlib, hmac, socket, struct, sys, time

MAGIC, VERSION = 0x5848444D, 2


def header(type_, role, flags, counter, sent_ns, count, workers=1):
    return struct.pack("<IBBBBQQHHI", MAGIC, VERSION, type_, role, flags, counter, sent_ns, count, workers, 0)


def flow(src, dst, sport, dport, tenant, proto):
    return struct.pack("<IIHHHBB", src, dst, sport, dport, tenant, proto, 0)


def ip(a):
    return struct.unpack("!I", socket.inet_aton(a))[0]


def forge(port, keyfile):
    key = open(keyfile, "rb").read().rstrip(b"\r\n")
    # kind session, tcp 0, queue 0, idle 0; key[0], key[1]; mapping (tenant 0xffff: none), tenant epoch 0
    rec = struct.pack("<BBHI", 1, 0, 0, 0) + flow(ip("10.9.9.9"), ip("100.100.2.10"), 999, 5001, 0, 6) + \
        flow(ip("100.100.2.10"), ip("100.64.9.1"), 5001, 999, 1, 6) + struct.pack("<IIHHHH", 0, 0, 0, 0, 0xFFFF, 0)
    assert len(rec) == 56
    msg = header(1, 1, 0, time.time_ns() * 4, time.time_ns(), 1) + rec
    msg += hmac.new(key, msg, hashlib.sha256).digest()
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.sendto(msg, ("127.0.0.1", port))
    print("forged datagram sent (%d bytes)" % len(msg))


def replay(port):
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    raw.bind(("lo", 0))
    raw.settimeout(10)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        frame = raw.recv(65535)
        if len(frame) < 14 + 20 + 8 or frame[12:14] != b"\x08\x00":
            continue
        ihl = (frame[14] & 0xF) * 4
        if frame[14 + 9] != 17:
            continue
        udp = 14 + ihl
        dport = struct.unpack("!H", frame[udp + 2:udp + 4])[0]
        payload = frame[udp + 8:]
        if dport != port or len(payload) < 32 or payload[5] != 1:  # a records datagram
            continue
        time.sleep(0.3)  # the standby took the original
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(payload, ("127.0.0.1", port))
        print("replayed a records datagram (%d bytes, counter %d)" % (len(payload), struct.unpack("<Q", payload[8:16])[0]))
        return 0
    print("no records datagram seen")
    return 1


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "forge":
        forge(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "replay":
        sys.exit(replay(int(sys.argv[2])))
    else:
        sys.exit(__doc__)
