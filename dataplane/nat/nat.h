#pragma once
// Crossing the IX core: policy, sessions and address translation (docs/nat.md).
//
// A packet crosses the core when a route leaks it from a tenant into the core and the core
// sends it on to another tenant (or out of a core interface, or to the core's own address).
// At that moment medix knows where the flow comes from (origin) and where it goes (exit), so
// one step does it all: find the flow's session, or create it if the policy permits, and
// rewrite source (the origin's static mapping or NAPT pool) and destination (the exit's).
//
// Sessions belong to one worker and live in its own tables: no locks, no atomics on the hot
// path. With several workers a flow is owned by the worker a hash of its core-side
// endpoints picks (NAPT flows: the worker whose port range holds the flow's pool port), and
// packets arriving elsewhere are handed to the owner, as for SAs.
#include <rte_ip_frag.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>

#include "nat/flow_table.h"
#include "tables/tables.h"

namespace medix::dp {

struct Worker;
struct Routed;

// TCP progress of a session (RFC 7857 timeouts follow from it).
enum TcpBits : uint8_t {
  tcp_syn_forward = 1,
  tcp_syn_reverse = 2,
  tcp_fin_forward = 4,
  tcp_fin_reverse = 8,
  tcp_rst = 16,
  tcp_seen_reverse = 32,  // any packet the other way
};

// One flow across the core. key[0]: its packets as they reach the core from the side that
// started it; key[1]: the replies as they reach the core from the other side. A packet matching
// key[d] is rewritten to look like the reverse of key[1 - d].
struct Session {
  // Odd while the owner writes; readers on other threads (listing) retry or skip.
  std::atomic<uint32_t> seq;
  uint8_t live;
  uint8_t tcp;    // TcpBits
  uint16_t rule;  // policy rule slot that permitted it
  FlowKey key[2];
  uint64_t last_seen;  // TSC
  // The generation it was made in: it is stale once either tenant's translation epoch (the
  // generation that last changed it) is later.
  uint32_t made;
  // The generation it was last proven in (its tenants, translations and policy as they were
  // then; 0: never), and, for that generation alone, where each direction goes once
  // translated: the next hop id its exit tenant's lookup found (0: not known). An established
  // packet whose session says so skips the core's and the exit's lookups (docs/nat.md "What
  // an established packet costs"); any commit moves the generation and they are learned again.
  uint32_t checked;
  uint16_t route[2];
  uint32_t mapping;  // NAPT mapping index + 1; 0: none
};
static_assert(sizeof(Session) == 64, "a session is one cache line");

struct Mapping {
  FlowKey inside, outside;
  uint32_t refs;  // sessions using it
  uint32_t epoch;
};

struct NatWorker {
  // FlowKey -> flow_value(session, direction) or flow_value(mapping, FlowTable::inside/outside).
  FlowTable index;
  Session* sessions = nullptr;
  Mapping* mappings = nullptr;
  uint32_t capacity = 0;  // sessions (and mappings)
  uint32_t* free_sessions = nullptr;
  uint32_t n_free_sessions = 0;
  uint32_t* free_mappings = nullptr;
  uint32_t n_free_mappings = 0;
  uint32_t sweep = 0;                // the next session the expiry sweep looks at
  uint32_t port_cursor = 0;          // where the NAPT port search starts
  uint32_t* sessions_of = nullptr;   // live sessions by origin tenant slot
  uint32_t* fragments_of = nullptr;  // fragments held for reassembly by origin tenant slot
  // Live sessions' keys by their tenant slot (both directions): a tenant with none has no
  // packet for nat_established before its lookup.
  uint32_t* keys_of = nullptr;
  rte_ip_frag_tbl* fragments = nullptr;
  rte_ip_frag_death_row death_row{};

  // The key a value of the index was made for (where it is stored: the session or mapping).
  const FlowKey& key_of(uint32_t value) const {
    uint32_t i = value >> 2;
    if (!(value & 2)) return sessions[i].key[value & 1];  // FlowTable::session_forward, session_reverse
    return value & 1 ? mappings[i].outside : mappings[i].inside;
  }
  uint32_t find(const FlowKey& key, uint32_t h) const {
    return index.find(key, h, [this](uint32_t v) -> const FlowKey& { return key_of(v); });
  }
  uint32_t find(const FlowKey& key) const { return find(key, flow_hash(key)); }
  // `key` must be absent, and stored where `value` says before it is added.
  bool insert(const FlowKey& key, uint32_t value) {
    return index.insert(flow_hash(key), value, [this](uint32_t v) -> const FlowKey& { return key_of(v); });
  }
  bool erase(const FlowKey& key, uint32_t value) { return index.erase(flow_hash(key), value); }
};

// Each worker's share of settings.max_sessions (at least 64): its sessions and NAPT mappings.
inline uint32_t sessions_per_worker(uint32_t max_sessions, unsigned workers) {
  return std::max<uint32_t>(64, max_sessions / workers);
}
// A tenant's sessions on a worker when its pool sets no session_limit (docs/fair-shares.md).
inline uint32_t default_session_share(uint32_t capacity) { return std::max<uint32_t>(1, capacity / 4); }
// A worker's index: two keys per session and two per NAPT mapping (at most one mapping per
// session).
inline uint32_t nat_index_buckets(uint32_t capacity) { return FlowTable::buckets_for(4 * capacity); }
// A worker's reassembly table: buckets, entries per bucket, packets at once.
inline constexpr uint32_t fragment_buckets = 1024, fragment_bucket_entries = 16, fragment_max_entries = 4096;
// The fragments a tenant may hold in a worker's reassembly table (docs/fair-shares.md): a
// quarter of its datagrams, so a tenant's fragment flood leaves the rest (and the buffers).
inline constexpr uint32_t fragment_tenant_share = fragment_max_entries / 4;

// Allocates one worker's tables (control side, before workers see them) for `capacity` sessions
// (sessions_per_worker); nullptr on failure.
NatWorker* nat_worker_create(unsigned queue, uint32_t capacity, unsigned socket);
void nat_worker_free(NatWorker* n);  // nullptr: nothing

// The stage: packets that cross the core now, from tenant meta.origin - 1 to meta.exit (IPv4
// header at meta.l2_len). Those translated come out in `out` (a packet may have changed: a
// reassembled one); the others were consumed: dropped and counted, held for reassembly, or
// handed to the worker that owns their session. Packets handed to this worker
// (`handed_off`) were routed in another generation of the tables: they come out in their exit
// tenant, to be looked up again (in the core: marked meta_crossed).
void nat_input(Worker& w, rte_mbuf** pkts, uint16_t n, bool handed_off, rte_mbuf** out, uint16_t& n_out);

// Established flows entering the core from a tenant: those whose session proves its kept
// route current (Session::checked, route) are translated here and come out in `known` with
// meta.tenant and meta.nexthop the exit tenant's route, to be routed by it (ip_route_crossed)
// without the core's lookup or the exit's; the rest are left in `pkts` (returned: how many) for
// the lookup and nat_input. Never drops, except as the session's policer says.
// `ahead` false: packets the lookup has just leaked into the core (meta.origin set). `ahead`
// true: packets before their first lookup, in the tenant they came in (not the core): a session
// whose key has that tenant, proven and routed in this generation, proves the tenant's own
// lookup too (the FIB of one generation gives the address the same route: into the core, as it
// did for the packet that taught the route), so it is skipped as well.
// Those whose route is a `via` next hop that their TTL and length allow go out at once, into
// out.fwd or out.tunnel, as ip_route_crossed would send them (until one of the burst does not:
// from there on all go to `known`, in order).
uint16_t nat_established(Worker& w, rte_mbuf** pkts, uint16_t n, bool ahead, rte_mbuf** known, uint16_t& n_known,
                         Routed& out);

// Packets nat_input translated (meta.session) that their exit tenant's lookup has just routed
// out or to us by next hop meta.nexthop: their sessions keep it for this generation.
void nat_learn(Worker& w, rte_mbuf** pkts, uint16_t n);

// A worker's housekeeping between bursts: ends a few idle sessions, frees fragments.
void nat_sweep(Worker& w);

// Which worker owns the session of this packet (its queue).
uint16_t nat_owner(const Worker& w, rte_mbuf* m, uint16_t origin, uint16_t exit);

// What a session looks like to a reader on another thread (the API).
struct SessionView {
  FlowKey key[2];
  uint8_t tcp;
  uint16_t rule;
  uint64_t last_seen;
  uint32_t made;
};

// An established packet moves its session's timer on only once it lags by a 64th of the timeout
// (a flow's packets leave the line clean in between), so a session ends that 64th later: never
// before its timeout (RFC 4787 REQ-5, RFC 5382 REQ-5 are minimums).
inline uint64_t timer_lag(uint64_t timeout) { return timeout >> 6; }
inline bool idle_past(uint64_t idle, uint64_t timeout) { return idle > timeout + timer_lag(timeout); }

// Idle timeout of a session, in TSC (RFC 7857: TCP by its progress).
inline uint64_t session_timeout(const uint64_t* timeouts, uint8_t protocol, uint8_t tcp) {
  switch (protocol) {
    case 6: {
      bool closing = (tcp & tcp_rst) || ((tcp & tcp_fin_forward) && (tcp & tcp_fin_reverse));
      bool established = (tcp & tcp_syn_forward) ? (tcp & tcp_syn_reverse) : (tcp & tcp_seen_reverse);
      return timeouts[!closing && established ? 0 : 1];  // SessionTimeout order
    }
    case 17: return timeouts[2];
    case 1: return timeouts[3];
    default: return timeouts[4];
  }
}

// Every live session of every worker, read lock-free while workers run; a session that
// changes under the reader is skipped (it was being made or ended).
template <typename F>
void for_each_session(NatWorker* const* workers, uint16_t n, F&& f) {
  if (!workers) return;
  for (uint16_t q = 0; q < n; q++) {
    const NatWorker& nw = *workers[q];
    for (uint32_t i = 0; i < nw.capacity; i++) {
      const Session& s = nw.sessions[i];
      uint32_t before = s.seq.load(std::memory_order_acquire);
      if ((before & 1) || !s.live) continue;
      SessionView v{{s.key[0], s.key[1]}, s.tcp, s.rule, s.last_seen, s.made};
      std::atomic_thread_fence(std::memory_order_acquire);
      if (s.seq.load(std::memory_order_relaxed) != before) continue;
      f(q, v);
    }
  }
}

}  // namespace medix::dp
