#pragma once
// What the committer builds from ip's kinds (ip/kinds.cpp): tenants, each with its FIB, and
// routes, those of the intent and those interface addresses make. Free functions of this
// folder; what they keep between transactions (Kept) is held by the committer, and the steps
// reach it through the Build. Other features' steps reach tenants through the Build too
// (tenant_of; contribute and contribute_local for the routes of addresses).
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "control/commit.h"

namespace medix::dp::ip {

struct TenantSlot {
  std::string name;
  bool dir24_8 = false;                  // else its FIB is the compact one of Kept::lpm, table = slot
  rte_fib* fib[2] = {nullptr, nullptr};  // DIR24_8: the two copies
  uint64_t dir24_8_bytes = 0;            // ... their tables (tbl24 and tbl8 groups)
  int active = 0;
  std::map<std::pair<uint32_t, uint8_t>, uint16_t> effective;  // what both copies hold, once settled
  // Routes from interface addresses: (prefix) -> next hops, local ones first.
  std::map<std::pair<uint32_t, uint8_t>, std::vector<std::pair<int, uint16_t>>> automatic;
};
// Tenant slots and their names, the slots free for a later transaction, the compact FIBs'
// pool, and the next hops every generation shares (Tables::nexthops) with their ids and
// references. The committer makes the pool and the next hops (Committer::init) and frees them.
struct Kept {
  std::vector<TenantSlot> tenants;
  std::map<std::string, uint16_t> tenant_slot;
  std::vector<uint16_t> free_tenants;
  Lpm lpm;  // every compact tenant's FIB (table id = tenant slot)
  Nexthop* nexthops = nullptr;
  std::map<std::tuple<int, uint16_t, uint16_t, uint32_t>, uint16_t> nexthop_ids;
  std::vector<uint32_t> nexthop_refs;
  std::vector<uint16_t> free_nexthops;
  uint32_t fib_serial = 0;  // the DIR24_8 FIBs' EAL names
};

// Phase::slots: a slot and an empty FIB for each new tenant.
std::optional<Error> build_tenants(Committer::Build& b);
// Phase::routes: what each affected prefix resolves to now, in the standby FIB copies.
std::optional<Error> build_routes(Committer::Build& b);
// After the grace period: the plies only the old roots reached, the other DIR24_8 copies.
void reclaim_routes(Committer::Build& b);
// After the grace period: the dead tenants' FIBs and slots.
void reclaim_tenants(Committer::Build& b);
// Frees a tenant's FIB (its copies, or its table of the compact pool) and empties its slot.
void free_tenant(Kept& kept, TenantSlot& t);

}  // namespace medix::dp::ip
