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
    return by_name(reply[command])


def by_name(data):
    """medix-dp keys named objects by a sanitised name (DPDK restricts dictionary keys) and
    puts the exact name inside: index them by the exact name here, and neighbours by
    "interface/address" with the MAC as value."""
    if isinstance(data, dict) and data and all(isinstance(e, dict) for e in data.values()):
        entries = list(data.values())
        if all("name" in e for e in entries):
            return {e["name"]: {k: v for k, v in e.items() if k != "name"} for e in entries}
        if all("interface" in e and "address" in e for e in entries):
            return {f"{e['interface']}/{e['address']}": e["mac"] for e in entries}
    return data


def table(data, indent="     "):
    """Rows are the outer keys whose values are dicts, columns the union of their keys in
    first-seen order; scalar entries are printed above the table as "key: value"."""
    if not isinstance(data, dict) or not data:
        return indent + "(empty)"
    out = [f"{indent}{k}: {v}" for k, v in data.items() if not isinstance(v, dict)]
    rows = {k: v for k, v in data.items() if isinstance(v, dict)}
    if rows:
        columns = []
        for row in rows.values():
            columns += [c for c in row if c not in columns]
        cells = [[str(k)] + [str(row.get(c, "")) for c in columns] for k, row in rows.items()]
        head = [""] + columns
        widths = [max(len(r[i]) for r in cells + [head]) for i in range(len(head))]
        for r in [head] + cells:
            out.append(indent + "  ".join(
                (c.ljust(w) if i == 0 else c.rjust(w)) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(out)


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
