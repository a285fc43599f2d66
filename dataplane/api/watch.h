#pragma once
// The API's server streams (WatchCounters, WatchSaEvents), served without a thread each: one
// ticker thread writes to every stream, at most one message in flight a stream. A stream whose
// client has taken nothing for `stall` is ended with RESOURCE_EXHAUSTED; streams are capped in
// all and per client (RESOURCE_EXHAUSTED naming the cap); stop() ends them all, so that
// neither Apply nor shutdown waits on a client that does not read.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <list>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "control/controller.h"
#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::dp {

struct WatchLimits {
  unsigned max_streams = 64;     // --api-max-streams
  unsigned max_per_client = 16;  // --api-max-streams-per-client
  unsigned stall_ms = 10000;     // --api-stall-timeout
};

// A stream refused before it started: its status, nothing else.
template <typename M>
struct RefusedStream final : grpc::ServerWriteReactor<M> {
  explicit RefusedStream(const grpc::Status& status) { this->Finish(status); }
  void OnDone() override { delete this; }
};

class Watches {
 public:
  using Clock = std::chrono::steady_clock;
  // `snapshot` fills a CountersSnapshot (called on the ticker thread).
  Watches(Controller& controller, std::function<void(medix::dataplane::v1::CountersSnapshot&)> snapshot,
          WatchLimits limits);
  ~Watches();

  grpc::ServerWriteReactor<medix::dataplane::v1::CountersSnapshot>* counters(grpc::CallbackServerContext* context,
                                                                             const std::string& client,
                                                                             uint32_t interval_ms);
  grpc::ServerWriteReactor<medix::dataplane::v1::SaEvent>* sa_events(grpc::CallbackServerContext* context,
                                                                     const std::string& client);
  // Ends every stream (UNAVAILABLE: medix-dp is stopping) and refuses new ones. Call before
  // the server's Shutdown; wait_done() after it.
  void stop();
  void wait_done(std::chrono::milliseconds timeout);

  struct Watch;  // one stream (watch.cpp)

 private:
  friend struct Watch;
  std::optional<grpc::Status> admit(const char* method, const std::string& client);
  void run();
  void write_done(Watch* w, bool ok);
  void cancelled(Watch* w);
  void done(Watch* w);
  void bury();

  Controller& controller_;
  std::function<void(medix::dataplane::v1::CountersSnapshot&)> snapshot_;
  WatchLimits limits_;
  std::mutex mutex_;
  std::condition_variable changed_;
  bool stopping_ = false;
  std::list<Watch*> watches_;  // open: admitted and not yet done
  std::vector<Watch*> dead_;   // done, deleted by the ticker (or stop) when it holds none
  std::map<std::string, unsigned> per_client_;
  std::thread ticker_;
};

}  // namespace medix::dp
