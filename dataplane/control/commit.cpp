#include "control/commit.h"

#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_jhash.h>
#include <rte_malloc.h>

#include <chrono>

#include "control/build.h"
#include "control/kinds.h"
#include "ip/commit.h"
#include "ipsec/commit.h"
#include "l2/commit.h"
#include "nat/commit.h"
#include "nat/nat.h"

namespace medix::dp {

Committer::Committer()
    : l2_(std::make_unique<l2::Kept>()),
      ip_(std::make_unique<ip::Kept>()),
      ipsec_(std::make_unique<ipsec::Kept>()),
      nat_(std::make_unique<nat::Kept>()) {}

Committer::~Committer() {
  delete current();
  for (NatWorker* n : nat_->workers) nat_worker_free(n);
  for (SaState* sa : ipsec_->sas) rte_free(sa);
  rte_hash_free(ipsec_->sa_index);
  if (ipsec_->mgr) free_mb_mgr(ipsec_->mgr);
  for (auto& t : ip_->tenants) ip::free_tenant(*ip_, t);
  neighbours_.destroy();
  rte_free(ip_->nexthops);
  rte_free(bases_);
}

std::optional<std::string> Committer::init(const Params& params) {
  params_ = params;
  ip::Kept& ip = *ip_;
  ip.nexthops =
      static_cast<Nexthop*>(rte_zmalloc("nexthops", sizeof(Nexthop) * (max_nexthops + 1), RTE_CACHE_LINE_SIZE));
  bases_ = static_cast<Counters*>(rte_zmalloc("bases", sizeof(Counters), RTE_CACHE_LINE_SIZE));
  if (!ip.nexthops || !bases_ || !neighbours_.init("neighbours", params.socket))
    return std::string("cannot allocate the tables: ") + more_memory;
  if (auto e = ip.lpm.init(std::max<uint32_t>(2, params.fib_plies))) return *e;
  ip.nexthop_refs.assign(max_nexthops + 1, 0);
  for (uint16_t id = max_nexthops; id >= 1; id--) ip.free_nexthops.push_back(id);  // 0 is "no route"
  ipsec::Kept& ipsec = *ipsec_;
  ipsec.mgr = alloc_mb_mgr(0);
  if (!ipsec.mgr) return "cannot allocate Intel IPsec-MB state";
  init_mb_mgr_auto(ipsec.mgr, nullptr);
  ipsec.sas.assign(max_sas, nullptr);
  for (uint16_t slot = max_sas - 1; slot >= 1; slot--) ipsec.free_sas.push_back(slot);
  rte_hash_parameters hp = hash_parameters(sa_index_shape, "sa_index", rte_jhash, params.socket);
  ipsec.sa_index = rte_hash_create(&hp);
  if (!ipsec.sa_index) return std::string("cannot allocate the SA index: ") + more_memory;
  auto* empty = new Tables();
  empty->nexthops = ip.nexthops;
  empty->plies = ip.lpm.plies();
  empty->neighbours = &neighbours_;
  empty->sas = ipsec.sas.data();
  empty->sa_index = ipsec.sa_index;
  current_.store(empty, std::memory_order_release);
  return std::nullopt;
}

void Committer::for_each_sa(const std::function<void(const SaKey& key, const SaState& sa)>& f) const {
  for (const auto& [key, slot] : ipsec_->sa_slot) f(key, *ipsec_->sas[slot]);
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
  auto slot = tenant_slot(tenant);
  if (!slot) return false;
  auto next = std::make_unique<Tables>(*current());
  next->generation = ++generations_;
  next->tenants[*slot].nat.epoch = next->generation;
  const Tables* previous = current();
  current_.store(next.release(), std::memory_order_release);
  if (params_.rcu) rte_rcu_qsbr_synchronize(params_.rcu, RTE_QSBR_THRID_INVALID);
  delete previous;
  return true;
}

void Committer::stop_ports() {
  for (auto& p : l2_->ports)
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
          if (auto e = step.run(b)) return e;
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
    if ((*it)->reclaim) (*it)->reclaim(b);
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
