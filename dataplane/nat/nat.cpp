// Crossing the IX core: find or make the flow's session (policy on creation), translate.
#include "nat/nat.h"

#include <rte_cycles.h>
#include <rte_hash_crc.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_prefetch.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include <new>
#include <optional>
#include <string>

#include "infra/checksum.h"
#include "ip/ip.h"
#include "ipsec/sa.h"
#include "nat/sync.h"

namespace medix::dp {

namespace {

// What crossing needs of a packet's headers.
struct Flow {
  rte_ipv4_hdr* ip;
  uint8_t* l4;       // nullptr: a protocol without ports
  uint8_t protocol;  // of the packet, or of the packet an ICMP error quotes
  uint16_t sport, dport;
  uint8_t tcp_flags;
  bool creates;          // may start a session
  rte_ipv4_hdr* quoted;  // ICMP errors: the packet they are about
  uint8_t* quoted_l4;
};

inline uint32_t ipv4_src(const rte_ipv4_hdr* ip) { return rte_be_to_cpu_32(ip->src_addr); }
inline uint32_t ipv4_dst(const rte_ipv4_hdr* ip) { return rte_be_to_cpu_32(ip->dst_addr); }

// Ports of a TCP/UDP header, or the identifier of an ICMP echo (in both).
[[gnu::always_inline]] inline bool ports_of(uint8_t protocol, const uint8_t* l4, uint16_t& sport, uint16_t& dport,
                                            bool& echo_request) {
  echo_request = false;
  switch (protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
      sport = rte_be_to_cpu_16(load16(l4));
      dport = rte_be_to_cpu_16(load16(l4 + 2));
      return true;
    case IPPROTO_ICMP: {
      uint8_t type = l4[0];
      if (type != RTE_IP_ICMP_ECHO_REQUEST && type != RTE_IP_ICMP_ECHO_REPLY) return false;
      echo_request = type == RTE_IP_ICMP_ECHO_REQUEST;
      sport = dport = rte_be_to_cpu_16(load16(l4 + 4));
      return true;
    }
    default: sport = dport = 0; return true;
  }
}

// Parses what crossing needs; false: `why` names the drop reason. (Not std::optional<Drop>: its
// byte stored and read back as a word stalled store forwarding, ~10 cycles a packet.)
[[gnu::always_inline]] inline bool parse(rte_mbuf* m, Flow& f, Drop& why) {
  uint8_t l2 = meta(m).l2_len;
  f = Flow{};
  f.ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l2);
  uint32_t ihl = uint32_t(f.ip->version_ihl & 0xf) * 4;
  uint32_t in_first = rte_pktmbuf_data_len(m) - l2 - ihl;  // L4 bytes in the first segment
  uint32_t l4_len = rte_be_to_cpu_16(f.ip->total_length) - ihl;
  f.protocol = f.ip->next_proto_id;
  uint8_t* l4 = reinterpret_cast<uint8_t*>(f.ip) + ihl;
  uint32_t need = f.protocol == IPPROTO_TCP    ? sizeof(rte_tcp_hdr)
                  : f.protocol == IPPROTO_UDP  ? 8
                  : f.protocol == IPPROTO_ICMP ? 8
                                               : 0;
  if (l4_len < need || in_first < need) {
    why = Drop::nat_truncated;
    return false;
  }
  if (!need) {
    f.creates = true;
    return true;
  }
  f.l4 = l4;
  if (f.protocol == IPPROTO_ICMP) {
    uint8_t type = l4[0];
    if (type == 3 /* unreachable */ || type == 11 /* time exceeded */ || type == 12 /* parameter problem */) {
      // The quoted packet: its header and at least 8 bytes of its L4 (RFC 792).
      if (l4_len < 8 + sizeof(rte_ipv4_hdr) || in_first < 8 + sizeof(rte_ipv4_hdr)) {
        why = Drop::nat_truncated;
        return false;
      }
      f.quoted = reinterpret_cast<rte_ipv4_hdr*>(l4 + 8);
      uint32_t qihl = uint32_t(f.quoted->version_ihl & 0xf) * 4;
      if (qihl < sizeof(rte_ipv4_hdr) || 8 + qihl + 8 > std::min(l4_len, in_first)) {
        why = Drop::nat_truncated;
        return false;
      }
      f.quoted_l4 = l4 + 8 + qihl;
      bool request;
      if (!ports_of(f.quoted->next_proto_id, f.quoted_l4, f.sport, f.dport, request)) {
        why = Drop::nat_unsupported;
        return false;
      }
      f.protocol = f.quoted->next_proto_id;
      return true;
    }
  }
  bool request = false;
  if (!ports_of(f.protocol, l4, f.sport, f.dport, request)) {
    why = Drop::nat_unsupported;
    return false;
  }
  if (f.protocol == IPPROTO_TCP) {
    f.tcp_flags = reinterpret_cast<rte_tcp_hdr*>(l4)->tcp_flags;
    f.creates = !(f.tcp_flags & RTE_TCP_RST_FLAG);
  } else {
    f.creates = f.protocol == IPPROTO_UDP || request;
  }
  return true;
}

// What nat_established needs of a packet: its session key's words, built in registers from the
// headers (no Flow stored: parse's, zeroed and written field by field for a later loop to read
// back, cost ~4 cycles a packet more; docs/nat.md, step C5). False: a packet that
// parse would drop or nat_input treats otherwise (truncated, an ICMP error, ICMP other than
// echo): the long way.
[[gnu::always_inline]] inline bool established_words(rte_mbuf* m, const rte_ipv4_hdr* ip, uint16_t from,
                                                     FlowWords& words) {
  uint32_t ihl = uint32_t(ip->version_ihl & 0xf) * 4;
  uint32_t in_first = rte_pktmbuf_data_len(m) - meta(m).l2_len - ihl;
  uint32_t l4_len = rte_be_to_cpu_16(ip->total_length) - ihl;
  uint32_t room = std::min(in_first, l4_len);  // as parse: both wrap where ihl is past them
  uint8_t protocol = ip->next_proto_id;
  const uint8_t* l4 = reinterpret_cast<const uint8_t*>(ip) + ihl;
  uint32_t ports;  // source port in the low half, destination in the high, host order
  if (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP) [[likely]] {
    if (room < (protocol == IPPROTO_TCP ? sizeof(rte_tcp_hdr) : sizeof(rte_udp_hdr))) return false;
    uint32_t both;  // as they lie: source first, big-endian
    std::memcpy(&both, l4, 4);
    both = rte_bswap32(both);  // destination low, source high
    ports = both << 16 | both >> 16;
  } else if (protocol == IPPROTO_ICMP) {
    if (room < 8 || (l4[0] != RTE_IP_ICMP_ECHO_REQUEST && l4[0] != RTE_IP_ICMP_ECHO_REPLY)) return false;
    uint32_t id = rte_be_to_cpu_16(load16(l4 + 4));
    ports = id << 16 | id;
  } else {
    ports = 0;
  }
  words = FlowWords(ipv4_src(ip), ipv4_dst(ip), uint16_t(ports), uint16_t(ports >> 16), from, protocol, flow_session);
  return true;
}

// The Flow translate needs of a packet established_words took (its protocol the key's).
[[gnu::always_inline]] inline Flow established_flow(rte_ipv4_hdr* ip, uint8_t protocol) {
  Flow f{};
  f.ip = ip;
  f.protocol = protocol;
  uint8_t* l4 = reinterpret_cast<uint8_t*>(ip) + uint32_t(ip->version_ihl & 0xf) * 4;
  if (protocol == IPPROTO_TCP || protocol == IPPROTO_UDP || protocol == IPPROTO_ICMP) f.l4 = l4;
  if (protocol == IPPROTO_TCP) f.tcp_flags = reinterpret_cast<const rte_tcp_hdr*>(l4)->tcp_flags;
  return f;
}

// RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), with the changes of several words summed first (32
// bits at a time, in 64: no carry lost) and folded once: the result is the one the replacements
// one after the other give (both the representative in [1, 0xffff] of the same sum mod 0xffff,
// or 0 for an all-zero sum), for a third of their folds.
inline uint64_t change32(uint32_t old_word, uint32_t new_word) { return uint64_t(~old_word) + new_word; }
inline uint16_t checksum_apply(uint16_t checksum, uint64_t changes) {
  uint64_t sum = uint64_t(uint16_t(~checksum)) + changes;
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

// Rewrites addresses and ports (host order), checksums updated incrementally (RFC 1624). `ttl`:
// the TTL decremented too (the caller routes the packet: TTL > 1), folded into the same update
// of the header's checksum (as decrement_ttl's: its word's change is -1 in the bytes' order).
[[gnu::always_inline]] inline void rewrite(const Flow& f, uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport,
                                           bool ttl = false) {
  rte_ipv4_hdr* ip = f.ip;
  uint32_t old_src = ip->src_addr, old_dst = ip->dst_addr;
  uint32_t new_src = rte_cpu_to_be_32(src), new_dst = rte_cpu_to_be_32(dst);
  ip->src_addr = new_src;
  ip->dst_addr = new_dst;
  ip->time_to_live = uint8_t(ip->time_to_live - ttl);
  uint64_t addresses = change32(old_src, new_src) + change32(old_dst, new_dst);
  ip->hdr_checksum = checksum_apply(ip->hdr_checksum, addresses + (ttl ? rte_cpu_to_be_16(0xfeff) : 0));
  if (!f.l4) return;
  switch (f.protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP: {
      // Both ports as the one word they lie in (source first, little-endian).
      uint32_t old_ports, new_ports = uint32_t(rte_cpu_to_be_16(dport)) << 16 | rte_cpu_to_be_16(sport);
      std::memcpy(&old_ports, f.l4, 4);
      std::memcpy(f.l4, &new_ports, 4);
      uint8_t* sum =
          f.l4 + (f.protocol == IPPROTO_TCP ? offsetof(rte_tcp_hdr, cksum) : offsetof(rte_udp_hdr, dgram_cksum));
      if (f.protocol == IPPROTO_UDP && load16(sum) == 0) return;  // no checksum: stays so (RFC 768)
      uint16_t c = checksum_apply(load16(sum), addresses + change32(old_ports, new_ports));
      if (f.protocol == IPPROTO_UDP && c == 0) c = 0xffff;
      std::memcpy(sum, &c, 2);
      return;
    }
    case IPPROTO_ICMP: {
      auto* icmp = reinterpret_cast<rte_icmp_hdr*>(f.l4);
      uint16_t old_id = icmp->icmp_ident, new_id = rte_cpu_to_be_16(sport);
      icmp->icmp_ident = new_id;
      icmp->icmp_cksum = checksum_replace16(icmp->icmp_cksum, old_id, new_id);
      return;
    }
    default: return;
  }
}

// An ICMP error about a packet of the session's other direction: the outer header goes as a
// packet of this direction would, the quoted packet back to how it looked before it crossed
// (RFC 5508). `to` is the session's key of the quoted packet's direction.
void rewrite_error(rte_mbuf* m, const Flow& f, const FlowKey& to, uint32_t outer_src) {
  rte_ipv4_hdr* q = f.quoted;
  uint32_t old_src = q->src_addr, old_dst = q->dst_addr;
  uint32_t new_src = rte_cpu_to_be_32(to.src), new_dst = rte_cpu_to_be_32(to.dst);
  q->src_addr = new_src;
  q->dst_addr = new_dst;
  q->hdr_checksum = 0;
  q->hdr_checksum = rte_ipv4_cksum(q);
  uint8_t* l4 = f.quoted_l4;
  uint8_t* end = reinterpret_cast<uint8_t*>(f.ip) + rte_be_to_cpu_16(f.ip->total_length);
  switch (f.protocol) {
    case IPPROTO_TCP:
    case IPPROTO_UDP: {
      uint16_t old_sport = load16(l4), old_dport = load16(l4 + 2);
      uint16_t new_sport = rte_cpu_to_be_16(to.sport), new_dport = rte_cpu_to_be_16(to.dport);
      std::memcpy(l4, &new_sport, 2);
      std::memcpy(l4 + 2, &new_dport, 2);
      // The quoted L4 checksum, where the quote reaches it.
      uint8_t* sum = l4 + (f.protocol == IPPROTO_TCP ? 16 : 6);
      if (sum + 2 <= end && !(f.protocol == IPPROTO_UDP && load16(sum) == 0)) {
        uint16_t c = checksum_replace32(checksum_replace32(load16(sum), old_src, new_src), old_dst, new_dst);
        c = checksum_replace16(checksum_replace16(c, old_sport, new_sport), old_dport, new_dport);
        std::memcpy(sum, &c, 2);
      }
      break;
    }
    case IPPROTO_ICMP: {
      uint16_t old_id = load16(l4 + 4), new_id = rte_cpu_to_be_16(to.sport);
      std::memcpy(l4 + 4, &new_id, 2);
      uint16_t c = checksum_replace16(load16(l4 + 2), old_id, new_id);
      std::memcpy(l4 + 2, &c, 2);
      break;
    }
    default: break;
  }
  // Outer: addresses, then the ICMP checksum over the whole (small) message.
  rte_ipv4_hdr* ip = f.ip;
  ip->src_addr = rte_cpu_to_be_32(outer_src);
  ip->dst_addr = rte_cpu_to_be_32(to.src);
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  auto* icmp = reinterpret_cast<rte_icmp_hdr*>(f.l4);
  icmp->icmp_cksum = 0;
  // Over every segment: a reassembled error is a chain.
  uint16_t sum = 0;
  uint32_t l4_off = uint32_t(f.l4 - rte_pktmbuf_mtod(m, uint8_t*));
  rte_raw_cksum_mbuf(m, l4_off, uint32_t(end - f.l4), &sum);
  icmp->icmp_cksum = uint16_t(~sum);
}

const Translation* translation_of(const Tables& t, uint16_t tenant) {
  if (tenant == t.core || tenant >= t.tenants.size()) return nullptr;
  const Translation& x = t.tenants[tenant].nat;
  return x.any() ? &x : nullptr;
}

// The static mapping of `ip` into the core, or of a core address into the tenant.
std::optional<uint32_t> map_out(const Translation& x, uint32_t ip) {
  for (const auto& s : x.maps)
    if ((ip & s.mask) == s.inside) return s.core | (ip & ~s.mask);
  return std::nullopt;
}
std::optional<uint32_t> map_in(const Translation& x, uint32_t ip) {
  for (const auto& s : x.maps)
    if ((ip & s.mask) == s.core) return s.inside | (ip & ~s.mask);
  return std::nullopt;
}

uint64_t timeout_of(const Worker& w, const Session& s) { return session_timeout(w.timeouts, s.key[0].protocol, s.tcp); }

// A tenant of the session is gone, or its translation changed after the session was made.
bool stale(const Tables& t, const Session& s) {
  for (int d = 0; d < 2; d++) {
    uint16_t tenant = s.key[d].tenant;
    if (tenant >= t.tenants.size() || !t.tenants[tenant].live || t.tenants[tenant].nat.epoch > s.made) return true;
  }
  return false;
}

void release_mapping(Worker& w, NatWorker& nw, uint32_t index) {
  Mapping& mp = nw.mappings[index];
  if (--mp.refs) return;
  nw.erase(mp.inside, flow_value(index, FlowTable::inside));
  nw.erase(mp.outside, flow_value(index, FlowTable::outside));
  bump(w.counters->nat[mp.inside.tenant].mappings_ended);
  nw.free_mappings[nw.n_free_mappings++] = index;
}

// To the sync thread: a session made or ended (HA, nat/sync.h). A full ring loses the record,
// counted; the active's periodic refresh and the next bulk resync heal it.
void sync_push(Worker& w, const NatWorker& nw, uint32_t index, SyncKind kind) {
  SyncRecord r = session_record(*w.tables, nw, nw.sessions[index], w.queue, w.now, w.tsc_hz);
  r.kind = uint8_t(kind);
  if (rte_ring_sp_enqueue_elem(w.sync->out, &r, sizeof r) != 0) bump(w.sync->ring_full);
}

void end_session(Worker& w, NatWorker& nw, uint32_t index, bool tell_peer = true) {
  Session& s = nw.sessions[index];
  if (w.sync && tell_peer) [[unlikely]]
    sync_push(w, nw, index, SyncKind::session_end);
  uint32_t seq = s.seq.load(std::memory_order_relaxed);
  s.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  nw.erase(s.key[0], flow_value(index, FlowTable::session_forward));
  nw.erase(s.key[1], flow_value(index, FlowTable::session_reverse));
  if (s.mapping) release_mapping(w, nw, s.mapping - 1);
  uint16_t origin = s.key[0].tenant;
  if (nw.sessions_of[origin]) nw.sessions_of[origin]--;
  nw.keys_of[s.key[0].tenant]--;
  nw.keys_of[s.key[1].tenant]--;
  bump(w.counters->nat[origin].sessions_ended);
  s.live = 0;
  s.mapping = 0;
  s.seq.store(seq + 2, std::memory_order_release);
  nw.free_sessions[nw.n_free_sessions++] = index;
}

// The first rule that matches decides; none: deny.
const PolicyRuleEntry* decide(const Tables& t, uint16_t from, uint16_t to, uint32_t dst, uint8_t protocol,
                              uint16_t dport) {
  for (const auto& r : t.rules) {
    if (r.from != any_tenant && r.from != from) continue;
    if (r.to != any_tenant && r.to != to) continue;
    if ((dst & r.mask) != r.prefix) continue;
    if (r.protocol && r.protocol != protocol) continue;
    if (dport < r.port_low || dport > r.port_high) continue;
    return &r;
  }
  return nullptr;
}

// No port reserved for a flow (warm_new_flows).
constexpr uint32_t no_port = UINT32_MAX;

// The pool address a NAPT tenant's inside address is paired with.
uint32_t napt_address(const Translation& x, uint16_t tenant, uint32_t ip) {
  return x.pool_address(rte_hash_crc_4byte(ip, tenant) % x.pool_size);
}

// Ports port_low + queue + k * workers are this worker's: the owner of a reply is then known
// from its destination port alone. `mine`: how many; slot k (< mine) is the k-th.
uint32_t napt_ports_mine(const Translation& x, uint32_t queue, uint32_t workers) {
  uint32_t span = uint32_t(x.port_high - x.port_low) + 1;
  return span > queue ? (span - queue + workers - 1) / workers : 0;
}
uint16_t napt_port(const Translation& x, uint32_t queue, uint32_t workers, uint32_t slot) {
  return uint16_t(x.port_low + queue + slot * workers);
}

// A NAPT mapping for (tenant, inside address and port): the existing one (endpoint-independent
// mapping), or a new one on the pool address paired with the inside address and a free port
// of this worker's share of the range. Returns the mapping index, or nullopt with the reason.
std::optional<uint32_t> napt_mapping(Worker& w, NatWorker& nw, const Translation& x, uint16_t tenant, uint32_t ip,
                                     uint16_t port, uint8_t protocol, uint32_t reserved, Drop& why) {
  FlowKey inside{ip, 0, port, 0, tenant, protocol, mapping_inside};
  if (uint32_t found = nw.find(inside); found != no_flow) {
    uint32_t index = found >> 2;
    if (nw.mappings[index].epoch == x.epoch) return index;
    // Made under a pool that changed: let its sessions (stale too) end without it in the way.
    nw.erase(nw.mappings[index].inside, flow_value(index, FlowTable::inside));
    nw.erase(nw.mappings[index].outside, flow_value(index, FlowTable::outside));
    nw.mappings[index].inside.kind = nw.mappings[index].outside.kind = 0xff;
  }
  if (!nw.n_free_mappings) {
    why = Drop::nat_sessions_full;
    return std::nullopt;
  }
  uint32_t address = napt_address(x, tenant, ip);
  uint32_t workers = w.tables->workers, queue = w.queue;
  uint32_t mine = napt_ports_mine(x, queue, workers);
  uint32_t tries = std::min<uint32_t>(mine, 256);
  FlowKey outside{address, 0, 0, 0, tenant, protocol, mapping_outside};
  // First the port the burst reserved for this endpoint (warm_new_flows), if it is free; else a
  // search from the cursor, which is past the burst's reservations.
  uint32_t first = reserved != no_port ? 1 : 0;
  for (uint32_t k = 0; k < tries + first; k++) {
    if (k < first) {
      outside.sport = uint16_t(reserved);
      if (nw.find(outside) != no_flow) continue;
    } else {
      uint32_t slot = (nw.port_cursor + k - first) % mine;
      outside.sport = napt_port(x, queue, workers, slot);
      if (nw.find(outside) != no_flow) continue;
      nw.port_cursor = slot + 1;
    }
    // The mapping holds its keys before the index has them (the index confirms keys there).
    uint32_t index = nw.free_mappings[nw.n_free_mappings - 1];
    nw.mappings[index] = Mapping{inside, outside, 0, x.epoch};
    if (!nw.insert(inside, flow_value(index, FlowTable::inside))) {
      why = Drop::nat_sessions_full;
      return std::nullopt;
    }
    if (!nw.insert(outside, flow_value(index, FlowTable::outside))) {
      nw.erase(inside, flow_value(index, FlowTable::inside));
      why = Drop::nat_sessions_full;
      return std::nullopt;
    }
    nw.n_free_mappings--;
    bump(w.counters->nat[tenant].mappings_created);
    return index;
  }
  why = Drop::nat_pool_exhausted;
  bump(w.counters->nat[tenant].pool_exhausted);
  return std::nullopt;
}

// A new flow's session: translation of both ends, the policy, the limits.
std::optional<uint32_t> create_session(Worker& w, NatWorker& nw, const Flow& f, const FlowKey& key, uint16_t origin,
                                       uint16_t exit, uint32_t reserved, Drop& why) {
  const Tables& t = *w.tables;
  auto& counters = w.counters->nat[origin];
  const Translation* from = translation_of(t, origin);
  const Translation* to = translation_of(t, exit);
  uint32_t src = key.src, dst = key.dst;
  uint16_t sport = key.sport, dport = key.dport;
  bool napt = false;
  if (from) {
    if (auto mapped = map_out(*from, key.src)) {
      src = *mapped;
    } else if (from->pool_size && f.l4) {
      napt = true;
    } else {
      bump(counters.no_mapping);
      why = f.l4 || !from->pool_size ? Drop::nat_no_mapping : Drop::nat_unsupported;
      return std::nullopt;
    }
  }
  std::optional<uint32_t> inbound_mapping;  // to a NAPT tenant's pool address
  if (to) {
    if (auto mapped = map_in(*to, key.dst)) {
      dst = *mapped;
    } else if (to->in_pool(key.dst) && f.l4) {
      FlowKey outside{key.dst, 0, key.dport, 0, exit, key.protocol, mapping_outside};
      uint32_t found = nw.find(outside);
      if (found == no_flow) {
        why = Drop::nat_no_session;
        return std::nullopt;
      }
      inbound_mapping = found >> 2;
      const Mapping& mp = nw.mappings[*inbound_mapping];
      dst = mp.inside.src;
      dport = mp.inside.sport;
    } else {
      bump(counters.no_mapping);
      why = Drop::nat_no_mapping;
      return std::nullopt;
    }
  }
  // Policy on the core-side destination, before it is translated into the exit tenant.
  const PolicyRuleEntry* rule = decide(t, origin, exit, key.dst, key.protocol, key.dport);
  if (rule) bump(w.counters->rule_matched[rule->slot]);
  if (!rule || !rule->permit) {
    bump(counters.policy_denied);
    why = Drop::policy_denied;
    return std::nullopt;
  }
  // Without a session_limit of its own, a tenant may hold a quarter of the worker's sessions:
  // four tenants at their limit fit, and one opening flows as fast as it can leaves the rest.
  // The core's own flows (the IX operator's) have no default limit.
  uint32_t limit = from && from->session_limit ? from->session_limit
                   : origin == t.core          ? UINT32_MAX
                                               : default_session_share(nw.capacity);
  if (nw.sessions_of[origin] >= limit) {
    bump(counters.session_limit);
    why = Drop::nat_session_limit;
    return std::nullopt;
  }
  if (!nw.n_free_sessions) {
    why = Drop::nat_sessions_full;
    return std::nullopt;
  }
  std::optional<uint32_t> mapping = inbound_mapping;
  if (napt) {
    mapping = napt_mapping(w, nw, *from, origin, key.src, key.sport, key.protocol, reserved, why);
    if (!mapping) return std::nullopt;
    src = nw.mappings[*mapping].outside.src;
    sport = nw.mappings[*mapping].outside.sport;
  }
  FlowKey reverse{dst, src, dport, sport, exit, key.protocol, flow_session};
  if (key.protocol == IPPROTO_ICMP) {
    // Echo replies carry one identifier: the one the request left with.
    uint16_t id = sport != key.sport ? sport : dport;
    reverse.sport = reverse.dport = id;
  }
  // Another flow already looks like this one's replies (overlapping translations)?
  if (reverse == key || nw.find(reverse) != no_flow) {
    why = Drop::nat_conflict;
    return std::nullopt;
  }
  uint32_t index = nw.free_sessions[nw.n_free_sessions - 1];
  Session& s = nw.sessions[index];
  uint32_t seq = s.seq.load(std::memory_order_relaxed);
  s.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  // The keys first: the index confirms its keys in the session.
  s.key[0] = key;
  s.key[1] = reverse;
  if (!nw.insert(key, flow_value(index, FlowTable::session_forward)) ||
      !nw.insert(reverse, flow_value(index, FlowTable::session_reverse))) {
    nw.erase(key, flow_value(index, FlowTable::session_forward));
    s.seq.store(seq + 2, std::memory_order_release);
    why = Drop::nat_sessions_full;
    return std::nullopt;
  }
  nw.n_free_sessions--;
  s.live = 1;
  s.tcp = 0;
  s.rule = rule->slot;
  s.last_seen = w.now;
  s.made = s.checked = t.generation;
  s.route[0] = s.route[1] = 0;
  s.mapping = mapping ? *mapping + 1 : 0;
  if (mapping) nw.mappings[*mapping].refs++;
  s.seq.store(seq + 2, std::memory_order_release);
  nw.sessions_of[origin]++;
  nw.keys_of[key.tenant]++;
  nw.keys_of[reverse.tenant]++;
  bump(counters.sessions_created);
  if (w.sync) [[unlikely]]
    sync_push(w, nw, index, SyncKind::session);
  return index;
}

inline uint32_t symmetric_hash(uint32_t a, uint16_t pa, uint32_t b, uint16_t pb, uint8_t protocol) {
  uint64_t x = (uint64_t(a) << 16) | pa, y = (uint64_t(b) << 16) | pb;
  if (x > y) std::swap(x, y);
  return rte_hash_crc_8byte(y, rte_hash_crc_8byte(x, protocol));
}

// Makes the first `len` bytes of a chain contiguous in its first segment (moved there from the
// next segments), so that parsing sees whole L4 headers, quoted ones included, even when a
// fragment cut them (RFC 1858's tiny fragments). False if there is no room.
bool pull_up(rte_mbuf* m, uint32_t len) {
  len = std::min(len, rte_pktmbuf_pkt_len(m));
  while (rte_pktmbuf_data_len(m) < len && m->next) {
    rte_mbuf* n = m->next;
    uint16_t take = uint16_t(std::min<uint32_t>(len - rte_pktmbuf_data_len(m), rte_pktmbuf_data_len(n)));
    if (rte_pktmbuf_tailroom(m) < take) return false;
    std::memcpy(rte_pktmbuf_mtod_offset(m, uint8_t*, rte_pktmbuf_data_len(m)), rte_pktmbuf_mtod(n, uint8_t*), take);
    m->data_len = uint16_t(m->data_len + take);
    n->data_off = uint16_t(n->data_off + take);
    n->data_len = uint16_t(n->data_len - take);
    if (n->data_len == 0) {
      m->next = n->next;
      m->nb_segs--;
      n->next = nullptr;
      n->nb_segs = 1;
      rte_pktmbuf_free_seg(n);
    }
  }
  return rte_pktmbuf_data_len(m) >= len;
}

// A fragment leaves the table (reassembled, or on the death row): its tenant's share is free.
void release_fragment(NatWorker& nw, rte_mbuf* m) {
  PacketMeta& pm = meta(m);
  if (!(pm.flags & meta_held)) return;
  pm.flags &= uint8_t(~meta_held);
  if (pm.parked_tenant < max_tenants && nw.fragments_of[pm.parked_tenant]) nw.fragments_of[pm.parked_tenant]--;
}

bool reassemble(Worker& w, NatWorker& nw, rte_mbuf*& m, uint16_t origin) {
  // A tenant holds at most its share of the table, and only a few buffers when the pool is low.
  uint16_t tenant = origin < max_tenants ? origin : w.tables->core;
  if (tenant >= max_tenants) tenant = 0;
  if (nw.fragments_of[tenant] >= fragment_tenant_share || (w.pool_low && nw.fragments_of[tenant] >= buffer_guard_share))
      [[unlikely]] {
    bool guard = nw.fragments_of[tenant] < fragment_tenant_share;
    bump(guard ? w.counters->tenants[tenant].buffer_guarded : w.counters->tenants[tenant].fragments_limited);
    drop(w, m, guard ? Drop::buffer_guard : Drop::nat_fragment_share);
    return false;
  }
  uint8_t l2 = meta(m).l2_len;
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l2);
  m->l2_len = l2;
  m->l3_len = uint32_t(ip->version_ihl & 0xf) * 4;
  meta(m).flags |= meta_held;
  meta(m).parked_tenant = tenant;
  nw.fragments_of[tenant]++;
  rte_mbuf* whole = rte_ipv4_frag_reassemble_packet(nw.fragments, &nw.death_row, m, w.now, ip);
  if (!whole) return false;  // held until the rest arrives (or freed on timeout)
  for (rte_mbuf* seg = whole; seg; seg = seg->next) release_fragment(nw, seg);
  m = whole;
  ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l2);
  ip->total_length = rte_cpu_to_be_16(uint16_t(rte_pktmbuf_pkt_len(m) - l2));
  ip->fragment_offset = 0;
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  // The headers crossing reads or writes: L4 (TCP 20), or an ICMP error's 8 bytes, the quoted
  // header (up to 60) and the quoted TCP header.
  pull_up(m, l2 + uint32_t(ip->version_ihl & 0xf) * 4 + 8 + 60 + 20);
  return true;
}

}  // namespace

uint16_t nat_owner(const Worker& w, rte_mbuf* m, uint16_t origin, uint16_t exit) {
  const Tables& t = *w.tables;
  Flow f;
  Drop why;
  if (!parse(m, f, why)) return w.queue;  // dropped where it is
  uint32_t src = ipv4_src(f.ip), dst = ipv4_dst(f.ip);
  uint16_t sport = f.sport, dport = f.dport;
  if (f.quoted) {  // an error about the flow's packet the other way: as if it were a reply
    src = ipv4_dst(f.quoted);
    dst = ipv4_src(f.quoted);
    std::swap(sport, dport);
  }
  const Translation* from = translation_of(t, origin);
  const Translation* to = translation_of(t, exit);
  std::optional<uint32_t> core_src = from ? map_out(*from, src) : src;
  if (from && !core_src && from->pool_size)
    return uint16_t(rte_hash_crc_4byte(src, origin) % t.workers);  // NAPT: the mapping's owner
  if (to && to->in_pool(dst) && dport >= to->port_low) return uint16_t((dport - to->port_low) % t.workers);
  return uint16_t(symmetric_hash(core_src.value_or(src), sport, dst, dport, f.protocol) % t.workers);
}

namespace {

// Up to the lookup: reassembly, the owner worker, parsing. False: consumed.
bool prepare(Worker& w, NatWorker& nw, rte_mbuf*& m, uint16_t origin, uint16_t exit, bool owner_known, Flow& f,
             FlowKey& key, uint32_t& hash) {
  const Tables& t = *w.tables;
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta(m).l2_len);
  if (rte_ipv4_frag_pkt_is_fragmented(ip) && !reassemble(w, nw, m, origin)) return false;
  if (!owner_known && t.workers > 1) {
    uint16_t owner = nat_owner(w, m, origin, exit);
    if (owner != w.queue) {
      hand_off(w, owner, m, Handoff::nat);
      return false;
    }
  }
  Drop why;
  if (!parse(m, f, why)) {
    drop(w, m, why);
    return false;
  }
  FlowWords words =
      f.quoted ? FlowWords{ipv4_dst(f.quoted), ipv4_src(f.quoted), f.dport, f.sport, origin, f.protocol, flow_session}
               : FlowWords{ipv4_src(f.ip), ipv4_dst(f.ip), f.sport, f.dport, origin, f.protocol, flow_session};
  key = words.key();
  hash = words.hash();
  return true;
}

[[gnu::always_inline]] inline bool translate(Worker& w, const Tables& t, rte_mbuf* m, const Flow& f, Session& s,
                                             int direction, bool touch, bool ttl = false);

// After the lookup (`data`: what the index holds for `key`, or nullopt): the session's checks,
// or a new session, and the rewrite. False: dropped.
bool finish(Worker& w, NatWorker& nw, rte_mbuf* m, const Flow& f, const FlowKey& key, uint16_t origin, uint16_t exit,
            uint32_t found, uint32_t reserved) {
  const Tables& t = *w.tables;
  std::optional<uint32_t> index;
  int direction = 0;
  // An earlier packet of this burst may have ended the session found, or made the one missed.
  if (found != no_flow && !(nw.sessions[found >> 2].live && nw.sessions[found >> 2].key[found & 1] == key))
    found = no_flow;
  if (found == no_flow) found = nw.find(key);  // its bucket is in cache
  if (found != no_flow) {
    index = found >> 2;
    direction = int(found & 1);
    Session& s = nw.sessions[*index];
    if (s.key[1 - direction].tenant != exit || stale(t, s) || idle_past(w.now - s.last_seen, timeout_of(w, s))) {
      // Routed elsewhere now, translated differently, or idle too long: start afresh.
      end_session(w, nw, *index);
      index.reset();
      direction = 0;
    } else if (s.checked < t.policy_epoch) {
      // The rules changed since the session was made: does its flow still pass?
      const FlowKey& k = s.key[0];
      const PolicyRuleEntry* rule = decide(t, k.tenant, s.key[1].tenant, k.dst, k.protocol, k.dport);
      if (!rule || !rule->permit) {
        bump(w.counters->nat[k.tenant].policy_denied);
        end_session(w, nw, *index);
        drop(w, m, Drop::policy_denied);
        return false;
      }
      s.rule = rule->slot;
    }
    if (index && s.checked != t.generation) {  // proven in this generation: its routes are learned again
      s.checked = t.generation;
      s.route[0] = s.route[1] = 0;
    }
  }
  if (f.quoted) {
    if (!index) {
      drop(w, m, Drop::nat_no_session);
      return false;
    }
    const Session& s = nw.sessions[*index];
    const FlowKey& to = s.key[1 - direction];
    // The error's source: the quoted packet's destination itself, or a router on the way (its
    // own mapping if it has one, else it speaks for the destination).
    uint32_t outer = ipv4_src(f.ip), outer_src = to.dst;
    if (outer != key.src)
      if (const Translation* x = translation_of(t, origin))
        if (auto mapped = map_out(*x, outer)) outer_src = *mapped;
    rewrite_error(m, f, to, outer_src);
    bump(w.counters->nat[origin].translated);
    meta(m).flags |= meta_translated;
    return true;
  }
  if (!index) {
    if (!f.creates) {
      drop(w, m, Drop::nat_no_session);
      return false;
    }
    Drop why = Drop::nat_no_session;
    index = create_session(w, nw, f, key, origin, exit, reserved, why);
    if (!index) {
      drop(w, m, why);
      return false;
    }
  }
  if (!translate(w, t, m, f, nw.sessions[*index], direction, true)) return false;
  bump(w.counters->nat[origin].translated);
  meta(m).session = (*index << 1 | uint32_t(direction)) + 1;  // for nat_learn
  return true;
}

// An established flow's packet, its session checked: its session's state moved on, rewritten
// (the caller counts it); for a session whose rule has no policer or shaper class.
[[gnu::always_inline]] inline bool translate_plain(Worker& w, rte_mbuf* m, const Flow& f, Session& s, int direction,
                                                   bool touch, bool ttl = false) {
  uint8_t tcp = s.tcp;
  if (f.protocol == IPPROTO_TCP) {
    uint8_t bits = direction ? tcp_seen_reverse : 0;
    if (f.tcp_flags & RTE_TCP_SYN_FLAG) bits |= direction ? tcp_syn_reverse : tcp_syn_forward;
    if (f.tcp_flags & RTE_TCP_FIN_FLAG) bits |= direction ? tcp_fin_reverse : tcp_fin_forward;
    if (f.tcp_flags & RTE_TCP_RST_FLAG) bits |= tcp_rst;
    tcp |= bits;
  }
  // The session's line is written only when its TCP state moved or the caller asks (`touch`):
  // a line left clean needs no write-back when it leaves the cache.
  if (touch || tcp != s.tcp) {
    s.tcp = tcp;
    s.last_seen = w.now;
  }
  const FlowKey& o = s.key[1 - direction];
  rewrite(f, o.dst, o.src, o.dport, o.sport, ttl);
  meta(m).flags |= meta_translated;
  return true;
}

// As translate_plain, policed and classed first by the session's rule. False: dropped.
[[gnu::always_inline]] inline bool translate(Worker& w, const Tables& t, rte_mbuf* m, const Flow& f, Session& s,
                                             int direction, bool touch, bool ttl) {
  // The rule's class (docs/qos.md "Classes by policy rule"): its policer, both ways.
  if (const qos::Policer* p = qos::rule_policer(t.qos, s.rule)) [[unlikely]] {
    qos::Colour colour;
    switch (
        qos::police_one(*p, p->shares[w.queue], w.now, m->pkt_len - meta(m).l2_len, f.ip->type_of_service, colour)) {
      case qos::Action::drop: drop(w, m, Drop::policed); return false;
      case qos::Action::remark: set_dscp(f.ip, p->remark[colour]); break;
      case qos::Action::transmit: break;
    }
  }
  // The rule's shaper class, both ways: where the packet leaves shaped, it is queued there.
  if (s.rule < t.qos.classed_rules.size() && t.qos.classed_rules[s.rule]) [[unlikely]] {
    PacketMeta& pm = meta(m);
    pm.flags |= meta_classed;
    pm.rule = s.rule;
  }
  return translate_plain(w, m, f, s, direction, touch, ttl);
}

// A new NAPT flow looks up and adds its mapping's inside and outside keys and its reply key,
// one bucket each, scattered over the index: the buckets of what the burst's new flows will ask
// for are prefetched together, so that the creations one by one find them cached. First the
// inside keys: an endpoint with no mapping yet (and not one an earlier flow of the burst asks
// for too) is reserved the cursor's next port, in order (`reserved`), and the buckets of its
// outside and reply keys with that port are prefetched next. A reserved port found in use costs
// that flow a search from past the reservations, not every later flow of the burst a wrong
// guess.
void warm_new_flows(const Worker& w, NatWorker& nw, const Flow* flows, const FlowKey* keys, uint16_t count,
                    uint64_t hits, const uint16_t* exit_of, uint32_t* reserved) {
  const Tables& t = *w.tables;
  uint16_t napt[burst_size], n_napt = 0;
  const Translation* from_of[burst_size];
  FlowKey inside[burst_size];
  uint32_t inside_hash[burst_size];
  for (uint16_t k = 0; k < count; k++) {
    const FlowKey& key = keys[k];
    const Flow& f = flows[k];
    reserved[k] = no_port;
    if ((hits & (uint64_t(1) << k)) || !f.creates || f.quoted || !f.l4) continue;
    const Translation* from = translation_of(t, key.tenant);
    if (!from || !from->pool_size || map_out(*from, key.src)) continue;
    inside[n_napt] = FlowKey{key.src, 0, key.sport, 0, key.tenant, key.protocol, mapping_inside};
    inside_hash[n_napt] = flow_hash(inside[n_napt]);
    nw.index.prefetch(inside_hash[n_napt]);
    from_of[n_napt] = from;
    napt[n_napt++] = k;
  }
  uint32_t ahead = 0;  // ports reserved so far
  for (uint16_t j = 0; j < n_napt; j++) {
    uint16_t k = napt[j];
    const FlowKey& key = keys[k];
    if (nw.find(inside[j], inside_hash[j]) != no_flow) continue;
    bool again = false;  // an earlier flow of the burst has this endpoint
    for (uint16_t e = 0; e < j; e++) again |= inside[e] == inside[j];
    const Translation& from = *from_of[j];
    uint32_t mine = napt_ports_mine(from, w.queue, t.workers);
    if (again || !mine) continue;
    uint32_t address = napt_address(from, key.tenant, key.src);
    uint16_t port = napt_port(from, w.queue, t.workers, (nw.port_cursor + ahead++) % mine);
    reserved[k] = port;
    nw.index.prefetch(flow_hash(FlowKey{address, 0, port, 0, key.tenant, key.protocol, mapping_outside}));
    uint32_t dst = key.dst;
    if (const Translation* to = translation_of(t, exit_of[k])) {
      auto mapped = map_in(*to, key.dst);
      if (!mapped) continue;
      dst = *mapped;
    }
    if (key.protocol != IPPROTO_ICMP)
      nw.index.prefetch(flow_hash(FlowKey{dst, address, key.dport, port, exit_of[k], key.protocol, flow_session}));
  }
  // Past the reservations (taken modulo each pool's share of ports where used; wrapping at
  // 2^32 only moves where a search starts).
  nw.port_cursor += ahead;
}

// One batched session lookup for the burst: crossed[i] tells whether pkts[i] (which may change)
// goes on.
void cross_burst(Worker& w, rte_mbuf** pkts, uint16_t n, const uint16_t* origin, const uint16_t* exit, bool owner_known,
                 bool* crossed) {
  NatWorker& nw = *w.tables->nat[w.queue];
  Flow flows[burst_size];
  FlowKey keys[burst_size];
  uint32_t hashes[burst_size], found[burst_size];
  uint16_t at[burst_size], exit_of[burst_size], count = 0;
  for (uint16_t i = 0; i < n; i++) {
    crossed[i] = false;
    if (!prepare(w, nw, pkts[i], origin[i], exit[i], owner_known, flows[count], keys[count], hashes[count])) continue;
    nw.index.prefetch(hashes[count]);
    exit_of[count] = exit[i];
    at[count++] = i;
  }
  if (!count) return;
  // The burst's buckets were prefetched together; then the sessions their signatures name, and
  // only then are the keys confirmed there (the misses overlap, as in a bulk lookup).
  for (uint16_t k = 0; k < count; k++) {
    found[k] = nw.index.candidate(hashes[k]);
    if (found[k] != no_flow) rte_prefetch0(&nw.key_of(found[k]));
  }
  static_assert(burst_size < 64);
  uint64_t hits = 0;
  for (uint16_t k = 0; k < count; k++) {
    if (found[k] == no_flow || !(nw.key_of(found[k]) == keys[k])) found[k] = nw.find(keys[k], hashes[k]);
    if (found[k] != no_flow) hits |= uint64_t(1) << k;
  }
  // Established flows only (every key found): nothing more to bring in.
  uint32_t reserved[burst_size];
  bool warmed = hits != (uint64_t(1) << count) - 1;
  if (warmed) warm_new_flows(w, nw, flows, keys, count, hits, exit_of, reserved);
  for (uint16_t k = 0; k < count; k++) {
    uint16_t i = at[k];
    crossed[i] =
        finish(w, nw, pkts[i], flows[k], keys[k], origin[i], exit[i], found[k], warmed ? reserved[k] : no_port);
  }
}

}  // namespace

void nat_input(Worker& w, rte_mbuf** pkts, uint16_t n, bool handed_off, rte_mbuf** out, uint16_t& n_out) {
  // Zeroed: GCC cannot see that n <= burst_size.
  uint16_t origin[burst_size] = {}, exit[burst_size] = {}, nexthop[burst_size] = {};
  bool crossed[burst_size];
  uint16_t first_out = n_out;
  if (w.trace) [[unlikely]]
    trace_nat(w, pkts, n, handed_off);
  for (uint16_t i = 0; i < n; i++) {
    origin[i] = uint16_t(meta(pkts[i]).origin - 1);
    exit[i] = meta(pkts[i]).exit;
    nexthop[i] = meta(pkts[i]).nexthop;
  }
  if (w.ha_standby && w.ha_standby->load(std::memory_order_relaxed)) [[unlikely]] {
    // The standby crosses nothing: the active owns the flows (and the addresses, by VRRP).
    for (uint16_t i = 0; i < n; i++) drop(w, pkts[i], Drop::ha_standby);
    return;
  }
  cross_burst(w, pkts, n, origin, exit, handed_off, crossed);
  for (uint16_t i = 0; i < n; i++) {
    if (!crossed[i]) continue;
    rte_mbuf* m = pkts[i];
    // A reassembled packet is headed by its first fragment, looked up in an earlier burst
    // (maybe another generation): it goes on by the route of this burst's fragment.
    meta(m).nexthop = nexthop[i];
    if (handed_off) {
      PacketMeta& pm = meta(m);
      // Its way into the core was looked up on another worker, maybe in another generation:
      // it teaches its session no route (nat_established ahead of the lookup trusts one as
      // proof of this generation's).
      pm.session = 0;
      pm.origin = 0;
      pm.tenant = exit[i];
      if (exit[i] == w.tables->core) pm.flags |= meta_crossed;
    }
    out[n_out++] = m;
  }
  if (w.trace) [[unlikely]]
    trace_step(w, TraceStep::translated, out + first_out, uint16_t(n_out - first_out));
}

uint16_t nat_established(Worker& w, rte_mbuf** pkts, uint16_t n, bool ahead, rte_mbuf** known, uint16_t& n_known,
                         Routed& out) {
  const Tables& t = *w.tables;
  // Traced packets show every step; the standby crosses nothing: both the long way.
  if (!t.nat || w.trace || (w.ha_standby && w.ha_standby->load(std::memory_order_relaxed))) return n;
  NatWorker& nw = *t.nat[w.queue];
  rte_ipv4_hdr* ips[burst_size];
  FlowKey keys[burst_size];
  uint32_t hashes[burst_size], found[burst_size];
  uint16_t at[burst_size], count = 0;
  const uint16_t core = t.core;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    const PacketMeta& pm = meta(m);
    uint16_t from;  // the tenant it enters the core from
    if (ahead) {
      // Not yet looked up: from the tenant it came in, unless that is the core or no session
      // has a key there; not a packet the lookup must teach a route (meta.session).
      from = pm.tenant;
      if (from == core || from >= max_tenants || !nw.keys_of[from] || pm.session) continue;
    } else {
      if (pm.tenant != core || !pm.origin) continue;  // not entering the core from a tenant
      from = uint16_t(pm.origin - 1);
    }
    // Fragments (reassembly), TTL running out (answered before crossing), ICMP errors and
    // anything parse drops: nat_input's way.
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, pm.l2_len);
    if (rte_ipv4_frag_pkt_is_fragmented(ip) || (!(pm.flags & meta_local) && ip->time_to_live <= 1)) continue;
    FlowWords words;
    if (!established_words(m, ip, from, words)) continue;
    ips[count] = ip;
    keys[count] = words.key();
    hashes[count] = words.hash();
    nw.index.prefetch(hashes[count]);
    at[count++] = i;
  }
  if (!count) return n;
  for (uint16_t k = 0; k < count; k++) {
    found[k] = nw.index.candidate(hashes[k]);
    if (found[k] != no_flow) rte_prefetch0(&nw.key_of(found[k]));
  }
  static_assert(burst_size < 64);
  uint64_t taken = 0;  // by position in pkts: translated or dropped here
  // Rules with a policer or a shaper class: translate asks about each session's (rarely any).
  bool classes = !t.qos.policer_of_rule.empty() || !t.qos.classed_rules.empty();
  // `translated` counted once a run of one origin tenant (a burst is mostly one).
  uint16_t tally_origin = 0;
  uint64_t tally = 0;
  // Out at once by a kept `via` decision (as ip_route_crossed would send them), until a packet
  // needs more than that: the ones after it go to `known` too, so a flow's packets stay in order.
  KeptVia via;
  bool at_once = true;
  uint16_t n_fwd = out.n_fwd, n_tunnel = out.n_tunnel;
  for (uint16_t k = 0; k < count; k++) {
    if (found[k] == no_flow || !(nw.key_of(found[k]) == keys[k])) found[k] = nw.find(keys[k], hashes[k]);
    if (found[k] == no_flow || (found[k] & 2)) continue;  // no session (a mapping's key cannot be a session's)
    Session& s = nw.sessions[found[k] >> 2];
    int d = int(found[k] & 1);
    // Proven in this generation (tenants, translations, policy, the core's route: any commit
    // moves it), its route learned since, and not idle too long.
    uint64_t idle = w.now - s.last_seen, timeout = timeout_of(w, s);
    if (s.checked != t.generation || !s.route[d] || idle_past(idle, timeout)) continue;
    rte_mbuf* m = pkts[at[k]];
    PacketMeta& pm = meta(m);
    taken |= uint64_t(1) << at[k];
    uint16_t hop = s.route[d];
    if (hop != via.hop) via.keep(t, hop, t.nexthops[hop]);
    // Routed here: its TTL's decrement folded into the translation's checksum update.
    Flow f = established_flow(ips[k], keys[k].protocol);
    bool now = at_once && hop == via.hop && !pm.session && !(pm.flags & meta_local) && via.fits(f.ip);
    // Its timer moved on only once it lags (timer_lag): a flow's packets leave its line clean.
    if (!(classes ? translate(w, t, m, f, s, d, idle > timer_lag(timeout), now)
                  : translate_plain(w, m, f, s, d, idle > timer_lag(timeout), now)))
      continue;
    uint16_t origin = keys[k].tenant;
    if (origin != tally_origin) {
      if (tally) bump(w.counters->nat[tally_origin].translated, tally);
      tally_origin = origin;
      tally = 0;
    }
    tally++;
    pm.tenant = s.key[1 - d].tenant;  // where the route was found: the exit (the core for its own)
    pm.exit = pm.tenant;
    pm.nexthop = hop;
    if (now) {
      pm.origin = 0;
      via.send(m, pm, f.ip, out.fwd, n_fwd, out.tunnel, n_tunnel);
    } else {
      at_once = false;
      known[n_known++] = m;
    }
  }
  out.n_fwd = n_fwd;
  out.n_tunnel = n_tunnel;
  if (tally) bump(w.counters->nat[tally_origin].translated, tally);
  uint16_t left = 0;
  for (uint16_t i = 0; i < n; i++) {  // without a branch a packet
    pkts[left] = pkts[i];
    left = uint16_t(left + !((taken >> i) & 1));
  }
  return left;
}

void nat_learn(Worker& w, rte_mbuf** pkts, uint16_t n) {
  const Tables& t = *w.tables;
  NatWorker* nw = t.nat ? t.nat[w.queue] : nullptr;
  for (uint16_t i = 0; i < n; i++) {
    PacketMeta& pm = meta(pkts[i]);
    uint32_t mark = pm.session - 1, index = mark >> 1;
    int d = int(mark & 1);
    pm.session = 0;
    if (!nw || index >= nw->capacity) continue;
    Session& s = nw->sessions[index];
    // Made or checked in this generation (by nat_input, in this pass), and routed where it exits.
    if (s.live && s.checked == t.generation && s.key[1 - d].tenant == pm.tenant) s.route[d] = pm.nexthop;
  }
}

void nat_sweep(Worker& w) {
  const Tables& t = *w.tables;
  if (!t.nat) return;
  NatWorker& nw = *t.nat[w.queue];
  // Fragments that will never make a packet (timed out, overlapping, too many) end up on the
  // death row: counted as dropped when freed.
  rte_ip_frag_table_del_expired_entries(nw.fragments, &nw.death_row, w.now);
  if (nw.death_row.cnt) {
    for (uint32_t i = 0; i < nw.death_row.cnt; i++) release_fragment(nw, nw.death_row.row[i]);
    bump(w.counters->drops[unsigned(Drop::nat_reassembly_failed)], nw.death_row.cnt);
    rte_ip_frag_free_death_row(&nw.death_row, 3);
  }
  if (nw.n_free_sessions == nw.capacity) return;
  for (unsigned k = 0; k < 16; k++) {
    uint32_t i = nw.sweep;
    nw.sweep = i + 1 == nw.capacity ? 0 : i + 1;
    Session& s = nw.sessions[i];
    if (s.live && (stale(t, s) || idle_past(w.now - s.last_seen, timeout_of(w, s)))) end_session(w, nw, i);
  }
}

// --- HA sync (nat/sync.h): the workers' side.

SyncRecord session_record(const Tables& t, const NatWorker& nw, const Session& s, uint16_t queue, uint64_t now,
                          uint64_t hz) {
  SyncRecord r{};
  r.kind = uint8_t(SyncKind::session);
  r.tcp = s.tcp;
  r.queue = queue;
  uint64_t idle = now > s.last_seen ? now - s.last_seen : 0;
  r.idle_ms = hz >= 1000 ? uint32_t(std::min<uint64_t>(idle / (hz / 1000), UINT32_MAX)) : 0;
  r.s.key[0] = s.key[0];
  r.s.key[1] = s.key[1];
  r.s.mapping_tenant = no_mapping_tenant;
  r.s.tenant_epoch = t.tenant_epoch;
  if (s.mapping) {
    const Mapping& mp = nw.mappings[s.mapping - 1];
    r.s.inside_ip = mp.inside.src;
    r.s.inside_port = mp.inside.sport;
    r.s.outside_ip = mp.outside.src;
    r.s.outside_port = mp.outside.sport;
    r.s.mapping_tenant = mp.inside.tenant;
  }
  return r;
}

namespace {

bool live_tenant(const Tables& t, uint16_t tenant) { return tenant < t.tenants.size() && t.tenants[tenant].live; }

// The record's NAPT mapping: the one this worker has, or a new one with the active's ports.
std::optional<uint32_t> install_mapping(Worker& w, NatWorker& nw, const SyncRecord& r) {
  const Tables& t = *w.tables;
  uint16_t tenant = r.s.mapping_tenant;
  uint8_t protocol = r.s.key[0].protocol;
  if (!live_tenant(t, tenant)) return std::nullopt;
  FlowKey inside{r.s.inside_ip, 0, r.s.inside_port, 0, tenant, protocol, mapping_inside};
  FlowKey outside{r.s.outside_ip, 0, r.s.outside_port, 0, tenant, protocol, mapping_outside};
  if (uint32_t found = nw.find(inside); found != no_flow) {
    uint32_t index = found >> 2;
    if (nw.mappings[index].outside == outside) return index;
    return std::nullopt;  // mapped elsewhere here: the active's ports would clash
  }
  if (nw.find(outside) != no_flow || !nw.n_free_mappings) return std::nullopt;
  uint32_t index = nw.free_mappings[nw.n_free_mappings - 1];
  nw.mappings[index] = Mapping{inside, outside, 0, t.tenants[tenant].nat.epoch};
  if (!nw.insert(inside, flow_value(index, FlowTable::inside))) return std::nullopt;
  if (!nw.insert(outside, flow_value(index, FlowTable::outside))) {
    nw.erase(inside, flow_value(index, FlowTable::inside));
    return std::nullopt;
  }
  nw.n_free_mappings--;
  bump(w.counters->nat[tenant].mappings_created);
  return index;
}

// A session of the active: refreshed if this worker has it, else made with the active's
// translation (its policy is checked again by its first packet here). `keep_own`: a draining
// peer's session on an active worker, which never ends a flow of its own for it.
void install_session(Worker& w, NatWorker& nw, const SyncRecord& r, bool keep_own) {
  const Tables& t = *w.tables;
  const FlowKey& key = r.s.key[0];
  const FlowKey& reverse = r.s.key[1];
  if (!live_tenant(t, key.tenant) || !live_tenant(t, reverse.tenant) || key.kind != flow_session ||
      reverse.kind != flow_session) {
    bump(w.sync->install_failed);
    return;
  }
  uint64_t idle = w.tsc_hz / 1000 * r.idle_ms;
  uint64_t last_seen = w.now > idle ? w.now - idle : 0;
  if (uint32_t found = nw.find(key); found != no_flow) {
    Session& s = nw.sessions[found >> 2];
    if ((found & 1) == 0 && s.key[1] == reverse) {
      s.last_seen = keep_own ? std::max(s.last_seen, last_seen) : last_seen;  // the active's timer
      s.tcp |= r.tcp;
      bump(w.sync->refreshed);
      return;
    }
    if (keep_own) {
      bump(w.sync->install_failed);
      return;
    }
    end_session(w, nw, found >> 2);  // an older flow of this node in the way
  }
  if (!nw.n_free_sessions) {
    bump(w.sync->install_failed);
    return;
  }
  std::optional<uint32_t> mapping;
  if (r.s.mapping_tenant != no_mapping_tenant) {
    mapping = install_mapping(w, nw, r);
    if (!mapping) {
      bump(w.sync->install_failed);
      return;
    }
    nw.mappings[*mapping].refs++;
  }
  uint32_t index = nw.free_sessions[nw.n_free_sessions - 1];
  Session& s = nw.sessions[index];
  uint32_t seq = s.seq.load(std::memory_order_relaxed);
  s.seq.store(seq + 1, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  s.key[0] = key;  // before the index has them: it confirms its keys here
  s.key[1] = reverse;
  if (reverse == key || nw.find(reverse) != no_flow || !nw.insert(key, flow_value(index, FlowTable::session_forward)) ||
      !nw.insert(reverse, flow_value(index, FlowTable::session_reverse))) {
    nw.erase(key, flow_value(index, FlowTable::session_forward));
    s.seq.store(seq + 2, std::memory_order_release);
    if (mapping) release_mapping(w, nw, *mapping);
    bump(w.sync->install_failed);
    return;
  }
  nw.n_free_sessions--;
  s.live = 1;
  s.tcp = r.tcp;
  s.rule = 0;
  s.last_seen = last_seen;
  s.made = t.generation;
  s.checked = 0;  // never: the first packet asks the policy
  s.route[0] = s.route[1] = 0;
  s.mapping = mapping ? *mapping + 1 : 0;
  s.seq.store(seq + 2, std::memory_order_release);
  nw.sessions_of[key.tenant]++;
  nw.keys_of[s.key[0].tenant]++;
  nw.keys_of[s.key[1].tenant]++;
  bump(w.counters->nat[key.tenant].sessions_created);
  bump(w.sync->installed);
}

void remove_session(Worker& w, NatWorker& nw, const SyncRecord& r) {
  uint32_t found = nw.find(r.s.key[0]);
  if (found == no_flow || (found & 1) != 0 || !(nw.sessions[found >> 2].key[1] == r.s.key[1])) return;
  end_session(w, nw, found >> 2);
  bump(w.sync->removed);
}

// Takeover: an SA this worker owns jumps to what the active had (plus the margin, added by the
// sync thread). Outbound: never a sequence number the peer saw. Inbound: the window starts
// at the active's top, all of it taken as seen (a replay of the active's packets is refused).
void advance_sa(Worker& w, const SyncRecord& r) {
  const Tables& t = *w.tables;
  SaState* sa = r.sa.slot && r.sa.slot < max_sas && t.sas ? t.sas[r.sa.slot] : nullptr;
  if (!sa || sa->spi != r.sa.spi || sa->inbound != bool(r.sa.inbound) || sa->owner != w.queue) {
    bump(w.sync->install_failed);
    return;
  }
  if (!sa->inbound) {
    // A spread SA's other workers may be reserving numbers: raised atomically, and its tx
    // point waits for none below the new value.
    uint64_t seq = __atomic_load_n(&sa->seq, __ATOMIC_RELAXED);
    while (seq < r.sa.value &&
           !__atomic_compare_exchange_n(&sa->seq, &seq, r.sa.value, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
    if (sa->order && !sa->order->held) sa->order->next = std::max(sa->order->next, r.sa.value + 1);
  } else if (r.sa.value > sa->replay.top) {
    sa->replay.top = r.sa.value;
    std::fill(std::begin(sa->replay.bits), std::end(sa->replay.bits), ~uint64_t(0));
  }
  bump(w.sync->sas_advanced);
}

// Active to standby (a split brain healed, a switchover's old active): the sessions this node
// made while active go, so that the active's resync, asked for once every worker is done, is
// all it holds; left, one of them could hold a pool port the active gave another flow and
// refuse that flow's record. A chunk of slots a call; records that come meanwhile are
// installed (the sweep may end them: the resync brings them again). Nothing is told to the
// peer: they are the sessions it does not have.
void forget_some(Worker& w, NatWorker& nw) {
  SyncWorker& sync = *w.sync;
  uint32_t end = std::min(nw.capacity, sync.forget_at + forget_chunk);
  for (uint32_t i = sync.forget_at; i < end; i++)
    if (nw.sessions[i].live) end_session(w, nw, i, false);
  sync.forget_at = end;
  if (end < nw.capacity) return;
  sync.forgetting = false;
  bump(sync.forgets_done);
}

}  // namespace

void sync_install(Worker& w) {
  if (!w.sync || !w.sync->in) return;
  // No core tenant here (no session tables): sessions cannot be installed, SAs still can.
  NatWorker* nw = w.tables->nat ? w.tables->nat[w.queue] : nullptr;
  if (w.sync->forgetting) [[unlikely]] {
    if (nw) {
      forget_some(w, *nw);
    } else {
      w.sync->forgetting = false;
      bump(w.sync->forgets_done);
    }
  }
  SyncRecord records[burst_size];
  unsigned n = rte_ring_sc_dequeue_burst_elem(w.sync->in, records, sizeof(SyncRecord), burst_size, nullptr);
  if (!n) return;
  for (unsigned i = 0; i < n; i++) {
    auto kind = SyncKind(records[i].kind);
    if (!nw && (kind == SyncKind::session || kind == SyncKind::session_end || kind == SyncKind::session_overlap)) {
      bump(w.sync->install_failed);
      continue;
    }
    switch (kind) {
      case SyncKind::session: install_session(w, *nw, records[i], false); break;
      case SyncKind::session_overlap: install_session(w, *nw, records[i], true); break;
      case SyncKind::session_end: remove_session(w, *nw, records[i]); break;
      case SyncKind::sa_takeover: advance_sa(w, records[i]); break;
      case SyncKind::forget:  // from the first slot (one under way counts as done: superseded)
        if (w.sync->forgetting) bump(w.sync->forgets_done);
        w.sync->forgetting = true;
        w.sync->forget_at = 0;
        break;
      default: bump(w.sync->install_failed); break;
    }
  }
}

}  // namespace medix::dp
