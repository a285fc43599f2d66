#pragma once
// Ethernet and VLAN: classifying received frames to their interface, and writing the header
// of an interface's attachment (untagged, 802.1Q, QinQ).
#include <rte_ether.h>
#include <rte_mbuf.h>

#include <cstring>

#include "infra/worker.h"
#include "tables/tables.h"

namespace medix::dp {

// Classifies a burst received on `port`: IPv4 to `ip`, ARP to `arp` (meta iface_in, tenant,
// l2_len set), in arrival order, QinQ frames after the others; the rest dropped by reason.
// `n_plain` counts the IPv4 frames that pass ip_input's checks as they are (ipv4_plain): when
// that is all of them, ip_input's pass has nothing to do.
void l2_input(Worker& w, uint16_t port, rte_mbuf** pkts, uint16_t n, rte_mbuf** ip, uint16_t& n_ip, uint16_t& n_plain,
              rte_mbuf** arp, uint16_t& n_arp);

inline uint8_t l2_len_of(const InterfaceEntry& f) {
  return uint8_t(sizeof(rte_ether_hdr) + (f.outer_vlan ? 4 : 0) + (f.inner_vlan ? 4 : 0));
}

// The source MAC of frames forwarded out of `f`: the virtual MAC of its VRRP instance while
// that is master (RFC 5798 7.3's MAC of the virtual router: switches learn it on the port of
// the node that holds it now), else the interface's own. ARP and frames medix-dp itself
// originates keep the interface's MAC.
inline rte_ether_addr forward_source(const InterfaceEntry& f) {
  if (f.vrrp_live && f.vrrp_live->master.load(std::memory_order_relaxed)) [[unlikely]]
    return vrrp::virtual_mac(f.vrrp_vrid);
  return f.mac;
}

// Writes the interface's L2 header into `at`, which has l2_len_of(f) bytes, from `src`.
inline void write_l2(uint8_t* at, const InterfaceEntry& f, const rte_ether_addr& dst, uint16_t ethertype,
                     const rte_ether_addr& src) {
  auto* eth = reinterpret_cast<rte_ether_hdr*>(at);
  eth->dst_addr = dst;
  eth->src_addr = src;
  // Each tag is TPID then TCI; the last 2 bytes carry the payload's ethertype.
  uint8_t* p = at + 2 * RTE_ETHER_ADDR_LEN;
  auto put16 = [&p](uint16_t v) {
    v = rte_cpu_to_be_16(v);
    memcpy(p, &v, 2);
    p += 2;
  };
  if (f.outer_vlan) {
    put16(f.inner_vlan ? RTE_ETHER_TYPE_QINQ : RTE_ETHER_TYPE_VLAN);
    put16(f.outer_vlan);
  }
  if (f.inner_vlan) {
    put16(RTE_ETHER_TYPE_VLAN);
    put16(f.inner_vlan);
  }
  put16(ethertype);
}

// The same, from the interface's own MAC.
inline void write_l2(uint8_t* at, const InterfaceEntry& f, const rte_ether_addr& dst, uint16_t ethertype) {
  write_l2(at, f, dst, ethertype, f.mac);
}

}  // namespace medix::dp
