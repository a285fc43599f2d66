#pragma once
// HA sync's tenants by name (docs/ha.md, "Tenants by name"): the two nodes of a pair may give
// the same tenant different slots (slots go by creation order, and the config digest is
// order-free), so a session record's slots are the sender's. Each node sends its table of
// slots and tenant names (a tenants datagram, on each change and every second); a record says
// which of the sender's tables (Tables::tenant_epoch) its slots are in, and the receiver puts
// them in its own slots by name before a worker sees it. A record whose table it has not got,
// or with a tenant it lacks, is refused and counted: never installed in another tenant.
#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "nat/sync.h"

namespace medix::dp {
struct Tables;
}

namespace medix::dp::ha {

// A tenant's name as a 64-bit id (FNV-1a, as sa_tunnel_id; never 0, which is "no tenant").
inline uint64_t tenant_sync_id(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325;
  for (char c : name) h = (h ^ uint8_t(c)) * 0x100000001b3;
  return h ? h : 1;
}

// This node's table as records (SyncKind::tenants, at least one: an empty table says so).
std::vector<SyncRecord> tenant_records(const Tables& t, uint64_t instance);

class TenantMap {
 public:
  enum class Result { ok, table_unknown, tenant_unknown };
  // Tables of the peer kept: a record made under one of them may still be on its way.
  static constexpr unsigned tables_kept = 8;

  // The peer's records of a tenants datagram (wire-checked); a table complete is kept.
  void take(const SyncRecord* records, unsigned count);
  // This node's tenants now (the sync thread, before each datagram): rebuilt on a change.
  void own(const Tables& t);
  // A session record of the peer into this node's slots; left as it was unless ok.
  Result translate(SyncRecord& r) const;
  // The peer restarted or went silent: its epochs may start again.
  void forget_peer();
  bool knows(uint16_t epoch) const { return find(epoch) != nullptr; }

 private:
  struct PeerTable {
    uint16_t epoch = 0;
    std::vector<uint64_t> names;  // by the peer's slot; 0: no tenant
  };
  const PeerTable* find(uint16_t epoch) const;
  bool to_own(const PeerTable& table, uint16_t& slot) const;

  uint64_t instance_ = 0;
  std::vector<PeerTable> tables_;  // the oldest first
  // A table being received: its instance and epoch, entries filled.
  uint64_t pending_instance_ = 0;
  uint16_t pending_epoch_ = 0;
  std::vector<uint64_t> pending_names_;  // by the peer's slot
  std::vector<bool> pending_have_;       // by entry index
  unsigned pending_filled_ = 0, pending_total_ = 0;
  // This node's: name id -> slot, for its tenant_epoch (0: not built).
  uint16_t own_epoch_ = 0;
  bool own_built_ = false;
  std::unordered_map<uint64_t, uint16_t> own_;
};

}  // namespace medix::dp::ha
