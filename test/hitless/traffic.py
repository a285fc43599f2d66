#!/usr/bin/python3
"""UDP traffic with sequence numbers, for the hitless test (run inside a host's namespace).

  traffic.py send DEST PORT --pps N --max-seconds S --out FILE
      Sends 64-byte UDP payloads (magic, run id, sequence number) at N packets per second
      until SIGTERM/SIGINT or S seconds; writes {"sent": ..., ...} to FILE. A sequence number
      counts as sent when sendto() accepted it; a refused one is retried with the same number.
  traffic.py probe PORT --dests A,B,... [--count N]
      Sends N probe datagrams (magic b"MXPR", probe number = index of the destination) to each.
  traffic.py receive PORT --out FILE [--run-id ID]
      Counts every datagram on PORT (any local address) until SIGTERM/SIGINT; writes to FILE:
      received, distinct sequence numbers, duplicates, foreign datagrams, reorderings, the
      first/last sequence number, and (with --sent-file, the sender's result, read at exit)
      the missing sequence numbers (up to 1000 listed); probes counted by probe number.

The payload is b"MXHL" + run id (u32) + sequence (u64) + padding, big-endian.
"""
import argparse
import errno
import json
import os
import signal
import socket
import struct
import sys
import time

MAGIC = b"MXHL"
PROBE = b"MXPR"  # probes: run id, probe number (test/hitless/hitless.py probe-setup)
HEAD = struct.Struct("!4sIQ")
PAYLOAD = 64

stop = False


def on_signal(signum, frame):
    global stop
    stop = True


def send(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    dest = (args.dest, args.port)
    pad = bytes(PAYLOAD - HEAD.size)
    seq = 0
    refused = 0
    max_burst = 0
    t0 = time.monotonic()
    deadline = t0 + args.max_seconds
    tick = 0.001
    while not stop:
        now = time.monotonic()
        if now >= deadline:
            break
        due = int((now - t0) * args.pps)
        burst = 0
        # Catch up at most 200 at once (a stalled sender must not flood the rings).
        while seq < due and burst < 200:
            try:
                s.sendto(HEAD.pack(MAGIC, args.run_id, seq) + pad, dest)
                seq += 1
                burst += 1
            except OSError as e:
                if e.errno in (errno.ENOBUFS, errno.EAGAIN, errno.ENOMEM):
                    refused += 1
                    break
                raise
        max_burst = max(max_burst, burst)
        time.sleep(tick)
    elapsed = time.monotonic() - t0
    out = {"sent": seq, "seconds": round(elapsed, 3), "pps": round(seq / elapsed if elapsed else 0),
           "target_pps": args.pps, "refused": refused, "max_burst": max_burst,
           "behind": max(0, int(elapsed * args.pps) - seq)}
    with open(args.out, "w") as f:
        json.dump(out, f)
    return 0


def probe(args):
    """`count` probe datagrams to each destination, probe number = its index in the list."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    pad = bytes(PAYLOAD - HEAD.size)
    dests = args.dests.split(",")
    for _ in range(args.count):
        for i, d in enumerate(dests):
            s.sendto(HEAD.pack(PROBE, args.run_id, i) + pad, (d, args.port))
        time.sleep(0.01)
    return 0


def receive(args):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, 33, 16 << 20)  # SO_RCVBUFFORCE (root)
    except OSError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    s.bind(("0.0.0.0", args.port))
    s.settimeout(0.2)
    seen = bytearray(1 << 20)  # per sequence number: times received (saturating at 255)
    received = foreign = dup = reordered = 0
    first = last = None
    highest = -1
    buf = bytearray(2048)
    t_first = t_last = None
    probes = {}
    if args.ready:
        open(args.ready, "w").close()
    while not stop:
        try:
            n, _ = s.recvfrom_into(buf)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        if n < HEAD.size:
            foreign += 1
            continue
        magic, run_id, seq = HEAD.unpack_from(buf)
        if magic == PROBE and run_id == args.run_id:
            probes[seq] = probes.get(seq, 0) + 1
            continue
        if magic != MAGIC or run_id != args.run_id or seq > 100_000_000:
            foreign += 1
            continue
        received += 1
        t_last = time.monotonic()
        if t_first is None:
            t_first = t_last
            first = seq
        last = seq
        if seq >= len(seen):
            seen.extend(bytearray(max(seq + 1 - len(seen), len(seen))))
        if seen[seq]:
            dup += 1
        if seen[seq] < 255:
            seen[seq] += 1
        if seq < highest:
            reordered += 1
        highest = max(highest, seq)
    distinct = len(seen) - seen.count(0)
    out = {"received": received, "distinct": distinct, "duplicates": dup, "foreign": foreign,
           "reordered": reordered, "first": first, "last": last, "highest": highest,
           "seconds": round((t_last - t_first) if t_first else 0, 3), "probes": probes}
    expect = None
    if args.sent_file and os.path.exists(args.sent_file):
        with open(args.sent_file) as f:
            expect = json.load(f)["sent"]
    if expect is not None:
        args.expect = expect
        missing = [i for i in range(min(args.expect, len(seen))) if not seen[i]]
        missing += list(range(len(seen), args.expect))
        out["expect"] = args.expect
        out["missing_count"] = len(missing)
        out["missing"] = missing[:1000]
        out["beyond_expect"] = sum(1 for i in range(args.expect, len(seen)) if seen[i])
    with open(args.out, "w") as f:
        json.dump(out, f)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("send")
    a.add_argument("dest")
    a.add_argument("port", type=int)
    a.add_argument("--pps", type=int, default=20000)
    a.add_argument("--max-seconds", type=float, default=120)
    a.add_argument("--run-id", type=int, default=1)
    a.add_argument("--out", required=True)
    p = sub.add_parser("probe")
    p.add_argument("port", type=int)
    p.add_argument("--dests", required=True, help="comma-separated addresses")
    p.add_argument("--count", type=int, default=5)
    p.add_argument("--run-id", type=int, default=1)
    b = sub.add_parser("receive")
    b.add_argument("port", type=int)
    b.add_argument("--run-id", type=int, default=1)
    b.add_argument("--out", required=True)
    b.add_argument("--ready", help="a file created once the socket is bound")
    b.add_argument("--sent-file", help="the sender's result file, read at exit: sequence numbers "
                   "0..sent-1 are expected; the missing ones are listed")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if args.cmd == "send":
        return send(args)
    if args.cmd == "probe":
        return probe(args)
    return receive(args)


if __name__ == "__main__":
    sys.exit(main())
