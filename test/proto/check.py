#!/usr/bin/python3
"""Protects the v1 API: compiles proto/ and compares it with the released v1 summary
(proto/medix/dataplane/v1/released.json). Removing or changing a field, enum value, message,
method or service is a breaking change and fails; additions pass. Also lints: enums start with
*_UNSPECIFIED = 0, field names are snake_case.

  check.py            check (ends with "proto: N passed, M failed")
  check.py --update   write the summary of the current protos as the released one
"""
import json, os, re, subprocess, sys, tempfile

from google.protobuf import descriptor_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO = os.path.join(ROOT, "proto")
RELEASED = os.path.join(PROTO, "medix", "dataplane", "v1", "released.json")


def summary():
    files = sorted(os.path.relpath(os.path.join(d, f), PROTO)
                   for d, _, fs in os.walk(PROTO) for f in fs if f.endswith(".proto"))
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "set.pb")
        subprocess.run(["protoc", "-I", PROTO, "--descriptor_set_out=" + out] + files, check=True)
        fds = descriptor_pb2.FileDescriptorSet.FromString(open(out, "rb").read())
    s = {}
    for f in fds.file:
        def messages(prefix, types):
            for m in types:
                name = f"{prefix}.{m.name}"
                s[f"message {name}"] = {str(x.number): f"{x.name} {x.label} {x.type} {x.type_name}" for x in m.field}
                messages(name, m.nested_type)
                enums(name, m.enum_type)
        def enums(prefix, types):
            for e in types:
                s[f"enum {prefix}.{e.name}"] = {str(v.number): v.name for v in e.value}
        messages(f.package, f.message_type)
        enums(f.package, f.enum_type)
        for svc in f.service:
            s[f"service {f.package}.{svc.name}"] = {
                m.name: f"{m.input_type} {m.output_type} {m.client_streaming} {m.server_streaming}" for m in svc.method}
    return s


def main():
    current = summary()
    if "--update" in sys.argv:
        json.dump(current, open(RELEASED, "w"), indent=1, sort_keys=True)
        print(f"wrote {RELEASED}")
        return 0
    released = json.load(open(RELEASED))
    problems = {"no breaking change against the released v1": [], "enums start with *_UNSPECIFIED = 0": [],
                "field names are snake_case": []}
    breaking, enums, names = problems.values()
    for name, entries in released.items():
        if name not in current:
            breaking.append(f"{name} was removed")
        for key, value in entries.items():
            now = current.get(name, {}).get(key)
            if now != value:
                breaking.append(f"{name} {key}: was '{value}', now '{now}'")
    for name, entries in current.items():
        if name.startswith("enum ") and not entries.get("0", "").endswith("UNSPECIFIED"):
            enums.append(f"{name}: value 0 must be *_UNSPECIFIED")
        if name.startswith("message "):
            for key, value in entries.items():
                if not re.fullmatch(r"[a-z][a-z0-9_]*", value.split()[0]):
                    names.append(f"{name} field {key}: '{value.split()[0]}' is not snake_case")
    failed = 0
    for what, found in problems.items():
        print(("PASS " if not found else "FAIL ") + what)
        for f in found:
            print("  " + f)
        failed += bool(found)
    print(f"proto: {len(problems) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
