// ICMP: echo replies for our addresses (local_input) and rate-limited error messages.
#include <rte_cycles.h>
#include <rte_hash_crc.h>
#include <rte_icmp.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "infra/checksum.h"
#include "ip/ip.h"
#include "l2/l2.h"

namespace medix::dp {

namespace {

bool is_icmp_error(const rte_ipv4_hdr* ip, uint32_t available) {
  if (ip->next_proto_id != IPPROTO_ICMP) return false;
  uint32_t header = uint32_t(ip->version_ihl & 0xf) * 4;
  if (available < header + 1) return true;  // cannot tell: stay silent
  uint8_t type = reinterpret_cast<const uint8_t*>(ip)[header];
  return type == 3 || type == 4 || type == 5 || type == 11 || type == 12;
}

// An address of the tenant's to send ICMP from where the interface has none (a tunnel).
uint32_t tenant_address(const Tables& t, uint16_t tenant) {
  for (const auto& f : t.interfaces)
    if (f.uid && !f.tunnel && f.tenant == tenant && f.subnet_count) return f.subnets[0].address;
  return 0;
}

// A token from the tenant's own bucket, then from the worker's: one tenant's scan empties its
// bucket, never the others'. The worker's bucket keeps a tenth of its depth for "fragmentation
// needed" (path MTU discovery), so that even many tenants scanning at once cannot black-hole
// another's large transfers. The tenant's bucket is twice its burst deep and other errors leave
// half of it to "fragmentation needed": a sender's first window (IW10, each segment too big)
// finds tokens even after the tenant's own scan or unreachables (CI saw the 11th refused).
bool take_token(Worker& w, const Tables& t, uint16_t tenant, bool path_mtu) {
  uint64_t now = rte_rdtsc();
  const Settings& s = w.settings;
  if (w.shares && tenant < t.tenants.size()) {
    Shares::TenantIcmp& mine = w.shares->icmp[tenant];
    if (mine.uid != t.tenants[tenant].uid) {  // a new tenant in the slot: a full bucket
      mine.uid = t.tenants[tenant].uid;
      mine.bucket = {2.0 * s.icmp_tenant_burst, now};
    }
    if (!mine.bucket.take(now, w.tsc_hz, s.icmp_tenant_rate_per_second, 2 * s.icmp_tenant_burst,
                          path_mtu ? 0 : s.icmp_tenant_burst))
      return false;
  }
  TokenBucket all{w.icmp_tokens, w.icmp_tokens_at};
  bool taken = all.take(now, w.tsc_hz, s.icmp_rate_per_second, s.icmp_burst, path_mtu ? 0 : s.icmp_burst / 10);
  w.icmp_tokens = all.tokens;
  w.icmp_tokens_at = all.at;
  return taken;
}

// The punt policer (as VPP polices punted traffic): a token bucket per source address, so that
// one carrier peer retrying IKE in a tight loop cannot take the exception path from the others.
// The table is small and fixed: a source not in it takes the way of its set used least recently
// (the evicted one starts again with a full bucket when it returns).
bool punt_allowed(Worker& w, uint32_t source, uint16_t tenant) {
  if (!w.shares) return true;
  uint64_t now = rte_rdtsc();
  auto& set = w.shares->punt[rte_hash_crc_4byte(source, tenant) % Shares::punt_sets];
  Shares::PuntSource* entry = nullptr;
  for (auto& way : set)
    if (way.used && way.address == source && way.tenant == tenant) entry = &way;
  if (!entry) {
    entry = &set[0];
    for (auto& way : set)
      if (!way.used || way.bucket.at < entry->bucket.at) entry = &way;
    *entry = {source, tenant, true, {double(w.settings.punt_burst), now}};
  }
  return entry->bucket.take(now, w.tsc_hz, w.settings.punt_rate_per_second, w.settings.punt_burst);
}

// Hands a control packet for a daemon behind the exception TAP (IKE, BGP, BFD) to the punt ring,
// policed per source; `unavailable` is the drop when no exception path runs.
void punt_to_daemon(Worker& w, rte_mbuf* m, const PacketMeta& pm, uint32_t source, Drop unavailable, uint64_t& punted) {
  if (!w.punt) {
    drop(w, m, unavailable);
  } else if (!punt_allowed(w, source, pm.tenant)) {
    if (pm.tenant < max_tenants) bump(w.counters->tenants[pm.tenant].punt_policed);
    drop(w, m, Drop::punt_policed);
  } else if (rte_ring_mp_enqueue(w.punt, m) != 0)
    drop(w, m, Drop::punt_full);
  else
    bump(punted);
}

}  // namespace

void icmp_error(Worker& w, rte_mbuf* orig, uint8_t type, uint8_t code, uint16_t mtu) {
  const PacketMeta& pm = meta(orig);
  if (pm.flags & meta_local) return;  // never about our own packets
  const auto* ip = rte_pktmbuf_mtod_offset(orig, const rte_ipv4_hdr*, pm.l2_len);
  uint32_t available = rte_pktmbuf_data_len(orig) - pm.l2_len;
  uint32_t dst = rte_be_to_cpu_32(ip->src_addr);
  // RFC 1812 4.3.2.7: never about an ICMP error, a later fragment, or an unusable source.
  if (is_icmp_error(ip, available) || (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_OFFSET_MASK)) || dst == 0 ||
      dst >= 0xe0000000 || (dst >> 24) == 127)
    return;
  const Tables& t = *w.tables;
  const InterfaceEntry& f = t.interfaces[pm.iface_in];
  // A packet that crossed the core is in another tenant now, with translated addresses: the
  // error goes from that tenant, routed, and crosses back (translated as RFC 5508 says).
  bool translated = pm.flags & meta_translated;
  bool routed = f.tunnel || translated;
  uint16_t tenant = translated ? pm.tenant : f.tenant;
  uint32_t src = 0;
  if (!translated) {
    src = f.source_for(dst);
  } else if (pm.iface_out < t.interfaces.size()) {
    const InterfaceEntry& out = t.interfaces[pm.iface_out];
    if (out.uid && !out.tunnel && out.tenant == tenant) src = out.source_for(dst);
  }
  if (src == 0 && routed) src = tenant_address(t, tenant);  // tunnels are unnumbered
  // A tenant reached only through tunnels has no address of its own: an error about a packet
  // that crossed into it comes from the packet's destination, which its static mapping
  // translates back (else "fragmentation needed" for a tunnel's MTU would black-hole the flow).
  if (src == 0 && translated) src = rte_be_to_cpu_32(ip->dst_addr);
  if (src == 0) return;
  if (!take_token(w, t, tenant, type == icmp_dest_unreachable && code == unreach_needfrag)) {
    bump(w.counters->icmp_rate_limited);
    if (tenant < max_tenants) bump(w.counters->tenants[tenant].icmp_rate_limited);
    return;
  }
  rte_mbuf* m = rte_pktmbuf_alloc(w.pool);
  if (!m) {
    bump(w.counters->drops[unsigned(Drop::no_buffer)]);
    return;
  }
  uint32_t quote = std::min<uint32_t>(uint32_t(ip->version_ihl & 0xf) * 4 + 8,
                                      std::min<uint32_t>(rte_be_to_cpu_16(ip->total_length), available));
  // Back out of an Ethernet interface to the sender's MAC; into a tunnel or back across the
  // core by routing.
  uint8_t l2 = routed ? 0 : l2_len_of(f);
  uint16_t total = uint16_t(sizeof(rte_ipv4_hdr) + sizeof(rte_icmp_hdr) + quote);
  auto* at = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, uint16_t(l2 + total)));
  if (!routed) write_l2(at, f, rte_pktmbuf_mtod(orig, const rte_ether_hdr*)->src_addr, RTE_ETHER_TYPE_IPV4);

  auto* out = reinterpret_cast<rte_ipv4_hdr*>(at + l2);
  out->version_ihl = RTE_IPV4_VHL_DEF;
  out->type_of_service = 0xc0;  // internetwork control, as routers send their own messages
  out->total_length = rte_cpu_to_be_16(total);
  out->packet_id = 0;
  out->fragment_offset = 0;
  out->time_to_live = 64;
  out->next_proto_id = IPPROTO_ICMP;
  out->src_addr = rte_cpu_to_be_32(src);
  out->dst_addr = ip->src_addr;
  out->hdr_checksum = 0;
  out->hdr_checksum = rte_ipv4_cksum(out);

  auto* icmp = reinterpret_cast<rte_icmp_hdr*>(out + 1);
  icmp->icmp_type = type;
  icmp->icmp_code = code;
  icmp->icmp_cksum = 0;
  icmp->icmp_ident = 0;
  icmp->icmp_seq_nb = rte_cpu_to_be_16(mtu);  // next-hop MTU for "fragmentation needed" (RFC 1191)
  rte_memcpy(icmp + 1, ip, quote);
  icmp->icmp_cksum = uint16_t(~rte_raw_cksum(icmp, sizeof(rte_icmp_hdr) + quote));

  bump(w.counters->icmp_sent);
  if (tenant < max_tenants) bump(w.counters->tenants[tenant].icmp_sent);
  if (routed) {
    PacketMeta& mm = meta(m);
    mm = PacketMeta{};
    mm.iface_in = pm.iface_in;
    mm.tenant = tenant;
    mm.flags = meta_local;
    originate(w, m);
    return;
  }
  bump(w.counters->interfaces[pm.iface_in].tx_packets);
  bump(w.counters->interfaces[pm.iface_in].tx_bytes, rte_pktmbuf_pkt_len(m));
  meta(m).iface_out = pm.iface_in;  // what a capture at tx names
  meta(m).trace = 0;                // a new packet: no trace's (its buffer's last use may be)
  send(w, f.port, m);
}

void local_input(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** esp, uint16_t& n_esp) {
  const Tables& t = *w.tables;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    PacketMeta& pm = meta(m);
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, pm.l2_len);
    if (rte_ipv4_frag_pkt_is_fragmented(ip)) {
      drop(w, m, Drop::local_fragment);
      continue;
    }
    uint32_t header = uint32_t(ip->version_ihl & 0xf) * 4;
    uint32_t payload = rte_be_to_cpu_16(ip->total_length) - header;
    if (ip->next_proto_id == IPPROTO_ESP) {
      esp[n_esp++] = m;
      continue;
    }
    if (ip->next_proto_id == IPPROTO_UDP && payload >= sizeof(rte_udp_hdr) &&
        rte_pktmbuf_data_len(m) >= pm.l2_len + header + sizeof(rte_udp_hdr) + 1) {
      const auto* udp = rte_pktmbuf_mtod_offset(m, const rte_udp_hdr*, pm.l2_len + header);
      const uint8_t* body = reinterpret_cast<const uint8_t*>(udp + 1);
      uint32_t body_len = payload - sizeof(rte_udp_hdr);
      uint16_t port = rte_be_to_cpu_16(udp->dst_port);
      if (port == 4500 && body_len == 1 && body[0] == 0xff) {
        drop(w, m, Drop::nat_keepalive);  // RFC 3948 2.3
        continue;
      }
      bool non_esp_marker = body_len >= 4 && rte_pktmbuf_data_len(m) >= pm.l2_len + header + 8 + 4 && !body[0] &&
                            !body[1] && !body[2] && !body[3];
      if (port == 4500 && !non_esp_marker && body_len >= 8) {
        esp[n_esp++] = m;
        continue;
      }
      // BFD's single-hop control packets (RFC 5881, port 3784) for the area's BFD daemon behind
      // the exception TAP, as BGP's segments below (docs/areas.md); the TTL is left as it came
      // (255), which the daemon checks.
      if (port == 3784) {
        punt_to_daemon(w, m, pm, rte_be_to_cpu_32(ip->src_addr), Drop::local_unsupported, w.counters->bfd_punted);
        continue;
      }
      if (port == 500 || port == 4500) {
        punt_to_daemon(w, m, pm, rte_be_to_cpu_32(ip->src_addr), Drop::ike_no_listener, w.counters->ike_punted);
        continue;
      }
    }
    // BGP between areas (docs/areas.md): the session to or from our backbone address goes to
    // the area's BGP daemon behind the exception TAP, policed as IKE is.
    if (ip->next_proto_id == IPPROTO_TCP && payload >= sizeof(rte_tcp_hdr) &&
        rte_pktmbuf_data_len(m) >= pm.l2_len + header + sizeof(rte_tcp_hdr)) {
      const auto* tcp = rte_pktmbuf_mtod_offset(m, const rte_tcp_hdr*, pm.l2_len + header);
      if (tcp->dst_port == rte_cpu_to_be_16(179) || tcp->src_port == rte_cpu_to_be_16(179)) {
        punt_to_daemon(w, m, pm, rte_be_to_cpu_32(ip->src_addr), Drop::local_unsupported, w.counters->bgp_punted);
        continue;
      }
    }
    auto* icmp = rte_pktmbuf_mtod_offset(m, rte_icmp_hdr*, pm.l2_len + header);
    bool echo = ip->next_proto_id == IPPROTO_ICMP && payload >= sizeof(rte_icmp_hdr) &&
                rte_pktmbuf_data_len(m) >= pm.l2_len + header + sizeof(rte_icmp_hdr) &&
                icmp->icmp_type == RTE_IP_ICMP_ECHO_REQUEST && icmp->icmp_code == 0;
    if (!echo) {
      drop(w, m, Drop::local_unsupported);
      continue;
    }
    // The reply reuses the request: addresses swapped, type changed, checksums updated.
    uint32_t requester = ip->src_addr;
    ip->src_addr = ip->dst_addr;
    ip->dst_addr = requester;
    ip->time_to_live = 64;
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    uint16_t old_word = load16(&icmp->icmp_type);
    icmp->icmp_type = RTE_IP_ICMP_ECHO_REPLY;
    icmp->icmp_cksum = checksum_replace16(icmp->icmp_cksum, old_word, load16(&icmp->icmp_type));

    const InterfaceEntry& f = t.interfaces[pm.iface_in];
    if (f.tunnel || (pm.flags & meta_translated)) {
      // Back through the tunnel, or back across the core: routed like any packet of ours.
      if (f.tunnel && !(pm.flags & meta_translated)) pm.tenant = f.tenant;
      pm.flags = meta_local;
      pm.origin = 0;
      pm.session = 0;
      originate(w, m);
      continue;
    }
    auto* eth = rte_pktmbuf_mtod(m, rte_ether_hdr*);
    eth->dst_addr = eth->src_addr;
    eth->src_addr = f.mac;
    bump(w.counters->interfaces[pm.iface_in].tx_packets);
    bump(w.counters->interfaces[pm.iface_in].tx_bytes, rte_pktmbuf_pkt_len(m));
    pm.iface_out = pm.iface_in;  // what a capture at tx names
    send(w, f.port, m);
  }
}

}  // namespace medix::dp
