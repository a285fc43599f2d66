#include "ipsec/events.h"

namespace medix::dp {

void SaEventLog::record(std::vector<SaEvent> events) {
  if (events.empty()) return;
  {
    std::lock_guard lock(mutex_);
    for (auto& e : events) {
      events_.push_back(std::move(e));
      if (events_.size() > kept) events_.pop_front();
      total_++;
    }
  }
  changed_.notify_all();
}

std::vector<SaEvent> SaEventLog::wait(uint64_t& cursor, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] { return total_ > cursor; });
  std::vector<SaEvent> out;
  uint64_t first = total_ - events_.size();
  for (uint64_t i = std::max(cursor, first); i < total_; i++) out.push_back(events_[i - first]);
  cursor = total_;
  return out;
}

uint64_t SaEventLog::count() {
  std::lock_guard lock(mutex_);
  return total_;
}

void fill(medix::dataplane::v1::SaEvent& out, const SaEvent& e) {
  out.set_kind(medix::dataplane::v1::SaEvent::Kind(e.kind));
  out.set_spi(e.spi);
  out.set_tunnel(e.tunnel);
  out.set_inbound(e.inbound);
  out.set_packets(e.packets);
  out.set_bytes(e.bytes);
  out.set_timestamp_ns(e.timestamp_ns);
}

}  // namespace medix::dp
