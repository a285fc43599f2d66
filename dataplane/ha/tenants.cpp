// HA sync's tenants by name: the tables sent, and the peer's slots put in this node's.
#include "ha/tenants.h"

#include <algorithm>

#include "infra/limits.h"
#include "tables/tables.h"

namespace medix::dp::ha {

std::vector<SyncRecord> tenant_records(const Tables& t, uint64_t instance) {
  std::vector<std::pair<uint16_t, uint64_t>> entries;
  for (size_t slot = 0; slot < t.tenants.size() && slot < max_tenants; slot++)
    if (t.tenants[slot].live) entries.push_back({uint16_t(slot), tenant_sync_id(t.tenants[slot].name)});
  std::vector<SyncRecord> out;
  size_t at = 0;
  do {
    SyncRecord r{};
    r.kind = uint8_t(SyncKind::tenants);
    r.tenants.instance = instance;
    r.tenants.epoch = t.tenant_epoch;
    r.tenants.total = uint16_t(entries.size());
    r.tenants.first = uint16_t(at);
    while (r.tenants.count < tenant_entries_per_record && at < entries.size()) {
      r.tenants.slot[r.tenants.count] = entries[at].first;
      r.tenants.name[r.tenants.count++] = entries[at++].second;
    }
    out.push_back(r);
  } while (at < entries.size());
  return out;
}

void TenantMap::take(const SyncRecord* records, unsigned count) {
  for (unsigned i = 0; i < count; i++) {
    const auto& r = records[i].tenants;
    if (SyncKind(records[i].kind) != SyncKind::tenants) continue;
    if (r.instance != instance_) {
      forget_peer();  // a restart of the peer: its epochs begin again
      instance_ = r.instance;
    }
    if (r.instance != pending_instance_ || r.epoch != pending_epoch_ || r.total != pending_total_ ||
        pending_have_.empty()) {
      pending_instance_ = r.instance;
      pending_epoch_ = r.epoch;
      pending_total_ = r.total;
      pending_names_.assign(max_tenants, 0);
      pending_have_.assign(std::max<unsigned>(r.total, 1), false);
      pending_filled_ = 0;
    }
    for (unsigned e = 0; e < r.count; e++) {
      unsigned index = r.first + e;
      if (pending_have_[index]) continue;
      pending_have_[index] = true;
      pending_names_[r.slot[e]] = r.name[e];
      pending_filled_++;
    }
    if (pending_filled_ < pending_total_) continue;
    // Whole: kept (in place of one of the same epoch), the oldest dropped past tables_kept.
    std::erase_if(tables_, [&](const PeerTable& p) { return p.epoch == pending_epoch_; });
    if (tables_.size() == tables_kept) tables_.erase(tables_.begin());
    tables_.push_back(PeerTable{pending_epoch_, std::move(pending_names_)});
    pending_names_.clear();
    pending_have_.clear();
  }
}

void TenantMap::own(const Tables& t) {
  if (own_built_ && own_epoch_ == t.tenant_epoch) return;
  own_.clear();
  for (size_t slot = 0; slot < t.tenants.size(); slot++)
    if (t.tenants[slot].live) own_[tenant_sync_id(t.tenants[slot].name)] = uint16_t(slot);
  own_epoch_ = t.tenant_epoch;
  own_built_ = true;
}

void TenantMap::forget_peer() {
  tables_.clear();
  pending_have_.clear();
  pending_names_.clear();
  instance_ = 0;
}

const TenantMap::PeerTable* TenantMap::find(uint16_t epoch) const {
  for (const auto& p : tables_)
    if (p.epoch == epoch) return &p;
  return nullptr;
}

bool TenantMap::to_own(const PeerTable& table, uint16_t& slot) const {
  if (slot >= table.names.size() || !table.names[slot]) return false;
  auto it = own_.find(table.names[slot]);
  if (it == own_.end()) return false;
  slot = it->second;
  return true;
}

TenantMap::Result TenantMap::translate(SyncRecord& r) const {
  const PeerTable* table = find(r.s.tenant_epoch);
  if (!table || !own_built_) return Result::table_unknown;
  SyncRecord out = r;
  if (!to_own(*table, out.s.key[0].tenant) || !to_own(*table, out.s.key[1].tenant) ||
      (out.s.mapping_tenant != no_mapping_tenant && !to_own(*table, out.s.mapping_tenant)))
    return Result::tenant_unknown;
  out.s.tenant_epoch = own_epoch_;
  r = out;
  return Result::ok;
}

}  // namespace medix::dp::ha
