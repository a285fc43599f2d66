#pragma once
// The Capture RPC's control side: checks a request, compiles its BPF filter, gives each worker
// a ring, publishes the session to the workers (infra/capture.h), drains the rings into the
// stream, and takes the session back (after an RCU grace period) when the client goes, the
// count or duration is reached, or medix-dp stops. One capture at a time.
#include <grpcpp/grpcpp.h>
#include <grpcpp/support/sync_stream.h>

#include <atomic>
#include <string>

#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::dp {

struct Dataplane;
struct Tables;
struct CaptureFilter;

// A refusal of a request's field (INVALID_ARGUMENT), for Capture and StartTrace.
grpc::Status invalid_argument(const std::string& message);
// CLOCK_REALTIME in ns: when a captured or traced packet was seen.
uint64_t realtime_ns();

// Builds a capture filter from the names in `t` (the tables the workers read now); a refusal
// names the request's field. Sets f.bpf (the caller destroys it) only when it returns OK.
grpc::Status make_filter(const Tables& t, const medix::dataplane::v1::CaptureRequest& r, CaptureFilter& f);

class Captures {
 public:
  explicit Captures(Dataplane& dp) : dp_(dp) {}
  grpc::Status run(grpc::ServerContext& context, const medix::dataplane::v1::CaptureRequest& request,
                   grpc::ServerWriterInterface<medix::dataplane::v1::CapturedPacket>& out);
  void stop() { stopping_.store(true); }  // a running capture ends within a few ms

 private:
  Dataplane& dp_;
  std::atomic<bool> busy_{false};
  std::atomic<bool> stopping_{false};
};

}  // namespace medix::dp
