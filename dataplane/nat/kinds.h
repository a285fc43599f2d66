#pragma once
// Address translation (static mappings, NAPT pools) and policy rules: their entries in the table of object kinds
// (control/kinds.cpp).
#include "control/kinds.h"

namespace medix::dp {

extern const Kind static_mapping_kind, napt_pool_kind, policy_rule_kind;

}  // namespace medix::dp
