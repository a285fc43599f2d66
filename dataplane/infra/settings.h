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
  uint32_t max_sessions = 1u << 20;
  uint32_t tcp_established_timeout_s = 7440;
  uint32_t tcp_transitory_timeout_s = 240;
  uint32_t udp_timeout_s = 300;
  uint32_t icmp_timeout_s = 60;
  uint32_t other_timeout_s = 300;
  uint32_t packet_buffers = 0;
};

inline Settings settings_from(const medix::dataplane::v1::Settings& s) {
  Settings out;
  if (s.icmp_rate_per_second()) out.icmp_rate_per_second = s.icmp_rate_per_second();
  if (s.icmp_burst()) out.icmp_burst = s.icmp_burst();
  if (s.arp_pending_limit()) out.arp_pending_limit = s.arp_pending_limit();
  if (s.arp_timeout_ms()) out.arp_timeout_ms = s.arp_timeout_ms();
  out.exception_interface = s.exception_interface();
  if (s.max_sessions()) out.max_sessions = s.max_sessions();
  if (s.tcp_established_timeout_s()) out.tcp_established_timeout_s = s.tcp_established_timeout_s();
  if (s.tcp_transitory_timeout_s()) out.tcp_transitory_timeout_s = s.tcp_transitory_timeout_s();
  if (s.udp_timeout_s()) out.udp_timeout_s = s.udp_timeout_s();
  if (s.icmp_timeout_s()) out.icmp_timeout_s = s.icmp_timeout_s();
  if (s.other_timeout_s()) out.other_timeout_s = s.other_timeout_s();
  out.packet_buffers = s.packet_buffers();
  return out;
}
