#pragma once
// IPv4: header checks (RFC 1812), the per-tenant lookup with route leaks, local delivery and
// ICMP, output through ARP resolution and fragmentation.
#include "infra/ipv4.h"
#include "infra/worker.h"

namespace medix::dp {

// ip_input's checks of one packet (IPv4 after meta(m).l2_len bytes); false: dropped.
bool ip_check(Worker& w, rte_mbuf* m);
// Checks each packet's header; compacts the good ones to the front and returns how many.
// Good ones that may be ESP or ESP in UDP (unfragmented, protocol 50 or UDP to port 4500) go
// to `esp` instead, for esp_candidate's test: the others skip it.
uint16_t ip_input(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** esp, uint16_t& n_esp);

// Where the lookup sends each packet. Every packet lands in exactly one array.
struct Routed {
  rte_mbuf* fwd[burst_size];     // out of an interface (iface_out, neighbour set, TTL done): ip_output
  rte_mbuf* tunnel[burst_size];  // out of a tunnel (the same): esp_output
  rte_mbuf* local[burst_size];   // to one of our addresses
  rte_mbuf* cross[burst_size];   // crosses the core now (meta origin, exit and nexthop set): to nat_input
  rte_mbuf* leaked[burst_size];  // leaked into another tenant: to be looked up again there
  // Also in fwd, tunnel or local: crossed in this pass (meta.session) and now routed out or to us by a
  // next hop (meta.nexthop) that their session may keep (nat_learn).
  rte_mbuf* learn[burst_size];
  uint16_t n_fwd = 0, n_tunnel = 0, n_local = 0, n_cross = 0, n_leaked = 0, n_learn = 0;
};
// The last `via` next hop's decision: what route() decides from it alone (not crossing, egress
// interface, MTU, tunnel, gateway) holds for every packet after it with that next hop (most of a
// burst), which then costs its TTL and length tests and the TTL's decrement. Hop 0 is no route,
// never `via`: none yet. ip_lookup, ip_route_crossed and nat_established keep one each.
struct KeptVia {
  uint32_t hop = 0, gateway = 0;
  uint16_t iface = 0, mtu = 0;
  bool tunnel = false;

  void keep(const Tables& t, uint32_t h, const Nexthop& nh) {
    if (nh.kind == NexthopKind::via) {
      const InterfaceEntry& f = t.interfaces[nh.interface];
      *this = {h, nh.gateway, nh.interface, f.mtu, f.tunnel};
    }
  }
  // Whether a packet's TTL (not yet decremented) and length let it go this way.
  bool fits(const rte_ipv4_hdr* ip) const { return ip->time_to_live > 1 && rte_be_to_cpu_16(ip->total_length) <= mtu; }
  // Sends m this way, its TTL decremented already. The counts by reference: inlined, the
  // caller's registers.
  [[gnu::always_inline]] void send(rte_mbuf* m, PacketMeta& pm, const rte_ipv4_hdr* ip, rte_mbuf** fwd, uint16_t& n_fwd,
                                   rte_mbuf** tunnels, uint16_t& n_tunnels) const {
    pm.iface_out = iface;
    pm.neighbour = gateway ? gateway : rte_be_to_cpu_32(ip->dst_addr);
    if (tunnel)
      tunnels[n_tunnels++] = m;
    else
      fwd[n_fwd++] = m;
  }
  // Sends m this way if its TTL and length allow (true), else leaves it to route() (false).
  [[gnu::always_inline]] bool take(rte_mbuf* m, PacketMeta& pm, rte_mbuf** fwd, uint16_t& n_fwd, rte_mbuf** tunnels,
                                   uint16_t& n_tunnels) const {
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, pm.l2_len);
    if (fits(ip)) [[likely]] {
      decrement_ttl(ip);
      send(m, pm, ip, fwd, n_fwd, tunnels, n_tunnels);
      return true;
    }
    return false;
  }
};

// Looks up every packet in its own tenant and routes it (a compact tenant's packet in one walk of
// the burst, a DIR24_8 tenant's in one bulk lookup per such tenant); at most burst_size packets. Returns how many are
// left in `pkts`: none (the pipeline's loop for stages that take one tenant a call).
uint16_t ip_lookup(Worker& w, rte_mbuf** pkts, uint16_t n, Routed& out);
// Packets that crossed the core in this burst go on by the core route found for them before
// crossing (meta.nexthop): out, local, or leaked into their exit tenant. Also those
// nat_established translated, by their session's route in their exit tenant (meta.tenant).
void ip_route_crossed(Worker& w, rte_mbuf** pkts, uint16_t n, Routed& out);

// Our own addresses: ICMP echo answered; ESP and ESP-in-UDP handed on (to esp_input).
void local_input(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** esp, uint16_t& n_esp);
// Resolves next hops (parking packets while ARP asks), fragments, writes L2, sends.
void ip_output(Worker& w, rte_mbuf** pkts, uint16_t n);
// Between bursts: sends what ARP resolved, asks again, gives up on what timed out.
void service_pending(Worker& w);

// ICMP errors medix-dp sends (rate-limited).
enum : uint8_t {
  icmp_dest_unreachable = 3,
  icmp_time_exceeded = 11,
  unreach_net = 0,
  unreach_host = 1,
  unreach_needfrag = 4,
  unreach_admin = 13,
};
void icmp_error(Worker& w, rte_mbuf* orig, uint8_t type, uint8_t code, uint16_t mtu = 0);

}  // namespace medix::dp
