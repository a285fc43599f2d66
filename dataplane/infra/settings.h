#pragma once
#include <cstdint>
#include <string>

#include "medix/dataplane/v1/objects.pb.h"

// Dataplane knobs from the config file's `settings` (defaults when 0).
struct Settings {
  uint32_t icmp_rate_per_second = 100;
  uint32_t icmp_burst = 10;
  uint32_t arp_pending_limit = 256;
  uint32_t arp_timeout_ms = 1000;
  std::string exception_interface;
};

inline Settings settings_from(const medix::dataplane::v1::Settings& s) {
  Settings out;
  if (s.icmp_rate_per_second()) out.icmp_rate_per_second = s.icmp_rate_per_second();
  if (s.icmp_burst()) out.icmp_burst = s.icmp_burst();
  if (s.arp_pending_limit()) out.arp_pending_limit = s.arp_pending_limit();
  if (s.arp_timeout_ms()) out.arp_timeout_ms = s.arp_timeout_ms();
  out.exception_interface = s.exception_interface();
  return out;
}
