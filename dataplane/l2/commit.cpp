#include "l2/commit.h"

#include <rte_ethdev.h>
#include <rte_jhash.h>

#include "control/build.h"

namespace medix::dp::l2 {
namespace {

// A new port configured with a queue pair per worker, and started.
std::optional<std::string> setup_port(const Committer::Params& params, uint16_t port_id, const v1::Port& p) {
  uint16_t queues = params.queues;
  uint16_t mtu = uint16_t(p.mtu() ? p.mtu() : 1500);
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(port_id, &info); rc != 0) return rte_strerror(-rc);
  if (info.max_rx_queues < queues || info.max_tx_queues < queues)
    return "offers " + std::to_string(std::min(info.max_rx_queues, info.max_tx_queues)) +
           " queue pairs; medix-dp needs one per worker (" + std::to_string(queues) + ")";
  if (mtu > info.max_mtu)
    return "MTU " + std::to_string(mtu) + " is above the device's " + std::to_string(info.max_mtu);
  if (mtu > params.max_mtu)
    return "MTU " + std::to_string(mtu) + " is above what medix-dp's packet buffers hold (" +
           std::to_string(params.max_mtu) + "; set by the largest port MTU in the startup config)";
  rte_eth_conf conf{};
  conf.rxmode.mtu = mtu;
  if (queues > 1) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
  }
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
  if (int rc = rte_eth_dev_configure(port_id, queues, queues, &conf); rc != 0)
    return std::string("cannot configure: ") + rte_strerror(-rc);
  uint16_t rxd = uint16_t(rx_descriptors), txd = uint16_t(tx_descriptors);
  rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rxd, &txd);
  int socket = rte_eth_dev_socket_id(port_id);
  unsigned on = socket < 0 ? params.socket : unsigned(socket);
  for (uint16_t q = 0; q < queues; q++) {
    if (int rc = rte_eth_rx_queue_setup(port_id, q, rxd, on, nullptr, params.pool); rc != 0)
      return "rx queue " + std::to_string(q) + ": " + rte_strerror(-rc);
    if (int rc = rte_eth_tx_queue_setup(port_id, q, txd, on, nullptr); rc != 0)
      return "tx queue " + std::to_string(q) + ": " + rte_strerror(-rc);
  }
  if (p.promiscuous()) rte_eth_promiscuous_enable(port_id);
  if (int rc = rte_eth_dev_start(port_id); rc != 0) return std::string("cannot start: ") + rte_strerror(-rc);
  return std::nullopt;
}
}  // namespace

// Ports: new ones are set up and started before anything can use them.
std::optional<Error> build_ports(Committer::Build& b) {
  Kept& kept = b.l2_kept();
  for (const auto& [key, change] : b.diff.of(v1::Object::kPort)) {
    const std::string& name = key.name;
    if (!change.after) {
      uint16_t slot = kept.port_slot.at(name);
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
      auto slot = Committer::Build::take(kept.free_ports, kept.ports, max_ports);
      if (!slot)
        return b.fail(Code::resource_exhausted, "port " + name + ": no free port slot", v1::Object::KindCase::kPort,
                      name);
      if (auto e = setup_port(b.c.params(), port_id, p)) {
        rte_eth_dev_stop(port_id);
        kept.free_ports.push_back(*slot);
        return b.fail(Code::failed_precondition, "port \"" + name + "\" (" + p.device() + "): " + *e,
                      v1::Object::KindCase::kPort, name);
      }
      kept.ports[*slot] = PortSlot{name, port_id, true};
      b.undo.push_back([&kept, slot = *slot, port_id] {
        rte_eth_dev_stop(port_id);
        kept.ports[slot] = PortSlot{};
        kept.free_ports.push_back(slot);
      });
      if (b.next->ports.size() <= *slot) b.next->ports.resize(*slot + 1);
      PortEntry& e = b.next->ports[*slot];
      e = PortEntry{};
      e.port_id = port_id;
      rte_eth_macaddr_get(port_id, &e.mac);
      b.new_port_slots.push_back(*slot);
      b.need_totals = true;
    }
    uint16_t slot = change.before ? kept.port_slot.at(name) : b.new_port_slots.back();
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
std::optional<Error> build_interfaces(Committer::Build& b) {
  Kept& kept = b.l2_kept();
  for (const auto& [key, change] : b.diff.of(v1::Object::kInterface)) {
    const std::string& name = key.name;
    uint16_t slot = 0;  // a change has a before, an after or both
    if (change.before) {
      slot = b.interface_slots().at(name);
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
    e.port = kept.port_slot.count(f.port()) ? kept.port_slot.at(f.port()) : 0;
    for (uint16_t s : b.new_port_slots)
      if (kept.ports[s].name == f.port()) e.port = s;
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
std::optional<Error> build_interface_index(Committer::Build& b) {
  if (!b.diff.of(v1::Object::kInterface).empty()) {
    std::string name = "ifindex" + std::to_string(b.l2_kept().index_serial++);
    rte_hash_parameters hp = hash_parameters(interface_index_shape, name.c_str(), rte_jhash, b.c.params().socket);
    rte_hash* index = rte_hash_create(&hp);
    if (!index) {
      b.revert_routes(b.ops.size());
      b.neighbours().release(b.release);
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

void reclaim_ports(Committer::Build& b) {
  Kept& kept = b.l2_kept();
  for (uint16_t s : b.dead_ports) {
    rte_eth_dev_stop(kept.ports[s].port_id);
    kept.port_slot.erase(kept.ports[s].name);
    kept.ports[s] = PortSlot{};
    kept.free_ports.push_back(s);
  }
  for (uint16_t s : b.new_port_slots) kept.port_slot[kept.ports[s].name] = s;
}

// Interfaces and tunnels share slots and names.
void reclaim_interfaces(Committer::Build& b) {
  for (auto kind : {v1::Object::kInterface, v1::Object::kTunnel})
    for (const auto& [key, change] : b.diff.of(kind)) {
      const std::string& name = key.name;
      if (!change.after) {
        b.free_interfaces().push_back(b.interface_slots().at(name));
        b.interface_slots().erase(name);
      } else {
        b.interface_slots()[name] = b.interface_of.at(name);
      }
    }
}

}  // namespace medix::dp::l2
