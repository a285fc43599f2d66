#!/usr/bin/python3
"""The standard gRPC services as a generic tool sees them: a server reflection client
(grpc.reflection.v1alpha, what grpcurl and grpc_cli use) and a grpc.health.v1 client. Stubs are
generated from test/api/protos/ at import time into a temporary folder (removed at exit).

    grpcstd.py TARGET [SERVICE ...]
        prints "services: NAME ..." (over reflection), "methods NAME: M ..." for each service the
        reflection serves the file of, and "health SERVICE: STATUS" for "" and each SERVICE;
        exit status 0 when every health answer is SERVING. Used by test/cp/disk_full.sh.
"""
import atexit
import os
import shutil
import subprocess
import sys
import tempfile

import grpc
from google.protobuf import descriptor_pb2

HERE = os.path.dirname(os.path.abspath(__file__))


def _generate_stubs():
    out = tempfile.mkdtemp(prefix="medix-grpcstd-stubs-")
    atexit.register(shutil.rmtree, out, True)
    protos = os.path.join(HERE, "protos")
    cmd = ["protoc", "--python_out=" + out, "--grpc_python_out=" + out,
           "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin", "-I", protos,
           os.path.join(protos, "health_v1.proto"), os.path.join(protos, "reflection_v1alpha.proto")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        sys.exit("grpcstd: protoc failed: %s" % r.stderr.strip())
    sys.path.insert(0, out)


_generate_stubs()
import health_v1_pb2 as health_pb  # noqa: E402
import health_v1_pb2_grpc as health_grpc  # noqa: E402
import reflection_v1alpha_pb2 as reflection_pb  # noqa: E402
import reflection_v1alpha_pb2_grpc as reflection_grpc  # noqa: E402

HEALTH = "grpc.health.v1.Health"
REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


def status_name(status):
    return health_pb.HealthCheckResponse.ServingStatus.Name(status)


def _reflect(channel, requests, timeout):
    stub = reflection_grpc.ServerReflectionStub(channel)
    return list(stub.ServerReflectionInfo(iter(requests), timeout=timeout))


def services(channel, timeout=10):
    """The services the server lists over reflection, sorted."""
    (r,) = _reflect(channel, [reflection_pb.ServerReflectionRequest(list_services="")], timeout)
    if r.HasField("error_response"):
        raise RuntimeError("reflection: %s" % r.error_response.error_message)
    return sorted(s.name for s in r.list_services_response.service)


def methods(channel, service, timeout=10):
    """The methods of `service` as the file reflection sends for it describes them."""
    (r,) = _reflect(channel, [reflection_pb.ServerReflectionRequest(file_containing_symbol=service)], timeout)
    if r.HasField("error_response"):
        raise RuntimeError("reflection of %s: %s" % (service, r.error_response.error_message))
    package, _, name = service.rpartition(".")
    for raw in r.file_descriptor_response.file_descriptor_proto:
        f = descriptor_pb2.FileDescriptorProto.FromString(raw)
        if f.package != package:
            continue
        for s in f.service:
            if s.name == name:
                return [m.name for m in s.method]
    raise RuntimeError("reflection of %s: no file describes it" % service)


def health(channel, service="", timeout=10):
    """The status name grpc.health.v1.Health/Check answers for `service` ("": the server)."""
    r = health_grpc.HealthStub(channel).Check(health_pb.HealthCheckRequest(service=service), timeout=timeout)
    return status_name(r.status)


def watch_health(channel, service=""):
    """A grpc.health.v1.Health/Watch call: iterate it for status names."""
    return health_grpc.HealthStub(channel).Watch(health_pb.HealthCheckRequest(service=service))


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    channel = grpc.insecure_channel(sys.argv[1])
    listed = services(channel)
    print("services: " + " ".join(listed))
    for s in listed:
        if s not in (HEALTH, REFLECTION):
            print("methods %s: %s" % (s, " ".join(methods(channel, s))))
    ok = True
    for s in [""] + sys.argv[2:]:
        status = health(channel, s)
        ok = ok and status == "SERVING"
        print("health %s: %s" % (s or '""', status))
    channel.close()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
