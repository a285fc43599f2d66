// ip_input: the RFC 1812 header checks. ip_lookup: the FIB lookup of a burst (every tenant
// in it at once), route leaks between tenants, TTL and MTU decisions.
#include <rte_fib.h>
#include <rte_ip.h>

#include "infra/checksum.h"
#include "infra/ipv4.h"
#include "ip/ip.h"

namespace medix::dp {

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

// Nearly every packet has a 20-byte header and passes every check: those are tested at once,
// without a branch per check (and the checksum over five fixed words); the others (options, or
// a check failed) go through ip_check, which finds the reason.
uint16_t ip_input(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** esp, uint16_t& n_esp) {
  uint16_t kept = 0;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    uint8_t l2 = meta(m).l2_len;
    uint32_t first_seg = rte_pktmbuf_data_len(m) - l2;
    uint32_t frame = rte_pktmbuf_pkt_len(m) - l2;
    const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, l2);
    bool plain = first_seg >= sizeof(rte_ipv4_hdr);
    if (plain) [[likely]] {
      uint32_t total = rte_be_to_cpu_16(ip->total_length);
      plain = (ip->version_ihl == 0x45) & (total >= sizeof(rte_ipv4_hdr)) & (total <= frame) &
              (ipv4_header_sum(ip, sizeof(rte_ipv4_hdr)) == 0xffff);
      if (plain && frame > total) [[unlikely]]
        rte_pktmbuf_trim(m, uint16_t(frame - total));  // Ethernet padding
    }
    if (!plain && !ip_check(w, m)) continue;
    if (may_be_esp(ip, uint32_t(ip->version_ihl & 0xf) * 4, first_seg)) [[unlikely]]
      esp[n_esp++] = m;
    else
      pkts[kept++] = m;
  }
  return kept;
}

namespace {

inline rte_ipv4_hdr* ipv4(rte_mbuf* m) { return rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta(m).l2_len); }

// Decides what happens to a packet whose route is `nh`; its egress interface if it is to be
// forwarded, else null. Inlined into the lookup's loop (a call a packet was ~20 instructions
// of its ~70).
[[gnu::always_inline]] inline const InterfaceEntry* forward_decision(Worker& w, rte_mbuf* m, const Nexthop& nh,
                                                                     rte_mbuf** local, uint16_t& n_local) {
  switch (nh.kind) {
    case NexthopKind::no_route:
      icmp_error(w, m, icmp_dest_unreachable, unreach_net);
      drop(w, m, Drop::no_route);
      return nullptr;
    case NexthopKind::blackhole: drop(w, m, Drop::blackhole); return nullptr;
    case NexthopKind::unreachable:
      icmp_error(w, m, icmp_dest_unreachable, unreach_admin);
      drop(w, m, Drop::blackhole);
      return nullptr;
    case NexthopKind::local: local[n_local++] = m; return nullptr;
    case NexthopKind::leak:  // resolved by the caller
    case NexthopKind::via: break;
  }
  rte_ipv4_hdr* ip = ipv4(m);
  bool ours = meta(m).flags & meta_local;
  if (!ours && ip->time_to_live <= 1) {
    icmp_error(w, m, icmp_time_exceeded, 0);
    drop(w, m, Drop::ttl_expired);
    return nullptr;
  }
  const InterfaceEntry& out = w.tables->interfaces[nh.interface];
  if (rte_be_to_cpu_16(ip->total_length) > out.mtu) {
    if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG)) {
      icmp_error(w, m, icmp_dest_unreachable, unreach_needfrag, out.mtu);
      drop(w, m, Drop::mtu_exceeded);
      return nullptr;
    }
    meta(m).flags |= meta_fragment;
  }
  if (!ours) {
    decrement_ttl(ip);
  }
  meta(m).iface_out = nh.interface;
  meta(m).neighbour = nh.gateway ? nh.gateway : rte_be_to_cpu_32(ip->dst_addr);
  return &out;
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

// Where a packet goes by its route, unless it crosses the core.
[[gnu::always_inline]] inline void route(Worker& w, rte_mbuf* m, const Nexthop& nh, Routed& out) {
  if (nh.kind == NexthopKind::leak) {
    meta(m).tenant = nh.tenant;
    out.leaked[out.n_leaked++] = m;
  } else if (const InterfaceEntry* f = forward_decision(w, m, nh, out.local, out.n_local)) {
    if (f->tunnel)
      out.tunnel[out.n_tunnel++] = m;
    else
      out.fwd[out.n_fwd++] = m;
  }
}

// A packet nat_input translated (meta.session), routed by next hop `hop`: sent out (an
// interface or a tunnel) or to us,
// its session may keep the route (nat_learn); leaked on (`leak_on`: looked up again in its
// exit tenant; else its exit tenant sends it elsewhere: nothing to keep); dropped, nothing.
[[gnu::noinline]] void route_crossed(Worker& w, rte_mbuf* m, const Nexthop& nh, uint32_t hop, bool leak_on,
                                     Routed& out) {
  uint16_t fwd = out.n_fwd, tunnel = out.n_tunnel, local = out.n_local;
  route(w, m, nh, out);
  if (nh.kind == NexthopKind::leak) {
    if (!leak_on) meta(m).session = 0;
  } else if (out.n_fwd != fwd || out.n_tunnel != tunnel || out.n_local != local) {  // else dropped: m is gone
    if (hop <= UINT16_MAX) {
      meta(m).nexthop = uint16_t(hop);
      out.learn[out.n_learn++] = m;
    } else {
      meta(m).session = 0;
    }
  }
}

}  // namespace

namespace {

// The DIR24_8 tenants' packets of a burst (positions `at`): one bulk lookup per such tenant
// present. Only tenants that asked for DIR24_8 (the core, a large carrier) are here, so this
// loops over a few tenants, not over the thousand compact ones.
void lookup_dir24_8(const Tables& t, rte_mbuf** pkts, const uint32_t* ips, uint8_t* at, uint16_t n, uint32_t* hops) {
  while (n) {
    uint16_t tenant = meta(pkts[at[0]]).tenant;
    uint32_t group[burst_size];
    uint64_t found[burst_size];
    uint8_t where[burst_size];
    uint16_t count = 0, left = 0;
    for (uint16_t k = 0; k < n; k++) {
      if (meta(pkts[at[k]]).tenant != tenant) {
        at[left++] = at[k];
        continue;
      }
      where[count] = at[k];
      group[count++] = ips[at[k]];
    }
    rte_fib* fib = tenant < t.tenants.size() ? t.tenants[tenant].fib : nullptr;
    if (fib)
      rte_fib_lookup_bulk(fib, group, found, count);
    else
      memset(found, 0, count * sizeof(found[0]));  // a tenant gone in this generation: no route
    for (uint16_t k = 0; k < count; k++) hops[where[k]] = uint32_t(found[k]);
    n = left;
  }
}

// Routes one looked-up packet (next hop `hop`), crossing the core where it does. Inlined: a call
// a packet cost crossing ~2 cycles a packet (pipeline-micro napt).
[[gnu::always_inline]] inline void route_looked_up(Worker& w, rte_mbuf* m, uint32_t hop, Routed& out) {
  const Tables& t = *w.tables;
  PacketMeta& pm = meta(m);
  uint16_t tenant = pm.tenant;
  const Nexthop& nh = t.nexthops[hop];
  uint16_t origin, exit;
  if (tenant == t.core && crosses(t, m, nh, origin, exit)) {
    // TTL first, as any router would on the way in: the error quotes the packet as its
    // sender knows it and comes from the ingress gateway, not across the core.
    if (!(pm.flags & meta_local) && ipv4(m)->time_to_live <= 1) {
      icmp_error(w, m, icmp_time_exceeded, 0);
      drop(w, m, Drop::ttl_expired);
      return;
    }
    pm.origin = uint16_t(origin + 1);
    pm.exit = exit;
    pm.nexthop = uint16_t(hop);
    out.cross[out.n_cross++] = m;
    return;
  }
  if (nh.kind == NexthopKind::leak && nh.tenant == t.core && tenant != t.core)
    pm.origin = uint16_t(tenant + 1);  // enters the core from here
  if (pm.session) [[unlikely]] {
    route_crossed(w, m, nh, hop, false, out);
    return;
  }
  route(w, m, nh, out);
}

}  // namespace

namespace {

// Routes packet m of next hop `hop`: the kept way when it holds (ip_lookup's counts of it in the
// caller's registers), else route_looked_up, whose `via` hop is kept for the next.
[[gnu::always_inline]] inline void route_hop(Worker& w, rte_mbuf* m, uint32_t hop, KeptVia& via, Routed& out,
                                             uint16_t& n_fwd, uint16_t& n_tunnel) {
  const Tables& t = *w.tables;
  PacketMeta& pm = meta(m);
  if (hop == via.hop && pm.tenant != t.core && !(pm.flags & meta_local) && !pm.session &&
      via.take(m, pm, out.fwd, n_fwd, out.tunnel, n_tunnel))
    return;
  via.keep(t, hop, t.nexthops[hop]);
  out.n_fwd = n_fwd;
  out.n_tunnel = n_tunnel;
  route_looked_up(w, m, hop, out);
  n_fwd = out.n_fwd;
  n_tunnel = out.n_tunnel;
}

// A burst with DIR24_8 tenants in it, or traced: the addresses, one bulk lookup for the compact
// tenants, one per DIR24_8 tenant present, then the routing.
void lookup_mixed(Worker& w, rte_mbuf** pkts, uint16_t n, Routed& out) {
  const Tables& t = *w.tables;
  uint32_t ips[burst_size], roots[burst_size], hops[burst_size];
  uint8_t dir24_8[burst_size];
  uint16_t n_dir24_8 = 0;
  for (uint16_t i = 0; i < n; i++) {
    uint16_t tenant = meta(pkts[i]).tenant;
    ips[i] = rte_be_to_cpu_32(ipv4(pkts[i])->dst_addr);
    roots[i] = tenant < t.fib_roots.size() ? t.fib_roots[tenant] : 0;
    if (!roots[i]) dir24_8[n_dir24_8++] = uint8_t(i);
  }
  // Every compact tenant's packets in one bulk lookup (the others read the empty ply 0).
  Lpm::lookup_bulk(t.plies, roots, ips, hops, n);
  if (n_dir24_8) lookup_dir24_8(t, pkts, ips, dir24_8, n_dir24_8, hops);
#if defined(__GNUC__) && !defined(__clang__)  // GCC's false alarm; clang (the fuzz build) lacks the warning
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // the lookups above wrote hops[0..n)
#endif
  if (w.trace) [[unlikely]]
    trace_lookup(w, pkts, n, hops);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
  KeptVia via;
  uint16_t n_fwd = out.n_fwd, n_tunnel = out.n_tunnel;
  for (uint16_t k = 0; k < n; k++) route_hop(w, pkts[k], hops[k], via, out, n_fwd, n_tunnel);
  out.n_fwd = n_fwd;
  out.n_tunnel = n_tunnel;
}

}  // namespace

// One walk of the burst while its packets are in compact tenants (nearly always all of them):
// each packet's trie walk and its routing at once. From the first packet of a DIR24_8 tenant
// on, the rest goes through lookup_mixed, so the packets keep their order.
uint16_t ip_lookup(Worker& w, rte_mbuf** pkts, uint16_t n, Routed& out) {
  const Tables& t = *w.tables;
  uint16_t k = 0;
  if (!w.trace) [[likely]] {
    KeptVia via;
    // The arrays' counts in registers while packets take that way (a count in memory is a chain
    // of stores and loads from one packet to the next).
    uint16_t n_fwd = out.n_fwd, n_tunnel = out.n_tunnel;
    const size_t tenants = t.fib_roots.size();
    for (; k < n; k++) {
      rte_mbuf* m = pkts[k];
      uint16_t tenant = meta(m).tenant;
      uint32_t root = tenant < tenants ? t.fib_roots[tenant] : 0;
      if (!root) [[unlikely]]
        break;
      route_hop(w, m, Lpm::lookup(t.plies, root, rte_be_to_cpu_32(ipv4(m)->dst_addr)), via, out, n_fwd, n_tunnel);
    }
    out.n_fwd = n_fwd;
    out.n_tunnel = n_tunnel;
  }
  if (k < n) lookup_mixed(w, pkts + k, uint16_t(n - k), out);
  return 0;
}

void ip_route_crossed(Worker& w, rte_mbuf** pkts, uint16_t n, Routed& out) {
  const Tables& t = *w.tables;
  KeptVia via;  // as ip_lookup keeps it: established flows of a burst mostly share one
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    PacketMeta& pm = meta(m);
    pm.origin = 0;
    uint16_t hop = pm.nexthop;
    if (hop == via.hop && !pm.session && !(pm.flags & meta_local) &&
        via.take(m, pm, out.fwd, out.n_fwd, out.tunnel, out.n_tunnel))
      continue;
    const Nexthop& nh = t.nexthops[hop];
    via.keep(t, hop, nh);
    if (pm.session)
      route_crossed(w, m, nh, hop, true, out);
    else
      route(w, m, nh, out);
  }
}

}  // namespace medix::dp
