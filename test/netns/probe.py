#!/usr/bin/python3
"""A UDP probe stream for the failover suite (test/netns/failover.sh): what was lost, and when
the first packet got through after a takeover.

  probe.py recv ADDR PORT OUT       receives until SIGTERM, then writes OUT: one JSON object with
                                    "packets": [[seq, sent_ns, received_ns], ...] (duplicates kept)
  probe.py send ADDR PORT HZ SECONDS OUT
                                    sends HZ datagrams a second for SECONDS (each carries its
                                    sequence number and the wall clock it left at), then writes
                                    OUT: {"sent": N, "first_ns", "last_ns"}
  probe.py report RECV SENT [KILL_NS [DEAD_NS]]
                                    prints {"sent", "received", "lost", "duplicates", "max_gap_ms"}
                                    and, with KILL_NS (the wall clock as kill -9 was sent) and
                                    DEAD_NS (as the killed process was reaped; KILL_NS if not
                                    given): "takeover_ms", from the kill to the arrival of the
                                    first packet sent after DEAD_NS (the dead node cannot have
                                    forwarded it: only the new active can); "outage_ms", the gap
                                    the receiver saw before that arrival; "forwarded_after_kill",
                                    packets sent after the kill that still arrived before it
                                    (the old active, before the signal landed); "lost_after_kill"

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


def report(recv_file, sent_file, kill_ns=None, dead_ns=None):
    packets = json.load(open(recv_file))["packets"]
    sent = json.load(open(sent_file))["sent"]
    seqs = {p[0] for p in packets}
    arrivals = sorted(p[2] for p in packets)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:])]
    r = {"sent": sent, "received": len(seqs), "lost": sent - len(seqs), "duplicates": len(packets) - len(seqs),
         "max_gap_ms": round(max(gaps) / 1e6, 1) if gaps else None}
    if kill_ns is not None:
        # A packet sent a moment after the kill may still be forwarded by the old active (the
        # signal lands later): the takeover is read from packets sent once it was dead.
        dead_ns = kill_ns if dead_ns is None else dead_ns
        after = [p[2] for p in packets if p[1] > dead_ns]
        first = min(after) if after else None
        r["takeover_ms"] = round((first - kill_ns) / 1e6, 1) if after else None
        before = [t for t in arrivals if first is not None and t < first]
        r["outage_ms"] = round((first - max(before)) / 1e6, 1) if before else None
        r["forwarded_after_kill"] = len([p for p in packets if p[1] > kill_ns and (first is None or p[2] < first)])
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
    elif mode == "report" and len(sys.argv) in (4, 5, 6):
        report(sys.argv[2], sys.argv[3], *(int(a) for a in sys.argv[4:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
