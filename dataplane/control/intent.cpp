#include "control/intent.h"

#include <google/protobuf/util/message_differencer.h>

#include "infra/limits.h"

namespace medix::control {
namespace {

using Kind = v1::Object::KindCase;

Error invalid(const std::string& path, const std::string& reason) {
  return {Code::invalid_argument, path + ": " + reason};
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

bool same(const v1::Object& a, const v1::Object& b) { return google::protobuf::util::MessageDifferencer::Equals(a, b); }

std::optional<Error> range(const std::string& path, uint64_t value, uint64_t lo, uint64_t hi) {
  if (value >= lo && value <= hi) return std::nullopt;
  return invalid(path, std::to_string(value) + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
}

std::optional<Error> name(const std::string& path, const std::string& value) {
  if (value.empty()) return invalid(path, "is required");
  if (value.size() > 63) return invalid(path, "is longer than 63 characters");
  for (char c : value)
    if (c <= ' ' || c == '"' || c == '\\' || c == 0x7f)
      return invalid(path, quoted(value) + " has a space, quote or control character");
  return std::nullopt;
}

std::optional<Error> mac(const std::string& path, const std::string& value) {
  auto m = parse_mac(value);
  if (!m) return invalid(path, quoted(value) + " is not a MAC address like 02:00:00:00:00:01");
  if ((*m >> 40) & 1) return invalid(path, "is a multicast MAC");
  if (*m == 0) return invalid(path, "is the zero MAC");
  return std::nullopt;
}

}  // namespace

const char* kind_name(v1::Object::KindCase kind) {
  switch (kind) {
    case Kind::kPort: return "port";
    case Kind::kTenant: return "tenant";
    case Kind::kInterface: return "interface";
    case Kind::kRoute: return "route";
    case Kind::kNeighbour: return "neighbour";
    case Kind::kTunnel: return "tunnel";
    case Kind::kSa: return "sa";
    case Kind::kStaticMapping: return "static_mapping";
    case Kind::kNaptPool: return "napt_pool";
    case Kind::kPolicyRule: return "policy_rule";
    default: return "object";
  }
}

std::vector<Operation> operations_from(v1::Config config) {
  std::vector<Operation> ops;
  ops.reserve(size_t(config.ports_size() + config.tenants_size() + config.interfaces_size() + config.routes_size() +
                     config.neighbours_size()));
  auto add = [&ops](const char* list, int i, auto setter) {
    Operation op{v1::Operation::CREATE, {}, std::string(list) + "[" + std::to_string(i) + "]"};
    setter(op.object);
    ops.push_back(std::move(op));
  };
  for (int i = 0; i < config.ports_size(); i++)
    add("ports", i, [&](v1::Object& o) { *o.mutable_port() = std::move(*config.mutable_ports(i)); });
  for (int i = 0; i < config.tenants_size(); i++)
    add("tenants", i, [&](v1::Object& o) { *o.mutable_tenant() = std::move(*config.mutable_tenants(i)); });
  for (int i = 0; i < config.interfaces_size(); i++)
    add("interfaces", i, [&](v1::Object& o) { *o.mutable_interface() = std::move(*config.mutable_interfaces(i)); });
  // Tunnels before routes: routes point at them.
  for (int i = 0; i < config.tunnels_size(); i++)
    add("tunnels", i, [&](v1::Object& o) { *o.mutable_tunnel() = std::move(*config.mutable_tunnels(i)); });
  for (int i = 0; i < config.routes_size(); i++)
    add("routes", i, [&](v1::Object& o) { *o.mutable_route() = std::move(*config.mutable_routes(i)); });
  for (int i = 0; i < config.neighbours_size(); i++)
    add("neighbours", i, [&](v1::Object& o) { *o.mutable_neighbour() = std::move(*config.mutable_neighbours(i)); });
  for (int i = 0; i < config.sas_size(); i++)
    add("sas", i, [&](v1::Object& o) { *o.mutable_sa() = std::move(*config.mutable_sas(i)); });
  for (int i = 0; i < config.static_mappings_size(); i++)
    add("static_mappings", i,
        [&](v1::Object& o) { *o.mutable_static_mapping() = std::move(*config.mutable_static_mappings(i)); });
  for (int i = 0; i < config.napt_pools_size(); i++)
    add("napt_pools", i, [&](v1::Object& o) { *o.mutable_napt_pool() = std::move(*config.mutable_napt_pools(i)); });
  for (int i = 0; i < config.policy_rules_size(); i++)
    add("policy_rules", i,
        [&](v1::Object& o) { *o.mutable_policy_rule() = std::move(*config.mutable_policy_rules(i)); });
  return ops;
}

size_t Intent::routes_in(const std::string& tenant) const {
  auto it = tenant_routes_.find(tenant);
  return it == tenant_routes_.end() ? 0 : it->second;
}

// --- Lookup by key --------------------------------------------------------------------------

namespace {

template <typename Map, typename Key, typename Set>
std::optional<v1::Object> find_in(const Map& map, const Key& key, Set set) {
  auto it = map.find(key);
  if (it == map.end()) return std::nullopt;
  v1::Object o;
  set(o, it->second);
  return o;
}

}  // namespace

// --- Index maintenance ----------------------------------------------------------------------

void Intent::count(std::unordered_map<std::string, size_t>& users, const std::string& name, int delta) {
  auto it = users.find(name);
  if (it == users.end()) it = users.emplace(name, 0).first;
  it->second += delta;
}

size_t Intent::users(const std::unordered_map<std::string, size_t>& users, const std::string& name) {
  auto it = users.find(name);
  return it == users.end() ? 0 : it->second;
}

void Intent::put(const v1::Object& o) {
  switch (o.kind_case()) {
    case Kind::kPort: ports[o.port().name()] = o.port(); break;
    case Kind::kTenant: tenants[o.tenant().name()] = o.tenant(); break;
    case Kind::kInterface: {
      const auto& f = o.interface();
      interfaces[f.name()] = f;
      attachments_[{f.port(), f.vlan(), f.inner_vlan()}] = f.name();
      for (const auto& a : f.addresses()) tenant_addresses_[{f.tenant(), parse_prefix(a)->address}] = f.name();
      count(port_users_, f.port(), 1);
      count(tenant_users_, f.tenant(), 1);
      break;
    }
    case Kind::kRoute: {
      const auto& r = o.route();
      routes[*route_key(r)] = r;
      tenant_routes_[r.tenant()]++;
      count(tenant_users_, r.tenant(), 1);
      if (r.has_via()) count(interface_users_, r.via().interface(), 1);
      if (!r.next_tenant().empty()) count(tenant_users_, r.next_tenant(), 1);
      break;
    }
    case Kind::kNeighbour:
      neighbours[*neighbour_key(o.neighbour())] = o.neighbour();
      count(interface_users_, o.neighbour().interface(), 1);
      break;
    case Kind::kTunnel:
      tunnels[o.tunnel().name()] = o.tunnel();
      count(tenant_users_, o.tunnel().tenant(), 1);
      count(tenant_users_, o.tunnel().underlay_tenant(), 1);
      break;
    case Kind::kSa:
      sas[sa_key(o.sa())] = o.sa();
      count(interface_users_, o.sa().tunnel(), 1);
      if (o.sa().inbound()) inbound_spis_.insert(o.sa().spi());
      break;
    case Kind::kStaticMapping:
      static_mappings[*mapping_key(o.static_mapping())] = o.static_mapping();
      count(tenant_users_, o.static_mapping().tenant(), 1);
      break;
    case Kind::kNaptPool:
      napt_pools[o.napt_pool().tenant()] = o.napt_pool();
      count(tenant_users_, o.napt_pool().tenant(), 1);
      break;
    case Kind::kPolicyRule:
      policy_rules[o.policy_rule().name()] = o.policy_rule();
      if (!o.policy_rule().from_tenant().empty()) count(tenant_users_, o.policy_rule().from_tenant(), 1);
      if (!o.policy_rule().to_tenant().empty()) count(tenant_users_, o.policy_rule().to_tenant(), 1);
      break;
    default: break;
  }
}

void Intent::erase(const v1::Object& o) {
  switch (o.kind_case()) {
    case Kind::kPort: ports.erase(o.port().name()); break;
    case Kind::kTenant: tenants.erase(o.tenant().name()); break;
    case Kind::kInterface: {
      const auto& f = o.interface();
      interfaces.erase(f.name());
      attachments_.erase({f.port(), f.vlan(), f.inner_vlan()});
      for (const auto& a : f.addresses()) tenant_addresses_.erase({f.tenant(), parse_prefix(a)->address});
      count(port_users_, f.port(), -1);
      count(tenant_users_, f.tenant(), -1);
      break;
    }
    case Kind::kRoute: {
      const auto& r = o.route();
      routes.erase(*route_key(r));
      tenant_routes_[r.tenant()]--;
      count(tenant_users_, r.tenant(), -1);
      if (r.has_via()) count(interface_users_, r.via().interface(), -1);
      if (!r.next_tenant().empty()) count(tenant_users_, r.next_tenant(), -1);
      break;
    }
    case Kind::kNeighbour:
      neighbours.erase(*neighbour_key(o.neighbour()));
      count(interface_users_, o.neighbour().interface(), -1);
      break;
    case Kind::kTunnel:
      tunnels.erase(o.tunnel().name());
      count(tenant_users_, o.tunnel().tenant(), -1);
      count(tenant_users_, o.tunnel().underlay_tenant(), -1);
      break;
    case Kind::kSa:
      sas.erase(sa_key(o.sa()));
      count(interface_users_, o.sa().tunnel(), -1);
      if (o.sa().inbound()) inbound_spis_.erase(o.sa().spi());
      break;
    case Kind::kStaticMapping:
      static_mappings.erase(*mapping_key(o.static_mapping()));
      count(tenant_users_, o.static_mapping().tenant(), -1);
      break;
    case Kind::kNaptPool:
      napt_pools.erase(o.napt_pool().tenant());
      count(tenant_users_, o.napt_pool().tenant(), -1);
      break;
    case Kind::kPolicyRule:
      policy_rules.erase(o.policy_rule().name());
      if (!o.policy_rule().from_tenant().empty()) count(tenant_users_, o.policy_rule().from_tenant(), -1);
      if (!o.policy_rule().to_tenant().empty()) count(tenant_users_, o.policy_rule().to_tenant(), -1);
      break;
    default: break;
  }
}

Intent::Key Intent::key_of(const v1::Object& o) {
  Key k{o.kind_case(), "", {}, {}};
  switch (o.kind_case()) {
    case Kind::kPort: k.name = o.port().name(); break;
    case Kind::kTenant: k.name = o.tenant().name(); break;
    case Kind::kInterface: k.name = o.interface().name(); break;
    case Kind::kRoute: k.route = *route_key(o.route()); break;
    case Kind::kNeighbour: k.neighbour = *neighbour_key(o.neighbour()); break;
    case Kind::kTunnel: k.name = o.tunnel().name(); break;
    case Kind::kSa: k.sa = sa_key(o.sa()); break;
    case Kind::kStaticMapping: k.mapping = *mapping_key(o.static_mapping()); break;
    case Kind::kNaptPool: k.name = o.napt_pool().tenant(); break;
    case Kind::kPolicyRule: k.name = o.policy_rule().name(); break;
    default: break;
  }
  return k;
}

// The current object with that key.
std::optional<v1::Object> Intent::find(const Key& k) const {
  switch (k.kind) {
    case Kind::kPort: return find_in(ports, k.name, [](v1::Object& x, const v1::Port& v) { *x.mutable_port() = v; });
    case Kind::kTenant:
      return find_in(tenants, k.name, [](v1::Object& x, const v1::Tenant& v) { *x.mutable_tenant() = v; });
    case Kind::kInterface:
      return find_in(interfaces, k.name, [](v1::Object& x, const v1::Interface& v) { *x.mutable_interface() = v; });
    case Kind::kRoute:
      return find_in(routes, k.route, [](v1::Object& x, const v1::Route& v) { *x.mutable_route() = v; });
    case Kind::kNeighbour:
      return find_in(neighbours, k.neighbour,
                     [](v1::Object& x, const v1::Neighbour& v) { *x.mutable_neighbour() = v; });
    case Kind::kTunnel:
      return find_in(tunnels, k.name, [](v1::Object& x, const v1::Tunnel& v) { *x.mutable_tunnel() = v; });
    case Kind::kSa:
      return find_in(sas, k.sa, [](v1::Object& x, const v1::SecurityAssociation& v) { *x.mutable_sa() = v; });
    case Kind::kStaticMapping:
      return find_in(static_mappings, k.mapping,
                     [](v1::Object& x, const v1::StaticMapping& v) { *x.mutable_static_mapping() = v; });
    case Kind::kNaptPool:
      return find_in(napt_pools, k.name, [](v1::Object& x, const v1::NaptPool& v) { *x.mutable_napt_pool() = v; });
    case Kind::kPolicyRule:
      return find_in(policy_rules, k.name,
                     [](v1::Object& x, const v1::PolicyRule& v) { *x.mutable_policy_rule() = v; });
    default: return std::nullopt;
  }
}

void Intent::record(const Key& key) { log_.push_back({key, find(key)}); }

void Intent::undo(std::vector<Undo>& log) {
  for (auto it = log.rbegin(); it != log.rend(); ++it) {
    if (auto now = find(it->key)) erase(*now);
    if (it->before) put(*it->before);
  }
  log.clear();
}

void Intent::rollback_last() { undo(last_); }

// --- Validation -----------------------------------------------------------------------------

std::optional<Error> Intent::check_port(const v1::Port& p, const std::string& path) {
  if (auto e = name(path + ".device", p.device())) return e;
  for (const auto& [other, q] : ports)
    if (q.device() == p.device() && other != p.name())
      return invalid(path + ".device", "device " + quoted(p.device()) + " is already port " + quoted(other));
  if (device_exists && !device_exists(p.device()))
    return invalid(path + ".device",
                   "no DPDK port named " + quoted(p.device()) + " (give it to EAL with -a or --vdev)");
  if (p.mtu())
    if (auto e = range(path + ".mtu", p.mtu(), 68, 9600)) return e;
  if (ports.size() >= max_ports)
    return Error{Code::resource_exhausted, path + ": more than " + std::to_string(max_ports) + " ports"};
  return std::nullopt;
}

std::optional<Error> Intent::check_tenant(const v1::Tenant& t, const std::string& path) {
  if (auto e = range(path + ".max_routes", t.max_routes(), 0, 1u << 24)) return e;
  if (t.core()) {
    for (const auto& [other, o] : tenants)
      if (o.core() && other != t.name())
        return invalid(path + ".core", "tenant " + quoted(other) + " is already the core (there is one)");
    if (napt_pools.count(t.name())) return invalid(path + ".core", "the tenant has a NAPT pool; the core has none");
    for (const auto& [key, m] : static_mappings)
      if (key.tenant == t.name()) return invalid(path + ".core", "the tenant has static mappings; the core has none");
  }
  if (tenants.size() >= max_tenants)
    return Error{Code::resource_exhausted, path + ": more than " + std::to_string(max_tenants) + " tenants"};
  return std::nullopt;
}

std::optional<Error> Intent::check_interface(const v1::Interface& f, const std::string& path) {
  if (tunnels.count(f.name())) return invalid(path + ".name", "a tunnel is named " + quoted(f.name()));
  if (f.tenant().empty()) return invalid(path + ".tenant", "is required");
  if (!tenants.count(f.tenant())) return invalid(path + ".tenant", "no tenant named " + quoted(f.tenant()));
  if (f.port().empty()) return invalid(path + ".port", "is required");
  auto port = ports.find(f.port());
  if (port == ports.end()) return invalid(path + ".port", "no port named " + quoted(f.port()));
  if (auto e = range(path + ".vlan", f.vlan(), 0, 4094)) return e;
  if (auto e = range(path + ".inner_vlan", f.inner_vlan(), 0, 4094)) return e;
  if (f.inner_vlan() && !f.vlan()) return invalid(path + ".inner_vlan", "needs an outer vlan (QinQ)");
  if (auto it = attachments_.find({f.port(), f.vlan(), f.inner_vlan()}); it != attachments_.end())
    return invalid(path + ".vlan", "port " + quoted(f.port()) + " already has an interface with these VLAN tags (" +
                                       quoted(it->second) + ")");
  uint32_t port_mtu = port->second.mtu() ? port->second.mtu() : 1500;
  if (f.mtu()) {
    if (auto e = range(path + ".mtu", f.mtu(), 68, 9600)) return e;
    if (f.mtu() > port_mtu) return invalid(path + ".mtu", "is larger than the port's MTU " + std::to_string(port_mtu));
  }
  if (!f.mac().empty())
    if (auto e = mac(path + ".mac", f.mac())) return e;
  if (f.addresses_size() > int(max_addresses_per_interface))
    return invalid(path + ".addresses", "more than " + std::to_string(max_addresses_per_interface));
  std::set<uint32_t> seen;
  for (int a = 0; a < f.addresses_size(); a++) {
    std::string apath = path + ".addresses[" + std::to_string(a) + "]";
    auto p = parse_prefix(f.addresses(a));
    if (!p) return invalid(apath, quoted(f.addresses(a)) + " is not an address with prefix length like 10.0.0.1/24");
    if (p->length == 0) return invalid(apath, "prefix length 0 is not an interface address");
    auto it = tenant_addresses_.find({f.tenant(), p->address});
    if (it != tenant_addresses_.end() || !seen.insert(p->address).second)
      return invalid(apath, "address " + format_ipv4(p->address) + " is already used in tenant " + quoted(f.tenant()) +
                                (it != tenant_addresses_.end() ? " by " + quoted(it->second) : ""));
  }
  if (interfaces.size() >= max_interfaces)
    return Error{Code::resource_exhausted, path + ": more than " + std::to_string(max_interfaces) + " interfaces"};
  return std::nullopt;
}

std::optional<Error> Intent::check_route(const v1::Route& r, const std::string& path) {
  if (r.tenant().empty()) return invalid(path + ".tenant", "is required");
  auto tenant = tenants.find(r.tenant());
  if (tenant == tenants.end()) return invalid(path + ".tenant", "no tenant named " + quoted(r.tenant()));
  auto key = *route_key(r);
  uint32_t mask = key.length == 0 ? 0 : ~uint32_t(0) << (32 - key.length);
  if (key.address & ~mask)
    return invalid(path + ".prefix", quoted(r.prefix()) + " has host bits set (did you mean " +
                                         format_ipv4(key.address & mask) + "/" + std::to_string(key.length) + "?)");
  switch (r.target_case()) {
    case v1::Route::kVia: {
      const auto& via = r.via();
      if (via.interface().empty()) return invalid(path + ".via.interface", "is required");
      auto f = interfaces.find(via.interface());
      auto t = tunnels.find(via.interface());
      if (f == interfaces.end() && t == tunnels.end())
        return invalid(path + ".via.interface", "no interface or tunnel named " + quoted(via.interface()));
      const std::string& its = f != interfaces.end() ? f->second.tenant() : t->second.tenant();
      if (its != r.tenant())
        return invalid(path + ".via.interface", "interface " + quoted(via.interface()) + " is in tenant " +
                                                    quoted(its) + ", not " + quoted(r.tenant()) +
                                                    " (use next_tenant to leak)");
      if (!via.address().empty() && !parse_ipv4(via.address()))
        return invalid(path + ".via.address", quoted(via.address()) + " is not an IPv4 address");
      break;
    }
    case v1::Route::kNextTenant:
      if (!tenants.count(r.next_tenant()))
        return invalid(path + ".next_tenant", "no tenant named " + quoted(r.next_tenant()));
      if (r.next_tenant() == r.tenant()) return invalid(path + ".next_tenant", "is the route's own tenant");
      break;
    case v1::Route::kLocal:
    case v1::Route::kBlackhole: break;
    default: return invalid(path + ".target", "is required: one of via, next_tenant, local, blackhole");
  }
  uint32_t max_routes = tenant->second.max_routes() ? tenant->second.max_routes() : 65536;
  if (routes_in(r.tenant()) >= max_routes)
    return Error{Code::resource_exhausted, path + ": tenant " + quoted(r.tenant()) + " already has its max_routes (" +
                                               std::to_string(max_routes) + ") routes"};
  return std::nullopt;
}

std::optional<Error> Intent::check_neighbour(const v1::Neighbour& n, const std::string& path) {
  if (n.interface().empty()) return invalid(path + ".interface", "is required");
  if (!interfaces.count(n.interface()))
    return invalid(path + ".interface", "no interface named " + quoted(n.interface()));
  return mac(path + ".mac", n.mac());
}

namespace {
std::optional<Error> selectors(const std::string& path, const google::protobuf::RepeatedPtrField<std::string>& list) {
  if (list.size() > 8) return invalid(path, "more than 8 selectors");
  for (int i = 0; i < list.size(); i++) {
    auto p = parse_prefix(list.Get(i));
    std::string at = path + "[" + std::to_string(i) + "]";
    if (!p) return invalid(at, quoted(list.Get(i)) + " is not a prefix like 10.1.0.0/16");
    uint32_t mask = p->length == 0 ? 0 : ~uint32_t(0) << (32 - p->length);
    if (p->address & ~mask) return invalid(at, quoted(list.Get(i)) + " has host bits set");
  }
  return std::nullopt;
}
}  // namespace

std::optional<Error> Intent::check_tunnel(const v1::Tunnel& t, const std::string& path) {
  if (interfaces.count(t.name())) return invalid(path + ".name", "an interface is named " + quoted(t.name()));
  if (t.tenant().empty()) return invalid(path + ".tenant", "is required");
  if (!tenants.count(t.tenant())) return invalid(path + ".tenant", "no tenant named " + quoted(t.tenant()));
  if (t.underlay_tenant().empty()) return invalid(path + ".underlay_tenant", "is required");
  if (!tenants.count(t.underlay_tenant()))
    return invalid(path + ".underlay_tenant", "no tenant named " + quoted(t.underlay_tenant()));
  if (!parse_ipv4(t.local_address()))
    return invalid(path + ".local_address", quoted(t.local_address()) + " is not an IPv4 address");
  if (!parse_ipv4(t.remote_address()))
    return invalid(path + ".remote_address", quoted(t.remote_address()) + " is not an IPv4 address");
  if (auto e = range(path + ".encap_udp_port", t.encap_udp_port(), 0, 65535)) return e;
  if (t.mtu())
    if (auto e = range(path + ".mtu", t.mtu(), 576, 9000)) return e;
  if (t.tcp_mss_clamp())
    if (auto e = range(path + ".tcp_mss_clamp", t.tcp_mss_clamp(), 536, 9000)) return e;
  if (auto e = range(path + ".ttl", t.ttl(), 0, 255)) return e;
  if (auto e = selectors(path + ".local_selectors", t.local_selectors())) return e;
  if (auto e = selectors(path + ".remote_selectors", t.remote_selectors())) return e;
  for (const auto& [name, other] : tunnels)
    if (other.local_address() == t.local_address() && other.remote_address() == t.remote_address() &&
        other.underlay_tenant() == t.underlay_tenant() && other.encap_udp_port() == t.encap_udp_port())
      return invalid(path + ".remote_address", "tunnel " + quoted(name) + " has the same endpoints");
  if (interfaces.size() + tunnels.size() >= max_interfaces)
    return Error{Code::resource_exhausted,
                 path + ": more than " + std::to_string(max_interfaces) + " interfaces and tunnels"};
  return std::nullopt;
}

std::optional<Error> Intent::check_sa(const v1::SecurityAssociation& sa, const std::string& path) {
  if (!tunnels.count(sa.tunnel())) return invalid(path + ".tunnel", "no tunnel named " + quoted(sa.tunnel()));
  if (sa.inbound() && inbound_spis_.count(sa.spi()))
    return invalid(path + ".spi",
                   "inbound SPI " + std::to_string(sa.spi()) + " is already used (inbound SAs are found by SPI)");
  size_t key_len = 0, auth_len = 0;
  switch (sa.cipher()) {
    case v1::AES_GCM_128: key_len = 16 + 4; break;
    case v1::AES_GCM_256: key_len = 32 + 4; break;
    case v1::AES_CBC_128: key_len = 16; break;
    case v1::AES_CBC_256: key_len = 32; break;
    default: return invalid(path + ".cipher", "is required: AES_GCM_128, AES_GCM_256, AES_CBC_128 or AES_CBC_256");
  }
  bool gcm = sa.cipher() == v1::AES_GCM_128 || sa.cipher() == v1::AES_GCM_256;
  if (sa.cipher_key().size() != key_len)
    return invalid(path + ".cipher_key", std::to_string(sa.cipher_key().size()) + " bytes; " +
                                             v1::Cipher_Name(sa.cipher()) + " takes " + std::to_string(key_len) +
                                             (gcm ? " (key and 4-byte salt)" : ""));
  switch (sa.integrity()) {
    case v1::INTEGRITY_UNSPECIFIED:
      if (!gcm) return invalid(path + ".integrity", "is required with AES-CBC: HMAC_SHA256_128 or HMAC_SHA1_96");
      break;
    case v1::HMAC_SHA256_128: auth_len = 32; break;
    case v1::HMAC_SHA1_96: auth_len = 20; break;
    default: return invalid(path + ".integrity", "is not known");
  }
  if (gcm && sa.integrity() != v1::INTEGRITY_UNSPECIFIED)
    return invalid(path + ".integrity", "must be unset with AES-GCM (it authenticates itself)");
  if (!gcm && sa.integrity_key().size() != auth_len)
    return invalid(path + ".integrity_key", std::to_string(sa.integrity_key().size()) + " bytes; " +
                                                v1::Integrity_Name(sa.integrity()) + " takes " +
                                                std::to_string(auth_len));
  if (auto e = range(path + ".replay_window", sa.replay_window(), 0, 4096)) return e;
  if (sa.soft_bytes() && sa.hard_bytes() && sa.soft_bytes() > sa.hard_bytes())
    return invalid(path + ".soft_bytes", "is above hard_bytes");
  if (sa.soft_packets() && sa.hard_packets() && sa.soft_packets() > sa.hard_packets())
    return invalid(path + ".soft_packets", "is above hard_packets");
  if (sas.size() >= 8192) return Error{Code::resource_exhausted, path + ": more than 8192 SAs"};
  return std::nullopt;
}

std::optional<std::vector<Prefix>> pool_prefixes(const v1::NaptPool& pool) {
  std::vector<Prefix> out;
  for (const auto& a : pool.addresses()) {
    if (auto ip = parse_ipv4(a)) {
      out.push_back({*ip, 32});
    } else if (auto p = parse_prefix(a)) {
      out.push_back(*p);
    } else {
      return std::nullopt;
    }
  }
  return out;
}

namespace {

uint32_t mask_of(uint8_t length) { return length == 0 ? 0 : ~uint32_t(0) << (32 - length); }

bool overlap(uint32_t a, uint8_t la, uint32_t b, uint8_t lb) {
  uint32_t m = mask_of(std::min(la, lb));
  return (a & m) == (b & m);
}

std::string cidr(uint32_t address, uint8_t length) { return format_ipv4(address) + "/" + std::to_string(length); }

// A prefix whose host bits are zero, or the error naming the field.
std::optional<Error> network(const std::string& path, const std::string& text, Prefix& out) {
  auto p = parse_prefix(text);
  if (!p) return invalid(path, quoted(text) + " is not a prefix like 10.1.0.0/16");
  if (p->address & ~mask_of(p->length))
    return invalid(path, quoted(text) + " has host bits set (did you mean " +
                             cidr(p->address & mask_of(p->length), p->length) + "?)");
  out = *p;
  return std::nullopt;
}

}  // namespace

std::optional<std::string> Intent::core_clash(uint32_t address, uint8_t length, const std::string& except_tenant,
                                              std::optional<MappingKey> except_mapping) const {
  for (const auto& [key, m] : static_mappings) {
    if (except_mapping && key == *except_mapping) continue;
    auto c = parse_prefix(m.core_prefix());
    if (overlap(address, length, c->address, c->length))
      return "static mapping " + quoted(m.tenant()) + " " + m.tenant_prefix() + " -> " + m.core_prefix();
  }
  for (const auto& [tenant, pool] : napt_pools) {
    if (tenant == except_tenant) continue;
    auto prefixes = pool_prefixes(pool);
    for (const auto& p : *prefixes)
      if (overlap(address, length, p.address, p.length)) return "the NAPT pool of " + quoted(tenant);
  }
  return std::nullopt;
}

std::optional<Error> Intent::check_static_mapping(const v1::StaticMapping& m, const std::string& path) {
  if (m.tenant().empty()) return invalid(path + ".tenant", "is required");
  auto t = tenants.find(m.tenant());
  if (t == tenants.end()) return invalid(path + ".tenant", "no tenant named " + quoted(m.tenant()));
  if (t->second.core()) return invalid(path + ".tenant", quoted(m.tenant()) + " is the core: it is not translated");
  Prefix inside, core;
  if (auto e = network(path + ".tenant_prefix", m.tenant_prefix(), inside)) return e;
  if (auto e = network(path + ".core_prefix", m.core_prefix(), core)) return e;
  if (inside.length != core.length)
    return invalid(path + ".core_prefix", "is a /" + std::to_string(core.length) + "; tenant_prefix is a /" +
                                              std::to_string(inside.length) + " (a 1:1 mapping needs the same length)");
  for (const auto& [key, other] : static_mappings)
    if (key.tenant == m.tenant() && overlap(inside.address, inside.length, key.address, key.length))
      return invalid(path + ".tenant_prefix", "overlaps the tenant's mapping of " + other.tenant_prefix());
  if (auto clash = core_clash(core.address, core.length, "", std::nullopt))
    return invalid(path + ".core_prefix", "overlaps " + *clash + " (core addresses must be unique)");
  return std::nullopt;
}

std::optional<Error> Intent::check_napt_pool(const v1::NaptPool& p, const std::string& path) {
  auto t = tenants.find(p.tenant());
  if (t == tenants.end()) return invalid(path + ".tenant", "no tenant named " + quoted(p.tenant()));
  if (t->second.core()) return invalid(path + ".tenant", quoted(p.tenant()) + " is the core: it is not translated");
  if (p.addresses().empty()) return invalid(path + ".addresses", "at least one core address is required");
  uint64_t count = 0;
  std::vector<Prefix> seen;
  for (int i = 0; i < p.addresses_size(); i++) {
    std::string at = path + ".addresses[" + std::to_string(i) + "]";
    Prefix prefix{};
    if (auto ip = parse_ipv4(p.addresses(i))) {
      prefix = {*ip, 32};
    } else if (auto e = network(at, p.addresses(i), prefix)) {
      return invalid(at, quoted(p.addresses(i)) + " is not an address or a prefix like 100.64.9.0/30");
    }
    if (prefix.length < 20) return invalid(at, "is larger than a /20");
    for (const auto& s : seen)
      if (overlap(prefix.address, prefix.length, s.address, s.length))
        return invalid(at, "overlaps another address of the pool");
    if (auto clash = core_clash(prefix.address, prefix.length, p.tenant(), std::nullopt))
      return invalid(at, "overlaps " + *clash + " (core addresses must be unique)");
    seen.push_back(prefix);
    count += uint64_t(1) << (32 - prefix.length);
  }
  if (count > max_pool_addresses)
    return invalid(path + ".addresses",
                   std::to_string(count) + " addresses; at most " + std::to_string(max_pool_addresses));
  if (auto e = range(path + ".port_low", p.port_low(), 0, 65535)) return e;
  if (auto e = range(path + ".port_high", p.port_high(), 0, 65535)) return e;
  uint32_t low = p.port_low() ? p.port_low() : 1024, high = p.port_high() ? p.port_high() : 65535;
  if (low > high)
    return invalid(path + ".port_low", std::to_string(low) + " is above port_high " + std::to_string(high));
  return std::nullopt;
}

std::optional<Error> Intent::check_policy_rule(const v1::PolicyRule& r, const std::string& path) {
  if (!r.from_tenant().empty() && !tenants.count(r.from_tenant()))
    return invalid(path + ".from_tenant", "no tenant named " + quoted(r.from_tenant()));
  if (!r.to_tenant().empty() && !tenants.count(r.to_tenant()))
    return invalid(path + ".to_tenant", "no tenant named " + quoted(r.to_tenant()));
  if (!r.destination_prefix().empty()) {
    Prefix p;
    if (auto e = network(path + ".destination_prefix", r.destination_prefix(), p)) return e;
  }
  if (auto e = range(path + ".protocol", r.protocol(), 0, 255)) return e;
  if (auto e = range(path + ".port_low", r.port_low(), 0, 65535)) return e;
  if (auto e = range(path + ".port_high", r.port_high(), 0, 65535)) return e;
  if (r.port_low() || r.port_high()) {
    if (r.protocol() != 6 && r.protocol() != 17)
      return invalid(path + ".port_low", "ports need protocol 6 (TCP) or 17 (UDP)");
    if (r.port_low() > r.port_high())
      return invalid(path + ".port_low",
                     std::to_string(r.port_low()) + " is above port_high " + std::to_string(r.port_high()));
  }
  if (policy_rules.size() >= max_policy_rules)
    return Error{Code::resource_exhausted, path + ": more than " + std::to_string(max_policy_rules) + " policy rules"};
  return std::nullopt;
}

std::optional<Error> Intent::check_delete(const v1::Object& o, const std::string& path) {
  std::string name;
  size_t n = 0;
  switch (o.kind_case()) {
    case Kind::kPort: n = users(port_users_, name = o.port().name()); break;
    case Kind::kTenant: n = users(tenant_users_, name = o.tenant().name()); break;
    case Kind::kInterface: n = users(interface_users_, name = o.interface().name()); break;
    case Kind::kTunnel: n = users(interface_users_, name = o.tunnel().name()); break;
    default: return std::nullopt;
  }
  if (n)
    return Error{Code::failed_precondition, path + ": " + kind_name(o.kind_case()) + " " + quoted(name) +
                                                " is still used by " + std::to_string(n) +
                                                (n == 1 ? " object" : " objects") +
                                                " (interfaces, routes, neighbours, mappings, pools or rules)"};
  return std::nullopt;
}

std::optional<Error> Intent::apply_one(const Operation& op, size_t) {
  v1::Object object = op.object;
  const std::string& path = op.path;
  // Output-only fields are ignored, so that what Get returns can be sent back.
  if (object.has_port()) object.mutable_port()->clear_mac();
  if (object.has_neighbour()) object.mutable_neighbour()->clear_learned();

  // Key fields first: without them nothing can be looked up.
  switch (object.kind_case()) {
    case Kind::kPort:
      if (auto e = name(path + ".name", object.port().name())) return e;
      break;
    case Kind::kTenant:
      if (auto e = name(path + ".name", object.tenant().name())) return e;
      break;
    case Kind::kInterface:
      if (auto e = name(path + ".name", object.interface().name())) return e;
      break;
    case Kind::kRoute:
      if (!route_key(object.route()))
        return invalid(path + ".prefix", quoted(object.route().prefix()) + " is not a prefix like 10.1.0.0/16");
      break;
    case Kind::kNeighbour:
      if (!neighbour_key(object.neighbour()))
        return invalid(path + ".address", quoted(object.neighbour().address()) + " is not an IPv4 address");
      break;
    case Kind::kTunnel:
      if (auto e = name(path + ".name", object.tunnel().name())) return e;
      break;
    case Kind::kSa:
      if (object.sa().spi() < 256)
        return invalid(path + ".spi", std::to_string(object.sa().spi()) + " is reserved (0..255)");
      if (object.sa().tunnel().empty()) return invalid(path + ".tunnel", "is required");
      break;
    case Kind::kStaticMapping:
      if (object.static_mapping().tenant().empty()) return invalid(path + ".tenant", "is required");
      if (!mapping_key(object.static_mapping()))
        return invalid(path + ".tenant_prefix",
                       quoted(object.static_mapping().tenant_prefix()) + " is not a prefix like 10.1.0.0/16");
      break;
    case Kind::kNaptPool:
      if (auto e = name(path + ".tenant", object.napt_pool().tenant())) return e;
      break;
    case Kind::kPolicyRule:
      if (auto e = name(path + ".name", object.policy_rule().name())) return e;
      break;
    case Kind::KIND_NOT_SET:
    default: return invalid(path, "an object is required (port, tenant, interface, route, neighbour, ...)");
  }

  Key key = key_of(object);
  auto existing = find(key);
  std::string what = std::string(kind_name(object.kind_case()));
  switch (op.op) {
    case v1::Operation::CREATE:
      if (existing) {
        if (same(*existing, object)) return std::nullopt;  // idempotent replay
        return Error{Code::already_exists, path + ": the " + what + " already exists and differs (use UPDATE)"};
      }
      break;
    case v1::Operation::UPDATE:
      if (!existing) return Error{Code::not_found, path + ": no such " + what};
      if (same(*existing, object)) return std::nullopt;
      if (object.has_port() && object.port().device() != existing->port().device())
        return invalid(path + ".device", "cannot change (delete the port and create it again)");
      if (object.has_tenant() && object.tenant().max_routes() != existing->tenant().max_routes())
        return invalid(path + ".max_routes", "cannot change (its FIB is sized at creation)");
      if (object.has_sa()) return invalid(path, "an SA cannot change: create the new one (a rekey) and delete the old");
      if (object.has_tunnel() &&
          (object.tunnel().tenant() != existing->tunnel().tenant() ||
           object.tunnel().underlay_tenant() != existing->tunnel().underlay_tenant()) &&
          users(interface_users_, object.tunnel().name()))
        return Error{Code::failed_precondition, path + ": tenants cannot change while routes or SAs use the tunnel"};
      if (object.has_interface() && object.interface().tenant() != existing->interface().tenant() &&
          users(interface_users_, object.interface().name()))
        return Error{Code::failed_precondition,
                     path + ".tenant: cannot change while routes or neighbours use the interface"};
      break;
    case v1::Operation::DELETE:
      if (!existing) return Error{Code::not_found, path + ": no such " + what};
      if (auto e = check_delete(*existing, path)) return e;
      record(key);
      erase(*existing);
      return std::nullopt;
    default: return invalid(path, "op is required: CREATE, UPDATE or DELETE");
  }

  record(key);
  if (existing) erase(*existing);  // so that it does not conflict with itself
  if (object.has_sa()) sa_serial[key.sa] = ++sa_serials_;
  std::optional<Error> e;
  switch (object.kind_case()) {
    case Kind::kPort: e = check_port(object.port(), path); break;
    case Kind::kTenant: e = check_tenant(object.tenant(), path); break;
    case Kind::kInterface: e = check_interface(object.interface(), path); break;
    case Kind::kTunnel: e = check_tunnel(object.tunnel(), path); break;
    case Kind::kSa: e = check_sa(object.sa(), path); break;
    case Kind::kRoute: e = check_route(object.route(), path); break;
    case Kind::kNeighbour: e = check_neighbour(object.neighbour(), path); break;
    case Kind::kStaticMapping: e = check_static_mapping(object.static_mapping(), path); break;
    case Kind::kNaptPool: e = check_napt_pool(object.napt_pool(), path); break;
    case Kind::kPolicyRule: e = check_policy_rule(object.policy_rule(), path); break;
    default: break;
  }
  if (e) return e;  // the caller's undo puts `existing` back
  put(object);
  return std::nullopt;
}

std::optional<Error> Intent::apply(const std::vector<Operation>& ops, Diff& diff) {
  log_.clear();
  for (size_t i = 0; i < ops.size(); i++) {
    if (auto e = apply_one(ops[i], i)) {
      undo(log_);
      return e;
    }
  }
  // The diff: each key's state before its first change, and now.
  diff = Diff{};
  for (const auto& u : log_) {
    if (u.key.kind == Kind::kRoute) {
      diff.routes.insert(u.key.route);
      continue;
    }
    auto change = [&] { return Change{u.before, find(u.key)}; };
    switch (u.key.kind) {
      case Kind::kPort: diff.ports.try_emplace(u.key.name, change()); break;
      case Kind::kTenant: diff.tenants.try_emplace(u.key.name, change()); break;
      case Kind::kInterface: diff.interfaces.try_emplace(u.key.name, change()); break;
      case Kind::kNeighbour: diff.neighbours.try_emplace(u.key.neighbour, change()); break;
      case Kind::kTunnel: diff.tunnels.try_emplace(u.key.name, change()); break;
      case Kind::kSa: diff.sas.try_emplace(u.key.sa, change()); break;
      case Kind::kStaticMapping: diff.translation_changed.insert(u.key.mapping.tenant); break;
      case Kind::kNaptPool: diff.translation_changed.insert(u.key.name); break;
      case Kind::kPolicyRule: diff.policy_changed = true; break;
      default: break;
    }
  }
  auto prune = [](auto& map) {
    for (auto it = map.begin(); it != map.end();) {
      const Change& c = it->second;
      bool unchanged = (!c.before && !c.after) || (c.before && c.after && same(*c.before, *c.after));
      it = unchanged ? map.erase(it) : std::next(it);
    }
  };
  prune(diff.ports);
  prune(diff.tenants);
  prune(diff.interfaces);
  prune(diff.neighbours);
  prune(diff.tunnels);
  prune(diff.sas);
  last_ = std::move(log_);
  log_.clear();
  return std::nullopt;
}

}  // namespace medix::control
