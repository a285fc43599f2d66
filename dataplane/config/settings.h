#pragma once
// The config file's `settings` as the dataplane's knobs: 0 (unset) keeps the default.
#include <algorithm>
#include <optional>
#include <string>

#include "infra/limits.h"
#include "infra/settings.h"
#include "medix/dataplane/v1/objects.pb.h"

namespace medix::dp {

// What no default guards: a value the dataplane's fixed arrays cannot hold. The error names
// the field ("settings.arp_pending_limit: ...").
inline std::optional<std::string> check_settings(const medix::dataplane::v1::Settings& s) {
  // Each worker's ARP pending queue is an array of max_pending packets (infra/worker.h).
  if (s.arp_pending_limit() > max_pending)
    return "settings.arp_pending_limit: " + std::to_string(s.arp_pending_limit()) + " is above the most, " +
           std::to_string(max_pending);
  return std::nullopt;
}

inline Settings settings_from(const medix::dataplane::v1::Settings& s) {
  Settings out;
  if (s.icmp_rate_per_second()) out.icmp_rate_per_second = s.icmp_rate_per_second();
  if (s.icmp_burst()) out.icmp_burst = s.icmp_burst();
  if (s.arp_pending_limit()) out.arp_pending_limit = s.arp_pending_limit();
  // A tenant's shares: a fraction of the worker's cap unless set (docs/fair-shares.md).
  out.icmp_tenant_rate_per_second =
      s.icmp_tenant_rate_per_second() ? s.icmp_tenant_rate_per_second() : std::min(100u, out.icmp_rate_per_second);
  out.icmp_tenant_burst = s.icmp_tenant_burst() ? s.icmp_tenant_burst() : std::min(10u, out.icmp_burst);
  out.arp_pending_tenant_limit =
      s.arp_pending_tenant_limit() ? s.arp_pending_tenant_limit() : std::max(1u, out.arp_pending_limit / 4);
  if (s.punt_rate_per_second()) out.punt_rate_per_second = s.punt_rate_per_second();
  if (s.punt_burst()) out.punt_burst = s.punt_burst();
  if (s.arp_timeout_ms()) out.arp_timeout_ms = s.arp_timeout_ms();
  out.exception_interface = s.exception_interface();
  if (s.max_sessions()) out.max_sessions = s.max_sessions();
  if (s.tcp_established_timeout_s()) out.tcp_established_timeout_s = s.tcp_established_timeout_s();
  if (s.tcp_transitory_timeout_s()) out.tcp_transitory_timeout_s = s.tcp_transitory_timeout_s();
  if (s.udp_timeout_s()) out.udp_timeout_s = s.udp_timeout_s();
  if (s.icmp_timeout_s()) out.icmp_timeout_s = s.icmp_timeout_s();
  if (s.other_timeout_s()) out.other_timeout_s = s.other_timeout_s();
  out.packet_buffers = s.packet_buffers();
  out.fib_memory_mb = s.fib_memory_mb();
  return out;
}

}  // namespace medix::dp
