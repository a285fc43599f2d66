// QoS policers: the kind's checks, the colours rte_meter gives against the RFCs' arithmetic
// (computed here on their own), and the policer in the pipeline.
#include <rte_cycles.h>
#include <rte_ip.h>

#include <catch2/catch.hpp>
#include <cmath>

#include "fixture.h"
#include "harness.h"
#include "qos/commit.h"

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

// RFC 2697 (srTCM) and RFC 2698 (trTCM), colour-blind, as the RFCs write them: buckets full
// at the start, tokens added at the rates as time passes (srTCM: to C, its overflow to E).
struct Rfc {
  bool two_rate;
  double cir, pir, cbs, ebs_or_pbs;
  double tc, te_or_tp;
  double last = 0;
  Rfc(bool two, double c, double p, double b1, double b2)
      : two_rate(two), cir(c), pir(p), cbs(b1), ebs_or_pbs(b2), tc(b1), te_or_tp(b2) {}
  int colour(double t, double bytes) {
    double dt = t - last;
    last = t;
    if (two_rate) {
      tc = std::min(cbs, tc + cir * dt);
      te_or_tp = std::min(ebs_or_pbs, te_or_tp + pir * dt);
      if (te_or_tp < bytes) return qos::red;
      if (tc < bytes) {
        te_or_tp -= bytes;
        return qos::yellow;
      }
      te_or_tp -= bytes;
      tc -= bytes;
      return qos::green;
    }
    double add = cir * dt, to_c = std::min(add, cbs - tc);
    tc += to_c;
    te_or_tp = std::min(ebs_or_pbs, te_or_tp + add - to_c);
    if (tc >= bytes) {
      tc -= bytes;
      return qos::green;
    }
    if (te_or_tp >= bytes) {
      te_or_tp -= bytes;
      return qos::yellow;
    }
    return qos::red;
  }
};

// Runs a timed stream through one worker's share of a compiled policer and through the RFC's
// arithmetic: packets of varying sizes at `offered` bytes a second, on for 0.1 s and off for
// 0.1 s (so that idle buckets fill and every colour shows), for `seconds`.
void compare(const v1::Policer& p, double offered, double seconds) {
  qos::Policer compiled;
  REQUIRE(!qos::compile(p, 1, compiled));
  qos::Share& s = compiled.shares[0];
  bool two = p.mode() == v1::POLICER_TRTCM;
  uint64_t start = two ? s.trtcm.time_tc : s.srtcm.time;
  double hz = double(rte_get_tsc_hz());
  Rfc rfc(two, double(p.cir()), double(p.pir()), double(p.cbs()), double(two ? p.pbs() : p.ebs()));
  uint64_t meter[3] = {}, expected[3] = {}, n = 0;
  double t = 0;
  for (uint32_t i = 0; t < seconds; i++) {
    uint32_t bytes = 64 + (i * 397) % 1437;  // 64 .. 1500
    uint64_t now = start + uint64_t(t * hz);
    int c = two ? rte_meter_trtcm_color_blind_check(&s.trtcm, &compiled.trtcm, now, bytes)
                : rte_meter_srtcm_color_blind_check(&s.srtcm, &compiled.srtcm, now, bytes);
    meter[c]++;
    expected[rfc.colour(t, bytes)]++;
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
