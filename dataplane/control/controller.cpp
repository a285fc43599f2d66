#include "control/controller.h"

namespace medix::control {

std::optional<std::string> Controller::init(const Committer::Params& params) { return committer_.init(params); }

ApplyResult Controller::apply(const std::vector<Operation>& ops, uint64_t expected_version) {
  std::lock_guard lock(mutex_);
  if (expected_version && expected_version != version_)
    return {Code::failed_precondition,
            "expected_version: " + std::to_string(expected_version) + " is not the running version " +
                std::to_string(version_),
            version_, 0};
  Diff diff;
  if (auto e = intent_.apply(ops, diff)) return {e->code, e->message, version_, 0};
  if (diff.size() == 0) return {Code::ok, "", version_, 0};
  if (auto e = committer_.commit(diff, intent_, version_ + 1)) {
    intent_.rollback_last();
    return {e->code, e->message, version_, 0};
  }
  intent_.forget_last();
  version_++;
  return {Code::ok, "", version_, uint32_t(diff.size())};
}

void Controller::learn(const LearnedNeighbour* learned, unsigned n) {
  std::lock_guard lock(mutex_);
  for (unsigned i = 0; i < n; i++) committer_.learn(learned[i]);
}

void Controller::stop_ports() {
  std::lock_guard lock(mutex_);
  committer_.stop_ports();
}

}  // namespace medix::control
