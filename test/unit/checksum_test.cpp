#include <rte_ip.h>

#include <catch2/catch.hpp>
#include <random>

#include "infra/checksum.h"
#include "infra/ipv4.h"

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

TEST_CASE("ipv4_plain's 20-byte header sum equals the general one, carries and all") {
  std::mt19937 rng(19);
  auto check = [](const uint8_t* header) {
    REQUIRE(ipv4_header_sum20(reinterpret_cast<const rte_ipv4_hdr*>(header)) == ipv4_header_sum(header, 20));
  };
  uint8_t header[20] = {};
  check(header);  // all zero: 0 in both
  memset(header, 0xff, sizeof header);
  check(header);
  for (int i = 0; i < 200000; i++) {
    // Bytes mostly 0xff in a third of them, so that the 64-bit words' sums carry out.
    bool high = i % 3 == 0;
    for (auto& b : header) b = high && rng() % 4 ? 0xff : uint8_t(rng());
    check(header);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(header);
    ip->hdr_checksum = 0;
    ip->hdr_checksum = uint16_t(~ipv4_header_sum(header, 20));
    check(header);  // right: 0xffff in both
    REQUIRE(ipv4_header_sum20(ip) == 0xffff);
  }
}
