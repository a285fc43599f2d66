#pragma once
// Address translation (static mappings, NAPT pools) and policy rules: their entries in the table of object kinds
// (control/kinds.cpp).
#include "control/kinds.h"

namespace medix::dp {

extern const Kind static_mapping_kind, napt_pool_kind, policy_rule_kind;

// A pool's addresses ("100.64.9.1" or "100.64.9.0/30") as prefixes; nullopt if one is bad.
std::optional<std::vector<Prefix>> pool_prefixes(const v1::NaptPool& p);
// The most core addresses one pool may have (prefixes expanded).
inline constexpr uint32_t max_pool_addresses = 4096;

}  // namespace medix::dp
