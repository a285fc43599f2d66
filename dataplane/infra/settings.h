#pragma once
#include <cstdint>
#include <string>

namespace medix::dp {

// Dataplane knobs (the config file's `settings`; config/settings.h reads them).
struct Settings {
  // Fair shares (docs/fair-shares.md): each budget has a worker-wide cap and a tenant's share
  // of it; settings_from() derives a share left unset from its cap.
  uint32_t icmp_rate_per_second = 1000;  // ICMP errors, the worker's cap
  uint32_t icmp_burst = 100;
  uint32_t icmp_tenant_rate_per_second = 100;  // a tenant's share: min(100, the cap)
  uint32_t icmp_tenant_burst = 10;             // min(10, the cap's burst)
  uint32_t arp_pending_limit = 256;
  uint32_t arp_pending_tenant_limit = 64;  // a quarter of arp_pending_limit (at least 1)
  uint32_t punt_rate_per_second = 100;     // IKE to the exception path, per source address
  uint32_t punt_burst = 20;
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
