// l2_input: finds the interface a frame arrived on from (port, VLAN tags), checks the
// destination MAC, and sorts frames into ARP and IPv4.
#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_prefetch.h>

#include <algorithm>

#include "infra/ipv4.h"
#include "l2/l2.h"

namespace medix::dp {

namespace {

// A burst's frames counted per run of one interface: frames of a burst mostly share it.
struct RxRun {
  uint16_t iface = UINT16_MAX, tenant = 0;
  uint64_t packets = 0, bytes = 0;
  void flush(Worker& w) {
    if (!packets) return;
    bump(w.counters->interfaces[iface].rx_packets, packets);
    bump(w.counters->interfaces[iface].rx_bytes, bytes);
    bump(w.counters->tenants[tenant].rx_packets, packets);
    packets = bytes = 0;
  }
};

// A frame whose interface is slot `id`: counted, then to `ip` (counted in `n_plain` too if
// ipv4_plain) or `arp`, or dropped. True: to `ip`. (Frames with the last one's header:
// LastHeader::take.)
[[gnu::always_inline]] inline bool classify(Worker& w, rte_mbuf* m, uint16_t id, uint16_t ethertype, RxRun& run,
                                            rte_mbuf** ip, uint16_t& n_ip, uint16_t& n_plain, rte_mbuf** arp,
                                            uint16_t& n_arp) {
  const Tables& t = *w.tables;
  const InterfaceEntry& f = t.interfaces[id];
  PacketMeta& pm = meta(m);
  pm.iface_in = id;
  pm.tenant = f.tenant;
  pm.flags = 0;
  pm.origin = 0;
  pm.session = 0;
  if (id != run.iface) {
    run.flush(w);
    run.iface = id;
    run.tenant = f.tenant;
  }
  run.packets++;
  run.bytes += rte_pktmbuf_pkt_len(m);
  const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
  bool to_us = rte_is_same_ether_addr(&eth->dst_addr, &f.mac);
  // VRRP's frames are rare and never to the interface's MAC: one test of an empty vector
  // is what the others pay.
  if (!to_us && !t.vrrp.instances.empty()) [[unlikely]] {
    vrrp::Claim claim = t.vrrp.claim(id, eth->dst_addr);
    if (claim == vrrp::Claim::virtual_mac) {
      to_us = true;
    } else if (claim == vrrp::Claim::advert && ethertype == RTE_ETHER_TYPE_IPV4) {
      if (!w.vrrp || rte_ring_mp_enqueue(w.vrrp, m) != 0) drop(w, m, Drop::vrrp_full);
      return false;
    }
  }
  if (ethertype == RTE_ETHER_TYPE_IPV4 && to_us) [[likely]] {
    ip[n_ip++] = m;
    n_plain = uint16_t(n_plain + ipv4_plain(m, pm.l2_len));  // the header is at hand now
    return true;
  }
  if (ethertype == RTE_ETHER_TYPE_ARP && (to_us || rte_is_broadcast_ether_addr(&eth->dst_addr)))
    arp[n_arp++] = m;
  else if (!to_us)
    drop(w, m, Drop::l2_not_for_us);
  else
    drop(w, m, Drop::unsupported_ethertype);
  return false;
}

inline uint64_t load64(const uint8_t* at) {
  uint64_t v;
  memcpy(&v, at, sizeof(v));
  return v;
}

// The header of the last frame that went to `ip` through the VLAN map (one tag or none in the
// frame, none stripped by the NIC): its destination MAC and the bytes from the first ethertype
// to the payload's (TPID, TCI, ethertype; or the ethertype alone). A frame with the same ones
// arrived on the same port the same way, so it has the same interface, is to us and is IPv4:
// its parse, the VLAN map and the MAC and VRRP tests are the last frame's (frames of a burst
// mostly share their interface).
struct LastHeader {
  static constexpr uint64_t mac_mask = 0xffff'ffff'ffffULL;
  static constexpr uint32_t reads = 20;  // bytes the test reads: up to the TPID's 8 bytes from 12
  uint64_t mac = 0, tags = 0, tags_mask = 0;
  uint16_t id = 0, tenant = 0;
  uint8_t l2_len = 0;
  bool known = false;

  // Whether frame m has these bytes (and is one the test may take: long enough, no tag stripped).
  [[gnu::always_inline]] static bool same(const rte_mbuf* m, uint64_t mac, uint64_t tags, uint64_t tags_mask) {
    if (rte_pktmbuf_data_len(m) < reads || (m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED)) return false;
    const uint8_t* data = rte_pktmbuf_mtod(m, const uint8_t*);
    uint64_t head = load64(data), tail = load64(data + 12);
    return ((head & mac_mask) == mac) & ((tail & tags_mask) == tags);
  }
  // Takes the frames from pkts[i] on that have these bytes, up to the first that has not: each
  // counted in `run` and sent on to `ip` as classify would (its interface's). Returns where it
  // stopped. A loop of its own, so that the header, the interface and the counts stay in
  // registers (in the general loop around the parse they were on the stack).
  [[gnu::always_inline]] uint16_t take(Worker& w, rte_mbuf** pkts, uint16_t i, uint16_t n, uint16_t ahead, RxRun& run,
                                       rte_mbuf** ip, uint16_t& n_ip_out, uint16_t& n_plain_out) const {
    const uint64_t mac_ = mac, tags_ = tags, mask_ = tags_mask;
    const uint16_t id_ = id, tenant_ = tenant;
    const uint8_t len_ = l2_len;
    if (!known || !same(pkts[i], mac_, tags_, mask_)) return i;
    if (id_ != run.iface) {
      run.flush(w);
      run.iface = id_;
      run.tenant = tenant_;
    }
    uint16_t n_ip = n_ip_out, n_plain = n_plain_out, first = i;
    uint64_t bytes = 0;
    do {
      rte_mbuf* m = pkts[i];
      if (i + ahead < n) {
        rte_prefetch0(rte_pktmbuf_mtod(pkts[i + ahead], void*));
        rte_prefetch0(&meta(pkts[i + ahead]));
      }
      PacketMeta& pm = meta(m);
      pm.iface_in = id_;
      pm.tenant = tenant_;
      pm.l2_len = len_;
      pm.flags = 0;
      pm.origin = 0;
      pm.session = 0;
      bytes += rte_pktmbuf_pkt_len(m);
      ip[n_ip++] = m;
      n_plain = uint16_t(n_plain + ipv4_plain(m, len_));
      i++;
    } while (i < n && same(pkts[i], mac_, tags_, mask_));
    run.packets += i - first;
    run.bytes += bytes;
    n_ip_out = n_ip;
    n_plain_out = n_plain;
    return i;
  }
  void keep(const uint8_t* data, uint16_t slot, uint16_t in_tenant, uint8_t len) {
    // (len - 12) bytes from 12: 2 untagged, 6 with one tag.
    tags_mask = len == sizeof(rte_ether_hdr) ? 0xffffULL : mac_mask;
    mac = load64(data) & mac_mask;
    tags = load64(data + 12) & tags_mask;
    id = slot;
    tenant = in_tenant;
    l2_len = len;
    known = true;
  }
};

}  // namespace

// One pass: each frame parsed, its interface read from the VLAN map (no inner tag) and the
// frame sorted at once. QinQ frames take the hash after the others (each run of equal tags
// looked up once: frames of a burst mostly share their tags).
void l2_input(Worker& w, uint16_t port, rte_mbuf** pkts, uint16_t n, rte_mbuf** ip, uint16_t& n_ip, uint16_t& n_plain,
              rte_mbuf** arp, uint16_t& n_arp) {
  const Tables& t = *w.tables;
  const uint16_t* vlan_map = port < max_ports ? t.vlan_map.get() : nullptr;
  InterfaceKey keys[burst_size];
  uint16_t ethertypes[burst_size];
  rte_mbuf* qinq[burst_size];
  uint16_t n_qinq = 0;
  RxRun run;

  // The burst's frames and private areas were written or last used a burst's worth of data
  // ago: fetch a few packets ahead so that their misses overlap.
  constexpr uint16_t ahead = 4;
  auto prefetch = [&](rte_mbuf* m) {
    rte_prefetch0(rte_pktmbuf_mtod(m, void*));
    rte_prefetch0(&meta(m));
  };
  LastHeader last;
  for (uint16_t i = 0; i < std::min(n, ahead); i++) prefetch(pkts[i]);
  for (uint16_t i = 0; i < n; i++) {
    i = last.take(w, pkts, i, n, ahead, run, ip, n_ip, n_plain);
    if (i == n) break;
    rte_mbuf* m = pkts[i];
    if (i + ahead < n) prefetch(pkts[i + ahead]);
    uint32_t len = rte_pktmbuf_data_len(m);
    meta(m).tenant = no_tenant;
    if (len < sizeof(rte_ether_hdr)) {
      drop(w, m, Drop::l2_truncated);
      continue;
    }
    const uint8_t* data = rte_pktmbuf_mtod(m, const uint8_t*);
    uint16_t type = rte_be_to_cpu_16(reinterpret_cast<const rte_ether_hdr*>(data)->ether_type);
    uint32_t off = sizeof(rte_ether_hdr);
    uint16_t outer = 0, inner = 0;
    bool truncated = false;
    // A NIC may have stripped the outer tag into the mbuf.
    if (m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED)
      outer = m->vlan_tci & RTE_VLAN_ID_MASK;
    else if (type == RTE_ETHER_TYPE_VLAN || type == RTE_ETHER_TYPE_QINQ) {
      if (len < off + sizeof(rte_vlan_hdr))
        truncated = true;
      else {
        auto* tag = reinterpret_cast<const rte_vlan_hdr*>(data + off);
        outer = rte_be_to_cpu_16(tag->vlan_tci) & RTE_VLAN_ID_MASK;
        type = rte_be_to_cpu_16(tag->eth_proto);
        off += sizeof(rte_vlan_hdr);
      }
    }
    if (!truncated && outer && type == RTE_ETHER_TYPE_VLAN) {
      if (len < off + sizeof(rte_vlan_hdr))
        truncated = true;
      else {
        auto* tag = reinterpret_cast<const rte_vlan_hdr*>(data + off);
        inner = rte_be_to_cpu_16(tag->vlan_tci) & RTE_VLAN_ID_MASK;
        type = rte_be_to_cpu_16(tag->eth_proto);
        off += sizeof(rte_vlan_hdr);
      }
    }
    if (truncated) {
      drop(w, m, Drop::l2_truncated);
      continue;
    }
    meta(m).l2_len = uint8_t(off);
    if (!inner && vlan_map) [[likely]] {
      uint16_t slot = vlan_map[size_t(port) << 12 | outer];
      if (!slot) {
        drop(w, m, Drop::unknown_vlan);
        continue;
      }
      if (classify(w, m, uint16_t(slot - 1), type, run, ip, n_ip, n_plain, arp, n_arp) && len >= LastHeader::reads &&
          !(m->ol_flags & RTE_MBUF_F_RX_VLAN_STRIPPED))
        last.keep(data, uint16_t(slot - 1), t.interfaces[slot - 1].tenant, uint8_t(off));
      continue;
    }
    keys[n_qinq] = InterfaceKey{port, outer, inner, 0};
    ethertypes[n_qinq] = type;
    qinq[n_qinq++] = m;
  }
  if (n_qinq) {
    const void* key_ptrs[burst_size];
    uint16_t lookup_of[burst_size];
    uint16_t n_lookups = 0;
    for (uint16_t i = 0; i < n_qinq; i++) {
      // (Compared field by field: a whole-key load right after the narrow stores that built
      // it would wait for them.)
      if (n_lookups == 0 ||
          keys[i].outer_vlan != static_cast<const InterfaceKey*>(key_ptrs[n_lookups - 1])->outer_vlan ||
          keys[i].inner_vlan != static_cast<const InterfaceKey*>(key_ptrs[n_lookups - 1])->inner_vlan)
        key_ptrs[n_lookups++] = &keys[i];
      lookup_of[i] = uint16_t(n_lookups - 1);
    }
    void* results[burst_size];
    uint64_t hits = 0;
    if (t.interface_index) rte_hash_lookup_bulk_data(t.interface_index.get(), key_ptrs, n_lookups, &hits, results);
    for (uint16_t i = 0; i < n_qinq; i++) {
      if (!(hits & (uint64_t(1) << lookup_of[i]))) {
        drop(w, qinq[i], Drop::unknown_vlan);
        continue;
      }
      auto id = uint16_t(reinterpret_cast<uintptr_t>(results[lookup_of[i]]));
      classify(w, qinq[i], id, ethertypes[i], run, ip, n_ip, n_plain, arp, n_arp);
    }
  }
  run.flush(w);
}

}  // namespace medix::dp
