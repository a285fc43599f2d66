#pragma once
// VRRPv3 advertisements for IPv4 (RFC 5798 5.1): parsed from the IPv4 header on, built from
// the IPv4 header on. Plain functions of bytes, so that the unit tests hold them to the RFC.
#include <cstddef>
#include <cstdint>

#include "vrrp/tables.h"

namespace medix::dp::vrrp {

// Why an advert was refused before any instance saw it (RFC 5798 7.1).
enum class RxError : uint8_t { none, ttl, version, type, length, checksum };

struct Advert {
  uint32_t source = 0;  // the sender's IPv4 address, host order
  uint8_t vrid = 0;
  uint8_t priority = 0;
  uint16_t interval_cs = 0;  // Max Adver Int, 12 bits
  uint8_t count = 0;
  std::array<uint32_t, max_addresses> addresses{};  // the first max_addresses of them
};

inline constexpr size_t header_bytes = 8;
inline constexpr size_t ip_header_bytes = 20;

// The VRRP checksum over `len` bytes at `vrrp` with IPv4's pseudo-header (RFC 5798 5.2.8:
// version 3 includes it for IPv4 as well).
uint16_t checksum(uint32_t source, uint32_t destination, const uint8_t* vrrp, size_t len);

// `ip` holds `len` bytes from the IPv4 header on (the caller checked it is IPv4 to 224.0.0.18,
// protocol 112). Fills `out`, or says why not.
RxError parse(const uint8_t* ip, size_t len, Advert& out);

// Writes the IPv4 header and the advert to `at`, which has room for advert_bytes(count);
// returns how many bytes.
size_t advert_bytes(unsigned count);
size_t build(uint8_t* at, uint32_t source, uint8_t vrid, uint8_t priority, uint16_t interval_cs,
             const uint32_t* addresses, unsigned count, uint16_t ip_id);

}  // namespace medix::dp::vrrp
