#include <rte_malloc.h>
#include <rte_ring_elem.h>

#include <catch2/catch.hpp>
#include <thread>

#include "fixture.h"
#include "harness.h"
#include "ip/ip.h"

using namespace frame;

namespace {
const char* broadcast = "ff:ff:ff:ff:ff:ff";
const char* zero_mac = "00:00:00:00:00:00";
Bytes on_a(const char* dst, const Bytes& payload, uint16_t type) {
  return ether(dst, host_mac, 0x8100) + vlan(type, 10) + payload;
}
}  // namespace

TEST_CASE("ARP requests for our address are answered; the sender is learned") {
  Harness h(two_tenants);
  h.receive(0, on_a(broadcast, arp(1, host_mac, "10.0.0.7", zero_mac, "10.0.0.1"), 0x0806));
  auto out = h.sent(0);
  REQUIRE(out.size() == 1);
  auto expected = ether(host_mac, "02:00:00:00:00:0a", 0x8100) + vlan(0x0806, 10) +
                  arp(2, "02:00:00:00:00:0a", "10.0.0.1", host_mac, "10.0.0.7");
  CHECK(out[0] == expected);

  LearnedNeighbour learned{};
  REQUIRE(rte_ring_dequeue_elem(h.learned, &learned, sizeof learned) == 0);
  CHECK(learned.address == 0x0a000007);
  CHECK(learned.mac[5] == 0x99);

  h.receive(0, on_a(broadcast, arp(1, host_mac, "10.0.0.7", zero_mac, "10.0.0.5"), 0x0806));
  CHECK(h.drops(Drop::arp_not_for_us) == 1);
  h.receive(0, on_a(broadcast, Bytes{0, 1, 8, 0, 6}, 0x0806));
  CHECK(h.drops(Drop::arp_malformed) == 1);
}

TEST_CASE("an unresolved next hop parks the packet and asks; the answer releases it in order") {
  Harness h(two_tenants);
  for (uint16_t i = 0; i < 3; i++)
    h.receive(0, on_a("02:00:00:00:00:0a", ipv4("10.0.0.7", "10.1.0.20", 17, udp(i, 2, 8)), 0x0800));
  auto asked = h.sent(1);
  REQUIRE(asked.size() == 1);  // one request for three packets
  auto expected = ether(broadcast, "02:00:00:00:01:0a", 0x8100) + vlan(0x0806, 110) +
                  arp(1, "02:00:00:00:01:0a", "10.1.0.1", zero_mac, "10.1.0.20");
  CHECK(asked[0] == expected);
  CHECK(h.worker.pending->count == 3);

  h.learn("a-svc", "10.1.0.20", "02:00:00:00:20:20");
  h.worker.pending->next_service = 0;
  service_pending(h.worker);
  auto out = h.sent(1);
  REQUIRE(out.size() == 3);
  for (uint16_t i = 0; i < 3; i++) {
    CHECK(out[i][5] == 0x20);
    CHECK(out[i][18 + 20 + 1] == i);  // UDP source port: order kept
  }
  CHECK(h.worker.pending->count == 0);
}

TEST_CASE("a next hop that never answers: arp_timeout and ICMP host unreachable") {
  std::string config = two_tenants;
  config.replace(config.find("\"icmp_burst\": 5"), 15, "\"icmp_burst\": 5, \"arp_timeout_ms\": 1");
  Harness h(config);
  h.receive(0, on_a("02:00:00:00:00:0a", ipv4("10.0.0.7", "10.1.0.20", 17, udp(1, 2, 8)), 0x0800));
  CHECK(h.sent(1).size() == 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  h.worker.pending->next_service = 0;
  service_pending(h.worker);
  CHECK(h.drops(Drop::arp_timeout) == 1);
  auto icmp = h.sent(0);
  REQUIRE(icmp.size() == 1);
  CHECK(icmp[0][18 + 20] == 3);
  CHECK(icmp[0][18 + 21] == 1);
}

TEST_CASE("the pending queue is bounded") {
  std::string config = two_tenants;
  config.replace(config.find("\"icmp_burst\": 5"), 15,
                 "\"icmp_burst\": 5, \"arp_pending_limit\": 4, \"arp_pending_tenant_limit\": 4");
  Harness h(config);
  for (uint16_t i = 0; i < 10; i++)
    h.receive(0, on_a("02:00:00:00:00:0a", ipv4("10.0.0.7", "10.1.0.20", 17, udp(i, 2, 8)), 0x0800));
  CHECK(h.worker.pending->count == 4);
  CHECK(h.drops(Drop::arp_pending_full) == 6);
}

TEST_CASE("neighbour table: a worker's cache answers as the table does, after every change") {
  NeighbourTable table;
  REQUIRE(table.init("neighbour_cache_test", 0));
  auto* cache = static_cast<NeighbourCache*>(rte_zmalloc("neighbour_cache_test", sizeof(NeighbourCache), 64));
  REQUIRE(cache);
  const rte_ether_addr a{{2, 0, 0, 0, 0, 1}}, b{{2, 0, 0, 0, 0, 2}};  // told apart by their last byte
  const NeighbourSlotKey keys[3] = {{0x0a000002, 3, 0}, {0x0a000003, 3, 0}, {0x0a000002, 4, 0}};
  uint64_t words[3];
  auto mac = [](uint64_t w) { return NeighbourTable::mac_of(w); };
  REQUIRE(table.set(3, 0x0a000002, a, false));
  for (int round = 0; round < 2; round++) {  // the second answered from the cache
    table.lookup_bulk(keys, 3, words, cache);
    CHECK((words[0] & NeighbourTable::valid));
    CHECK(mac(words[0]).addr_bytes[5] == 1);
    CHECK(words[1] == 0);
    CHECK(words[2] == 0);  // the same address on another interface
  }
  REQUIRE(table.set(3, 0x0a000002, b, false));  // a new MAC: the cached one is stale
  table.lookup_bulk(keys, 1, words, cache);
  CHECK(mac(words[0]).addr_bytes[5] == 2);
  REQUIRE(table.set(3, 0x0a000003, a, true));  // a new neighbour
  table.lookup_bulk(keys, 3, words, cache);
  CHECK(mac(words[0]).addr_bytes[5] == 2);
  CHECK(mac(words[1]).addr_bytes[5] == 1);
  CHECK((words[1] & NeighbourTable::is_static));
  std::vector<int32_t> release;
  table.remove(3, 0x0a000002, release);  // gone: the cached one is too
  table.lookup_bulk(keys, 2, words, cache);
  CHECK(words[0] == 0);
  CHECK(mac(words[1]).addr_bytes[5] == 1);
  table.release(release);
  table.destroy();
  rte_free(cache);
}

TEST_CASE("ARP is counted under the tenant of the interface it crosses") {
  Harness h(two_tenants);
  const uint16_t a = h.tenant("a"), b = h.tenant("b");
  // b's host asks for b's address: answered, under b.
  h.receive(0,
            ether(broadcast, host_mac, 0x8100) + vlan(0x0806, 20) + arp(1, host_mac, "10.0.0.7", zero_mac, "10.0.0.1"));
  REQUIRE(h.sent(0).size() == 1);
  CHECK(h.worker.counters->tenants[b].arp_replies_sent == 1);
  CHECK(h.worker.counters->tenants[a].arp_replies_sent == 0);
  // a's packet to an unresolved next hop on a-svc: asked under a; the answer received under a.
  h.receive(0, on_a("02:00:00:00:00:0a", ipv4("10.0.0.7", "10.1.0.20", 17, udp(1, 2, 8)), 0x0800));
  REQUIRE(h.sent(1).size() == 1);
  CHECK(h.worker.counters->tenants[a].arp_requests_sent == 1);
  CHECK(h.worker.counters->tenants[b].arp_requests_sent == 0);
  h.receive(1, ether("02:00:00:00:01:0a", host_mac, 0x8100) + vlan(0x0806, 110) +
                   arp(2, host_mac, "10.1.0.20", "02:00:00:00:01:0a", "10.1.0.1"));
  CHECK(h.worker.counters->tenants[a].arp_replies_received == 1);
  CHECK(h.worker.counters->tenants[b].arp_replies_received == 0);
}
