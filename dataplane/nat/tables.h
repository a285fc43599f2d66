#pragma once
// NAT's part of a generation (tables/tables.h): each tenant's translation into the core
// (TenantEntry::nat), the policy rules (Tables::rules) and the workers' session tables
// (Tables::nat, declared in nat/nat.h). Ground floor like tables/: no protobuf, no feature.
// Built by nat/commit.cpp.
#include <cstdint>
#include <string>
#include <vector>

namespace medix::dp {

struct NatWorker;

// Translation of a tenant's addresses into the core (nat/): static prefix mappings and a
// NAPT pool. Empty for the core and for tenants whose addresses are unique already.
struct StaticMap {
  uint32_t inside, core, mask;
};
struct PoolRange {
  uint32_t first, count;
};
struct Translation {
  std::vector<StaticMap> maps;
  std::vector<PoolRange> pool;
  uint32_t pool_size = 0;  // addresses
  uint16_t port_low = 1024, port_high = 65535;
  uint32_t session_limit = 0;  // per worker; 0: none
  uint32_t epoch = 0;          // changes whenever the translation does: older sessions end
  bool any() const { return !maps.empty() || pool_size; }
  bool in_pool(uint32_t ip) const {
    for (const auto& r : pool)
      if (ip - r.first < r.count) return true;
    return false;
  }
  uint32_t pool_address(uint32_t index) const {
    for (const auto& r : pool) {
      if (index < r.count) return r.first + index;
      index -= r.count;
    }
    return 0;
  }
};

inline constexpr uint16_t any_tenant = UINT16_MAX;

struct PolicyRuleEntry {
  uint16_t slot = 0;  // for counters
  uint16_t from = any_tenant, to = any_tenant;
  uint32_t prefix = 0, mask = 0;
  uint8_t protocol = 0;  // 0: any
  uint16_t port_low = 0, port_high = 65535;
  bool permit = false;
  std::string name;
};

}  // namespace medix::dp
