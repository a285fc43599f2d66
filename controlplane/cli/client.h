#pragma once
// medix-dp's gRPC API as medixctl calls it: every call either returns what the server sent or
// throws ServerError ("CODE: message", the server's message untouched).
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "args.h"
#include "medix/dataplane/v1/dataplane.grpc.pb.h"

namespace medix::ctl {
namespace v1 = medix::dataplane::v1;

struct ServerError : Failure {
  ServerError(grpc::StatusCode code_, const std::string& message, std::string note = {});
  grpc::StatusCode code;
  std::string message;  // the server's, without the code
};

// "INVALID_ARGUMENT"
std::string code_name(grpc::StatusCode code);

// Files holding PEM; TLS is used when any is given.
struct Tls {
  std::string cert, key, ca;
  bool enabled() const { return !cert.empty() || !key.empty() || !ca.empty(); }
};

class Client {
 public:
  Client(const std::string& target, const Tls& tls);

  // Every object of `kind` (of `tenant`, if not empty) over all pages, with the version they
  // were read at; listing starts over (a few times) if the version changes between pages.
  v1::ListResponse list(v1::Kind kind, const std::string& tenant);
  v1::GetResponse get(const v1::Object& key);
  v1::ApplyResponse apply(const v1::ApplyRequest& request);
  v1::CountersSnapshot counters();
  v1::Runtime runtime();
  v1::Version version();
  v1::ListSessionsResponse sessions(const v1::ListSessionsRequest& request);
  // A tenant's effective FIB, every page ("": the summary of all FIBs).
  v1::GetFibResponse fib(const std::string& tenant);
  v1::LookupResponse lookup(const std::string& tenant, const std::string& address);
  void clear_sessions(const std::string& tenant);
  // Counters start from zero for every reader; returns since when (CLOCK_REALTIME ns).
  uint64_t clear_counters();
  // Calls `each` for every snapshot pushed until it returns false, then ends the stream.
  void watch_counters(uint32_t interval_ms, const std::function<bool(const v1::CountersSnapshot&)>& each);
  // Calls `each` for every packet until the capture ends (count, duration, the server) or
  // `cancel` turns true (polled); returns how many packets the server left out (lost).
  uint64_t capture(const v1::CaptureRequest& request, const std::function<void(const v1::CapturedPacket&)>& each,
                   const std::atomic<bool>& cancel);
  void start_trace(const v1::StartTraceRequest& request);
  v1::GetTraceResponse get_trace();
  void clear_trace();
  // HA (ha_sync.cpp): the node's role, and the state sync's status.
  v1::SetHaRoleResponse set_ha_role(const v1::SetHaRoleRequest& request);
  v1::HaSyncStatus get_ha_sync();

 private:
  // Throws ServerError for a failed call; a connection's failure carries the reason as its note.
  void check(const grpc::Status& status);

  std::unique_ptr<v1::Dataplane::Stub> stub_;
  std::string target_;
  Tls tls_;
  bool probed_ = false;
  std::string tls_reason_;
};

}  // namespace medix::ctl
