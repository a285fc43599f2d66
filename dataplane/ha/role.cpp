#include "ha/role.h"

#include <chrono>

#include "common/log.h"

namespace medix::dp::ha {

namespace {

uint64_t realtime_ns() {
  return uint64_t(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

const char* role(bool standby) { return standby ? "standby" : "active"; }

}  // namespace

const char* cause_name(Cause c) {
  switch (c) {
    case Cause::start: return "start";
    case Cause::manual: return "manual";
    case Cause::vrrp: return "vrrp";
  }
  return "?";
}

bool RoleLog::set(std::atomic<bool>& standby, bool to_standby, Cause cause, const std::string& detail) {
  std::lock_guard lock(mutex_);
  bool was = standby.exchange(to_standby);
  if (was == to_standby) return was;
  changes_++;
  if (was && !to_standby) failovers_++;
  last_.push_back({realtime_ns(), was, to_standby, cause, detail});
  while (last_.size() > kept) last_.pop_front();
  medix::common::log(medix::common::LogLevel::notice, "medix-dp: HA: %s -> %s (%s: %s)", role(was), role(to_standby),
                     cause_name(cause), detail.c_str());
  return was;
}

void RoleLog::start(std::atomic<bool>& standby, bool to_standby) {
  std::lock_guard lock(mutex_);
  standby.store(to_standby);
  last_.push_back({realtime_ns(), to_standby, to_standby, Cause::start, std::string("--ha-role ") + role(to_standby)});
}

std::vector<RoleChange> RoleLog::last() const {
  std::lock_guard lock(mutex_);
  return {last_.begin(), last_.end()};
}

uint64_t RoleLog::changes() const {
  std::lock_guard lock(mutex_);
  return changes_;
}

uint64_t RoleLog::failovers() const {
  std::lock_guard lock(mutex_);
  return failovers_;
}

}  // namespace medix::dp::ha
