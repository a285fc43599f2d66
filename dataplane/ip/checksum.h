#pragma once
// Incremental Internet checksum update (RFC 1624, eqn. 3): HC' = ~(~HC + ~m + m').
// Works on words exactly as they lie in memory: the ones' complement sum does not care
// about byte order as long as every term has the same.
#include <cstdint>
#include <cstring>

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
