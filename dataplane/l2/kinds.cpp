#include "l2/kinds.h"

#include <rte_ether.h>

#include <set>

#include "control/check.h"
#include "control/commit.h"
#include "l2/commit.h"

namespace medix::dp {
namespace {

// --- Port -----------------------------------------------------------------------------------

std::optional<v1::Object> find_port(const Intent& in, const Intent::Key& k) {
  return find_in(in.ports, k.name, [](v1::Object& x, const v1::Port& v) { *x.mutable_port() = v; });
}

// The MAC the port has (output only), from the tables.
std::string port_mac(const Committer& c, const std::string& name) {
  for (const auto& p : c.current()->ports)
    if (p.live && p.name == name) {
      char text[RTE_ETHER_ADDR_FMT_SIZE];
      rte_ether_format_addr(text, sizeof text, &p.mac);
      return text;
    }
  return "";
}

std::optional<Error> check_port(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& p = o.port();
  if (auto e = name(path + ".device", p.device())) return e;
  for (const auto& [other, q] : in.ports)
    if (q.device() == p.device() && other != p.name())
      return invalid(path + ".device", "device " + quoted(p.device()) + " is already port " + quoted(other));
  if (in.device_exists && !in.device_exists(p.device()))
    return invalid(path + ".device",
                   "no DPDK port named " + quoted(p.device()) + " (give it to EAL with -a or --vdev)");
  if (p.mtu())
    if (auto e = range(path + ".mtu", p.mtu(), 68, 9600)) return e;
  if (in.ports.size() >= max_ports)
    return Error{Code::resource_exhausted, path + ": more than " + std::to_string(max_ports) + " ports"};
  return std::nullopt;
}

std::optional<Error> list_ports(const Intent& in, const Committer& c, const v1::ListRequest& request, uint32_t page,
                                v1::ListResponse& out) {
  std::string last;
  for (auto it = in.ports.upper_bound(request.page_token());
       it != in.ports.end() && uint32_t(out.objects_size()) < page; ++it) {
    auto* p = out.add_objects()->mutable_port();
    *p = it->second;
    p->set_mac(port_mac(c, it->first));
    last = it->first;
  }
  if (!last.empty() && in.ports.upper_bound(last) != in.ports.end()) out.set_next_page_token(last);
  return std::nullopt;
}

// --- Interface ------------------------------------------------------------------------------

std::optional<v1::Object> find_interface(const Intent& in, const Intent::Key& k) {
  return find_in(in.interfaces, k.name, [](v1::Object& x, const v1::Interface& v) { *x.mutable_interface() = v; });
}

// An interface address's entry in Intent::tenant_subnets.
std::tuple<std::string, uint32_t, uint8_t, std::string> subnet_entry(const v1::Interface& f, const std::string& a) {
  auto p = *parse_prefix(a);
  return {f.tenant(), p.address & mask_of(p.length), p.length, f.name()};
}

void put_interface(Intent& in, const v1::Object& o) {
  const auto& f = o.interface();
  in.interfaces[f.name()] = f;
  in.attachments[{f.port(), f.vlan(), f.inner_vlan()}] = f.name();
  for (const auto& a : f.addresses()) {
    in.tenant_addresses[{f.tenant(), parse_prefix(a)->address}] = f.name();
    in.tenant_subnets.insert(subnet_entry(f, a));
  }
  count(in.port_users, f.port(), 1);
  count(in.tenant_users, f.tenant(), 1);
}

void erase_interface(Intent& in, const v1::Object& o) {
  const auto& f = o.interface();
  in.interfaces.erase(f.name());
  in.attachments.erase({f.port(), f.vlan(), f.inner_vlan()});
  for (const auto& a : f.addresses()) {
    in.tenant_addresses.erase({f.tenant(), parse_prefix(a)->address});
    in.tenant_subnets.erase(subnet_entry(f, a));
  }
  count(in.port_users, f.port(), -1);
  count(in.tenant_users, f.tenant(), -1);
}

// A subnet of another interface of the tenant that overlaps `p` (contains it or lies in it).
// Two steps instead of a scan of the tenant: the subnets containing p have p's network at
// one of p.length + 1 lengths; those inside p sort right after p's network.
std::optional<std::tuple<std::string, uint32_t, uint8_t, std::string>> overlapping_subnet(const Intent& in,
                                                                                          const v1::Interface& f,
                                                                                          const Prefix& p) {
  const auto& subnets = in.tenant_subnets;
  auto other = [&](auto it) { return it != subnets.end() && std::get<3>(*it) != f.name(); };
  for (unsigned length = 0; length <= p.length; length++) {
    uint32_t net = p.address & mask_of(uint8_t(length));
    for (auto it = subnets.lower_bound({f.tenant(), net, uint8_t(length), ""});
         it != subnets.end() && std::get<0>(*it) == f.tenant() && std::get<1>(*it) == net && std::get<2>(*it) == length;
         ++it)
      if (other(it)) return *it;
  }
  uint32_t first = p.address & mask_of(p.length), last = first | ~mask_of(p.length);
  for (auto it = subnets.lower_bound({f.tenant(), first, 0, ""});
       it != subnets.end() && std::get<0>(*it) == f.tenant() && std::get<1>(*it) <= last; ++it) {
    if (other(it)) return *it;
    if (std::get<1>(*it) == last) break;  // no wrap past 255.255.255.255
  }
  return std::nullopt;
}

std::optional<Error> check_interface(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& f = o.interface();
  if (in.tunnels.count(f.name())) return invalid(path + ".name", "a tunnel is named " + quoted(f.name()));
  if (f.tenant().empty()) return invalid(path + ".tenant", "is required");
  if (!in.tenants.count(f.tenant())) return invalid(path + ".tenant", "no tenant named " + quoted(f.tenant()));
  if (f.port().empty()) return invalid(path + ".port", "is required");
  auto port = in.ports.find(f.port());
  if (port == in.ports.end()) return invalid(path + ".port", "no port named " + quoted(f.port()));
  if (auto e = range(path + ".vlan", f.vlan(), 0, 4094)) return e;
  if (auto e = range(path + ".inner_vlan", f.inner_vlan(), 0, 4094)) return e;
  if (f.inner_vlan() && !f.vlan()) return invalid(path + ".inner_vlan", "needs an outer vlan (QinQ)");
  if (auto it = in.attachments.find({f.port(), f.vlan(), f.inner_vlan()}); it != in.attachments.end())
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
    auto it = in.tenant_addresses.find({f.tenant(), p->address});
    if (it != in.tenant_addresses.end() || !seen.insert(p->address).second)
      return invalid(apath, "address " + format_ipv4(p->address) + " is already used in tenant " + quoted(f.tenant()) +
                                (it != in.tenant_addresses.end() ? " by " + quoted(it->second) : ""));
    if (auto other = overlapping_subnet(in, f, *p))
      return invalid(apath, cidr(p->address, p->length) + " overlaps " +
                                cidr(std::get<1>(*other), std::get<2>(*other)) + " of interface " +
                                quoted(std::get<3>(*other)) + " in tenant " + quoted(f.tenant()) +
                                " (one tenant's interfaces may not share a subnet: which one would a "
                                "packet to it leave by?)");
  }
  if (in.interfaces.size() >= max_interfaces)
    return Error{Code::resource_exhausted, path + ": more than " + std::to_string(max_interfaces) + " interfaces"};
  return std::nullopt;
}

// Routes through the interface keep a next hop on one of its subnets, whatever the
// transaction changed (its addresses may change in the same transaction as the routes).
std::optional<Error> check_next_hops(const Intent& in, const v1::Object& o, const std::string& path) {
  const auto& f = o.interface();
  for (auto it = in.next_hops.lower_bound({f.name(), 0}); it != in.next_hops.end() && it->first.first == f.name(); ++it)
    if (it->second && !on_subnet(f, it->first.second))
      return invalid(path + ".addresses", std::to_string(it->second) +
                                              " route(s) through the interface have next hop " +
                                              format_ipv4(it->first.second) + ", which is on none of its subnets (" +
                                              subnets_of(f) + "): change them in the same transaction");
  return std::nullopt;
}

std::optional<Error> list_interfaces(const Intent& in, const Committer&, const v1::ListRequest& request, uint32_t page,
                                     v1::ListResponse& out) {
  const std::string& tenant = request.tenant();
  std::string last;
  auto it = in.interfaces.upper_bound(request.page_token());
  for (; it != in.interfaces.end() && uint32_t(out.objects_size()) < page; ++it) {
    if (!tenant.empty() && it->second.tenant() != tenant) continue;
    *out.add_objects()->mutable_interface() = it->second;
    last = it->first;
  }
  if (uint32_t(out.objects_size()) >= page && it != in.interfaces.end()) out.set_next_page_token(last);
  return std::nullopt;
}

// The workers' counters of ports and interfaces (Counters::Port, ::Interface), since the slot
// was taken or the counters cleared.
const CounterColumn port_columns[] = {
    {"rx_packets", "Frames the workers received from the port."},
    {"rx_bytes", "Bytes the workers received from the port."},
    {"tx_packets", "Frames the port's tx queues accepted."},
    {"tx_bytes", "Bytes the port's tx queues accepted."},
    {"tx_dropped", "Frames the port's tx queues refused."},
};

const char* const port_others[] = {"nic"};  // set by the API from the runtime's read (runtime/nic.h)

const KindCounters port_counters = {
    .list = "ports",
    .columns = port_columns,
    .read =
        [](const CounterSource& s, std::vector<CounterRow>& rows) {
          for (size_t i = 0; i < s.tables.ports.size(); i++) {
            if (!s.tables.ports[i].live) continue;
            const Counters::Port& p = s.since->ports[i];
            rows.push_back(
                {s.tables.ports[i].name, {p.rx_packets, p.rx_bytes, p.tx_packets, p.tx_bytes, p.tx_dropped}});
          }
        },
    .clear = KindCounters::Clear::in_source,
    .others = port_others,
};

// An interface's rows carry its tenant (a label); tunnels are the tunnel kind's.
const CounterColumn interface_columns[] = {
    {"rx_packets", "Frames classified to the interface."},
    {"rx_bytes", "Bytes classified to the interface."},
    {"tx_packets", "Frames sent out of the interface."},
    {"tx_bytes", "Bytes sent out of the interface."},
};

const KindCounters interface_counters = {
    .list = "interfaces",
    .columns = interface_columns,
    .read =
        [](const CounterSource& s, std::vector<CounterRow>& rows) {
          const Tables& t = s.tables;
          for (size_t i = 0; i < t.interfaces.size(); i++) {
            if (!t.interfaces[i].uid || t.interfaces[i].tunnel) continue;
            const Counters::Interface& f = s.since->interfaces[i];
            uint16_t tenant = t.interfaces[i].tenant;
            rows.push_back({t.interfaces[i].name,
                            {f.rx_packets, f.rx_bytes, f.tx_packets, f.tx_bytes},
                            {},
                            nullptr,
                            {{"tenant", tenant < t.tenants.size() ? t.tenants[tenant].name : ""}}});
          }
        },
    .clear = KindCounters::Clear::in_source,
};

}  // namespace

bool on_subnet(const v1::Interface& f, uint32_t address) {
  for (const auto& a : f.addresses()) {
    auto p = parse_prefix(a);
    if (p && overlap(p->address, p->length, address, 32)) return true;
  }
  return false;
}

std::string subnets_of(const v1::Interface& f) {
  std::string out;
  for (const auto& a : f.addresses()) out += (out.empty() ? "" : ", ") + a;
  return out.empty() ? "no address" : out;
}

const Kind port_kind = {
    .object = v1::Object::kPort,
    .list_kind = v1::PORT,
    .name = "port",
    .plural = "ports",
    .config_size = [](const v1::Config& c) { return c.ports_size(); },
    .take = [](v1::Config& c, int i, v1::Object& o) { *o.mutable_port() = std::move(*c.mutable_ports(i)); },
    .clear_output = [](v1::Object& o) { o.mutable_port()->clear_mac(); },
    .check_key = [](const v1::Object& o, const std::string& path) { return name(path + ".name", o.port().name()); },
    .key =
        [](const v1::Object& o) {
          return Intent::Key{v1::Object::kPort, o.port().name()};
        },
    .find = find_port,
    .put = [](Intent& in, const v1::Object& o) { in.ports[o.port().name()] = o.port(); },
    .erase = [](Intent& in, const v1::Object& o) { in.ports.erase(o.port().name()); },
    .validate = check_port,
    .check_update = [](const Intent&, const v1::Object& existing, const v1::Object& o,
                       const std::string& path) -> std::optional<Error> {
      if (o.port().device() != existing.port().device())
        return invalid(path + ".device", "cannot change (delete the port and create it again)");
      return std::nullopt;
    },
    .check_delete =
        [](const Intent& in, const v1::Object& o, const std::string& path) {
          return in_use(path, "port", o.port().name(), users(in.port_users, o.port().name()));
        },
    .check_final = nullptr,
    .error_name = [](const v1::Object& o) { return o.port().name(); },
    .build = {{Phase::slots, l2::build_ports}},
    .reclaim = l2::reclaim_ports,
    .diff = nullptr,
    .get = [](const Intent& in, const Committer& c, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      if (auto it = in.ports.find(key.port().name()); it != in.ports.end()) {
        *out.mutable_port() = it->second;
        out.mutable_port()->set_mac(port_mac(c, it->first));
      }
      return std::nullopt;
    },
    .list = list_ports,
    .counters = &port_counters,
};

const Kind interface_kind = {
    .object = v1::Object::kInterface,
    .list_kind = v1::INTERFACE,
    .name = "interface",
    .plural = "interfaces",
    .config_size = [](const v1::Config& c) { return c.interfaces_size(); },
    .take = [](v1::Config& c, int i, v1::Object& o) { *o.mutable_interface() = std::move(*c.mutable_interfaces(i)); },
    .clear_output = nullptr,
    .check_key = [](const v1::Object& o,
                    const std::string& path) { return name(path + ".name", o.interface().name()); },
    .key =
        [](const v1::Object& o) {
          return Intent::Key{v1::Object::kInterface, o.interface().name()};
        },
    .find = find_interface,
    .put = put_interface,
    .erase = erase_interface,
    .validate = check_interface,
    .check_update = [](const Intent& in, const v1::Object& existing, const v1::Object& o,
                       const std::string& path) -> std::optional<Error> {
      if (o.interface().tenant() != existing.interface().tenant() && users(in.interface_users, o.interface().name()))
        return Error{Code::failed_precondition,
                     path + ".tenant: cannot change while routes or neighbours use the interface"};
      return std::nullopt;
    },
    .check_delete =
        [](const Intent& in, const v1::Object& o, const std::string& path) {
          return in_use(path, "interface", o.interface().name(), users(in.interface_users, o.interface().name()));
        },
    .check_final = check_next_hops,
    .error_name = [](const v1::Object& o) { return o.interface().name(); },
    .build = {{Phase::attachments, l2::build_interfaces}, {Phase::indexes, l2::build_interface_index}},
    .reclaim = l2::reclaim_interfaces,  // tunnels' slots too: they share them
    .diff = nullptr,
    .get = [](const Intent& in, const Committer&, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      if (auto it = in.interfaces.find(key.interface().name()); it != in.interfaces.end())
        *out.mutable_interface() = it->second;
      return std::nullopt;
    },
    .list = list_interfaces,
    .counters = &interface_counters,
};

}  // namespace medix::dp
