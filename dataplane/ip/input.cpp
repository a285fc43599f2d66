// ip_input: the RFC 1812 header checks. ip_lookup: the per-tenant FIB walk, route leaks
// between tenants, TTL and MTU decisions.
#include <rte_cycles.h>
#include <rte_fib.h>
#include <rte_ip.h>

#include "infra/pipeline.h"
#include "ip/checksum.h"
#include "nat/nat.h"

bool ip_check(Worker& w, rte_mbuf* m) {
  uint8_t l2 = meta(m).l2_len;
  uint32_t first_seg = rte_pktmbuf_data_len(m) - l2;
  uint32_t frame = rte_pktmbuf_pkt_len(m) - l2;
  if (first_seg < sizeof(rte_ipv4_hdr)) {
    drop(w, m, Drop::ip_truncated);
    return false;
  }
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l2);
  if ((ip->version_ihl >> 4) != 4) {
    drop(w, m, Drop::ip_bad_version);
    return false;
  }
  uint32_t header = uint32_t(ip->version_ihl & 0xf) * 4;
  if (header < sizeof(rte_ipv4_hdr) || header > first_seg) {
    drop(w, m, Drop::ip_bad_ihl);
    return false;
  }
  uint32_t total = rte_be_to_cpu_16(ip->total_length);
  if (total < header || total > frame) {
    drop(w, m, Drop::ip_bad_total_length);
    return false;
  }
  if (ipv4_header_sum(ip, header) != 0xffff) {
    drop(w, m, Drop::ip_bad_checksum);
    return false;
  }
  if (frame > total) rte_pktmbuf_trim(m, uint16_t(frame - total));  // Ethernet padding
  return true;
}

uint16_t ip_input(Worker& w, rte_mbuf** pkts, uint16_t n) {
  uint16_t kept = 0;
  for (uint16_t i = 0; i < n; i++)
    if (ip_check(w, pkts[i])) pkts[kept++] = pkts[i];
  return kept;
}

namespace {

inline rte_ipv4_hdr* ipv4(rte_mbuf* m) { return rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta(m).l2_len); }

// Decides what happens to a packet whose route is `nh`; true if it is to be forwarded.
bool forward_decision(Worker& w, rte_mbuf* m, const Nexthop& nh, rte_mbuf** local, uint16_t& n_local) {
  switch (nh.kind) {
    case NexthopKind::no_route:
      icmp_error(w, m, icmp_dest_unreachable, unreach_net);
      drop(w, m, Drop::no_route);
      return false;
    case NexthopKind::blackhole: drop(w, m, Drop::blackhole); return false;
    case NexthopKind::unreachable:
      icmp_error(w, m, icmp_dest_unreachable, unreach_admin);
      drop(w, m, Drop::blackhole);
      return false;
    case NexthopKind::local: local[n_local++] = m; return false;
    case NexthopKind::leak:  // resolved by the caller
    case NexthopKind::via: break;
  }
  rte_ipv4_hdr* ip = ipv4(m);
  bool ours = meta(m).flags & meta_local;
  if (!ours && ip->time_to_live <= 1) {
    icmp_error(w, m, icmp_time_exceeded, 0);
    drop(w, m, Drop::ttl_expired);
    return false;
  }
  const InterfaceEntry& out = w.tables->interfaces[nh.interface];
  if (rte_be_to_cpu_16(ip->total_length) > out.mtu) {
    if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG)) {
      icmp_error(w, m, icmp_dest_unreachable, unreach_needfrag, out.mtu);
      drop(w, m, Drop::mtu_exceeded);
      return false;
    }
    meta(m).flags |= meta_fragment;
  }
  if (!ours) {
    decrement_ttl(ip);
  }
  meta(m).iface_out = nh.interface;
  meta(m).neighbour = nh.gateway ? nh.gateway : rte_be_to_cpu_32(ip->dst_addr);
  return true;
}

// Whether a packet the core's FIB routed with `nh` crosses the core now; sets origin and exit.
bool crosses(const Tables& t, rte_mbuf* m, const Nexthop& nh, uint16_t& origin, uint16_t& exit) {
  PacketMeta& pm = meta(m);
  if (pm.flags & meta_crossed) {  // crossed on its owner worker; now routed in the core
    pm.flags &= uint8_t(~meta_crossed);
    return false;
  }
  switch (nh.kind) {
    case NexthopKind::leak: exit = nh.tenant; break;
    case NexthopKind::via:
    case NexthopKind::local: exit = t.core; break;
    default: return false;  // dropped in the core
  }
  origin = pm.origin ? uint16_t(pm.origin - 1) : t.core;
  return origin != t.core || exit != t.core;
}

}  // namespace

void nat_crossed(Worker& w, rte_mbuf* m, uint16_t exit) {
  PacketMeta& pm = meta(m);
  pm.origin = 0;
  pm.tenant = exit;
  if (exit == w.tables->core) pm.flags |= meta_crossed;
}

void ip_lookup(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** fwd, uint16_t& n_fwd, rte_mbuf** local,
               uint16_t& n_local) {
  const Tables& t = *w.tables;
  // Packets still looking for a route; a leak sends a packet round again in another tenant.
  rte_mbuf* todo[burst_size];
  uint16_t n_todo = n;
  std::memcpy(todo, pkts, n * sizeof(rte_mbuf*));

  for (unsigned round = 0; n_todo > 0; round++) {
    if (round > max_leak_hops) {
      for (uint16_t i = 0; i < n_todo; i++) drop(w, todo[i], Drop::leak_loop);
      return;
    }
    rte_mbuf* next[burst_size];
    uint16_t n_next = 0;
    // One bulk lookup per tenant present in the burst (usually one or two).
    bool done[burst_size] = {};
    for (uint16_t first = 0; first < n_todo; first++) {
      if (done[first]) continue;
      uint16_t tenant = meta(todo[first]).tenant;
      uint32_t ips[burst_size];
      uint64_t hops[burst_size];
      uint16_t idx[burst_size], count = 0;
      for (uint16_t i = first; i < n_todo; i++) {
        if (done[i] || meta(todo[i]).tenant != tenant) continue;
        done[i] = true;
        idx[count] = i;
        ips[count++] = rte_be_to_cpu_32(ipv4(todo[i])->dst_addr);
      }
      rte_fib_lookup_bulk(t.tenants[tenant].fib, ips, hops, count);
      // Packets that cross the core here, done together after the others (nat/).
      rte_mbuf* cross[burst_size];
      const Nexthop* cross_nh[burst_size];
      uint16_t cross_origin[burst_size], cross_exit[burst_size], n_cross = 0;
      for (uint16_t k = 0; k < count; k++) {
        rte_mbuf* m = todo[idx[k]];
        const Nexthop& nh = t.nexthops[hops[k]];
        uint16_t origin, exit;
        if (tenant == t.core && crosses(t, m, nh, origin, exit)) {
          // TTL first, as any router would on the way in: the error quotes the packet as its
          // sender knows it and comes from the ingress gateway, not across the core.
          if (!(meta(m).flags & meta_local) && ipv4(m)->time_to_live <= 1) {
            icmp_error(w, m, icmp_time_exceeded, 0);
            drop(w, m, Drop::ttl_expired);
            continue;
          }
          cross[n_cross] = m;
          cross_nh[n_cross] = &nh;
          cross_origin[n_cross] = origin;
          cross_exit[n_cross++] = exit;
          continue;
        } else if (nh.kind == NexthopKind::leak && nh.tenant == t.core && tenant != t.core) {
          meta(m).origin = uint16_t(tenant + 1);  // enters the core from here
        }
        if (nh.kind == NexthopKind::leak) {
          meta(m).tenant = nh.tenant;
          next[n_next++] = m;
        } else if (forward_decision(w, m, nh, local, n_local)) {
          fwd[n_fwd++] = m;
        }
      }
      if (n_cross) {
        uint64_t start = rte_rdtsc();
        bool crossed[burst_size];
        nat_cross_burst(w, cross, n_cross, cross_origin, cross_exit, false, crossed);
        w.nat_packets += n_cross;
        w.nat_cycles += rte_rdtsc() - start;
        for (uint16_t k = 0; k < n_cross; k++) {
          if (!crossed[k]) continue;  // consumed
          rte_mbuf* m = cross[k];
          const Nexthop& nh = *cross_nh[k];
          meta(m).origin = 0;
          if (nh.kind == NexthopKind::leak) {
            meta(m).tenant = nh.tenant;
            next[n_next++] = m;
          } else if (forward_decision(w, m, nh, local, n_local)) {
            fwd[n_fwd++] = m;
          }
        }
      }
    }
    std::memcpy(todo, next, n_next * sizeof(rte_mbuf*));
    n_todo = n_next;
  }
}
