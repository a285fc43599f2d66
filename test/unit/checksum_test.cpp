#include <rte_ip.h>

#include <catch2/catch.hpp>
#include <random>

#include "infra/checksum.h"

using namespace medix::dp;

TEST_CASE("incremental TTL checksum update equals a full recomputation (RFC 1624)") {
  std::mt19937 rng(42);
  for (int i = 0; i < 100000; i++) {
    rte_ipv4_hdr ip{};
    uint8_t random[sizeof ip];
    for (auto& b : random) b = uint8_t(rng());
    memcpy(&ip, random, sizeof ip);
    ip.version_ihl = 0x45;
    ip.time_to_live = uint8_t(2 + rng() % 254);
    ip.hdr_checksum = 0;
    ip.hdr_checksum = rte_ipv4_cksum(&ip);
    uint8_t ttl = ip.time_to_live;
    decrement_ttl(&ip);
    REQUIRE(ip.time_to_live == ttl - 1);
    REQUIRE(rte_raw_cksum(&ip, sizeof ip) == 0xffff);
  }
}

TEST_CASE("the IPv4 header sum equals DPDK's over headers with options, right or wrong") {
  std::mt19937 rng(7);
  for (int i = 0; i < 100000; i++) {
    uint8_t header[60];
    for (auto& b : header) b = uint8_t(rng());
    unsigned len = 4 * (5 + rng() % 11);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(header);
    REQUIRE(ipv4_header_sum(header, len) == rte_raw_cksum(header, len));
    ip->hdr_checksum = 0;
    ip->hdr_checksum = uint16_t(~ipv4_header_sum(header, len));
    REQUIRE(rte_raw_cksum(header, len) == 0xffff);
  }
}

TEST_CASE("the 20-byte header test agrees with the folded sum, right, wrong and at the edges") {
  std::mt19937 rng(7);
  auto agree = [](const uint8_t* h) { CHECK(ipv4_header20_sum_ok(h) == (ipv4_header_sum(h, 20) == 0xffff)); };
  for (int i = 0; i < 200000; i++) {
    rte_ipv4_hdr ip{};
    uint8_t random[sizeof ip];
    for (auto& b : random) b = uint8_t(rng());
    memcpy(&ip, random, sizeof ip);
    if (i % 2) {  // half with the checksum right, some of those then one bit wrong
      ip.hdr_checksum = 0;
      ip.hdr_checksum = rte_ipv4_cksum(&ip);
      if (i % 4 == 1) reinterpret_cast<uint8_t*>(&ip)[rng() % 20] ^= uint8_t(1 << rng() % 8);
    }
    agree(reinterpret_cast<const uint8_t*>(&ip));
  }
  for (uint8_t fill : {0x00, 0xff, 0x01, 0xfe}) {
    uint8_t h[20];
    memset(h, fill, sizeof h);
    agree(h);
  }
  uint8_t right[20] = {0xff, 0xff};  // sum 0xffff
  agree(right);
  CHECK(ipv4_header20_sum_ok(right));
}
