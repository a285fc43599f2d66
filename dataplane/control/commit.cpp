#include "control/commit.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_jhash.h>
#include <rte_malloc.h>

#include <chrono>

#include "control/build.h"
#include "control/kinds.h"
#include "nat/commit.h"
#include "nat/nat.h"

namespace medix::dp {

Committer::Committer() : nat_(std::make_unique<nat::Kept>()) {}

Committer::~Committer() {
  delete current();
  for (NatWorker* n : nat_->workers) nat_worker_free(n);
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
  if (!nexthops_ || !bases_ || !neighbours_.init("neighbours", params.socket))
    return std::string("cannot allocate the tables: ") + more_memory;
  if (auto e = lpm_.init(std::max<uint32_t>(2, params.fib_plies))) return *e;
  nexthop_refs_.assign(max_nexthops + 1, 0);
  for (uint16_t id = max_nexthops; id >= 1; id--) free_nexthops_.push_back(id);  // 0 is "no route"
  mgr_ = alloc_mb_mgr(0);
  if (!mgr_) return "cannot allocate Intel IPsec-MB state";
  init_mb_mgr_auto(mgr_, nullptr);
  sas_.assign(max_sas, nullptr);
  for (uint16_t slot = max_sas - 1; slot >= 1; slot--) free_sas_.push_back(slot);
  rte_hash_parameters hp = hash_parameters(sa_index_shape, "sa_index", rte_jhash, params.socket);
  sa_index_ = rte_hash_create(&hp);
  if (!sa_index_) return std::string("cannot allocate the SA index: ") + more_memory;
  auto* empty = new Tables();
  empty->nexthops = nexthops_;
  empty->plies = lpm_.plies();
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
  if (!fib) return true;
  uint16_t nh = forward ? op.after : op.before;
  int rc = nh ? rte_fib_add(fib, op.address, op.length, nh) : rte_fib_delete(fib, op.address, op.length);
  return rc == 0 || (!nh && rc == -ENOENT);
}

void Committer::free_tenant(TenantSlot& t) {
  rte_fib_free(t.fib[0]);
  rte_fib_free(t.fib[1]);
  if (!t.name.empty() && !t.dir24_8) lpm_.destroy(uint32_t(&t - tenants_.data()));
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
  uint16_t rxd = uint16_t(rx_descriptors), txd = uint16_t(tx_descriptors);
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
  next->tenants[slot->second].nat.epoch = ++nat_->epochs;
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
  using clock = std::chrono::steady_clock;
  auto since = [](clock::time_point t) {
    return uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t).count());
  };
  auto start = clock::now();
  Build b(*this, diff, intent, version);
  // Each step builds its part of the next generation, phase by phase (slots before what
  // refers to them, removals before the grace period); one that fails undoes what the steps
  // before it did.
  for (int phase = 0; phase <= int(Phase::last); phase++)
    for (const Kind* k : kinds())
      for (const auto& step : k->build)
        if (step.run && int(step.phase) == phase)
          if (auto e = step.run(*this, b)) return e;
  build_counter_bases(b);
  last_timing_ = Timing{since(start)};

  // Publish, wait for every worker to have let go of the old generation, reclaim: in reverse
  // table order, users before what they use (a dead tenant's routes before its FIB copies).
  const Tables* previous = current();
  current_.store(b.next.release(), std::memory_order_release);
  auto grace_start = clock::now();
  if (params_.rcu) rte_rcu_qsbr_synchronize(params_.rcu, RTE_QSBR_THRID_INVALID);
  last_timing_.grace_ns = since(grace_start);
  auto reclaim_start = clock::now();
  for (auto it = kinds().rbegin(); it != kinds().rend(); ++it)
    if ((*it)->reclaim) (*it)->reclaim(*this, b);
  delete previous;
  last_timing_.reclaim_ns = since(reclaim_start);
  return std::nullopt;
}

// Counters start from what the slot's previous objects left (new slots only).
void Committer::build_counter_bases(Build& b) {
  Counters totals{};
  if ((b.need_totals || !b.new_rule_slots.empty()) && params_.totals) totals = params_.totals();
  for (uint16_t s : b.new_port_slots) bases_->ports[s] = totals.ports[s];
  for (uint16_t s : b.new_tenant_slots) bases_->tenants[s] = totals.tenants[s];
  for (uint16_t s : b.new_interface_slots) bases_->interfaces[s] = totals.interfaces[s];
  for (uint16_t s : b.new_rule_slots) bases_->rule_matched[s] = totals.rule_matched[s];
  for (uint16_t s : b.new_tenant_slots) bases_->nat[s] = totals.nat[s];
}

}  // namespace medix::dp
