#pragma once
// The Dataplane gRPC service (proto/medix/dataplane/v1/dataplane.proto): transactions, reads,
// counters. Served by gRPC's own threads; every change goes through the controller's lock,
// never near a worker. Every call is checked against its caller's role (api/access.h); the
// streams are driven by one thread and capped (api/watch.h).
#include <memory>
#include <optional>
#include <string>

#include "api/watch.h"

namespace medix::dp {

struct Dataplane;

struct ApiOptions {
  std::string socket_path;  // unix socket, mode 0600
  std::string listen;       // optional "host:port", TLS with client certificates only
  std::string tls_cert, tls_key, tls_client_ca;
  std::string roles;  // --api-roles FILE: who may do what (required with `listen`)
  WatchLimits streams;
};

class ApiServer {
 public:
  ApiServer();
  ~ApiServer();
  std::optional<std::string> start(Dataplane& dp, const ApiOptions& options);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace medix::dp
