#pragma once
// One transaction's build, shared by the committer's steps (each in its feature's folder):
// the next generation, what to undo if a step fails before it is published, and what the
// steps leave for later ones and for the reclaim after the grace period.
#include <set>

#include "control/commit.h"

namespace medix::dp {

struct Committer::Build {
  Build(Committer& committer, const Diff& d, const Intent& in, uint64_t version)
      : c(committer), diff(d), intent(in), next(std::make_unique<Tables>(*committer.current())) {
    next->version = version;
    next->generation = ++committer.generations_;
  }
  Committer& c;
  const Diff& diff;
  const Intent& intent;
  std::unique_ptr<Tables> next;
  // What to undo if a later step fails before anything is published.
  std::vector<std::function<void()>> undo;
  bool need_totals = false;  // slots were given to new objects: their counter bases are read
  std::vector<uint16_t> new_port_slots, new_tenant_slots, new_interface_slots, new_rule_slots;
  std::vector<uint16_t> dead_ports, dead_tenants, dead_interfaces;
  // Interfaces and tunnels: name -> slot for those this transaction creates or changes.
  std::map<std::string, uint16_t> interface_of;
  // Routes from interface addresses change with them: (tenant slot, prefix) to recompute.
  std::set<std::tuple<uint16_t, uint32_t, uint8_t>> affected;
  std::vector<std::pair<const v1::Interface*, uint16_t>> removed_contributions, added_contributions;
  std::vector<FibOp> ops;        // route changes, applied to the standby FIB copies
  std::set<uint16_t> switched;   // tenants whose FIB copies swap roles
  std::vector<int32_t> release;  // neighbour entries freed after the grace period
  std::vector<uint16_t> dead_sas;
  std::vector<int32_t> sa_release;
  std::vector<std::pair<SaKey, uint16_t>> new_sas;

  // What a feature's free steps keep between transactions, held by the committer.
  l2::Kept& l2_kept() { return *c.l2_; }
  ip::Kept& ip_kept() { return *c.ip_; }
  nat::Kept& nat_kept() { return *c.nat_; }
  ipsec::Kept& ipsec_kept() { return *c.ipsec_; }
  NeighbourTable& neighbours() { return c.neighbours_; }  // shared by every generation
  // Name -> slot of the interfaces and tunnels before this transaction (they share slots and
  // names; the interfaces' reclaim step updates it).
  std::map<std::string, uint16_t>& interface_slots() { return c.interface_slot_; }
  std::vector<uint16_t>& free_interfaces() { return c.free_interfaces_; }

  // Undoes what earlier steps did; the error to return.
  Error fail(Code code, std::string message, int kind, std::string about) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
    return Error{code, std::move(message), kind, std::move(about)};
  }
  // A tenant's slot by name as this transaction leaves it (ip/commit.cpp).
  uint16_t tenant_of(const std::string& name) const;
  // The uid of a new tenant, interface or tunnel.
  uint32_t new_uid() { return uint32_t(c.next_uid_++); }
  uint16_t interface_slot_of(const std::string& name) const {
    auto it = interface_of.find(name);
    return it != interface_of.end() ? it->second : c.interface_slot_.at(name);
  }
  // A slot for a new interface or tunnel (they share slots and names), given back on failure.
  std::optional<uint16_t> new_interface_slot() {
    auto s = take(c.free_interfaces_, next->interfaces, max_interfaces);
    if (!s) return std::nullopt;
    if (next->interfaces.size() <= *s) next->interfaces.resize(*s + 1);
    undo.push_back([&c = c, slot = *s] { c.free_interfaces_.push_back(slot); });
    new_interface_slots.push_back(*s);
    need_totals = true;
    return s;
  }
  // The entry of an interface or tunnel this transaction creates or changes (they share slots
  // and names): its own slot when it existed, a new one otherwise (nullptr: none free). The
  // entry is reset to its name; one that existed keeps its uid.
  InterfaceEntry* claim_interface(const std::string& name, bool existed) {
    uint16_t slot;
    if (existed)
      slot = c.interface_slot_.at(name);
    else if (auto s = new_interface_slot())
      slot = *s;
    else
      return nullptr;
    interface_of[name] = slot;
    InterfaceEntry& e = next->interfaces[slot];
    uint32_t uid = existed ? e.uid : new_uid();
    e = InterfaceEntry{};
    e.uid = uid;
    e.name = name;
    return &e;
  }
  // A free slot, or a new one below the limit.
  template <typename Slots>
  static std::optional<uint16_t> take(std::vector<uint16_t>& free_list, Slots& slots, size_t limit) {
    if (!free_list.empty()) {
      uint16_t s = free_list.back();
      free_list.pop_back();
      return s;
    }
    if (slots.size() >= limit) return std::nullopt;
    slots.emplace_back();
    return uint16_t(slots.size() - 1);
  }
  // Undoes the route changes of `ops` (ip/commit.cpp): the standby FIB copies of the first
  // `applied` back as they were, the next hops they took released.
  void revert_routes(size_t applied);
  // Adds or removes the routes an interface's addresses make (ip/commit.cpp).
  void contribute(const v1::Interface& f, uint16_t slot, bool add);
  // Adds or removes a local /32 that no interface owns: a VRRP virtual address (vrrp/commit.cpp).
  void contribute_local(uint16_t tenant, uint32_t address, bool add);
};

inline rte_ether_addr mac_from(uint64_t mac) {
  rte_ether_addr out;
  for (unsigned i = 0; i < RTE_ETHER_ADDR_LEN; i++) out.addr_bytes[i] = uint8_t(mac >> (8 * (5 - i)));
  return out;
}

}  // namespace medix::dp
