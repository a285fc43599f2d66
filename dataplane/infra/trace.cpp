// The workers' side of a trace: stamp at rx, append a record at each hook. Runs only while a
// trace is published (infra/trace.h); nothing here waits or allocates.
#include "infra/trace.h"

#include <rte_ip.h>
#include <rte_udp.h>

#include "infra/worker.h"

namespace medix::dp {

namespace {

// The entry of a packet this session stamped, or nullptr.
TraceEntry* entry_of(const TraceSession& s, rte_mbuf* m) {
  const PacketMeta& pm = meta(m);
  if (!pm.trace || pm.trace_id != s.id || pm.trace > s.count) return nullptr;
  return &s.entries[pm.trace - 1];
}

// Appends a record; only the thread that holds the packet writes its entry, the API thread
// reads up to `n` (acquire).
void push(TraceEntry& e, const TraceRecord& r) {
  uint32_t n = e.n.load(std::memory_order_relaxed);
  if (n >= trace_max_records) {
    __atomic_store_n(&e.lost, e.lost + 1, __ATOMIC_RELAXED);  // read by the API thread
    return;
  }
  e.records[n] = r;
  e.n.store(n + 1, std::memory_order_release);
}

// The IPv4 header of a packet at `l2` bytes, or nullptr when the frame is too short for one.
const rte_ipv4_hdr* ipv4_at(rte_mbuf* m, uint32_t l2) {
  if (rte_pktmbuf_data_len(m) < l2 + sizeof(rte_ipv4_hdr)) return nullptr;
  auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, l2);
  return (ip->version_ihl >> 4) == 4 ? ip : nullptr;
}

// Protocol, addresses and ports (TCP, UDP: source << 16 | destination; ICMP: type << 8 | code).
void flow_of(rte_mbuf* m, uint32_t l2, TraceRecord& r) {
  const rte_ipv4_hdr* ip = ipv4_at(m, l2);
  if (!ip) return;
  r.kind = ip->next_proto_id;
  r.x = rte_be_to_cpu_32(ip->src_addr);
  r.y = rte_be_to_cpu_32(ip->dst_addr);
  uint32_t off = l2 + uint32_t(ip->version_ihl & 0xf) * 4;
  if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK)) return;  // no L4 header
  if (rte_pktmbuf_data_len(m) < off + 4) return;
  const uint8_t* l4 = rte_pktmbuf_mtod_offset(m, const uint8_t*, off);
  if (ip->next_proto_id == IPPROTO_TCP || ip->next_proto_id == IPPROTO_UDP)
    r.z = uint32_t(l4[0] << 24 | l4[1] << 16 | l4[2] << 8 | l4[3]);
  else if (ip->next_proto_id == IPPROTO_ICMP)
    r.z = uint32_t(l4[0] << 8 | l4[1]);
}

// SPI and sequence number of an ESP packet (raw or in UDP) at `l2`; false if it is not one.
bool esp_of(rte_mbuf* m, uint32_t l2, TraceRecord& r) {
  const rte_ipv4_hdr* ip = ipv4_at(m, l2);
  if (!ip) return false;
  uint32_t off = l2 + uint32_t(ip->version_ihl & 0xf) * 4;
  if (ip->next_proto_id == IPPROTO_UDP)
    off += sizeof(rte_udp_hdr);
  else if (ip->next_proto_id != IPPROTO_ESP)
    return false;
  if (rte_pktmbuf_data_len(m) < off + 8) return false;
  const uint8_t* p = rte_pktmbuf_mtod_offset(m, const uint8_t*, off);
  r.x = uint32_t(p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]);
  r.y = uint32_t(p[4] << 24 | p[5] << 16 | p[6] << 8 | p[7]);
  r.z = rte_be_to_cpu_32(ip->src_addr);
  r.v = rte_be_to_cpu_32(ip->dst_addr);
  return true;
}

TraceRecord record(TraceStep step) {
  TraceRecord r{};
  r.step = uint8_t(step);
  r.a = r.b = r.c = trace_none;
  return r;
}

}  // namespace

void trace_rx(Worker& w, uint16_t port, rte_mbuf* const* pkts, uint16_t n) {
  TraceSession& s = *w.trace;
  // Every packet is stamped while the session runs, matched or not: a buffer stamped earlier
  // in this session and received again must not write into its old entry.
  bool full = s.claimed.load(std::memory_order_relaxed) >= s.count;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    PacketMeta& pm = meta(m);
    pm.trace_id = s.id;
    pm.trace = 0;
    if (full || !capture_matches(s.filter, m, port, pm.iface_in, pm.tenant)) continue;
    uint32_t k = s.claimed.fetch_add(1, std::memory_order_relaxed);
    if (k >= s.count) {
      full = true;
      continue;
    }
    pm.trace = uint16_t(k + 1);
    TraceEntry& e = s.entries[k];
    e.tsc = w.now;
    e.queue = w.queue;
    TraceRecord r = record(TraceStep::rx);
    r.a = port;
    r.b = pm.iface_in;
    r.c = pm.tenant;
    r.v = rte_pktmbuf_pkt_len(m);
    flow_of(m, pm.l2_len, r);
    push(e, r);
  }
}

void trace_step(Worker& w, TraceStep step, rte_mbuf* const* pkts, uint16_t n) {
  for (uint16_t i = 0; i < n; i++) {
    TraceEntry* e = entry_of(*w.trace, pkts[i]);
    if (!e) continue;
    const PacketMeta& pm = meta(pkts[i]);
    TraceRecord r = record(step);
    switch (step) {
      case TraceStep::handoff:
        r.a = w.queue;
        r.kind = uint8_t(pm.handoff);
        break;
      case TraceStep::decrypted:
        r.a = pm.iface_in;
        r.c = pm.tenant;
        flow_of(pkts[i], pm.l2_len, r);
        break;
      case TraceStep::translated:
        r.c = pm.exit;  // where it leaves the core to (its tenant until the core route is applied)
        flow_of(pkts[i], pm.l2_len, r);
        break;
      case TraceStep::local:
        r.c = pm.tenant;
        flow_of(pkts[i], pm.l2_len, r);
        r.x = r.y, r.y = 0, r.z = 0;
        break;
      default: break;
    }
    push(*e, r);
  }
}

void trace_esp(Worker& w, rte_mbuf* const* pkts, uint16_t n) {
  for (uint16_t i = 0; i < n; i++) {
    TraceEntry* e = entry_of(*w.trace, pkts[i]);
    if (!e) continue;
    TraceRecord r = record(TraceStep::esp);
    if (!esp_of(pkts[i], meta(pkts[i]).l2_len, r)) continue;
    r.b = meta(pkts[i]).tenant;  // the SA is named by its SPI when the trace is read
    push(*e, r);
  }
}

void trace_lookup(Worker& w, rte_mbuf* const* pkts, uint16_t n, const uint32_t* hops) {
  const Tables& t = *w.tables;
  for (uint16_t i = 0; i < n; i++) {
    TraceEntry* e = entry_of(*w.trace, pkts[i]);
    if (!e) continue;
    const PacketMeta& pm = meta(pkts[i]);
    const Nexthop& nh = t.nexthops[hops[i]];
    TraceRecord r = record(TraceStep::lookup);
    r.a = pm.tenant;
    r.kind = uint8_t(nh.kind);
    if (nh.kind == NexthopKind::via) r.b = nh.interface, r.y = nh.gateway;
    if (nh.kind == NexthopKind::leak) r.c = nh.tenant;
    if (const rte_ipv4_hdr* ip = ipv4_at(pkts[i], pm.l2_len)) r.x = rte_be_to_cpu_32(ip->dst_addr);
    push(*e, r);
  }
}

void trace_nat(Worker& w, rte_mbuf* const* pkts, uint16_t n, bool handed_off) {
  for (uint16_t i = 0; i < n; i++) {
    TraceEntry* e = entry_of(*w.trace, pkts[i]);
    if (!e) continue;
    const PacketMeta& pm = meta(pkts[i]);
    TraceRecord r = record(TraceStep::nat);
    r.a = uint16_t(pm.origin - 1);
    r.b = pm.exit;
    r.c = handed_off;
    flow_of(pkts[i], pm.l2_len, r);
    push(*e, r);
  }
}

void trace_encrypted(Worker& w, rte_mbuf* const* pkts, uint16_t n) {
  for (uint16_t i = 0; i < n; i++) {
    TraceEntry* e = entry_of(*w.trace, pkts[i]);
    if (!e) continue;
    const PacketMeta& pm = meta(pkts[i]);
    TraceRecord r = record(TraceStep::encrypted);
    if (!esp_of(pkts[i], pm.l2_len, r)) continue;
    r.a = pm.iface_out;
    r.b = pm.tenant;
    push(*e, r);
  }
}

void trace_neighbour(Worker& w, rte_mbuf* const* pkts, uint16_t n, const uint64_t* words) {
  for (uint16_t i = 0; i < n; i++) {
    TraceEntry* e = entry_of(*w.trace, pkts[i]);
    if (!e) continue;
    const PacketMeta& pm = meta(pkts[i]);
    TraceRecord r = record(TraceStep::neighbour);
    r.a = pm.iface_out;
    r.x = pm.neighbour;
    // Parked also when others wait for this next hop (ip_output keeps a flow's order).
    bool resolved = words[i] & NeighbourTable::valid;
    r.kind = resolved;
    if (resolved) {
      rte_ether_addr mac = NeighbourTable::mac_of(words[i]);
      r.y = uint32_t(mac.addr_bytes[0] << 8 | mac.addr_bytes[1]);
      r.z = uint32_t(mac.addr_bytes[2] << 24 | mac.addr_bytes[3] << 16 | mac.addr_bytes[4] << 8 | mac.addr_bytes[5]);
    }
    push(*e, r);
  }
}

void trace_tx(Worker& w, uint16_t port, rte_mbuf* const* pkts, uint16_t n) {
  for (uint16_t i = 0; i < n; i++) {
    TraceEntry* e = entry_of(*w.trace, pkts[i]);
    if (!e) continue;
    TraceRecord r = record(TraceStep::tx);
    r.a = port;
    r.b = meta(pkts[i]).iface_out;
    r.c = w.queue;
    r.v = rte_pktmbuf_pkt_len(pkts[i]);
    push(*e, r);
  }
}

void trace_drop(Worker& w, rte_mbuf* m, Drop reason) {
  TraceEntry* e = entry_of(*w.trace, m);
  if (!e) return;
  TraceRecord r = record(TraceStep::drop);
  r.a = uint16_t(reason);
  r.c = meta(m).tenant;
  push(*e, r);
}

}  // namespace medix::dp
