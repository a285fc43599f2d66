// l2_input: finds the interface a frame arrived on from (port, VLAN tags), checks the
// destination MAC, and sorts frames into ARP and IPv4.
#include <rte_ether.h>
#include <rte_hash.h>
#include <rte_prefetch.h>

#include <algorithm>

#include "l2/l2.h"

namespace medix::dp {

void l2_input(Worker& w, uint16_t port, rte_mbuf** pkts, uint16_t n, rte_mbuf** ip, uint16_t& n_ip, rte_mbuf** arp,
              uint16_t& n_arp) {
  const Tables& t = *w.tables;
  InterfaceKey keys[burst_size];
  const void* key_ptrs[burst_size];
  uint16_t ethertypes[burst_size];
  rte_mbuf* parsed[burst_size];
  uint16_t n_parsed = 0;

  // The burst's frames and private areas were written or last used a burst's worth of data
  // ago: fetch a few packets ahead so that their misses overlap.
  constexpr uint16_t ahead = 4;
  auto prefetch = [&](rte_mbuf* m) {
    rte_prefetch0(rte_pktmbuf_mtod(m, void*));
    rte_prefetch0(&meta(m));
  };
  for (uint16_t i = 0; i < std::min(n, ahead); i++) prefetch(pkts[i]);
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    if (i + ahead < n) prefetch(pkts[i + ahead]);
    meta(m).tenant = no_tenant;
    uint32_t len = rte_pktmbuf_data_len(m);
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
    keys[n_parsed] = InterfaceKey{port, outer, inner, 0};
    ethertypes[n_parsed] = type;
    parsed[n_parsed++] = m;
  }
  if (n_parsed == 0) return;

  // Frames without an inner tag: one read of the VLAN map. QinQ frames: the hash, where frames
  // of a burst mostly share their tags: each run of equal keys looked up once.
  void* found[burst_size];
  uint64_t hits = 0;
  uint16_t lookup_of[burst_size];
  uint16_t n_lookups = 0;
  const uint16_t* vlan_map = t.vlan_map.get();
  for (uint16_t i = 0; i < n_parsed; i++) {
    if (!keys[i].inner_vlan && vlan_map && port < max_ports) {
      uint16_t slot = vlan_map[size_t(port) << 12 | keys[i].outer_vlan];
      found[i] = reinterpret_cast<void*>(uintptr_t(slot - 1));
      hits |= uint64_t(slot != 0) << i;
      lookup_of[i] = UINT16_MAX;
      continue;
    }
    // (Compared field by field: a whole-key load right after the narrow stores that built it
    // would wait for them.)
    if (n_lookups == 0 || keys[i].outer_vlan != static_cast<const InterfaceKey*>(key_ptrs[n_lookups - 1])->outer_vlan ||
        keys[i].inner_vlan != static_cast<const InterfaceKey*>(key_ptrs[n_lookups - 1])->inner_vlan)
      key_ptrs[n_lookups++] = &keys[i];
    lookup_of[i] = uint16_t(n_lookups - 1);
  }
  if (n_lookups) {
    void* results[burst_size];
    uint64_t result_hits = 0;
    if (t.interface_index)
      rte_hash_lookup_bulk_data(t.interface_index.get(), key_ptrs, n_lookups, &result_hits, results);
    for (uint16_t i = 0; i < n_parsed; i++) {
      if (lookup_of[i] == UINT16_MAX) continue;
      found[i] = results[lookup_of[i]];
      hits |= ((result_hits >> lookup_of[i]) & 1) << i;
    }
  }
  // Each frame's interface and its counters are in lines of their own when frames come from
  // many interfaces: fetch them all before the first is needed.
  for (uint16_t i = 0; i < n_parsed; i++) {
    if (!(hits & (uint64_t(1) << i))) continue;
    auto id = uint16_t(reinterpret_cast<uintptr_t>(found[i]));
    rte_prefetch0(&t.interfaces[id]);
    rte_prefetch0(&w.counters->interfaces[id]);
  }

  // Counted per run of one interface: frames of a burst mostly share it.
  uint16_t run = UINT16_MAX, run_tenant = 0;
  uint64_t run_packets = 0, run_bytes = 0;
  auto count_run = [&] {
    if (!run_packets) return;
    bump(w.counters->interfaces[run].rx_packets, run_packets);
    bump(w.counters->interfaces[run].rx_bytes, run_bytes);
    bump(w.counters->tenants[run_tenant].rx_packets, run_packets);
    run_packets = run_bytes = 0;
  };
  for (uint16_t i = 0; i < n_parsed; i++) {
    rte_mbuf* m = parsed[i];
    if (!(hits & (uint64_t(1) << i))) {
      drop(w, m, Drop::unknown_vlan);
      continue;
    }
    auto id = uint16_t(reinterpret_cast<uintptr_t>(found[i]));
    const InterfaceEntry& f = t.interfaces[id];
    meta(m).iface_in = id;
    meta(m).tenant = f.tenant;
    meta(m).flags = 0;
    meta(m).origin = 0;
    meta(m).session = 0;
    if (id != run) {
      count_run();
      run = id;
      run_tenant = f.tenant;
    }
    run_packets++;
    run_bytes += rte_pktmbuf_pkt_len(m);

    const auto* eth = rte_pktmbuf_mtod(m, const rte_ether_hdr*);
    bool to_us = rte_is_same_ether_addr(&eth->dst_addr, &f.mac);
    // VRRP's frames are rare and never to the interface's MAC: one test of an empty vector
    // is what the others pay.
    if (!to_us && !t.vrrp.instances.empty()) [[unlikely]] {
      vrrp::Claim claim = t.vrrp.claim(id, eth->dst_addr);
      if (claim == vrrp::Claim::virtual_mac) {
        to_us = true;
      } else if (claim == vrrp::Claim::advert && ethertypes[i] == RTE_ETHER_TYPE_IPV4) {
        if (!w.vrrp || rte_ring_mp_enqueue(w.vrrp, m) != 0) drop(w, m, Drop::vrrp_full);
        continue;
      }
    }
    if (ethertypes[i] == RTE_ETHER_TYPE_ARP && (to_us || rte_is_broadcast_ether_addr(&eth->dst_addr))) {
      arp[n_arp++] = m;
    } else if (!to_us) {
      drop(w, m, Drop::l2_not_for_us);
    } else if (ethertypes[i] == RTE_ETHER_TYPE_IPV4) {
      ip[n_ip++] = m;
    } else {
      drop(w, m, Drop::unsupported_ethertype);
    }
  }
  count_run();
}

}  // namespace medix::dp
