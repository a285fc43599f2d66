#include <rte_errno.h>

#include "control/build.h"
#include "ip/kinds.h"

namespace medix::dp {

// Tenants: a slot and two FIB copies for each new one.
std::optional<Error> Committer::build_tenants(Build& b) {
  for (const auto& [key, change] : b.diff.of(v1::Object::kTenant)) {
    const std::string& name = key.name;
    if (!change.after) {
      uint16_t slot = tenant_slot_.at(name);
      b.next->tenants[slot] = TenantEntry{};
      b.dead_tenants.push_back(slot);
      continue;
    }
    if (change.before) continue;  // only the description changed
    auto slot = Build::take(free_tenants_, tenants_, max_tenants);
    if (!slot)
      return b.fail(Code::resource_exhausted, "tenant " + name + ": no free tenant slot", v1::Object::KindCase::kTenant,
                    name);
    uint32_t max_routes = max_routes_of(change.after->tenant());
    rte_fib_conf conf = tenant_fib_conf(max_routes);
    TenantSlot& t = tenants_[*slot];
    t = TenantSlot{};
    t.name = name;
    for (int i = 0; i < 2; i++) {
      std::string fib_name = "fib" + std::to_string(fib_serial_++);
      t.fib[i] = rte_fib_create(fib_name.c_str(), int(params_.socket), &conf);
    }
    if (!t.fib[0] || !t.fib[1]) {
      free_tenant(t);
      free_tenants_.push_back(*slot);
      return b.fail(Code::resource_exhausted,
                    "tenant \"" + name + "\": cannot allocate its FIB for " + std::to_string(max_routes) +
                        " routes: " + rte_strerror(rte_errno) + ": " + more_memory,
                    v1::Object::KindCase::kTenant, name);
    }
    b.undo.push_back([this, slot = *slot] {
      free_tenant(tenants_[slot]);
      free_tenants_.push_back(slot);
    });
    if (b.next->tenants.size() <= *slot) b.next->tenants.resize(*slot + 1);
    b.next->tenants[*slot].name = name;
    b.new_tenant_slots.push_back(*slot);
    b.need_totals = true;
  }
  return std::nullopt;
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
  // The standby copies first; nobody reads them.
  for (size_t i = 0; i < b.ops.size(); i++) {
    TenantSlot& t = tenants_[b.ops[i].tenant];
    if (!apply_fib(t.fib[1 - t.active], b.ops[i], true)) {
      for (size_t j = i; j-- > 0;)
        apply_fib(tenants_[b.ops[j].tenant].fib[1 - tenants_[b.ops[j].tenant].active], b.ops[j], false);
      for (const auto& op : b.ops) unref(op.after);
      return b.fail(Code::resource_exhausted, "tenant \"" + t.name + "\": its FIB is full (tbl8 groups or max_routes)",
                    v1::Object::KindCase::kRoute, t.name);
    }
  }
  for (const auto& op : b.ops) b.switched.insert(op.tenant);
  for (uint16_t t : b.new_tenant_slots) b.switched.insert(t);
  for (uint16_t t : b.dead_tenants) b.switched.erase(t);
  for (uint16_t t : b.switched) b.next->tenants[t].fib = tenants_[t].fib[1 - tenants_[t].active];
  return std::nullopt;
}

void Committer::reclaim_routes(Build& b) {
  // The copy nobody reads any more gets the same changes.
  for (const auto& op : b.ops) {
    TenantSlot& t = tenants_[op.tenant];
    apply_fib(t.fib[t.active], op, true);  // the copy nobody reads any more
    if (op.after)
      t.effective[{op.address, op.length}] = op.after;
    else
      t.effective.erase({op.address, op.length});
    unref(op.before);
  }
  for (uint16_t t : b.switched) tenants_[t].active = 1 - tenants_[t].active;
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
