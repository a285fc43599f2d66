// ip_output: resolves each packet's next hop to a MAC, parks it while ARP asks, fragments
// what is larger than the egress MTU (DF clear), and writes the egress L2 header.
#include <rte_cycles.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_prefetch.h>

#include "arp/arp.h"
#include "ip/ip.h"
#include "l2/l2.h"

namespace medix::dp {

namespace {

// What a burst sends, counted per run of one egress interface: packets of a burst mostly share
// it, so a packet costs two additions instead of three counter stores.
struct Egress {
  static constexpr uint16_t none = UINT16_MAX;
  uint16_t iface = none;
  uint16_t tenant = 0;
  uint64_t packets = 0, bytes = 0;

  void start(Worker& w, uint16_t id, const InterfaceEntry& f) {
    if (id == iface) return;
    flush(w);
    iface = id;
    tenant = f.tenant;
  }
  void count(Worker& w, uint16_t id, const InterfaceEntry& f, rte_mbuf* m) {
    start(w, id, f);
    packets++;
    bytes += rte_pktmbuf_pkt_len(m);
  }
  void flush(Worker& w) {
    if (!packets) return;
    bump(w.counters->interfaces[iface].tx_packets, packets);
    bump(w.counters->interfaces[iface].tx_bytes, bytes);
    bump(w.counters->tenants[tenant].tx_packets, packets);
    packets = bytes = 0;
  }
};

// Copies a built L2 header: constant sizes, so each is a couple of wide moves.
inline void copy_l2(uint8_t* at, const uint8_t* header, uint8_t len) {
  switch (len) {
    case sizeof(rte_ether_hdr): memcpy(at, header, sizeof(rte_ether_hdr)); break;
    case sizeof(rte_ether_hdr) + sizeof(rte_vlan_hdr):
      memcpy(at, header, sizeof(rte_ether_hdr) + sizeof(rte_vlan_hdr));
      break;
    default: memcpy(at, header, len); break;
  }
}

void emit_fragments(Worker& w, rte_mbuf* m, uint64_t neighbour_word, Egress& e);

// Sends the packets at the front of `pkts` (at most n) whose next hop is `key` (egress interface
// and neighbour, its MAC known: `neighbour_word`), in order, and returns how many: the first with
// another next hop ends the run. What a run shares is worked out once, as VPP's adjacency holds
// it: the L2 header (its rewrite string), the interface's entry, where its packets go (the
// port's tx buffer, or its shaper) and its counters; a packet then costs its header's move and
// copy.
uint16_t emit_run(Worker& w, rte_mbuf** pkts, uint16_t n, NeighbourSlotKey key, uint64_t neighbour_word, Egress& e) {
  uint16_t iface = key.interface;
  const InterfaceEntry& f = w.tables->interfaces[iface];
  e.start(w, iface, f);
  uint8_t header[sizeof(rte_ether_hdr) + 2 * sizeof(rte_vlan_hdr)];
  write_l2(header, f, NeighbourTable::mac_of(neighbour_word), RTE_ETHER_TYPE_IPV4, forward_source(f));
  const uint8_t len = l2_len_of(f);
  // send_out's tests, a run at a time: the tables do not change under a burst.
  const auto& shaper_of = w.tables->qos.shaper_of;
  const PortEntry& port = w.tables->ports[f.port];
  const bool buffered =
      !(iface < shaper_of.size() && shaper_of[iface] != qos::no_shaper) && port.live && !port.admin_down;
  TxBuffer& tx = w.tx[f.port];
  uint16_t i = 0;
  if (buffered) [[likely]] {
    // Whole packets with room in their headroom, straight into the buffer: a loop without a
    // call, so that its counts stay in registers (a count in memory is a chain of stores and
    // loads from one packet to the next). The first other packet ends it.
    if (tx.count + n > std::size(tx.pkts)) tx_burst(w, f.port, tx);
    uint16_t count = tx.count;
    uint64_t bytes = 0;
    for (; i < n; i++) {
      rte_mbuf* m = pkts[i];
      const PacketMeta& pm = meta(m);
      if (pm.neighbour != key.address || pm.iface_out != iface) break;
      // rte_pktmbuf_prepend or _adj by the difference of the two headers: the received one
      // was parsed in the first segment, so only the headroom can be short.
      int delta = int(len) - pm.l2_len;
      if ((pm.flags & meta_fragment) || delta > int(m->data_off)) [[unlikely]]
        break;
      m->data_off = uint16_t(m->data_off - delta);
      m->data_len = uint16_t(m->data_len + delta);
      m->pkt_len = uint32_t(int(m->pkt_len) + delta);
      copy_l2(rte_pktmbuf_mtod(m, uint8_t*), header, len);
      bytes += m->pkt_len;
      tx.pkts[count++] = m;
    }
    tx.count = count;
    tx.bytes += uint32_t(bytes);
    e.packets += i;
    e.bytes += bytes;
    if (tx.count == std::size(tx.pkts)) tx_burst(w, f.port, tx);
  }
  for (; i < n; i++) {  // the rest one by one
    rte_mbuf* m = pkts[i];
    const PacketMeta& pm = meta(m);
    if (pm.neighbour != key.address || pm.iface_out != iface) break;
    if (pm.flags & meta_fragment) {
      emit_fragments(w, m, neighbour_word, e);  // counts its fragments itself
      continue;
    }
    uint8_t* at;
    if (len > pm.l2_len)
      at = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, uint16_t(len - pm.l2_len)));
    else
      at = reinterpret_cast<uint8_t*>(rte_pktmbuf_adj(m, uint16_t(pm.l2_len - len)));
    if (!at) {
      drop(w, m, Drop::no_buffer);
      continue;
    }
    copy_l2(at, header, len);
    e.count(w, iface, f, m);
    send_out(w, iface, f.port, m);  // shaped, or the port down (dropped there)
  }
  return i;
}

[[gnu::noinline]] void emit_fragments(Worker& w, rte_mbuf* m, uint64_t neighbour_word, Egress& e) {
  PacketMeta& pm = meta(m);
  uint16_t iface = pm.iface_out;
  const InterfaceEntry& f = w.tables->interfaces[iface];
  rte_ether_addr dst = NeighbourTable::mac_of(neighbour_word);
  rte_pktmbuf_adj(m, pm.l2_len);
  rte_mbuf* frags[burst_size];
  int32_t n = rte_ipv4_fragment_packet(m, frags, burst_size, f.mtu, w.pool, w.indirect_pool);
  if (n < 0) {
    pm.l2_len = 0;
    drop(w, m, Drop::fragmentation_failed);
    return;
  }
  rte_pktmbuf_free(m);  // the fragments hold their own references to its data
  uint8_t l2 = l2_len_of(f);
  for (int32_t i = 0; i < n; i++) {
    // rte_ip_frag leaves the header checksum to the NIC; not every port offloads it.
    auto* ip = rte_pktmbuf_mtod(frags[i], rte_ipv4_hdr*);
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    meta(frags[i]) = pm;
    auto* at = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(frags[i], l2));
    if (!at) {
      drop(w, frags[i], Drop::no_buffer);
      continue;
    }
    write_l2(at, f, dst, RTE_ETHER_TYPE_IPV4, forward_source(f));
    e.count(w, iface, f, frags[i]);
    send_out(w, iface, f.port, frags[i]);
  }
}

NeighbourSlotKey key_of(rte_mbuf* m) { return NeighbourSlotKey{meta(m).neighbour, meta(m).iface_out, 0}; }

PendingQueue::Waiting* find_waiting(PendingQueue& q, const NeighbourSlotKey& key) {
  for (uint32_t i = 0; i < q.n_waiting; i++)
    if (q.waiting[i].key.address == key.address && q.waiting[i].key.interface == key.interface) return &q.waiting[i];
  return nullptr;
}

void ask(Worker& w, PendingQueue::Waiting& waiting, uint64_t now) {
  if (waiting.asked_at && now - waiting.asked_at < w.tsc_hz / 10) return;
  waiting.asked_at = now;
  arp_request(w, waiting.key.interface, waiting.key.address);
}

// Parks a packet until ARP answers. The queue is the worker's; a tenant may hold only its share
// of it (packets and next hops), so that one ARPing for a dead subnet leaves room for the others.
void park(Worker& w, rte_mbuf* m, uint64_t now) {
  PendingQueue& q = *w.pending;
  NeighbourSlotKey key = key_of(m);
  auto* waiting = find_waiting(q, key);
  uint16_t tenant = waiting ? waiting->tenant : w.tables->interfaces[meta(m).iface_out].tenant;
  if (tenant >= max_tenants) tenant = 0;
  uint32_t share = w.settings.arp_pending_tenant_limit;
  uint32_t share_waiting = std::max<uint32_t>(1, pending_next_hops * share / w.settings.arp_pending_limit);
  if (q.count >= w.settings.arp_pending_limit || (!waiting && q.n_waiting == std::size(q.waiting))) {
    drop(w, m, Drop::arp_pending_full);
    return;
  }
  if (q.tenant_packets[tenant] >= share || (!waiting && q.tenant_waiting[tenant] >= share_waiting)) {
    bump(w.counters->tenants[tenant].arp_pending_limited);
    drop(w, m, Drop::arp_pending_share);
    return;
  }
  if (w.pool_low && q.tenant_packets[tenant] >= buffer_guard_share) [[unlikely]] {
    bump(w.counters->tenants[tenant].buffer_guarded);
    drop(w, m, Drop::buffer_guard);
    return;
  }
  if (!waiting) {
    waiting = &q.waiting[q.n_waiting++];
    *waiting = {key, 0, 0, tenant};
    q.tenant_waiting[tenant]++;
  }
  waiting->packets++;
  q.tenant_packets[tenant]++;
  meta(m).parked_tenant = tenant;
  meta(m).in_uid = w.tables->interfaces[meta(m).iface_in].uid;
  meta(m).out_uid = w.tables->interfaces[meta(m).iface_out].uid;
  meta(m).deadline = now + w.tsc_hz * w.settings.arp_timeout_ms / 1000;
  q.pkts[q.count++] = m;
  ask(w, *waiting, now);
}

}  // namespace

namespace {

// Runs of one (interface, neighbour): the neighbour is looked up (one bulk lookup for all the
// runs), and emit_run's work done, once a run.
void output_runs(Worker& w, rte_mbuf** pkts, uint16_t n, Egress& e) {
  NeighbourSlotKey keys[burst_size] = {};
  uint16_t starts[burst_size + 1];
  uint16_t runs = 0;
  for (uint16_t i = 0; i < n; i++) {
    const PacketMeta& pm = meta(pkts[i]);
    if (runs && pm.neighbour == keys[runs - 1].address && pm.iface_out == keys[runs - 1].interface) continue;
    keys[runs] = NeighbourSlotKey{pm.neighbour, pm.iface_out, 0};
    // Runs to many interfaces: their entries and counters are lines of their own.
    rte_prefetch0(&w.tables->interfaces[pm.iface_out]);
    rte_prefetch0(&w.counters->interfaces[pm.iface_out]);
    starts[runs++] = i;
  }
  starts[runs] = n;
  uint64_t words[burst_size];
  w.tables->neighbours->lookup_bulk(keys, runs, words, w.neighbour_cache);
  if (w.trace) [[unlikely]] {
    uint64_t each[burst_size];
    for (uint16_t r = 0; r < runs; r++)
      for (uint16_t i = starts[r]; i < starts[r + 1]; i++) each[i] = words[r];
    trace_neighbour(w, pkts, n, each);
  }
  uint64_t now = 0;
  for (uint16_t r = 0; r < runs; r++) {
    uint16_t first = starts[r], count = uint16_t(starts[r + 1] - first);
    if ((words[r] & NeighbourTable::valid) && (w.pending->n_waiting == 0 || !find_waiting(*w.pending, keys[r]))) {
      emit_run(w, pkts + first, count, keys[r], words[r], e);
      continue;
    }
    if (!now) now = rte_rdtsc();
    for (uint16_t i = first; i < first + count; i++) park(w, pkts[i], now);
  }
}

}  // namespace

void ip_output(Worker& w, rte_mbuf** pkts, uint16_t n) {
  // Nearly every burst is one run (one egress interface and neighbour): its first packet's
  // neighbour looked up alone, and the packets that share it sent in the walk that finds where
  // the run ends. From the first other next hop on, the rest goes by runs (output_runs), in
  // order.
  Egress e;
  uint16_t done = 0;
  if (n && !w.trace) [[likely]] {
    NeighbourSlotKey key = key_of(pkts[0]);
    uint64_t word;
    w.tables->neighbours->lookup_bulk(&key, 1, &word, w.neighbour_cache);
    if ((word & NeighbourTable::valid) && (w.pending->n_waiting == 0 || !find_waiting(*w.pending, key)))
      done = emit_run(w, pkts, n, key, word, e);
  }
  if (done < n) output_runs(w, pkts + done, uint16_t(n - done), e);
  e.flush(w);
}

// Sends what ARP has resolved, in arrival order; gives up on what waited too long.
void service_pending(Worker& w) {
  PendingQueue& q = *w.pending;
  uint64_t now = rte_rdtsc();
  if (q.count == 0 || now < q.next_service) return;
  q.next_service = now + w.tsc_hz / 10000;  // every 100 us at most

  uint32_t kept = 0;
  Egress e;
  for (uint32_t first = 0; first < q.count; first += burst_size) {
    uint32_t count = std::min<uint32_t>(burst_size, q.count - first);
    NeighbourSlotKey keys[burst_size];
    uint64_t words[burst_size];
    for (uint32_t i = 0; i < count; i++) keys[i] = key_of(q.pkts[first + i]);
    w.tables->neighbours->lookup_bulk(keys, count, words);
    for (uint32_t i = 0; i < count; i++) {
      rte_mbuf* m = q.pkts[first + i];
      auto* waiting = find_waiting(q, keys[i]);
      const auto& interfaces = w.tables->interfaces;
      uint16_t& share = q.tenant_packets[meta(m).parked_tenant];
      bool leaves = true;
      if (meta(m).iface_out >= interfaces.size() || interfaces[meta(m).iface_out].uid != meta(m).out_uid) {
        waiting->packets--;  // its egress interface was deleted while it waited
        drop(w, m, Drop::interface_gone);
      } else if (words[i] & NeighbourTable::valid) {
        waiting->packets--;
        emit_run(w, &m, 1, keys[i], words[i], e);
      } else if (now >= meta(m).deadline) {
        waiting->packets--;
        if (meta(m).iface_in < interfaces.size() && interfaces[meta(m).iface_in].uid == meta(m).in_uid)
          icmp_error(w, m, icmp_dest_unreachable, unreach_host);
        __atomic_store_n(&w.arp_failed, uint64_t(keys[i].interface) << 32 | keys[i].address, __ATOMIC_RELAXED);
        drop(w, m, Drop::arp_timeout);
      } else {
        ask(w, *waiting, now);
        q.pkts[kept++] = m;
        leaves = false;
      }
      if (leaves && share) share--;
    }
  }
  e.flush(w);
  q.count = kept;
  uint32_t still = 0;
  for (uint32_t i = 0; i < q.n_waiting; i++)
    if (q.waiting[i].packets)
      q.waiting[still++] = q.waiting[i];
    else if (q.tenant_waiting[q.waiting[i].tenant])
      q.tenant_waiting[q.waiting[i].tenant]--;
  q.n_waiting = still;
}

}  // namespace medix::dp
