#pragma once
#include <memory>
#include <optional>
#include <variant>

#include "config/error.h"
#include "medix/dataplane/v1/objects.pb.h"
#include "tables/tables.h"

struct Settings {
  uint32_t icmp_rate_per_second = 100;
  uint32_t icmp_burst = 10;
  uint32_t arp_pending_limit = 256;
  uint32_t arp_timeout_ms = 1000;
};

Settings settings_from(const medix::dataplane::v1::Settings& s);

// Compiles a validated config into tables, resolving port devices to ethdevs (so EAL must be
// up). On failure nothing is left allocated and the error names the field.
std::variant<std::unique_ptr<Tables>, ConfigError> build_tables(const medix::dataplane::v1::Config& config,
                                                                unsigned socket);
