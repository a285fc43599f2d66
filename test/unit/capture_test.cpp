// The workers' side of a capture (infra/capture.h), on bursts through the pipeline: what the
// filter keeps lands in the worker's ring with its interface, tenant, point and drop reason;
// the rest, and everything past the token bucket, is left out (and counted as lost).
#include <rte_ring_elem.h>

#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "fixture.h"
#include "harness.h"

using namespace frame;

namespace {

std::vector<CaptureRecord> drain(rte_ring* ring) {
  std::vector<CaptureRecord> out(capture_ring_size);
  unsigned n = rte_ring_sc_dequeue_burst_elem(ring, out.data(), sizeof(CaptureRecord), capture_ring_size, nullptr);
  out.resize(n);
  return out;
}

struct Capture {
  std::unique_ptr<CaptureSession> session = std::make_unique<CaptureSession>();
  explicit Capture(Worker& w, double burst = 100) {
    session->workers[w.queue].ring = rte_ring_create_elem("capture-test", sizeof(CaptureRecord), capture_ring_size,
                                                          SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    REQUIRE(session->workers[w.queue].ring);
    session->burst = session->workers[w.queue].tokens = burst;
    session->rate_per_tsc = 0;  // no refill: the bucket holds what the test gives it
    session->filter.points = 1u << unsigned(CapturePoint::rx) | 1u << unsigned(CapturePoint::drop);
  }
  ~Capture() { rte_ring_free(session->workers[0].ring); }
};

}  // namespace

TEST_CASE("capture: a tenant's received and dropped packets, with interface, tenant and reason") {
  Harness h(two_tenants);
  Capture c(h.worker);
  c.session->filter.tenant = h.tenant("a");
  h.worker.capture = c.session.get();
  // Tenant a: forwarded to a-svc (rx), and to a blackhole (rx, then dropped); tenant b: left out.
  h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) +
                   ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 5000, 10)));
  h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) +
                   ipv4("10.0.0.7", "172.32.0.1", 17, udp(1, 2, 10)));
  h.receive(0, ether("02:00:00:00:00:0b", host_mac, 0x8100) + vlan(0x0800, 20) +
                   ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 5000, 10)));
  h.worker.capture = nullptr;
  auto got = drain(c.session->workers[0].ring);
  REQUIRE(got.size() == 3);
  for (const auto& r : got) {
    CHECK(r.iface == h.interface("a-lan"));
    CHECK(r.tenant == h.tenant("a"));
    CHECK(r.port == 0);
    CHECK(r.caplen == r.length);
    CHECK(r.data[15] == 10);  // the frame as received, its tag included
  }
  CHECK(got[0].point == uint8_t(CapturePoint::rx));
  CHECK(got[1].point == uint8_t(CapturePoint::rx));
  CHECK(got[2].point == uint8_t(CapturePoint::drop));
  CHECK(got[2].reason == uint16_t(Drop::blackhole));
  CHECK(c.session->workers[0].lost == 0);
  h.sent(1);
}

TEST_CASE("capture: a drop reason alone, a snap length, and the bucket's limit counted as lost") {
  Harness h(two_tenants);
  Capture c(h.worker, 2);
  c.session->filter.points = 1u << unsigned(CapturePoint::drop);
  c.session->filter.drop_reason = uint16_t(Drop::unknown_vlan);
  c.session->filter.snaplen = 20;
  h.worker.capture = c.session.get();
  for (int i = 0; i < 3; i++)
    h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 11) +
                     ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 2, 10)));
  h.receive(0, Bytes(10, 0));  // l2_truncated: another reason
  h.worker.capture = nullptr;
  auto got = drain(c.session->workers[0].ring);
  REQUIRE(got.size() == 2);
  CHECK(got[0].reason == uint16_t(Drop::unknown_vlan));
  CHECK(got[0].iface == capture_none);  // no interface took it
  CHECK(got[0].tenant == capture_none);
  CHECK(got[0].caplen == 20);
  CHECK(got[0].length > 20);
  CHECK(c.session->workers[0].lost == 1);
  CHECK(h.drops(Drop::unknown_vlan) == 3);
}
