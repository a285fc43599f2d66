#pragma once
// Every reason a packet can be dropped, with the description the API and CLI print.
// One table; a drop anywhere goes through drop() (infra/worker.h) with one of these, and the
// reasons from esp_truncated to ha_sa_fenced count against the packet's SA too.
#include <cstdint>

namespace medix::dp {

#define MEDIX_DROP_REASONS(X)                                                                 \
  X(l2_truncated, "frame shorter than its Ethernet and VLAN headers")                         \
  X(unknown_vlan, "no interface for this port and VLAN tags")                                 \
  X(l2_not_for_us, "destination MAC is not the interface's (nor broadcast for ARP)")          \
  X(unsupported_ethertype, "neither IPv4 nor ARP")                                            \
  X(arp_malformed, "ARP that is not Ethernet/IPv4 or is truncated")                           \
  X(arp_not_for_us, "ARP request for an address that is not ours")                            \
  X(arp_pending_full, "waiting for ARP, and the worker's pending queue is full")              \
  X(arp_pending_share, "waiting for ARP, and the tenant holds its share of the queue")        \
  X(arp_timeout, "next hop did not answer ARP in time")                                       \
  X(ip_truncated, "fewer than 20 bytes of IPv4 header")                                       \
  X(ip_bad_version, "IP version is not 4")                                                    \
  X(ip_bad_ihl, "IPv4 header length below 5 words or beyond the packet")                      \
  X(ip_bad_total_length, "IPv4 total length below the header or beyond the frame")            \
  X(ip_bad_checksum, "IPv4 header checksum is wrong")                                         \
  X(ttl_expired, "TTL would reach 0 (ICMP time exceeded sent)")                               \
  X(no_route, "no route in the tenant (ICMP net unreachable sent)")                           \
  X(blackhole, "route is a blackhole")                                                        \
  X(leak_loop, "route leaks between tenants more than 4 times")                               \
  X(local_fragment, "fragment addressed to medix-dp itself")                                  \
  X(local_unsupported, "packet to a local address that no local service takes")               \
  X(mtu_exceeded, "larger than the egress MTU with DF set (ICMP fragmentation needed sent)")  \
  X(fragmentation_failed, "could not fragment (no buffers, or too many fragments)")           \
  X(no_buffer, "mbuf pool empty while building a packet")                                     \
  X(esp_unknown_spi, "no inbound SA with this SPI for this tunnel endpoint and underlay")     \
  X(esp_truncated, "ESP shorter than its header, IV, a block and the ICV")                    \
  X(esp_bad_icv, "ESP integrity check failed")                                                \
  X(esp_crypto_failed, "IPsec-MB did not complete the packet's job (status not COMPLETED)")   \
  X(esp_replayed, "ESP sequence number already seen (anti-replay)")                           \
  X(esp_too_old, "ESP sequence number left of the anti-replay window")                        \
  X(esp_bad_padding, "ESP padding is not 1, 2, 3, ... or longer than the payload")            \
  X(esp_bad_next_header, "ESP next header is not IPv4")                                       \
  X(esp_selector_mismatch, "decrypted packet outside the tunnel's traffic selectors")         \
  X(esp_ecn, "outer header CE on a packet whose inner header is not ECN-capable (RFC 6040)")  \
  X(sa_expired, "the SA reached its hard lifetime")                                           \
  X(sa_seq_unreserved, "the SA's next sequence number is not yet written to the state file")  \
  X(sa_seq_overflow, "the SA's sequence numbers are used up (rekey needed)")                  \
  X(ha_sa_fenced, "HA: the SA reached the fence the standby's acks allow (rekey needed)")     \
  X(tunnel_no_sa, "route to a tunnel that has no outbound SA")                                \
  X(handoff_full, "the SA's owner worker did not take the packet")                            \
  X(nat_keepalive, "NAT-T keepalive (RFC 3948), dropped quietly")                             \
  X(nat_truncated, "crossing the core: L4 header missing or cut short")                       \
  X(nat_reassembly_failed, "crossing the core: fragment not reassembled in 2 s (or bad set)") \
  X(nat_fragment_share, "crossing the core: the tenant holds its reassembly share")           \
  X(nat_unsupported, "crossing the core: ICMP type or protocol that cannot be translated")    \
  X(nat_no_mapping, "crossing the core: no static mapping or pool covers the address")        \
  X(nat_no_session, "crossing the core: reply, error or NAPT address with no session")        \
  X(nat_pool_exhausted, "crossing the core: no free port in the tenant's NAPT pool")          \
  X(nat_session_limit, "crossing the core: the tenant holds its session limit")               \
  X(nat_sessions_full, "crossing the core: the worker's session table is full")               \
  X(nat_conflict, "crossing the core: another session already has this flow's reply tuple")   \
  X(policy_denied, "crossing the core: no policy rule permits the flow (default deny)")       \
  X(ike_no_listener, "IKE packet with no exception interface to take it")                     \
  X(punt_full, "the exception interface's ring is full")                                      \
  X(punt_policed, "IKE from a source over its rate to the exception interface")               \
  X(buffer_guard, "the packet pool is low and the tenant holds its guard share")              \
  X(interface_gone, "egress interface deleted while the packet waited for ARP")               \
  X(port_down, "egress port is administratively down or deleted")                             \
  X(tx_full, "the port's tx queue did not take the packet")                                   \
  X(policed, "a policer's action for the packet's colour is drop (QoS)")                      \
  X(shaper_queue_full, "the egress shaper's queue for the packet's class is full (QoS)")      \
  X(shaper_wred, "the egress shaper class's WRED dropped it early (average queue, QoS)")      \
  X(ha_standby, "crossing the core: this node is the HA standby (it crosses nothing)")        \
  X(vrrp_full, "the ring of VRRP adverts to the main lcore is full")

enum class Drop : uint16_t {
#define MEDIX_DROP_ENUM(name, desc) name,
  MEDIX_DROP_REASONS(MEDIX_DROP_ENUM)
#undef MEDIX_DROP_ENUM
      count
};

inline constexpr unsigned drop_reason_count = static_cast<unsigned>(Drop::count);

// The reasons an SA counts as well (SaState::drops), one range of the table.
inline constexpr Drop first_sa_drop = Drop::esp_truncated;
inline constexpr Drop last_sa_drop = Drop::ha_sa_fenced;
inline constexpr unsigned sa_drop_count = unsigned(last_sa_drop) - unsigned(first_sa_drop) + 1;
inline constexpr bool counts_against_sa(Drop reason) { return reason >= first_sa_drop && reason <= last_sa_drop; }

struct DropReasonInfo {
  const char* name;
  const char* description;
};

inline constexpr DropReasonInfo drop_reasons[] = {
#define MEDIX_DROP_INFO(name, desc) {#name, desc},
    MEDIX_DROP_REASONS(MEDIX_DROP_INFO)
#undef MEDIX_DROP_INFO
};

}  // namespace medix::dp
