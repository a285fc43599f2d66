#!/usr/bin/python3
"""Protects the v1 APIs: compiles proto/ and compares each package with its released summary
(proto/medix/NAME/v1/released.json holds medix.NAME.v1: dataplane, controlplane). Removing or
changing a field, enum value, message, method or service is a breaking change and fails;
additions pass. Every package must have its summary. Also lints: enums start with
*_UNSPECIFIED = 0, field names are snake_case.

  check.py            check (ends with "proto: N passed, M failed")
  check.py --update   write the summary of the current protos as the released ones
"""
import glob, json, os, re, subprocess, sys, tempfile

from google.protobuf import descriptor_pb2

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROTO = os.path.join(ROOT, "proto")


def packages():
    """{package: its released.json}, for every folder of proto/medix/ holding .proto files."""
    dirs = sorted({os.path.dirname(p) for p in glob.glob(os.path.join(PROTO, "medix", "*", "v1", "*.proto"))})
    return {".".join(os.path.relpath(d, PROTO).split(os.sep)): os.path.join(d, "released.json") for d in dirs}


def of_package(summary, package):
    return {name: entries for name, entries in summary.items() if name.split()[1].startswith(package + ".")}


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
        for package, path in packages().items():
            json.dump(of_package(current, package), open(path, "w"), indent=1, sort_keys=True)
            print(f"wrote {path}")
        return 0
    problems = {}
    for package, path in packages().items():
        breaking = problems[f"no breaking change against the released {package}"] = []
        if not os.path.exists(path):
            breaking.append(f"{os.path.relpath(path, ROOT)} is missing (check.py --update writes it)")
            continue
        for name, entries in json.load(open(path)).items():
            if name not in current:
                breaking.append(f"{name} was removed")
            for key, value in entries.items():
                now = current.get(name, {}).get(key)
                if now != value:
                    breaking.append(f"{name} {key}: was '{value}', now '{now}'")
    enums = problems["enums start with *_UNSPECIFIED = 0"] = []
    names = problems["field names are snake_case"] = []
    for name, entries in current.items():
        if not name.split()[1].startswith("medix."):
            continue  # proto/etcd: etcd's wire names (Compare.EQUAL = 0 is etcd's, not ours to rename)
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
