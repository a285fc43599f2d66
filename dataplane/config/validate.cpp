#include "config/validate.h"

#include <map>
#include <set>
#include <string>
#include <tuple>

#include "config/text.h"
#include "infra/limits.h"

namespace medix::config {
namespace {

std::string at(const char* list, int i, const char* field) {
  return std::string(list) + "[" + std::to_string(i) + "]." + field;
}

struct Checker {
  std::optional<ConfigError> error;

  bool fail(std::string path, std::string reason) {
    if (!error) error = ConfigError{std::move(path), std::move(reason)};
    return false;
  }
  bool name(const std::string& path, const std::string& value, std::set<std::string>& seen) {
    if (value.empty()) return fail(path, "is required");
    if (value.size() > 63) return fail(path, "is longer than 63 characters");
    if (!seen.insert(value).second) return fail(path, "\"" + value + "\" is used twice");
    return true;
  }
  bool ref(const std::string& path, const std::string& value, const std::set<std::string>& known, const char* kind) {
    if (value.empty()) return fail(path, "is required");
    if (!known.count(value)) return fail(path, std::string("no ") + kind + " named \"" + value + "\"");
    return true;
  }
  bool range(const std::string& path, uint64_t value, uint64_t lo, uint64_t hi) {
    if (value < lo || value > hi)
      return fail(path, std::to_string(value) + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
    return true;
  }
};

}  // namespace

std::optional<ConfigError> validate(const Config& config) {
  Checker c;
  if (config.schema_version() != 1)
    c.fail("schema_version", std::to_string(config.schema_version()) + " is not supported (expected 1)");

  std::set<std::string> ports, devices, tenants, interfaces;
  std::map<std::string, uint32_t> port_mtu;
  std::map<std::string, std::string> tenant_of_interface;

  if (config.ports_size() > int(max_ports)) c.fail("ports", "more than " + std::to_string(max_ports));
  for (int i = 0; i < config.ports_size(); i++) {
    const auto& p = config.ports(i);
    c.name(at("ports", i, "name"), p.name(), ports);
    c.name(at("ports", i, "device"), p.device(), devices);
    if (p.mtu()) c.range(at("ports", i, "mtu"), p.mtu(), 68, 9600);
    port_mtu[p.name()] = p.mtu() ? p.mtu() : 1500;
  }

  if (config.tenants_size() > int(max_tenants)) c.fail("tenants", "more than " + std::to_string(max_tenants));
  for (int i = 0; i < config.tenants_size(); i++) {
    const auto& t = config.tenants(i);
    c.name(at("tenants", i, "name"), t.name(), tenants);
    c.range(at("tenants", i, "max_routes"), t.max_routes(), 0, 1u << 24);
  }

  if (config.interfaces_size() > int(max_interfaces))
    c.fail("interfaces", "more than " + std::to_string(max_interfaces));
  std::set<std::tuple<std::string, uint32_t, uint32_t>> attachments;
  std::set<std::pair<std::string, uint32_t>> tenant_addresses;
  for (int i = 0; i < config.interfaces_size(); i++) {
    const auto& f = config.interfaces(i);
    c.name(at("interfaces", i, "name"), f.name(), interfaces);
    c.ref(at("interfaces", i, "tenant"), f.tenant(), tenants, "tenant");
    c.ref(at("interfaces", i, "port"), f.port(), ports, "port");
    c.range(at("interfaces", i, "vlan"), f.vlan(), 0, 4094);
    c.range(at("interfaces", i, "inner_vlan"), f.inner_vlan(), 0, 4094);
    if (f.inner_vlan() && !f.vlan()) c.fail(at("interfaces", i, "inner_vlan"), "needs an outer vlan (QinQ)");
    if (!attachments.emplace(f.port(), f.vlan(), f.inner_vlan()).second)
      c.fail(at("interfaces", i, "vlan"), "port \"" + f.port() + "\" already has an interface with these VLAN tags");
    if (f.mtu()) {
      c.range(at("interfaces", i, "mtu"), f.mtu(), 68, 9600);
      if (port_mtu.count(f.port()) && f.mtu() > port_mtu[f.port()])
        c.fail(at("interfaces", i, "mtu"), "is larger than the port's MTU " + std::to_string(port_mtu[f.port()]));
    }
    if (!f.mac().empty()) {
      auto mac = parse_mac(f.mac());
      if (!mac)
        c.fail(at("interfaces", i, "mac"), "\"" + f.mac() + "\" is not a MAC address like 02:00:00:00:00:01");
      else if ((*mac >> 40) & 1)
        c.fail(at("interfaces", i, "mac"), "is a multicast MAC");
    }
    if (f.addresses_size() > int(max_addresses_per_interface))
      c.fail(at("interfaces", i, "addresses"), "more than " + std::to_string(max_addresses_per_interface));
    for (int a = 0; a < f.addresses_size(); a++) {
      std::string path = at("interfaces", i, "addresses") + "[" + std::to_string(a) + "]";
      auto p = parse_prefix(f.addresses(a));
      if (!p) {
        c.fail(path, "\"" + f.addresses(a) + "\" is not an address with prefix length like 10.0.0.1/24");
        continue;
      }
      if (p->length == 0) c.fail(path, "prefix length 0 is not an interface address");
      if (!tenant_addresses.emplace(f.tenant(), p->address).second)
        c.fail(path, "address " + format_ipv4(p->address) + " is used twice in tenant \"" + f.tenant() + "\"");
    }
    tenant_of_interface[f.name()] = f.tenant();
  }

  std::set<std::tuple<std::string, uint32_t, uint8_t>> prefixes;
  for (int i = 0; i < config.routes_size(); i++) {
    const auto& r = config.routes(i);
    c.ref(at("routes", i, "tenant"), r.tenant(), tenants, "tenant");
    auto p = parse_prefix(r.prefix());
    if (!p) {
      c.fail(at("routes", i, "prefix"), "\"" + r.prefix() + "\" is not a prefix like 10.1.0.0/16");
    } else {
      uint32_t mask = p->length == 0 ? 0 : ~uint32_t(0) << (32 - p->length);
      if (p->address & ~mask)
        c.fail(at("routes", i, "prefix"), "\"" + r.prefix() + "\" has host bits set (did you mean " +
                                              format_ipv4(p->address & mask) + "/" + std::to_string(p->length) + "?)");
      if (!prefixes.emplace(r.tenant(), p->address, p->length).second)
        c.fail(at("routes", i, "prefix"), "tenant \"" + r.tenant() + "\" already has a route for " + r.prefix());
    }
    switch (r.target_case()) {
      case medix::dataplane::v1::Route::kVia:
        if (c.ref(at("routes", i, "via.interface"), r.via().interface(), interfaces, "interface") &&
            tenant_of_interface[r.via().interface()] != r.tenant())
          c.fail(at("routes", i, "via.interface"), "interface \"" + r.via().interface() + "\" is in tenant \"" +
                                                       tenant_of_interface[r.via().interface()] + "\", not \"" +
                                                       r.tenant() + "\" (use next_tenant to leak)");
        if (!r.via().address().empty() && !parse_ipv4(r.via().address()))
          c.fail(at("routes", i, "via.address"), "\"" + r.via().address() + "\" is not an IPv4 address");
        break;
      case medix::dataplane::v1::Route::kNextTenant:
        if (c.ref(at("routes", i, "next_tenant"), r.next_tenant(), tenants, "tenant") && r.next_tenant() == r.tenant())
          c.fail(at("routes", i, "next_tenant"), "is the route's own tenant");
        break;
      case medix::dataplane::v1::Route::kLocal:
      case medix::dataplane::v1::Route::kBlackhole:
        break;
      default:
        c.fail(at("routes", i, "target"), "is required: one of via, next_tenant, local, blackhole");
    }
  }

  std::set<std::pair<std::string, uint32_t>> neighbours;
  for (int i = 0; i < config.neighbours_size(); i++) {
    const auto& n = config.neighbours(i);
    c.ref(at("neighbours", i, "interface"), n.interface(), interfaces, "interface");
    auto address = parse_ipv4(n.address());
    if (!address)
      c.fail(at("neighbours", i, "address"), "\"" + n.address() + "\" is not an IPv4 address");
    else if (!neighbours.emplace(n.interface(), *address).second)
      c.fail(at("neighbours", i, "address"), "is listed twice on interface \"" + n.interface() + "\"");
    auto mac = parse_mac(n.mac());
    if (!mac)
      c.fail(at("neighbours", i, "mac"), "\"" + n.mac() + "\" is not a MAC address like 02:00:00:00:00:01");
    else if ((*mac >> 40) & 1)
      c.fail(at("neighbours", i, "mac"), "is a multicast MAC");
  }

  const auto& s = config.settings();
  c.range("settings.icmp_rate_per_second", s.icmp_rate_per_second(), 0, 1000000);
  c.range("settings.icmp_burst", s.icmp_burst(), 0, 10000);
  c.range("settings.arp_pending_limit", s.arp_pending_limit(), 0, max_pending);
  c.range("settings.arp_timeout_ms", s.arp_timeout_ms(), 0, 60000);
  return c.error;
}

}  // namespace medix::config
