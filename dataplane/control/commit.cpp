#include "control/commit.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_jhash.h>
#include <rte_malloc.h>

#include <set>

#include "ipsec/control_sa.h"
#include "nat/nat.h"

namespace medix::control {
namespace {

rte_ether_addr mac_from(uint64_t mac) {
  rte_ether_addr out;
  for (unsigned i = 0; i < RTE_ETHER_ADDR_LEN; i++) out.addr_bytes[i] = uint8_t(mac >> (8 * (5 - i)));
  return out;
}

constexpr uint16_t rx_descriptors = 1024;
constexpr uint16_t tx_descriptors = 1024;

}  // namespace

Committer::~Committer() {
  delete current();
  for (NatWorker* n : nat_) nat_worker_free(n);
  for (SaState* sa : sas_) rte_free(sa);
  rte_hash_free(sa_index_);
  if (mgr_) free_mb_mgr(mgr_);
  for (auto& t : tenants_) free_tenant(t);
  neighbours_.destroy();
  rte_free(nexthops_);
  rte_free(bases_);
}

std::optional<std::string> Committer::init(const Params& params) {
  params_ = params;
  nexthops_ = static_cast<Nexthop*>(rte_zmalloc("nexthops", sizeof(Nexthop) * (max_nexthops + 1), RTE_CACHE_LINE_SIZE));
  bases_ = static_cast<Counters*>(rte_zmalloc("bases", sizeof(Counters), RTE_CACHE_LINE_SIZE));
  if (!nexthops_ || !bases_ || !neighbours_.init("neighbours", params.socket)) return "cannot allocate the tables";
  nexthop_refs_.assign(max_nexthops + 1, 0);
  for (uint16_t id = max_nexthops; id >= 1; id--) free_nexthops_.push_back(id);  // 0 is "no route"
  mgr_ = alloc_mb_mgr(0);
  if (!mgr_) return "cannot allocate Intel IPsec-MB state";
  init_mb_mgr_auto(mgr_, nullptr);
  sas_.assign(max_sas, nullptr);
  for (uint16_t slot = max_sas - 1; slot >= 1; slot--) free_sas_.push_back(slot);
  rte_hash_parameters hp{};
  hp.name = "sa_index";
  hp.entries = max_sas;
  hp.key_len = sizeof(uint32_t);
  hp.hash_func = rte_jhash;
  hp.socket_id = int(params.socket);
  hp.extra_flag = RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF;
  sa_index_ = rte_hash_create(&hp);
  if (!sa_index_) return "cannot allocate the SA index";
  auto* empty = new Tables();
  empty->nexthops = nexthops_;
  empty->neighbours = &neighbours_;
  empty->sas = sas_.data();
  empty->sa_index = sa_index_;
  current_.store(empty, std::memory_order_release);
  return std::nullopt;
}

uint16_t Committer::intern(const Nexthop& nh) {
  auto key = std::make_tuple(int(nh.kind), nh.interface, nh.tenant, nh.gateway);
  auto it = nexthop_ids_.find(key);
  uint16_t id;
  if (it != nexthop_ids_.end()) {
    id = it->second;
  } else {
    if (free_nexthops_.empty()) return 0;
    id = free_nexthops_.back();
    free_nexthops_.pop_back();
    nexthops_[id] = nh;  // no FIB copy points at a free id: safe to write under readers
    nexthop_ids_[key] = id;
  }
  nexthop_refs_[id]++;
  return id;
}

void Committer::unref(uint16_t id) {
  if (id == 0 || --nexthop_refs_[id] > 0) return;
  const Nexthop& nh = nexthops_[id];
  nexthop_ids_.erase(std::make_tuple(int(nh.kind), nh.interface, nh.tenant, nh.gateway));
  free_nexthops_.push_back(id);
}

bool Committer::apply_fib(rte_fib* fib, const FibOp& op, bool forward) {
  uint16_t nh = forward ? op.after : op.before;
  int rc = nh ? rte_fib_add(fib, op.address, op.length, nh) : rte_fib_delete(fib, op.address, op.length);
  return rc == 0 || (!nh && rc == -ENOENT);
}

void Committer::free_tenant(TenantSlot& t) {
  rte_fib_free(t.fib[0]);
  rte_fib_free(t.fib[1]);
  t = TenantSlot{};
}

std::optional<std::string> Committer::setup_port(uint16_t port_id, const v1::Port& p) {
  uint16_t queues = params_.queues;
  uint16_t mtu = uint16_t(p.mtu() ? p.mtu() : 1500);
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(port_id, &info); rc != 0) return rte_strerror(-rc);
  if (info.max_rx_queues < queues || info.max_tx_queues < queues)
    return "offers " + std::to_string(std::min(info.max_rx_queues, info.max_tx_queues)) +
           " queue pairs; medix-dp needs one per worker (" + std::to_string(queues) + ")";
  if (mtu > info.max_mtu)
    return "MTU " + std::to_string(mtu) + " is above the device's " + std::to_string(info.max_mtu);
  if (mtu > params_.max_mtu)
    return "MTU " + std::to_string(mtu) + " is above what medix-dp's packet buffers hold (" +
           std::to_string(params_.max_mtu) + "; set by the largest port MTU in the startup config)";
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
  uint16_t rxd = rx_descriptors, txd = tx_descriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &rxd, &txd);
  int socket = rte_eth_dev_socket_id(port_id);
  unsigned on = socket < 0 ? params_.socket : unsigned(socket);
  for (uint16_t q = 0; q < queues; q++) {
    if (int rc = rte_eth_rx_queue_setup(port_id, q, rxd, on, nullptr, params_.pool); rc != 0)
      return "rx queue " + std::to_string(q) + ": " + rte_strerror(-rc);
    if (int rc = rte_eth_tx_queue_setup(port_id, q, txd, on, nullptr); rc != 0)
      return "tx queue " + std::to_string(q) + ": " + rte_strerror(-rc);
  }
  if (p.promiscuous()) rte_eth_promiscuous_enable(port_id);
  if (int rc = rte_eth_dev_start(port_id); rc != 0) return std::string("cannot start: ") + rte_strerror(-rc);
  return std::nullopt;
}

void Committer::learn(const LearnedNeighbour& learned) {
  const Tables* t = current();
  // The worker may have learned it on an interface that is gone or whose slot was reused.
  if (learned.interface >= t->interfaces.size() || t->interfaces[learned.interface].uid != learned.uid) return;
  rte_ether_addr mac;
  memcpy(mac.addr_bytes, learned.mac, 6);
  neighbours_.set(learned.interface, learned.address, mac, false);
}

bool Committer::clear_sessions(const std::string& tenant) {
  auto slot = tenant_slot_.find(tenant);
  if (slot == tenant_slot_.end()) return false;
  auto next = std::make_unique<Tables>(*current());
  next->tenants[slot->second].nat.epoch = ++epochs_;
  const Tables* previous = current();
  current_.store(next.release(), std::memory_order_release);
  if (params_.rcu) rte_rcu_qsbr_synchronize(params_.rcu, RTE_QSBR_THRID_INVALID);
  delete previous;
  return true;
}

void Committer::stop_ports() {
  for (auto& p : ports_)
    if (p.configured) {
      rte_eth_dev_stop(p.port_id);
      p.configured = false;
    }
}

std::optional<Error> Committer::commit(const Diff& diff, const Intent& intent, uint64_t version) {
  const Tables& old = *current();
  auto next = std::make_unique<Tables>(old);
  next->version = version;
  // What to undo if a later step fails before anything is published.
  std::vector<std::function<void()>> undo;
  auto fail = [&](Code code, std::string message, int kind, std::string about) {
    for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
    return Error{code, std::move(message), kind, std::move(about)};
  };
  Counters totals{};
  bool need_totals = false;
  auto take = [](std::vector<uint16_t>& free_list, auto& slots, size_t limit) -> std::optional<uint16_t> {
    if (!free_list.empty()) {
      uint16_t s = free_list.back();
      free_list.pop_back();
      return s;
    }
    if (slots.size() >= limit) return std::nullopt;
    slots.emplace_back();
    return uint16_t(slots.size() - 1);
  };
  std::vector<uint16_t> new_port_slots, new_tenant_slots, new_interface_slots;
  std::vector<uint16_t> dead_ports, dead_tenants, dead_interfaces;

  // --- Ports ---
  for (const auto& [name, change] : diff.ports) {
    if (!change.after) {
      uint16_t slot = port_slot_.at(name);
      next->ports[slot].live = false;
      dead_ports.push_back(slot);
      continue;
    }
    const v1::Port& p = change.after->port();
    if (!change.before) {
      uint16_t port_id;
      if (rte_eth_dev_get_port_by_name(p.device().c_str(), &port_id) != 0)
        return fail(Code::invalid_argument, "port " + name + ": no DPDK port named \"" + p.device() + "\"",
                    v1::Object::KindCase::kPort, name);
      auto slot = take(free_ports_, ports_, max_ports);
      if (!slot)
        return fail(Code::resource_exhausted, "port " + name + ": no free port slot", v1::Object::KindCase::kPort,
                    name);
      if (auto e = setup_port(port_id, p)) {
        rte_eth_dev_stop(port_id);
        free_ports_.push_back(*slot);
        return fail(Code::failed_precondition, "port \"" + name + "\" (" + p.device() + "): " + *e,
                    v1::Object::KindCase::kPort, name);
      }
      ports_[*slot] = PortSlot{name, port_id, true};
      undo.push_back([this, slot = *slot, port_id] {
        rte_eth_dev_stop(port_id);
        ports_[slot] = PortSlot{};
        free_ports_.push_back(slot);
      });
      if (next->ports.size() <= *slot) next->ports.resize(*slot + 1);
      PortEntry& e = next->ports[*slot];
      e = PortEntry{};
      e.port_id = port_id;
      rte_eth_macaddr_get(port_id, &e.mac);
      new_port_slots.push_back(*slot);
      need_totals = true;
    }
    uint16_t slot = change.before ? port_slot_.at(name) : new_port_slots.back();
    PortEntry& e = next->ports[slot];
    if (change.before) {
      const v1::Port& was = change.before->port();
      if (was.mtu() != p.mtu()) {
        uint16_t mtu = uint16_t(p.mtu() ? p.mtu() : 1500);
        if (int rc = rte_eth_dev_set_mtu(e.port_id, mtu); rc != 0 && rc != -ENOTSUP)
          return fail(Code::failed_precondition,
                      "port \"" + name + "\": cannot set MTU " + std::to_string(mtu) + ": " + rte_strerror(-rc),
                      v1::Object::KindCase::kPort, name);
        uint16_t old_mtu = uint16_t(was.mtu() ? was.mtu() : 1500);
        undo.push_back([id = e.port_id, old_mtu] { rte_eth_dev_set_mtu(id, old_mtu); });
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

  // --- Tenants ---
  for (const auto& [name, change] : diff.tenants) {
    if (!change.after) {
      uint16_t slot = tenant_slot_.at(name);
      next->tenants[slot] = TenantEntry{};
      dead_tenants.push_back(slot);
      continue;
    }
    if (change.before) continue;  // only the description changed
    auto slot = take(free_tenants_, tenants_, max_tenants);
    if (!slot)
      return fail(Code::resource_exhausted, "tenant " + name + ": no free tenant slot", v1::Object::KindCase::kTenant,
                  name);
    uint32_t max_routes = change.after->tenant().max_routes() ? change.after->tenant().max_routes() : 65536;
    rte_fib_conf conf{};
    conf.type = RTE_FIB_DIR24_8;
    conf.default_nh = 0;
    conf.max_routes = int(max_routes + 2 * max_addresses_per_interface * 64);
    conf.dir24_8.nh_sz = RTE_FIB_DIR24_8_2B;
    conf.dir24_8.num_tbl8 = std::min<uint32_t>(32767, std::max<uint32_t>(1024, max_routes / 8));
    TenantSlot& t = tenants_[*slot];
    t = TenantSlot{};
    t.name = name;
    for (int i = 0; i < 2; i++) {
      std::string fib_name = "fib" + std::to_string(fib_serial_++);
      t.fib[i] = rte_fib_create(fib_name.c_str(), int(params_.socket), &conf);
    }
    if (!t.fib[0] || !t.fib[1]) {
      free_tenant(t);
      free_tenants_.push_back(*slot);
      return fail(Code::resource_exhausted,
                  "tenant \"" + name + "\": cannot allocate its FIB for " + std::to_string(max_routes) +
                      " routes: " + rte_strerror(rte_errno) + " (give EAL more memory with -m)",
                  v1::Object::KindCase::kTenant, name);
    }
    undo.push_back([this, slot = *slot] {
      free_tenant(tenants_[slot]);
      free_tenants_.push_back(slot);
    });
    if (next->tenants.size() <= *slot) next->tenants.resize(*slot + 1);
    next->tenants[*slot].name = name;
    new_tenant_slots.push_back(*slot);
    need_totals = true;
  }
  // Name -> slot as this transaction leaves it (new names are not in tenant_slot_ yet).
  auto tenant_of = [&](const std::string& name) -> uint16_t {
    for (uint16_t s : new_tenant_slots)
      if (tenants_[s].name == name) return s;
    return tenant_slot_.at(name);
  };

  // --- Interfaces ---
  // Routes from interface addresses change with them: (tenant slot, prefix) to recompute.
  std::set<std::tuple<uint16_t, uint32_t, uint8_t>> affected;
  std::vector<std::function<void()>> automatic_changes;  // applied to TenantSlot::automatic at once
  std::map<std::string, uint16_t> interface_of;
  // A slot for a new interface or tunnel (they share slots and names), given back on failure.
  auto new_interface_slot = [&]() -> std::optional<uint16_t> {
    auto s = take(free_interfaces_, next->interfaces, max_interfaces);
    if (!s) return std::nullopt;
    if (next->interfaces.size() <= *s) next->interfaces.resize(*s + 1);
    undo.push_back([this, slot = *s] { free_interfaces_.push_back(slot); });
    new_interface_slots.push_back(*s);
    need_totals = true;
    return s;
  };
  auto contribute = [&](const v1::Interface& f, uint16_t slot, bool add) {
    uint16_t t = tenant_of(f.tenant());
    for (const auto& a : f.addresses()) {
      auto p = *parse_prefix(a);
      uint32_t mask = ~uint32_t(0) << (32 - p.length);
      std::pair<uint32_t, uint8_t> subnet{p.address & mask, p.length}, host{p.address, 32};
      std::pair<int, uint16_t> connected{1, slot}, local{0, uint16_t(UINT16_MAX)};
      for (auto [prefix, entry] : {std::pair{subnet, connected}, std::pair{host, local}}) {
        auto& list = tenants_[t].automatic[prefix];
        if (add) {
          list.push_back(entry);
          std::stable_sort(list.begin(), list.end(), [](auto& x, auto& y) { return x.first < y.first; });
        } else {
          auto it = std::find(list.begin(), list.end(), entry);
          if (it != list.end()) list.erase(it);
          if (list.empty()) tenants_[t].automatic.erase(prefix);
        }
        affected.insert({t, prefix.first, prefix.second});
      }
    }
  };
  std::vector<std::pair<const v1::Interface*, uint16_t>> removed_contributions, added_contributions;
  for (const auto& [name, change] : diff.interfaces) {
    uint16_t slot;
    if (change.before) {
      slot = interface_slot_.at(name);
      removed_contributions.push_back({&change.before->interface(), slot});
    }
    if (!change.after) {
      next->interfaces[slot] = InterfaceEntry{};
      dead_interfaces.push_back(slot);
      continue;
    }
    if (!change.before) {
      auto s = new_interface_slot();
      if (!s)
        return fail(Code::resource_exhausted, "interface " + name + ": no free interface slot",
                    v1::Object::KindCase::kInterface, name);
      slot = *s;
    }
    interface_of[name] = slot;
    const v1::Interface& f = change.after->interface();
    InterfaceEntry& e = next->interfaces[slot];
    uint32_t keep_uid = change.before ? e.uid : uint32_t(next_uid_++);
    e = InterfaceEntry{};
    e.uid = keep_uid;
    e.name = name;
    e.port = port_slot_.count(f.port()) ? port_slot_.at(f.port()) : 0;
    for (uint16_t s : new_port_slots)
      if (ports_[s].name == f.port()) e.port = s;
    e.tenant = tenant_of(f.tenant());
    e.outer_vlan = uint16_t(f.vlan());
    e.inner_vlan = uint16_t(f.inner_vlan());
    e.mtu = uint16_t(f.mtu() ? f.mtu() : next->ports[e.port].mtu);
    e.mac = f.mac().empty() ? next->ports[e.port].mac : mac_from(*parse_mac(f.mac()));
    for (const auto& a : f.addresses()) {
      auto p = *parse_prefix(a);
      e.subnets[e.subnet_count++] = Subnet{p.address, p.length};
    }
    added_contributions.push_back({&f, slot});
  }
  // --- Tunnels: interfaces without a port, in the same name space and slots ---
  for (const auto& [name, change] : diff.tunnels) {
    uint16_t slot;
    if (!change.after) {
      slot = interface_slot_.at(name);
      next->interfaces[slot] = InterfaceEntry{};
      dead_interfaces.push_back(slot);
      outbound_.erase(name);
      continue;
    }
    if (change.before) {
      slot = interface_slot_.at(name);
    } else {
      auto s = new_interface_slot();
      if (!s)
        return fail(Code::resource_exhausted, "tunnel " + name + ": no free interface slot",
                    v1::Object::KindCase::kTunnel, name);
      slot = *s;
    }
    interface_of[name] = slot;
    const v1::Tunnel& tu = change.after->tunnel();
    InterfaceEntry& e = next->interfaces[slot];
    uint32_t keep_uid = change.before ? e.uid : uint32_t(next_uid_++);
    uint16_t keep_sa = change.before ? e.outbound_sa : 0;
    e = InterfaceEntry{};
    e.uid = keep_uid;
    e.name = name;
    e.tunnel = true;
    e.tenant = tenant_of(tu.tenant());
    e.underlay = tenant_of(tu.underlay_tenant());
    e.local = *parse_ipv4(tu.local_address());
    e.remote = *parse_ipv4(tu.remote_address());
    e.remote_port = uint16_t(tu.encap_udp_port());
    e.mtu = uint16_t(tu.mtu() ? tu.mtu() : 1400);
    e.ttl = uint8_t(tu.ttl() ? tu.ttl() : 64);
    e.df_mode = uint8_t(tu.df());
    e.mss_clamp = uint16_t(tu.tcp_mss_clamp());
    e.outbound_sa = keep_sa;
    for (const auto& sel : tu.local_selectors()) {
      auto p = *parse_prefix(sel);
      e.local_selectors[e.n_local_selectors++] = Subnet{p.address, p.length};
    }
    for (const auto& sel : tu.remote_selectors()) {
      auto p = *parse_prefix(sel);
      e.remote_selectors[e.n_remote_selectors++] = Subnet{p.address, p.length};
    }
  }

  for (auto [f, slot] : removed_contributions) contribute(*f, slot, false);
  for (auto [f, slot] : added_contributions) contribute(*f, slot, true);
  undo.push_back([&, this] {
    for (auto [f, slot] : added_contributions) contribute(*f, slot, false);
    for (auto [f, slot] : removed_contributions) contribute(*f, slot, true);
  });
  auto interface_slot_of = [&](const std::string& name) {
    auto it = interface_of.find(name);
    return it != interface_of.end() ? it->second : interface_slot_.at(name);
  };

  // --- Routes: what each affected prefix resolves to now ---
  for (const auto& key : diff.routes) affected.insert({tenant_of(key.tenant), key.address, key.length});
  std::vector<FibOp> ops;
  for (auto [t, address, length] : affected) {
    TenantSlot& slot = tenants_[t];
    Nexthop nh;
    bool has = false;
    auto explicit_route = intent.routes.find(RouteKey{slot.name, address, length});
    if (explicit_route != intent.routes.end()) {
      const v1::Route& r = explicit_route->second;
      has = true;
      switch (r.target_case()) {
        case v1::Route::kVia:
          nh = {NexthopKind::via, interface_slot_of(r.via().interface()), 0,
                r.via().address().empty() ? 0 : *parse_ipv4(r.via().address())};
          break;
        case v1::Route::kNextTenant: nh = {NexthopKind::leak, 0, tenant_of(r.next_tenant()), 0}; break;
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
      after = intern(nh);
      if (!after) {
        for (const auto& op : ops) unref(op.after);
        return fail(Code::resource_exhausted, "more than " + std::to_string(max_nexthops) + " distinct next hops",
                    v1::Object::KindCase::kRoute, slot.name);
      }
    }
    auto e = slot.effective.find({address, length});
    uint16_t before = e == slot.effective.end() ? 0 : e->second;
    if (before == after) {
      unref(after);
      continue;
    }
    ops.push_back({t, address, length, before, after});
  }
  // The standby copies first; nobody reads them.
  for (size_t i = 0; i < ops.size(); i++) {
    TenantSlot& t = tenants_[ops[i].tenant];
    if (!apply_fib(t.fib[1 - t.active], ops[i], true)) {
      for (size_t j = i; j-- > 0;)
        apply_fib(tenants_[ops[j].tenant].fib[1 - tenants_[ops[j].tenant].active], ops[j], false);
      for (const auto& op : ops) unref(op.after);
      return fail(Code::resource_exhausted, "tenant \"" + t.name + "\": its FIB is full (tbl8 groups or max_routes)",
                  v1::Object::KindCase::kRoute, t.name);
    }
  }
  std::set<uint16_t> switched;
  for (const auto& op : ops) switched.insert(op.tenant);
  for (uint16_t t : new_tenant_slots) switched.insert(t);
  for (uint16_t t : dead_tenants) switched.erase(t);
  for (uint16_t t : switched) next->tenants[t].fib = tenants_[t].fib[1 - tenants_[t].active];

  // --- Neighbours: what goes away goes before the grace period ---
  std::vector<int32_t> release;
  std::set<uint16_t> dead_set(dead_interfaces.begin(), dead_interfaces.end());
  if (!dead_set.empty()) {
    std::vector<std::pair<uint16_t, uint32_t>> purge;
    neighbours_.for_each([&](const ::NeighbourKey& k, const rte_ether_addr&, bool) {
      if (dead_set.count(k.interface)) purge.push_back({k.interface, k.address});
    });
    for (auto [i, a] : purge) neighbours_.remove(i, a, release);
  }
  auto interface_dies = [&](const std::string& name) {
    auto it = diff.interfaces.find(name);
    return it != diff.interfaces.end() && !it->second.after;
  };
  for (const auto& [key, change] : diff.neighbours)
    if (!change.after && !interface_dies(key.interface))
      neighbours_.remove(interface_slot_of(key.interface), key.address, release);

  // --- The interface index, rebuilt when interfaces come, go or move ---
  if (!diff.interfaces.empty()) {
    rte_hash_parameters hp{};
    std::string name = "ifindex" + std::to_string(index_serial_++);
    hp.name = name.c_str();
    hp.entries = max_interfaces * 2;
    hp.key_len = sizeof(InterfaceKey);
    hp.hash_func = rte_jhash;
    hp.socket_id = int(params_.socket);
    rte_hash* index = rte_hash_create(&hp);
    if (!index) {
      for (size_t j = ops.size(); j-- > 0;)
        apply_fib(tenants_[ops[j].tenant].fib[1 - tenants_[ops[j].tenant].active], ops[j], false);
      for (const auto& op : ops) unref(op.after);
      neighbours_.release(release);
      return fail(Code::resource_exhausted, "cannot allocate the interface index", v1::Object::KindCase::kInterface,
                  "");
    }
    for (uint16_t slot = 0; slot < next->interfaces.size(); slot++) {
      const InterfaceEntry& e = next->interfaces[slot];
      if (!e.uid || e.tunnel) continue;
      InterfaceKey key{e.port, e.outer_vlan, e.inner_vlan, 0};
      rte_hash_add_key_data(index, &key, reinterpret_cast<void*>(uintptr_t(slot)));
    }
    next->interface_index = std::shared_ptr<rte_hash>(index, rte_hash_free);
  }

  // --- SAs: new ones are complete before anything can find them; the old go after the grace ---
  std::vector<uint16_t> dead_sas;
  std::vector<int32_t> sa_release;
  std::set<std::string> sa_tunnels;
  std::vector<std::pair<SaKey, uint16_t>> new_sas;
  for (const auto& [key, change] : diff.sas) {
    sa_tunnels.insert(key.tunnel);
    if (!change.after) {
      uint16_t slot = sa_slot_.at(key);
      if (key.inbound) {
        int32_t pos = rte_hash_del_key(sa_index_, &key.spi);
        if (pos >= 0) sa_release.push_back(pos);
      } else {
        auto& list = outbound_[key.tunnel];
        list.erase(std::remove(list.begin(), list.end(), slot), list.end());
      }
      dead_sas.push_back(slot);
      continue;
    }
    const v1::SecurityAssociation& o = change.after->sa();
    auto* sa =
        static_cast<SaState*>(rte_zmalloc_socket("sa", sizeof(SaState), RTE_CACHE_LINE_SIZE, int(params_.socket)));
    bool ok = sa && !free_sas_.empty();
    uint16_t slot = 0;
    if (ok) {
      new (sa) SaState();
      sa_setup(*sa, o, mgr_);
      sa->tunnel = interface_slot_of(key.tunnel);
      sa->owner = uint16_t(key.spi % params_.queues);
      slot = free_sas_.back();
      free_sas_.pop_back();
      sas_[slot] = sa;
      if (key.inbound) ok = rte_hash_add_key_data(sa_index_, &key.spi, reinterpret_cast<void*>(uintptr_t(slot))) == 0;
    }
    if (!ok) {
      for (auto [k, s] : new_sas) {
        if (k.inbound) rte_hash_del_key(sa_index_, &k.spi);
        rte_free(sas_[s]);
        sas_[s] = nullptr;
        free_sas_.push_back(s);
      }
      if (slot) {
        sas_[slot] = nullptr;
        free_sas_.push_back(slot);
      }
      rte_free(sa);
      for (size_t j = ops.size(); j-- > 0;)
        apply_fib(tenants_[ops[j].tenant].fib[1 - tenants_[ops[j].tenant].active], ops[j], false);
      for (const auto& op : ops) unref(op.after);
      neighbours_.release(release);
      return fail(Code::resource_exhausted, "SA " + std::to_string(key.spi) + ": cannot allocate it",
                  v1::Object::KindCase::kSa, std::to_string(key.spi));
    }
    new_sas.push_back({key, slot});
  }
  // New outbound SAs join their tunnel in the order they were created: the newest is used.
  std::vector<std::tuple<uint64_t, std::string, uint16_t>> outbound_order;
  for (auto [key, slot] : new_sas)
    if (!key.inbound) outbound_order.push_back({intent.sa_serial.at(key), key.tunnel, slot});
  std::sort(outbound_order.begin(), outbound_order.end());
  for (const auto& [serial, tunnel, slot] : outbound_order) outbound_[tunnel].push_back(slot);
  for (const auto& name : sa_tunnels) {
    auto it = interface_of.find(name);
    uint16_t slot =
        it != interface_of.end() ? it->second : (interface_slot_.count(name) ? interface_slot_.at(name) : 0);
    if (!slot && !interface_slot_.count(name)) continue;  // the tunnel goes in this transaction
    const auto& list = outbound_[name];
    next->interfaces[slot].outbound_sa = list.empty() ? 0 : list.back();
  }

  // A tunnel's inner MTU leaves room for ESP's worst case in its underlay: packets that would
  // not fit get ICMP "fragmentation needed" (DF) or are fragmented before encryption, instead
  // of outer packets dropped for being too large. Redone whenever interfaces or ports change.
  if (!diff.tunnels.empty() || !diff.interfaces.empty() || !diff.ports.empty()) {
    for (auto& e : next->interfaces) {
      if (!e.uid || !e.tunnel) continue;
      auto it = intent.tunnels.find(e.name);
      if (it == intent.tunnels.end()) continue;
      uint32_t mtu = it->second.mtu() ? it->second.mtu() : 1400;
      // outer IPv4 20, UDP 8 (NAT-T), ESP 8, IV 16, padding and trailer 17, ICV 16
      uint32_t overhead = 20 + (e.remote_port ? 8 : 0) + 8 + 16 + 17 + 16;
      for (const auto& u : next->interfaces)
        if (u.uid && !u.tunnel && u.tenant == e.underlay && u.mtu > overhead + 576)
          mtu = std::min<uint32_t>(mtu, u.mtu - overhead);
      e.mtu = uint16_t(mtu);
    }
  }

  std::vector<uint16_t> new_rule_slots;
  if (!diff.tenants.empty() || !diff.translation_changed.empty() || diff.policy_changed)
    if (auto e = build_crossing(diff, intent, *next, tenant_of, new_tenant_slots, new_rule_slots)) {
      for (auto it = undo.rbegin(); it != undo.rend(); ++it) (*it)();
      return *e;
    }

  // Counter bases for slots given to new objects: their counters start at zero.
  if ((need_totals || !new_rule_slots.empty()) && params_.totals) totals = params_.totals();
  for (uint16_t s : new_port_slots) bases_->ports[s] = totals.ports[s];
  for (uint16_t s : new_tenant_slots) bases_->tenants[s] = totals.tenants[s];
  for (uint16_t s : new_interface_slots) bases_->interfaces[s] = totals.interfaces[s];
  for (uint16_t s : new_rule_slots) bases_->rule_matched[s] = totals.rule_matched[s];
  for (uint16_t s : new_tenant_slots) bases_->nat[s] = totals.nat[s];

  // Static neighbours are in place before the interfaces that use them appear: a new entry
  // (or a new MAC in an entry) is one atomic word, safe under readers.
  for (const auto& [key, change] : diff.neighbours) {
    if (!change.after) continue;
    const v1::Neighbour& n = change.after->neighbour();
    neighbours_.set(interface_slot_of(n.interface()), key.address, mac_from(*parse_mac(n.mac())), true);
  }

  // --- Publish, wait for every worker to have let go of the old generation, reclaim ---
  const Tables* previous = current();
  current_.store(next.release(), std::memory_order_release);
  if (params_.rcu) rte_rcu_qsbr_synchronize(params_.rcu, RTE_QSBR_THRID_INVALID);

  for (const auto& op : ops) {
    TenantSlot& t = tenants_[op.tenant];
    apply_fib(t.fib[t.active], op, true);  // the copy nobody reads any more
    if (op.after)
      t.effective[{op.address, op.length}] = op.after;
    else
      t.effective.erase({op.address, op.length});
    unref(op.before);
  }
  for (uint16_t t : switched) tenants_[t].active = 1 - tenants_[t].active;
  neighbours_.release(release);
  for (int32_t pos : sa_release) rte_hash_free_key_with_position(sa_index_, pos);
  for (uint16_t slot : dead_sas) {
    rte_free(sas_[slot]);
    sas_[slot] = nullptr;
    free_sas_.push_back(slot);
  }
  for (const auto& [key, change] : diff.sas)
    if (!change.after) sa_slot_.erase(key);
  for (auto [key, slot] : new_sas) sa_slot_[key] = slot;
  for (uint16_t s : dead_tenants) {
    tenant_slot_.erase(tenants_[s].name);
    free_tenant(tenants_[s]);
    free_tenants_.push_back(s);
  }
  for (uint16_t s : new_tenant_slots) tenant_slot_[tenants_[s].name] = s;
  for (uint16_t s : dead_ports) {
    rte_eth_dev_stop(ports_[s].port_id);
    port_slot_.erase(ports_[s].name);
    ports_[s] = PortSlot{};
    free_ports_.push_back(s);
  }
  for (uint16_t s : new_port_slots) port_slot_[ports_[s].name] = s;
  for (const auto* named : {&diff.interfaces, &diff.tunnels})
    for (const auto& [name, change] : *named) {
      if (!change.after) {
        free_interfaces_.push_back(interface_slot_.at(name));
        interface_slot_.erase(name);
      } else {
        interface_slot_[name] = interface_of.at(name);
      }
    }
  delete previous;
  return std::nullopt;
}

std::optional<Error> Committer::build_crossing(const Diff& diff, const Intent& intent, Tables& next,
                                               const std::function<uint16_t(const std::string&)>& tenant_of,
                                               const std::vector<uint16_t>& new_tenant_slots,
                                               std::vector<uint16_t>& new_rule_slots) {
  next.core = UINT16_MAX;
  for (const auto& [name, t] : intent.tenants)
    if (t.core()) next.core = tenant_of(name);
  if (next.core != UINT16_MAX && nat_.empty()) {
    uint32_t per_worker = std::max<uint32_t>(64, params_.max_sessions / params_.queues);
    for (uint16_t q = 0; q < params_.queues; q++) {
      NatWorker* n = nat_worker_create(q, per_worker, params_.socket);
      if (!n) {
        for (NatWorker* made : nat_) nat_worker_free(made);
        nat_.clear();
        return Error{Code::resource_exhausted,
                     "cannot allocate the session tables (" + std::to_string(params_.max_sessions) +
                         " sessions, about 340 bytes each): give EAL more memory with -m, or lower "
                         "settings.max_sessions",
                     v1::Object::KindCase::kTenant, ""};
      }
      nat_.push_back(n);
    }
  }
  next.nat = nat_.empty() ? nullptr : nat_.data();
  next.workers = params_.queues;

  // Translations, rebuilt whole; the epoch changes where the translation did.
  for (uint16_t slot = 0; slot < next.tenants.size(); slot++) {
    TenantEntry& e = next.tenants[slot];
    if (!e.fib) continue;
    bool fresh = std::find(new_tenant_slots.begin(), new_tenant_slots.end(), slot) != new_tenant_slots.end();
    uint32_t epoch = e.nat.epoch;
    Translation x;
    e.core = slot == next.core;
    for (auto it = intent.static_mappings.lower_bound(MappingKey{e.name, 0, 0});
         it != intent.static_mappings.end() && it->first.tenant == e.name; ++it) {
      auto core = parse_prefix(it->second.core_prefix());
      uint32_t mask = it->first.length ? ~uint32_t(0) << (32 - it->first.length) : 0;
      x.maps.push_back({it->first.address, core->address & mask, mask});
    }
    // Longest first, so that a more specific mapping wins.
    std::stable_sort(x.maps.begin(), x.maps.end(),
                     [](const StaticMap& a, const StaticMap& b) { return a.mask > b.mask; });
    if (auto pool = intent.napt_pools.find(e.name); pool != intent.napt_pools.end()) {
      auto prefixes = pool_prefixes(pool->second);
      for (const auto& p : *prefixes) {
        uint32_t count = uint32_t(uint64_t(1) << (32 - p.length));
        x.pool.push_back({p.address, count});
        x.pool_size += count;
      }
      if (pool->second.port_low()) x.port_low = uint16_t(pool->second.port_low());
      if (pool->second.port_high()) x.port_high = uint16_t(pool->second.port_high());
      if (uint32_t limit = pool->second.session_limit())
        x.session_limit = std::max<uint32_t>(1, (limit + params_.queues - 1) / params_.queues);
    }
    x.epoch = fresh || !epoch || diff.translation_changed.count(e.name) ? ++epochs_ : epoch;
    e.nat = std::move(x);
  }

  // Policy rules in the order they are tried, each with a counter slot.
  if (diff.policy_changed) {
    for (auto it = rule_slot_.begin(); it != rule_slot_.end();) {
      if (intent.policy_rules.count(it->first)) {
        ++it;
      } else {
        free_rules_.push_back(it->second);
        it = rule_slot_.erase(it);
      }
    }
    policy_epoch_++;
  }
  next.rules.clear();
  for (const auto& [name, r] : intent.policy_rules) {
    PolicyRuleEntry e;
    e.name = name;
    auto slot = rule_slot_.find(name);
    if (slot == rule_slot_.end()) {
      uint16_t s = uint16_t(rule_slot_.size());
      if (!free_rules_.empty()) {
        s = free_rules_.back();
        free_rules_.pop_back();
      }
      slot = rule_slot_.emplace(name, s).first;
      new_rule_slots.push_back(s);
    }
    e.slot = slot->second;
    if (!r.from_tenant().empty()) e.from = tenant_of(r.from_tenant());
    if (!r.to_tenant().empty()) e.to = tenant_of(r.to_tenant());
    if (!r.destination_prefix().empty()) {
      auto p = parse_prefix(r.destination_prefix());
      e.mask = p->length ? ~uint32_t(0) << (32 - p->length) : 0;
      e.prefix = p->address & e.mask;
    }
    e.protocol = uint8_t(r.protocol());
    if (r.port_low() || r.port_high()) {
      e.port_low = uint16_t(r.port_low());
      e.port_high = uint16_t(r.port_high());
    }
    e.permit = r.permit();
    next.rules.push_back(std::move(e));
  }
  std::stable_sort(next.rules.begin(), next.rules.end(), [&](const PolicyRuleEntry& a, const PolicyRuleEntry& b) {
    return intent.policy_rules.at(a.name).priority() < intent.policy_rules.at(b.name).priority();
  });
  next.policy_epoch = policy_epoch_;
  return std::nullopt;
}

}  // namespace medix::control
