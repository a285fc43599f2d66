#include <rte_ip.h>

#include "ip/checksum.h"
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

// Sets the DSCP and keeps the ECN bits; the checksum follows (RFC 1624).
void remark(rte_ipv4_hdr* ip, uint8_t dscp) {
  uint16_t before = load16(ip);
  ip->type_of_service = uint8_t(dscp << 2 | (ip->type_of_service & 3));
  ip->hdr_checksum = checksum_replace16(ip->hdr_checksum, before, load16(ip));
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
    qos::Share& s = p->shares[w.queue];
    uint32_t len = m->pkt_len - pm.l2_len;
    // rte_meter takes the profiles by non-const pointer but only reads them.
    auto colour = qos::Colour(
        p->two_rate
            ? rte_meter_trtcm_color_blind_check(&s.trtcm, const_cast<rte_meter_trtcm_profile*>(&p->trtcm), now, len)
            : rte_meter_srtcm_color_blind_check(&s.srtcm, const_cast<rte_meter_srtcm_profile*>(&p->srtcm), now, len));
    bump(s.packets[colour]);
    bump(s.bytes[colour], len);
    switch (p->action[colour]) {
      case qos::Action::drop:
        bump(s.dropped);
        drop(w, m, Drop::policed);
        continue;
      case qos::Action::remark:
        if (has_tos) remark(ip, p->remark[colour]);
        break;
      case qos::Action::transmit: break;
    }
    pkts[left++] = m;
  }
  return left;
}

}  // namespace medix::dp
