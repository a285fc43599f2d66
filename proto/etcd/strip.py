#!/usr/bin/python3
# Makes etcd 3.4's protos (Debian's golang-etcd-server-dev, Apache-2.0) buildable by plain protoc:
# drops the gogoproto and google.api imports and options, which only steer Go and REST code.
#   proto/etcd/strip.py SRC_ROOT   (SRC_ROOT: .../gocode/src/go.etcd.io/etcd)
import re, sys, pathlib

root = pathlib.Path(sys.argv[1])
here = pathlib.Path(__file__).parent
for rel in ["etcdserver/etcdserverpb/rpc.proto", "mvcc/mvccpb/kv.proto", "auth/authpb/auth.proto"]:
    text = (root / rel).read_text()
    text = re.sub(r'import "(gogoproto/gogo|google/api/annotations)\.proto";\n', "", text)
    text = re.sub(r"option \(gogoproto\.[a-z_]+\) = [a-z]+;\n", "", text)
    text = re.sub(r"\s*\[\(gogoproto\.[^\]]*\]", "", text)
    # rpc Foo(A) returns (B) { option (google.api.http) = { post: "..." body: "*" }; }  ->  ...;
    text = re.sub(r"\) \{\s*option \(google\.api\.http\) = \{([^{}]|\{[^{}]*\})*\};\s*\}", ");", text)
    out = here / rel
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("// Vendored from etcd 3.4.23 (Apache-2.0, see proto/etcd/LICENSE), stripped by strip.py.\n" + text)
