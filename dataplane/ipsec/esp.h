#pragma once
// ESP tunnel mode (RFC 4303), raw or in UDP (RFC 3948), IPv4 in IPv4, with Intel IPsec-MB:
// AES-GCM (RFC 4106) through its direct API, AES-CBC with HMAC-SHA-256-128 (RFC 4868) or
// HMAC-SHA1-96 through its job API.
#include <rte_ip.h>
#include <rte_udp.h>

#include <cstring>

#include "infra/worker.h"
#include "ip/ip.h"

namespace medix::dp {

struct SaState;

// Whether a checked IPv4 packet (L2 still on) is ESP or ESP in UDP, unfragmented: what
// esp_input may take before any route lookup. Inline: the pipeline asks it of every packet
// that may be ESP, decrypted ones included (a call a packet was ~5 cycles of ESP's overhead).
inline bool esp_candidate(rte_mbuf* m) {
  uint16_t l2 = meta(m).l2_len;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, l2);
  if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK))
    return false;  // local_input counts them
  if (ip->next_proto_id == IPPROTO_ESP) return true;
  if (ip->next_proto_id != IPPROTO_UDP) [[likely]]
    return false;
  // ESP in UDP as local_input tells it: port 4500, not a keepalive, no non-ESP marker (IKE).
  constexpr uint16_t esp_header = 8;
  uint16_t ihl = uint16_t((ip->version_ihl & 0xf) * 4);
  if (rte_pktmbuf_data_len(m) < l2 + ihl + sizeof(rte_udp_hdr) + esp_header ||
      rte_be_to_cpu_16(ip->total_length) < ihl + sizeof(rte_udp_hdr) + esp_header)
    return false;
  const auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, l2 + ihl);
  uint32_t marker;
  memcpy(&marker, udp + 1, 4);
  return udp->dst_port == rte_cpu_to_be_16(nat_t_port) && marker != 0;
}
// ESP packets (L2 still on). Decrypted inner packets come out with no L2, in the tunnel's
// tenant, as if received on the tunnel interface, their headers checked as ip_input does. Packets whose SPI is not an
// inbound SA of a tunnel with this destination as its local address in this underlay are handed back as they came in
// `not_ours` when it is given (they are someone else's ESP: route them), else dropped.
void esp_input(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** inner, uint16_t& n_inner,
               rte_mbuf** not_ours = nullptr, uint16_t* n_not_ours = nullptr);
// Packets routed to a tunnel (L2 still on, TTL done). Encrypted outer packets come out with
// no L2, in the underlay tenant, marked as our own (no TTL decrement, no ICMP about them).
void esp_output(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** outer, uint16_t& n_outer);
// Encrypted packets (esp_output's `outer`, esp_take_done's `outer`) whose underlay route this
// worker made in this generation for their tunnel: their egress and neighbour set as
// ip_lookup would, moved to `routed` for ip_output (the underlay's FIB lookup skipped). The
// others are compacted to the front of `pkts` for the lookup; returns how many.
uint16_t esp_route_outer(Worker& w, rte_mbuf** pkts, uint16_t n, Batch& routed);
// The tx point of spread outbound SAs (docs/ipsec.md, "One SA over several workers"), on
// their owner: what any worker encrypted (Handoff::esp_ordered) is put in sequence order.
struct OrderedSas {
  uint16_t n = 0, n_late = 0;
  SaState* sas[burst_size];  // the SAs that may have packets in order now
  rte_mbuf* late[burst_size];
  SaState* late_sa[burst_size];
  void add(SaState* sa) {
    for (uint16_t i = 0; i < n; i++)
      if (sas[i] == sa) return;
    sas[n++] = sa;
  }
};
// What this worker encrypted for spread SAs it owns: for its tx point (esp_order) before the
// pipeline call that made them returns.
Batch& esp_own_ordered(Worker& w);
// Places the packets; those that found their SA's window full (a hole as old as the window,
// given up now) are moved to the front of `pkts`: place them again once esp_order_take has
// emptied it. Returns how many.
uint16_t esp_order(Worker& w, rte_mbuf** pkts, uint16_t n, OrderedSas& sas);
// Up to 2 * burst_size of their packets in sequence order, to be routed in the underlay
// (counted against their SA's lifetimes; those marked on the way are dropped); 0: none ready.
uint16_t esp_order_take(Worker& w, OrderedSas& sas, rte_mbuf** out);

// AES-CBC jobs stay in IPsec-MB's multi-buffer lanes across bursts (flushing at the end of
// each burst runs half-empty lanes: docs/ipsec.md, "Speed"). Their packets come out of the
// worker's EspJobs when their jobs complete: decrypted ones checked as esp_input's `inner`,
// encrypted ones as esp_output's `outer`. AES-GCM completes in the call, and so do a spread
// SA's CBC jobs (its run is flushed through: its packets go to the tx point from that run).
struct EspJobs;
EspJobs* esp_jobs_create();  // nullptr: out of memory
void esp_jobs_destroy(EspJobs* jobs);
// Jobs submitted and not yet completed; packets completed and not yet taken.
unsigned esp_in_flight(const Worker& w);
bool esp_done(const Worker& w);
// Jobs submitted since the worker started (a loop that submitted none flushes).
uint64_t esp_submitted(const Worker& w);
// Collects the jobs IPsec-MB has completed; with `flush`, forces every job in flight through.
void esp_complete(Worker& w, bool flush);
// Moves completed packets into `inner` and `outer`: at most `room` in all, as many as fit.
void esp_take_done(Worker& w, Batch& inner, Batch& outer, uint16_t room);
// At the worker's stop: every job in flight completed, its packet freed.
void esp_discard(Worker& w);

// TCP MSS clamping (both directions of a tunnel): rewrites the MSS option of a SYN.
void clamp_mss(rte_mbuf* m, uint16_t l3_offset, uint16_t mss);

}  // namespace medix::dp
