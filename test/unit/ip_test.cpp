#include <rte_ip.h>

#include <catch2/catch.hpp>

#include "fixture.h"
#include "harness.h"

using namespace frame;

namespace {
Bytes from_a(const Bytes& ip) { return ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) + ip; }
Bytes from_b(const Bytes& ip) { return ether("02:00:00:00:00:0b", host_mac, 0x8100) + vlan(0x0800, 20) + ip; }
const uint8_t* ip_of(const Bytes& f, size_t l2 = 18) { return f.data() + l2; }
bool checksum_ok(const uint8_t* ip) { return rte_raw_cksum(ip, (ip[0] & 0xf) * 4) == 0xffff; }
uint16_t be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }
}  // namespace

TEST_CASE("two tenants with the same plan forward to their own service") {
  Harness h(two_tenants);
  h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1000, 2000, 32))));
  h.receive(0, from_b(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1000, 2000, 32))));
  auto out = h.sent(1);
  REQUIRE(out.size() == 2);
  // Tenant a: tag 110, service a's MAC; tenant b: tag 120, service b's MAC.
  CHECK(out[0][15] == 110);
  CHECK(out[0][5] == 0xaa);
  CHECK(out[0][11] == 0x0a);
  CHECK(out[1][15] == 120);
  CHECK(out[1][5] == 0xbb);
  for (auto& f : out) {
    CHECK(ip_of(f)[8] == 63);  // TTL decremented
    CHECK(checksum_ok(ip_of(f)));
  }
  CHECK(h.total_drops() == 0);
  CHECK(h.worker.counters->tenants[0].tx_packets == 1);
  CHECK(h.worker.counters->tenants[1].tx_packets == 1);
}

TEST_CASE("a route leak continues the lookup in another tenant") {
  Harness h(two_tenants);
  h.receive(0, from_a(ipv4("10.0.0.7", "192.168.1.5", 17, udp(1, 2, 8))));
  auto out = h.sent(0);
  REQUIRE(out.size() == 1);
  CHECK(out[0][12] == 0x08);  // u-lan is untagged
  CHECK(out[0][5] == 0xcc);
  CHECK(h.worker.counters->tenants[2].tx_packets == 1);  // core

  h.receive(0, from_a(ipv4("10.0.0.7", "10.99.1.1", 17, udp(1, 2, 8))));
  CHECK(h.drops(Drop::leak_loop) == 1);
  h.receive(0, from_a(ipv4("10.0.0.7", "192.168.2.5", 17, udp(1, 2, 8))));  // leaked, no route in core
  CHECK(h.drops(Drop::no_route) == 1);
}

TEST_CASE("TTL expiry, no route and blackholes answer ICMP from the ingress interface") {
  Harness h(two_tenants);
  h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8), 1)));
  h.receive(0, from_a(ipv4("10.0.0.7", "8.8.8.8", 17, udp(1, 2, 8))));
  h.receive(0, from_a(ipv4("10.0.0.7", "172.16.5.5", 17, udp(1, 2, 8))));
  h.receive(0, from_a(ipv4("10.0.0.7", "172.32.5.5", 17, udp(1, 2, 8))));
  CHECK(h.drops(Drop::ttl_expired) == 1);
  CHECK(h.drops(Drop::no_route) == 1);
  CHECK(h.drops(Drop::blackhole) == 2);
  auto out = h.sent(0);
  REQUIRE(out.size() == 3);
  const uint8_t expected[][2] = {{11, 0}, {3, 0}, {3, 13}};
  for (size_t i = 0; i < 3; i++) {
    const uint8_t* ip = ip_of(out[i]);
    CHECK(out[i][15] == 10);         // back out of a-lan
    CHECK(be16(ip + 12) == 0x0a00);  // from 10.0.0.1
    CHECK(checksum_ok(ip));
    CHECK(ip[20] == expected[i][0]);
    CHECK(ip[21] == expected[i][1]);
    CHECK(rte_raw_cksum(ip + 20, be16(ip + 2) - 20) == 0xffff);
    CHECK(be16(ip + 2) == 20 + 8 + 28);  // quotes the header and 8 bytes
  }
}

TEST_CASE("ICMP errors are rate-limited per worker") {
  Harness h(two_tenants);  // icmp_burst 5, 1 per second
  for (int i = 0; i < 20; i++) h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8), 1)));
  CHECK(h.sent(0).size() == 5);
  CHECK(h.worker.counters->icmp_rate_limited == 15);
  CHECK(h.drops(Drop::ttl_expired) == 20);
}

TEST_CASE("ip_input checks each header field under its own reason") {
  Harness h(two_tenants);
  auto good = ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8));
  auto bad_checksum = good;
  bad_checksum[10] ^= 0xff;
  auto bad_version = good;
  bad_version[0] = 0x65;
  auto bad_ihl = good;
  bad_ihl[0] = 0x44;
  auto long_total = good;
  long_total[3] += 10;
  auto short_total = good;
  short_total[2] = 0;
  short_total[3] = 10;
  for (auto* f : {&bad_version, &bad_ihl, &long_total, &short_total}) {
    (*f)[10] = (*f)[11] = 0;
    uint16_t c = uint16_t(~rte_raw_cksum(f->data(), 20));
    (*f)[10] = uint8_t(c);  // rte_raw_cksum sums in host order: store as it lies in memory
    (*f)[11] = uint8_t(c >> 8);
  }
  h.receive(0, from_a(bad_checksum));
  h.receive(0, from_a(bad_version));
  h.receive(0, from_a(bad_ihl));
  h.receive(0, from_a(long_total));
  h.receive(0, from_a(short_total));
  h.receive(0, from_a(Bytes(12, 0x45)));
  CHECK(h.drops(Drop::ip_bad_checksum) == 1);
  CHECK(h.drops(Drop::ip_bad_version) == 1);
  CHECK(h.drops(Drop::ip_bad_ihl) == 1);
  CHECK(h.drops(Drop::ip_bad_total_length) == 2);
  CHECK(h.drops(Drop::ip_truncated) == 1);
  CHECK(h.sent(1).empty());

  // Ethernet padding after the IP packet is trimmed, not forwarded.
  h.receive(0, from_a(good) + Bytes(10, 0));
  auto out = h.sent(1);
  REQUIRE(out.size() == 1);
  CHECK(out[0].size() == 18 + good.size());
}

TEST_CASE("egress MTU: DF gets fragmentation-needed, otherwise fragments") {
  Harness h(two_tenants);  // a-svc has MTU 1000
  h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 1172), 64, 0x4000)));
  CHECK(h.drops(Drop::mtu_exceeded) == 1);
  auto icmp = h.sent(0);
  REQUIRE(icmp.size() == 1);
  CHECK(ip_of(icmp[0])[20] == 3);
  CHECK(ip_of(icmp[0])[21] == 4);
  CHECK(be16(ip_of(icmp[0]) + 26) == 1000);

  h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 1172))));
  auto frags = h.sent(1);
  REQUIRE(frags.size() == 2);
  size_t payload = 0;
  for (auto& f : frags) {
    const uint8_t* ip = ip_of(f);
    CHECK(be16(ip + 2) <= 1000);
    CHECK(checksum_ok(ip));
    CHECK(ip[8] == 63);
    payload += be16(ip + 2) - 20;
  }
  CHECK(payload == 1180);
  CHECK((be16(ip_of(frags[0]) + 6) & 0x2000) != 0);  // more fragments
  CHECK((be16(ip_of(frags[1]) + 6) & 0x1fff) == (1000 - 20) / 8);
}

TEST_CASE("local delivery: echo replies, and nothing else") {
  Harness h(two_tenants);
  auto request = from_a(ipv4("10.0.0.7", "10.0.0.1", 1, icmp_echo(7, 9)));
  h.receive(0, request);
  auto out = h.sent(0);
  REQUIRE(out.size() == 1);
  const uint8_t* ip = ip_of(out[0]);
  CHECK(be16(ip + 12) == 0x0a00);
  CHECK(ip[19] == 7);  // to the requester
  CHECK(ip[20] == 0);
  CHECK(checksum_ok(ip));
  CHECK(rte_raw_cksum(ip + 20, be16(ip + 2) - 20) == 0xffff);
  CHECK(out[0][5] == 0x99);  // to the requester's MAC

  h.receive(0, from_a(ipv4("10.0.0.7", "10.0.0.1", 17, udp(1, 2, 8))));
  CHECK(h.drops(Drop::local_unsupported) == 1);
  h.receive(0, from_a(ipv4("10.0.0.7", "10.0.0.1", 1, icmp_echo(7, 9), 64, 0x2000)));
  CHECK(h.drops(Drop::local_fragment) == 1);
}

TEST_CASE("IPv4 options and fragments in transit are forwarded") {
  Harness h(two_tenants);
  auto with_options = ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8));
  // Insert a 4-byte NOP/NOP/NOP/EOL option and fix IHL, length and checksum.
  with_options.insert(with_options.begin() + 20, {1, 1, 1, 0});
  with_options[0] = 0x46;
  with_options[3] += 4;
  with_options[10] = with_options[11] = 0;
  uint16_t c = uint16_t(~rte_raw_cksum(with_options.data(), 24));
  memcpy(&with_options[10], &c, 2);
  h.receive(0, from_a(with_options));
  h.receive(0, from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8), 64, 0x2000)));
  auto out = h.sent(1);
  REQUIRE(out.size() == 2);
  CHECK(ip_of(out[0])[0] == 0x46);
  CHECK(checksum_ok(ip_of(out[0])));
  CHECK(be16(ip_of(out[1]) + 6) == 0x2000);
  CHECK(h.total_drops() == 0);
}

TEST_CASE("a mixed burst is counted per interface, and stage timing can be switched off") {
  Harness h(two_tenants);
  // a, a, b, a, b: runs of one interface of length 2, 1, 1, 1 (per-run counting must not merge
  // a run with an earlier one of the same interface).
  auto udp_a = from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1000, 2000, 32)));
  auto udp_b = from_b(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1000, 2000, 64)));
  auto run = [&] {
    auto pkts = h.burst({udp_a, udp_a, udp_b, udp_a, udp_b});
    process_burst(h.worker, 0, pkts.data(), uint16_t(pkts.size()));
  };
  const Counters& c = *h.worker.counters;
  const StageStats& l2 = c.stages[unsigned(Stage::l2_input)];
  const StageStats& out = c.stages[unsigned(Stage::ip_output)];

  h.worker.timing = false;
  run();
  auto sent = h.sent(1);
  REQUIRE(sent.size() == 5);
  CHECK(sent[0][15] == 110);
  CHECK(sent[2][15] == 120);
  CHECK(sent[4][15] == 120);
  CHECK(sent[4][5] == 0xbb);
  CHECK(h.total_drops() == 0);
  uint16_t a_lan = h.interface("a-lan"), b_lan = h.interface("b-lan");
  uint16_t a_svc = h.interface("a-svc"), b_svc = h.interface("b-svc");
  CHECK(c.interfaces[a_lan].rx_packets == 3);
  CHECK(c.interfaces[b_lan].rx_packets == 2);
  CHECK(c.interfaces[a_svc].tx_packets == 3);
  CHECK(c.interfaces[b_svc].tx_packets == 2);
  CHECK(c.interfaces[a_lan].rx_bytes == 3 * udp_a.size());
  CHECK(c.interfaces[b_lan].rx_bytes == 2 * udp_b.size());
  CHECK(c.interfaces[a_svc].tx_bytes == 3 * sent[0].size());
  CHECK(c.interfaces[b_svc].tx_bytes == 2 * sent[2].size());
  CHECK(c.tenants[h.tenant("a")].rx_packets == 3);
  CHECK(c.tenants[h.tenant("b")].tx_packets == 2);
  // Off: calls and packets still counted, no cycles.
  CHECK(l2.calls == 1);
  CHECK(l2.packets == 5);
  CHECK(out.packets == 5);
  CHECK(l2.cycles == 0);
  CHECK(out.cycles == 0);

  h.worker.timing = true;
  run();
  CHECK(h.sent(1).size() == 5);
  CHECK(l2.packets == 10);
  CHECK(l2.cycles > 0);
  CHECK(out.cycles > 0);
  CHECK(c.interfaces[a_svc].tx_packets == 6);

  // The port's counters come from the bytes its buffer summed as the frames went in (tx_burst
  // does not read them again: after rte_eth_tx_burst they are the driver's, net_null's here).
  run();
  uint64_t bytes = 3 * sent[0].size() + 2 * sent[2].size();
  CHECK(h.worker.tx[1].bytes == bytes);
  flush_tx(h.worker);
  CHECK(h.worker.tx[1].count == 0);
  CHECK(h.worker.tx[1].bytes == 0);
  CHECK(c.ports[1].tx_packets == 5);
  CHECK(c.ports[1].tx_bytes == bytes);
  CHECK(c.ports[1].tx_dropped == 0);
}
