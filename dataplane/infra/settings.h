#pragma once
#include <cstdint>
#include <string>

namespace medix::dp {

// Dataplane knobs (the config file's `settings`; config/settings.h reads them).
struct Settings {
  uint32_t icmp_rate_per_second = 100;
  uint32_t icmp_burst = 10;
  uint32_t arp_pending_limit = 256;
  uint32_t arp_timeout_ms = 1000;
  std::string exception_interface;
  uint32_t max_sessions = 1u << 20;
  uint32_t tcp_established_timeout_s = 7440;
  uint32_t tcp_transitory_timeout_s = 240;
  uint32_t udp_timeout_s = 300;
  uint32_t icmp_timeout_s = 60;
  uint32_t other_timeout_s = 300;
  uint32_t packet_buffers = 0;
  uint32_t fib_memory_mb = 0;  // 0: max_fib_plies
};

}  // namespace medix::dp
