#include <catch2/catch.hpp>

#include "fixture.h"
#include "harness.h"

using namespace frame;

TEST_CASE("l2_input classifies untagged, 802.1Q and QinQ frames to their interface") {
  Harness h(two_tenants);
  SECTION("untagged") {
    h.receive(0, ether("02:00:00:00:00:0d", host_mac, 0x0800) + ipv4("100.64.0.7", "100.64.0.1", 1, icmp_echo(1, 1)));
    auto out = h.sent(0);
    REQUIRE(out.size() == 1);
    CHECK(out[0][12] == 0x08);    // untagged reply
    CHECK(out[0][14 + 20] == 0);  // echo reply
  }
  SECTION("802.1Q") {
    h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) +
                     ipv4("10.0.0.7", "10.0.0.1", 1, icmp_echo(1, 1)));
    auto out = h.sent(0);
    REQUIRE(out.size() == 1);
    CHECK(out[0][15] == 10);
  }
  SECTION("QinQ: 802.1ad outer, 802.1Q inner") {
    h.receive(0, ether("02:00:00:00:00:0c", host_mac, 0x88a8) + vlan(0x8100, 100) + vlan(0x0800, 30) +
                     ipv4("10.2.0.7", "10.2.0.1", 1, icmp_echo(1, 1)));
    auto out = h.sent(0);
    REQUIRE(out.size() == 1);
    CHECK(out[0][12] == 0x88);
    CHECK(out[0][13] == 0xa8);
    CHECK(out[0][15] == 100);
    CHECK(out[0][19] == 30);
  }
  CHECK(h.total_drops() == 0);
}

TEST_CASE("l2_input drops what it cannot place, each under its reason") {
  Harness h(two_tenants);
  h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 11) +
                   ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 10)));
  CHECK(h.drops(Drop::unknown_vlan) == 1);
  h.receive(0, Bytes(10, 0));
  CHECK(h.drops(Drop::l2_truncated) == 1);
  h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + Bytes{0});
  CHECK(h.drops(Drop::l2_truncated) == 2);
  h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x88a8) + vlan(0x8100, 100) + Bytes{0, 30});
  CHECK(h.drops(Drop::l2_truncated) == 3);
  h.receive(0, ether("02:00:00:00:00:77", host_mac, 0x8100) + vlan(0x0800, 10) +
                   ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 10)));
  CHECK(h.drops(Drop::l2_not_for_us) == 1);
  h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x86dd, 10) + Bytes(40, 0));
  CHECK(h.drops(Drop::unsupported_ethertype) == 1);
  CHECK(h.total_drops() == 6);
  CHECK(h.sent(0).empty());
  CHECK(h.sent(1).empty());
}
