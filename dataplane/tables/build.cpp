#include "tables/build.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_jhash.h>

#include <map>
#include <string>

#include "config/text.h"

namespace v1 = medix::dataplane::v1;

Settings settings_from(const v1::Settings& s) {
  Settings out;
  if (s.icmp_rate_per_second()) out.icmp_rate_per_second = s.icmp_rate_per_second();
  if (s.icmp_burst()) out.icmp_burst = s.icmp_burst();
  if (s.arp_pending_limit()) out.arp_pending_limit = s.arp_pending_limit();
  if (s.arp_timeout_ms()) out.arp_timeout_ms = s.arp_timeout_ms();
  return out;
}

namespace {

std::string at(const char* list, int i) { return std::string(list) + "[" + std::to_string(i) + "]"; }

rte_ether_addr mac_from(uint64_t mac) {
  rte_ether_addr out;
  for (unsigned i = 0; i < RTE_ETHER_ADDR_LEN; i++) out.addr_bytes[i] = uint8_t(mac >> (8 * (5 - i)));
  return out;
}

// Interns next hops so that a million routes through one gateway share one entry.
struct NexthopInterner {
  std::vector<Nexthop>& table;
  std::map<std::tuple<int, uint16_t, uint16_t, uint32_t>, uint16_t> index;
  std::optional<uint16_t> get(const Nexthop& nh) {
    auto key = std::make_tuple(int(nh.kind), nh.interface, nh.tenant, nh.gateway);
    if (auto it = index.find(key); it != index.end()) return it->second;
    if (table.size() >= max_nexthops) return std::nullopt;
    table.push_back(nh);
    return index[key] = uint16_t(table.size() - 1);
  }
};

}  // namespace

std::variant<std::unique_ptr<Tables>, ConfigError> build_tables(const v1::Config& config, unsigned socket) {
  auto tables = std::make_unique<Tables>();
  std::map<std::string, uint16_t> port_index, tenant_index, interface_index;

  tables->port_by_ethdev.assign(RTE_MAX_ETHPORTS, UINT16_MAX);
  for (int i = 0; i < config.ports_size(); i++) {
    const auto& p = config.ports(i);
    PortEntry port;
    if (rte_eth_dev_get_port_by_name(p.device().c_str(), &port.port_id) != 0)
      return ConfigError{at("ports", i) + ".device",
                         "no DPDK port named \"" + p.device() + "\" (give it to EAL with -a or --vdev)"};
    port.name = p.name();
    port.device = p.device();
    port.mtu = uint16_t(p.mtu() ? p.mtu() : 1500);
    port.promiscuous = p.promiscuous();
    rte_eth_macaddr_get(port.port_id, &port.mac);
    port_index[p.name()] = uint16_t(tables->ports.size());
    tables->port_by_ethdev[port.port_id] = uint16_t(tables->ports.size());
    tables->ports.push_back(std::move(port));
  }

  for (int i = 0; i < config.tenants_size(); i++) {
    const auto& t = config.tenants(i);
    uint32_t max_routes = t.max_routes() ? t.max_routes() : 65536;
    rte_fib_conf conf{};
    conf.type = RTE_FIB_DIR24_8;
    conf.default_nh = 0;  // next hop 0: no route
    conf.max_routes = int(max_routes + max_interfaces * max_addresses_per_interface * 2);
    conf.dir24_8.nh_sz = RTE_FIB_DIR24_8_2B;
    conf.dir24_8.num_tbl8 = std::min<uint32_t>(32767, std::max<uint32_t>(1024, max_routes / 8));
    std::string name = "fib" + std::to_string(i);
    TenantEntry entry;
    entry.name = t.name();
    entry.fib = rte_fib_create(name.c_str(), int(socket), &conf);
    if (!entry.fib)
      return ConfigError{at("tenants", i), "cannot allocate its FIB for " + std::to_string(max_routes) + " routes: " +
                                               rte_strerror(rte_errno) + " (give EAL more memory with -m)"};
    tenant_index[t.name()] = uint16_t(tables->tenants.size());
    tables->tenants.push_back(std::move(entry));
  }

  rte_hash_parameters hp{};
  hp.name = "interface_index";
  hp.entries = max_interfaces * 2;
  hp.key_len = sizeof(InterfaceKey);
  hp.hash_func = rte_jhash;
  hp.socket_id = int(socket);
  tables->interface_index = rte_hash_create(&hp);
  if (!tables->interface_index) return ConfigError{"interfaces", "cannot allocate the interface index"};
  if (!tables->neighbours.init("neighbours", socket)) return ConfigError{"neighbours", "cannot allocate the table"};

  for (int i = 0; i < config.interfaces_size(); i++) {
    const auto& f = config.interfaces(i);
    InterfaceEntry entry;
    entry.name = f.name();
    entry.port = port_index.at(f.port());
    entry.tenant = tenant_index.at(f.tenant());
    entry.outer_vlan = uint16_t(f.vlan());
    entry.inner_vlan = uint16_t(f.inner_vlan());
    entry.mtu = uint16_t(f.mtu() ? f.mtu() : tables->ports[entry.port].mtu);
    entry.mac = f.mac().empty() ? tables->ports[entry.port].mac : mac_from(*parse_mac(f.mac()));
    for (const auto& a : f.addresses()) {
      auto p = *parse_prefix(a);
      entry.subnets[entry.subnet_count++] = Subnet{p.address, p.length};
    }
    uint16_t id = uint16_t(tables->interfaces.size());
    InterfaceKey key{entry.port, entry.outer_vlan, entry.inner_vlan, 0};
    if (rte_hash_add_key_data(tables->interface_index, &key, reinterpret_cast<void*>(uintptr_t(id))) != 0)
      return ConfigError{at("interfaces", i), "cannot index the interface"};
    interface_index[f.name()] = id;
    tables->interfaces.push_back(std::move(entry));
  }

  // Routes: connected and local ones from interface addresses first, so that an explicit
  // route for the same prefix replaces them.
  tables->nexthops.push_back(Nexthop{});  // 0: no route
  NexthopInterner nexthops{tables->nexthops, {}};
  auto add_route = [&](uint16_t tenant, uint32_t prefix, uint8_t length, const Nexthop& nh,
                       const std::string& path) -> std::optional<ConfigError> {
    auto id = nexthops.get(nh);
    if (!id) return ConfigError{path, "more than " + std::to_string(max_nexthops) + " distinct next hops"};
    int rc = rte_fib_add(tables->tenants[tenant].fib, prefix, length, *id);
    if (rc != 0)
      return ConfigError{
          path, std::string("cannot add the route: ") + rte_strerror(-rc) + " (raise the tenant's max_routes)"};
    return std::nullopt;
  };
  for (uint16_t id = 0; id < tables->interfaces.size(); id++) {
    const auto& f = tables->interfaces[id];
    for (unsigned s = 0; s < f.subnet_count; s++) {
      const auto& subnet = f.subnets[s];
      uint32_t mask = ~uint32_t(0) << (32 - subnet.length);
      std::string path = "interfaces[" + std::to_string(id) + "].addresses[" + std::to_string(s) + "]";
      if (auto e = add_route(f.tenant, subnet.address & mask, subnet.length, Nexthop{NexthopKind::via, id, 0, 0}, path))
        return *e;
      if (auto e = add_route(f.tenant, subnet.address, 32, Nexthop{NexthopKind::local, id, 0, 0}, path)) return *e;
    }
  }
  for (int i = 0; i < config.routes_size(); i++) {
    const auto& r = config.routes(i);
    auto prefix = *parse_prefix(r.prefix());
    Nexthop nh;
    switch (r.target_case()) {
      case v1::Route::kVia:
        nh.kind = NexthopKind::via;
        nh.interface = interface_index.at(r.via().interface());
        nh.gateway = r.via().address().empty() ? 0 : *parse_ipv4(r.via().address());
        break;
      case v1::Route::kNextTenant:
        nh.kind = NexthopKind::leak;
        nh.tenant = tenant_index.at(r.next_tenant());
        break;
      case v1::Route::kLocal:
        nh.kind = NexthopKind::local;
        break;
      default:
        nh.kind = r.blackhole().unreachable() ? NexthopKind::unreachable : NexthopKind::blackhole;
    }
    if (auto e = add_route(tenant_index.at(r.tenant()), prefix.address, prefix.length, nh, at("routes", i))) return *e;
  }

  for (int i = 0; i < config.neighbours_size(); i++) {
    const auto& n = config.neighbours(i);
    if (!tables->neighbours.set(interface_index.at(n.interface()), *parse_ipv4(n.address()),
                                mac_from(*parse_mac(n.mac())), true))
      return ConfigError{at("neighbours", i), "the neighbour table is full"};
  }
  return tables;
}
