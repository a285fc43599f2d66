#include "ip/show.h"

#include "common/address.h"

namespace medix::dp {
namespace {

uint32_t mask_of(unsigned length) { return length == 0 ? 0 : ~uint32_t(0) << (32 - length); }
std::string prefix_text(uint32_t address, uint8_t length) {
  return format_ipv4(address) + "/" + std::to_string(length);
}

// One prefix of tenant `tenant`'s FIB as the API shows it.
void fill_entry(const Intent& in, const Committer& c, const Tables& t, uint16_t tenant, uint32_t address,
                uint8_t length, uint16_t nexthop, v1::FibEntry& e) {
  e.set_prefix(prefix_text(address, length));
  if (in.routes.count(RouteKey{t.tenants[tenant].name, address, length})) {
    e.set_source(v1::FIB_SOURCE_CONFIGURED);
    e.set_origin("route " + e.prefix());
  } else if (auto a = c.address_route(tenant, address, length)) {
    e.set_source(a->second ? v1::FIB_SOURCE_LOCAL : v1::FIB_SOURCE_CONNECTED);
    if (a->first < t.interfaces.size()) e.set_origin(t.interfaces[a->first].name);
    for (size_t i = 0; a->second && i < t.interfaces.size() && e.origin().empty(); i++)
      if (t.interfaces[i].uid && t.interfaces[i].tenant == tenant && t.interfaces[i].owns(address))
        e.set_origin(t.interfaces[i].name);  // a local route: the (first) interface with the address
  }
  const Nexthop& nh = c.nexthop(nexthop);
  switch (nh.kind) {
    case NexthopKind::via:
      if (nh.interface < t.interfaces.size()) {
        e.set_interface(t.interfaces[nh.interface].name);
        e.set_tunnel(t.interfaces[nh.interface].tunnel);
      }
      if (nh.gateway) e.set_gateway(format_ipv4(nh.gateway));
      break;
    case NexthopKind::leak:
      if (nh.tenant < t.tenants.size()) e.set_next_tenant(t.tenants[nh.tenant].name);
      break;
    case NexthopKind::local: e.set_local(true); break;
    case NexthopKind::unreachable: e.set_unreachable(true); [[fallthrough]];
    case NexthopKind::blackhole: e.set_blackhole(true); break;
    case NexthopKind::no_route: break;
  }
}

void fill_memory(const Committer& c, std::optional<uint16_t> tenant, v1::FibMemory& m) {
  Committer::FibCost cost = c.fib_cost(tenant);
  m.set_entries(cost.entries);
  m.set_compact_plies(cost.compact_plies);
  m.set_compact_bytes(cost.compact_bytes);
  m.set_dir24_8_bytes(cost.dir24_8_bytes);
  m.set_limit_plies(c.fib_plies_limit());
}

// The destination of a packet crossing the core into `exit`, as the exit's translation makes
// it (nat/: a static mapping, else a NAPT pool address whose session decides, else none).
enum class Crossing { same, mapped, napt, no_mapping };
Crossing translate_in(const Tables& t, uint16_t exit, uint32_t& address, std::string& how) {
  if (exit == t.core || exit >= t.tenants.size()) return Crossing::same;
  const Translation& x = t.tenants[exit].nat;
  if (!x.any()) return Crossing::same;
  for (const auto& m : x.maps)
    if ((address & m.mask) == m.core) {
      uint8_t length = uint8_t(__builtin_popcount(m.mask));
      how = "static mapping " + prefix_text(m.core, length) + " -> " + prefix_text(m.inside, length) + " of tenant " +
            t.tenants[exit].name;
      address = m.inside | (address & ~m.mask);
      return Crossing::mapped;
    }
  return x.in_pool(address) ? Crossing::napt : Crossing::no_mapping;
}

}  // namespace

std::optional<Error> get_fib(const Intent& in, const Committer& c, const v1::GetFibRequest& request, uint32_t page,
                             v1::GetFibResponse& out) {
  const Tables& t = *c.current();
  out.set_version(t.version);
  if (request.tenant().empty()) {
    fill_memory(c, std::nullopt, *out.mutable_memory());
    for (const auto& e : t.tenants) {
      if (!e.live) continue;
      out.mutable_memory()->set_tenants(out.memory().tenants() + 1);
      if (e.fib)
        out.mutable_memory()->set_dir24_8_tenants(out.memory().dir24_8_tenants() + 1);
      else
        out.mutable_memory()->set_compact_tenants(out.memory().compact_tenants() + 1);
    }
    return std::nullopt;
  }
  auto slot = c.tenant_slot(request.tenant());
  if (!slot) return Error{Code::not_found, "tenant: no tenant named \"" + request.tenant() + "\""};
  out.set_tenant(request.tenant());
  out.set_fib(c.dir24_8(*slot) ? v1::FIB_DIR24_8 : v1::FIB_COMPACT);
  fill_memory(c, *slot, *out.mutable_memory());
  out.mutable_memory()->set_tenants(1);
  out.mutable_memory()->set_compact_tenants(c.dir24_8(*slot) ? 0 : 1);
  out.mutable_memory()->set_dir24_8_tenants(c.dir24_8(*slot) ? 1 : 0);
  const auto& entries = c.fib_entries(*slot);
  auto it = entries.begin();
  if (!request.page_token().empty()) {
    // token: "address/length" of the last entry sent.
    auto slash = request.page_token().find('/');
    auto address = parse_ipv4(request.page_token().substr(0, slash));
    if (slash == std::string::npos || !address) return Error{Code::invalid_argument, "page_token: not one of ours"};
    it = entries.upper_bound({*address, uint8_t(std::atoi(request.page_token().c_str() + slash + 1))});
  }
  for (; it != entries.end() && uint32_t(out.entries_size()) < page; ++it)
    fill_entry(in, c, t, *slot, it->first.first, it->first.second, it->second, *out.add_entries());
  if (it != entries.end() && out.entries_size()) out.set_next_page_token(out.entries(out.entries_size() - 1).prefix());
  return std::nullopt;
}

std::optional<Error> lookup(const Intent& in, const Committer& c, const v1::LookupRequest& request,
                            v1::LookupResponse& out) {
  const Tables& t = *c.current();
  out.set_version(t.version);
  auto slot = c.tenant_slot(request.tenant());
  if (!slot) return Error{Code::not_found, "tenant: no tenant named \"" + request.tenant() + "\""};
  auto parsed = parse_ipv4(request.address());
  if (!parsed) return Error{Code::invalid_argument, "address: \"" + request.address() + "\" is not an IPv4 address"};
  uint32_t address = *parsed;
  uint16_t tenant = *slot;
  uint16_t origin = tenant;  // the tenant the packet enters the core from
  std::string translated;
  // As the workers do (ip_lookup): a lookup per tenant, at most max_leak_hops leaks.
  for (unsigned round = 0; round <= max_leak_hops; round++) {
    auto* step = out.add_steps();
    step->set_tenant(t.tenants[tenant].name);
    step->set_address(format_ipv4(address));
    step->set_translated(translated);
    out.set_tenant(t.tenants[tenant].name);
    uint16_t id = c.fib_lookup(tenant, address);
    if (!id) {
      out.set_result(v1::LOOKUP_NO_ROUTE);
      return std::nullopt;
    }
    // The route that matched: the longest prefix of this FIB holding the address.
    const auto& entries = c.fib_entries(tenant);
    for (int length = 32; length >= 0; length--) {
      auto e = entries.find({address & mask_of(unsigned(length)), uint8_t(length)});
      if (e == entries.end()) continue;
      fill_entry(in, c, t, tenant, e->first.first, e->first.second, e->second, *step->mutable_route());
      break;
    }
    const Nexthop& nh = c.nexthop(id);
    bool in_core = tenant == t.core;
    switch (nh.kind) {
      case NexthopKind::no_route: out.set_result(v1::LOOKUP_NO_ROUTE); return std::nullopt;
      case NexthopKind::blackhole:
      case NexthopKind::unreachable: out.set_result(v1::LOOKUP_BLACKHOLE); return std::nullopt;
      case NexthopKind::local:
        if (in_core && origin != t.core) out.set_crosses_core(true);
        out.set_result(v1::LOOKUP_LOCAL);
        return std::nullopt;
      case NexthopKind::via:
        if (in_core && origin != t.core) out.set_crosses_core(true);
        out.set_result(v1::LOOKUP_FORWARD);
        if (nh.interface < t.interfaces.size()) out.set_interface(t.interfaces[nh.interface].name);
        out.set_next_hop(format_ipv4(nh.gateway ? nh.gateway : address));
        return std::nullopt;
      case NexthopKind::leak: break;
    }
    translated.clear();
    if (in_core) {  // leaving the core into nh.tenant: it crosses, its destination translated
      out.set_crosses_core(true);
      switch (translate_in(t, nh.tenant, address, translated)) {
        case Crossing::same:
        case Crossing::mapped: break;
        case Crossing::napt:
          out.set_tenant(t.tenants[nh.tenant].name);
          out.set_result(v1::LOOKUP_NAPT);
          return std::nullopt;
        case Crossing::no_mapping:
          out.set_tenant(t.tenants[nh.tenant].name);
          out.set_result(v1::LOOKUP_NO_MAPPING);
          return std::nullopt;
      }
    } else if (nh.tenant == t.core) {
      origin = tenant;
    }
    tenant = nh.tenant;
  }
  out.set_result(v1::LOOKUP_LEAK_LOOP);
  return std::nullopt;
}

}  // namespace medix::dp
