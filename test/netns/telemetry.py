#!/usr/bin/python3
"""Reads medix-dp's DPDK telemetry (the same socket dpdk-telemetry.py uses).

  telemetry.py PREFIX COMMAND [KEY ...]    print the reply as JSON, or the value at KEY/KEY/...
  telemetry.py PREFIX --table COMMAND      print a {row: {column: value}} reply as a table

PREFIX is medix-dp's --file-prefix; the socket is /var/run/dpdk/PREFIX/dpdk_telemetry.v2
(SOCK_SEQPACKET: on connect the server sends a greeting, then one reply per command).
Exit status 1 when the socket cannot be reached or the key is absent.
"""
import json
import os
import socket
import sys


def query(prefix, command):
    runtime = os.environ.get("RUNTIME_DIR", "/var/run/dpdk")
    path = os.path.join(runtime, prefix, "dpdk_telemetry.v2")
    with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET) as sock:
        sock.settimeout(5)
        sock.connect(path)
        greeting = json.loads(sock.recv(1 << 16).decode())
        sock.send(command.encode())
        reply = json.loads(sock.recv(max(1 << 16, greeting.get("max_output_len", 0) * 2)).decode())
    if command not in reply:
        raise KeyError(f"unexpected reply to {command}: {reply}")
    return reply[command]


def table(data):
    """Rows are the outer keys, columns the union of the inner keys, in first-seen order."""
    if not isinstance(data, dict) or not data:
        return "  (empty)"
    if not all(isinstance(v, dict) for v in data.values()):
        width = max(len(str(k)) for k in data)
        return "\n".join(f"  {str(k):<{width}}  {v}" for k, v in data.items())
    columns = []
    for row in data.values():
        columns += [c for c in row if c not in columns]
    cells = [[str(k)] + [str(row.get(c, "")) for c in columns] for k, row in data.items()]
    head = [""] + columns
    widths = [max(len(r[i]) for r in cells + [head]) for i in range(len(head))]
    fmt = lambda r: "  " + "  ".join(
        (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([fmt(head)] + [fmt(r) for r in cells])


def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    prefix = argv[1]
    try:
        if argv[2] == "--table":
            print(table(query(prefix, argv[3])))
            return 0
        value = query(prefix, argv[2])
        for key in argv[3:]:
            value = value[key]
    except (OSError, KeyError, ValueError, TypeError) as err:
        print(f"telemetry: {err!r}", file=sys.stderr)
        return 1
    print(json.dumps(value) if isinstance(value, (dict, list)) else value)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
