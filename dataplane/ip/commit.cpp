#include "ip/commit.h"

#include <rte_errno.h>

#include <algorithm>
#include <chrono>

#include "control/build.h"
#include "ip/kinds.h"

namespace medix::dp::ip {
namespace {

uint16_t intern(Kept& kept, const Nexthop& nh) {
  auto key = std::make_tuple(int(nh.kind), nh.interface, nh.tenant, nh.gateway);
  auto it = kept.nexthop_ids.find(key);
  uint16_t id;
  if (it != kept.nexthop_ids.end()) {
    id = it->second;
  } else {
    if (kept.free_nexthops.empty()) return 0;
    id = kept.free_nexthops.back();
    kept.free_nexthops.pop_back();
    kept.nexthops[id] = nh;  // no FIB copy points at a free id: safe to write under readers
    kept.nexthop_ids[key] = id;
  }
  kept.nexthop_refs[id]++;
  return id;
}

void unref(Kept& kept, uint16_t id) {
  if (id == 0 || --kept.nexthop_refs[id] > 0) return;
  const Nexthop& nh = kept.nexthops[id];
  kept.nexthop_ids.erase(std::make_tuple(int(nh.kind), nh.interface, nh.tenant, nh.gateway));
  kept.free_nexthops.push_back(id);
}

// A change to one copy of a DIR24_8 FIB; nothing for a compact tenant (fib nullptr: its
// changes are undone by Lpm::abort).
bool apply_fib(rte_fib* fib, const Committer::FibOp& op, bool forward) {
  if (!fib) return true;
  uint16_t nh = forward ? op.after : op.before;
  int rc = nh ? rte_fib_add(fib, op.address, op.length, nh) : rte_fib_delete(fib, op.address, op.length);
  return rc == 0 || (!nh && rc == -ENOENT);
}

// Why a compact FIB could not grow.
std::string fibs_full(const Kept& kept) {
  return "the compact FIBs are full (" + std::to_string(kept.lpm.max_plies()) + " plies of 1 KiB, every tenant's)";
}

}  // namespace

void free_tenant(Kept& kept, TenantSlot& t) {
  rte_fib_free(t.fib[0]);
  rte_fib_free(t.fib[1]);
  if (!t.name.empty() && !t.dir24_8) kept.lpm.destroy(uint32_t(&t - kept.tenants.data()));
  t = TenantSlot{};
}

}  // namespace medix::dp::ip

namespace medix::dp {

// Name -> slot as this transaction leaves it (new names are not in Kept::tenant_slot yet).
uint16_t Committer::Build::tenant_of(const std::string& name) const {
  for (uint16_t s : new_tenant_slots)
    if (c.ip_->tenants[s].name == name) return s;
  return c.ip_->tenant_slot.at(name);
}

// The routes an interface's addresses make (its subnets, its own addresses), added or
// removed; the prefixes are recomputed by build_routes.
void Committer::Build::contribute(const v1::Interface& f, uint16_t slot, bool add) {
  uint16_t t = tenant_of(f.tenant());
  for (const auto& a : f.addresses()) {
    auto p = *parse_prefix(a);
    uint32_t mask = ~uint32_t(0) << (32 - p.length);
    std::pair<uint32_t, uint8_t> subnet{p.address & mask, p.length}, host{p.address, 32};
    std::pair<int, uint16_t> connected{1, slot}, local{0, uint16_t(UINT16_MAX)};
    for (auto [prefix, entry] : {std::pair{subnet, connected}, std::pair{host, local}}) {
      auto& list = c.ip_->tenants[t].automatic[prefix];
      if (add) {
        list.push_back(entry);
        std::stable_sort(list.begin(), list.end(), [](auto& x, auto& y) { return x.first < y.first; });
      } else {
        auto it = std::find(list.begin(), list.end(), entry);
        if (it != list.end()) list.erase(it);
        if (list.empty()) c.ip_->tenants[t].automatic.erase(prefix);
      }
      affected.insert({t, prefix.first, prefix.second});
    }
  }
}

void Committer::Build::revert_routes(size_t applied) {
  for (size_t j = applied; j-- > 0;)
    ip::apply_fib(c.ip_->tenants[ops[j].tenant].fib[1 - c.ip_->tenants[ops[j].tenant].active], ops[j], false);
  for (const auto& op : ops) ip::unref(*c.ip_, op.after);
}

std::optional<uint16_t> Committer::tenant_slot(const std::string& name) const {
  auto it = ip_->tenant_slot.find(name);
  return it == ip_->tenant_slot.end() ? std::nullopt : std::optional<uint16_t>(it->second);
}

bool Committer::dir24_8(uint16_t tenant) const { return ip_->tenants[tenant].dir24_8; }

const std::map<std::pair<uint32_t, uint8_t>, uint16_t>& Committer::fib_entries(uint16_t tenant) const {
  return ip_->tenants[tenant].effective;
}

std::optional<std::pair<uint16_t, bool>> Committer::address_route(uint16_t tenant, uint32_t address,
                                                                  uint8_t length) const {
  const auto& automatic = ip_->tenants[tenant].automatic;
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
  for (uint16_t s = 0; s < ip_->tenants.size(); s++) {
    const ip::TenantSlot& t = ip_->tenants[s];
    if (t.name.empty() || (tenant && *tenant != s)) continue;
    cost.entries += t.effective.size();
    if (t.dir24_8) {
      cost.dir24_8_bytes += t.dir24_8_bytes;
    } else {
      if (tenant) cost.compact_plies += ip_->lpm.plies_of(s);
      cost.compact_bytes += ip_->lpm.routes(s) * rib_bytes_per_route;
    }
  }
  if (!tenant) cost.compact_plies = ip_->lpm.plies_in_use();
  cost.compact_bytes += cost.compact_plies * Lpm::ply_bytes;
  return cost;
}

const Nexthop& Committer::nexthop(uint16_t id) const { return ip_->nexthops[id]; }

uint32_t Committer::fib_plies_limit() const { return ip_->lpm.max_plies(); }

}  // namespace medix::dp

namespace medix::dp::ip {

// Tenants: a slot and an empty FIB for each new one: a root ply in the compact pool, or two
// DIR24_8 copies.
std::optional<Error> build_tenants(Committer::Build& b) {
  Kept& kept = b.ip_kept();
  b.undo.push_back([&kept] { kept.lpm.abort(); });  // last: every compact FIB as it was
  for (const auto& [key, change] : b.diff.of(v1::Object::kTenant)) {
    const std::string& name = key.name;
    if (!change.after) {
      uint16_t slot = kept.tenant_slot.at(name);
      b.next->tenants[slot] = TenantEntry{};
      b.next->fib_roots[slot] = 0;
      b.dead_tenants.push_back(slot);
      continue;
    }
    if (change.before) continue;  // only the description changed
    auto slot = Committer::Build::take(kept.free_tenants, kept.tenants, max_tenants);
    if (!slot)
      return b.fail(Code::resource_exhausted, "tenant " + name + ": no free tenant slot", v1::Object::KindCase::kTenant,
                    name);
    const v1::Tenant& tenant = change.after->tenant();
    uint32_t max_routes = max_routes_of(tenant);
    TenantSlot& t = kept.tenants[*slot];
    t = TenantSlot{};
    t.name = name;
    t.dir24_8 = uses_dir24_8(tenant);
    if (t.dir24_8) {
      rte_fib_conf conf = tenant_fib_conf(max_routes);
      for (int i = 0; i < 2; i++) {
        std::string fib_name = "fib" + std::to_string(kept.fib_serial++);
        t.fib[i] = rte_fib_create(fib_name.c_str(), int(b.c.params().socket), &conf);
      }
      t.dir24_8_bytes = 2 * ((uint64_t(1) << 24) + uint64_t(conf.dir24_8.num_tbl8) * 256) * sizeof(uint16_t);
    }
    if (t.dir24_8 ? !t.fib[0] || !t.fib[1] : !kept.lpm.create(*slot)) {
      std::string why = t.dir24_8 ? "cannot allocate its DIR24_8 FIB for " + std::to_string(max_routes) +
                                        " routes: " + rte_strerror(rte_errno) + ": " + more_memory
                                  : fibs_full(kept);
      free_tenant(kept, t);
      kept.free_tenants.push_back(*slot);
      return b.fail(Code::resource_exhausted, "tenant \"" + name + "\": " + why, v1::Object::KindCase::kTenant, name);
    }
    b.undo.push_back([&kept, slot = *slot] {
      free_tenant(kept, kept.tenants[slot]);
      kept.free_tenants.push_back(slot);
    });
    if (b.next->tenants.size() <= *slot) {
      b.next->tenants.resize(*slot + 1);
      b.next->fib_roots.resize(*slot + 1);
    }
    b.next->tenants[*slot].name = name;
    b.next->tenants[*slot].live = true;
    b.next->tenants[*slot].uid = b.new_uid();
    b.new_tenant_slots.push_back(*slot);
    b.need_totals = true;
  }
  if (!b.dead_tenants.empty() || !b.new_tenant_slots.empty()) {
    // The first from the clock: a restarted node's tables are unlikely to reuse the epochs its
    // peer still holds of the node before (ha/tenants.h).
    uint16_t& epoch = b.next->tenant_epoch;
    epoch = epoch ? uint16_t(epoch + 1) : uint16_t(std::chrono::steady_clock::now().time_since_epoch().count());
    if (!epoch) epoch = 1;
  }
  return std::nullopt;
}

// Routes: what each affected prefix resolves to now.
std::optional<Error> build_routes(Committer::Build& b) {
  Kept& kept = b.ip_kept();
  // Interface addresses add and remove routes.
  for (auto [f, slot] : b.removed_contributions) b.contribute(*f, slot, false);
  for (auto [f, slot] : b.added_contributions) b.contribute(*f, slot, true);
  b.undo.push_back([&b] {
    for (auto [f, slot] : b.added_contributions) b.contribute(*f, slot, false);
    for (auto [f, slot] : b.removed_contributions) b.contribute(*f, slot, true);
  });
  for (const auto& key : b.diff.routes) b.affected.insert({b.tenant_of(key.tenant), key.address, key.length});
  for (auto [t, address, length] : b.affected) {
    TenantSlot& slot = kept.tenants[t];
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
      after = intern(kept, nh);
      if (!after) {
        b.revert_routes(0);
        return b.fail(Code::resource_exhausted, "more than " + std::to_string(max_nexthops) + " distinct next hops",
                      v1::Object::KindCase::kRoute, slot.name);
      }
    }
    auto e = slot.effective.find({address, length});
    uint16_t before = e == slot.effective.end() ? 0 : e->second;
    if (before == after) {
      unref(kept, after);
      continue;
    }
    b.ops.push_back({t, address, length, before, after});
  }
  // Compact FIBs: copies of the plies each change touches, reached only from new roots.
  // DIR24_8: the standby copies first; nobody reads them.
  for (size_t i = 0; i < b.ops.size(); i++) {
    TenantSlot& t = kept.tenants[b.ops[i].tenant];
    const Committer::FibOp& op = b.ops[i];
    if (t.dir24_8 ? !apply_fib(t.fib[1 - t.active], op, true)
                  : !kept.lpm.set(op.tenant, op.address, op.length, op.after)) {
      b.revert_routes(i);
      return b.fail(
          Code::resource_exhausted,
          "tenant \"" + t.name + "\": " + (t.dir24_8 ? "its FIB is full (tbl8 groups or max_routes)" : fibs_full(kept)),
          v1::Object::KindCase::kRoute, t.name);
    }
  }
  for (const auto& op : b.ops) b.switched.insert(op.tenant);
  for (uint16_t t : b.new_tenant_slots) b.switched.insert(t);
  for (uint16_t t : b.dead_tenants) b.switched.erase(t);
  for (uint16_t t : b.switched) {
    if (kept.tenants[t].dir24_8)
      b.next->tenants[t].fib = kept.tenants[t].fib[1 - kept.tenants[t].active];
    else
      b.next->fib_roots[t] = kept.lpm.root(t);
  }
  return std::nullopt;
}

void reclaim_routes(Committer::Build& b) {
  Kept& kept = b.ip_kept();
  kept.lpm.commit();  // the plies only the old roots reached
  // DIR24_8: the copy nobody reads any more gets the same changes.
  for (const auto& op : b.ops) {
    TenantSlot& t = kept.tenants[op.tenant];
    apply_fib(t.fib[t.active], op, true);  // the copy nobody reads any more
    if (op.after)
      t.effective[{op.address, op.length}] = op.after;
    else
      t.effective.erase({op.address, op.length});
    unref(kept, op.before);
  }
  for (uint16_t t : b.switched)
    if (kept.tenants[t].dir24_8) kept.tenants[t].active = 1 - kept.tenants[t].active;
}

void reclaim_tenants(Committer::Build& b) {
  Kept& kept = b.ip_kept();
  for (uint16_t s : b.dead_tenants) {
    kept.tenant_slot.erase(kept.tenants[s].name);
    free_tenant(kept, kept.tenants[s]);
    kept.free_tenants.push_back(s);
  }
  for (uint16_t s : b.new_tenant_slots) kept.tenant_slot[kept.tenants[s].name] = s;
}

}  // namespace medix::dp::ip
