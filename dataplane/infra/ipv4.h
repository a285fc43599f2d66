#pragma once
// The IPv4 header tests that l2_input's pass and ip_input share: a frame's header is read once
// while it is at hand (l2_input), and ip_input's pass is skipped for a burst that passed them all.
#include <rte_ip.h>
#include <rte_mbuf.h>

#include "infra/checksum.h"

namespace medix::dp {

// The UDP port of ESP in UDP (RFC 3948), and IKE's after NAT.
constexpr uint16_t nat_t_port = 4500;

// Whether a checked packet (its header `header` bytes, `first_seg` bytes in the first segment)
// may be ESP or ESP in UDP, unfragmented: a superset of esp_candidate's.
inline bool may_be_esp(const rte_ipv4_hdr* ip, uint32_t header, uint32_t first_seg) {
  if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_MF_FLAG | RTE_IPV4_HDR_OFFSET_MASK)) return false;
  if (ip->next_proto_id == IPPROTO_ESP) return true;
  if (ip->next_proto_id != IPPROTO_UDP) return false;
  return first_seg < header + 4 ||
         load16(reinterpret_cast<const uint8_t*>(ip) + header + 2) == rte_cpu_to_be_16(nat_t_port);
}

// ipv4_header_sum of a 20-byte header: two 8-byte words and a 4-byte one summed with
// end-around carries (RFC 1071: any word size; 2^64 - 1 is a multiple of 0xffff, so the folded
// sum is the same, 0 only for a header of zeros), loaded from the header itself: the general
// sum's copy of the five words went through the stack.
inline uint16_t ipv4_header_sum20(const rte_ipv4_hdr* ip) {
  const auto* p = reinterpret_cast<const uint8_t*>(ip);
  uint64_t a, b;
  uint32_t c;
  std::memcpy(&a, p, 8);
  std::memcpy(&b, p + 8, 8);
  std::memcpy(&c, p + 16, 4);
  uint64_t s = a + b;
  s += s < a;
  uint64_t t = s + c;
  t += t < s;
  t = (t & 0xffffffff) + (t >> 32);
  t = (t & 0xffffffff) + (t >> 32);
  t = (t & 0xffff) + (t >> 16);
  t = (t & 0xffff) + (t >> 16);
  return uint16_t(t);
}

// Whether the IPv4 packet `l2` bytes into `m` is one that ip_input would keep as it is and
// send to the lookup: a 20-byte header that passes every check, no Ethernet padding to trim,
// not possibly ESP. Tested at once, without a branch per check (the checksum over five fixed
// words).
inline bool ipv4_plain(const rte_mbuf* m, uint32_t l2) {
  uint32_t first_seg = rte_pktmbuf_data_len(m) - l2;
  if (first_seg < sizeof(rte_ipv4_hdr)) [[unlikely]]
    return false;
  const auto* ip = rte_pktmbuf_mtod_offset(m, const rte_ipv4_hdr*, l2);
  uint32_t frame = rte_pktmbuf_pkt_len(m) - l2;
  uint32_t total = rte_be_to_cpu_16(ip->total_length);
  uint16_t sum = ipv4_header_sum20(ip);
  bool ok = (ip->version_ihl == 0x45) & (total == frame) & (sum == 0xffff);
  return ok && !may_be_esp(ip, sizeof(rte_ipv4_hdr), first_seg);
}

}  // namespace medix::dp
