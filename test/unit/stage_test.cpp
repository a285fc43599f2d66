// One stage at a time, VPP/grout style: a burst built here goes through a single stage
// function, and the test reads exactly what that stage did (which output each packet went to,
// the metadata it set, the bytes it rewrote, the drops it counted), with no other stage
// involved. The whole-pipeline tests are in the other files.
#include <rte_ip.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <random>
#include <set>

#include "common/address.h"
#include "fixture.h"
#include "ha/tenants.h"
#include "harness.h"
#include "ip/ip.h"
#include "ipsec/esp.h"
#include "ipsec/sa.h"
#include "l2/l2.h"
#include "nat/nat.h"
#include "nat/sync.h"
#include "qos/qos.h"

using namespace frame;
using medix::common::parse_ipv4;

namespace {

// Each stage is called through one of these, so that a change of a stage's signature is a
// change here only. Output vectors are in the order the stage filled its arrays.

struct L2Out {
  std::vector<rte_mbuf*> ip, arp;
  uint16_t plain = 0;  // of ip, those that pass ip_input's checks as they are
};
L2Out l2_stage(Harness& h, uint16_t port, std::vector<rte_mbuf*> pkts) {
  rte_mbuf *ip[burst_size], *arp[burst_size];
  uint16_t n_ip = 0, n_plain = 0, n_arp = 0;
  l2_input(h.worker, port, pkts.data(), uint16_t(pkts.size()), ip, n_ip, n_plain, arp, n_arp);
  return {{ip, ip + n_ip}, {arp, arp + n_arp}, n_plain};
}

// The good packets: those that may be ESP after the others.
std::vector<rte_mbuf*> ip_input_stage(Harness& h, std::vector<rte_mbuf*> pkts) {
  std::vector<rte_mbuf*> esp(pkts.size());
  uint16_t n_esp = 0;
  pkts.resize(ip_input(h.worker, pkts.data(), uint16_t(pkts.size()), esp.data(), n_esp));
  pkts.insert(pkts.end(), esp.begin(), esp.begin() + n_esp);
  return pkts;
}

struct LookupOut {
  std::vector<rte_mbuf*> fwd, local, looping;
};
// ip_lookup takes a burst of any tenants (it returns what it left: nothing); leaked packets go
// round again in their new tenant, as the pipeline does. What still leaks after max_leak_hops rounds is `looping` (the
// pipeline drops it as leak_loop).
LookupOut ip_lookup_stage(Harness& h, std::vector<rte_mbuf*> pkts) {
  LookupOut out;
  for (unsigned round = 0; round <= max_leak_hops && !pkts.empty(); round++) {
    Routed r;
    for (auto n = uint16_t(pkts.size()); n;) n = ip_lookup(h.worker, pkts.data(), n, r);
    REQUIRE(r.n_cross == 0);
    out.fwd.insert(out.fwd.end(), r.fwd, r.fwd + r.n_fwd);
    out.fwd.insert(out.fwd.end(), r.tunnel, r.tunnel + r.n_tunnel);
    out.local.insert(out.local.end(), r.local, r.local + r.n_local);
    pkts.assign(r.leaked, r.leaked + r.n_leaked);
  }
  out.looping = pkts;
  return out;
}

// The packets of the CBC jobs in flight, completed: decrypted ones (`inbound`) or encrypted ones.
std::vector<rte_mbuf*> completed_jobs(Harness& h, bool inbound) {
  esp_complete(h.worker, true);
  std::vector<rte_mbuf*> done;
  while (esp_done(h.worker)) {
    Batch in, out;
    esp_take_done(h.worker, in, out, uint16_t(std::size(in.pkts)));
    Batch& mine = inbound ? in : out;
    REQUIRE((inbound ? out : in).n == 0);
    done.insert(done.end(), mine.pkts, mine.pkts + mine.n);
  }
  return done;
}

std::vector<rte_mbuf*> esp_output_stage(Harness& h, std::vector<rte_mbuf*> pkts) {
  rte_mbuf* outer[2 * burst_size];
  uint16_t n_outer = 0;
  esp_output(h.worker, pkts.data(), uint16_t(pkts.size()), outer, n_outer);
  std::vector<rte_mbuf*> out(outer, outer + n_outer);
  for (rte_mbuf* m : completed_jobs(h, false)) out.push_back(m);  // CBC
  return out;
}

std::vector<rte_mbuf*> esp_input_stage(Harness& h, std::vector<rte_mbuf*> pkts) {
  rte_mbuf* inner[burst_size];
  uint16_t n_inner = 0;
  esp_input(h.worker, pkts.data(), uint16_t(pkts.size()), inner, n_inner);
  std::vector<rte_mbuf*> out(inner, inner + n_inner);
  for (rte_mbuf* m : completed_jobs(h, true)) out.push_back(m);  // CBC
  return out;
}

// Crossing the core from tenant origin[i] to exit[i]: each packet that goes on, in its place;
// nullptr where the stage consumed it.
std::vector<rte_mbuf*> nat_stage(Harness& h, std::vector<rte_mbuf*> pkts, const std::vector<uint16_t>& origin,
                                 const std::vector<uint16_t>& exit) {
  for (size_t i = 0; i < pkts.size(); i++) {
    meta(pkts[i]).origin = uint16_t(origin[i] + 1);
    meta(pkts[i]).exit = exit[i];
  }
  rte_mbuf* out[burst_size];
  uint16_t n_out = 0;
  nat_input(h.worker, pkts.data(), uint16_t(pkts.size()), false, out, n_out);
  for (auto& m : pkts)
    if (std::find(out, out + n_out, m) == out + n_out) m = nullptr;
  return pkts;
}

// Packets as l2_input hands them on: received on an interface, L2 still on.
std::vector<rte_mbuf*> arrived(Harness& h, const std::vector<std::pair<std::string, Bytes>>& frames) {
  std::vector<rte_mbuf*> pkts;
  for (const auto& [interface, bytes] : frames) {
    rte_mbuf* m = h.burst({bytes})[0];
    const InterfaceEntry& f = h.tables->interfaces[h.interface(interface)];
    meta(m) = PacketMeta{};
    meta(m).iface_in = h.interface(interface);
    meta(m).tenant = f.tenant;
    meta(m).l2_len = l2_len_of(f);
    pkts.push_back(m);
  }
  return pkts;
}

void free_all(const std::vector<rte_mbuf*>& pkts) {
  for (rte_mbuf* m : pkts) rte_pktmbuf_free(m);  // nullptr: nothing
}

bool has(const std::vector<rte_mbuf*>& pkts, const rte_mbuf* m) { return std::count(pkts.begin(), pkts.end(), m) == 1; }

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// Whether an IPv4 header's checksum is right, by DPDK's own sum (0: the sum over it is 0xffff).
bool ip_checksum_ok(const uint8_t* ip) { return rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip)) == 0; }

// A TCP header without options, then `payload_len` bytes.
Bytes tcp(uint16_t sport, uint16_t dport, uint8_t flags, size_t payload_len = 0) {
  Bytes b(20 + payload_len, 0xcd);
  std::fill(b.begin(), b.begin() + 20, 0);
  b[0] = uint8_t(sport >> 8);
  b[1] = uint8_t(sport);
  b[2] = uint8_t(dport >> 8);
  b[3] = uint8_t(dport);
  b[7] = 1;      // sequence number
  b[12] = 0x50;  // 5 words: no options
  b[13] = flags;
  b[14] = b[15] = 0xff;  // window
  return b;
}

// An IPv4 packet with its TCP or UDP checksum filled in by DPDK, as its sender would.
Bytes with_l4_checksum(Bytes ip) {
  size_t ihl = (ip[0] & 0xf) * 4u;
  size_t at = ihl + (ip[9] == IPPROTO_TCP ? 16 : 6);
  ip[at] = ip[at + 1] = 0;
  uint16_t sum = rte_ipv4_udptcp_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip.data()), ip.data() + ihl);
  memcpy(&ip[at], &sum, 2);
  return ip;
}

// Whether a packet's IPv4 header and TCP/UDP checksums are what DPDK computes afresh.
bool checksums_ok(const Bytes& frame, size_t l2) {
  Bytes ip(frame.begin() + long(l2), frame.end());
  return ip_checksum_ok(ip.data()) && with_l4_checksum(ip) == ip;
}

Bytes from_a(const Bytes& ip) { return ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) + ip; }
Bytes from_b(const Bytes& ip) { return ether("02:00:00:00:00:0b", host_mac, 0x8100) + vlan(0x0800, 20) + ip; }

}  // namespace

TEST_CASE("l2_input stage: a mixed burst sorted into IPv4, ARP and drops, with metadata") {
  Harness h(two_tenants);
  const Bytes ping = ipv4("10.0.0.7", "10.0.0.1", 1, icmp_echo(1, 1));
  const Bytes who_has = arp(1, host_mac, "10.0.0.7", "00:00:00:00:00:00", "10.0.0.1");
  auto pkts = h.burst({
      ether("02:00:00:00:00:0d", host_mac, 0x0800) + ping,                                         // 0 untagged
      from_a(ping),                                                                                // 1 802.1Q
      ether("02:00:00:00:00:0c", host_mac, 0x88a8) + vlan(0x8100, 100) + vlan(0x0800, 30) + ping,  // 2 QinQ
      ether("ff:ff:ff:ff:ff:ff", host_mac, 0x8100) + vlan(0x0806, 20) + who_has,                   // 3 ARP broadcast
      ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 11) + ping,                      // 4 unknown VLAN
      ether("02:00:00:00:00:77", host_mac, 0x8100) + vlan(0x0800, 10) + ping,                      // 5 wrong MAC
      Bytes(10, 0),                                                                                // 6 truncated
      ether("02:00:00:00:00:0a", host_mac, 0x8100) + Bytes{0},                                     // 7 tag cut short
      ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x86dd, 10) + Bytes(40, 0),              // 8 IPv6
      from_b(ping),                                                                                // 9 802.1Q
      ether("02:00:00:00:00:0d", host_mac, 0x0806) + who_has,                                      // 10 ARP unicast
      ether("02:00:00:00:00:77", host_mac, 0x0806) + who_has,                                      // 11 ARP elsewhere
      ether("02:00:00:00:00:0a", host_mac, 0x0800) + ping,  // 12 tag stripped by the NIC
  });
  pkts[12]->ol_flags |= RTE_MBUF_F_RX_VLAN_STRIPPED;
  pkts[12]->vlan_tci = 10;
  auto expected = pkts;  // the stage may free some; only their addresses are compared
  unsigned before = rte_mempool_avail_count(h.pool);

  auto out = l2_stage(h, 0, pkts);

  // In arrival order, QinQ frames (the hash) after the others.
  CHECK(out.ip == std::vector<rte_mbuf*>{expected[0], expected[1], expected[9], expected[12], expected[2]});
  CHECK(out.arp == std::vector<rte_mbuf*>{expected[3], expected[10]});
  CHECK(h.drops(Drop::l2_truncated) == 2);
  CHECK(h.drops(Drop::unknown_vlan) == 1);
  CHECK(h.drops(Drop::l2_not_for_us) == 2);
  CHECK(h.drops(Drop::unsupported_ethertype) == 1);
  CHECK(h.total_drops() == 6);
  CHECK(rte_mempool_avail_count(h.pool) == before + 6);  // the dropped were freed

  struct Seen {
    rte_mbuf* m;
    const char* interface;
    const char* tenant;
    uint8_t l2_len;
  };
  for (auto [m, interface, tenant, l2_len] :
       {Seen{expected[0], "u-lan", "core", 14}, Seen{expected[1], "a-lan", "a", 18},
        Seen{expected[2], "q-lan", "a", 22}, Seen{expected[3], "b-lan", "b", 18}, Seen{expected[9], "b-lan", "b", 18},
        Seen{expected[10], "u-lan", "core", 14}, Seen{expected[12], "a-lan", "a", 14}}) {
    INFO(interface);
    CHECK(meta(m).iface_in == h.interface(interface));
    CHECK(meta(m).tenant == h.tenant(tenant));
    CHECK(meta(m).l2_len == l2_len);
    CHECK(meta(m).flags == 0);
    CHECK(meta(m).origin == 0);
  }
  // Counted as received on their interface, the wrong MAC and IPv6 ones too.
  CHECK(h.worker.counters->interfaces[h.interface("a-lan")].rx_packets == 4);
  CHECK(h.worker.counters->interfaces[h.interface("u-lan")].rx_packets == 3);
  CHECK(h.worker.counters->tenants[h.tenant("b")].rx_packets == 2);
  // Nothing is sent by this stage.
  CHECK(h.sent(0).empty());
  free_all(out.ip);
  free_all(out.arp);
}

TEST_CASE("ip_input stage: header checks keep the good packets in order and trim padding") {
  Harness h(two_tenants);
  const Bytes good = ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8));
  Bytes bad_version = good, bad_ihl = good, too_long = good, bad_sum = good;
  bad_version[0] = 0x65;
  bad_ihl[0] = 0x44;
  too_long[3] = uint8_t(good.size() + 1);
  bad_sum[10] ^= 0xff;
  auto pkts = arrived(h, {{"a-lan", from_a(good)},
                          {"a-lan", from_a(Bytes(good.begin(), good.begin() + 19))},
                          {"a-lan", from_a(bad_version)},
                          {"a-lan", from_a(bad_ihl)},
                          {"a-lan", from_a(too_long)},
                          {"b-lan", from_b(bad_sum)},
                          {"b-lan", from_b(good) + Bytes(10, 0)}});
  auto expected = pkts;

  auto kept = ip_input_stage(h, pkts);

  CHECK(kept == std::vector<rte_mbuf*>{expected[0], expected[6]});
  CHECK(h.drops(Drop::ip_truncated) == 1);
  CHECK(h.drops(Drop::ip_bad_version) == 1);
  CHECK(h.drops(Drop::ip_bad_ihl) == 1);
  CHECK(h.drops(Drop::ip_bad_total_length) == 1);
  CHECK(h.drops(Drop::ip_bad_checksum) == 1);
  CHECK(h.total_drops() == 5);
  CHECK(h.worker.counters->tenants[h.tenant("a")].drops == 4);
  CHECK(h.worker.counters->tenants[h.tenant("b")].drops == 1);
  CHECK(bytes_of(kept[0]) == from_a(good));
  CHECK(bytes_of(kept[1]) == from_b(good));  // the Ethernet padding is gone
  free_all(kept);
}

TEST_CASE("l2_input counts as plain exactly the IPv4 frames that ip_input keeps as they are") {
  Harness h(two_tenants);
  const Bytes good = ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8));
  Bytes bad_version = good, options = good, too_long = good, bad_sum = good;
  bad_version[0] = 0x65;
  options[0] = 0x46;  // (its checksum is wrong too: either way not plain)
  too_long[3] = uint8_t(good.size() + 1);
  bad_sum[10] ^= 0xff;
  struct Case {
    const char* what;
    Bytes frame;
    bool plain;
  };
  for (const auto& [what, frame, plain] : {
           Case{"good", from_a(good), true},
           Case{"a later fragment of UDP", from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 4500, 8), 64, 1)), true},
           Case{"padded", from_a(good) + Bytes(10, 0), false},
           Case{"truncated", from_a(Bytes(good.begin(), good.begin() + 19)), false},
           Case{"bad version", from_a(bad_version), false},
           Case{"options", from_a(options), false},
           Case{"too long", from_a(too_long), false},
           Case{"bad checksum", from_a(bad_sum), false},
           Case{"ESP", from_a(ipv4("10.0.0.7", "10.1.0.10", 50, Bytes(24, 0))), false},
           Case{"ESP in UDP", from_a(ipv4("10.0.0.7", "10.1.0.10", 17, udp(4500, 4500, 8))), false},
       }) {
    INFO(what);
    auto out = l2_stage(h, 0, h.burst({frame}));
    REQUIRE(out.ip.size() == 1);
    CHECK(out.plain == (plain ? 1 : 0));
    if (!plain) {
      free_all(out.ip);
      continue;
    }
    // What ip_input does with a plain one: keeps it, as it is, not as possibly ESP.
    rte_mbuf* esp[1];
    uint16_t n_esp = 0;
    CHECK(ip_input(h.worker, out.ip.data(), 1, esp, n_esp) == 1);
    CHECK(n_esp == 0);
    CHECK(bytes_of(out.ip[0]) == frame);
    free_all(out.ip);
  }
  CHECK(h.total_drops() == 0);
}

TEST_CASE("l2_input: a frame with the last frame's header takes its way, any other is parsed as if alone") {
  // l2_input reuses the interface of the last IPv4 frame it mapped for a frame with the same
  // destination MAC and tag bytes. Each frame here differs from the one before in one thing;
  // the burst must sort, count and mark every frame as a burst of that frame alone does (which
  // never reuses anything).
  const Bytes good = ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 8));
  Bytes tos = good;
  tos[1] = 0x10;
  tos[10] = uint8_t(tos[10] - 0x10);  // the checksum follows the TOS
  const Bytes who_has = arp(1, host_mac, "10.0.0.7", "00:00:00:00:00:00", "10.0.0.1");
  const Bytes u_ip = ether("02:00:00:00:00:0d", host_mac, 0x0800);
  struct Frame {
    const char* what;
    Bytes bytes;
    uint16_t stripped = 0;  // a tag the NIC took out (RX_VLAN_STRIPPED)
  };
  const Bytes a_untagged = ether("02:00:00:00:00:0a", host_mac, 0x0800);
  const std::vector<Frame> frames = {
      {"a-lan", from_a(good)},
      {"a-lan again", from_a(good)},
      {"ARP on a-lan's tag", ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0806, 10) + who_has},
      {"a-lan, priority bits in the TCI",
       ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 0x6000 | 10) + good},
      {"b-lan", from_b(good)},
      {"b-lan's MAC on a-lan's tag", ether("02:00:00:00:00:0b", host_mac, 0x8100) + vlan(0x0800, 10) + good},
      {"b-lan again", from_b(good)},
      {"b-lan's bytes, tag 20 stripped", from_b(good), 20},
      {"u-lan untagged", u_ip + good},
      {"u-lan, other IPv4 bytes", u_ip + tos},
      {"u-lan's bytes, tag 10 stripped", u_ip + good, 10},
      {"u-lan, its header cut short", u_ip + Bytes{0x45, 0}},
      {"u-lan, ARP", ether("02:00:00:00:00:0d", host_mac, 0x0806) + who_has},
      {"u-lan's MAC, tagged 10", ether("02:00:00:00:00:0d", host_mac, 0x8100) + vlan(0x0800, 10) + good},
      {"a-lan's MAC, tag 10 stripped", a_untagged + good, 10},
      {"a-lan's MAC, tag 10 stripped again", a_untagged + good, 10},
      {"a-lan's MAC untagged", a_untagged + good},
      {"a-lan with an S-tag", ether("02:00:00:00:00:0a", host_mac, 0x88a8) + vlan(0x0800, 10) + good},
      {"q-lan (QinQ)", ether("02:00:00:00:00:0c", host_mac, 0x88a8) + vlan(0x8100, 100) + vlan(0x0800, 30) + good},
      {"a-lan after QinQ", from_a(good)},
      {"a-lan, padded", from_a(good) + Bytes(10, 0)},
  };
  auto make = [&](Harness& h, size_t i) {
    rte_mbuf* m = h.burst({frames[i].bytes})[0];
    if (frames[i].stripped) {
      m->ol_flags |= RTE_MBUF_F_RX_VLAN_STRIPPED;
      m->vlan_tci = frames[i].stripped;
    }
    return m;
  };
  enum class Way { ip, arp, dropped };
  struct Seen {
    Way way = Way::dropped;
    uint16_t iface_in = 0, tenant = 0, origin = 0;
    uint8_t l2_len = 0, flags = 0;
    uint32_t session = 0;
  };
  auto seen = [](rte_mbuf* m, Way way) {
    const PacketMeta& pm = meta(m);
    return Seen{way, pm.iface_in, pm.tenant, pm.origin, pm.l2_len, pm.flags, pm.session};
  };

  // Drops by reason and receive counts per interface and tenant, to compare what each way added.
  Harness h(two_tenants);
  const std::vector<const char*> interfaces = {"a-lan", "b-lan", "q-lan", "u-lan"}, tenants = {"a", "b", "core"};
  auto counts = [&] {
    std::vector<uint64_t> c(h.worker.counters->drops, h.worker.counters->drops + drop_reason_count);
    for (const char* name : interfaces) {
      c.push_back(h.worker.counters->interfaces[h.interface(name)].rx_packets);
      c.push_back(h.worker.counters->interfaces[h.interface(name)].rx_bytes);
    }
    for (const char* name : tenants) {
      c.push_back(h.worker.counters->tenants[h.tenant(name)].rx_packets);
      c.push_back(h.worker.counters->tenants[h.tenant(name)].drops);
    }
    return c;
  };
  auto added = [](std::vector<uint64_t> after, const std::vector<uint64_t>& before) {
    for (size_t i = 0; i < after.size(); i++) after[i] -= before[i];
    return after;
  };

  // Each alone.
  std::vector<Seen> expected(frames.size());
  uint16_t expected_plain = 0;
  std::vector<size_t> expected_ip, expected_arp;
  auto start = counts();
  for (size_t i = 0; i < frames.size(); i++) {
    auto out = l2_stage(h, 0, {make(h, i)});
    expected_plain = uint16_t(expected_plain + out.plain);
    if (!out.ip.empty()) expected[i] = seen(out.ip[0], Way::ip), expected_ip.push_back(i);
    if (!out.arp.empty()) expected[i] = seen(out.arp[0], Way::arp), expected_arp.push_back(i);
    free_all(out.ip);
    free_all(out.arp);
  }
  auto alone = added(counts(), start);
  // QinQ frames (the hash) after the others, as l2_input documents.
  std::stable_partition(expected_ip.begin(), expected_ip.end(),
                        [&](size_t i) { return std::string(frames[i].what) != "q-lan (QinQ)"; });

  // All in one burst.
  std::vector<rte_mbuf*> pkts;
  for (size_t i = 0; i < frames.size(); i++) pkts.push_back(make(h, i));
  auto index = [&](rte_mbuf* m) { return size_t(std::find(pkts.begin(), pkts.end(), m) - pkts.begin()); };
  start = counts();
  auto out = l2_stage(h, 0, pkts);
  auto burst = added(counts(), start);
  std::vector<size_t> got_ip, got_arp;
  for (rte_mbuf* m : out.ip) got_ip.push_back(index(m));
  for (rte_mbuf* m : out.arp) got_arp.push_back(index(m));
  CHECK(got_ip == expected_ip);
  CHECK(got_arp == expected_arp);
  CHECK(out.plain == expected_plain);
  for (size_t i : got_ip) {
    INFO(frames[i].what);
    Seen s = seen(pkts[i], Way::ip);
    CHECK(s.iface_in == expected[i].iface_in);
    CHECK(s.tenant == expected[i].tenant);
    CHECK(s.l2_len == expected[i].l2_len);
    CHECK(s.flags == expected[i].flags);
    CHECK(s.origin == expected[i].origin);
    CHECK(s.session == expected[i].session);
  }
  for (size_t i : got_arp) {
    INFO(frames[i].what);
    CHECK(meta(pkts[i]).iface_in == expected[i].iface_in);
    CHECK(meta(pkts[i]).l2_len == expected[i].l2_len);
  }
  // The same drops by reason, the same counts per interface and tenant; every way taken.
  CHECK(burst == alone);
  CHECK(h.total_drops() > 0);
  CHECK(expected_ip.size() > 10);
  CHECK(expected_arp.size() == 2);
  free_all(out.ip);
  free_all(out.arp);
}

namespace {

// The same packets through the same plan whatever FIB kinds the tenants have.
void lookup_two_tenants(const std::string& config) {
  Harness h(config);
  auto to = [](const std::string& dst, uint8_t ttl = 64, size_t size = 8, uint16_t frag = 0) {
    return ipv4("10.0.0.7", dst, 17, udp(1000, 2000, size), ttl, frag);
  };
  auto pkts = arrived(h, {{"a-lan", from_a(to("10.1.0.10"))},                      // 0 forwarded in a
                          {"b-lan", from_b(to("10.1.0.10"))},                      // 1 the same in b
                          {"a-lan", from_a(to("10.0.0.1"))},                       // 2 local in a
                          {"b-lan", from_b(to("10.0.0.1"))},                       // 3 local in b
                          {"a-lan", from_a(to("192.168.1.5"))},                    // 4 leaked to core
                          {"a-lan", from_a(to("8.8.8.8"))},                        // 5 no route
                          {"a-lan", from_a(to("172.32.5.5"))},                     // 6 blackhole
                          {"a-lan", from_a(to("10.99.1.1"))},                      // 7 leaks a -> b -> a ...
                          {"a-lan", from_a(to("10.1.0.10", 1))},                   // 8 TTL 1
                          {"a-lan", from_a(to("10.1.0.10", 64, 1200))},            // 9 over a-svc's MTU 1000
                          {"a-lan", from_a(to("10.1.0.10", 64, 1200, 0x4000))}});  // 10 the same with DF
  auto expected = pkts;

  auto out = ip_lookup_stage(h, pkts);

  REQUIRE(out.fwd.size() == 4);
  REQUIRE(out.local.size() == 2);
  // In burst order (ip_lookup walks the compact tenants' packets up to the first DIR24_8 one, and
  // the rest after), the leaked one a round later.
  CHECK(out.fwd == std::vector<rte_mbuf*>{expected[0], expected[1], expected[9], expected[4]});
  CHECK(has(out.local, expected[2]));
  CHECK(has(out.local, expected[3]));
  CHECK(h.drops(Drop::no_route) == 1);
  CHECK(h.drops(Drop::blackhole) == 1);
  REQUIRE(out.looping.size() == 1);  // still leaking after max_leak_hops rounds
  CHECK(out.looping[0] == expected[7]);
  CHECK(h.drops(Drop::ttl_expired) == 1);
  CHECK(h.drops(Drop::mtu_exceeded) == 1);
  CHECK(h.total_drops() == 4);
  // No route, TTL and DF each answered with an ICMP error out of a-lan.
  CHECK(h.sent(0).size() == 3);

  struct Routed {
    rte_mbuf* m;
    Bytes leaves;  // TTL down by one, header checksum redone
    const char* tenant;
    const char* out;
    const char* neighbour;
  };
  for (auto& [m, leaves, tenant, out_interface, neighbour] :
       {Routed{expected[0], from_a(to("10.1.0.10", 63)), "a", "a-svc", "10.1.0.10"},
        Routed{expected[1], from_b(to("10.1.0.10", 63)), "b", "b-svc", "10.1.0.10"},
        Routed{expected[4], from_a(to("192.168.1.5", 63)), "core", "u-lan", "100.64.0.9"},
        Routed{expected[9], from_a(to("10.1.0.10", 63, 1200)), "a", "a-svc", "10.1.0.10"}}) {
    INFO(out_interface);
    Bytes seen = bytes_of(m);
    CHECK(seen == leaves);
    CHECK(ip_checksum_ok(seen.data() + 18));
    CHECK(meta(m).tenant == h.tenant(tenant));
    CHECK(meta(m).iface_out == h.interface(out_interface));
    CHECK(meta(m).neighbour == *parse_ipv4(neighbour));
    CHECK(meta(m).l2_len == 18);
  }
  CHECK(meta(expected[0]).flags == 0);
  CHECK(meta(expected[9]).flags == meta_fragment);  // ip_output will fragment it
  for (rte_mbuf* m : out.local) {
    CHECK(bytes_of(m)[18 + 8] == 64);  // for us: TTL untouched
    CHECK(meta(m).tenant == (m == expected[2] ? h.tenant("a") : h.tenant("b")));
  }
  free_all(out.fwd);
  free_all(out.local);
  free_all(out.looping);
}

}  // namespace

TEST_CASE("ip_lookup stage: two tenants with one plan, a leak, local addresses and drops") {
  lookup_two_tenants(two_tenants);
}

TEST_CASE(
    "ip_lookup stage: the same with b and the core in DIR24_8 FIBs, a compact one for a (one burst, both kinds)") {
  std::string mixed = two_tenants;
  for (const char* t : {"b", "core"}) {
    std::string from = std::string("{\"name\": \"") + t + "\"}";
    auto at = mixed.find(from);
    REQUIRE(at != std::string::npos);
    mixed.replace(at, from.size(), std::string("{\"name\": \"") + t + "\", \"fib\": \"FIB_DIR24_8\"}");
  }
  lookup_two_tenants(mixed);
}

namespace {

// One end of tunnel t1 between 198.51.100.1 and .2, over tenant carrier, for tenant hosp;
// the inbound SA's replay_window as `window` says ("" leaves it unset: the default).
std::string tunnel_end(const std::string& local, const std::string& remote, uint32_t in_spi, uint32_t out_spi,
                       const std::string& crypto, const std::string& window = R"("replay_window": 64, )") {
  return R"({
  "schema_version": 1,
  "ports": [{"name": "p0", "device": "net_null0"}, {"name": "p1", "device": "net_null1"}],
  "tenants": [{"name": "carrier"}, {"name": "hosp"}],
  "interfaces": [
    {"name": "c0", "tenant": "carrier", "port": "p0", "addresses": [")" +
         local + R"(/24"], "mac": "02:00:00:00:00:01"},
    {"name": "h0", "tenant": "hosp", "port": "p1", "addresses": ["10.9.9.1/24"], "mac": "02:00:00:00:01:01"}
  ],
  "tunnels": [{"name": "t1", "tenant": "hosp", "underlay_tenant": "carrier", "local_address": ")" +
         local + R"(", "remote_address": ")" + remote + R"("}],
  "sas": [{"spi": )" +
         std::to_string(in_spi) + R"(, "tunnel": "t1", "inbound": true, )" + window + crypto + R"(},
          {"spi": )" +
         std::to_string(out_spi) + R"(, "tunnel": "t1", "inbound": false, )" + crypto + R"(}]
})";
}

}  // namespace

TEST_CASE(
    "esp_output then esp_input stages: a burst into a tunnel and back out at its peer, less a forgery and a replay") {
  auto crypto =
      GENERATE(as<std::string>{},
               R"("cipher": "AES_CBC_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODw==", "integrity": "HMAC_SHA256_128", )"
               R"("integrity_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")",
               R"("cipher": "AES_GCM_128", "cipher_key": "EZ4XvSP957YoWC803fgbkd4OW34=")");
  INFO(crypto);
  // Inner packets of several sizes (so several paddings), as routed to the tunnel: L2 on.
  std::vector<Bytes> inner;
  for (size_t size : {0, 1, 13, 14, 100, 1000})
    inner.push_back(ipv4("10.0.1.10", "10.0.0.5", 17, udp(uint16_t(1000 + size), 9, size), 63));
  std::vector<Bytes> wire;  // the outer packets, no L2

  {
    Harness near(tunnel_end("198.51.100.1", "198.51.100.2", 4097, 8193, crypto));
    std::vector<std::pair<std::string, Bytes>> frames;
    for (const auto& ip : inner) frames.push_back({"h0", ether("02:00:00:00:01:01", host_mac, 0x0800) + ip});
    auto pkts = arrived(near, frames);
    for (rte_mbuf* m : pkts) meta(m).iface_out = near.interface("t1");
    const SaState& sa = *near.tables->sas[near.tables->interfaces[near.interface("t1")].outbound_sa];

    auto outer = esp_output_stage(near, pkts);

    REQUIRE(outer.size() == inner.size());
    CHECK(near.total_drops() == 0);
    for (size_t i = 0; i < outer.size(); i++) {
      INFO("packet " << i);
      Bytes b = bytes_of(outer[i]);
      size_t padded = RTE_ALIGN_CEIL(inner[i].size() + 2, sa.block);
      REQUIRE(b.size() == 20 + 8 + sa.iv_len + padded + sa.icv_len);
      CHECK(b[0] == 0x45);
      CHECK(b[9] == IPPROTO_ESP);
      CHECK(size_t(b[2] << 8 | b[3]) == b.size());
      CHECK(ip_checksum_ok(b.data()));
      CHECK(be32(&b[12]) == *parse_ipv4("198.51.100.1"));
      CHECK(be32(&b[16]) == *parse_ipv4("198.51.100.2"));
      CHECK(be32(&b[20]) == 8193);   // the outbound SA's SPI
      CHECK(be32(&b[24]) == i + 1);  // sequence numbers from 1, in burst order
      CHECK(std::search(b.begin(), b.end(), inner[i].begin() + 20, inner[i].end()) == b.end());  // not in clear
      CHECK(meta(outer[i]).tenant == near.tenant("carrier"));
      CHECK(meta(outer[i]).flags == meta_local);
      CHECK(meta(outer[i]).l2_len == 0);
      wire.push_back(b);
    }
    CHECK(sa.seq == inner.size());
    free_all(outer);
  }

  Harness far(tunnel_end("198.51.100.2", "198.51.100.1", 8193, 4097, crypto));
  std::vector<std::pair<std::string, Bytes>> frames;
  for (const auto& ip : wire) frames.push_back({"c0", ether("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800) + ip});
  const size_t tampered = 2;
  frames[tampered].second[14 + 20 + 8 + 16 + 4] ^= 1;  // a ciphertext byte (either IV length)
  frames.push_back(frames[0]);                         // and the first again: a replay in the same burst
  auto pkts = arrived(far, frames);
  auto expected = pkts;

  auto out = esp_input_stage(far, pkts);

  REQUIRE(out.size() == inner.size() - 1);
  CHECK(far.drops(Drop::esp_bad_icv) == 1);
  CHECK(far.drops(Drop::esp_replayed) == 1);
  CHECK(far.total_drops() == 2);
  for (size_t i = 0, k = 0; i < inner.size(); i++) {
    if (i == tampered) continue;
    INFO("packet " << i);
    CHECK(out[k] == expected[i]);
    CHECK(bytes_of(out[k]) == inner[i]);  // no L2, byte for byte what went in
    CHECK(meta(out[k]).iface_in == far.interface("t1"));
    CHECK(meta(out[k]).tenant == far.tenant("hosp"));
    CHECK(meta(out[k]).l2_len == 0);
    CHECK(meta(out[k]).flags == 0);
    k++;
  }
  uint32_t spi = 8193;
  void* slot = nullptr;
  REQUIRE(rte_hash_lookup_data(far.tables->sa_index, &spi, &slot) >= 0);
  const SaState& sa = *far.tables->sas[reinterpret_cast<uintptr_t>(slot)];
  CHECK(sa.packets == inner.size() - 1);
  CHECK(sa.drops_of(Drop::esp_bad_icv) == 1);
  CHECK(sa.drops_of(Drop::esp_replayed) == 1);
  free_all(out);
}

TEST_CASE("anti-replay is on unless an SA says replay_window 0: a replayed packet is dropped by default") {
  const std::string crypto = R"("cipher": "AES_GCM_128", "cipher_key": "EZ4XvSP957YoWC803fgbkd4OW34=")";
  std::vector<Bytes> wire;
  {
    Harness near(tunnel_end("198.51.100.1", "198.51.100.2", 4097, 8193, crypto));
    std::vector<std::pair<std::string, Bytes>> frames;
    for (uint16_t port : {1, 2, 3})
      frames.push_back({"h0", ether("02:00:00:00:01:01", host_mac, 0x0800) +
                                  ipv4("10.0.1.10", "10.0.0.5", 17, udp(port, 9, 20), 63)});
    auto pkts = arrived(near, frames);
    for (rte_mbuf* m : pkts) meta(m).iface_out = near.interface("t1");
    auto outer = esp_output_stage(near, pkts);
    REQUIRE(outer.size() == 3);
    for (rte_mbuf* m : outer) wire.push_back(bytes_of(m));
    free_all(outer);
  }
  // Each packet, then the first again.
  auto receive = [&](Harness& far) {
    std::vector<std::pair<std::string, Bytes>> frames;
    for (const auto& ip : wire) frames.push_back({"c0", ether("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800) + ip});
    frames.push_back(frames[0]);
    auto out = esp_input_stage(far, arrived(far, frames));
    size_t n = out.size();
    free_all(out);
    return n;
  };
  SECTION("no replay_window: the default window") {
    Harness far(tunnel_end("198.51.100.2", "198.51.100.1", 8193, 4097, crypto, ""));
    CHECK(receive(far) == 3);
    CHECK(far.drops(Drop::esp_replayed) == 1);
  }
  SECTION("replay_window 0: off, as chosen") {
    Harness far(tunnel_end("198.51.100.2", "198.51.100.1", 8193, 4097, crypto, R"("replay_window": 0, )"));
    CHECK(receive(far) == 4);
    CHECK(far.total_drops() == 0);
  }
}

namespace {

// Tenants behind a static mapping each (hosp-a, archive), one behind a NAPT pool (clinic), the
// core ix between them; hosp-a may reach the archive on TCP 104 only, the clinic on anything.
// Small FIBs: four of the default size do not fit in the unit tests' 512 MB.
const std::string nat_config = R"({
  "schema_version": 1,
  "ports": [{"name": "p0", "device": "net_null0"}, {"name": "p1", "device": "net_null1"}],
  "tenants": [{"name": "hosp-a", "max_routes": 64}, {"name": "clinic", "max_routes": 64}, {"name": "archive", "max_routes": 64},
              {"name": "ix", "core": true, "max_routes": 64}],
  "interfaces": [
    {"name": "a0", "tenant": "hosp-a", "port": "p0", "vlan": 10, "addresses": ["10.0.0.1/24"], "mac": "02:00:00:00:00:0a"},
    {"name": "c0", "tenant": "clinic", "port": "p0", "vlan": 30, "addresses": ["10.0.0.1/24"], "mac": "02:00:00:00:00:0c"},
    {"name": "r0", "tenant": "archive", "port": "p1", "vlan": 200, "addresses": ["192.168.1.1/24"], "mac": "02:00:00:00:01:c8"}
  ],
  "static_mappings": [
    {"tenant": "hosp-a", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"},
    {"tenant": "archive", "tenant_prefix": "192.168.1.0/24", "core_prefix": "100.100.2.0/24"}
  ],
  "napt_pools": [{"tenant": "clinic", "addresses": ["100.64.9.1"], "port_low": 20000, "port_high": 65535}],
  "policy_rules": [
    {"name": "a-dicom", "priority": 10, "from_tenant": "hosp-a", "to_tenant": "archive", "protocol": 6, "port_low": 104, "port_high": 104, "permit": true},
    {"name": "clinic-archive", "priority": 20, "from_tenant": "clinic", "to_tenant": "archive", "permit": true}
  ],
  "settings": {"max_sessions": 1024}
})";

// A frame on one of the VLANs above (the core sees it with its L2 still on).
Bytes on_vlan(uint16_t vid, const Bytes& ip) {
  return ether("02:00:00:00:00:01", host_mac, 0x8100) + vlan(0x0800, vid) + with_l4_checksum(ip);
}

// Packets as ip_lookup gives them to crossing: leaked into the core from their tenant.
std::vector<rte_mbuf*> in_core(Harness& h, const std::vector<std::pair<std::string, Bytes>>& frames) {
  auto pkts = arrived(h, frames);
  for (rte_mbuf* m : pkts) {
    meta(m).origin = uint16_t(meta(m).tenant + 1);
    meta(m).tenant = h.tenant("ix");
  }
  return pkts;
}

uint16_t be16(const Bytes& b, size_t at) { return uint16_t(b[at] << 8 | b[at + 1]); }

}  // namespace

TEST_CASE("nat stage: static mapping and NAPT out of tenants, replies back, a denied flow dropped") {
  Harness h(nat_config);
  const uint16_t a = h.tenant("hosp-a"), clinic = h.tenant("clinic"), archive = h.tenant("archive");
  constexpr size_t l2 = 18;
  const NatWorker& nw = *h.tables->nat[0];

  // Out: hosp-a by its static mapping, the clinic by its pool, hosp-a to a port no rule permits.
  const Bytes syn = tcp(40000, 104, 0x02, 10);
  auto pkts = in_core(h, {{"a0", on_vlan(10, ipv4("10.0.0.5", "100.100.2.10", 6, syn))},
                          {"c0", on_vlan(30, ipv4("10.0.0.5", "100.100.2.10", 17, udp(5000, 9, 20)))},
                          {"a0", on_vlan(10, ipv4("10.0.0.6", "100.100.2.10", 6, tcp(40000, 80, 0x02)))}});
  auto out = nat_stage(h, pkts, {a, clinic, a}, {archive, archive, archive});

  REQUIRE(out[0]);
  REQUIRE(out[1]);
  CHECK(!out[2]);
  CHECK(h.drops(Drop::policy_denied) == 1);
  CHECK(h.worker.counters->nat[a].policy_denied == 1);
  CHECK(h.total_drops() == 1);
  // Source to the mapped address, destination to the archive's inside address; nothing else
  // changes but the checksums, which are right.
  Bytes seen = bytes_of(out[0]);
  CHECK(seen == on_vlan(10, ipv4("100.64.1.5", "192.168.1.10", 6, syn)));
  CHECK(checksums_ok(seen, l2));
  seen = bytes_of(out[1]);
  uint16_t pool_port = be16(seen, l2 + 20);
  CHECK(pool_port >= 20000);
  CHECK(seen == on_vlan(30, ipv4("100.64.9.1", "192.168.1.10", 17, udp(pool_port, 9, 20))));
  CHECK(checksums_ok(seen, l2));
  for (rte_mbuf* m : {out[0], out[1]}) CHECK((meta(m).flags & meta_translated) != 0);
  CHECK(h.worker.counters->nat[a].sessions_created == 1);
  CHECK(h.worker.counters->nat[clinic].sessions_created == 1);
  CHECK(h.worker.counters->nat[clinic].mappings_created == 1);
  CHECK(nw.capacity - nw.n_free_sessions == 2);
  free_all(out);

  // Back: the replies find their sessions and are rewritten to the original flows' reverse;
  // a packet to a pool port nobody holds is not let in.
  const Bytes syn_ack = tcp(104, 40000, 0x12, 0);
  pkts = in_core(h, {{"r0", on_vlan(200, ipv4("192.168.1.10", "100.64.1.5", 6, syn_ack))},
                     {"r0", on_vlan(200, ipv4("192.168.1.10", "100.64.9.1", 17, udp(9, pool_port, 4)))},
                     {"r0", on_vlan(200, ipv4("192.168.1.10", "100.64.9.1", 17, udp(9, uint16_t(pool_port + 1), 4)))}});
  out = nat_stage(h, pkts, {archive, archive, archive}, {a, clinic, clinic});

  REQUIRE(out[0]);
  REQUIRE(out[1]);
  CHECK(!out[2]);
  CHECK(h.drops(Drop::nat_no_session) == 1);
  seen = bytes_of(out[0]);
  CHECK(seen == on_vlan(200, ipv4("100.100.2.10", "10.0.0.5", 6, syn_ack)));
  CHECK(checksums_ok(seen, l2));
  seen = bytes_of(out[1]);
  CHECK(seen == on_vlan(200, ipv4("100.100.2.10", "10.0.0.5", 17, udp(9, 5000, 4))));
  CHECK(checksums_ok(seen, l2));
  CHECK(h.worker.counters->nat[archive].sessions_created == 0);  // replies make none
  CHECK(nw.capacity - nw.n_free_sessions == 2);
  free_all(out);
}

namespace {

// hosp (VLAN 10, 10.0.0.0/24 mapped to 100.64.1.0/24) reaches the archive's 192.168.0.0/16 as
// 100.100.0.0/16 through the core ix; the archive routes 192.168.2.0/24 by gateway .3, the rest
// of 192.168.0.0/17 by gateway .2 (two MACs, so a frame tells which route it took).
const std::string crossing_config = R"({
  "schema_version": 1,
  "ports": [{"name": "p0", "device": "net_null0"}, {"name": "p1", "device": "net_null1"}],
  "tenants": [{"name": "hosp", "max_routes": 64}, {"name": "archive", "max_routes": 64},
              {"name": "ix", "core": true, "max_routes": 64}],
  "interfaces": [
    {"name": "h0", "tenant": "hosp", "port": "p0", "vlan": 10, "addresses": ["10.0.0.1/24"], "mac": "02:00:00:00:00:0a"},
    {"name": "r0", "tenant": "archive", "port": "p1", "vlan": 200, "addresses": ["192.168.255.1/24"], "mac": "02:00:00:00:01:c8"}
  ],
  "routes": [
    {"tenant": "hosp", "prefix": "100.100.0.0/16", "next_tenant": "ix"},
    {"tenant": "ix", "prefix": "100.100.0.0/16", "next_tenant": "archive"},
    {"tenant": "ix", "prefix": "100.64.0.0/10", "next_tenant": "hosp"},
    {"tenant": "archive", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
    {"tenant": "archive", "prefix": "192.168.0.0/17", "via": {"interface": "r0", "address": "192.168.255.2"}},
    {"tenant": "archive", "prefix": "192.168.2.0/24", "via": {"interface": "r0", "address": "192.168.255.3"}}
  ],
  "neighbours": [
    {"interface": "r0", "address": "192.168.255.2", "mac": "02:00:00:00:aa:02"},
    {"interface": "r0", "address": "192.168.255.3", "mac": "02:00:00:00:aa:03"}
  ],
  "static_mappings": [
    {"tenant": "hosp", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"},
    {"tenant": "archive", "tenant_prefix": "192.168.0.0/16", "core_prefix": "100.100.0.0/16"}
  ],
  "policy_rules": [{"name": "hosp-archive", "priority": 10, "from_tenant": "hosp", "to_tenant": "archive", "permit": true}],
  "settings": {"max_sessions": 1024}
})";

// One UDP packet of hosp's host 10.0.0.5 to `core_dst` across the core: the gateway MAC it left
// the archive's interface with, or "" if none left.
std::string cross_once(Harness& h, const std::string& core_dst) {
  h.receive(0, from_a(with_l4_checksum(ipv4("10.0.0.5", core_dst, 17, udp(5000, 9, 20)))));
  auto out = h.sent(1);
  if (out.size() != 1) return "";
  char mac[18];
  snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", out[0][0], out[0][1], out[0][2], out[0][3], out[0][4],
           out[0][5]);
  return mac;
}

}  // namespace

// Guards for any shortcut of the route after crossing (a kept route must be proven by the
// tables' generation and the session, docs/nat.md "What an established packet costs").
TEST_CASE("crossing: a route committed under a live session takes effect on its next packet") {
  Harness h(crossing_config);
  const uint16_t hosp = h.tenant("hosp");
  // The first packet makes the session; the archive routes it by .2.
  const NatWorker& nw = *h.tables->nat[0];
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  // The session learned its route: the second packet took it, without the lookups.
  REQUIRE(nw.sessions[0].live);
  CHECK(nw.sessions[0].checked == h.tables->generation);
  CHECK(nw.sessions[0].route[0] != 0);
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  CHECK(h.worker.counters->nat[hosp].sessions_created == 1);
  CHECK(h.worker.counters->nat[hosp].translated == 2);

  // A more specific route in the archive: a new generation, the same session, the new route.
  REQUIRE(h.apply(ops(R"([{"op": "CREATE", "object": {"route": {"tenant": "archive", "prefix": "192.168.3.0/24",
                           "via": {"interface": "r0", "address": "192.168.255.3"}}}}])"))
              .code == Code::ok);
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:03");
  CHECK(h.worker.counters->nat[hosp].sessions_created == 1);

  // A blackhole for the host: dropped as the lookup says, and counted so.
  REQUIRE(h.apply(ops(R"([{"op": "CREATE", "object": {"route": {"tenant": "archive", "prefix": "192.168.3.10/32",
                           "blackhole": {}}}}])"))
              .code == Code::ok);
  CHECK(cross_once(h, "100.100.3.10") == "");
  CHECK(h.drops(Drop::blackhole) == 1);
  CHECK(h.total_drops() == 1);
  CHECK(h.worker.counters->nat[hosp].sessions_created == 1);
}

// nat_established ahead of the lookup skips the origin tenant's own lookup too: a route
// committed there must take effect on the session's next packet (docs/nat.md).
TEST_CASE("crossing: the origin tenant's route committed under a kept route takes effect") {
  Harness h(crossing_config);
  const uint16_t hosp = h.tenant("hosp");
  const NatWorker& nw = *h.tables->nat[0];
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  REQUIRE(nw.sessions[0].route[0] != 0);
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");  // ahead of the lookup
  CHECK(h.worker.counters->nat[hosp].translated == 3);

  // hosp blackholes the host: the packet never enters the core.
  REQUIRE(h.apply(ops(R"([{"op": "CREATE", "object": {"route": {"tenant": "hosp", "prefix": "100.100.3.10/32",
                           "blackhole": {}}}}])"))
              .code == Code::ok);
  CHECK(cross_once(h, "100.100.3.10") == "");
  CHECK(h.drops(Drop::blackhole) == 1);
  CHECK(h.worker.counters->nat[hosp].translated == 3);
  REQUIRE(h.apply(ops(R"([{"op": "DELETE", "object": {"route": {"tenant": "hosp", "prefix": "100.100.3.10/32"}}}])"))
              .code == Code::ok);
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  REQUIRE(nw.sessions[0].route[0] != 0);

  // hosp routes the host out of its own interface: it leaves there, untranslated.
  REQUIRE(h.apply(ops(R"([{"op": "CREATE", "object": {"route": {"tenant": "hosp", "prefix": "100.100.3.0/24",
                           "via": {"interface": "h0", "address": "10.0.0.9"}}}}])"))
              .code == Code::ok);
  h.receive(0, from_a(with_l4_checksum(ipv4("10.0.0.5", "100.100.3.10", 17, udp(5000, 9, 20)))));
  CHECK(h.sent(1).empty());
  CHECK(h.worker.counters->nat[hosp].translated == 5);
  CHECK(h.total_drops() == 1);  // waits for ARP on h0
}

TEST_CASE("crossing: the core's route, the policy and ClearSessions committed under a kept route take effect") {
  Harness h(crossing_config);
  const uint16_t hosp = h.tenant("hosp");
  const NatWorker& nw = *h.tables->nat[0];
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  REQUIRE(nw.sessions[0].route[0] != 0);

  // ClearSessions: a new generation; the session ends on its next packet, which makes another.
  uint32_t before = h.tables->generation;
  REQUIRE(h.controller.clear_sessions("hosp"));
  h.tables = h.worker.tables = h.controller.published().load();
  CHECK(h.tables->generation > before);
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  CHECK(h.worker.counters->nat[hosp].sessions_created == 2);
  CHECK(h.worker.counters->nat[hosp].sessions_ended == 1);
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  REQUIRE(nw.sessions[0].route[0] != 0);

  // The core sends the archive's 100.100.3.0/24 nowhere: the kept route is not taken.
  REQUIRE(h.apply(ops(R"([{"op": "CREATE", "object": {"route": {"tenant": "ix", "prefix": "100.100.3.0/24",
                           "blackhole": {}}}}])"))
              .code == Code::ok);
  CHECK(cross_once(h, "100.100.3.10") == "");
  CHECK(h.drops(Drop::blackhole) == 1);
  REQUIRE(
      h.apply(ops(R"([{"op": "DELETE", "object": {"route": {"tenant": "ix", "prefix": "100.100.3.0/24"}}}])")).code ==
      Code::ok);
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  REQUIRE(nw.sessions[0].route[0] != 0);

  // The rule taken away: the next packet is asked the policy, denied, and the session ends.
  REQUIRE(h.apply(ops(R"([{"op": "DELETE", "object": {"policy_rule": {"name": "hosp-archive"}}}])")).code == Code::ok);
  CHECK(cross_once(h, "100.100.3.10") == "");
  CHECK(h.drops(Drop::policy_denied) == 1);
  CHECK(h.worker.counters->nat[hosp].policy_denied == 1);
  CHECK(!nw.sessions[0].live);
  CHECK(h.total_drops() == 2);
}

TEST_CASE("crossing: a session slot reused by another flow routes that flow by its own route") {
  // Same generation throughout: only the session tells the flows apart.
  Harness h(crossing_config);
  const NatWorker& nw = *h.tables->nat[0];
  CHECK(cross_once(h, "100.100.2.10") == "02:00:00:00:aa:03");
  REQUIRE(nw.sessions[0].live);
  // The session times out (the harness's timeouts are 0) and the sweep ends it.
  h.worker.now = 1;
  nat_sweep(h.worker);
  REQUIRE(!nw.sessions[0].live);
  // Another flow takes the same slot; its route is its own (.2), not the slot's old one (.3).
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  REQUIRE(nw.sessions[0].live);
  CHECK(nw.sessions[0].key[0].dst == 0x6464030a);
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  CHECK(h.total_drops() == 0);
}

// nat_established sends a packet out by its kept route itself, its TTL's decrement folded into
// the translation's update of the header checksum: the header must be the one a fresh
// computation gives, for any TTL and any checksum (its wraps at 0x0000 and 0xffff included).
TEST_CASE("crossing: a packet sent out by its kept route has the TTL and checksums of a fresh header") {
  Harness h(crossing_config);
  const NatWorker& nw = *h.tables->nat[0];
  constexpr size_t l2 = 18;  // r0: VLAN 200
  // One flow with its route kept, and the packets of it: identification and TTL vary.
  auto packet = [](const std::string& src, const std::string& dst, uint8_t ttl, uint16_t id, size_t len) {
    Bytes ip = ipv4(src, dst, 17, udp(5000, 9, len), ttl);
    ip[4] = uint8_t(id >> 8);
    ip[5] = uint8_t(id);
    ip[10] = ip[11] = 0;
    uint16_t c = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(ip.data()));  // afresh
    memcpy(&ip[10], &c, 2);
    return with_l4_checksum(ip);
  };
  auto checksum_of = [](const Bytes& ip) { return uint16_t(ip[10] << 8 | ip[11]); };
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  REQUIRE(nw.sessions[0].route[0] != 0);

  // Identifications where the checksum in or out is at or next to a wrap, then random ones.
  std::vector<std::pair<uint16_t, uint8_t>> cases;  // id, ttl
  for (uint8_t ttl : {2, 3, 64, 255})
    for (uint32_t id = 0; id < 0x10000; id++) {
      uint16_t in = checksum_of(packet("10.0.0.5", "100.100.3.10", ttl, uint16_t(id), 20));
      uint16_t out = checksum_of(packet("100.64.1.5", "192.168.3.10", uint8_t(ttl - 1), uint16_t(id), 20));
      if (in <= 1 || in >= 0xfffe || out <= 1 || out >= 0xfffe) cases.emplace_back(uint16_t(id), ttl);
    }
  REQUIRE(cases.size() >= 16);
  std::mt19937 random(19);
  for (int i = 0; i < 1000; i++) cases.emplace_back(uint16_t(random()), uint8_t(2 + random() % 254));
  size_t i = 0;
  for (auto [id, ttl] : cases) {
    size_t len = 20 + i++ % 64;
    h.receive(0, from_a(packet("10.0.0.5", "100.100.3.10", ttl, id, len)));
    auto out = h.sent(1);
    REQUIRE(out.size() == 1);
    Bytes seen(out[0].begin() + long(l2), out[0].end());
    CHECK(seen == packet("100.64.1.5", "192.168.3.10", uint8_t(ttl - 1), id, len));
  }
  // TTL 1 is not sent on: answered (time exceeded) before crossing.
  h.receive(0, from_a(packet("10.0.0.5", "100.100.3.10", 1, 7, 20)));
  CHECK(h.sent(1).empty());
  CHECK(h.drops(Drop::ttl_expired) == 1);
  CHECK(h.total_drops() == 1);
  CHECK(h.worker.counters->nat[h.tenant("hosp")].sessions_created == 1);
}

TEST_CASE("crossing: a kept flow's packet its own parse cannot take goes the long way") {
  // nat_established builds a packet's key from its headers itself (established_words): a packet
  // of a kept flow whose UDP header is cut after the ports must be dropped as nat_input's parse
  // drops it, not translated by the key its first bytes make.
  Harness h(crossing_config);
  const NatWorker& nw = *h.tables->nat[0];
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  REQUIRE(nw.sessions[0].route[0] != 0);
  Bytes cut = udp(5000, 9, 0);
  cut.resize(4);  // the flow's ports, and nothing of UDP's length and checksum
  h.receive(0, from_a(ipv4("10.0.0.5", "100.100.3.10", 17, cut)));
  CHECK(h.sent(1).empty());
  CHECK(h.drops(Drop::nat_truncated) == 1);
  // The session is kept still: the flow's next whole packet crosses by its route.
  CHECK(cross_once(h, "100.100.3.10") == "02:00:00:00:aa:02");
  CHECK(h.total_drops() == 1);
}

TEST_CASE("nat stage: one burst's new NAPT flows see what the burst made before them") {
  // The burst's bulk lookup and its warm lookup of new flows' keys run before any session is
  // made: a flow whose mapping, session or reply an earlier packet of the burst made must still
  // find it, and a port guessed wrong must cost only a lookup.
  Harness h(nat_config);
  const uint16_t clinic = h.tenant("clinic"), archive = h.tenant("archive");
  constexpr size_t l2 = 18;
  const NatWorker& nw = *h.tables->nat[0];
  const Bytes out_udp = udp(5000, 9, 20);
  auto pkts = in_core(h, {{"c0", on_vlan(30, ipv4("10.0.0.5", "100.100.2.10", 17, out_udp))},
                          {"c0", on_vlan(30, ipv4("10.0.0.5", "100.100.2.11", 17, out_udp))},  // same mapping
                          {"c0", on_vlan(30, ipv4("10.0.0.5", "100.100.2.10", 17, out_udp))},  // same flow
                          {"r0", on_vlan(200, ipv4("192.168.1.10", "100.64.9.1", 17, udp(9, 20000, 4)))},  // reply
                          {"c0", on_vlan(30, ipv4("10.0.0.6", "100.100.2.10", 17, out_udp))}});  // new mapping
  auto out =
      nat_stage(h, pkts, {clinic, clinic, clinic, archive, clinic}, {archive, archive, archive, clinic, archive});
  for (rte_mbuf* m : out) REQUIRE(m);
  CHECK(h.total_drops() == 0);
  CHECK(h.worker.counters->nat[clinic].sessions_created == 3);
  CHECK(h.worker.counters->nat[clinic].mappings_created == 2);
  CHECK(nw.capacity - nw.n_free_sessions == 3);
  CHECK(nw.capacity - nw.n_free_mappings == 2);
  // The first flow took the worker's first port; the second and third left on it too.
  for (int i : {0, 2})
    CHECK(bytes_of(out[size_t(i)]) == on_vlan(30, ipv4("100.64.9.1", "192.168.1.10", 17, udp(20000, 9, 20))));
  CHECK(bytes_of(out[1]) == on_vlan(30, ipv4("100.64.9.1", "192.168.1.11", 17, udp(20000, 9, 20))));
  Bytes seen = bytes_of(out[3]);
  CHECK(seen == on_vlan(200, ipv4("100.100.2.10", "10.0.0.5", 17, udp(9, 5000, 4))));
  CHECK(checksums_ok(seen, l2));
  seen = bytes_of(out[4]);
  uint16_t other = be16(seen, l2 + 20);
  CHECK(other != 20000);
  CHECK(other >= 20000);
  CHECK(seen == on_vlan(30, ipv4("100.64.9.1", "192.168.1.10", 17, udp(other, 9, 20))));
  free_all(out);
}

TEST_CASE("nat stage: a burst's reserved NAPT ports wrap onto ports the burst gave: no port twice") {
  // Three ports: the burst's fourth new flow is reserved the first flow's port again (the
  // cursor wraps), free when the burst began but given since: it must search, and find none.
  std::string config = nat_config;
  config.replace(config.find("\"port_high\": 65535"), 18, "\"port_high\": 20002");
  Harness h(config);
  const uint16_t clinic = h.tenant("clinic"), archive = h.tenant("archive");
  constexpr size_t l2 = 18;
  std::vector<std::pair<std::string, Bytes>> frames;
  for (uint16_t i = 0; i < 4; i++)
    frames.push_back({"c0", on_vlan(30, ipv4("10.0.0.5", "100.100.2.10", 17, udp(uint16_t(5000 + i), 9, 20)))});
  auto out = nat_stage(h, in_core(h, frames), std::vector<uint16_t>(4, clinic), std::vector<uint16_t>(4, archive));
  std::set<uint16_t> ports;
  for (int i = 0; i < 3; i++) {
    REQUIRE(out[size_t(i)]);
    ports.insert(be16(bytes_of(out[size_t(i)]), l2 + 20));
  }
  CHECK(!out[3]);
  CHECK(ports == std::set<uint16_t>{20000, 20001, 20002});
  CHECK(h.worker.counters->nat[clinic].mappings_created == 3);
  CHECK(h.worker.counters->nat[clinic].pool_exhausted == 1);
  CHECK(h.drops(Drop::nat_pool_exhausted) == 1);
  free_all(out);
}

TEST_CASE("nat stage: a tenant with no session_limit holds at most a quarter of the worker's sessions") {
  Harness h(nat_config);  // max_sessions 1024, one worker: 256 a tenant
  const uint16_t a = h.tenant("hosp-a"), clinic = h.tenant("clinic"), archive = h.tenant("archive");
  const NatWorker& nw = *h.tables->nat[0];
  REQUIRE(default_session_share(nw.capacity) == 256);
  for (int first = 0; first < 300; first += 30) {
    std::vector<std::pair<std::string, Bytes>> frames;
    for (int i = first; i < first + 30; i++)
      frames.push_back({"a0", on_vlan(10, ipv4("10.0.0.5", "100.100.2.10", 6, tcp(uint16_t(10000 + i), 104, 0x02)))});
    free_all(nat_stage(h, in_core(h, frames), std::vector<uint16_t>(30, a), std::vector<uint16_t>(30, archive)));
  }
  CHECK(h.worker.counters->nat[a].sessions_created == 256);
  CHECK(h.worker.counters->nat[a].session_limit == 44);
  CHECK(h.drops(Drop::nat_session_limit) == 44);
  // The clinic's flow still gets a session.
  auto out = nat_stage(h, in_core(h, {{"c0", on_vlan(30, ipv4("10.0.0.5", "100.100.2.10", 17, udp(5000, 9, 20)))}}),
                       {clinic}, {archive});
  CHECK(out[0]);
  CHECK(h.worker.counters->nat[clinic].sessions_created == 1);
  CHECK(h.worker.counters->nat[clinic].session_limit == 0);
  free_all(out);
}

// A fragment crossing the core: UDP to the archive, datagram `id`, the first (MF, offset 0) or
// the last (offset 24 bytes) of two.
Bytes fragment_of(uint16_t id, bool first) {
  Bytes ip = first ? ipv4("10.0.0.5", "100.100.2.10", 17, udp(5000, 9, 16), 64, 0x2000)
                   : ipv4("10.0.0.5", "100.100.2.10", 17, Bytes(8, 0xcd), 64, 3);
  ip[4] = uint8_t(id >> 8);
  ip[5] = uint8_t(id);
  ip[10] = ip[11] = 0;
  uint32_t sum = 0;
  for (int i = 0; i < 20; i += 2) sum += uint32_t(ip[i] << 8 | ip[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  ip[10] = uint8_t(~sum >> 8);
  ip[11] = uint8_t(~sum);
  return ether("02:00:00:00:00:01", host_mac, 0x8100) + vlan(0x0800, 30) + ip;
}

TEST_CASE("nat stage: a tenant holds at most its share of the reassembly table, less when the pool is low") {
  Harness h(nat_config);
  const uint16_t a = h.tenant("hosp-a"), clinic = h.tenant("clinic"), archive = h.tenant("archive");
  const NatWorker& nw = *h.tables->nat[0];
  auto send = [&](uint16_t from, uint16_t first_id, uint16_t count, bool first) {
    for (uint16_t at = 0; at < count; at += 25) {
      uint16_t n = uint16_t(std::min<int>(25, count - at));
      std::vector<std::pair<std::string, Bytes>> frames;
      for (uint16_t i = 0; i < n; i++) frames.push_back({"c0", fragment_of(uint16_t(first_id + at + i), first)});
      free_all(nat_stage(h, in_core(h, frames), std::vector<uint16_t>(n, from), std::vector<uint16_t>(n, archive)));
    }
  };
  // hosp-a's first fragments of 1100 datagrams: it holds its share (a quarter of the table).
  send(a, 0, 1100, true);
  CHECK(nw.fragments_of[a] == fragment_tenant_share);
  CHECK(h.worker.counters->tenants[a].fragments_limited == 1100 - fragment_tenant_share);
  CHECK(h.drops(Drop::nat_fragment_share) == 1100 - fragment_tenant_share);
  // The clinic's fragments are still held, and a completed datagram gives its share back.
  send(clinic, 5000, 3, true);
  CHECK(nw.fragments_of[clinic] == 3);
  send(clinic, 5000, 1, false);
  CHECK(nw.fragments_of[clinic] == 2);
  CHECK(h.worker.counters->tenants[clinic].fragments_limited == 0);
  // The pool low: a tenant may hold only buffer_guard_share more.
  h.worker.pool_low = true;
  send(clinic, 6000, 30, true);
  CHECK(nw.fragments_of[clinic] == buffer_guard_share);
  CHECK(h.worker.counters->tenants[clinic].buffer_guarded == 30 + 2 - buffer_guard_share);
  CHECK(h.drops(Drop::buffer_guard) == 30 + 2 - buffer_guard_share);
  h.worker.pool_low = false;
}

TEST_CASE("nat stage: a static-only tenant's own session_limit replaces the default quarter") {
  // hosp-a has static mappings and no pool: its tenant's session_limit is its quota.
  std::string config = nat_config;
  config.replace(config.find(R"({"name": "hosp-a", "max_routes": 64})"), 36,
                 R"({"name": "hosp-a", "max_routes": 64, "session_limit": 40})");
  Harness h(config);
  const uint16_t a = h.tenant("hosp-a"), archive = h.tenant("archive");
  for (int first = 0; first < 50; first += 25) {
    std::vector<std::pair<std::string, Bytes>> frames;
    for (int i = first; i < first + 25; i++)
      frames.push_back({"a0", on_vlan(10, ipv4("10.0.0.5", "100.100.2.10", 6, tcp(uint16_t(10000 + i), 104, 0x02)))});
    free_all(nat_stage(h, in_core(h, frames), std::vector<uint16_t>(25, a), std::vector<uint16_t>(25, archive)));
  }
  CHECK(h.worker.counters->nat[a].sessions_created == 40);
  CHECK(h.worker.counters->nat[a].session_limit == 10);
  CHECK(h.drops(Drop::nat_session_limit) == 10);
}

namespace {

// A worker's HA sync rings (nat/sync.h), as medix-dp gives them with sync configured.
struct SyncRings {
  SyncWorker sync{};
  explicit SyncRings(Worker& w) {
    static int serial = 0;
    std::string n = std::to_string(serial++);
    sync.out =
        rte_ring_create_elem(("unit_sync_out" + n).c_str(), sizeof(SyncRecord), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    sync.in =
        rte_ring_create_elem(("unit_sync_in" + n).c_str(), sizeof(SyncRecord), 1024, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    w.sync = &sync;
  }
  ~SyncRings() {
    rte_ring_free(sync.out);
    rte_ring_free(sync.in);
  }
  std::vector<SyncRecord> taken() {
    std::vector<SyncRecord> out(1024);
    out.resize(rte_ring_sc_dequeue_burst_elem(sync.out, out.data(), sizeof(SyncRecord), 1024, nullptr));
    return out;
  }
};

// Two sessions made on an active (hosp-a's TCP, the clinic's UDP through NAPT to the archive):
// the records its worker handed to sync, its NAPT pool port and its tenant table (ha/tenants.h).
struct ActiveRecords {
  std::vector<SyncRecord> records, tenants;
  uint16_t pool_port = 0;
};
ActiveRecords two_sessions_on_active() {
  ActiveRecords r;
  Harness active(nat_config);
  SyncRings rings(active.worker);
  const uint16_t a = active.tenant("hosp-a"), clinic = active.tenant("clinic"), archive = active.tenant("archive");
  auto out = nat_stage(active,
                       in_core(active, {{"a0", on_vlan(10, ipv4("10.0.0.5", "100.100.2.10", 6, tcp(40000, 104, 0x02)))},
                                        {"c0", on_vlan(30, ipv4("10.0.0.5", "100.100.2.10", 17, udp(5000, 9, 20)))}}),
                       {a, clinic}, {archive, archive});
  REQUIRE(out[0]);
  REQUIRE(out[1]);
  r.pool_port = be16(bytes_of(out[1]), 18 + 20);
  free_all(out);
  r.records = rings.taken();
  r.tenants = ha::tenant_records(*active.tables, 1);
  active.worker.sync = nullptr;
  return r;
}

}  // namespace

TEST_CASE("HA sync: sessions made on the active install on the standby's worker, whose replies find them") {
  const auto [records, tenants, pool_port] = two_sessions_on_active();
  REQUIRE(records.size() == 2);  // one record a session made, nothing else
  CHECK(records[0].kind == uint8_t(SyncKind::session));
  CHECK(records[0].s.mapping_tenant == no_mapping_tenant);  // static: no NAPT mapping
  CHECK(records[1].s.mapping_tenant != no_mapping_tenant);
  CHECK(records[1].s.outside_port == pool_port);

  Harness standby(nat_config);
  SyncRings rings(standby.worker);
  std::atomic<bool> is_standby{true};
  standby.worker.ha_standby = &is_standby;
  const uint16_t a = standby.tenant("hosp-a"), clinic = standby.tenant("clinic"), archive = standby.tenant("archive");
  const NatWorker& nw = *standby.tables->nat[0];
  // A record the standby cannot take (an unknown tenant) is counted, not installed.
  SyncRecord bad = records[0];
  bad.s.key[0].tenant = 999;
  for (SyncRecord r : {records[0], records[1], bad})
    REQUIRE(rte_ring_sp_enqueue_elem(rings.sync.in, &r, sizeof r) == 0);
  sync_install(standby.worker);
  CHECK(rings.sync.installed == 2);
  CHECK(rings.sync.install_failed == 1);
  CHECK(nw.capacity - nw.n_free_sessions == 2);

  // While standby it crosses nothing; the same replies cross once it is active.
  auto replies = [&] {
    return in_core(standby, {{"r0", on_vlan(200, ipv4("192.168.1.10", "100.64.1.5", 6, tcp(104, 40000, 0x12, 0)))},
                             {"r0", on_vlan(200, ipv4("192.168.1.10", "100.64.9.1", 17, udp(9, pool_port, 4)))}});
  };
  auto out = nat_stage(standby, replies(), {archive, archive}, {a, clinic});
  CHECK(!out[0]);
  CHECK(!out[1]);
  CHECK(standby.drops(Drop::ha_standby) == 2);
  is_standby = false;
  out = nat_stage(standby, replies(), {archive, archive}, {a, clinic});
  REQUIRE(out[0]);
  REQUIRE(out[1]);
  CHECK(bytes_of(out[0]) == on_vlan(200, ipv4("100.100.2.10", "10.0.0.5", 6, tcp(104, 40000, 0x12, 0))));
  CHECK(bytes_of(out[1]) == on_vlan(200, ipv4("100.100.2.10", "10.0.0.5", 17, udp(9, 5000, 4))));
  CHECK(standby.drops(Drop::nat_no_session) == 0);
  free_all(out);

  // The same record again refreshes; an end record ends the session and its mapping.
  rings.taken();
  SyncRecord end = records[1];
  end.kind = uint8_t(SyncKind::session_end);
  for (SyncRecord r : {records[0], end}) REQUIRE(rte_ring_sp_enqueue_elem(rings.sync.in, &r, sizeof r) == 0);
  sync_install(standby.worker);
  CHECK(rings.sync.refreshed == 1);
  CHECK(rings.sync.removed == 1);
  CHECK(nw.capacity - nw.n_free_sessions == 1);
  CHECK(nw.capacity - nw.n_free_mappings == 0);
  standby.worker.sync = nullptr;
  standby.worker.ha_standby = nullptr;
}

TEST_CASE("HA sync: the standby's tenants in other slots: records install by tenant name, not slot") {
  auto [records, table, pool_port] = two_sessions_on_active();
  ha::TenantMap map;
  REQUIRE(records.size() == 2);
  map.take(table.data(), unsigned(table.size()));

  // The standby has a tenant of its own more (first in its file): every slot differs.
  std::string config = nat_config;
  config.replace(config.find(R"("tenants": [)"), 12, R"("tenants": [{"name": "0-lab", "max_routes": 64}, )");
  Harness standby(config);
  SyncRings rings(standby.worker);
  std::atomic<bool> is_standby{true};
  standby.worker.ha_standby = &is_standby;
  const uint16_t a = standby.tenant("hosp-a"), clinic = standby.tenant("clinic");
  // The control: the records' slots name other tenants here (what an install by slot would hit).
  CHECK(standby.tables->tenants[records[0].s.key[0].tenant].name != "hosp-a");
  CHECK(standby.tables->tenants[records[1].s.key[0].tenant].name != "clinic");
  map.own(*standby.tables);
  for (SyncRecord r : records) {
    REQUIRE(map.translate(r) == ha::TenantMap::Result::ok);
    REQUIRE(rte_ring_sp_enqueue_elem(rings.sync.in, &r, sizeof r) == 0);
  }
  sync_install(standby.worker);
  const NatWorker& nw = *standby.tables->nat[0];
  CHECK(rings.sync.installed == 2);
  CHECK(rings.sync.install_failed == 0);
  CHECK(nw.sessions_of[a] == 1);
  CHECK(nw.sessions_of[clinic] == 1);
  CHECK(nw.capacity - nw.n_free_mappings == 1);  // the clinic's NAPT mapping, in the clinic
  standby.worker.sync = nullptr;
  standby.worker.ha_standby = nullptr;
}

TEST_CASE("HA sync: a node that steps down forgets its own sessions, so the active's NAPT ports install") {
  // Split brain: both nodes active, each gives the first pool port to another flow of the clinic.
  auto first_flow = [](Harness& node, uint16_t sport, std::vector<SyncRecord>* records) {
    SyncRings rings(node.worker);
    auto out =
        nat_stage(node, in_core(node, {{"c0", on_vlan(30, ipv4("10.0.0.5", "100.100.2.10", 17, udp(sport, 9, 20)))}}),
                  {node.tenant("clinic")}, {node.tenant("archive")});
    REQUIRE(out[0]);
    uint16_t port = be16(bytes_of(out[0]), 18 + 20);
    free_all(out);
    if (records) *records = rings.taken();
    node.worker.sync = nullptr;
    return port;
  };
  std::vector<SyncRecord> active_records;
  uint16_t active_port = 0;
  {
    Harness active(nat_config);  // one harness at a time: the unit tests' EAL memory
    active_port = first_flow(active, 5000, &active_records);
  }
  REQUIRE(active_records.size() == 1);
  Harness node(nat_config);
  uint16_t own_port = first_flow(node, 5001, nullptr);
  REQUIRE(own_port == active_port);  // the same pool port, another flow
  const NatWorker& nw = *node.tables->nat[0];
  REQUIRE(nw.capacity - nw.n_free_sessions == 1);

  // The partition heals, the node is standby again: the active's record clashes with its own
  // session's port and is refused while that session is there.
  SyncRings rings(node.worker);
  std::atomic<bool> is_standby{true};
  node.worker.ha_standby = &is_standby;
  REQUIRE(rte_ring_sp_enqueue_elem(rings.sync.in, &active_records[0], sizeof(SyncRecord)) == 0);
  sync_install(node.worker);
  CHECK(rings.sync.install_failed == 1);
  CHECK(rings.sync.installed == 0);

  // The sync thread's forget on stepping down: the worker sweeps a chunk of slots a call (here
  // 1024 slots: four calls), then counts it done; the resync, asked for then, brings the
  // active's session, alone now.
  SyncRecord forget{};
  forget.kind = uint8_t(SyncKind::forget);
  REQUIRE(rte_ring_sp_enqueue_elem(rings.sync.in, &forget, sizeof forget) == 0);
  sync_install(node.worker);
  CHECK(rings.sync.forgetting);
  unsigned calls = 0;
  while (rings.sync.forgetting && calls < 100) {
    sync_install(node.worker);
    calls++;
  }
  CHECK(calls == (nw.capacity + forget_chunk - 1) / forget_chunk);
  CHECK(rings.sync.forgets_done == 1);
  CHECK(nw.capacity - nw.n_free_sessions == 0);
  REQUIRE(rte_ring_sp_enqueue_elem(rings.sync.in, &active_records[0], sizeof(SyncRecord)) == 0);
  sync_install(node.worker);
  CHECK(rings.sync.installed == 1);
  CHECK(nw.capacity - nw.n_free_sessions == 1);
  CHECK(nw.capacity - nw.n_free_mappings == 1);
  CHECK(rings.taken().empty());  // nothing of the forgotten sessions told to the peer
  // Active again, the reply to the active's flow crosses to its inside port (5000), not 5001.
  is_standby = false;
  const uint16_t clinic = node.tenant("clinic"), archive = node.tenant("archive");
  auto out = nat_stage(
      node, in_core(node, {{"r0", on_vlan(200, ipv4("192.168.1.10", "100.64.9.1", 17, udp(9, active_port, 4)))}}),
      {archive}, {clinic});
  REQUIRE(out[0]);
  CHECK(bytes_of(out[0]) == on_vlan(200, ipv4("100.100.2.10", "10.0.0.5", 17, udp(9, 5000, 4))));
  free_all(out);
  node.worker.sync = nullptr;
  node.worker.ha_standby = nullptr;
}

TEST_CASE("HA sync: an active worker takes a draining peer's sessions, never at the cost of its own") {
  // The old active, draining in a planned switchover, made three sessions: a static crossing,
  // a NAPT one, and another NAPT one whose inside flow the new active has made too.
  std::vector<SyncRecord> records;
  {
    Harness old(nat_config);
    SyncRings rings(old.worker);
    const uint16_t a = old.tenant("hosp-a"), clinic = old.tenant("clinic"), archive = old.tenant("archive");
    auto out = nat_stage(old,
                         in_core(old, {{"a0", on_vlan(10, ipv4("10.0.0.5", "100.100.2.10", 6, tcp(40000, 104, 0x02)))},
                                       {"c0", on_vlan(30, ipv4("10.0.0.5", "100.100.2.10", 17, udp(5000, 9, 20)))},
                                       {"c0", on_vlan(30, ipv4("10.0.0.7", "100.100.2.10", 17, udp(7000, 9, 20)))}}),
                         {a, clinic, clinic}, {archive, archive, archive});
    REQUIRE(out[0]);
    REQUIRE(out[1]);
    REQUIRE(out[2]);
    free_all(out);
    records = rings.taken();
    old.worker.sync = nullptr;
  }
  REQUIRE(records.size() == 3);

  // The new active: it made 10.0.0.6's flow first (so it holds the pool port the old one gave
  // 10.0.0.5) and 10.0.0.7's flow itself.
  Harness now(nat_config);
  SyncRings rings(now.worker);
  const uint16_t a = now.tenant("hosp-a"), clinic = now.tenant("clinic"), archive = now.tenant("archive");
  auto own = nat_stage(now,
                       in_core(now, {{"c0", on_vlan(30, ipv4("10.0.0.6", "100.100.2.10", 17, udp(6000, 9, 20)))},
                                     {"c0", on_vlan(30, ipv4("10.0.0.7", "100.100.2.10", 17, udp(7000, 9, 20)))}}),
                       {clinic, clinic}, {archive, archive});
  REQUIRE(own[0]);
  REQUIRE(own[1]);
  const uint16_t own_port = be16(bytes_of(own[0]), 18 + 20);
  CHECK(own_port == records[1].s.outside_port);  // the clash: one pool port, two inside flows
  free_all(own);
  rings.taken();
  const NatWorker& nw = *now.tables->nat[0];
  CHECK(nw.capacity - nw.n_free_sessions == 2);
  for (SyncRecord r : records) {
    r.kind = uint8_t(SyncKind::session_overlap);
    REQUIRE(rte_ring_sp_enqueue_elem(rings.sync.in, &r, sizeof r) == 0);
  }
  sync_install(now.worker);
  CHECK(rings.sync.installed == 1);       // the static crossing
  CHECK(rings.sync.install_failed == 1);  // 10.0.0.5's NAPT session: its pool port is 10.0.0.6's here
  CHECK(rings.sync.refreshed == 1);       // 10.0.0.7's: the same flow, translated alike
  CHECK(nw.capacity - nw.n_free_sessions == 3);

  // The static crossing's reply crosses; the pool port's reply still goes to this node's own flow.
  auto out =
      nat_stage(now,
                in_core(now, {{"r0", on_vlan(200, ipv4("192.168.1.10", "100.64.1.5", 6, tcp(104, 40000, 0x12, 0)))},
                              {"r0", on_vlan(200, ipv4("192.168.1.10", "100.64.9.1", 17, udp(9, own_port, 4)))}}),
                {archive, archive}, {a, clinic});
  REQUIRE(out[0]);
  REQUIRE(out[1]);
  CHECK(bytes_of(out[0]) == on_vlan(200, ipv4("100.100.2.10", "10.0.0.5", 6, tcp(104, 40000, 0x12, 0))));
  CHECK(bytes_of(out[1]) == on_vlan(200, ipv4("100.100.2.10", "10.0.0.6", 17, udp(9, 6000, 4))));
  free_all(out);
  now.worker.sync = nullptr;
}

TEST_CASE("nat stage: a policy rule's flows are a QoS class, policed both ways by the rule's policer") {
  Harness h(nat_config);
  const uint16_t a = h.tenant("hosp-a"), clinic = h.tenant("clinic"), archive = h.tenant("archive");
  constexpr size_t l2 = 18;
  auto apply = [&](const std::string& operations) { return h.apply(ops(operations)); };
  auto refusal = [&](const std::string& operations) {
    auto r = apply(operations);
    return r.code == Code::ok ? std::string() : r.message;
  };
  // A rule's policer has no tenant; 1 byte a second: its buckets are what they started with
  // (1500 bytes each), three packets of 500 bytes green, three yellow (remarked AF12), then red.
  const std::string policer = R"({"policer": {"name": "imaging", "mode": "POLICER_SRTCM", "cir": "1",
      "cbs": "1500", "ebs": "1500", "yellow": {"action": "POLICER_REMARK", "dscp": 12}}})";
  const std::string rule = R"({"policy_rule": {"name": "a-dicom", "priority": 10, "from_tenant": "hosp-a",
      "to_tenant": "archive", "protocol": 6, "port_low": 104, "port_high": 104, "permit": true,
      "policer": "imaging"}})";
  // Checked whole: a rule naming a policer that does not exist (a good policer beside it, after
  // it: a transaction sees its objects in order) changes nothing.
  CHECK(refusal(R"([{"op": "UPDATE", "object": )" + rule + R"(}, {"op": "CREATE", "object": )" + policer + "}]") ==
        "operations[0].policy_rule.policer: no policer named \"imaging\"");
  h.controller.read([](const Intent& in, const Committer&, uint64_t) {
    CHECK(!in.named.count(v1::Object::kPolicer));
    CHECK(in.policy_rules.at("a-dicom").policer().empty());
    return 0;
  });
  CHECK(refusal(R"([{"op": "CREATE", "object": {"policer": {"name": "x", "interface": "a0", "mode": "POLICER_SRTCM",
        "cir": "1", "cbs": "1500", "ebs": "1500"}}}])") ==
        "operations[0].policer.interface: needs a tenant (a rule's policer has none)");
  CHECK(refusal(R"([{"op": "CREATE", "object": {"policer": {"name": "a-in", "tenant": "hosp-a", "mode": "POLICER_SRTCM",
        "cir": "1", "cbs": "1500", "ebs": "1500"}}}, {"op": "UPDATE", "object": {"policy_rule": {"name": "a-dicom",
        "priority": 10, "from_tenant": "hosp-a", "permit": true, "policer": "a-in"}}}])") ==
        "operations[1].policy_rule.policer: \"a-in\" polices tenant \"hosp-a\"'s ingress; a rule's policer has no "
        "tenant");
  REQUIRE(apply(R"([{"op": "CREATE", "object": )" + policer + R"(}, {"op": "UPDATE", "object": )" + rule + "}]").code ==
          Code::ok);
  REQUIRE(h.tables->qos.policers.empty());  // no ingress class: l2_input pays nothing
  REQUIRE(h.tables->qos.rule_policers.size() == 1);
  // What a rule names stays while it does, and keeps no tenant.
  CHECK(refusal(R"([{"op": "DELETE", "object": {"policer": {"name": "imaging"}}}])")
            .find("operations[0].policer: policer \"imaging\" is still used by 1 object") == 0);
  CHECK(refusal(R"([{"op": "UPDATE", "object": {"policer": {"name": "imaging", "tenant": "hosp-a",
        "mode": "POLICER_SRTCM", "cir": "1", "cbs": "1500", "ebs": "1500"}}}])") ==
        "operations[0].policer.tenant: policy rules name this policer: their class has no tenant");

  // hosp-a's DICOM flow to the archive: the rule's class. 8 packets of 500 bytes.
  std::vector<std::pair<std::string, Bytes>> frames;
  for (int i = 0; i < 8; i++)
    frames.push_back({"a0", on_vlan(10, ipv4("10.0.0.5", "100.100.2.10", 6, tcp(40000, 104, 0x02, 460)))});
  h.worker.now = rte_rdtsc();  // the meters' clock (rte_meter started them at the commit's TSC)
  auto out = nat_stage(h, in_core(h, frames), std::vector<uint16_t>(8, a), std::vector<uint16_t>(8, archive));
  for (int i = 0; i < 6; i++) {
    REQUIRE(out[i]);
    Bytes seen = bytes_of(out[i]);
    CHECK(seen[l2 + 1] >> 2 == (i < 3 ? 0 : 12));
    CHECK(checksums_ok(seen, l2));  // the remark and the translation, both in the checksums
  }
  CHECK(!out[6]);
  CHECK(!out[7]);
  CHECK(h.drops(Drop::policed) == 2);
  free_all(out);
  // The replies are the class too (its buckets spent: red); the clinic's flow is no class.
  // (The same now: the harness's session timeouts are 0.)
  out = nat_stage(h,
                  in_core(h, {{"r0", on_vlan(200, ipv4("192.168.1.10", "100.64.1.5", 6, tcp(104, 40000, 0x12, 460)))},
                              {"c0", on_vlan(30, ipv4("10.0.0.5", "100.100.2.10", 17, udp(5000, 9, 472)))}}),
                  {archive, clinic}, {a, archive});
  CHECK(!out[0]);
  CHECK(out[1]);
  CHECK(h.drops(Drop::policed) == 3);
  free_all(out);
  const qos::Share& s = h.tables->qos.rule_policers.at(0).shares[0];
  CHECK(s.packets[qos::green] == 3);
  CHECK(s.packets[qos::yellow] == 3);
  CHECK(s.packets[qos::red] == 3);
  CHECK(s.bytes[qos::green] == 1500);
  CHECK(s.dropped == 3);
  // The rule without its policer: the class is gone, the flow passes.
  REQUIRE(apply(R"([{"op": "UPDATE", "object": {"policy_rule": {"name": "a-dicom", "priority": 10,
      "from_tenant": "hosp-a", "to_tenant": "archive", "protocol": 6, "port_low": 104, "port_high": 104,
      "permit": true}}}])")
              .code == Code::ok);
  CHECK(h.tables->qos.policer_of_rule.empty());
  out = nat_stage(h, in_core(h, {frames[0]}), {a}, {archive});
  CHECK(out[0]);
  free_all(out);
}

TEST_CASE("nat stage: a policy rule's flows are a shaper class, both ways, on whichever shaped interface") {
  Harness h(nat_config);
  const uint16_t a = h.tenant("hosp-a"), clinic = h.tenant("clinic"), archive = h.tenant("archive");
  auto apply = [&](const std::string& operations) { return h.apply(ops(operations)); };
  auto refusal = [&](const std::string& operations) {
    auto r = apply(operations);
    return r.code == Code::ok ? std::string() : r.message;
  };
  auto rule = [](const std::string& fields) {
    return R"({"policy_rule": {"name": "a-dicom", "priority": 10, "from_tenant": "hosp-a", "to_tenant": "archive",
        "protocol": 6, "port_low": 104, "port_high": 104, )" +
           fields + "}}";
  };
  // A class of that name on some shaper, else refused (field path), state unchanged.
  CHECK(refusal(R"([{"op": "UPDATE", "object": )" + rule(R"("permit": true, "shaper_class": "imaging")") + "}]") ==
        "operations[0].policy_rule.shaper_class: no shaper has a class named \"imaging\"");
  // The archive's side and hosp-a's each shape, with a class "imaging" after one that matches
  // everything (so only the rule fills it); EF first on the archive's.
  const std::string r_out = R"({"shaper": {"name": "r-out", "interface": "r0", "rate": "1000000", "burst": "3000",
      "classes": [{"name": "ef", "priority": true, "rate": "1000", "dscp": [46]}, {"name": "bulk", "weight": 1},
                  {"name": "imaging", "rate": "500000", "weight": 1}]}})";
  const std::string a_out = R"({"shaper": {"name": "a-out", "interface": "a0", "rate": "1000000", "burst": "3000",
      "classes": [{"name": "bulk", "weight": 1}, {"name": "imaging", "rate": "500000", "weight": 1},
                  {"name": "rest", "weight": 1}]}})";
  REQUIRE(apply(R"([{"op": "CREATE", "object": )" + r_out + R"(}, {"op": "CREATE", "object": )" + a_out + "}]").code ==
          Code::ok);
  CHECK(refusal(R"([{"op": "UPDATE", "object": )" + rule(R"("permit": false, "shaper_class": "imaging")") + "}]") ==
        "operations[0].policy_rule.shaper_class: a deny rule's flows never cross");
  CHECK(h.tables->qos.classed_rules.empty());  // nothing named yet: crossing pays a bounds test
  REQUIRE(apply(R"([{"op": "UPDATE", "object": )" + rule(R"("permit": true, "shaper_class": "imaging")") + "}]").code ==
          Code::ok);
  REQUIRE(!h.tables->qos.classed_rules.empty());

  auto shaper = [&](const std::string& name) -> const qos::Shaper& {
    for (const qos::Shaper& s : h.tables->qos.shapers)
      if (s.name == name) return s;
    FAIL("no shaper " << name);
    return h.tables->qos.shapers.at(0);
  };
  // hosp-a's DICOM flow to the archive, with DSCP 46 even: the rule's class before any match.
  auto out = nat_stage(h,
                       in_core(h, {{"a0", on_vlan(10, ipv4("10.0.0.5", "100.100.2.10", 6, tcp(40000, 104, 0x02, 100)))},
                                   {"c0", on_vlan(30, ipv4("10.0.0.5", "100.100.2.10", 17, udp(5000, 9, 100)))}}),
                       {a, clinic}, {archive, archive});
  REQUIRE(out[0]);
  REQUIRE(out[1]);
  CHECK((meta(out[0]).flags & meta_classed));
  CHECK(medix::dp::class_of(*h.tables, shaper("r-out"), meta(out[0]), 46) == 2);
  // The clinic's flow (another rule, no class): the shaper's own matches.
  CHECK(!(meta(out[1]).flags & meta_classed));
  CHECK(medix::dp::class_of(*h.tables, shaper("r-out"), meta(out[1]), 46) == 0);
  CHECK(medix::dp::class_of(*h.tables, shaper("r-out"), meta(out[1]), 0) == 1);
  free_all(out);
  // The reply leaves by hosp-a's shaped interface: its class of the same name.
  out = nat_stage(h,
                  in_core(h, {{"r0", on_vlan(200, ipv4("192.168.1.10", "100.64.1.5", 6, tcp(104, 40000, 0x12, 100)))}}),
                  {archive}, {a});
  REQUIRE(out[0]);
  CHECK((meta(out[0]).flags & meta_classed));
  CHECK(medix::dp::class_of(*h.tables, shaper("a-out"), meta(out[0]), 0) == 1);
  free_all(out);

  // The class stays while a rule names it: a-out may go (r-out has it), then r-out may not,
  // nor lose the class.
  CHECK(refusal(R"([{"op": "DELETE", "object": {"shaper": {"name": "a-out"}}}])").empty());
  CHECK(refusal(R"([{"op": "DELETE", "object": {"shaper": {"name": "r-out"}}}])") ==
        "operations[0].shaper: policy rule \"a-dicom\" names class \"imaging\", which no other shaper has");
  CHECK(refusal(R"([{"op": "UPDATE", "object": {"shaper": {"name": "r-out", "interface": "r0", "rate": "1000000",
        "burst": "3000", "classes": [{"name": "bulk", "weight": 1}]}}}])") ==
        "operations[0].shaper.classes: policy rule \"a-dicom\" names class \"imaging\", which no other shaper has");
  CHECK(shaper("r-out").classes.size() == 3);
  // The rule without its class: no mark, the matches decide.
  REQUIRE(apply(R"([{"op": "UPDATE", "object": )" + rule(R"("permit": true)") + "}]").code == Code::ok);
  CHECK(h.tables->qos.classed_rules.empty());
  CHECK(shaper("r-out").class_of_rule.empty());
  out = nat_stage(h, in_core(h, {{"a0", on_vlan(10, ipv4("10.0.0.5", "100.100.2.10", 6, tcp(40001, 104, 0x02, 100)))}}),
                  {a}, {archive});
  REQUIRE(out[0]);
  CHECK(!(meta(out[0]).flags & meta_classed));
  free_all(out);
  CHECK(refusal(R"([{"op": "DELETE", "object": {"shaper": {"name": "r-out"}}}])").empty());
}
