#!/usr/bin/python3
"""A TCP transfer that proves where its bytes went, for the namespace tests and the demo.

  xfer.py serve ADDR PORT LOG
      Accept connections one after another until killed. For each, read to EOF and append one
      JSON line to LOG: {"peer", "bytes", "sha256", "tag"} (tag: the first line of the stream),
      then answer the sha256 to the sender.
  xfer.py send ADDR PORT TAG MIB [MBIT_S]
      Connect (retrying for up to 10 s), send "TAG\\n" and MIB MiB of bytes drawn from a
      generator seeded with TAG (no faster than MBIT_S Mbit/s, if given: a paced transfer, whose
      rate drops only when the path cannot carry it), read the server's sha256 and print one
      JSON line: {"tag", "bytes", "sha256", "server_sha256", "seconds", "mbit_s"}.
      Exit status 1 if the connection fails or the server saw other bytes.
"""
import hashlib
import json
import random
import socket
import sys
import time

CHUNK = 64 * 1024


def serve(addr, port, log):
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((addr, port))
    srv.listen(8)
    while True:
        conn, peer = srv.accept()
        with conn:
            conn.settimeout(60)
            digest, total, head = hashlib.sha256(), 0, b""
            try:
                while True:
                    data = conn.recv(CHUNK)
                    if not data:
                        break
                    digest.update(data)
                    total += len(data)
                    if len(head) < 256:
                        head += data[:256]
                conn.sendall(digest.hexdigest().encode() + b"\n")
            except OSError as err:
                head += f" [error: {err}]".encode()
            tag = head.split(b"\n", 1)[0].decode(errors="replace")
            record = {"peer": f"{peer[0]}:{peer[1]}", "bytes": total,
                      "sha256": digest.hexdigest(), "tag": tag}
            with open(log, "a") as f:
                f.write(json.dumps(record) + "\n")


def send(addr, port, tag, mib, mbit_s=0.0):
    deadline = time.monotonic() + 10
    while True:
        try:
            sock = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)
    sock.settimeout(60)
    gen = random.Random(tag)
    digest, total = hashlib.sha256(), 0
    start = time.monotonic()
    with sock:
        first = (tag + "\n").encode()
        digest.update(first)
        sock.sendall(first)
        total += len(first)
        left = int(mib * 1024 * 1024)
        while left > 0:
            data = gen.randbytes(min(CHUNK, left))
            digest.update(data)
            sock.sendall(data)
            total += len(data)
            left -= len(data)
            if mbit_s:
                ahead = total * 8 / (mbit_s * 1e6) - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while True:
            data = sock.recv(256)
            if not data:
                break
            answer += data
    seconds = time.monotonic() - start
    result = {"tag": tag, "bytes": total, "sha256": digest.hexdigest(),
              "server_sha256": answer.decode().strip(), "seconds": round(seconds, 3),
              "mbit_s": round(total * 8 / seconds / 1e6, 1)}
    print(json.dumps(result), flush=True)
    return 0 if result["server_sha256"] == result["sha256"] else 1


def main(argv):
    if len(argv) == 5 and argv[1] == "serve":
        serve(argv[2], int(argv[3]), argv[4])
        return 0
    if len(argv) in (6, 7) and argv[1] == "send":
        try:
            return send(argv[2], int(argv[3]), argv[4], float(argv[5]), float(argv[6]) if len(argv) == 7 else 0.0)
        except OSError as err:
            print(json.dumps({"tag": argv[4], "error": str(err)}), flush=True)
            return 1
    sys.exit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
