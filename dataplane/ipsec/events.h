#pragma once
// SA lifetime events (soft and hard expiry, sequence overflow) as the API streams them.
// Workers report them through their rings (infra/worker.h); the main lcore names their
// tunnels and records them here; WatchSaEvents streams read them. A control piece: it has
// its own lock, so readers never wait on a transaction.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

#include "infra/worker.h"
#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::dp {

struct SaEvent {
  SaEventKind kind;
  uint32_t spi;
  std::string tunnel;
  bool inbound;
  uint64_t packets, bytes, timestamp_ns;
};

// The last 4096 events, each numbered: a reader keeps a cursor (an event count).
class SaEventLog {
 public:
  void record(std::vector<SaEvent> events);
  // Waits up to `timeout` for events after `cursor`; returns them and moves it.
  std::vector<SaEvent> wait(uint64_t& cursor, std::chrono::milliseconds timeout);
  uint64_t count();

 private:
  static constexpr size_t kept = 4096;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<SaEvent> events_;
  uint64_t total_ = 0;
};

// The API's message.
void fill(medix::dataplane::v1::SaEvent& out, const SaEvent& event);

}  // namespace medix::dp
