#include <rte_ip.h>

#include "infra/checksum.h"
#include "qos/qos.h"

namespace medix::dp {
namespace {

// The policer of the packet's class, if any: the first of its tenant that matches.
const qos::Policer* class_of(const qos::Tables& t, const PacketMeta& m, int dscp) {
  for (const qos::Policer& p : t.policers)
    if (p.tenant == m.tenant && (p.interface == qos::any_interface || p.interface == m.iface_in) &&
        (p.dscp == qos::any_dscp || p.dscp == dscp))
      return &p;
  return nullptr;
}

}  // namespace

uint16_t police(Worker& w, rte_mbuf** pkts, uint16_t n, uint64_t now) {
  const qos::Tables& t = w.tables->qos;
  uint16_t left = 0;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    PacketMeta& pm = meta(m);
    // Too short for an IPv4 header: no DSCP (ip_input drops it anyway).
    bool has_tos = m->data_len >= pm.l2_len + sizeof(rte_ipv4_hdr);
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, pm.l2_len);
    const qos::Policer* p = class_of(t, pm, has_tos ? ip->type_of_service >> 2 : -2);
    if (!p) {
      pkts[left++] = m;
      continue;
    }
    qos::Colour colour;
    switch (qos::police_one(*p, p->shares[w.queue], now, m->pkt_len - pm.l2_len, has_tos ? ip->type_of_service : -1,
                            colour)) {
      case qos::Action::drop: drop(w, m, Drop::policed); continue;
      case qos::Action::remark:
        if (has_tos) set_dscp(ip, p->remark[colour]);
        break;
      case qos::Action::transmit: break;
    }
    pkts[left++] = m;
  }
  return left;
}

}  // namespace medix::dp
