#pragma once
// Incremental Internet checksum update (RFC 1624, eqn. 3): HC' = ~(~HC + ~m + m').
// Works on words exactly as they lie in memory: the ones' complement sum does not care
// about byte order as long as every term has the same.
#include <rte_ip.h>

#include <cstdint>
#include <cstring>

namespace medix::dp {

inline uint16_t checksum_replace16(uint16_t checksum, uint16_t old_word, uint16_t new_word) {
  uint32_t sum = uint32_t(uint16_t(~checksum)) + uint16_t(~old_word) + new_word;
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

inline uint16_t load16(const void* at) {
  uint16_t v;
  std::memcpy(&v, at, 2);
  return v;
}

// A 32-bit word (an address, as it lies in memory) changed under a checksum.
inline uint16_t checksum_replace32(uint16_t checksum, uint32_t old_word, uint32_t new_word) {
  checksum = checksum_replace16(checksum, uint16_t(old_word), uint16_t(new_word));
  return checksum_replace16(checksum, uint16_t(old_word >> 16), uint16_t(new_word >> 16));
}

// Sets the DSCP and keeps the ECN bits; the checksum follows (TOS shares its word with the
// version and header length).
inline void set_dscp(rte_ipv4_hdr* ip, uint8_t dscp) {
  uint16_t before = load16(ip);
  ip->type_of_service = uint8_t(dscp << 2 | (ip->type_of_service & 3));
  ip->hdr_checksum = checksum_replace16(ip->hdr_checksum, before, load16(ip));
}

// Marks the packet Congestion Experienced (ECN 11, RFC 3168); the checksum follows.
inline void set_ecn_ce(rte_ipv4_hdr* ip) {
  uint16_t before = load16(ip);
  ip->type_of_service |= 3;
  ip->hdr_checksum = checksum_replace16(ip->hdr_checksum, before, load16(ip));
}

// TTL - 1 with the checksum updated (TTL >= 1). RFC 1624 eqn. 3 with the TTL/protocol word m
// and m' = m - 0x0100: ~m + m' is the constant 0xfeff (m + ~m = 0xffff), so the old word is
// never read back (a load that overlaps a narrower store in flight waits for it) and the sum
// needs one fold (~HC + 0xfeff < 0x1fffe).
inline void decrement_ttl(rte_ipv4_hdr* ip) {
  ip->time_to_live--;
  uint32_t sum = uint32_t(uint16_t(~ip->hdr_checksum)) + rte_cpu_to_be_16(0xfeff);
  ip->hdr_checksum = uint16_t(~((sum & 0xffff) + (sum >> 16)));
}

// The ones' complement sum of an IPv4 header (`len`, a multiple of 4), folded to 16 bits:
// 0xffff when its checksum is right, and ~ of it is the checksum of a header whose checksum
// field is 0. 32-bit words summed in 64 bits lose no carry, and the fold gives the sum of the
// 16-bit words in either byte order (RFC 1071).
inline uint16_t ipv4_header_sum(const void* header, unsigned len) {  // len >= 20
  const auto* p = static_cast<const uint8_t*>(header);
  uint32_t fixed[5];  // the 20 bytes every header has, unrolled: the loop is for options
  std::memcpy(fixed, p, sizeof fixed);
  uint64_t sum = uint64_t(fixed[0]) + fixed[1] + fixed[2] + fixed[3] + fixed[4];
  for (unsigned i = sizeof fixed; i < len; i += 4) {
    uint32_t word;
    std::memcpy(&word, p + i, 4);
    sum += word;
  }
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffffffff) + (sum >> 32);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(sum);
}

}  // namespace medix::dp
