#pragma once
// HA state sync, the workers' side (docs/ha.md): what a worker tells the sync thread about the
// sessions it makes and ends, and what a standby's worker is handed to install. Fixed-size
// records through per-worker rte_rings: nothing allocated, locked or asked of the kernel on a
// worker; a full ring drops the record and counts it (the next bulk resync heals).
#include <cstdint>

#include "nat/nat.h"

namespace medix::dp {

enum class SyncKind : uint8_t {
  session = 1,      // made, or still alive (bulk and refresh): install or refresh
  session_end = 2,  // ended on the active: end it here
  sa_outbound = 3,  // an outbound SA's last sequence number (value)
  sa_inbound = 4,   // an inbound SA's highest accepted sequence number (value)
  sa_takeover = 5,  // standby to active: the worker advances its SA (slot) to value
  config = 6,       // in a hello: the sender's intent digest (control/digest.h)
  // Never on the wire: a session of a draining peer, for an active worker: installed unless
  // this worker has the flow or its translation already (its own is kept).
  session_overlap = 7,
  forget = 8,  // active to standby: the worker ends every session it has (never sent)
  sa_ack = 9,  // in a standby's hello: the counter (value) of the last datagram of a round of SA records it took whole
  tenants = 10,  // in a tenants datagram: part of the sender's table of tenant slots (ha/tenants.h)
};

// sa_outbound: the sender sends on the SA with no fence (docs/ha.md, "The fence"): a node taking
// over from this value cannot bound what it sends. 0 from a build before it (those bytes zero).
enum SaRecordFlags : uint8_t { sa_unfenced = 1 };

// One record, on rings and (as it is) on the wire: 56 bytes.
struct SyncRecord {
  uint8_t kind;    // SyncKind
  uint8_t tcp;     // the session's TcpBits
  uint16_t queue;  // the worker that owns the session or SA
  uint32_t idle_ms;
  union {
    struct {
      FlowKey key[2];  // as Session::key
      // The NAPT mapping the session uses: tenant no_mapping when none.
      uint32_t inside_ip, outside_ip;
      uint16_t inside_port, outside_port;
      uint16_t mapping_tenant;
      // The sender's tenant table (Tables::tenant_epoch) whose slots key[].tenant and
      // mapping_tenant are: the receiver puts them in its own slots by the tenants' names.
      uint16_t tenant_epoch;
    } s;
    struct {
      uint32_t spi;
      uint16_t slot;  // sa_takeover: the SA's slot on this node
      uint8_t inbound;
      uint8_t flags;  // SaRecordFlags
      uint64_t value;
      // sa_outbound, sa_inbound: the SA's tunnel (SaState::tunnel_id). 0 from a build before it
      // (those bytes were zero): such a record names the SA by SPI alone.
      uint64_t tunnel;
    } sa;
    struct {
      uint64_t digest[2];
      uint64_t objects;
    } config;
    struct {
      uint64_t instance;  // the sender's start (ns): its epochs are of this run
      uint16_t epoch;     // Tables::tenant_epoch
      uint16_t total;     // live tenants in the table
      uint16_t first;     // the table's entry the first one here is
      uint16_t count;     // entries here (tenant_entries_per_record at most)
      uint16_t slot[3];
      uint16_t reserved;
      uint64_t name[3];  // tenant_sync_id() of the tenant in slot[i]
    } tenants;
  };
};
static_assert(sizeof(SyncRecord) == 56);
inline constexpr uint16_t no_mapping_tenant = 0xffff;
inline constexpr unsigned tenant_entries_per_record = 3;
// Each worker's rings (runtime/dataplane.cpp makes them; --check counts them).
inline constexpr unsigned sync_out_ring_size = 16384;
inline constexpr unsigned sync_in_ring_size = 65536;

// The worker's rings and what it counts of them (written by the worker alone).
struct SyncWorker {
  rte_ring* out = nullptr;  // worker -> sync thread
  rte_ring* in = nullptr;   // sync thread -> worker (standby installs, takeover)
  uint64_t ring_full, installed, refreshed, removed, install_failed, sas_advanced;
  // A forget under way: the next session slot to look at, a chunk a call (a worker that ended a
  // million sessions at once would miss its VRRP adverts); forgets_done counts those finished
  // (the sync thread asks for its resync after).
  bool forgetting;
  uint32_t forget_at;
  uint64_t forgets_done;
};
inline constexpr uint32_t forget_chunk = 256;  // session slots a sync_install call looks at

// A session as a record (the owner worker, or a reader on another thread under the session's
// seq check), its tenants by slot in `t`. `now`/`hz`: TSC, for idle_ms.
SyncRecord session_record(const Tables& t, const NatWorker& nw, const Session& s, uint16_t queue, uint64_t now,
                          uint64_t hz);

// Worker, between bursts: installs up to a burst of records the sync thread handed it.
void sync_install(Worker& w);

}  // namespace medix::dp
