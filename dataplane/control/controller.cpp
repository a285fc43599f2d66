#include "control/controller.h"

#include <rte_cycles.h>

#include "common/log.h"
#include "control/kinds.h"

namespace medix::dp {

std::optional<std::string> Controller::init(const Committer::Params& params) { return committer_.init(params); }

namespace {

// The path of the operation a commit error is about, with ": ", or nothing.
std::string path_of(const std::vector<Operation>& ops, const Error& e) {
  for (const auto& op : ops) {
    const v1::Object& o = op.object;
    if (o.kind_case() != e.kind) continue;
    const Kind* kind = kind_of(o.kind_case());
    std::string name = kind && kind->error_name ? kind->error_name(o) : "";
    if (e.name.empty() || name == e.name) return op.path + ": ";
  }
  return "";
}

}  // namespace

ApplyResult Controller::apply(const std::vector<Operation>& ops, uint64_t expected_version) {
  std::lock_guard lock(mutex_);
  auto start = std::chrono::steady_clock::now();
  ApplyResult result = apply_locked(ops, expected_version);
  result.nanoseconds =
      uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
  return result;
}

ApplyResult Controller::apply_locked(const std::vector<Operation>& ops, uint64_t expected_version) {
  if (expected_version && expected_version != version_)
    return {Code::failed_precondition,
            "expected_version: " + std::to_string(expected_version) + " is not the running version " +
                std::to_string(version_),
            version_, 0};
  Diff diff;
  auto start = std::chrono::steady_clock::now();
  if (auto e = intent_.apply(ops, diff)) return {e->code, e->message, version_, 0};
  uint64_t check_ns =
      uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count());
  if (diff.size() == 0) return {Code::ok, "", version_, 0};
  if (auto e = committer_.commit(diff, intent_, version_ + 1)) {
    intent_.rollback_last();
    return {e->code, path_of(ops, *e) + e->message, version_, 0};
  }
  intent_.forget_last();
  version_++;
  ApplyResult result{Code::ok, "", version_, uint32_t(diff.size())};
  result.check_ns = check_ns;
  result.commit = committer_.last_timing();
  return result;
}

void Controller::learn(const LearnedNeighbour* learned, unsigned n) {
  std::lock_guard lock(mutex_);
  for (unsigned i = 0; i < n; i++) committer_.learn(learned[i]);
}

void Controller::stop_ports() {
  std::lock_guard lock(mutex_);
  committer_.stop_ports();
}

}  // namespace medix::dp

namespace medix::dp {

void Controller::sa_events(const SaEventMessage* events, unsigned n, uint64_t tsc_hz) {
  std::vector<SaEvent> named;
  {
    std::lock_guard lock(mutex_);
    const Tables& t = *committer_.current();
    auto now_ns = uint64_t(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    uint64_t now_tsc = rte_rdtsc();
    for (unsigned i = 0; i < n; i++) {
      const auto& e = events[i];
      uint64_t age_ns = now_tsc > e.tsc ? (now_tsc - e.tsc) * 1000000000 / tsc_hz : 0;
      std::string tunnel = e.tunnel < t.interfaces.size() ? t.interfaces[e.tunnel].name : "";
      named.push_back({SaEventKind(e.kind), e.spi, tunnel, e.inbound, e.packets, e.bytes, now_ns - age_ns});
    }
  }
  static const char* what[] = {"", "soft lifetime reached (rekey)", "hard lifetime reached (expired)",
                               "sequence number about to overflow", "HA fence reached (rekey)"};
  for (const auto& e : named)
    medix::common::log(
        e.kind == SaEventKind::soft_expired ? medix::common::LogLevel::info : medix::common::LogLevel::notice,
        "medix-dp: SA: tunnel \"%s\" %s SA 0x%08x: %s after %lu packets, %lu bytes", e.tunnel.c_str(),
        e.inbound ? "inbound" : "outbound", e.spi, what[int(e.kind) < 5 ? int(e.kind) : 0], (unsigned long)e.packets,
        (unsigned long)e.bytes);
  sa_events_.record(std::move(named));
}

}  // namespace medix::dp
