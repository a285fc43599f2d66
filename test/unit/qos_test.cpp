// QoS policers: the kind's checks, the colours rte_meter gives against the RFCs' arithmetic
// (computed here on their own), and the policer in the pipeline.
#include <rte_cycles.h>
#include <rte_ip.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "fixture.h"
#include "harness.h"
#include "qos/commit.h"
#include "qos/qos.h"

using namespace frame;
using medix::dp::Code;
namespace v1 = medix::dataplane::v1;
namespace qos = medix::dp::qos;

namespace {

std::string policer_op(const std::string& op, const std::string& fields) {
  return R"([{"op": ")" + op + R"(", "object": {"policer": {)" + fields + "}}}]";
}

const std::string good = R"("name": "pa", "tenant": "a", "mode": "POLICER_SRTCM", "cir": "1250000",
                            "cbs": "3000", "ebs": "3000")";

// RFC 2697 (srTCM), RFC 2698 (trTCM) and RFC 4115 (trTCM), colour-blind and colour-aware, as
// the RFCs write them: buckets full at the start, tokens added at the rates as time passes
// (srTCM: to C, its overflow to E; RFC 4115: to C at cir and to E at eir, each on its own).
// `in` is the packet's colour before metering (green when colour-blind: the RFCs' colour-blind
// rules are their colour-aware ones with every packet green).
struct Rfc {
  v1::PolicerMode mode;
  double cir, second_rate, cbs, second_burst;  // second: pir/pbs (RFC 2698), eir/ebs (RFC 4115), -/ebs (RFC 2697)
  double tc, t2;
  double last = 0;
  Rfc(v1::PolicerMode m, double c, double r2, double b1, double b2)
      : mode(m), cir(c), second_rate(r2), cbs(b1), second_burst(b2), tc(b1), t2(b2) {}
  int colour(double t, double bytes, int in) {
    double dt = t - last;
    last = t;
    if (mode == v1::POLICER_TRTCM) {
      tc = std::min(cbs, tc + cir * dt);
      t2 = std::min(second_burst, t2 + second_rate * dt);
      if (in == qos::red || t2 < bytes) return qos::red;
      if (in == qos::yellow || tc < bytes) {
        t2 -= bytes;
        return qos::yellow;
      }
      t2 -= bytes;
      tc -= bytes;
      return qos::green;
    }
    if (mode == v1::POLICER_TRTCM_RFC4115) {
      tc = std::min(cbs, tc + cir * dt);
      t2 = std::min(second_burst, t2 + second_rate * dt);
    } else {
      double add = cir * dt, to_c = std::min(add, cbs - tc);
      tc += to_c;
      t2 = std::min(second_burst, t2 + add - to_c);
    }
    if (in == qos::green && tc >= bytes) {
      tc -= bytes;
      return qos::green;
    }
    if (in != qos::red && t2 >= bytes) {
      t2 -= bytes;
      return qos::yellow;
    }
    return qos::red;
  }
};

// The DSCPs a colour-aware test stream cycles through, with the colour RFC 2597's drop
// precedence gives each (written out here, not computed): BE, AF11, AF12, AF13, EF, AF41, AF42, AF43, CS3.
constexpr std::pair<uint8_t, int> stream_dscps[] = {{0, qos::green},   {10, qos::green}, {12, qos::yellow},
                                                    {14, qos::red},    {46, qos::green}, {34, qos::green},
                                                    {36, qos::yellow}, {38, qos::red},   {24, qos::green}};

// Runs a timed stream through one worker's share of a compiled policer and through the RFC's
// arithmetic: packets of varying sizes at `offered` bytes a second, on for 0.1 s and off for
// 0.1 s (so that idle buckets fill and every colour shows), for `seconds`. Colour-aware
// policers get each packet's colour from its DSCP (stream_dscps, in turn).
void compare(const v1::Policer& p, double offered, double seconds) {
  qos::Policer compiled;
  REQUIRE(!qos::compile(p, 1, compiled));
  qos::Share& s = compiled.shares[0];
  uint64_t start = p.mode() == v1::POLICER_TRTCM           ? s.trtcm.time_tc
                   : p.mode() == v1::POLICER_TRTCM_RFC4115 ? s.rfc4115.time_tc
                                                           : s.srtcm.time;
  double hz = double(rte_get_tsc_hz());
  double r2 = p.mode() == v1::POLICER_TRTCM ? double(p.pir()) : double(p.eir());
  double b2 = p.mode() == v1::POLICER_TRTCM ? double(p.pbs()) : double(p.ebs());
  Rfc rfc(p.mode(), double(p.cir()), r2, double(p.cbs()), b2);
  uint64_t meter[3] = {}, expected[3] = {}, n = 0;
  double t = 0;
  for (uint32_t i = 0; t < seconds; i++) {
    uint32_t bytes = 64 + (i * 397) % 1437;  // 64 .. 1500
    auto [dscp, in] = stream_dscps[i % std::size(stream_dscps)];
    if (!p.colour_aware()) in = qos::green;
    CHECK(compiled.colour_aware == p.colour_aware());
    uint64_t now = start + uint64_t(t * hz);
    qos::Colour c = qos::meter(compiled, s, now, bytes, compiled.colour_aware ? qos::colour_of_dscp(dscp) : qos::green);
    meter[c]++;
    expected[rfc.colour(t, bytes, in)]++;
    n++;
    t += bytes / offered;
    if (std::fmod(t, 0.2) > 0.1) t = std::ceil(t / 0.2) * 0.2;
  }
  INFO("packets " << n << ": green " << meter[0] << " vs " << expected[0] << ", yellow " << meter[1] << " vs "
                  << expected[1] << ", red " << meter[2] << " vs " << expected[2]);
  for (int c = 0; c < 3; c++) {
    CHECK(expected[c] > n / 20);  // the stream gives every colour, in numbers
    // rte_meter adds tokens in whole periods of the TSC: within 1% of the packets.
    CHECK(std::fabs(double(meter[c]) - double(expected[c])) <= 0.01 * double(n));
  }
}

v1::Policer rfc4115(bool aware) {
  v1::Policer p;
  p.set_name("p");
  p.set_mode(v1::POLICER_TRTCM_RFC4115);
  p.set_cir(1'250'000);  // 10 Mbit/s committed, 5 more excess
  p.set_eir(625'000);
  p.set_cbs(20'000);
  p.set_ebs(30'000);
  p.set_colour_aware(aware);
  return p;
}

}  // namespace

TEST_CASE("srTCM colours a timed stream as RFC 2697 says") {
  v1::Policer p;
  p.set_name("p");
  p.set_mode(v1::POLICER_SRTCM);
  p.set_cir(1'250'000);  // 10 Mbit/s
  p.set_cbs(20'000);
  p.set_ebs(40'000);
  compare(p, 1'250'000 * 2.5, 2.0);  // offered 25 Mbit/s, half the time, for 2 s
}

TEST_CASE("trTCM colours a timed stream as RFC 2698 says") {
  v1::Policer p;
  p.set_name("p");
  p.set_mode(v1::POLICER_TRTCM);
  p.set_cir(1'250'000);  // 10 Mbit/s committed, 15 peak
  p.set_pir(1'875'000);
  p.set_cbs(20'000);
  p.set_pbs(30'000);
  compare(p, 2'500'000, 2.0);  // offered 20 Mbit/s, half the time, for 2 s
  p.set_colour_aware(true);
  compare(p, 2'500'000, 2.0);  // RFC 2698's colour-aware mode
}

TEST_CASE("srTCM colour-aware colours a timed stream as RFC 2697 says") {
  v1::Policer p;
  p.set_name("p");
  p.set_mode(v1::POLICER_SRTCM);
  p.set_cir(1'250'000);
  p.set_cbs(20'000);
  p.set_ebs(40'000);
  p.set_colour_aware(true);
  compare(p, 1'250'000 * 2.5, 2.0);
}

TEST_CASE("RFC 4115's trTCM colours a timed stream as RFC 4115 says, colour-blind and colour-aware") {
  compare(rfc4115(false), 2'500'000, 2.0);  // offered 20 Mbit/s, half the time, for 2 s
  compare(rfc4115(true), 2'500'000, 2.0);
}

TEST_CASE("a colour-aware policer's input colour is the DSCP's drop precedence (RFC 2597)") {
  // AFxy is 8x + 2y: y 1 green, 2 yellow, 3 red, for x 1..4.
  for (unsigned x = 1; x <= 4; x++) {
    CHECK(qos::colour_of_dscp(8 * x + 2) == qos::green);
    CHECK(qos::colour_of_dscp(8 * x + 4) == qos::yellow);
    CHECK(qos::colour_of_dscp(8 * x + 6) == qos::red);
  }
  // Everything else is green: best effort, class selectors, EF, odd and unassigned codepoints.
  for (unsigned d : {0u, 8u, 16u, 24u, 32u, 40u, 46u, 48u, 56u, 11u, 13u, 15u, 44u, 42u, 2u, 4u, 6u, 63u})
    CHECK(qos::colour_of_dscp(d) == qos::green);
}

TEST_CASE("each worker meters its share of the rates, with whole bursts") {
  v1::Policer p;
  p.set_mode(v1::POLICER_TRTCM);
  p.set_cir(1'000'000);
  p.set_pir(4'000'000);
  p.set_cbs(3000);
  p.set_pbs(6000);
  qos::Policer one, four;
  REQUIRE(!qos::compile(p, 1, one));
  REQUIRE(!qos::compile(p, 4, four));
  CHECK(four.workers == 4);
  double hz = double(rte_get_tsc_hz());
  // Cycles per byte of the committed rate: four times as many with four workers.
  CHECK(double(four.trtcm.cir_period) / double(four.trtcm.cir_bytes_per_period) ==
        Approx(4 * double(one.trtcm.cir_period) / double(one.trtcm.cir_bytes_per_period)).epsilon(0.01));
  CHECK(double(one.trtcm.cir_period) / double(one.trtcm.cir_bytes_per_period) == Approx(hz / 1'000'000).epsilon(0.01));
  CHECK(four.trtcm.cbs == 3000);
  CHECK(four.trtcm.pbs == 6000);
}

TEST_CASE("a policer is checked whole: rates, bursts, references, each error names its field") {
  Harness h(two_tenants);
  auto refused = [&](const std::string& fields, const std::string& message) {
    auto r = h.apply(ops(policer_op("CREATE", fields)));
    INFO(r.message);
    CHECK(r.code == Code::invalid_argument);
    CHECK(r.message.find(message) == 0);
  };
  refused(R"("name": "pa", "tenant": "a", "mode": "POLICER_SRTCM", "cir": "0", "cbs": "3000", "ebs": "3000")",
          "operations[0].policer.cir: must be above 0");
  refused(R"("name": "pa", "tenant": "a", "mode": "POLICER_SRTCM", "cir": "1000", "cbs": "1499", "ebs": "3000")",
          "operations[0].policer.cbs: 1499 bytes is below one packet of the class's MTU (1500)");
  // a-svc's MTU is 1000: a burst of 1200 bytes holds one of its packets.
  CHECK(h.apply(ops(policer_op("CREATE", R"("name": "svc", "tenant": "a", "interface": "a-svc",
                  "mode": "POLICER_SRTCM", "cir": "1000", "cbs": "1200", "ebs": "1200")")))
            .code == Code::ok);
  refused(R"("name": "pa", "tenant": "a", "mode": "POLICER_TRTCM", "cir": "2000", "pir": "1000", "cbs": "3000",
             "pbs": "3000")",
          "operations[0].policer.pir: must be at least cir");
  refused(R"("name": "pa", "tenant": "nope", "mode": "POLICER_SRTCM", "cir": "1000", "cbs": "3000", "ebs": "3000")",
          "operations[0].policer.tenant: no tenant named \"nope\"");
  refused(R"("name": "pa", "tenant": "a", "interface": "b-lan", "mode": "POLICER_SRTCM", "cir": "1000",
             "cbs": "3000", "ebs": "3000")",
          "operations[0].policer.interface: \"b-lan\" is in tenant \"b\", not \"a\"");
  refused(R"("name": "pa", "tenant": "a", "cir": "1000", "cbs": "3000", "ebs": "3000")",
          "operations[0].policer.mode: is required");
  refused(good + R"(, "red": {"action": "POLICER_REMARK", "dscp": 64})", "operations[0].policer.red.dscp: ");
  // Each mode's own fields, the others' unset.
  refused(good + R"(, "eir": "1000")", "operations[0].policer.eir: is not a field of POLICER_SRTCM");
  refused(R"("name": "pa", "tenant": "a", "mode": "POLICER_TRTCM", "cir": "1000", "pir": "2000", "cbs": "3000",
             "pbs": "3000", "ebs": "3000")",
          "operations[0].policer.ebs: is not a field of POLICER_TRTCM");
  refused(R"("name": "pa", "tenant": "a", "mode": "POLICER_TRTCM_RFC4115", "cir": "1000", "cbs": "3000",
             "ebs": "3000", "colour_aware": true)",
          "operations[0].policer.eir: must be above 0");
  refused(R"("name": "pa", "tenant": "a", "mode": "POLICER_TRTCM_RFC4115", "cir": "1000", "eir": "500",
             "cbs": "3000", "ebs": "100")",
          "operations[0].policer.ebs: 100 bytes is below one packet");
  refused(R"("name": "pa", "tenant": "a", "mode": "POLICER_TRTCM_RFC4115", "cir": "1000", "eir": "500",
             "cbs": "3000", "ebs": "3000", "pir": "2000")",
          "operations[0].policer.pir: is not a field of POLICER_TRTCM_RFC4115");
  refused(good + R"(, "dscp": 10)", "operations[0].policer.dscp: needs match_dscp");
  refused(R"("name": "other", "tenant": "a", "interface": "a-svc", "mode": "POLICER_SRTCM", "cir": "1000",
             "cbs": "3000", "ebs": "3000")",
          "operations[0].policer: policer \"svc\" has the same class");

  // A good policer beside a bad one: neither is applied.
  auto both = h.apply(ops(R"([{"op": "CREATE", "object": {"policer": {)" + good + R"(}}},
    {"op": "CREATE", "object": {"policer": {"name": "pb", "tenant": "b", "mode": "POLICER_SRTCM", "cir": "0",
      "cbs": "3000", "ebs": "3000"}}}])"));
  CHECK(both.code == Code::invalid_argument);
  CHECK(both.message.find("operations[1].policer.cir: ") == 0);
  h.controller.read([](const Intent& in, const Committer& c, uint64_t) {
    CHECK(in.named.at(v1::Object::kPolicer).size() == 1);  // svc alone
    CHECK(c.current()->qos.policers.size() == 1);
    return 0;
  });
  // What a policer refers to stays while it does (a-svc: its static neighbour and the policer).
  auto busy = h.apply(ops(R"([{"op": "DELETE", "object": {"interface": {"name": "a-svc"}}}])"));
  CHECK(busy.message.find("operations[0].interface: interface \"a-svc\" is still used by 2 objects") == 0);
  REQUIRE(h.apply(ops(policer_op("DELETE", R"("name": "svc")"))).code == Code::ok);
  CHECK(h.tables->qos.policers.empty());
}

TEST_CASE("a policer colours its class's packets, remarks and drops as told, and counts them") {
  Harness h(two_tenants);
  // 1 byte a second: in the test's time the buckets are what they started with. 100-byte
  // packets: 15 green (cbs), 15 yellow (ebs), then red.
  REQUIRE(h.apply(ops(policer_op("CREATE", R"("name": "pa", "tenant": "a", "interface": "a-lan",
                   "mode": "POLICER_SRTCM", "cir": "1", "cbs": "1500", "ebs": "1500",
                   "yellow": {"action": "POLICER_REMARK", "dscp": 10})")))
              .code == Code::ok);
  auto packet = [](uint16_t vid, uint8_t tos) {
    auto f = ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, vid) +
             ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 72));
    f[18 + 1] = tos;  // the checksum is made anew below
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f.data() + 18);
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    return f;
  };
  std::vector<uint8_t> tos;
  for (int i = 0; i < 40; i++) {
    h.receive(0, packet(10, 0x01));  // ECT(1): kept through a remark
    for (const auto& f : h.sent(1)) {
      tos.push_back(f[18 + 1]);
      CHECK(rte_raw_cksum(f.data() + 18, 20) == 0xffff);  // the checksum follows the remark
    }
  }
  REQUIRE(tos.size() == 30);
  CHECK(std::count(tos.begin(), tos.begin() + 15, 0x01) == 15);
  CHECK(std::count(tos.begin() + 15, tos.end(), (10 << 2) | 1) == 15);
  CHECK(h.drops(Drop::policed) == 10);
  // Tenant b's packets are no class of it.
  h.receive(0, ether("02:00:00:00:00:0b", host_mac, 0x8100) + vlan(0x0800, 20) +
                   ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 72)));
  CHECK(h.drops(Drop::policed) == 10);
  const qos::Share& s = h.tables->qos.policers.at(0).shares[0];
  CHECK(s.packets[qos::green] == 15);
  CHECK(s.packets[qos::yellow] == 15);
  CHECK(s.packets[qos::red] == 10);
  CHECK(s.bytes[qos::green] == 1500);
  CHECK(s.dropped == 10);
}

TEST_CASE("a colour-aware policer takes the DSCP's colour: a packet's colour only gets worse") {
  Harness h(two_tenants);
  // RFC 4115, colour-aware, 1 byte a second: the buckets are what they started with, 15 packets
  // of 100 bytes in C and 15 in E. Yellow is remarked AF12, red dropped.
  REQUIRE(h.apply(ops(policer_op("CREATE", R"("name": "pa", "tenant": "a", "interface": "a-lan",
                   "mode": "POLICER_TRTCM_RFC4115", "colour_aware": true, "cir": "1", "cbs": "1500",
                   "eir": "1", "ebs": "1500", "yellow": {"action": "POLICER_REMARK", "dscp": 12})")))
              .code == Code::ok);
  auto packet = [](uint8_t dscp) {
    auto f = ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) +
             ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 72));
    f[18 + 1] = uint8_t(dscp << 2);
    auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f.data() + 18);
    ip->hdr_checksum = 0;
    ip->hdr_checksum = rte_ipv4_cksum(ip);
    return f;
  };
  auto dscp_out = [&](uint8_t dscp) -> int {
    h.receive(0, packet(dscp));
    auto sent = h.sent(1);
    return sent.empty() ? -1 : sent[0][18 + 1] >> 2;
  };
  CHECK(dscp_out(14) == -1);  // AF13: red in, red out, with C and E full
  CHECK(dscp_out(12) == 12);  // AF12: yellow in, taken from E, not C
  CHECK(dscp_out(10) == 10);  // AF11: green, from C
  CHECK(dscp_out(0) == 0);    // best effort: green
  const qos::Share& s = h.tables->qos.policers.at(0).shares[0];
  CHECK(s.packets[qos::red] == 1);
  CHECK(s.packets[qos::yellow] == 1);
  CHECK(s.packets[qos::green] == 2);
  CHECK(s.rfc4115.tc == 1500 - 200);
  CHECK(s.rfc4115.te == 1500 - 100);
  // Green in, C spent: yellow from E (RFC 4115: E is the excess, however C was spent).
  for (int i = 0; i < 13; i++) CHECK(dscp_out(10) == 10);
  CHECK(dscp_out(10) == 12);
  CHECK(h.drops(Drop::policed) == 1);
}

// Egress shapers (qos/shape.cpp).
namespace {

std::string shaper_op(const std::string& op, const std::string& fields) {
  return R"([{"op": ")" + op + R"(", "object": {"shaper": {)" + fields + "}}}]";
}

// A UDP packet from a-lan (tenant a) to a-svc's neighbour, with this DSCP.
std::vector<uint8_t> to_svc(uint8_t dscp, uint16_t payload = 72) {
  auto f = ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) +
           ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, payload));
  f[18 + 1] = uint8_t(dscp << 2);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f.data() + 18);
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  return f;
}

}  // namespace

TEST_CASE("a shaper is checked whole: rates, bursts, classes, references, each error names its field") {
  Harness h(two_tenants);
  auto refused = [&](const std::string& fields, const std::string& message) {
    auto r = h.apply(ops(shaper_op("CREATE", fields)));
    INFO(r.message);
    CHECK(r.code == Code::invalid_argument);
    CHECK(r.message.find(message) == 0);
  };
  const std::string head = R"("name": "s", "interface": "a-svc", "rate": "1000000", "burst": "3000", )";
  refused(R"("name": "s", "rate": "1000", "burst": "3000", "classes": [{"name": "c", "weight": 1}])",
          "operations[0].shaper.interface: is required");
  refused(
      R"("name": "s", "interface": "nope", "rate": "1000", "burst": "3000", "classes": [{"name": "c", "weight": 1}])",
      "operations[0].shaper.interface: no interface or tunnel named \"nope\"");
  refused(R"("name": "s", "interface": "a-svc", "burst": "3000", "classes": [{"name": "c", "weight": 1}])",
          "operations[0].shaper.rate: must be above 0");
  // a-svc's MTU is 1000: a frame of it with two tags is 1022 bytes.
  refused(
      R"("name": "s", "interface": "a-svc", "rate": "1000", "burst": "1021", "classes": [{"name": "c", "weight": 1}])",
      "operations[0].shaper.burst: 1021 bytes is below one frame of the interface's MTU (1022)");
  refused(head + R"("classes": [])", "operations[0].shaper.classes: at least one class is required");
  refused(head + R"("classes": [{"name": "c"}])",
          "operations[0].shaper.classes[0]: neither a guaranteed rate nor a weight");
  refused(head + R"("classes": [{"name": "c", "priority": true}])",
          "operations[0].shaper.classes[0].rate: a priority class needs a rate");
  refused(head + R"("classes": [{"name": "c", "priority": true, "rate": "1000", "weight": 2}])",
          "operations[0].shaper.classes[0].weight: a priority class is served before any share");
  refused(head + R"("classes": [{"name": "c", "weight": 1}, {"name": "c", "weight": 1}])",
          "operations[0].shaper.classes[1].name: class \"c\" is already classes[0]");
  refused(head + R"("classes": [{"name": "c", "weight": 1, "dscp": [10, 64]}])",
          "operations[0].shaper.classes[0].dscp[1]: ");
  refused(head + R"("classes": [{"name": "c", "weight": 1, "mark_dscp": 10}])",
          "operations[0].shaper.classes[0].mark_dscp: needs set_dscp");
  refused(head + R"("classes": [{"name": "c", "weight": 1, "set_dscp": true, "mark_dscp": 64}])",
          "operations[0].shaper.classes[0].mark_dscp: ");
  refused(head + R"("classes": [{"name": "c", "weight": 1, "tenant": "nope"}])",
          "operations[0].shaper.classes[0].tenant: no tenant named \"nope\"");
  refused(head + R"("classes": [{"name": "c", "weight": 1, "in_interface": "nope"}])",
          "operations[0].shaper.classes[0].in_interface: no interface or tunnel named \"nope\"");
  refused(head + R"("classes": [{"name": "c", "rate": "600000"}, {"name": "d", "rate": "500000"}])",
          "operations[0].shaper.classes: the classes' rates add up to 1100000 bytes/s, more than the shaper's rate "
          "1000000");
  refused(head + R"("classes": [{"name": "c", "weight": 1, "queue_limit": 65537}])",
          "operations[0].shaper.classes[0].queue_limit: ");
  REQUIRE(
      h.apply(ops(shaper_op("CREATE", head + R"("classes": [{"name": "c", "weight": 1, "in_interface": "a-lan"}])")))
          .code == Code::ok);
  refused(
      R"("name": "t", "interface": "a-svc", "rate": "1000", "burst": "3000", "classes": [{"name": "c", "weight": 1}])",
      "operations[0].shaper.interface: shaper \"s\" already shapes \"a-svc\"");
  // What a shaper refers to stays while it does.
  auto busy = h.apply(ops(R"([{"op": "DELETE", "object": {"interface": {"name": "a-lan"}}}])"));
  CHECK(busy.message.find("operations[0].interface: interface \"a-lan\" is still used by") == 0);
  CHECK(h.tables->qos.shapers.size() == 1);
  REQUIRE(h.tables->qos.shaper_of.size() > h.tables->qos.shapers[0].interface);
  REQUIRE(h.apply(ops(shaper_op("DELETE", R"("name": "s")"))).code == Code::ok);
  CHECK(h.tables->qos.shapers.empty());
  CHECK(h.tables->qos.shaper_of.empty());
}

TEST_CASE("a shaper's classifier: first class whose match holds, else the last") {
  Harness h(two_tenants);
  REQUIRE(h.apply(ops(shaper_op("CREATE", R"("name": "s", "interface": "a-svc", "rate": "1000000", "burst": "3000",
    "classes": [{"name": "ef", "priority": true, "rate": "1000", "dscp": [46, 40]},
                {"name": "from-b", "weight": 1, "tenant": "b"},
                {"name": "from-q", "weight": 1, "in_interface": "q-lan", "dscp": [10]},
                {"name": "rest", "weight": 1}])")))
              .code == Code::ok);
  const Tables& t = *h.tables;
  const qos::Shaper& s = t.qos.shapers.at(0);
  auto slot = [&](const std::string& name) {
    for (uint16_t i = 0; i < t.interfaces.size(); i++)
      if (t.interfaces[i].uid && t.interfaces[i].name == name) return i;
    FAIL("no interface " << name);
    return uint16_t(0);
  };
  PacketMeta m{};
  m.iface_in = slot("a-lan");
  CHECK(medix::dp::class_of(t, s, m, 46) == 0);
  CHECK(medix::dp::class_of(t, s, m, 40) == 0);
  CHECK(medix::dp::class_of(t, s, m, 0) == 3);
  CHECK(medix::dp::class_of(t, s, m, -1) == 3);  // no IPv4 header: no DSCP class
  m.iface_in = slot("b-lan");
  CHECK(medix::dp::class_of(t, s, m, 0) == 1);
  CHECK(medix::dp::class_of(t, s, m, 46) == 0);  // the first that matches
  m.iface_in = slot("q-lan");
  CHECK(medix::dp::class_of(t, s, m, 10) == 2);
  CHECK(medix::dp::class_of(t, s, m, 11) == 3);  // both fields must hold
}

TEST_CASE("a shaper sends strict priority first, then guarantees, then shares, marks, and drops a full queue") {
  Harness h(two_tenants);
  REQUIRE(h.apply(ops(shaper_op("CREATE", R"("name": "s", "interface": "a-svc", "rate": "100000", "burst": "5000",
    "classes": [{"name": "ef", "priority": true, "rate": "1000", "dscp": [46]},
                {"name": "img", "rate": "50000", "weight": 1, "dscp": [34], "set_dscp": true, "mark_dscp": 36},
                {"name": "bulk", "weight": 1, "queue_limit": 3}])")))
              .code == Code::ok);
  Worker& w = h.worker;
  // Queued, not sent: the scheduler sends.
  for (uint8_t d : {0, 0, 0, 0, 34, 34, 46, 46}) h.receive(0, to_svc(d));
  CHECK(h.sent(1).empty());
  CHECK(h.drops(Drop::shaper_queue_full) == 1);  // bulk's fourth
  const qos::ShaperShare& share = h.tables->qos.shapers.at(0).shares[0];
  CHECK(share.classes[0].depth() == 2);
  CHECK(share.classes[1].depth() == 2);
  CHECK(share.classes[2].depth() == 3);
  CHECK(share.classes[2].dropped == 1);
  // Every bucket starts full: all go, in the order of the classes.
  uint64_t now = rte_rdtsc();
  CHECK(medix::dp::schedule(w, now) == 7);
  std::vector<int> dscps;
  for (const auto& f : h.sent(1)) {
    dscps.push_back(f[18 + 1] >> 2);
    CHECK(rte_raw_cksum(f.data() + 18, 20) == 0xffff);  // the checksum follows the mark
  }
  CHECK(dscps == std::vector<int>{46, 46, 36, 36, 0, 0, 0});
  CHECK(share.classes[0].sent_packets == 2);
  CHECK(share.classes[2].depth() == 0);
}

TEST_CASE("a shaper's classes get their guarantee and split the rest by weight, at the contract's rate") {
  Harness h(two_tenants);
  // 100 kB/s; img guaranteed 40 kB/s, both weight 1: img 70 kB/s, bulk 30 kB/s.
  REQUIRE(h.apply(ops(shaper_op("CREATE", R"("name": "s", "interface": "a-svc", "rate": "100000", "burst": "2000",
    "classes": [{"name": "img", "rate": "40000", "weight": 1, "dscp": [34], "queue_limit": 4096},
                {"name": "bulk", "weight": 1, "queue_limit": 4096}])")))
              .code == Code::ok);
  for (int i = 0; i < 1500; i++) {
    h.receive(0, to_svc(34));
    h.receive(0, to_svc(0));
  }
  const qos::ShaperShare& share = h.tables->qos.shapers.at(0).shares[0];
  REQUIRE(share.classes[0].depth() == 1500);
  REQUIRE(share.classes[1].depth() == 1500);
  // One simulated second in 1 ms steps; the buckets start full (2000 bytes).
  uint64_t hz = rte_get_tsc_hz(), start = rte_rdtsc();
  for (int ms = 0; ms <= 1000; ms++) {
    medix::dp::schedule(h.worker, start + hz * ms / 1000);
    h.sent(1);
  }
  double img = double(share.classes[0].sent_bytes), bulk = double(share.classes[1].sent_bytes);
  INFO("img " << img << " bulk " << bulk);
  CHECK(img + bulk <= 100000 + 2000);
  CHECK(img + bulk >= 100000 - 2 * 1514);
  CHECK(std::abs(img - 70000) <= 0.03 * 70000);
  CHECK(std::abs(bulk - 30000) <= 0.05 * 30000);
}

// WRED on a shaper class (qos/shape.cpp, rte_red).
TEST_CASE("a shaper class's WRED is checked, each error names its field, and a refusal changes nothing") {
  Harness h(two_tenants);
  const std::string head = R"("name": "s", "interface": "a-svc", "rate": "1000000", "burst": "3000", )";
  auto with = [&](const std::string& wred, const std::string& extra = "") {
    return head + R"("classes": [{"name": "c", "weight": 1)" + extra + R"(, "wred": {)" + wred + "}}]";
  };
  REQUIRE(h.apply(ops(shaper_op("CREATE", with(R"("green": {"min_th": 20, "max_th": 60}, "ecn": true)")))).code ==
          Code::ok);
  const qos::Shaper* before = &h.tables->qos.shapers.at(0);
  const qos::ClassQueue* queue = &before->shares[0].classes[0];
  auto refused = [&](const std::string& fields, const std::string& message) {
    auto r = h.apply(ops(shaper_op("UPDATE", fields)));
    INFO(r.message);
    CHECK(r.code == Code::invalid_argument);
    CHECK(r.message.find(message) == 0);
    // State unchanged: the same shaper, its queues and its WRED.
    REQUIRE(h.tables->qos.shapers.size() == 1);
    CHECK(&h.tables->qos.shapers[0].shares[0].classes[0] == queue);
    CHECK(h.tables->qos.shapers[0].classes[0].wred);
  };
  const std::string at = "operations[0].shaper.classes[0].wred.";
  refused(with(R"("ecn": true)"), at + "green: is required");
  refused(with(R"("green": {"min_th": 0, "max_th": 0})"), at + "green.max_th: must be above 0");
  refused(with(R"("green": {"min_th": 20, "max_th": 300})"),
          at + "green.max_th: 300 packets is beyond the class's queue_limit (256)");
  refused(with(R"("green": {"min_th": 20, "max_th": 2000})", R"(, "queue_limit": 4096)"),
          at + "green.max_th: 2000 packets is beyond rte_red's limit (1023)");
  refused(with(R"("green": {"min_th": 60, "max_th": 60})"), at + "green.min_th: 60 is not below max_th (60)");
  refused(with(R"("green": {"min_th": 20, "max_th": 60}, "yellow": {"min_th": 10, "max_th": 5})"),
          at + "yellow.min_th: 10 is not below max_th (5)");
  refused(with(R"("green": {"min_th": 20, "max_th": 60}, "red": {"max_th": 10, "maxp_inv": 256})"),
          at + "red.maxp_inv: ");
  refused(with(R"("green": {"min_th": 20, "max_th": 60}, "weight_log2": 13)"), at + "weight_log2: ");
  // Accepted: compiled into rte_red's configs, an unset colour taking the one above it.
  REQUIRE(h.apply(ops(shaper_op("UPDATE", with(R"("green": {"min_th": 20, "max_th": 60},
      "red": {"min_th": 5, "max_th": 10, "maxp_inv": 1}, "weight_log2": 4)"))))
              .code == Code::ok);
  const qos::ShaperClass& k = h.tables->qos.shapers.at(0).classes.at(0);
  CHECK(k.wred);
  CHECK_FALSE(k.ecn);
  CHECK(k.red[qos::green].wq_log2 == 4);
  CHECK(k.red[qos::green].maxp_inv == qos::default_wred_maxp_inv);
  CHECK(k.red[qos::green].min_th == uint32_t(20) << (4 + RTE_RED_SCALING));
  CHECK(k.red[qos::yellow].max_th == k.red[qos::green].max_th);
  CHECK(k.red[qos::red].max_th == uint32_t(10) << (4 + RTE_RED_SCALING));
  CHECK(k.red[qos::red].maxp_inv == 1);
}

TEST_CASE("a shaper class's WRED: below min_th queued, at max_th dropped, ECN-capable packets marked CE") {
  Harness h(two_tenants);
  // Green never reaches its min_th here; red is dropped once the average is 2 packets; yellow is
  // between its thresholds (dropped, or marked CE when ECN-capable, with probability).
  REQUIRE(h.apply(ops(shaper_op("CREATE", R"("name": "s", "interface": "a-svc", "rate": "100000", "burst": "5000",
    "classes": [{"name": "c", "weight": 1, "set_dscp": true, "mark_dscp": 0,
                 "wred": {"green": {"min_th": 100, "max_th": 200}, "yellow": {"min_th": 2, "max_th": 250, "maxp_inv": 1},
                          "red": {"min_th": 0, "max_th": 2}, "weight_log2": 1, "ecn": true}}])")))
              .code == Code::ok);
  const qos::ClassQueue& q = h.tables->qos.shapers.at(0).shares[0].classes[0];
  constexpr uint8_t af11 = 10, af12 = 12, af13 = 14;
  for (int i = 0; i < 25; i++) h.receive(0, to_svc(af11));
  CHECK(q.depth() == 25);
  CHECK(q.wred_dropped == 0);
  // The average is about 23 packets: every red packet is at or above its max_th.
  for (int i = 0; i < 10; i++) h.receive(0, to_svc(af13));
  CHECK(q.depth() == 25);
  CHECK(q.wred_dropped == 10);
  CHECK(h.drops(Drop::shaper_wred) == 10);
  CHECK(h.drops(Drop::shaper_queue_full) == 0);
  // Yellow between its thresholds, rte_red's random draw forced to "drop": an ECT(0) packet is
  // marked CE and queued, a Not-ECT one dropped.
  auto ect0 = to_svc(af12);
  ect0[18 + 1] |= 2;
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(ect0.data() + 18);
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  rte_red_rand_val = 0;
  h.receive(0, ect0);
  CHECK(q.ecn_marked == 1);
  CHECK(q.depth() == 26);
  rte_red_rand_val = 0;
  h.receive(0, to_svc(af12));
  CHECK(q.wred_dropped == 11);
  CHECK(q.depth() == 26);
  // Green is still below its min_th.
  for (int i = 0; i < 5; i++) h.receive(0, to_svc(af11));
  CHECK(q.depth() == 31);
  CHECK(q.wred_dropped == 11);
  // Sent as queued: the class's mark (DSCP 0) with ECN kept, CE on the marked one, checksums right.
  uint64_t emptied = rte_rdtsc();
  CHECK(medix::dp::schedule(h.worker, emptied) == 31);
  auto sent = h.sent(1);
  REQUIRE(sent.size() == 31);
  for (size_t i = 0; i < sent.size(); i++) {
    CHECK(rte_raw_cksum(sent[i].data() + 18, 20) == 0xffff);
    CHECK(sent[i][18 + 1] == (i == 25 ? 3 : 0));
  }
  CHECK(q.queued_packets == 31);
  // Idle for a second (66 frames at the contract's 100 kB/s): the average decays to 0
  // (rte_red's idle rule), so red packets are queued again until it reaches red's max_th:
  // at depths 1, 2, 3 the average (weight 1/2) is 0.5, 1.25 and 2.125 packets: the 4th dropped.
  h.worker.now = emptied + rte_get_tsc_hz();
  for (int i = 0; i < 4; i++) h.receive(0, to_svc(af13));
  CHECK(q.depth() == 3);
  CHECK(q.wred_dropped == 12);
}

// A tunnel's shaper (docs/qos.md "Shaping a tunnel"): inner packets queued before ESP.
namespace {

// Tenant hosp behind tunnel t1 over tenant carrier (c0 on p0); the outbound SA (8193) is
// worker 1's with two workers.
const std::string shaped_tunnel = hosp_over_carrier(R"(
  "tunnels": [{"name": "t1", "tenant": "hosp", "underlay_tenant": "carrier", "local_address": "198.51.100.1",
               "remote_address": "198.51.100.2"}],
  "routes": [{"tenant": "hosp", "prefix": "10.0.0.0/24", "via": {"interface": "t1"}}],
  "neighbours": [{"interface": "c0", "address": "198.51.100.2", "mac": "02:00:00:00:00:02"}],
  "sas": [{"spi": 8193, "tunnel": "t1", "inbound": false, "cipher": "AES_GCM_128",
           "cipher_key": "AAECAwQFBgcICQoLDA0ODxAREhM="}]
)");

// 100 bytes of inner packet from h0's host into the tunnel, with this DSCP.
Bytes into_tunnel(uint8_t dscp) {
  auto f = ether("02:00:00:00:01:01", host_mac, 0x0800) + ipv4("10.0.1.10", "10.0.0.5", 17, udp(1, 2, 72));
  f[14 + 1] = uint8_t(dscp << 2);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f.data() + 14);
  ip->hdr_checksum = 0;
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  return f;
}

}  // namespace

TEST_CASE("a tunnel's shaper is checked: its MTU, one a tunnel, the tunnel kept while shaped") {
  Harness h(shaped_tunnel);
  auto apply = [&](const std::string& fields) { return h.apply(ops(shaper_op("CREATE", fields))); };
  const std::string classes = R"("classes": [{"name": "c", "weight": 1}])";
  auto r = apply(R"("name": "s", "interface": "t1", "rate": "1000", "burst": "1399", )" + classes);
  CHECK(r.code == Code::invalid_argument);
  CHECK(r.message == "operations[0].shaper.burst: 1399 bytes is below one packet of the tunnel's MTU (1400)");
  r = apply(R"("name": "s", "interface": "t9", "rate": "1000", "burst": "1400", )" + classes);
  CHECK(r.message == "operations[0].shaper.interface: no interface or tunnel named \"t9\"");
  CHECK(h.tables->qos.shapers.empty());
  REQUIRE(apply(R"("name": "s", "interface": "t1", "rate": "1000", "burst": "1400", )" + classes).code == Code::ok);
  REQUIRE(h.tables->qos.shapers.size() == 1);
  CHECK(h.tables->qos.shapers[0].tunnel);
  CHECK(h.tables->qos.tunnel_shapers == std::vector<uint16_t>{0});
  r = apply(R"("name": "s2", "interface": "t1", "rate": "1000", "burst": "1400", )" + classes);
  CHECK(r.message == "operations[0].shaper.interface: shaper \"s\" already shapes \"t1\"");
  r = h.apply(ops(R"([{"op": "DELETE", "object": {"tunnel": {"name": "t1"}}}])"));
  CHECK(r.code == Code::failed_precondition);
  CHECK(r.message.find("operations[0].tunnel: tunnel \"t1\" is still used by") == 0);
  CHECK(h.tables->qos.shapers.size() == 1);
  REQUIRE(h.apply(ops(shaper_op("DELETE", R"("name": "s")"))).code == Code::ok);
  CHECK(h.tables->qos.tunnel_shapers.empty());
}

TEST_CASE("a tunnel's shaper orders inner packets by class, then ESP numbers them in that order, under a port shaper") {
  Harness h(shaped_tunnel, 2);  // the SA's owner is worker 1: worker 0's shaper hands its packets over
  Worker& owner = *h.others.at(0);
  // A contract of 3 B/s with a burst of 1450: fourteen 100-byte packets go, then none for long.
  REQUIRE(h.apply(ops(R"([
    {"op": "CREATE", "object": {"shaper": {"name": "carrier", "interface": "c0", "rate": "125000000",
       "burst": "100000", "classes": [{"name": "all", "weight": 1}]}}},
    {"op": "CREATE", "object": {"shaper": {"name": "vpn", "interface": "t1", "rate": "3", "burst": "1450",
       "classes": [{"name": "voice", "priority": true, "rate": "1", "dscp": [46]},
                   {"name": "img", "rate": "1", "weight": 1, "dscp": [26], "set_dscp": true, "mark_dscp": 34},
                   {"name": "bulk", "weight": 1}]}}}])"))
              .code == Code::ok);
  // In arrival order: bulk first, then the classes mixed.
  for (uint8_t d : {0, 0, 0, 26, 46, 0, 26, 46, 0, 26, 0, 46, 26, 0, 0}) h.receive(1, into_tunnel(d));
  CHECK(h.sent(0).empty());
  const qos::Shaper& vpn = h.tables->qos.shapers.at(h.tables->qos.tunnel_shapers.at(0));
  CHECK(vpn.name == "vpn");
  CHECK(vpn.shares[0].classes[2].depth() == 8);
  CHECK(vpn.shares[0].classes[2].queued_bytes == 800);  // the inner packets' bytes, without L2
  CHECK(medix::dp::process_shaped(h.worker) == 14);
  CHECK(vpn.shares[0].classes[2].depth() == 1);  // the contract held the last one
  // Worker 1 encrypts them as they were handed over, and its port shaper sends them.
  rte_mbuf* pkts[64];
  unsigned n = rte_ring_sc_dequeue_burst(h.handoff[1], reinterpret_cast<void**>(pkts), 64, nullptr);
  REQUIRE(n == 14);
  medix::dp::process_handoff(owner, pkts, uint16_t(n));
  CHECK(owner.tx[0].count == 0);  // in the port shaper's queue
  CHECK(medix::dp::process_shaped(owner) == 14);
  std::vector<int> dscps;
  std::vector<uint32_t> seqs;
  for (uint16_t i = 0; i < owner.tx[0].count; i++) {
    auto f = bytes_of(owner.tx[0].pkts[i]);
    rte_pktmbuf_free(owner.tx[0].pkts[i]);
    REQUIRE(f.size() > 14 + 20 + 8);
    CHECK(f[14 + 9] == 50);           // ESP
    dscps.push_back(f[14 + 1] >> 2);  // the outer DSCP is the inner's (DSCP_COPY)
    seqs.push_back(uint32_t(f[14 + 24]) << 24 | f[14 + 25] << 16 | f[14 + 26] << 8 | f[14 + 27]);
  }
  owner.tx[0].clear();
  CHECK(dscps == std::vector<int>{46, 46, 46, 34, 34, 34, 34, 0, 0, 0, 0, 0, 0, 0});
  CHECK(seqs == std::vector<uint32_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14});
  const qos::Shaper& carrier = h.tables->qos.shapers.at(h.tables->qos.shaper_of.at(h.interface("c0")));
  CHECK(carrier.shares[1].classes[0].sent_packets == 14);
  CHECK(h.total_drops() == 0);
}
