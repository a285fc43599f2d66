#pragma once
// The single writer of medix-dp's state: the intent (validation) and the committer (what
// workers read), behind one lock that only control threads (gRPC, telemetry, the main lcore)
// ever take. Workers never see it.
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>

#include "control/commit.h"
#include "control/intent.h"
#include "ipsec/events.h"

namespace medix::dp {

struct ApplyResult {
  Code code = Code::ok;
  std::string message;
  uint64_t version = 0;           // the version running after the call
  uint32_t changed = 0;           // objects changed
  uint64_t nanoseconds = 0;       // the transaction's time under the lock, of which:
  uint64_t check_ns = 0;          // checking it against the intent
  Committer::Timing commit = {};  // building, the grace period, reclaiming
};

class Controller {
 public:
  std::optional<std::string> init(const Committer::Params& params);
  // One transaction: validated whole, applied whole, or rejected leaving state and version.
  ApplyResult apply(const std::vector<Operation>& ops, uint64_t expected_version = 0);
  // Runs `f(intent, committer, version)` under the lock: a consistent read.
  template <typename F>
  auto read(F&& f) {
    std::lock_guard lock(mutex_);
    return f(static_cast<const Intent&>(intent_), static_cast<const Committer&>(committer_), version_);
  }
  void learn(const LearnedNeighbour* learned, unsigned n);

  // SA lifetime events from workers' rings: their tunnels named (under the lock, from the
  // tables), then recorded in the log API streams read (ipsec/events.h).
  void sa_events(const SaEventMessage* events, unsigned n, uint64_t tsc_hz);
  SaEventLog& sa_event_log() { return sa_events_; }
  void stop_ports();
  bool clear_sessions(const std::string& tenant) {
    std::lock_guard lock(mutex_);
    return committer_.clear_sessions(tenant);
  }
  const std::atomic<const Tables*>& published() const { return committer_.published(); }
  // Keeps the intent's digest (control/digest.h) from the next transaction on: HA sync.
  void track_digest() {
    std::lock_guard lock(mutex_);
    intent_.track_digest = true;
  }
  void set_device_check(std::function<bool(const std::string&)> f) { intent_.device_exists = std::move(f); }

 private:
  ApplyResult apply_locked(const std::vector<Operation>& ops, uint64_t expected_version);

  std::mutex mutex_;
  SaEventLog sa_events_;
  Intent intent_;
  Committer committer_;
  uint64_t version_ = 0;
};

}  // namespace medix::dp
