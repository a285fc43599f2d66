#pragma once
// What the committer builds from NAT's kinds (nat/kinds.cpp): the core tenant, each tenant's
// translation, the policy rules and the workers' session tables. A free function of this
// folder, as every kind's step should be; what it keeps between transactions (Kept) is held
// by the committer, and the step reaches it through the Build.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control/commit.h"

namespace medix::dp::nat {

// Per-worker session tables (made when a core first appears, kept), the counter slots of
// policy rules, and the generation that last changed the rules (translation and policy epochs
// are the generations that changed them: a session made or checked in a later one is current).
struct Kept {
  std::vector<NatWorker*> workers;
  std::map<std::string, uint16_t> rule_slot;
  std::vector<uint16_t> free_rules;
  uint32_t policy_epoch = 0;
};

// Phase::crossing: the core's translations and policy, rebuilt whole when tenants, mappings,
// pools or rules change.
std::optional<Error> build_translations(Committer::Build& b);

}  // namespace medix::dp::nat
