// Fair shares of a worker's budgets (docs/fair-shares.md): one tenant's excess is refused and
// counted under it, and the others still get theirs.
#include <rte_ring.h>

#include <chrono>
#include <thread>

#include <catch2/catch.hpp>

#include "config/settings.h"
#include "fixture.h"
#include "harness.h"
#include "ip/ip.h"

using namespace frame;

namespace {
Bytes from_a(const Bytes& ip) { return ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) + ip; }
Bytes from_b(const Bytes& ip) { return ether("02:00:00:00:00:0b", host_mac, 0x8100) + vlan(0x0800, 20) + ip; }
uint16_t vid_of(const Bytes& f) { return uint16_t((f[14] << 8 | f[15]) & 0xfff); }

// two_tenants with other settings.
std::string with_settings(const std::string& settings) {
  std::string config = two_tenants;
  size_t at = config.find("\"settings\"");
  config.replace(at, config.find('}', at) + 1 - at, "\"settings\": " + settings);
  return config;
}

// ICMP errors sent on port 0, by the VLAN of the tenant's interface (a: 10, b: 20).
std::pair<size_t, size_t> icmp_by_tenant(Harness& h) {
  size_t a = 0, b = 0;
  for (const auto& f : h.sent(0)) (vid_of(f) == 10 ? a : b)++;
  return {a, b};
}
}  // namespace

TEST_CASE("ICMP errors: each tenant has its bucket under the worker's; one's scan leaves the other's") {
  // The worker's bucket alone (20) would go to a's scan; a's own bucket holds 5.
  Harness h(with_settings(R"({"icmp_rate_per_second": 1, "icmp_burst": 20, "icmp_tenant_rate_per_second": 1,
                              "icmp_tenant_burst": 5})"));
  const uint16_t a = h.tenant("a"), b = h.tenant("b");
  for (int i = 0; i < 20; i++) h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8), 1)));
  for (int i = 0; i < 5; i++) h.receive(0, from_b(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8), 1)));
  auto [to_a, to_b] = icmp_by_tenant(h);
  CHECK(to_a == 5);
  CHECK(to_b == 5);
  CHECK(h.worker.counters->tenants[a].icmp_sent == 5);
  CHECK(h.worker.counters->tenants[a].icmp_rate_limited == 15);
  CHECK(h.worker.counters->tenants[b].icmp_sent == 5);
  CHECK(h.worker.counters->tenants[b].icmp_rate_limited == 0);
  CHECK(h.worker.counters->icmp_rate_limited == 15);
}

TEST_CASE("ICMP errors: fragmentation needed is not starved by another tenant's scan") {
  // b's share (1/s, burst 10) is the worker's whole bucket here: its scan takes all but the
  // tenth kept for path MTU discovery.
  Harness h(with_settings(R"({"icmp_rate_per_second": 1, "icmp_burst": 10})"));
  for (int i = 0; i < 50; i++) h.receive(0, from_b(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8), 1)));
  CHECK(h.worker.counters->tenants[h.tenant("b")].icmp_sent == 9);
  CHECK(h.worker.counters->tenants[h.tenant("b")].icmp_rate_limited == 41);
  // a's large packet with DF set toward a-svc (MTU 1000): its "fragmentation needed" goes out.
  h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 1200), 64, 0x4000)));
  auto sent = h.sent(0);
  size_t frag_needed = 0;
  for (const auto& f : sent)
    if (vid_of(f) == 10 && f[18 + 20] == 3 && f[18 + 21] == 4) frag_needed++;
  CHECK(frag_needed == 1);
  CHECK(h.drops(Drop::mtu_exceeded) == 1);
}

TEST_CASE("ICMP errors: a tenant's defaults are min(100/s, burst 10) and the worker's cap") {
  Settings unset = settings_from(medix::dataplane::v1::Settings{});
  CHECK(unset.icmp_rate_per_second == 1000);
  CHECK(unset.icmp_burst == 100);
  CHECK(unset.icmp_tenant_rate_per_second == 100);
  CHECK(unset.icmp_tenant_burst == 10);
  CHECK(unset.arp_pending_tenant_limit == 64);
  medix::dataplane::v1::Settings low;
  low.set_icmp_rate_per_second(1);
  low.set_icmp_burst(5);
  low.set_arp_pending_limit(6);
  Settings s = settings_from(low);
  CHECK(s.icmp_tenant_rate_per_second == 1);
  CHECK(s.icmp_tenant_burst == 5);
  CHECK(s.arp_pending_tenant_limit == 1);
}

TEST_CASE("ICMP errors: a tenant's own errors leave its first window's fragmentation needed") {
  // a's ordinary errors (TTL expired) take its burst (10); "fragmentation needed" has as much
  // again, so a sender's first window of too-big segments (IW10) is answered whole.
  Harness h(with_settings(R"({"icmp_rate_per_second": 1, "icmp_burst": 100, "icmp_tenant_rate_per_second": 1})"));
  const uint16_t a = h.tenant("a");
  for (int i = 0; i < 20; i++) h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8), 1)));
  CHECK(h.worker.counters->tenants[a].icmp_sent == 10);
  CHECK(h.worker.counters->tenants[a].icmp_rate_limited == 10);
  for (int i = 0; i < 10; i++) h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 1200), 64, 0x4000)));
  CHECK(h.drops(Drop::mtu_exceeded) == 10);
  CHECK(h.worker.counters->tenants[a].icmp_sent == 20);
  CHECK(h.worker.counters->tenants[a].icmp_rate_limited == 10);
  // The window's worth is all: the eleventh waits for the refill.
  h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 1200), 64, 0x4000)));
  CHECK(h.worker.counters->tenants[a].icmp_rate_limited == 11);
}

TEST_CASE("ICMP errors: a tenant slot reused by a new tenant starts with a full bucket") {
  Harness h(with_settings(R"({"icmp_rate_per_second": 1, "icmp_burst": 100, "icmp_tenant_burst": 3})"));
  uint16_t b = h.tenant("b");
  for (int i = 0; i < 5; i++) h.receive(0, from_b(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8), 1)));
  CHECK(icmp_by_tenant(h).second == 3);
  uint32_t uid = h.tables->tenants[b].uid;
  auto deleted = h.apply(ops(R"([{"op": "DELETE", "object": {"route": {"tenant": "a", "prefix": "10.99.0.0/16"}}},
                          {"op": "DELETE", "object": {"route": {"tenant": "b", "prefix": "10.99.0.0/16"}}},
                          {"op": "DELETE", "object": {"neighbour": {"interface": "b-svc", "address": "10.1.0.10"}}},
                          {"op": "DELETE", "object": {"interface": {"name": "b-lan"}}},
                          {"op": "DELETE", "object": {"interface": {"name": "b-svc"}}},
                          {"op": "DELETE", "object": {"tenant": {"name": "b"}}}])"));
  INFO(deleted.message);
  REQUIRE(deleted.code == Code::ok);
  REQUIRE(h.apply(ops(R"([{"op": "CREATE", "object": {"tenant": {"name": "c"}}},
    {"op": "CREATE", "object": {"interface": {"name": "c-lan", "tenant": "c", "port": "p0", "vlan": 20,
     "addresses": ["10.0.0.1/24"], "mac": "02:00:00:00:00:0b"}}},
    {"op": "CREATE", "object": {"interface": {"name": "c-svc", "tenant": "c", "port": "p1", "vlan": 120,
     "addresses": ["10.1.0.1/24"], "mac": "02:00:00:00:01:0b"}}}])"))
              .code == Code::ok);
  REQUIRE(h.tenant("c") == b);  // the same slot
  CHECK(h.tables->tenants[b].uid != uid);
  for (int i = 0; i < 5; i++) h.receive(0, from_b(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8), 1)));
  CHECK(icmp_by_tenant(h).second == 3);
}

TEST_CASE("ARP pending queue: a tenant holds at most its share of packets and of next hops") {
  // Share: 8 / 4 = 2 packets; next hops: 64 * 2 / 8 = 16.
  Harness h(with_settings(R"({"icmp_burst": 100, "arp_pending_limit": 8, "arp_timeout_ms": 1})"));
  const uint16_t a = h.tenant("a"), b = h.tenant("b");
  for (uint16_t i = 0; i < 5; i++) h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.20", 17, udp(i, 2, 8))));
  for (uint16_t i = 0; i < 2; i++) h.receive(0, from_b(ipv4("10.0.0.7", "10.1.0.20", 17, udp(i, 2, 8))));
  CHECK(h.worker.pending->count == 4);
  CHECK(h.drops(Drop::arp_pending_share) == 3);
  CHECK(h.drops(Drop::arp_pending_full) == 0);
  CHECK(h.worker.counters->tenants[a].arp_pending_limited == 3);
  CHECK(h.worker.counters->tenants[b].arp_pending_limited == 0);
  CHECK(h.worker.pending->tenant_packets[a] == 2);
  CHECK(h.worker.pending->tenant_waiting[a] == 1);
  // When they leave (ARP gave up), the shares are free again.
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  h.worker.pending->next_service = 0;
  service_pending(h.worker);
  CHECK(h.worker.pending->count == 0);
  CHECK(h.worker.pending->tenant_packets[a] == 0);
  CHECK(h.worker.pending->tenant_packets[b] == 0);
  CHECK(h.worker.pending->tenant_waiting[a] == 0);
  CHECK(h.worker.pending->n_waiting == 0);
}

TEST_CASE("ARP pending queue: when the packet pool is low, a tenant holds at most the guard's share") {
  Harness h(with_settings(R"({"icmp_burst": 100})"));  // a tenant's share: 64 packets
  const uint16_t a = h.tenant("a"), b = h.tenant("b");
  h.worker.pool_low = true;
  for (uint16_t i = 0; i < 30; i++) h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.20", 17, udp(i, 2, 8))));
  CHECK(h.worker.pending->tenant_packets[a] == buffer_guard_share);
  CHECK(h.worker.counters->tenants[a].buffer_guarded == 30 - buffer_guard_share);
  CHECK(h.drops(Drop::buffer_guard) == 30 - buffer_guard_share);
  CHECK(h.worker.counters->tenants[a].arp_pending_limited == 0);
  h.receive(0, from_b(ipv4("10.0.0.7", "10.1.0.20", 17, udp(1, 2, 8))));
  CHECK(h.worker.pending->tenant_packets[b] == 1);
  h.worker.pool_low = false;
}

TEST_CASE("ARP pending queue: ARPing for many absent hosts takes a quarter of the next hops") {
  Harness h(with_settings(R"({"icmp_burst": 100})"));  // 256 packets, a tenant 64 and 16 next hops
  const uint16_t a = h.tenant("a");
  for (int i = 0; i < 100; i++)
    h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0." + std::to_string(20 + i), 17, udp(1, 2, 8))));
  CHECK(h.worker.pending->n_waiting == 16);
  CHECK(h.worker.counters->tenants[a].arp_pending_limited == 84);
  // b's new host is still asked for.
  h.sent(1);
  h.receive(0, from_b(ipv4("10.0.0.7", "10.1.0.20", 17, udp(1, 2, 8))));
  CHECK(h.worker.pending->n_waiting == 17);
  CHECK(h.sent(1).size() == 1);  // its ARP request
}

TEST_CASE("punt policer: IKE from one source over its rate is dropped, other sources still punted") {
  Harness h(with_settings(R"({"icmp_burst": 100, "punt_rate_per_second": 1, "punt_burst": 20})"));
  rte_ring* punt = rte_ring_lookup("unit_punt");
  if (!punt) punt = rte_ring_create("unit_punt", 1024, 0, 0);
  REQUIRE(punt);
  h.worker.punt = punt;
  for (int i = 0; i < 30; i++) h.receive(0, from_a(ipv4("10.0.0.7", "10.0.0.1", 17, udp(500, 500, 40))));
  Bytes ike_4500 = udp(4500, 4500, 40);
  std::fill(ike_4500.begin() + 8, ike_4500.begin() + 12, 0);  // the non-ESP marker: IKE
  for (int i = 0; i < 3; i++) h.receive(0, from_a(ipv4("10.0.0.8", "10.0.0.1", 17, ike_4500)));
  CHECK(h.drops(Drop::punt_policed) == 10);
  CHECK(h.worker.counters->tenants[h.tenant("a")].punt_policed == 10);
  CHECK(h.worker.counters->ike_punted == 23);
  rte_mbuf* m;
  while (rte_ring_dequeue(punt, reinterpret_cast<void**>(&m)) == 0) rte_pktmbuf_free(m);
  h.worker.punt = nullptr;
}
