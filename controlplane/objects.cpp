#include "objects.h"

#include <regex>
#include <set>

#include "common/address.h"
#include "common/keys.h"

namespace medix::cp {

namespace {

using common::parse_ipv4;
using common::parse_prefix;

template <typename T>
v1::Object wrap(const T& item, T* (v1::Object::*mutable_field)()) {
  v1::Object o;
  *(o.*mutable_field)() = item;
  return o;
}

}  // namespace

bool is_name(const std::string& s) {
  if (s.empty() || s.size() > 64) return false;
  for (char c : s)
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') return false;
  return true;
}

// Addresses and prefixes as medix-dp keys them (numbers, common/keys.h); text that does not
// parse as written.
std::string key_of(const v1::Object& o) {
  switch (o.kind_case()) {
    case v1::Object::kPort: return "port " + o.port().name();
    case v1::Object::kTenant: return "tenant " + o.tenant().name();
    case v1::Object::kInterface: return "interface " + o.interface().name();
    case v1::Object::kRoute: {
      auto k = common::route_key(o.route());
      return "route " + o.route().tenant() + " " +
             (k ? common::format_prefix({k->address, k->length}) : o.route().prefix());
    }
    case v1::Object::kNeighbour: {
      auto k = common::neighbour_key(o.neighbour());
      return "neighbour " + o.neighbour().interface() + " " +
             (k ? common::format_ipv4(k->address) : o.neighbour().address());
    }
    case v1::Object::kTunnel: return "tunnel " + o.tunnel().name();
    case v1::Object::kSa: {
      auto k = common::sa_key(o.sa());
      return "sa " + k.tunnel + " " + std::to_string(k.spi) + (k.inbound ? " in" : " out");
    }
    case v1::Object::kStaticMapping: {
      auto k = common::mapping_key(o.static_mapping());
      return "static_mapping " + o.static_mapping().tenant() + " " +
             (k ? common::format_prefix({k->address, k->length}) : o.static_mapping().tenant_prefix());
    }
    case v1::Object::kNaptPool: return "napt_pool " + o.napt_pool().tenant();
    case v1::Object::kPolicyRule: return "policy_rule " + o.policy_rule().name();
    default: return "?";
  }
}

int rank_of(const v1::Object& o) {
  switch (o.kind_case()) {
    case v1::Object::kPort: return 0;
    case v1::Object::kTenant: return 1;
    case v1::Object::kInterface: return 2;
    case v1::Object::kNeighbour: return 3;
    case v1::Object::kTunnel: return 4;
    case v1::Object::kRoute: return 5;
    case v1::Object::kStaticMapping: return 6;
    case v1::Object::kNaptPool: return 7;
    case v1::Object::kPolicyRule: return 8;
    default: return 9;
  }
}

std::vector<v1::Kind> static_kinds() {
  return {v1::PORT,  v1::TENANT,         v1::INTERFACE, v1::NEIGHBOUR,  v1::TUNNEL,
          v1::ROUTE, v1::STATIC_MAPPING, v1::NAPT_POOL, v1::POLICY_RULE};
}

std::vector<IntentObject> static_objects(const c1::Intent& in) {
  std::vector<IntentObject> out;
  auto add = [&](const char* field, const auto& items, auto mutable_field) {
    for (int i = 0; i < items.size(); i++)
      out.push_back({wrap(items[i], mutable_field), std::string(field) + "[" + std::to_string(i) + "]"});
  };
  add("ports", in.ports(), &v1::Object::mutable_port);
  add("tenants", in.tenants(), &v1::Object::mutable_tenant);
  add("interfaces", in.interfaces(), &v1::Object::mutable_interface);
  add("neighbours", in.neighbours(), &v1::Object::mutable_neighbour);
  add("routes", in.routes(), &v1::Object::mutable_route);
  add("static_mappings", in.static_mappings(), &v1::Object::mutable_static_mapping);
  add("napt_pools", in.napt_pools(), &v1::Object::mutable_napt_pool);
  add("policy_rules", in.policy_rules(), &v1::Object::mutable_policy_rule);
  // The DNS service's rules (docs/dns.md): every tenant to its address, UDP and TCP 53.
  if (in.has_dns() && !in.dns().service_tenant().empty()) {
    for (auto [name, protocol] : {std::pair{"dns-udp", 17u}, {"dns-tcp", 6u}}) {
      v1::PolicyRule r;
      r.set_name(name);
      r.set_priority(1);
      r.set_to_tenant(in.dns().service_tenant());
      r.set_destination_prefix(in.dns().service_address() + "/32");
      r.set_protocol(protocol);
      r.set_port_low(53);
      r.set_port_high(53);
      r.set_permit(true);
      out.push_back({wrap(r, &v1::Object::mutable_policy_rule), "dns.service_tenant"});
    }
  }
  return out;
}

std::string validate_static(const c1::Intent& in) {
  std::set<std::string> keys;
  auto at = [](const char* field, int i) { return std::string(field) + "[" + std::to_string(i) + "]."; };
  for (const auto& o : static_objects(in))
    if (!keys.insert(key_of(o.object)).second)
      return o.field + ": another object has the same key (" + key_of(o.object) + ")";
  std::set<std::string> tunnels;
  std::set<std::string> peer_routes;
  for (const auto& p : in.peers()) {
    const std::string tunnel = p.tunnel().empty() ? p.name() : p.tunnel();
    tunnels.insert(tunnel);
    if (!tunnel.empty() && tunnel == in.bgp().backbone_interface()) continue;  // BGP routes over it, not IKE
    for (const auto& s : p.remote_selectors()) peer_routes.insert(p.tenant() + " " + s);
  }
  for (int i = 0; i < in.ports_size(); i++) {
    const auto& p = in.ports(i);
    if (!is_name(p.name())) return at("ports", i) + "name: '" + p.name() + "' is not a name";
    if (p.device().empty()) return at("ports", i) + "device: is required";
    if (!p.mac().empty()) return at("ports", i) + "mac: is output only";
  }
  int cores = 0;
  for (int i = 0; i < in.tenants_size(); i++) {
    const auto& t = in.tenants(i);
    if (!is_name(t.name())) return at("tenants", i) + "name: '" + t.name() + "' is not a name";
    if (t.core() && ++cores > 1) return at("tenants", i) + "core: only one tenant is the core";
  }
  for (int i = 0; i < in.interfaces_size(); i++) {
    const auto& f = in.interfaces(i);
    if (!is_name(f.name())) return at("interfaces", i) + "name: '" + f.name() + "' is not a name";
    if (tunnels.count(f.name())) return at("interfaces", i) + "name: a peer's tunnel is named '" + f.name() + "'";
    if (f.tenant().empty()) return at("interfaces", i) + "tenant: is required";
    if (f.port().empty()) return at("interfaces", i) + "port: is required";
    for (int j = 0; j < f.addresses_size(); j++)
      if (!parse_prefix(f.addresses(j)))
        return at("interfaces", i) + "addresses[" + std::to_string(j) + "]: '" + f.addresses(j) +
               "' is not an address with its prefix length (10.0.0.1/24)";
  }
  for (int i = 0; i < in.routes_size(); i++) {
    const auto& r = in.routes(i);
    if (r.tenant().empty()) return at("routes", i) + "tenant: is required";
    if (!parse_prefix(r.prefix())) return at("routes", i) + "prefix: '" + r.prefix() + "' is not a prefix";
    if (r.target_case() == v1::Route::TARGET_NOT_SET)
      return at("routes", i) + "via: a target is required (via, next_tenant, local or blackhole)";
    if (r.has_via() && r.via().interface().empty()) return at("routes", i) + "via.interface: is required";
    if (r.has_via() && !r.via().address().empty() && !parse_ipv4(r.via().address()))
      return at("routes", i) + "via.address: '" + r.via().address() + "' is not an IPv4 address";
    if (peer_routes.count(r.tenant() + " " + r.prefix()))
      return at("routes", i) + "prefix: a peer's remote selector: IKE routes it to the peer's tunnel";
  }
  for (int i = 0; i < in.neighbours_size(); i++) {
    const auto& n = in.neighbours(i);
    if (n.interface().empty()) return at("neighbours", i) + "interface: is required";
    if (!parse_ipv4(n.address())) return at("neighbours", i) + "address: '" + n.address() + "' is not an IPv4 address";
    if (n.mac().empty()) return at("neighbours", i) + "mac: is required";
    if (n.learned()) return at("neighbours", i) + "learned: is output only";
  }
  for (int i = 0; i < in.static_mappings_size(); i++) {
    const auto& m = in.static_mappings(i);
    if (m.tenant().empty()) return at("static_mappings", i) + "tenant: is required";
    auto a = parse_prefix(m.tenant_prefix()), b = parse_prefix(m.core_prefix());
    if (!a) return at("static_mappings", i) + "tenant_prefix: '" + m.tenant_prefix() + "' is not a prefix";
    if (!b) return at("static_mappings", i) + "core_prefix: '" + m.core_prefix() + "' is not a prefix";
    if (a->length != b->length) return at("static_mappings", i) + "core_prefix: must be as long as tenant_prefix";
  }
  for (int i = 0; i < in.napt_pools_size(); i++) {
    const auto& p = in.napt_pools(i);
    if (p.tenant().empty()) return at("napt_pools", i) + "tenant: is required";
    if (p.addresses().empty()) return at("napt_pools", i) + "addresses: at least one is required";
    for (int j = 0; j < p.addresses_size(); j++)
      if (!parse_ipv4(p.addresses(j)) && !parse_prefix(p.addresses(j)))
        return at("napt_pools", i) + "addresses[" + std::to_string(j) + "]: '" + p.addresses(j) +
               "' is neither an address nor a prefix";
  }
  for (int i = 0; i < in.policy_rules_size(); i++) {
    const auto& r = in.policy_rules(i);
    if (!is_name(r.name())) return at("policy_rules", i) + "name: '" + r.name() + "' is not a name";
    if (!r.destination_prefix().empty() && !parse_prefix(r.destination_prefix()))
      return at("policy_rules", i) + "destination_prefix: '" + r.destination_prefix() + "' is not a prefix";
  }
  return "";
}

std::string name_fields(const std::string& message, const std::vector<std::string>& fields) {
  static const std::regex op(R"(operations\[([0-9]+)\](\.[a-z_]+)?)");
  std::smatch m;
  if (!std::regex_search(message, m, op)) return message;
  size_t i = std::stoul(m[1].str());
  if (i >= fields.size() || fields[i].empty()) return message;
  return m.prefix().str() + fields[i] + m.suffix().str();
}

v1::Object comparable(v1::Object o) {
  if (o.has_port()) o.mutable_port()->clear_mac();
  return o;
}

}  // namespace medix::cp
