// Transactions end to end on the real tables: validation, rollback, left-right FIB updates.
#include <google/protobuf/util/json_util.h>

#include <catch2/catch.hpp>

#include "fixture.h"
#include "harness.h"

using namespace frame;
using medix::dp::Code;
namespace v1 = medix::dataplane::v1;

namespace {

// Where a packet from a-lan to `dst` is forwarded: the neighbour MAC's last byte, or -1
// (dropped, parked for ARP, or answered with an ICMP error).
int egress_of(Harness& h, const std::string& dst) {
  h.receive(0,
            ether("02:00:00:00:00:0a", host_mac, 0x8100) + vlan(0x0800, 10) + ipv4("10.0.0.7", dst, 17, udp(1, 2, 8)));
  for (uint16_t port = 0; port < 2; port++) {
    for (const auto& f : h.sent(port))
      if (f[5] != 0x99 && f[0] != 0xff) return f[5];
  }
  return -1;
}

}  // namespace

TEST_CASE("a route created, changed and deleted takes effect at once") {
  Harness h(two_tenants);
  auto r = h.apply(ops(R"([{"op": "CREATE", "object": {"route": {"tenant": "a", "prefix": "10.50.0.0/16",
                          "via": {"interface": "a-svc", "address": "10.1.0.10"}}}}])"));
  REQUIRE(r.code == Code::ok);
  CHECK(r.changed == 1);
  CHECK(egress_of(h, "10.50.1.1") == 0xaa);
  // 20 alternations: each lands in the other FIB copy; a stale copy would show.
  for (int i = 0; i < 20; i++) {
    bool to_core = i % 2 == 0;
    auto u = h.apply(ops(
        std::string(R"([{"op": "UPDATE", "object": {"route": {"tenant": "a", "prefix": "10.50.0.0/16", )") +
        (to_core ? R"("next_tenant": "core"}}}])" : R"("via": {"interface": "a-svc", "address": "10.1.0.10"}}}}])")));
    REQUIRE(u.code == Code::ok);
    h.apply(ops(R"([{"op": "CREATE", "object": {"route": {"tenant": "core", "prefix": "10.50.0.0/16",
                   "via": {"interface": "u-lan", "address": "100.64.0.9"}}}}])"));
    CHECK(egress_of(h, "10.50.1.1") == (to_core ? 0xcc : 0xaa));
  }
  REQUIRE(h.apply(ops(R"([{"op": "DELETE", "object": {"route": {"tenant": "a", "prefix": "10.50.0.0/16"}}}])")).code ==
          Code::ok);
  CHECK(egress_of(h, "10.50.1.1") == -1);
  CHECK(h.drops(Drop::no_route) == 1);
}

TEST_CASE("a transaction with one bad operation changes nothing") {
  Harness h(two_tenants);
  uint64_t version = h.controller.read([](auto&, auto&, uint64_t v) { return v; });
  auto r = h.apply(ops(R"([
    {"op": "CREATE", "object": {"route": {"tenant": "a", "prefix": "10.60.0.0/16", "via": {"interface": "a-svc", "address": "10.1.0.10"}}}},
    {"op": "CREATE", "object": {"tenant": {"name": "c"}}},
    {"op": "CREATE", "object": {"interface": {"name": "x", "tenant": "c", "port": "p0", "vlan": 10}}}])"));
  CHECK(r.code == Code::invalid_argument);
  CHECK(r.message ==
        "operations[2].interface.vlan: port \"p0\" already has an interface with these VLAN tags (\"a-lan\")");
  CHECK(r.version == version);
  CHECK(egress_of(h, "10.60.1.1") == -1);
  CHECK(h.controller.read([](auto& in, auto&, uint64_t) { return in.tenants.count("c"); }) == 0);
}

TEST_CASE("identical re-sends are no-ops; conflicts and missing objects are named") {
  Harness h(two_tenants);
  auto again = h.apply(ops(R"([{"op": "CREATE", "object": {"tenant": {"name": "a"}}}])"));
  CHECK(again.code == Code::ok);
  CHECK(again.changed == 0);
  CHECK(h.apply(ops(R"([{"op": "CREATE", "object": {"tenant": {"name": "a", "description": "x"}}}])")).code ==
        Code::already_exists);
  CHECK(h.apply(ops(R"([{"op": "UPDATE", "object": {"tenant": {"name": "zz"}}}])")).code == Code::not_found);
  auto busy = h.apply(ops(R"([{"op": "DELETE", "object": {"interface": {"name": "a-svc"}}}])"));
  CHECK(busy.code == Code::failed_precondition);
  CHECK(busy.message.find("operations[0].interface: interface \"a-svc\" is still used by 1 object") == 0);
  auto mapping = h.apply(ops(R"([{"op": "CREATE", "object": {"static_mapping": {"tenant": "a"}}}])"));
  CHECK(mapping.code == Code::invalid_argument);
  CHECK(mapping.message.find("operations[0].static_mapping.tenant_prefix: ") == 0);
}

TEST_CASE("an explicit route over a connected prefix, removed, gives the connected route back") {
  Harness h(two_tenants);
  REQUIRE(
      h.apply(
           ops(R"([{"op": "CREATE", "object": {"route": {"tenant": "a", "prefix": "10.1.0.0/24", "blackhole": {}}}}])"))
          .code == Code::ok);
  CHECK(egress_of(h, "10.1.0.10") == -1);
  CHECK(h.drops(Drop::blackhole) == 1);
  REQUIRE(h.apply(ops(R"([{"op": "DELETE", "object": {"route": {"tenant": "a", "prefix": "10.1.0.0/24"}}}])")).code ==
          Code::ok);
  CHECK(egress_of(h, "10.1.0.10") == 0xaa);
}

TEST_CASE("interfaces come and go; their neighbours go with them") {
  Harness h(two_tenants);
  REQUIRE(h.apply(ops(R"([
    {"op": "CREATE", "object": {"interface": {"name": "a-new", "tenant": "a", "port": "p1", "vlan": 300, "addresses": ["10.70.0.1/24"], "mac": "02:00:00:00:03:00"}}},
    {"op": "CREATE", "object": {"neighbour": {"interface": "a-new", "address": "10.70.0.5", "mac": "02:00:00:00:70:05"}}}])"))
              .code == Code::ok);
  CHECK(egress_of(h, "10.70.0.5") == 0x05);
  h.learn("a-new", "10.70.0.6", "02:00:00:00:70:06");
  CHECK(egress_of(h, "10.70.0.6") == 0x06);
  REQUIRE(h.apply(ops(R"([
    {"op": "DELETE", "object": {"neighbour": {"interface": "a-new", "address": "10.70.0.5"}}},
    {"op": "DELETE", "object": {"interface": {"name": "a-new"}}}])"))
              .code == Code::ok);
  CHECK(egress_of(h, "10.70.0.6") == -1);
  size_t left = 0;
  h.tables->neighbours->for_each(
      [&](const NeighbourSlotKey& k, const rte_ether_addr&, bool) { left += (k.address >> 8) == 0x0a4600; });
  CHECK(left == 0);
  // The same name again: a fresh interface, nothing inherited.
  REQUIRE(
      h
          .apply(ops(
              R"([{"op": "CREATE", "object": {"interface": {"name": "a-new", "tenant": "a", "port": "p1", "vlan": 301, "addresses": ["10.70.0.1/24"]}}}])"))
          .code == Code::ok);
  CHECK(egress_of(h, "10.70.0.6") == -1);  // parked for ARP, not sent to the old MAC
  CHECK(h.worker.pending->count == 1);
}

TEST_CASE("a tunnel's inner MTU leaves room for ESP in its underlay") {
  Harness h(two_tenants);
  auto mtu_of = [&](const std::string& name) {
    return h.controller.read([&](auto&, auto& c, uint64_t) {
      for (const auto& e : c.current()->interfaces)
        if (e.uid && e.name == name) return int(e.mtu);
      return -1;
    });
  };
  REQUIRE(h.apply(ops(R"([{"op": "CREATE", "object": {"tunnel": {"name": "t1", "tenant": "a", "underlay_tenant": "core",
            "local_address": "100.64.0.1", "remote_address": "100.64.0.50", "encap_udp_port": 4500, "mtu": 1500}}},
          {"op": "CREATE", "object": {"tunnel": {"name": "t2", "tenant": "b", "underlay_tenant": "core",
            "local_address": "100.64.0.1", "remote_address": "100.64.0.51", "mtu": 1300}}}])"))
              .code == Code::ok);
  CHECK(mtu_of("t1") == 1500 - (20 + 8 + 8 + 16 + 17 + 16));  // u-lan's 1500 less the worst case
  CHECK(mtu_of("t2") == 1300);                                // fits as configured
  // The underlay's MTU shrinks: the tunnel follows.
  REQUIRE(h.apply(ops(R"([{"op": "UPDATE", "object": {"interface": {"name": "u-lan", "tenant": "core", "port": "p0",
            "addresses": ["100.64.0.1/24"], "mac": "02:00:00:00:00:0d", "mtu": 1280}}}])"))
              .code == Code::ok);
  CHECK(mtu_of("t1") == 1280 - 85);
  CHECK(mtu_of("t2") == 1280 - 77);
}

TEST_CASE("one tenant's interfaces may not share a subnet; other tenants may") {
  Harness h(two_tenants);
  auto overlapping = h.apply(ops(R"([{"op": "CREATE", "object": {"interface": {"name": "a-x", "tenant": "a",
      "port": "p1", "vlan": 300, "addresses": ["10.0.5.1/16"]}}}])"));
  CHECK(overlapping.code == Code::invalid_argument);
  CHECK(overlapping.message ==
        "operations[0].interface.addresses[0]: 10.0.5.1/16 overlaps 10.0.0.0/24 of interface \"a-lan\" in tenant \"a\" "
        "(one tenant's interfaces may not share a subnet: which one would a packet to it leave by?)");
  // Inside another interface's subnet, named the other way round.
  auto inside = h.apply(ops(R"([{"op": "CREATE", "object": {"interface": {"name": "a-x", "tenant": "a",
      "port": "p1", "vlan": 300, "addresses": ["10.9.0.1/24", "10.1.0.130/25"]}}}])"));
  CHECK(inside.message.find("operations[0].interface.addresses[1]: 10.1.0.130/25 overlaps 10.1.0.0/24 of interface "
                            "\"a-svc\"") == 0);
  // The same plan in another tenant (the fixture's a and b), and a second address in one
  // interface's own subnet, are fine.
  CHECK(h.apply(ops(R"([{"op": "CREATE", "object": {"interface": {"name": "b-x", "tenant": "b", "port": "p1",
      "vlan": 300, "addresses": ["10.5.0.1/16", "10.5.0.2/16"]}}}])"))
            .code == Code::ok);
  // An interface's own update is not an overlap with itself.
  CHECK(h.apply(ops(R"([{"op": "UPDATE", "object": {"interface": {"name": "b-x", "tenant": "b", "port": "p1",
      "vlan": 300, "addresses": ["10.4.0.1/14"]}}}])"))
            .code == Code::ok);
}

TEST_CASE("a next hop off its interface's subnets is refused, judged on the whole transaction") {
  Harness h(two_tenants);
  uint64_t version = h.controller.read([](auto&, auto&, uint64_t v) { return v; });
  auto off = h.apply(ops(R"([{"op": "CREATE", "object": {"route": {"tenant": "a", "prefix": "10.50.0.0/16",
      "via": {"interface": "a-svc", "address": "10.7.0.10"}}}}])"));
  CHECK(off.code == Code::invalid_argument);
  CHECK(off.message ==
        "operations[0].route.via.address: 10.7.0.10 is on no subnet of interface \"a-svc\" (10.1.0.1/24)");
  // Moving the interface away from its routes' next hops is refused, naming the interface.
  auto stranded = h.apply(ops(R"([{"op": "UPDATE", "object": {"interface": {"name": "u-lan", "tenant": "core",
      "port": "p0", "addresses": ["100.65.0.1/24"], "mac": "02:00:00:00:00:0d"}}}])"));
  CHECK(stranded.code == Code::invalid_argument);
  CHECK(stranded.message ==
        "operations[0].interface.addresses: 1 route(s) through the interface have next hop 100.64.0.9, which is on "
        "none of its subnets (100.65.0.1/24): change them in the same transaction");
  CHECK(h.controller.read([](auto&, auto&, uint64_t v) { return v; }) == version);
  // Renumbering an interface and its routes together works in either order.
  for (bool route_first : {true, false}) {
    std::string to = route_first ? "100.65.0" : "100.64.0";
    std::string route = R"({"op": "UPDATE", "object": {"route": {"tenant": "core", "prefix": "192.168.1.0/24",
        "via": {"interface": "u-lan", "address": ")" +
                        to + R"(.9"}}}})";
    std::string iface = R"({"op": "UPDATE", "object": {"interface": {"name": "u-lan", "tenant": "core", "port": "p0",
        "addresses": [")" +
                        to + R"(.1/24"], "mac": "02:00:00:00:00:0d"}}})";
    auto r = h.apply(ops("[" + (route_first ? route + "," + iface : iface + "," + route) + "]"));
    CHECK(r.code == Code::ok);
    CHECK(r.message.empty());
  }
  // A tunnel is point to point: a next hop needs no subnet there (tested in esp_test's config).
}

TEST_CASE("compact FIBs: a transaction the pool cannot hold is refused whole, naming the limit") {
  std::string config = two_tenants;
  config.replace(config.find(R"("settings": {)"), 13, R"("settings": {"fib_memory_mb": 1, )");
  Harness h(config);  // 1 MiB: 816 plies of 1,284 bytes
  REQUIRE(egress_of(h, "10.1.0.10") == 0xaa);
  // 700 /24s, each in a /16 of its own over 180 /8s: 880 plies, more than the pool holds.
  std::string routes;
  for (int i = 0; i < 700; i++)
    routes += std::string(i ? "," : "") + R"({"op": "CREATE", "object": {"route": {"tenant": "a", "prefix": ")" +
              std::to_string(20 + i % 180) + "." + std::to_string(i / 180) + R"(.7.0/24", "next_tenant": "core"}}})";
  auto version = h.controller.read([](auto&, auto&, uint64_t v) { return v; });
  auto r = h.apply(ops("[" + routes + "]"));
  CHECK(r.code == Code::resource_exhausted);
  CHECK(r.message.find("the compact FIBs are full (816 plies of 1 KiB, every tenant's)") != std::string::npos);
  CHECK(r.message.find("tenant \"a\"") != std::string::npos);
  CHECK(h.controller.read([](auto&, auto&, uint64_t v) { return v; }) == version);
  // Nothing of it stayed: forwarding as before, and a smaller change fits.
  CHECK(egress_of(h, "10.1.0.10") == 0xaa);
  CHECK(egress_of(h, "20.0.7.1") == -1);
  r = h.apply(ops(R"([{"op": "CREATE", "object": {"route": {"tenant": "a", "prefix": "20.0.7.0/24",
                     "via": {"interface": "a-svc", "address": "10.1.0.10"}}}}])"));
  REQUIRE(r.code == Code::ok);
  CHECK(egress_of(h, "20.0.7.1") == 0xaa);
}
