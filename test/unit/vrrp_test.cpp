// VRRP: adverts parsed and built against RFC 5798's layout (the checksum computed here on its
// own), the state machine's timers and decisions, the kind's checks, and an instance in the
// pipeline: ARP and the virtual MAC taken only as master, adverts and gratuitous ARP sent.
#include <rte_ether.h>
#include <rte_ring.h>

#include <catch2/catch.hpp>

#include "fixture.h"
#include "ha/role.h"
#include "harness.h"
#include "vrrp/runner.h"

using namespace frame;
using medix::dp::Code;
namespace vrrp = medix::dp::vrrp;

namespace {

constexpr uint64_t ms = 1'000'000;

// The RFC's checksum, written out: the one's complement sum of the pseudo-header (source,
// destination, zero, protocol 112, VRRP length) and the message.
uint16_t rfc_checksum(uint32_t src, uint32_t dst, const uint8_t* v, size_t len) {
  uint64_t sum = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 112 + len;
  for (size_t i = 0; i < len; i += 2) sum += uint32_t(v[i]) << 8 | (i + 1 < len ? v[i + 1] : 0);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

Bytes advert_ip(uint32_t src, uint8_t vrid, uint8_t priority, uint16_t interval_cs, std::vector<uint32_t> addresses) {
  Bytes out(vrrp::advert_bytes(unsigned(addresses.size())));
  vrrp::build(out.data(), src, vrid, priority, interval_cs, addresses.data(), unsigned(addresses.size()), 1);
  return out;
}

vrrp::Advert heard(uint32_t src, uint8_t priority, uint16_t interval_cs = 100, uint8_t vrid = 1) {
  vrrp::Advert a;
  a.source = src;
  a.priority = priority;
  a.interval_cs = interval_cs;
  a.vrid = vrid;
  return a;
}

}  // namespace

TEST_CASE("an advert is built as RFC 5798 5.1 lays it out, and parsed back") {
  Bytes p = advert_ip(0x0a000002, 51, 200, 50, {0x0a000001, 0x0a000005});
  REQUIRE(p.size() == 20 + 8 + 8);
  CHECK(p[0] == 0x45);
  CHECK(p[8] == 255);  // TTL
  CHECK(p[9] == 112);  // protocol
  CHECK((p[16] == 224 && p[17] == 0 && p[18] == 0 && p[19] == 18));
  const uint8_t* v = p.data() + 20;
  CHECK(v[0] == 0x31);  // version 3, type 1
  CHECK(v[1] == 51);
  CHECK(v[2] == 200);
  CHECK(v[3] == 2);
  CHECK((v[4] << 8 | v[5]) == 50);
  CHECK((v[8] == 10 && v[11] == 1 && v[12] == 10 && v[15] == 5));
  // The checksum field filled in makes the RFC's sum come out 0.
  CHECK(rfc_checksum(0x0a000002, 0xe0000012, v, 16) == 0);
  // The IPv4 header checksum is right too.
  uint32_t s = 0;
  for (int i = 0; i < 20; i += 2) s += uint32_t(p[i]) << 8 | p[i + 1];
  while (s >> 16) s = (s & 0xffff) + (s >> 16);
  CHECK(s == 0xffff);

  vrrp::Advert a;
  REQUIRE(vrrp::parse(p.data(), p.size(), a) == vrrp::RxError::none);
  CHECK(a.source == 0x0a000002);
  CHECK(a.vrid == 51);
  CHECK(a.priority == 200);
  CHECK(a.interval_cs == 50);
  CHECK(a.count == 2);
  CHECK(a.addresses[1] == 0x0a000005);
}

TEST_CASE("adverts that RFC 5798 7.1 refuses are refused, each for its reason") {
  Bytes good = advert_ip(0x0a000002, 1, 100, 100, {0x0a000001});
  vrrp::Advert a;
  auto why = [&](Bytes p) { return vrrp::parse(p.data(), p.size(), a); };
  Bytes ttl = good;
  ttl[8] = 254;
  CHECK(why(ttl) == vrrp::RxError::ttl);
  Bytes version = good;
  version[20] = 0x21;  // VRRPv2
  CHECK(why(version) == vrrp::RxError::version);
  Bytes type = good;
  type[20] = 0x32;
  CHECK(why(type) == vrrp::RxError::type);
  Bytes count = good;
  count[23] = 3;  // says three addresses, holds one
  CHECK(why(count) == vrrp::RxError::length);
  Bytes flipped = good;
  flipped[22] ^= 1;  // the priority changed after the checksum
  CHECK(why(flipped) == vrrp::RxError::checksum);
  CHECK(why(Bytes(good.begin(), good.begin() + 25)) == vrrp::RxError::length);
  CHECK(why(good) == vrrp::RxError::none);
}

TEST_CASE("the state machine: master down interval with skew, priority, preemption, priority 0") {
  vrrp::Machine m;
  m.p.priority = 100;
  m.p.interval_cs = 100;
  m.p.primary = 0x0a000002;
  m.start(0);
  CHECK(m.state == vrrp::State::backup);
  // Skew_Time = (256 - 100) * 100 cs / 256 = 60.9375 cs; Master_Down_Interval = 3 s + skew.
  CHECK(m.skew() == 609'375'000);
  CHECK(m.master_down_interval() == 3'609'375'000);
  CHECK_FALSE(m.tick(3'609'374'999).changed);
  auto a = m.tick(3'609'375'000);
  CHECK(a.changed);
  CHECK(a.reason == vrrp::Reason::master_down);
  CHECK((a.advert && a.garp));
  CHECK(m.state == vrrp::State::master);

  // As master: an advert each interval, from when it was due.
  CHECK_FALSE(m.tick(3'609'375'000 + 999 * ms).advert);
  CHECK(m.tick(3'609'375'000 + 1000 * ms).advert);
  // A lower priority, or the same one from a lower address, is ignored.
  CHECK_FALSE(m.advert(heard(0x0a000009, 50), 5000 * ms).changed);
  CHECK_FALSE(m.advert(heard(0x0a000001, 100), 5000 * ms).changed);
  // The same priority from a higher address wins (6.4.3).
  a = m.advert(heard(0x0a000003, 100, 50), 5000 * ms);
  CHECK(a.changed);
  CHECK(a.reason == vrrp::Reason::higher_priority);
  CHECK(m.state == vrrp::State::backup);
  CHECK(m.master_interval_cs == 50);  // the master's interval is learned
  CHECK(m.master_address == 0x0a000003);

  // Preemption off (the default): a lower priority master keeps us backup.
  for (uint64_t t = 5500; t < 20000; t += 500) m.advert(heard(0x0a000003, 10, 50), t * ms);
  CHECK(m.state == vrrp::State::backup);
  CHECK_FALSE(m.tick(20000 * ms).changed);
  // Priority 0: the master left; take over after the skew only.
  m.advert(heard(0x0a000003, 0, 50), 20000 * ms);
  a = m.tick(20000 * ms + m.skew());
  CHECK(a.changed);
  CHECK(m.state == vrrp::State::master);
}

TEST_CASE("preemption takes over from a lower priority after the master down interval") {
  vrrp::Machine m;
  m.p.priority = 200;
  m.p.interval_cs = 10;  // 100 ms: the 10 ms class works the same, in centiseconds
  m.p.preempt = true;
  m.start(0);
  uint64_t t = 0;
  for (; t < 100 * ms; t += 10 * ms) m.advert(heard(0x0a000003, 100, 10), t);
  CHECK(m.ignored);
  auto a = m.tick(m.master_down_at);
  CHECK(a.reason == vrrp::Reason::preempt);
  CHECK(m.state == vrrp::State::master);

  // With 1 cs adverts the interval is 10 ms and the master down interval 30 ms + skew.
  vrrp::Machine fast;
  fast.p.priority = 254;
  fast.p.interval_cs = 1;
  fast.start(0);
  CHECK(fast.master_down_interval() == 30 * ms + 2 * 10 * ms / 256);
}

TEST_CASE("a tracked link of weight 0 forces backup: a master steps down with priority 0, and stays down") {
  vrrp::Machine m;
  m.start(0);
  m.tick(m.master_down_at);
  REQUIRE(m.state == vrrp::State::master);
  vrrp::Params p = m.p;
  p.fault = true;
  auto a = m.update(p, 5000 * ms, vrrp::Reason::link_down);
  CHECK(a.changed);
  CHECK(a.advert_zero);
  CHECK(a.reason == vrrp::Reason::link_down);
  CHECK(m.state == vrrp::State::backup);
  CHECK_FALSE(m.tick(m.master_down_at).changed);  // no master while in fault
  p.fault = false;
  m.update(p, 20000 * ms, vrrp::Reason::link_up);
  CHECK(m.tick(m.master_down_at).changed);
  // A member held back by its group (another hears a live master) stays backup.
  vrrp::Machine held;
  held.start(0);
  CHECK_FALSE(held.tick(held.master_down_at, true).changed);
  CHECK(held.state == vrrp::State::backup);
}

TEST_CASE("a VRRP instance is checked whole, each error naming its field") {
  Harness h(two_tenants);
  auto op = [](const std::string& fields) {
    return R"([{"op": "CREATE", "object": {"vrrp_instance": {)" + fields + "}}}]";
  };
  auto refused = [&](const std::string& fields, const std::string& message) {
    auto r = h.apply(ops(op(fields)));
    INFO(r.message);
    CHECK(r.code == Code::invalid_argument);
    CHECK(r.message.find(message) == 0);
  };
  const std::string base = R"("name": "v", "interface": "a-lan", )";
  refused(base + R"("vrid": 0, "addresses": ["10.0.0.254"])", "operations[0].vrrp_instance.vrid: ");
  refused(base + R"("vrid": 256, "addresses": ["10.0.0.254"])", "operations[0].vrrp_instance.vrid: ");
  refused(base + R"("vrid": 1, "priority": 255, "addresses": ["10.0.0.254"])",
          "operations[0].vrrp_instance.priority: 255 is the address owner's");
  refused(base + R"("vrid": 1, "advert_interval_cs": 4096, "addresses": ["10.0.0.254"])",
          "operations[0].vrrp_instance.advert_interval_cs: ");
  refused(base + R"("vrid": 1, "addresses": [])", "operations[0].vrrp_instance.addresses: at least one");
  refused(base + R"("vrid": 1, "addresses": ["224.0.0.18"])",
          "operations[0].vrrp_instance.addresses[0]: 224.0.0.18 is not a unicast host address");
  refused(base + R"("vrid": 1, "addresses": ["10.0.0.1"])",
          "operations[0].vrrp_instance.addresses[0]: 10.0.0.1 is interface \"a-lan\"'s own address");
  refused(base + R"("vrid": 1, "addresses": ["10.5.0.1"])",
          "operations[0].vrrp_instance.addresses[0]: 10.5.0.1 is on none of interface \"a-lan\"'s subnets");
  refused(R"("name": "v", "interface": "nope", "vrid": 1, "addresses": ["10.0.0.254"])",
          "operations[0].vrrp_instance.interface: no interface named \"nope\"");
  refused(base + R"("vrid": 1, "addresses": ["10.0.0.254"], "track": [{"interface": "nope"}])",
          "operations[0].vrrp_instance.track[0].interface: no interface named \"nope\"");
  REQUIRE(h.apply(ops(op(base + R"("vrid": 1, "addresses": ["10.0.0.254"])"))).code == Code::ok);
  refused(R"("name": "w", "interface": "a-lan", "vrid": 1, "addresses": ["10.0.0.253"])",
          "operations[0].vrrp_instance.vrid: instance \"v\" has VRID 1 on interface \"a-lan\" already");
  refused(R"("name": "w", "interface": "a-lan", "vrid": 2, "addresses": ["10.0.0.254"])",
          "operations[0].vrrp_instance.addresses: 10.0.0.254 is a virtual address of instance \"v\"");
  CHECK(h.tables->vrrp.instances.size() == 1);
  // Its interface stays while it does.
  auto busy = h.apply(ops(R"([{"op": "DELETE", "object": {"interface": {"name": "a-lan"}}}])"));
  CHECK(busy.code != Code::ok);
}

TEST_CASE("an instance in the pipeline: ARP and the virtual MAC only as master, adverts and gratuitous ARP out") {
  Harness h(two_tenants);
  REQUIRE(h.apply(ops(R"([{"op": "CREATE", "object": {"vrrp_instance": {"name": "v", "interface": "a-lan",
      "vrid": 7, "priority": 150, "advert_interval_cs": 10, "addresses": ["10.0.0.254"]}}}])"))
              .code == Code::ok);
  rte_ring* from_workers = rte_ring_create("vrrp_test", 64, SOCKET_ID_ANY, RING_F_SC_DEQ);
  REQUIRE(from_workers);
  h.worker.vrrp = from_workers;
  vrrp::Runner runner;
  vrrp::Io io;
  io.pool = h.pool;
  io.to_worker = h.handoff[0];
  // What the runner handed to worker 0, sent as worker 0 sends it.
  auto sent = [&] {
    rte_mbuf* pkts[64];
    unsigned n = rte_ring_sc_dequeue_burst(h.handoff[0], reinterpret_cast<void**>(pkts), 64, nullptr);
    if (n) process_handoff(h.worker, pkts, uint16_t(n));
    return h.sent(0);
  };
  const std::string vmac = "00:00:5e:00:01:07", host = "02:00:00:00:99:99";
  Bytes ask = ether("ff:ff:ff:ff:ff:ff", host, 0x8100) + vlan(0x0806, 10) +
              arp(1, host, "10.0.0.9", "00:00:00:00:00:00", "10.0.0.254");

  runner.poll(*h.tables, from_workers, io, 0);
  CHECK(runner.status().at(0).state == vrrp::State::backup);
  h.receive(0, ask);
  CHECK(h.sent(0).empty());  // backup: no answer
  CHECK(h.drops(Drop::arp_not_for_us) == 1);
  // A frame to the virtual MAC is not taken either.
  Bytes echo = ether(vmac, host, 0x8100) + vlan(0x0800, 10) + ipv4("10.0.0.9", "10.0.0.254", 1, icmp_echo(1, 1));
  h.receive(0, echo);
  CHECK(h.sent(0).empty());
  CHECK(h.drops(Drop::l2_not_for_us) == 1);

  // Master down interval: 3 x 100 ms + (256 - 150) x 100 ms / 256.
  uint64_t down = 300 * ms + 106 * 100 * ms / 256;
  runner.poll(*h.tables, from_workers, io, down - 1);
  CHECK(runner.status().at(0).state == vrrp::State::backup);
  runner.poll(*h.tables, from_workers, io, down);
  CHECK(runner.status().at(0).state == vrrp::State::master);
  auto out = sent();
  REQUIRE(out.size() == 2);  // the advert, then the gratuitous ARP
  const Bytes& adv = out[0];
  CHECK(Bytes(adv.begin(), adv.begin() + 14) == ether("01:00:5e:00:00:12", vmac, 0x8100));
  vrrp::Advert a;
  REQUIRE(vrrp::parse(adv.data() + 18, adv.size() - 18, a) == vrrp::RxError::none);  // after the VLAN tag
  CHECK(a.priority == 150);
  CHECK(a.vrid == 7);
  CHECK(a.source == 0x0a000001);  // the interface's address
  CHECK(a.interval_cs == 10);
  const Bytes& garp = out[1];
  CHECK(Bytes(garp.begin(), garp.begin() + 14) == ether("ff:ff:ff:ff:ff:ff", vmac, 0x8100));
  CHECK(Bytes(garp.begin() + 18 + 14, garp.begin() + 18 + 18) == Bytes{10, 0, 0, 254});  // sender: the address

  // Master: ARP answered with the virtual MAC; an echo to the address answered.
  h.receive(0, ask);
  out = h.sent(0);
  REQUIRE(out.size() == 1);
  CHECK(Bytes(out[0].begin() + 6, out[0].begin() + 12) == Bytes{0, 0, 0x5e, 0, 1, 7});
  CHECK(Bytes(out[0].begin() + 18 + 8, out[0].begin() + 18 + 14) == Bytes{0, 0, 0x5e, 0, 1, 7});
  h.receive(0, echo);
  CHECK(h.sent(0).size() == 1);
  // Adverts each interval.
  runner.poll(*h.tables, from_workers, io, down + 100 * ms);
  CHECK(sent().size() == 1);

  // A higher priority's advert, received by the worker, handed to the runner: backup.
  Bytes better = ether("01:00:5e:00:00:12", "00:00:5e:00:01:07", 0x8100) + vlan(0x0800, 10) +
                 advert_ip(0x0a000003, 7, 200, 10, {0x0a0000fe});
  h.receive(0, better);
  CHECK(rte_ring_count(from_workers) == 1);
  runner.poll(*h.tables, from_workers, io, down + 150 * ms);
  auto s = runner.status().at(0);
  CHECK(s.state == vrrp::State::backup);
  CHECK(s.master_address == 0x0a000003);
  CHECK(s.adverts_received == 1);
  CHECK(s.last.back().reason == vrrp::Reason::higher_priority);
  // It yielded to a better master: for three of its intervals (300 ms) it drains, still taking
  // what the segment's switch sends to the virtual MAC until it relearns the MAC; ARP for the
  // address is the new master's alone.
  h.receive(0, echo);
  CHECK(h.sent(0).size() == 1);
  h.receive(0, ask);
  CHECK(h.sent(0).empty());
  // A bad advert is counted by its reason.
  Bytes bad = better;
  bad[18 + 8] = 64;  // TTL
  h.receive(0, bad);
  runner.poll(*h.tables, from_workers, io, down + 160 * ms);
  CHECK(runner.rx_errors().ttl == 1);
  runner.poll(*h.tables, from_workers, io, down + 449 * ms);
  h.receive(0, echo);
  CHECK(h.sent(0).size() == 1);
  // The drain is over (and the master down interval, 341 ms from the advert, is not).
  runner.poll(*h.tables, from_workers, io, down + 455 * ms);
  CHECK(runner.status().at(0).state == vrrp::State::backup);
  h.receive(0, ask);
  CHECK(h.sent(0).empty());
  h.receive(0, echo);
  CHECK(h.sent(0).empty());
  sent();
  rte_ring_free(from_workers);
}

namespace {
bool a_svc_up = true;  // the link of p1 (a-svc's port) as the test sets it
bool link_of(const PortEntry& p) { return p.name != "p1" || a_svc_up; }

// The harness's VRRP runner, its group g driving the node's HA role (--ha-vrrp-group g): it
// starts standby.
struct GroupNode {
  Harness& h;
  vrrp::Runner runner;
  vrrp::Io io;
  std::atomic<bool> standby{true};
  const std::string ha_group = "g";

  explicit GroupNode(Harness& harness) : h(harness) {
    io.pool = h.pool;
    io.to_worker = h.handoff[0];
    io.link_up = link_of;
    io.ha_standby = &standby;
    io.ha_group = &ha_group;
  }
  vrrp::Status state(const std::string& name) {
    for (const auto& s : runner.status())
      if (s.name == name) return s;
    FAIL("no instance " << name);
    return vrrp::Status{};
  }
  void drain() {  // the adverts the runner handed to the worker
    rte_mbuf* pkts[64];
    unsigned n;
    while ((n = rte_ring_sc_dequeue_burst(h.handoff[0], reinterpret_cast<void**>(pkts), 64, nullptr)))
      rte_pktmbuf_free_bulk(pkts, n);
  }
};
}  // namespace

TEST_CASE("a tracked link down forces its instance to backup, and its group with it, and the node's HA role") {
  Harness h(two_tenants);
  REQUIRE(h.apply(ops(R"([
      {"op": "CREATE", "object": {"vrrp_instance": {"name": "lan", "interface": "a-lan", "vrid": 1,
        "advert_interval_cs": 10, "addresses": ["10.0.0.254"], "group": "g",
        "track": [{"interface": "a-svc", "weight": 0}]}}},
      {"op": "CREATE", "object": {"vrrp_instance": {"name": "svc", "interface": "a-svc", "vrid": 2,
        "advert_interval_cs": 10, "addresses": ["10.1.0.254"], "group": "g"}}}])"))
              .code == Code::ok);
  GroupNode node(h);
  medix::dp::ha::RoleLog roles;  // the changes kept with their cause (ha/role.h)
  node.io.set_role = [&](bool to_standby, const std::string& why) {
    roles.set(node.standby, to_standby, medix::dp::ha::Cause::vrrp, why);
  };
  a_svc_up = true;
  uint64_t t = 200 * ms;  // past the first read of the links
  node.runner.poll(*h.tables, nullptr, node.io, t);
  for (; t < 2000 * ms; t += 10 * ms) node.runner.poll(*h.tables, nullptr, node.io, t);
  CHECK(node.state("lan").state == vrrp::State::master);
  CHECK(node.state("svc").state == vrrp::State::master);
  CHECK_FALSE(node.standby.load());  // master of the group: active
  node.drain();
  a_svc_up = false;
  for (uint64_t end = t + 300 * ms; t < end; t += 10 * ms) node.runner.poll(*h.tables, nullptr, node.io, t);
  CHECK(node.state("lan").state == vrrp::State::backup);
  CHECK(node.state("lan").last.back().reason == vrrp::Reason::link_down);
  CHECK(node.state("lan").effective_priority == 0);
  CHECK(node.state("svc").state == vrrp::State::backup);  // its own link (a-svc's port) is down too
  CHECK(node.state("svc").last.back().reason == vrrp::Reason::link_down);
  CHECK(node.standby.load());  // the group's backup: standby
  // Held back while the link is down, well past the master down interval.
  for (uint64_t end = t + 2000 * ms; t < end; t += 10 * ms) node.runner.poll(*h.tables, nullptr, node.io, t);
  CHECK(node.state("lan").state == vrrp::State::backup);
  CHECK(node.state("svc").state == vrrp::State::backup);
  a_svc_up = true;
  for (uint64_t end = t + 1000 * ms; t < end; t += 10 * ms) node.runner.poll(*h.tables, nullptr, node.io, t);
  CHECK(node.state("lan").state == vrrp::State::master);
  CHECK(node.state("svc").state == vrrp::State::master);
  CHECK_FALSE(node.standby.load());
  // The role's history: active (master_down: no master heard, the peer lost), standby for the
  // tracked link, active again; two takeovers.
  auto history = roles.last();
  REQUIRE(history.size() == 3);
  CHECK(history[0].cause == medix::dp::ha::Cause::vrrp);
  CHECK(history[0].detail.find("group g: backup -> master, master_down (peer lost)") != std::string::npos);
  CHECK(history[1].to_standby);
  CHECK(history[1].detail.find("master -> backup, link_down") != std::string::npos);
  CHECK_FALSE(history[2].to_standby);
  CHECK(roles.failovers() == 2);
  node.drain();

  // A better master on a-lan (a planned switchover): the group yields and drains for three
  // intervals, still active and said to be draining (its sync datagrams carry it), then is
  // standby and no longer draining.
  std::atomic<bool> draining{false};
  node.io.ha_draining = &draining;
  rte_ring* from_workers = rte_ring_create("vrrp_test_track", 64, SOCKET_ID_ANY, RING_F_SC_DEQ);
  REQUIRE(from_workers);
  h.worker.vrrp = from_workers;
  h.receive(0, ether("01:00:5e:00:00:12", "00:00:5e:00:01:01", 0x8100) + vlan(0x0800, 10) +
                   advert_ip(0x0a000003, 1, 254, 10, {0x0a0000fe}));
  node.runner.poll(*h.tables, from_workers, node.io, t);
  CHECK(node.state("lan").state == vrrp::State::backup);
  CHECK(node.state("svc").state == vrrp::State::backup);
  CHECK(draining.load());
  CHECK_FALSE(node.standby.load());
  node.runner.poll(*h.tables, from_workers, node.io, t + 310 * ms);
  CHECK_FALSE(draining.load());
  CHECK(node.standby.load());
  CHECK(roles.last().back().detail.find("drained") != std::string::npos);
  h.worker.vrrp = nullptr;
  rte_ring_free(from_workers);
  node.drain();
}

// An instance's own link is tracked with weight 0 without being named in `track` (keepalived's
// FAULT): the group steps down with it, so the peer's instance on that segment is not left
// backup behind a master it no longer hears.
TEST_CASE("an instance's own link down is a fault: it and its group step down, the node is node.standby") {
  Harness h(two_tenants);
  REQUIRE(h.apply(ops(R"([
      {"op": "CREATE", "object": {"vrrp_instance": {"name": "lan", "interface": "a-lan", "vrid": 1,
        "advert_interval_cs": 10, "addresses": ["10.0.0.254"], "group": "g"}}},
      {"op": "CREATE", "object": {"vrrp_instance": {"name": "svc", "interface": "a-svc", "vrid": 2,
        "advert_interval_cs": 10, "addresses": ["10.1.0.254"], "group": "g"}}}])"))
              .code == Code::ok);
  GroupNode node(h);
  a_svc_up = true;
  uint64_t t = 200 * ms;
  for (; t < 2000 * ms; t += 10 * ms) node.runner.poll(*h.tables, nullptr, node.io, t);
  REQUIRE(node.state("svc").state == vrrp::State::master);
  REQUIRE(node.state("lan").state == vrrp::State::master);
  CHECK_FALSE(node.state("svc").fault);
  CHECK_FALSE(node.standby.load());
  node.drain();
  a_svc_up = false;  // a-svc's port loses its link; no instance tracks it
  for (uint64_t end = t + 300 * ms; t < end; t += 10 * ms) node.runner.poll(*h.tables, nullptr, node.io, t);
  CHECK(node.state("svc").state == vrrp::State::backup);
  CHECK(node.state("svc").fault);
  CHECK(node.state("svc").effective_priority == 0);
  CHECK(node.state("svc").last.back().reason == vrrp::Reason::link_down);
  CHECK(node.state("lan").state == vrrp::State::backup);
  CHECK_FALSE(node.state("lan").fault);
  CHECK(node.state("lan").last.back().reason == vrrp::Reason::group);
  CHECK(node.standby.load());
  for (uint64_t end = t + 2000 * ms; t < end; t += 10 * ms) node.runner.poll(*h.tables, nullptr, node.io, t);
  CHECK(node.state("svc").state == vrrp::State::backup);  // held while the link is down
  CHECK(node.state("lan").state == vrrp::State::backup);
  a_svc_up = true;
  for (uint64_t end = t + 1000 * ms; t < end; t += 10 * ms) node.runner.poll(*h.tables, nullptr, node.io, t);
  CHECK_FALSE(node.state("svc").fault);
  CHECK(node.state("svc").effective_priority == 100);
  CHECK(node.state("svc").state == vrrp::State::master);  // no master heard: the group comes back
  CHECK(node.state("lan").state == vrrp::State::master);
  CHECK_FALSE(node.standby.load());
  node.drain();
}

TEST_CASE("frames forwarded out of an interface carry the virtual MAC while its instance is master") {
  Harness h(two_tenants);
  REQUIRE(h.apply(ops(R"([{"op": "CREATE", "object": {"vrrp_instance": {"name": "svc", "interface": "a-svc",
      "vrid": 9, "advert_interval_cs": 10, "addresses": ["10.1.0.254"]}}}])"))
              .code == Code::ok);
  vrrp::Runner runner;
  vrrp::Io io;
  io.pool = h.pool;
  io.to_worker = h.handoff[0];
  auto drain = [&] {
    rte_mbuf* pkts[64];
    unsigned n;
    while ((n = rte_ring_sc_dequeue_burst(h.handoff[0], reinterpret_cast<void**>(pkts), 64, nullptr)))
      rte_pktmbuf_free_bulk(pkts, n);
  };
  // From a-lan to a host behind a-svc (its static neighbour 02:00:00:00:aa:aa): forwarded.
  auto forward = [&] {
    h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) +
                     ipv4("10.0.0.7", "10.1.0.10", 17, udp(1000, 2000, 8)));
    auto out = h.sent(1);
    REQUIRE(out.size() == 1);
    CHECK(Bytes(out[0].begin(), out[0].begin() + 6) == Bytes{2, 0, 0, 0, 0xaa, 0xaa});
    return Bytes(out[0].begin() + 6, out[0].begin() + 12);
  };
  runner.poll(*h.tables, nullptr, io, 0);
  REQUIRE(runner.status().at(0).state == vrrp::State::backup);
  CHECK(forward() == Bytes{2, 0, 0, 0, 1, 0x0a});  // backup: the interface's own MAC
  uint64_t t = 0;
  for (; t < 1000 * ms && runner.status().at(0).state != vrrp::State::master; t += 10 * ms)
    runner.poll(*h.tables, nullptr, io, t);
  REQUIRE(runner.status().at(0).state == vrrp::State::master);
  drain();
  CHECK(forward() == Bytes{0, 0, 0x5e, 0, 1, 9});  // master: the virtual MAC
  // The instance's interface changed (a new one, not master yet): the own MAC again.
  REQUIRE(h.apply(ops(R"([{"op": "UPDATE", "object": {"vrrp_instance": {"name": "svc", "interface": "a-svc",
      "vrid": 10, "advert_interval_cs": 10, "addresses": ["10.1.0.254"]}}}])"))
              .code == Code::ok);
  CHECK(forward() == Bytes{2, 0, 0, 0, 1, 0x0a});
  // Deleted: nothing left pointing at it.
  REQUIRE(h.apply(ops(R"([{"op": "DELETE", "object": {"vrrp_instance": {"name": "svc"}}}])")).code == Code::ok);
  CHECK(forward() == Bytes{2, 0, 0, 0, 1, 0x0a});
  drain();
}
