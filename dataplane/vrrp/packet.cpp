#include "vrrp/packet.h"

#include <cstring>

namespace medix::dp::vrrp {
namespace {

uint16_t get16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
uint32_t get32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }
void put16(uint8_t* p, uint16_t v) {
  p[0] = uint8_t(v >> 8);
  p[1] = uint8_t(v);
}
void put32(uint8_t* p, uint32_t v) {
  put16(p, uint16_t(v >> 16));
  put16(p + 2, uint16_t(v));
}

uint32_t sum_words(const uint8_t* p, size_t len, uint32_t sum) {
  for (size_t i = 0; i + 1 < len; i += 2) sum += get16(p + i);
  if (len & 1) sum += uint32_t(p[len - 1]) << 8;
  return sum;
}

uint16_t fold(uint32_t sum) {
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

}  // namespace

uint16_t checksum(uint32_t source, uint32_t destination, const uint8_t* vrrp, size_t len) {
  uint32_t sum =
      (source >> 16) + (source & 0xffff) + (destination >> 16) + (destination & 0xffff) + protocol + uint32_t(len);
  return fold(sum_words(vrrp, len, sum));
}

RxError parse(const uint8_t* ip, size_t len, Advert& out) {
  if (len < ip_header_bytes || (ip[0] >> 4) != 4) return RxError::length;
  size_t ihl = size_t(ip[0] & 0xf) * 4;
  size_t total = get16(ip + 2);
  if (ihl < ip_header_bytes || total < ihl || total > len) return RxError::length;
  if (ip[8] != 255) return RxError::ttl;  // 7.1: not from a router on this segment
  const uint8_t* v = ip + ihl;
  size_t vlen = total - ihl;
  if (vlen < header_bytes) return RxError::length;
  if ((v[0] >> 4) != 3) return RxError::version;
  if ((v[0] & 0xf) != 1) return RxError::type;
  unsigned count = v[3];
  if (vlen < header_bytes + 4 * size_t(count)) return RxError::length;
  uint32_t source = get32(ip + 12), destination = get32(ip + 16);
  // The sum over the message with its checksum field in it is 0 when the checksum is right.
  if (checksum(source, destination, v, vlen) != 0) return RxError::checksum;
  out.source = source;
  out.vrid = v[1];
  out.priority = v[2];
  out.count = uint8_t(count);
  out.interval_cs = get16(v + 4) & 0x0fff;
  for (unsigned i = 0; i < count && i < max_addresses; i++) out.addresses[i] = get32(v + header_bytes + 4 * i);
  return RxError::none;
}

size_t advert_bytes(unsigned count) { return ip_header_bytes + header_bytes + 4 * size_t(count); }

size_t build(uint8_t* at, uint32_t source, uint8_t vrid, uint8_t priority, uint16_t interval_cs,
             const uint32_t* addresses, unsigned count, uint16_t ip_id) {
  size_t total = advert_bytes(count);
  memset(at, 0, total);
  at[0] = 0x45;
  at[1] = 0xc0;  // DSCP CS6, network control (as routers send it)
  put16(at + 2, uint16_t(total));
  put16(at + 4, ip_id);
  at[8] = 255;  // 5.1.1.3
  at[9] = protocol;
  put32(at + 12, source);
  put32(at + 16, group_address);
  put16(at + 10, fold(sum_words(at, ip_header_bytes, 0)));
  uint8_t* v = at + ip_header_bytes;
  v[0] = 0x31;  // version 3, type 1 (ADVERTISEMENT)
  v[1] = vrid;
  v[2] = priority;
  v[3] = uint8_t(count);
  put16(v + 4, interval_cs & 0x0fff);
  for (unsigned i = 0; i < count; i++) put32(v + header_bytes + 4 * i, addresses[i]);
  put16(v + 6, checksum(source, group_address, v, total - ip_header_bytes));
  return total;
}

}  // namespace medix::dp::vrrp
