// The workers' side of a trace (infra/trace.h), on bursts through the pipeline: the packets the
// filter keeps, up to the count, get an entry with each stage's record in order; the others,
// and packets of another session's stamps, get none.
#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "fixture.h"
#include "harness.h"

using namespace frame;

namespace {

std::unique_ptr<TraceSession> session(uint32_t count, uint8_t id = 1) {
  auto s = std::make_unique<TraceSession>();
  s->count = count;
  s->id = id;
  s->entries = std::make_unique<TraceEntry[]>(count);
  return s;
}

std::vector<TraceRecord> records(const TraceEntry& e) { return {e.records, e.records + e.n.load()}; }

std::vector<TraceStep> steps(const TraceEntry& e) {
  std::vector<TraceStep> out;
  for (const auto& r : records(e)) out.push_back(TraceStep(r.step));
  return out;
}

}  // namespace

TEST_CASE("trace: a tenant's packets up to the count, each stage in order, a drop with its reason") {
  Harness h(two_tenants);
  auto s = session(2);
  s->filter.tenant = h.tenant("a");
  h.worker.trace = s.get();
  // Tenant b: left out. Tenant a: forwarded to a-svc, then to a blackhole, then past the count.
  h.receive(0, ether("02:00:00:00:00:0b", host_mac, 0x8100) + vlan(0x0800, 20) +
                   ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 5000, 10)));
  h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) +
                   ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 5000, 10)));
  h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) +
                   ipv4("10.0.0.7", "172.32.0.1", 17, udp(1, 2, 10)));
  h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) +
                   ipv4("10.0.0.8", "10.1.0.10", 17, udp(1, 5000, 10)));
  h.worker.trace = nullptr;
  CHECK(s->claimed.load() >= 2);

  const TraceEntry& fwd = s->entries[0];
  // (The harness leaves sent packets in the worker's tx buffer: tx is recorded by transmit(),
  // which test/netns/trace.sh sees.)
  REQUIRE(steps(fwd) == std::vector{TraceStep::rx, TraceStep::lookup, TraceStep::neighbour});
  auto r = records(fwd);
  CHECK(r[0].a == 0);  // port p0
  CHECK(r[0].b == h.interface("a-lan"));
  CHECK(r[0].c == h.tenant("a"));
  CHECK(r[0].kind == 17);
  CHECK(r[0].x == 0x0a000007);
  CHECK(r[0].y == 0x0a01000a);
  CHECK(r[0].z == (1u << 16 | 5000));
  CHECK(r[1].a == h.tenant("a"));
  CHECK(r[1].kind == uint8_t(NexthopKind::via));
  CHECK(r[1].b == h.interface("a-svc"));
  CHECK(r[2].a == h.interface("a-svc"));
  CHECK(r[2].kind == 1);  // resolved: the static neighbour's MAC
  CHECK(r[2].y == 0x0200);
  CHECK(r[2].z == 0x0000aaaa);

  const TraceEntry& dropped = s->entries[1];
  REQUIRE(steps(dropped) == std::vector{TraceStep::rx, TraceStep::lookup, TraceStep::drop});
  r = records(dropped);
  CHECK(r[1].kind == uint8_t(NexthopKind::blackhole));
  CHECK(r[2].a == uint16_t(Drop::blackhole));
  CHECK(r[2].c == h.tenant("a"));
  CHECK(h.sent(1).size() == 3);  // traced or not, every forwarded packet goes on
}

TEST_CASE("trace: a stamp of an earlier session writes nothing into this one's entries") {
  Harness h(two_tenants);
  auto first = session(1, 1);
  h.worker.trace = first.get();
  h.receive(0, ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) +
                   ipv4("10.0.0.7", "10.1.0.10", 17, udp(1, 5000, 10)));
  REQUIRE(first->entries[0].n.load() == 3);
  // The same stamp (entry 1) under another session's id: no record lands in its entry 1.
  auto second = session(1, 2);
  h.worker.trace = second.get();
  rte_mbuf* m = rte_pktmbuf_alloc(h.worker.pool);
  REQUIRE(m);
  meta(m).trace_id = 1;
  meta(m).trace = 1;
  meta(m).tenant = no_tenant;
  drop(h.worker, m, Drop::no_route);
  h.worker.trace = nullptr;
  CHECK(second->entries[0].n.load() == 0);
  CHECK(first->entries[0].n.load() == 3);
  h.sent(1);
}
