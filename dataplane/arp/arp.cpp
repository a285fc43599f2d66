// ARP: answers requests for our addresses on the worker, hands what it learns to the main
// lcore (the neighbour table's only writer), and asks for next hops.
#include <rte_arp.h>
#include <rte_ring_elem.h>

#include "arp/arp.h"
#include "l2/l2.h"

namespace medix::dp {

void arp_input(Worker& w, rte_mbuf** pkts, uint16_t n) {
  const Tables& t = *w.tables;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    PacketMeta& pm = meta(m);
    if (rte_pktmbuf_data_len(m) < pm.l2_len + sizeof(rte_arp_hdr)) {
      drop(w, m, Drop::arp_malformed);
      continue;
    }
    auto* arp = rte_pktmbuf_mtod_offset(m, rte_arp_hdr*, pm.l2_len);
    if (arp->arp_hardware != rte_cpu_to_be_16(RTE_ARP_HRD_ETHER) ||
        arp->arp_protocol != rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4) || arp->arp_hlen != RTE_ETHER_ADDR_LEN ||
        arp->arp_plen != 4 ||
        (arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REQUEST) &&
         arp->arp_opcode != rte_cpu_to_be_16(RTE_ARP_OP_REPLY))) {
      drop(w, m, Drop::arp_malformed);
      continue;
    }
    const InterfaceEntry& f = t.interfaces[pm.iface_in];
    uint32_t sender = rte_be_to_cpu_32(arp->arp_data.arp_sip);
    uint32_t target = rte_be_to_cpu_32(arp->arp_data.arp_tip);
    uint16_t op = rte_be_to_cpu_16(arp->arp_opcode);

    if (sender != 0 && f.on_link(sender) && !f.owns(sender) &&
        rte_is_valid_assigned_ether_addr(&arp->arp_data.arp_sha)) {
      LearnedNeighbour learned{sender, pm.iface_in, {}, f.uid};
      memcpy(learned.mac, arp->arp_data.arp_sha.addr_bytes, 6);
      // A full ring only delays learning: the next ARP from that host teaches it again.
      rte_ring_mp_enqueue_elem(w.learned, &learned, sizeof learned);
    }

    // A virtual address of a VRRP instance that is master here is answered with its virtual
    // MAC (looked for only when the target is not ours: the usual request pays nothing).
    const vrrp::Instance* virtual_router = nullptr;
    bool ours = op == RTE_ARP_OP_REQUEST && f.owns(target);
    if (op == RTE_ARP_OP_REQUEST && !ours && !t.vrrp.instances.empty()) [[unlikely]] {
      virtual_router = t.vrrp.master_for(pm.iface_in, target);
      ours = virtual_router != nullptr;
    }
    if (ours) {
      // Answer in place: the frame turned around, with the interface's own tags.
      rte_ether_addr mac = virtual_router ? vrrp::virtual_mac(virtual_router->vrid) : f.mac;
      write_l2(rte_pktmbuf_mtod(m, uint8_t*), f, arp->arp_data.arp_sha, RTE_ETHER_TYPE_ARP);
      rte_pktmbuf_mtod(m, rte_ether_hdr*)->src_addr = mac;
      arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REPLY);
      arp->arp_data.arp_tha = arp->arp_data.arp_sha;
      arp->arp_data.arp_tip = arp->arp_data.arp_sip;
      arp->arp_data.arp_sha = mac;
      arp->arp_data.arp_sip = rte_cpu_to_be_32(target);
      // Drop Ethernet padding the request may have carried.
      rte_pktmbuf_trim(m, uint16_t(rte_pktmbuf_pkt_len(m) - pm.l2_len - sizeof(rte_arp_hdr)));
      bump(w.counters->arp_replies_sent);
      if (f.tenant < max_tenants) bump(w.counters->tenants[f.tenant].arp_replies_sent);
      bump(w.counters->interfaces[pm.iface_in].tx_packets);
      bump(w.counters->interfaces[pm.iface_in].tx_bytes, rte_pktmbuf_pkt_len(m));
      pm.iface_out = pm.iface_in;  // what a capture at tx names
      send(w, f.port, m);
    } else if (op == RTE_ARP_OP_REQUEST) {
      drop(w, m, Drop::arp_not_for_us);
    } else {
      bump(w.counters->arp_replies_received);  // learned above: consumed, not dropped
      if (f.tenant < max_tenants) bump(w.counters->tenants[f.tenant].arp_replies_received);
      rte_pktmbuf_free(m);
    }
  }
}

void arp_request(Worker& w, uint16_t iface, uint32_t target) {
  const InterfaceEntry& f = w.tables->interfaces[iface];
  rte_mbuf* m = rte_pktmbuf_alloc(w.pool);
  if (!m) return;
  uint8_t l2 = l2_len_of(f);
  auto* at = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, uint16_t(l2 + sizeof(rte_arp_hdr))));
  rte_ether_addr broadcast;
  memset(&broadcast, 0xff, sizeof broadcast);
  write_l2(at, f, broadcast, RTE_ETHER_TYPE_ARP);
  auto* arp = reinterpret_cast<rte_arp_hdr*>(at + l2);
  arp->arp_hardware = rte_cpu_to_be_16(RTE_ARP_HRD_ETHER);
  arp->arp_protocol = rte_cpu_to_be_16(RTE_ETHER_TYPE_IPV4);
  arp->arp_hlen = RTE_ETHER_ADDR_LEN;
  arp->arp_plen = 4;
  arp->arp_opcode = rte_cpu_to_be_16(RTE_ARP_OP_REQUEST);
  arp->arp_data.arp_sha = f.mac;
  arp->arp_data.arp_sip = rte_cpu_to_be_32(f.source_for(target));
  memset(&arp->arp_data.arp_tha, 0, sizeof arp->arp_data.arp_tha);
  arp->arp_data.arp_tip = rte_cpu_to_be_32(target);
  bump(w.counters->arp_requests_sent);
  if (f.tenant < max_tenants) bump(w.counters->tenants[f.tenant].arp_requests_sent);
  bump(w.counters->interfaces[iface].tx_packets);
  bump(w.counters->interfaces[iface].tx_bytes, rte_pktmbuf_pkt_len(m));
  meta(m).iface_out = iface;  // what a capture at tx names
  meta(m).trace = 0;          // a new packet: no trace's (its buffer's last use may be)
  send(w, f.port, m);
}

}  // namespace medix::dp
