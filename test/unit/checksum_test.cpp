#include <rte_ip.h>

#include <catch2/catch.hpp>
#include <random>

#include "ip/checksum.h"

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
    uint16_t old_word = load16(&ip.time_to_live);
    ip.time_to_live--;
    ip.hdr_checksum = checksum_replace16(ip.hdr_checksum, old_word, load16(&ip.time_to_live));
    REQUIRE(rte_raw_cksum(&ip, sizeof ip) == 0xffff);
  }
}
