#include <rte_ethdev.h>
#include <rte_jhash.h>

#include "control/build.h"

namespace medix::dp {

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
      auto& list = c.tenants_[t].automatic[prefix];
      if (add) {
        list.push_back(entry);
        std::stable_sort(list.begin(), list.end(), [](auto& x, auto& y) { return x.first < y.first; });
      } else {
        auto it = std::find(list.begin(), list.end(), entry);
        if (it != list.end()) list.erase(it);
        if (list.empty()) c.tenants_[t].automatic.erase(prefix);
      }
      affected.insert({t, prefix.first, prefix.second});
    }
  }
}

// Ports: new ones are set up and started before anything can use them.
std::optional<Error> Committer::build_ports(Build& b) {
  for (const auto& [key, change] : b.diff.of(v1::Object::kPort)) {
    const std::string& name = key.name;
    if (!change.after) {
      uint16_t slot = port_slot_.at(name);
      b.next->ports[slot].live = false;
      b.dead_ports.push_back(slot);
      continue;
    }
    const v1::Port& p = change.after->port();
    if (!change.before) {
      uint16_t port_id;
      if (rte_eth_dev_get_port_by_name(p.device().c_str(), &port_id) != 0)
        return b.fail(Code::invalid_argument, "port " + name + ": no DPDK port named \"" + p.device() + "\"",
                      v1::Object::KindCase::kPort, name);
      auto slot = Build::take(free_ports_, ports_, max_ports);
      if (!slot)
        return b.fail(Code::resource_exhausted, "port " + name + ": no free port slot", v1::Object::KindCase::kPort,
                      name);
      if (auto e = setup_port(port_id, p)) {
        rte_eth_dev_stop(port_id);
        free_ports_.push_back(*slot);
        return b.fail(Code::failed_precondition, "port \"" + name + "\" (" + p.device() + "): " + *e,
                      v1::Object::KindCase::kPort, name);
      }
      ports_[*slot] = PortSlot{name, port_id, true};
      b.undo.push_back([this, slot = *slot, port_id] {
        rte_eth_dev_stop(port_id);
        ports_[slot] = PortSlot{};
        free_ports_.push_back(slot);
      });
      if (b.next->ports.size() <= *slot) b.next->ports.resize(*slot + 1);
      PortEntry& e = b.next->ports[*slot];
      e = PortEntry{};
      e.port_id = port_id;
      rte_eth_macaddr_get(port_id, &e.mac);
      b.new_port_slots.push_back(*slot);
      b.need_totals = true;
    }
    uint16_t slot = change.before ? port_slot_.at(name) : b.new_port_slots.back();
    PortEntry& e = b.next->ports[slot];
    if (change.before) {
      const v1::Port& was = change.before->port();
      if (was.mtu() != p.mtu()) {
        uint16_t mtu = uint16_t(p.mtu() ? p.mtu() : 1500);
        if (int rc = rte_eth_dev_set_mtu(e.port_id, mtu); rc != 0 && rc != -ENOTSUP)
          return b.fail(Code::failed_precondition,
                        "port \"" + name + "\": cannot set MTU " + std::to_string(mtu) + ": " + rte_strerror(-rc),
                        v1::Object::KindCase::kPort, name);
        uint16_t old_mtu = uint16_t(was.mtu() ? was.mtu() : 1500);
        b.undo.push_back([id = e.port_id, old_mtu] { rte_eth_dev_set_mtu(id, old_mtu); });
      }
      if (was.promiscuous() != p.promiscuous())
        p.promiscuous() ? rte_eth_promiscuous_enable(e.port_id) : rte_eth_promiscuous_disable(e.port_id);
      if (was.admin_down() != p.admin_down())
        p.admin_down() ? rte_eth_dev_set_link_down(e.port_id) : rte_eth_dev_set_link_up(e.port_id);
    }
    e.name = name;
    e.mtu = uint16_t(p.mtu() ? p.mtu() : 1500);
    e.live = true;
    e.admin_down = p.admin_down();
  }
  return std::nullopt;
}

// Interfaces: their entries in the next generation.
std::optional<Error> Committer::build_interfaces(Build& b) {
  for (const auto& [key, change] : b.diff.of(v1::Object::kInterface)) {
    const std::string& name = key.name;
    uint16_t slot = 0;  // a change has a before, an after or both
    if (change.before) {
      slot = interface_slot_.at(name);
      b.removed_contributions.push_back({&change.before->interface(), slot});
    }
    if (!change.after) {
      b.next->interfaces[slot] = InterfaceEntry{};
      b.dead_interfaces.push_back(slot);
      continue;
    }
    InterfaceEntry* entry = b.claim_interface(name, change.before.has_value());
    if (!entry)
      return b.fail(Code::resource_exhausted, "interface " + name + ": no free interface slot",
                    v1::Object::KindCase::kInterface, name);
    slot = b.interface_of.at(name);
    const v1::Interface& f = change.after->interface();
    InterfaceEntry& e = *entry;
    e.port = port_slot_.count(f.port()) ? port_slot_.at(f.port()) : 0;
    for (uint16_t s : b.new_port_slots)
      if (ports_[s].name == f.port()) e.port = s;
    e.tenant = b.tenant_of(f.tenant());
    e.outer_vlan = uint16_t(f.vlan());
    e.inner_vlan = uint16_t(f.inner_vlan());
    e.mtu = uint16_t(f.mtu() ? f.mtu() : b.next->ports[e.port].mtu);
    e.mac = f.mac().empty() ? b.next->ports[e.port].mac : mac_from(*parse_mac(f.mac()));
    for (const auto& a : f.addresses()) {
      auto p = *parse_prefix(a);
      e.subnets[e.subnet_count++] = Subnet{p.address, p.length};
    }
    b.added_contributions.push_back({&f, slot});
  }
  return std::nullopt;
}

// The interface index, rebuilt when interfaces come, go or move.
std::optional<Error> Committer::build_interface_index(Build& b) {
  if (!b.diff.of(v1::Object::kInterface).empty()) {
    std::string name = "ifindex" + std::to_string(index_serial_++);
    rte_hash_parameters hp = hash_parameters(interface_index_shape, name.c_str(), rte_jhash, params_.socket);
    rte_hash* index = rte_hash_create(&hp);
    if (!index) {
      for (size_t j = b.ops.size(); j-- > 0;)
        apply_fib(tenants_[b.ops[j].tenant].fib[1 - tenants_[b.ops[j].tenant].active], b.ops[j], false);
      for (const auto& op : b.ops) unref(op.after);
      neighbours_.release(b.release);
      return b.fail(Code::resource_exhausted, std::string("cannot allocate the interface index: ") + more_memory,
                    v1::Object::KindCase::kInterface, "");
    }
    std::shared_ptr<uint16_t[]> vlan_map(new uint16_t[size_t(max_ports) << 12]());
    for (uint16_t slot = 0; slot < b.next->interfaces.size(); slot++) {
      const InterfaceEntry& e = b.next->interfaces[slot];
      if (!e.uid || e.tunnel) continue;
      InterfaceKey key{e.port, e.outer_vlan, e.inner_vlan, 0};
      rte_hash_add_key_data(index, &key, reinterpret_cast<void*>(uintptr_t(slot)));
      if (!e.inner_vlan && e.port < max_ports) vlan_map[size_t(e.port) << 12 | e.outer_vlan] = uint16_t(slot + 1);
    }
    b.next->interface_index = std::shared_ptr<rte_hash>(index, rte_hash_free);
    b.next->vlan_map = std::move(vlan_map);
  }
  return std::nullopt;
}

void Committer::reclaim_ports(Build& b) {
  for (uint16_t s : b.dead_ports) {
    rte_eth_dev_stop(ports_[s].port_id);
    port_slot_.erase(ports_[s].name);
    ports_[s] = PortSlot{};
    free_ports_.push_back(s);
  }
  for (uint16_t s : b.new_port_slots) port_slot_[ports_[s].name] = s;
}

// Interfaces and tunnels share slots and names.
void Committer::reclaim_interfaces(Build& b) {
  for (auto kind : {v1::Object::kInterface, v1::Object::kTunnel})
    for (const auto& [key, change] : b.diff.of(kind)) {
      const std::string& name = key.name;
      if (!change.after) {
        free_interfaces_.push_back(interface_slot_.at(name));
        interface_slot_.erase(name);
      } else {
        interface_slot_[name] = b.interface_of.at(name);
      }
    }
}

}  // namespace medix::dp
