#pragma once
// The ground floor: a worker lcore's whole world — what it reads (tables, settings), what it
// owns (counters, tx buffers, pending queue, ICMP bucket), the per-packet metadata its stages
// share — and the few things every stage does (drop, send, originate). It calls no feature:
// stages live in their feature folders, and pipeline/ alone knows them all.
#include <rte_cycles.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring.h>

#include <algorithm>
#include <atomic>
#include <cstdint>

#define NO_COMPAT_IMB_API_053
#include <intel-ipsec-mb.h>

#include "infra/capture.h"
#include "infra/drop.h"
#include "infra/limits.h"
#include "infra/settings.h"
#include "infra/trace.h"
#include "tables/tables.h"

namespace medix::dp {

// Why a packet travels to another worker over its hand-off ring (set by hand_off(), read
// only off the ring, in one switch: pipeline/pipeline.cpp).
enum class Handoff : uint8_t {
  esp_decrypt,  // to the owner of its inbound SA
  esp_encrypt,  // to the owner of its outbound SA
  nat,          // to the owner of its session, to cross the core
  inject,       // from the exception port (IKE from the kernel): route it
  transmit,     // a whole frame the main lcore made (VRRP): send it on iface_out as it is
  esp_ordered,  // encrypted by any worker: to its spread SA's tx point, the owner (ipsec/order.h)
};

// Stored in each mbuf's private area (our pools reserve it).
struct PacketMeta {
  uint16_t iface_in;
  uint16_t tenant;  // the tenant the packet is in now (changes on a leak)
  uint16_t iface_out;
  uint8_t l2_len;  // bytes of Ethernet + tags as received
  uint8_t flags;
  uint32_t neighbour;  // the address to resolve on iface_out
  // Pending queue only: the interfaces' uids (a slot may be reused while the packet waits)
  // and when ARP gives up (TSC). Before it is routed, a spread SA's packet on its way to its
  // tx point carries other things in them (ipsec/esp.cpp, mark_ordered).
  uint32_t in_uid, out_uid;
  Handoff handoff;
  uint8_t trace_id;  // the trace session that stamped `trace` (infra/trace.h)
  // Pending queue and NAT reassembly only: the tenant slot whose share the packet takes.
  uint16_t parked_tenant;
  uint64_t deadline;
  // Crossing the core: the slot + 1 of the tenant the packet entered the core from (0: not
  // crossing, or it arrived on a core interface), where it leaves to, and the core's route
  // for it (a next hop id of this burst's generation).
  uint16_t origin;
  uint16_t exit;
  uint16_t nexthop;
  // Trace: the packet's entry + 1 in session trace_id, 0: not traced. Written at rx only while
  // a trace runs, read only then: stale outside it (and reset where medix-dp makes a packet).
  uint16_t trace;
  // Crossing the core, with meta_classed: the slot of the policy rule whose shaper class the
  // packet is in (qos.classed_rules).
  uint16_t rule;
  // Crossed by nat_input and not yet routed in its exit tenant: (session << 1 | direction) + 1
  // on this worker, whose route the lookup may teach it (nat_learn); 0: none. Zeroed at rx.
  uint32_t session;
};
static_assert(sizeof(PacketMeta) % RTE_MBUF_PRIV_ALIGN == 0);
// The pools round the private area up to a cache line (64 bytes): keep within it.
static_assert(sizeof(PacketMeta) == 48, "the private area is one cache line: keep it within");
inline constexpr uint16_t no_tenant = UINT16_MAX;
inline constexpr uint8_t meta_fragment = 1;    // larger than the egress MTU, DF clear
inline constexpr uint8_t meta_local = 2;       // made by medix-dp (ESP outer, ICMP): no TTL, no ICMP about it
inline constexpr uint8_t meta_crossed = 4;     // crossed the core already: route it in the core
inline constexpr uint8_t meta_translated = 8;  // rewritten by crossing: answers to it are routed back
inline constexpr uint8_t meta_held = 16;       // a fragment counted in parked_tenant's reassembly share
inline constexpr uint8_t meta_classed = 32;    // crossed by a rule that names a shaper class: meta.rule

inline PacketMeta& meta(rte_mbuf* m) { return *static_cast<PacketMeta*>(rte_mbuf_to_priv(m)); }

// Stages of the pipeline, for per-stage cycle accounting (VPP's `show runtime`).
#define MEDIX_STAGES(X) \
  X(rx)                 \
  X(l2_input)           \
  X(qos)                \
  X(arp) X(ip_input) X(ip_lookup) X(local) X(nat) X(esp_input) X(esp_output) X(ip_output) X(arp_pending) X(shape) X(tx)
enum class Stage : uint8_t {
#define MEDIX_STAGE_ENUM(name) name,
  MEDIX_STAGES(MEDIX_STAGE_ENUM)
#undef MEDIX_STAGE_ENUM
      count
};
inline constexpr const char* stage_names[] = {
#define MEDIX_STAGE_NAME(name) #name,
    MEDIX_STAGES(MEDIX_STAGE_NAME)
#undef MEDIX_STAGE_NAME
};

struct StageStats {
  uint64_t calls, packets, cycles;
};

// Written by one worker, read by anyone: single-writer counters, stored with relaxed atomics
// so readers on other threads see whole values.
struct Counters {
  struct Port {
    uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes, tx_dropped;
  } ports[max_ports];
  struct Interface {
    uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes;
  } interfaces[max_interfaces];
  // What the tenant was refused of the shared budgets is counted here too (docs/fair-shares.md).
  struct Tenant {
    uint64_t rx_packets, tx_packets, drops;
    uint64_t icmp_sent, icmp_rate_limited, arp_pending_limited, punt_policed;
    uint64_t fragments_limited, buffer_guarded;
    // ARP on the tenant's interfaces: a tenant's next hops resolved under noise show here.
    uint64_t arp_requests_sent, arp_replies_sent, arp_replies_received;
  } tenants[max_tenants];
  uint64_t drops[drop_reason_count];
  uint64_t icmp_sent, icmp_rate_limited, arp_requests_sent, arp_replies_sent, arp_replies_received, ike_punted,
      bgp_punted, bfd_punted;
  // Crossing the core, by the tenant flows start in (the origin).
  struct Nat {
    uint64_t sessions_created, sessions_ended, translated, mappings_created, mappings_ended, pool_exhausted,
        session_limit, no_mapping, policy_denied;
  } nat[max_tenants];
  uint64_t rule_matched[max_policy_rules];
  StageStats stages[unsigned(Stage::count)];
  // The worker loop itself: iterations, those that found nothing to do, and TSC cycles of the
  // busy ones and of all (busy share = busy_cycles / loop_cycles; the rest is headroom).
  uint64_t loops, empty_polls, busy_cycles, loop_cycles;
};

inline void bump(uint64_t& counter, uint64_t n = 1) { __atomic_store_n(&counter, counter + n, __ATOMIC_RELAXED); }
inline uint64_t load_counter(const uint64_t& counter) { return __atomic_load_n(&counter, __ATOMIC_RELAXED); }

// What a worker tells the main lcore it learned from ARP.
struct LearnedNeighbour {
  uint32_t address;
  uint16_t interface;  // slot
  uint8_t mac[6];
  uint32_t uid;  // of the interface, so that a reused slot is not taught a stale entry
};
static_assert(sizeof(LearnedNeighbour) == 16);

// ha_fenced: an outbound SA reached its HA fence (docs/ha.md, "The fence"): medix-cp rekeys it.
enum class SaEventKind : uint8_t { soft_expired = 1, hard_expired = 2, sequence_overflow = 3, ha_fenced = 4 };

// What a worker tells the control side about an SA's lifetime.
struct SaEventMessage {
  uint32_t spi;
  uint16_t tunnel;  // interface slot
  uint8_t kind;     // SaEventKind
  bool inbound;
  uint64_t packets, bytes, tsc;
};

// Packets between stages when one stage may emit more than a burst (fragments, hand-offs).
struct Batch {
  uint16_t n = 0;
  rte_mbuf* pkts[2 * burst_size];
  bool full() const { return n == std::size(pkts); }
};

// A port's frames on their way out, and their bytes summed as they are put in: tx_burst counts
// tx_bytes without reading them again (after rte_eth_tx_burst they are the driver's).
struct TxBuffer {
  uint16_t count;
  uint32_t bytes;
  rte_mbuf* pkts[2 * burst_size];
  void clear() { count = 0, bytes = 0; }
};

inline constexpr uint32_t pending_next_hops = 64;  // next hops a worker waits for at once
// The buffer pool guard (docs/fair-shares.md): when fewer than 1/8 of the pool's buffers are
// free, a tenant may hold at most 16 more in the pending queue or in reassembly.
inline constexpr uint32_t buffer_guard_low = 8, buffer_guard_share = 16;

struct PendingQueue {
  uint32_t count;
  uint64_t next_service;  // TSC
  rte_mbuf* pkts[max_pending];
  // The next hops packets wait for: ARP is asked once per 100 ms each, and a packet for a
  // next hop that has packets waiting queues behind them so that a flow is never reordered.
  struct Waiting {
    NeighbourSlotKey key;
    uint64_t asked_at;
    uint32_t packets;
    uint16_t tenant;  // whose share the entry takes
  } waiting[pending_next_hops];
  uint32_t n_waiting;
  // Each tenant's share in use (settings.arp_pending_tenant_limit): packets, next hops.
  uint16_t tenant_packets[max_tenants];
  uint16_t tenant_waiting[max_tenants];
};

// A token bucket: `rate` a second up to `burst`, refilled when asked; a taker may be told to
// leave `keep` tokens for others.
struct TokenBucket {
  double tokens;
  uint64_t at;  // TSC of the last refill
  bool take(uint64_t now, uint64_t hz, uint32_t rate, uint32_t burst, uint32_t keep = 0) {
    tokens = std::min<double>(burst, tokens + double(now - at) * rate / double(hz));
    at = now;
    if (tokens < 1 + keep) return false;
    tokens -= 1;
    return true;
  }
};

// A worker's per-tenant and per-source budgets (docs/fair-shares.md), allocated once: nothing
// per packet.
struct Shares {
  // ICMP errors, by tenant slot: the bucket starts full again when the slot's uid changes.
  struct TenantIcmp {
    TokenBucket bucket;
    uint32_t uid;
  } icmp[max_tenants];
  // IKE punted to medix-cp, by source address (and tenant): a small table hashed on both,
  // two ways a set; a new source takes the way used least recently.
  static constexpr unsigned punt_sets = 512, punt_ways = 2;
  struct PuntSource {
    uint32_t address;
    uint16_t tenant;
    bool used;
    TokenBucket bucket;
  } punt[punt_sets][punt_ways];
};

struct SyncWorker;  // nat/sync.h
struct EspJobs;     // ipsec/esp.h

struct alignas(RTE_CACHE_LINE_SIZE) Worker {
  unsigned lcore = 0;
  uint16_t queue = 0;              // rx and tx queue id on every port
  const Tables* tables = nullptr;  // this loop's generation
  const std::atomic<const Tables*>* published = nullptr;
  const std::atomic<bool>* stopping = nullptr;
  rte_rcu_qsbr* rcu = nullptr;
  Settings settings;
  rte_mempool* pool = nullptr;
  rte_mempool* indirect_pool = nullptr;
  rte_ring* learned = nullptr;
  uint64_t tsc_hz = 0;
  // ICMP error token bucket: the worker's cap, over every tenant's own (shares).
  uint64_t icmp_tokens_at = 0;
  double icmp_tokens = 0;
  Shares* shares = nullptr;
  Counters* counters = nullptr;
  TxBuffer* tx = nullptr;  // one per port
  PendingQueue* pending = nullptr;
  NeighbourCache* neighbour_cache = nullptr;  // nullptr: every lookup goes to the table
  // ESP: this worker's crypto state, every worker's hand-off ring (indexed by queue) and the
  // ring of SA lifetime events to the control side.
  IMB_MGR* mgr = nullptr;
  EspJobs* esp_jobs = nullptr;  // AES-CBC jobs in flight across bursts
  rte_ring* const* handoff = nullptr;
  rte_ring* sa_events = nullptr;
  uint16_t ip_id = 0;
  // Packets medix-dp made (ICMP about tunnel traffic, replies into tunnels) that still need a
  // route; the pipeline's next pass takes them.
  Batch* originated = nullptr;
  rte_ring* punt = nullptr;  // IKE to the exception port; nullptr: none configured
  rte_ring* vrrp = nullptr;  // VRRP adverts to the main lcore (vrrp/runner.h)
  // Packets for shaped interfaces, on their way to their shaper's queues (qos/).
  Batch* to_shape = nullptr;
  // The last next hop that did not answer ARP in time, (interface slot << 32) | address: the
  // control side names it in the log when the arp_timeout drops grow (runtime/dataplane.cpp).
  uint64_t arp_failed = 0;
  // The capture this loop iteration serves (nullptr: none, the usual case; read once a loop
  // from capture_published, set by the API thread: infra/capture.h).
  CaptureSession* capture = nullptr;
  const std::atomic<CaptureSession*>* capture_published = nullptr;
  // The trace this loop iteration serves, the same way (nullptr: none; infra/trace.h).
  TraceSession* trace = nullptr;
  const std::atomic<TraceSession*>* trace_published = nullptr;
  // The packet pool is low (fewer than 1/buffer_guard_low of it free, looked at once a
  // millisecond): a tenant may then hold only buffer_guard_share buffers beyond a burst.
  bool pool_low = false;
  uint64_t pool_checked_at = 0;
  // HA state sync (nat/sync.h; nullptr: not configured), and the node's role: while it is the
  // standby it crosses nothing (docs/ha.md).
  SyncWorker* sync = nullptr;
  const std::atomic<bool>* ha_standby = nullptr;
  // Per-stage TSC stamps (runtime's cycles), read once a loop: switched off, a stage's
  // accounting is two counter bumps a burst and no rte_rdtsc (docs/forwarding.md).
  bool timing = true;
  const std::atomic<bool>* timing_published = nullptr;
  uint64_t now = 0;           // TSC at the start of this burst
  uint64_t timeouts[5] = {};  // sessions, in TSC: SessionTimeout
};

enum SessionTimeout { timeout_tcp_established, timeout_tcp_transitory, timeout_udp, timeout_icmp, timeout_other };

// The one way a packet is dropped: counted by reason, and against its tenant.
void drop(Worker& w, rte_mbuf* m, Drop reason);
// Sends a port's buffered packets now (tx_full: what its queue did not take).
void tx_burst(Worker& w, uint16_t port, TxBuffer& b);
// Buffers a packet for a port's tx queue (flushed at the end of the loop, or when full).
// Inline, as send_out: called once a packet.
inline void send(Worker& w, uint16_t port, rte_mbuf* m) {
  const PortEntry& p = w.tables->ports[port];
  if (!p.live || p.admin_down) [[unlikely]] {
    drop(w, m, Drop::port_down);
    return;
  }
  TxBuffer& b = w.tx[port];
  b.pkts[b.count++] = m;
  b.bytes += rte_pktmbuf_pkt_len(m);
  // Full: push it out now rather than wait for the end of the loop.
  if (b.count == std::size(b.pkts)) [[unlikely]]
    tx_burst(w, port, b);
}
// Queues a packet for its shaped interface's class queues (w.to_shape, taken after each burst).
void queue_shaped(Worker& w, rte_mbuf* m);
// Sends a packet out of an interface of that port: to its shaper (w.to_shape) when the
// interface is shaped, else as send() does.
inline void send_out(Worker& w, uint16_t iface, uint16_t port, rte_mbuf* m) {
  const auto& shaper_of = w.tables->qos.shaper_of;
  if (iface < shaper_of.size() && shaper_of[iface] != qos::no_shaper) [[unlikely]] {
    queue_shaped(w, m);
    return;
  }
  send(w, port, m);
}
void flush_tx(Worker& w);
// Queues a packet medix-dp made for routing in the pipeline's next pass.
void originate(Worker& w, rte_mbuf* m);
// Hands a packet to another worker's ring (the owner of its SA or session).
void hand_off(Worker& w, uint16_t queue, rte_mbuf* m, Handoff why);
// The same for a burst, with one enqueue.
void hand_off_burst(Worker& w, uint16_t queue, rte_mbuf** pkts, uint16_t n, Handoff why);

}  // namespace medix::dp
