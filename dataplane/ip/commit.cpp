#include <rte_errno.h>

#include "control/build.h"
#include "ip/kinds.h"

namespace medix::dp {

// Tenants: a slot and an empty FIB for each new one: a root ply in the compact pool, or two
// DIR24_8 copies.
std::optional<Error> Committer::build_tenants(Build& b) {
  b.undo.push_back([this] { lpm_.abort(); });  // last: every compact FIB as it was
  for (const auto& [key, change] : b.diff.of(v1::Object::kTenant)) {
    const std::string& name = key.name;
    if (!change.after) {
      uint16_t slot = tenant_slot_.at(name);
      b.next->tenants[slot] = TenantEntry{};
      b.next->fib_roots[slot] = 0;
      b.dead_tenants.push_back(slot);
      continue;
    }
    if (change.before) continue;  // only the description changed
    auto slot = Build::take(free_tenants_, tenants_, max_tenants);
    if (!slot)
      return b.fail(Code::resource_exhausted, "tenant " + name + ": no free tenant slot", v1::Object::KindCase::kTenant,
                    name);
    const v1::Tenant& tenant = change.after->tenant();
    uint32_t max_routes = max_routes_of(tenant);
    TenantSlot& t = tenants_[*slot];
    t = TenantSlot{};
    t.name = name;
    t.dir24_8 = uses_dir24_8(tenant);
    if (t.dir24_8) {
      rte_fib_conf conf = tenant_fib_conf(max_routes);
      for (int i = 0; i < 2; i++) {
        std::string fib_name = "fib" + std::to_string(fib_serial_++);
        t.fib[i] = rte_fib_create(fib_name.c_str(), int(params_.socket), &conf);
      }
      t.dir24_8_bytes = 2 * ((uint64_t(1) << 24) + uint64_t(conf.dir24_8.num_tbl8) * 256) * sizeof(uint16_t);
    }
    if (t.dir24_8 ? !t.fib[0] || !t.fib[1] : !lpm_.create(*slot)) {
      std::string why = t.dir24_8 ? "cannot allocate its DIR24_8 FIB for " + std::to_string(max_routes) +
                                        " routes: " + rte_strerror(rte_errno) + ": " + more_memory
                                  : fibs_full();
      free_tenant(t);
      free_tenants_.push_back(*slot);
      return b.fail(Code::resource_exhausted, "tenant \"" + name + "\": " + why, v1::Object::KindCase::kTenant, name);
    }
    b.undo.push_back([this, slot = *slot] {
      free_tenant(tenants_[slot]);
      free_tenants_.push_back(slot);
    });
    if (b.next->tenants.size() <= *slot) {
      b.next->tenants.resize(*slot + 1);
      b.next->fib_roots.resize(*slot + 1);
    }
    b.next->tenants[*slot].name = name;
    b.next->tenants[*slot].live = true;
    b.next->tenants[*slot].uid = uint32_t(next_uid_++);
    b.new_tenant_slots.push_back(*slot);
    b.need_totals = true;
  }
  return std::nullopt;
}

std::optional<std::pair<uint16_t, bool>> Committer::address_route(uint16_t tenant, uint32_t address,
                                                                  uint8_t length) const {
  const auto& automatic = tenants_[tenant].automatic;
  auto a = automatic.find({address, length});
  if (a == automatic.end() || a->second.empty()) return std::nullopt;
  auto [priority, iface] = a->second.front();
  return std::pair{iface, priority == 0};
}

uint16_t Committer::fib_lookup(uint16_t tenant, uint32_t address) const {
  const Tables& t = *current();
  if (tenant < t.fib_roots.size() && t.fib_roots[tenant])
    return uint16_t(Lpm::lookup(t.plies, t.fib_roots[tenant], address));
  if (tenant >= t.tenants.size() || !t.tenants[tenant].fib) return 0;
  uint64_t nh = 0;
  rte_fib_lookup_bulk(t.tenants[tenant].fib, &address, &nh, 1);
  return uint16_t(nh);
}

Committer::FibCost Committer::fib_cost(std::optional<uint16_t> tenant) const {
  // The writer keeps each compact FIB's routes in a hash map: ~40 bytes a route.
  constexpr uint64_t rib_bytes_per_route = 40;
  FibCost cost;
  for (uint16_t s = 0; s < tenants_.size(); s++) {
    const TenantSlot& t = tenants_[s];
    if (t.name.empty() || (tenant && *tenant != s)) continue;
    cost.entries += t.effective.size();
    if (t.dir24_8) {
      cost.dir24_8_bytes += t.dir24_8_bytes;
    } else {
      if (tenant) cost.compact_plies += lpm_.plies_of(s);
      cost.compact_bytes += lpm_.routes(s) * rib_bytes_per_route;
    }
  }
  if (!tenant) cost.compact_plies = lpm_.plies_in_use();
  cost.compact_bytes += cost.compact_plies * Lpm::ply_bytes;
  return cost;
}

std::string Committer::fibs_full() const {
  return "the compact FIBs are full (" + std::to_string(lpm_.max_plies()) + " plies of 1 KiB, every tenant's)";
}

// Routes: what each affected prefix resolves to now.
std::optional<Error> Committer::build_routes(Build& b) {
  // Interface addresses add and remove routes.
  for (auto [f, slot] : b.removed_contributions) b.contribute(*f, slot, false);
  for (auto [f, slot] : b.added_contributions) b.contribute(*f, slot, true);
  b.undo.push_back([&b] {
    for (auto [f, slot] : b.added_contributions) b.contribute(*f, slot, false);
    for (auto [f, slot] : b.removed_contributions) b.contribute(*f, slot, true);
  });
  for (const auto& key : b.diff.routes) b.affected.insert({b.tenant_of(key.tenant), key.address, key.length});
  for (auto [t, address, length] : b.affected) {
    TenantSlot& slot = tenants_[t];
    Nexthop nh;
    bool has = false;
    auto explicit_route = b.intent.routes.find(RouteKey{slot.name, address, length});
    if (explicit_route != b.intent.routes.end()) {
      const v1::Route& r = explicit_route->second;
      has = true;
      switch (r.target_case()) {
        case v1::Route::kVia:
          nh = {NexthopKind::via, b.interface_slot_of(r.via().interface()), 0,
                r.via().address().empty() ? 0 : *parse_ipv4(r.via().address())};
          break;
        case v1::Route::kNextTenant: nh = {NexthopKind::leak, 0, b.tenant_of(r.next_tenant()), 0}; break;
        case v1::Route::kLocal: nh = {NexthopKind::local, 0, 0, 0}; break;
        default: nh = {r.blackhole().unreachable() ? NexthopKind::unreachable : NexthopKind::blackhole, 0, 0, 0};
      }
    } else if (auto a = slot.automatic.find({address, length}); a != slot.automatic.end() && !a->second.empty()) {
      has = true;
      auto [priority, iface] = a->second.front();
      nh = priority == 0 ? Nexthop{NexthopKind::local, 0, 0, 0} : Nexthop{NexthopKind::via, iface, 0, 0};
    }
    uint16_t after = 0;
    if (has) {
      after = intern(nh);
      if (!after) {
        for (const auto& op : b.ops) unref(op.after);
        return b.fail(Code::resource_exhausted, "more than " + std::to_string(max_nexthops) + " distinct b.next hops",
                      v1::Object::KindCase::kRoute, slot.name);
      }
    }
    auto e = slot.effective.find({address, length});
    uint16_t before = e == slot.effective.end() ? 0 : e->second;
    if (before == after) {
      unref(after);
      continue;
    }
    b.ops.push_back({t, address, length, before, after});
  }
  // Compact FIBs: copies of the plies each change touches, reached only from new roots.
  // DIR24_8: the standby copies first; nobody reads them.
  for (size_t i = 0; i < b.ops.size(); i++) {
    TenantSlot& t = tenants_[b.ops[i].tenant];
    const FibOp& op = b.ops[i];
    if (t.dir24_8 ? !apply_fib(t.fib[1 - t.active], op, true) : !lpm_.set(op.tenant, op.address, op.length, op.after)) {
      for (size_t j = i; j-- > 0;)
        apply_fib(tenants_[b.ops[j].tenant].fib[1 - tenants_[b.ops[j].tenant].active], b.ops[j], false);
      for (const auto& o : b.ops) unref(o.after);
      return b.fail(
          Code::resource_exhausted,
          "tenant \"" + t.name + "\": " + (t.dir24_8 ? "its FIB is full (tbl8 groups or max_routes)" : fibs_full()),
          v1::Object::KindCase::kRoute, t.name);
    }
  }
  for (const auto& op : b.ops) b.switched.insert(op.tenant);
  for (uint16_t t : b.new_tenant_slots) b.switched.insert(t);
  for (uint16_t t : b.dead_tenants) b.switched.erase(t);
  for (uint16_t t : b.switched) {
    if (tenants_[t].dir24_8)
      b.next->tenants[t].fib = tenants_[t].fib[1 - tenants_[t].active];
    else
      b.next->fib_roots[t] = lpm_.root(t);
  }
  return std::nullopt;
}

void Committer::reclaim_routes(Build& b) {
  lpm_.commit();  // the plies only the old roots reached
  // DIR24_8: the copy nobody reads any more gets the same changes.
  for (const auto& op : b.ops) {
    TenantSlot& t = tenants_[op.tenant];
    apply_fib(t.fib[t.active], op, true);  // the copy nobody reads any more
    if (op.after)
      t.effective[{op.address, op.length}] = op.after;
    else
      t.effective.erase({op.address, op.length});
    unref(op.before);
  }
  for (uint16_t t : b.switched)
    if (tenants_[t].dir24_8) tenants_[t].active = 1 - tenants_[t].active;
}

void Committer::reclaim_tenants(Build& b) {
  for (uint16_t s : b.dead_tenants) {
    tenant_slot_.erase(tenants_[s].name);
    free_tenant(tenants_[s]);
    free_tenants_.push_back(s);
  }
  for (uint16_t s : b.new_tenant_slots) tenant_slot_[tenants_[s].name] = s;
}

}  // namespace medix::dp
