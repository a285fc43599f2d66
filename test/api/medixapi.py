"""A small client library for medix-dp's gRPC API (service medix.dataplane.v1.Dataplane), shared
by test/api/run.py, test/hitless/ and benchmarks/api.py.

The Python stubs are generated from proto/ at import time into a temporary folder (removed at
exit); nothing generated is committed. Needs Debian's python3-grpcio and protoc with
/usr/bin/grpc_python_plugin.

    from medixapi import pb, dp, Client, Dataplane
    client = Client("unix:/var/run/dpdk/PREFIX/api.sock")
    client.apply([create(pb.Tenant(name="t"))])
"""
import atexit
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

import grpc

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
PROTO_DIR = os.path.join(ROOT, "proto")
SERVICE = "/medix.dataplane.v1.Dataplane/"


def _generate_stubs():
    out = tempfile.mkdtemp(prefix="medix-api-stubs-")
    atexit.register(shutil.rmtree, out, True)
    protos = [os.path.join(PROTO_DIR, "medix/dataplane/v1", f)
              for f in ("objects.proto", "dataplane.proto")]
    cmd = ["protoc", "--python_out=" + out, "--grpc_python_out=" + out,
           "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin", "-I", PROTO_DIR] + protos
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        sys.exit("medixapi: protoc failed: %s" % r.stderr.strip())
    sys.path.insert(0, out)


_generate_stubs()
from medix.dataplane.v1 import objects_pb2 as pb  # noqa: E402
from medix.dataplane.v1 import dataplane_pb2 as dp  # noqa: E402
from medix.dataplane.v1 import dataplane_pb2_grpc as dp_grpc  # noqa: E402

# Object.kind field for each object message, and the List Kind of each, from the proto (a new
# kind needs no line here): the Kind value is the field's name in capitals.
_KIND_FIELDS = dp.Object.DESCRIPTOR.oneofs_by_name["kind"].fields
FIELD_OF = {getattr(pb, f.message_type.name): f.name for f in _KIND_FIELDS}
KIND_OF = {f.name: dp.Kind.Value(f.name.upper()) for f in _KIND_FIELDS}
IMPLEMENTED_KINDS = ("port", "tenant", "interface", "route", "neighbour")

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
]


def obj(message):
    """An Object holding `message` (pb.Tenant(...), pb.Route(...), ...)."""
    return dp.Object(**{FIELD_OF[type(message)]: message})


def inner(o):
    """The message inside an Object."""
    which = o.WhichOneof("kind")
    return getattr(o, which) if which else None


def create(message):
    return dp.Operation(op=dp.Operation.CREATE, object=obj(message))


def update(message):
    return dp.Operation(op=dp.Operation.UPDATE, object=obj(message))


def delete(message):
    return dp.Operation(op=dp.Operation.DELETE, object=obj(message))


def route_via(tenant, prefix, interface, address=""):
    return pb.Route(tenant=tenant, prefix=prefix, via=pb.Gateway(interface=interface, address=address))


def route_leak(tenant, prefix, next_tenant):
    return pb.Route(tenant=tenant, prefix=prefix, next_tenant=next_tenant)


# --- hand-encoded requests (1M-operation batches without building 1M Python messages) -------

def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(field, payload):
    """A length-delimited field."""
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def encode_apply(op_bytes_iter, expected_version=0):
    """Serialized ApplyRequest from serialized Operations."""
    parts = [_ld(1, b) for b in op_bytes_iter]
    if expected_version:
        parts.append(_varint(2 << 3 | 0) + _varint(expected_version))
    return b"".join(parts)


def encode_route_op(op, tenant, prefix, interface=None, address=None, next_tenant=None):
    """Serialized Operation{op, object{route{tenant, prefix, via|next_tenant}}}; equal to what
    protobuf writes (checked by self_test())."""
    r = _ld(1, tenant.encode()) + _ld(2, prefix.encode())
    if interface is not None:
        g = _ld(1, interface.encode()) + (_ld(2, address.encode()) if address else b"")
        r += _ld(3, g)
    elif next_tenant is not None:
        r += _ld(4, next_tenant.encode())
    return _varint(1 << 3 | 0) + _varint(op) + _ld(2, _ld(4, r))


def self_test():
    a = encode_route_op(dp.Operation.CREATE, "t", "10.0.0.0/24", "i", "10.0.0.2")
    b = create(route_via("t", "10.0.0.0/24", "i", "10.0.0.2")).SerializeToString()
    assert a == b, (a, b)
    a = encode_route_op(dp.Operation.DELETE, "t", "10.0.0.0/24")
    b = delete(pb.Route(tenant="t", prefix="10.0.0.0/24")).SerializeToString()
    assert a == b, (a, b)
    req = dp.ApplyRequest.FromString(encode_apply([a, a], 7))
    assert len(req.operations) == 2 and req.expected_version == 7


# --- the client ---------------------------------------------------------------------------

class Client:
    def __init__(self, target, credentials=None, options=()):
        opts = CHANNEL_OPTIONS + list(options)
        if credentials is None:
            self.channel = grpc.insecure_channel(target, options=opts)
        else:
            self.channel = grpc.secure_channel(target, credentials, options=opts)
        self.stub = dp_grpc.DataplaneStub(self.channel)
        self.raw_apply = self.channel.unary_unary(SERVICE + "Apply", request_serializer=None,
                                                  response_deserializer=dp.ApplyResponse.FromString)

    def close(self):
        self.channel.close()

    def wait_ready(self, timeout):
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    def apply(self, ops, expected_version=0, timeout=30):
        return self.stub.Apply(dp.ApplyRequest(operations=ops, expected_version=expected_version),
                               timeout=timeout)

    def get(self, message, timeout=10):
        return self.stub.Get(dp.GetRequest(key=obj(message)), timeout=timeout)

    def list_page(self, kind, tenant="", page_size=0, page_token="", timeout=30):
        return self.stub.List(dp.ListRequest(kind=KIND_OF.get(kind, kind), tenant=tenant,
                                             page_size=page_size, page_token=page_token),
                              timeout=timeout)

    def list_all(self, kind, tenant="", page_size=1000, timeout=60, max_pages=100000):
        """(objects, versions seen on the pages). Raises if a page token repeats."""
        objects, versions, token, seen = [], [], "", set()
        for _ in range(max_pages):
            r = self.list_page(kind, tenant, page_size, token, timeout)
            objects.extend(inner(o) for o in r.objects)
            versions.append(r.version)
            if not r.next_page_token:
                return objects, versions
            if r.next_page_token in seen:
                raise RuntimeError("List %s: page token %r repeats" % (kind, r.next_page_token))
            seen.add(r.next_page_token)
            token = r.next_page_token
        raise RuntimeError("List %s: more than %d pages" % (kind, max_pages))

    def version(self):
        return self.stub.GetCounters(dp.GetCountersRequest(), timeout=10).version

    def counters(self, timeout=10):
        return self.stub.GetCounters(dp.GetCountersRequest(), timeout=timeout)

    def runtime(self, timeout=10):
        return self.stub.GetRuntime(dp.GetRuntimeRequest(), timeout=timeout)


errors = []  # the details of every error rpc() returned: test/lib/keygrep.py searches them


def rpc(fn, *args, **kwargs):
    """(error or None, result or None): a grpc.RpcError is returned, not raised."""
    try:
        return None, fn(*args, **kwargs)
    except grpc.RpcError as e:
        errors.append("%s: %s" % (e.code().name, e.details()))
        return e, None


def code_name(err):
    return "OK" if err is None else err.code().name


# --- medix-dp processes --------------------------------------------------------------------

_processes = []


class Dataplane:
    """One medix-dp in a session of its own, its output in `log_path`; killed at exit."""

    def __init__(self, binary, eal, options, log_path, cpus=None):
        self.prefix = eal[eal.index("--file-prefix") + 1]
        self.cmd = [binary] + list(eal) + ["--"] + list(options)
        self.log_path = log_path
        self.log = open(log_path, "w")
        self.log.write("$ " + " ".join(self.cmd) + "\n")
        self.log.flush()
        self.lines = []
        self.ready = threading.Event()
        pre = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True, cwd=ROOT,
                                     preexec_fn=pre)
        _processes.append(self)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    @property
    def pid(self):
        return self.proc.pid

    @property
    def socket_path(self):
        opts = self.cmd[self.cmd.index("--") + 1:]
        if "--api-socket" in opts:
            return opts[opts.index("--api-socket") + 1]
        return "/var/run/dpdk/%s/api.sock" % self.prefix

    @property
    def unix_target(self):
        return "unix:" + self.socket_path

    def _read(self):
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            self.log.write(line + "\n")
            self.log.flush()
            if line.startswith("medix-dp: ready"):
                self.ready.set()

    def wait_ready(self, timeout=60):
        """Waits for the ready line and for the API socket; raises with the log's tail."""
        deadline = time.monotonic() + timeout
        socket_deadline = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.reader.join(2)
                raise RuntimeError("medix-dp exited with status %d before it was ready:\n%s"
                                   % (self.proc.returncode, self.tail()))
            if self.ready.is_set():
                if os.path.exists(self.socket_path):
                    return
                # The server may come up just after the ready line; not much later.
                if socket_deadline is None:
                    socket_deadline = time.monotonic() + 10
                elif time.monotonic() > socket_deadline:
                    break
            time.sleep(0.05)
        what = "its API socket %s" % self.socket_path if self.ready.is_set() else "its ready line"
        raise RuntimeError("medix-dp: no %s within %d s:\n%s" % (what, timeout, self.tail()))

    def tail(self, n=20):
        return "\n".join("  | " + line for line in self.lines[-n:])

    def alive(self):
        return self.proc.poll() is None

    def rss_kb(self, field="VmRSS"):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return None

    def threads(self):
        try:
            return len(os.listdir("/proc/%d/task" % self.pid))
        except OSError:
            return None

    def stop(self, timeout=15):
        """SIGTERM, then SIGKILL after `timeout` s. Returns (exit status, needed SIGKILL)."""
        killed = False
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                killed = True
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
        self.reader.join(5)
        self.log.close()
        self.socket_left = os.path.exists(self.socket_path)
        if self in _processes:
            _processes.remove(self)
        shutil.rmtree("/var/run/dpdk/%s" % self.prefix, ignore_errors=True)
        return self.proc.returncode, killed


def kill_all():
    for p in list(_processes):
        try:
            if p.proc.poll() is None:
                os.killpg(p.proc.pid, signal.SIGKILL)
                p.proc.wait(5)
        except Exception:  # noqa: BLE001
            pass
        shutil.rmtree("/var/run/dpdk/%s" % p.prefix, ignore_errors=True)
        if p in _processes:
            _processes.remove(p)


atexit.register(kill_all)
