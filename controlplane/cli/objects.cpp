#include "objects.h"

#include <stdexcept>

#include "common/address.h"

namespace medix::ctl {

namespace {

using Case = v1::Object::KindCase;

// "10.1.2.3/16" as "10.1.0.0/16"; anything that is not a prefix stays as written (the server
// names the error).
std::string canonical_prefix(const std::string& text) {
  auto prefix = common::parse_prefix(text);
  return prefix ? common::format_network(*prefix) : text;
}

std::string canonical_address(const std::string& text) {
  auto address = common::parse_ipv4(text);
  return address ? common::format_ipv4(*address) : text;
}

bool on_off(Args& args, const std::string& what) {
  auto word = args.next(what + " (on or off)");
  if (word == "on") return true;
  if (word == "off") return false;
  throw UsageError(what + ": \"" + word + "\" is neither on nor off");
}

void set_port(v1::Port& port, Args& args) {
  while (!args.done()) {
    if (args.take("mtu")) {
      port.set_mtu(args.next_u32("mtu"));
    } else if (args.take("up")) {
      port.set_admin_down(false);
    } else if (args.take("down")) {
      port.set_admin_down(true);
    } else if (args.take("promiscuous")) {
      port.set_promiscuous(on_off(args, "promiscuous"));
    } else if (args.take("device")) {
      port.set_device(args.next("a device name"));
    } else {
      throw UsageError("set port: unknown \"" + args.peek() + "\" (mtu, up, down, promiscuous, device)");
    }
  }
}

void set_tenant(v1::Tenant& tenant, Args& args) {
  while (!args.done()) {
    if (args.take("description")) {
      tenant.set_description(args.next("a description"));
    } else if (args.take("max-routes")) {
      tenant.set_max_routes(args.next_u32("max-routes"));
    } else if (args.take("fib")) {
      std::string kind = args.next("compact or dir24_8");
      if (kind == "compact")
        tenant.set_fib(v1::FIB_COMPACT);
      else if (kind == "dir24_8")
        tenant.set_fib(v1::FIB_DIR24_8);
      else
        throw UsageError("set tenant: fib \"" + kind + "\" is neither compact nor dir24_8");
    } else {
      throw UsageError("set tenant: unknown \"" + args.peek() + "\" (description, max-routes, fib)");
    }
  }
}

void set_interface(v1::Interface& interface, Args& args) {
  bool addresses_given = false;
  while (!args.done()) {
    if (args.take("tenant")) {
      interface.set_tenant(args.next("a tenant name"));
    } else if (args.take("port")) {
      interface.set_port(args.next("a port name"));
    } else if (args.take("vlan")) {
      interface.set_vlan(args.next_u32("vlan"));
    } else if (args.take("inner-vlan")) {
      interface.set_inner_vlan(args.next_u32("inner-vlan"));
    } else if (args.take("address")) {
      if (!addresses_given) interface.clear_addresses();  // the addresses given replace the old ones
      addresses_given = true;
      interface.add_addresses(args.next("an address (A.B.C.D/LEN)"));
    } else if (args.take("mtu")) {
      interface.set_mtu(args.next_u32("mtu"));
    } else if (args.take("mac")) {
      interface.set_mac(args.next("a MAC address"));
    } else {
      throw UsageError("set interface: unknown \"" + args.peek() +
                       "\" (tenant, port, vlan, inner-vlan, address, mtu, mac)");
    }
  }
}

void set_route(v1::Route& route, Args& args) {
  if (args.take("via")) {
    auto* via = route.mutable_via();
    via->set_interface(args.next("an interface name"));
    via->set_address(args.done() ? "" : args.next("a gateway"));
  } else if (args.take("tenant")) {
    route.set_next_tenant(args.next("a tenant name"));
  } else if (args.take("local")) {
    route.mutable_local();
  } else if (args.take("blackhole")) {
    route.mutable_blackhole()->set_unreachable(args.take("unreachable"));
  } else {
    throw UsageError(args.done() ? "set route: missing the target (via, tenant, local, blackhole)"
                                 : "set route: unknown \"" + args.peek() + "\" (via, tenant, local, blackhole)");
  }
  args.expect_done();
}

}  // namespace

const std::vector<KindInfo>& kinds() {
  static const std::vector<KindInfo> all = {
      {"port", "ports", "ports", v1::PORT, Case::kPort, "NAME"},
      {"tenant", "tenants", "tenants", v1::TENANT, Case::kTenant, "NAME"},
      {"interface", "interfaces", "interfaces", v1::INTERFACE, Case::kInterface, "NAME"},
      {"route", "routes", "routes", v1::ROUTE, Case::kRoute, "TENANT PREFIX"},
      {"neighbour", "neighbours", "neighbours", v1::NEIGHBOUR, Case::kNeighbour, "INTERFACE ADDRESS"},
      {"tunnel", "tunnels", "tunnels", v1::TUNNEL, Case::kTunnel, "NAME"},
      {"sa", "sas", "sas", v1::SA, Case::kSa, "SPI"},
      {"static-mapping", "static-mappings", "static_mappings", v1::STATIC_MAPPING, Case::kStaticMapping,
       "TENANT PREFIX"},
      {"napt-pool", "napt-pools", "napt_pools", v1::NAPT_POOL, Case::kNaptPool, "TENANT"},
      {"policy-rule", "policy-rules", "policy_rules", v1::POLICY_RULE, Case::kPolicyRule, "NAME"},
  };
  return all;
}

const KindInfo* find_kind(const std::string& word) {
  for (const auto& kind : kinds())
    if (word == kind.singular || word == kind.plural) return &kind;
  return nullptr;
}

const KindInfo& kind_of(const v1::Object& object) {
  for (const auto& kind : kinds())
    if (kind.oneof == object.kind_case()) return kind;
  throw Failure("the server sent an object of no known kind");
}

v1::Object key_object(const KindInfo& kind, Args& args) {
  v1::Object object;
  switch (kind.oneof) {
    case Case::kPort: object.mutable_port()->set_name(args.next("a port name")); break;
    case Case::kTenant: object.mutable_tenant()->set_name(args.next("a tenant name")); break;
    case Case::kInterface: object.mutable_interface()->set_name(args.next("an interface name")); break;
    case Case::kRoute:
      object.mutable_route()->set_tenant(args.next("the route's tenant"));
      object.mutable_route()->set_prefix(args.next("the route's prefix"));
      break;
    case Case::kNeighbour:
      object.mutable_neighbour()->set_interface(args.next("the neighbour's interface"));
      object.mutable_neighbour()->set_address(args.next("the neighbour's address"));
      break;
    case Case::kTunnel: object.mutable_tunnel()->set_name(args.next("a tunnel name")); break;
    case Case::kSa: object.mutable_sa()->set_spi(args.next_u32("SPI")); break;
    case Case::kStaticMapping:
      object.mutable_static_mapping()->set_tenant(args.next("a tenant name"));
      object.mutable_static_mapping()->set_tenant_prefix(args.next("the mapping's tenant prefix"));
      break;
    case Case::kNaptPool: object.mutable_napt_pool()->set_tenant(args.next("a tenant name")); break;
    case Case::kPolicyRule: object.mutable_policy_rule()->set_name(args.next("a rule name")); break;
    case Case::KIND_NOT_SET: throw std::logic_error("key_object: no kind");
  }
  return object;
}

std::string key_string(const v1::Object& object) {
  std::string kind = kind_of(object).singular + "/";
  switch (object.kind_case()) {
    case Case::kPort: return kind + object.port().name();
    case Case::kTenant: return kind + object.tenant().name();
    case Case::kInterface: return kind + object.interface().name();
    case Case::kRoute: return kind + object.route().tenant() + "/" + canonical_prefix(object.route().prefix());
    case Case::kNeighbour:
      return kind + object.neighbour().interface() + "/" + canonical_address(object.neighbour().address());
    case Case::kTunnel: return kind + object.tunnel().name();
    case Case::kSa: return kind + std::to_string(object.sa().spi());
    case Case::kStaticMapping:
      return kind + object.static_mapping().tenant() + "/" + canonical_prefix(object.static_mapping().tenant_prefix());
    case Case::kNaptPool: return kind + object.napt_pool().tenant();
    case Case::kPolicyRule: return kind + object.policy_rule().name();
    case Case::KIND_NOT_SET: break;
  }
  throw std::logic_error("key_string: no kind");
}

void clear_output_only(v1::Object& object) {
  if (object.has_port()) object.mutable_port()->clear_mac();
  if (object.has_neighbour()) object.mutable_neighbour()->clear_learned();
}

void apply_set_words(v1::Object& object, Args& args) {
  switch (object.kind_case()) {
    case Case::kPort: set_port(*object.mutable_port(), args); break;
    case Case::kTenant: set_tenant(*object.mutable_tenant(), args); break;
    case Case::kInterface: set_interface(*object.mutable_interface(), args); break;
    case Case::kRoute: set_route(*object.mutable_route(), args); break;
    case Case::kNeighbour:
      object.mutable_neighbour()->set_mac(args.next("a MAC address"));
      args.expect_done();
      break;
    default:
      throw UsageError(
          "set " + kind_of(object).singular +
          ": not supported; set takes port, tenant, interface, route, neighbour (apply a file for the rest)");
  }
}

}  // namespace medix::ctl
