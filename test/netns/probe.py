#!/usr/bin/python3
"""A UDP probe stream for the failover suite (test/netns/failover.sh): what was lost, and when
the first packet got through after a takeover.

  probe.py recv ADDR PORT OUT       receives until SIGTERM, then writes OUT: one JSON object with
                                    "packets": [[seq, sent_ns, received_ns], ...] (duplicates kept)
  probe.py send ADDR PORT HZ SECONDS OUT
                                    sends HZ datagrams a second for SECONDS (each carries its
                                    sequence number and the wall clock it left at), then writes
                                    OUT: {"sent": N, "first_ns", "last_ns"}
  probe.py report RECV SENT [KILL_NS]
                                    prints {"sent", "received", "lost", "duplicates", "max_gap_ms"}
                                    and, with KILL_NS (the wall clock of a kill), "takeover_ms": from
                                    the kill to the arrival of the first packet sent after it (one
                                    that only the new active can have forwarded), and
                                    "lost_after_kill"

Both ends run on one host (namespaces share the wall clock), so times compare directly.
"""
import json
import signal
import socket
import struct
import sys
import time

FORMAT = "!QQ"  # sequence number, wall clock at sending (ns)


def recv(addr, port, out):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((addr, port))
    packets = []
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    s.settimeout(0.2)
    while not stop:
        try:
            data = s.recv(64)
        except socket.timeout:
            continue
        except InterruptedError:
            continue
        now = time.time_ns()
        if len(data) >= struct.calcsize(FORMAT):
            seq, sent = struct.unpack_from(FORMAT, data)
            packets.append([seq, sent, now])
    with open(out, "w") as f:
        json.dump({"packets": packets}, f)


def send(addr, port, hz, seconds, out):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    interval = 1.0 / hz
    count = int(hz * seconds)
    start = time.monotonic()
    first = last = 0
    for seq in range(count):
        # On schedule when we can; a late process sends at once rather than a burst to catch up.
        delay = start + seq * interval - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -0.05:
            start -= delay
        last = time.time_ns()
        first = first or last
        try:
            s.sendto(struct.pack(FORMAT, seq, last) + bytes(16), (addr, port))
        except OSError:
            pass  # no route or neighbour for a moment: a lost probe, counted by the receiver
    with open(out, "w") as f:
        json.dump({"sent": count, "first_ns": first, "last_ns": last}, f)


def report(recv_file, sent_file, kill_ns=None):
    packets = json.load(open(recv_file))["packets"]
    sent = json.load(open(sent_file))["sent"]
    seqs = {p[0] for p in packets}
    arrivals = sorted(p[2] for p in packets)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    r = {"sent": sent, "received": len(seqs), "lost": sent - len(seqs), "duplicates": len(packets) - len(seqs),
         "max_gap_ms": round(max(gaps) / 1e6, 1) if gaps else None}
    if kill_ns is not None:
        after = [p for p in packets if p[1] > kill_ns]
        r["takeover_ms"] = round((min(p[2] for p in after) - kill_ns) / 1e6, 1) if after else None
        # Sent after the kill and never received: the takeover's cost in probes.
        sent_after = [seq for seq in range(sent)]  # sequence numbers are dense from 0
        last_before = max((p[0] for p in packets if p[1] <= kill_ns), default=-1)
        r["lost_after_kill"] = len([q for q in sent_after if q > last_before and q not in seqs])
    print(json.dumps(r))


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else ""
    if mode == "recv" and len(sys.argv) == 5:
        recv(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif mode == "send" and len(sys.argv) == 7:
        send(sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5]), sys.argv[6])
    elif mode == "report" and len(sys.argv) in (4, 5):
        report(sys.argv[2], sys.argv[3], int(sys.argv[4]) if len(sys.argv) == 5 else None)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
