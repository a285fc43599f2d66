#!/usr/bin/python3
"""medix-cp's IKE sync link from outside, for test/netns/ike_failover.sh (the wire:
controlplane/ha/wire.h: a 16-byte header, AES-256-GCM ciphertext, 16-byte tag).

  ike_link_tool.py capture IFACE DST OUT      the first UDP payload to DST (IP:PORT) seen on IFACE
                                              (AF_PACKET) into OUT; exits 1 after 30 s without one
  ike_link_tool.py replay SRC DST FILE        sends FILE's bytes from SRC (IP:PORT) to DST
  ike_link_tool.py forge KEYFILE SRC DST      a datagram as the peer would send it, an ha plugin
                                              message (IKE_ADD) sealed under KEYFILE's key (not the
                                              pair's), its counter far ahead
  ike_link_tool.py plain SRC DST              an ha plugin message as the plugin sends it, unsealed
"""
import hashlib, hmac, socket, struct, sys, time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

MAGIC, VERSION = 0x4D584841, 1
# An ha plugin message: version 3, type 1 (HA_IKE_ADD), then attributes (contents do not matter:
# it must not get as far as the plugin).
HA_MESSAGE = bytes([3, 1]) + b"\x00" * 40


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def send(src, dst, data):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(addr(src))
    s.sendto(data, addr(dst))


def capture(iface, dst, out):
    host, port = addr(dst)
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
    raw.bind((iface, 0))
    raw.settimeout(1)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            frame = raw.recv(65535)
        except socket.timeout:
            continue
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            continue
        ihl = (frame[14] & 0xF) * 4
        udp = 14 + ihl
        if frame[30:34] != socket.inet_aton(host) or struct.unpack("!H", frame[udp + 2:udp + 4])[0] != port:
            continue
        length = struct.unpack("!H", frame[udp + 4:udp + 6])[0]
        open(out, "wb").write(frame[udp + 8:udp + length])
        return 0
    return 1


def forge(keyfile, src, dst):
    secret = open(keyfile, "rb").read().rstrip(b"\r\n")
    key = hmac.new(secret, ("medix-cp ha link %s>%s" % (src, dst)).encode(), hashlib.sha256).digest()
    counter = time.time_ns() * 4
    header = struct.pack("<IB3xQ", MAGIC, VERSION, counter)
    nonce = b"\x00" * 4 + struct.pack("<Q", counter)
    send(src, dst, header + AESGCM(key).encrypt(nonce, HA_MESSAGE, header))


def main():
    cmd = sys.argv[1]
    if cmd == "capture":
        return capture(sys.argv[2], sys.argv[3], sys.argv[4])
    if cmd == "replay":
        send(sys.argv[2], sys.argv[3], open(sys.argv[4], "rb").read())
    elif cmd == "forge":
        forge(sys.argv[2], sys.argv[3], sys.argv[4])
    elif cmd == "plain":
        send(sys.argv[2], sys.argv[3], HA_MESSAGE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
