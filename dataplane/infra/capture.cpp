// The workers' side of a capture: match, rate limit, copy into the worker's ring. Runs only
// while a capture is published (infra/capture.h); nothing here waits or allocates.
#include "infra/capture.h"

#include <rte_bpf.h>
#include <rte_ip.h>
#include <rte_ring_elem.h>
#include <rte_ring_peek_zc.h>
#include <rte_udp.h>

#include "infra/worker.h"

namespace medix::dp {

namespace {

// The SPI of an ESP packet (raw, or in UDP 4500 with a non-zero first word), 0 if it is not one.
uint32_t esp_spi(rte_mbuf* m, uint32_t l2_len) {
  const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t len = rte_pktmbuf_data_len(m);
  if (len < l2_len + sizeof(rte_ipv4_hdr)) return 0;
  auto* ip = reinterpret_cast<const rte_ipv4_hdr*>(p + l2_len);
  if ((ip->version_ihl >> 4) != 4) return 0;
  uint32_t off = l2_len + uint32_t(ip->version_ihl & 0xf) * 4;
  if (ip->next_proto_id == IPPROTO_UDP) {
    if (len < off + sizeof(rte_udp_hdr) + 4) return 0;
    auto* udp = reinterpret_cast<const rte_udp_hdr*>(p + off);
    if (udp->dst_port != rte_cpu_to_be_16(4500) && udp->src_port != rte_cpu_to_be_16(4500)) return 0;
    off += sizeof(rte_udp_hdr);
  } else if (ip->next_proto_id != IPPROTO_ESP) {
    return 0;
  }
  if (len < off + 4) return 0;
  uint32_t spi;
  memcpy(&spi, p + off, 4);
  return rte_be_to_cpu_32(spi);
}

// The Ethernet header's length, tags included (the frame as it is now: tx frames were rebuilt).
uint32_t l2_length(rte_mbuf* m) {
  const uint8_t* p = rte_pktmbuf_mtod(m, const uint8_t*);
  uint32_t len = rte_pktmbuf_data_len(m), off = 12;
  while (len >= off + 2) {
    uint16_t type = uint16_t(p[off] << 8 | p[off + 1]);
    if (type != RTE_ETHER_TYPE_VLAN && type != RTE_ETHER_TYPE_QINQ) break;
    off += 4;
  }
  return off + 2;
}

}  // namespace

bool capture_matches(const CaptureFilter& f, rte_mbuf* m, uint16_t port, uint16_t iface, uint16_t tenant) {
  if (f.port != capture_none && f.port != port) return false;
  if (f.tenant != capture_none && f.tenant != tenant) return false;
  if (f.by_interface && (iface == capture_none || !(f.interfaces[iface / 64] >> (iface % 64) & 1))) return false;
  if (f.spi && iface != f.spi_tunnel && esp_spi(m, l2_length(m)) != f.spi) return false;
  if (f.bpf && rte_bpf_exec(f.bpf, m) == 0) return false;
  return true;
}

void capture(Worker& w, CapturePoint point, uint16_t port, rte_mbuf* const* pkts, uint16_t n, Drop reason) {
  CaptureSession& s = *w.capture;
  const CaptureFilter& f = s.filter;
  if (!(f.points & (1u << unsigned(point)))) return;
  if (point == CapturePoint::drop && f.drop_reason != capture_none && f.drop_reason != uint16_t(reason)) return;
  const Tables& t = *w.tables;
  CaptureSession::PerWorker& me = s.workers[w.queue];
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    const PacketMeta& pm = meta(m);
    // Where it is: rx and drop by the interface it came in on (once classified), tx by the
    // interface it leaves by.
    uint16_t iface = capture_none, tenant = pm.tenant;
    if (point == CapturePoint::tx) {
      if (pm.iface_out < t.interfaces.size() && t.interfaces[pm.iface_out].uid) iface = pm.iface_out;
    } else if (pm.tenant != no_tenant && pm.iface_in < t.interfaces.size()) {
      iface = pm.iface_in;
    }
    if (iface != capture_none && point == CapturePoint::tx) tenant = t.interfaces[iface].tenant;
    if (tenant == no_tenant) tenant = capture_none;
    uint16_t p = port;
    if (p == capture_none) {
      if (iface != capture_none) {
        p = t.interfaces[iface].port;
      } else {
        for (uint16_t k = 0; k < t.ports.size(); k++)
          if (t.ports[k].live && t.ports[k].port_id == m->port) p = k;
      }
    }
    if (!capture_matches(f, m, p, iface, tenant)) continue;
    // The bucket: refilled by the TSC since it was last looked at, at most `burst` deep.
    uint64_t now = rte_rdtsc();
    me.tokens = std::min(s.burst, me.tokens + double(now - me.tokens_at) * s.rate_per_tsc);
    me.tokens_at = now;
    if (me.tokens < 1) {
      bump(me.lost);
      continue;
    }
    rte_ring_zc_data zc;
    if (rte_ring_enqueue_zc_burst_elem_start(me.ring, sizeof(CaptureRecord), 1, &zc, nullptr) != 1) {
      bump(me.lost);
      continue;
    }
    me.tokens -= 1;
    auto* r = static_cast<CaptureRecord*>(zc.ptr1);
    r->tsc = now;
    r->length = rte_pktmbuf_pkt_len(m);
    r->caplen = uint16_t(std::min<uint32_t>(r->length, f.snaplen));
    r->port = p;
    r->iface = iface;
    r->tenant = tenant;
    r->reason = uint16_t(reason);
    r->point = uint8_t(point);
    const void* data = rte_pktmbuf_read(m, 0, r->caplen, r->data);
    if (data != r->data) memcpy(r->data, data, r->caplen);
    rte_ring_enqueue_zc_finish(me.ring, 1);
  }
}

}  // namespace medix::dp
