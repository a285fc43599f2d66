#include <rte_cycles.h>
#include <rte_malloc.h>

#include <new>
#include <string>

#include "control/build.h"
#include "nat/commit.h"
#include "nat/kinds.h"
#include "nat/nat.h"

namespace medix::dp {
namespace {

// The tenants whose translation the transaction changed: their sessions end.
std::set<std::string> translation_changed(const Diff& diff) {
  std::set<std::string> tenants;
  for (const auto& [key, change] : diff.of(v1::Object::kStaticMapping)) tenants.insert(key.mapping.tenant);
  for (const auto& [key, change] : diff.of(v1::Object::kNaptPool)) tenants.insert(key.name);
  return tenants;
}

}  // namespace

NatWorker* nat_worker_create(unsigned queue, uint32_t capacity, unsigned socket) {
  void* at = rte_zmalloc_socket("nat", sizeof(NatWorker), RTE_CACHE_LINE_SIZE, int(socket));
  if (!at) return nullptr;
  auto* n = new (at) NatWorker();
  n->index.n_buckets = nat_index_buckets(capacity);
  std::string name = "nat_index" + std::to_string(queue);
  n->index.buckets = static_cast<FlowTable::Bucket*>(rte_zmalloc_socket(
      name.c_str(), sizeof(FlowTable::Bucket) * uint64_t(n->index.n_buckets), RTE_CACHE_LINE_SIZE, int(socket)));
  n->capacity = capacity;
  n->sessions = static_cast<Session*>(
      rte_zmalloc_socket("sessions", sizeof(Session) * capacity, RTE_CACHE_LINE_SIZE, int(socket)));
  n->mappings = static_cast<Mapping*>(
      rte_zmalloc_socket("mappings", sizeof(Mapping) * capacity, RTE_CACHE_LINE_SIZE, int(socket)));
  n->free_sessions = static_cast<uint32_t*>(rte_malloc_socket("free_sessions", 4 * capacity, 0, int(socket)));
  n->free_mappings = static_cast<uint32_t*>(rte_malloc_socket("free_mappings", 4 * capacity, 0, int(socket)));
  n->sessions_of = static_cast<uint32_t*>(rte_zmalloc_socket("sessions_of", 4 * max_tenants, 0, int(socket)));
  n->fragments_of = static_cast<uint32_t*>(rte_zmalloc_socket("fragments_of", 4 * max_tenants, 0, int(socket)));
  n->keys_of = static_cast<uint32_t*>(rte_zmalloc_socket("keys_of", 4 * max_tenants, 0, int(socket)));
  // Packets of up to RTE_LIBRTE_IP_FRAG_MAX_FRAG fragments, given 2 s to complete.
  n->fragments = rte_ip_frag_table_create(fragment_buckets, fragment_bucket_entries, fragment_max_entries,
                                          rte_get_tsc_hz() * 2, int(socket));
  if (!n->index.buckets || !n->sessions || !n->mappings || !n->free_sessions || !n->free_mappings || !n->sessions_of ||
      !n->fragments_of || !n->keys_of || !n->fragments) {
    nat_worker_free(n);
    return nullptr;
  }
  for (uint32_t i = 0; i < capacity; i++) {
    n->free_sessions[i] = capacity - 1 - i;
    n->free_mappings[i] = capacity - 1 - i;
  }
  n->n_free_sessions = n->n_free_mappings = capacity;
  return n;
}

void nat_worker_free(NatWorker* n) {
  if (!n) return;
  rte_free(n->index.buckets);
  rte_free(n->sessions);
  rte_free(n->mappings);
  rte_free(n->free_sessions);
  rte_free(n->free_mappings);
  rte_free(n->sessions_of);
  rte_free(n->fragments_of);
  rte_free(n->keys_of);
  if (n->fragments) {
    rte_ip_frag_free_death_row(&n->death_row, 0);
    rte_ip_frag_table_destroy(n->fragments);
  }
  n->~NatWorker();
  rte_free(n);
}

namespace nat {
namespace {

// The core tenant, translations, policy rules and session tables of the next generation.
std::optional<Error> build_crossing(Kept& kept, const Committer::Params& params, const Diff& diff, const Intent& intent,
                                    Tables& next, const std::function<uint16_t(const std::string&)>& tenant_of,
                                    const std::vector<uint16_t>& new_tenant_slots,
                                    std::vector<uint16_t>& new_rule_slots) {
  auto changed = translation_changed(diff);
  next.core = UINT16_MAX;
  for (const auto& [name, t] : intent.tenants)
    if (t.core()) next.core = tenant_of(name);
  if (next.core != UINT16_MAX && kept.workers.empty()) {
    uint32_t per_worker = sessions_per_worker(params.max_sessions, params.queues);
    for (uint16_t q = 0; q < params.queues; q++) {
      NatWorker* n = nat_worker_create(q, per_worker, params.socket);
      if (!n) {
        for (NatWorker* made : kept.workers) nat_worker_free(made);
        kept.workers.clear();
        return Error{Code::resource_exhausted,
                     "cannot allocate the session tables (" + std::to_string(params.max_sessions) +
                         " sessions): " + more_memory + ", or lower settings.max_sessions",
                     v1::Object::KindCase::kTenant, ""};
      }
      kept.workers.push_back(n);
    }
  }
  next.nat = kept.workers.empty() ? nullptr : kept.workers.data();
  next.workers = params.queues;

  // Translations, rebuilt whole; the epoch changes where the translation did.
  for (uint16_t slot = 0; slot < next.tenants.size(); slot++) {
    TenantEntry& e = next.tenants[slot];
    if (!e.live) continue;
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
      x.session_limit = pool->second.session_limit();
    }
    // The tenant's own quota (static-only tenants have no pool) wins over its pool's.
    if (auto t = intent.tenants.find(e.name); t != intent.tenants.end() && t->second.session_limit())
      x.session_limit = t->second.session_limit();
    if (x.session_limit) x.session_limit = std::max<uint32_t>(1, (x.session_limit + params.queues - 1) / params.queues);
    x.epoch = fresh || !epoch || changed.count(e.name) ? next.generation : epoch;
    e.nat = std::move(x);
  }

  // Policy rules in the order they are tried, each with a counter slot.
  if (!diff.of(v1::Object::kPolicyRule).empty()) {
    for (auto it = kept.rule_slot.begin(); it != kept.rule_slot.end();) {
      if (intent.policy_rules.count(it->first)) {
        ++it;
      } else {
        kept.free_rules.push_back(it->second);
        it = kept.rule_slot.erase(it);
      }
    }
    kept.policy_epoch = next.generation;
  }
  // Never 0: a session synced from the peer (checked 0) asks the rules on its first packet.
  if (!kept.policy_epoch) kept.policy_epoch = next.generation;
  next.rules.clear();
  for (const auto& [name, r] : intent.policy_rules) {
    PolicyRuleEntry e;
    e.name = name;
    auto slot = kept.rule_slot.find(name);
    if (slot == kept.rule_slot.end()) {
      uint16_t s = uint16_t(kept.rule_slot.size());
      if (!kept.free_rules.empty()) {
        s = kept.free_rules.back();
        kept.free_rules.pop_back();
      }
      slot = kept.rule_slot.emplace(name, s).first;
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
  next.policy_epoch = kept.policy_epoch;
  return std::nullopt;
}

}  // namespace

// Translations and policy, rebuilt whole when tenants, mappings, pools or rules change.
std::optional<Error> build_translations(Committer::Build& b) {
  if (b.diff.of(v1::Object::kTenant).empty() && b.diff.of(v1::Object::kStaticMapping).empty() &&
      b.diff.of(v1::Object::kNaptPool).empty() && b.diff.of(v1::Object::kPolicyRule).empty())
    return std::nullopt;
  auto tenant_of = [&b](const std::string& name) { return b.tenant_of(name); };
  if (auto e = build_crossing(b.nat_kept(), b.c.params(), b.diff, b.intent, *b.next, tenant_of, b.new_tenant_slots,
                              b.new_rule_slots))
    return b.fail(e->code, e->message, e->kind, e->name);
  return std::nullopt;
}

}  // namespace nat
}  // namespace medix::dp
