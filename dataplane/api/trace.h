#pragma once
// The trace RPCs' control side (StartTrace, GetTrace, ClearTrace): checks a request, builds
// the filter as capture does, publishes the session to the workers (infra/trace.h), renders
// its records with the names of the tables of now, and takes the session back after an RCU
// grace period when it is cleared, replaced or medix-dp stops. One trace at a time.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>

#include "infra/trace.h"
#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::dp {

struct Dataplane;

class Traces {
 public:
  explicit Traces(Dataplane& dp) : dp_(dp) {}
  ~Traces() { clear(); }
  grpc::Status start(const medix::dataplane::v1::StartTraceRequest& request);
  void get(medix::dataplane::v1::GetTraceResponse& out);
  void clear();

 private:
  // Unpublishes the session and frees it once no worker can hold it. Under mutex_.
  void retire();
  Dataplane& dp_;
  std::mutex mutex_;
  std::unique_ptr<TraceSession> session_;
  uint8_t last_id_ = 0;
  uint64_t tsc0_ = 0, ns0_ = 0;  // the TSC and CLOCK_REALTIME when it started
};

}  // namespace medix::dp
