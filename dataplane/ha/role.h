#pragma once
// The node's HA role and its recent changes (docs/ha.md, "Operating the pair"): who set it
// (start, an operator's SetHaRole, a VRRP transition), when, from what and why. Every change
// of Dataplane::ha_standby outside the workers goes through set(): the API thread and the
// main lcore's VRRP runner; workers only read the flag, so a lock here is off the hot path.
#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace medix::dp::ha {

enum class Cause : uint8_t { start, manual, vrrp };
const char* cause_name(Cause c);

struct RoleChange {
  uint64_t realtime_ns = 0;
  bool from_standby = false, to_standby = false;
  Cause cause = Cause::start;
  std::string detail;  // "operator CN=nms: planned switchover", "lan-gw: master_down (peer lost)"
};

class RoleLog {
 public:
  static constexpr size_t kept = 16;

  // Sets the role; a change is logged and kept (the oldest of more than `kept` forgotten).
  // Returns the role it had.
  bool set(std::atomic<bool>& standby, bool to_standby, Cause cause, const std::string& detail);
  // The starting role (--ha-role), kept as the first entry.
  void start(std::atomic<bool>& standby, bool to_standby);

  std::vector<RoleChange> last() const;  // the oldest first
  uint64_t changes() const;
  uint64_t failovers() const;  // standby to active: takeovers

 private:
  mutable std::mutex mutex_;
  std::deque<RoleChange> last_;
  uint64_t changes_ = 0, failovers_ = 0;
};

}  // namespace medix::dp::ha
