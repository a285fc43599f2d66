// Validation of address translation and policy objects: a bad one is refused whole, with the
// field named, and nothing else changes.
#include <google/protobuf/util/json_util.h>

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <vector>

#include "fixture.h"
#include "harness.h"
#include "nat/flow_table.h"

using medix::dp::Code;
namespace v1 = medix::dataplane::v1;

namespace {

// The error message of applying one CREATE of `object` (JSON), or "" if it applied.
std::string refusal(Harness& h, const std::string& object) {
  auto r = h.apply(ops(R"([{"op": "CREATE", "object": )" + object + "}]"));
  return r.code == Code::ok ? "" : r.message;
}

}  // namespace

TEST_CASE("translation and policy objects are validated field by field") {
  std::string config = two_tenants;
  config.replace(config.find("\"icmp_burst\""), 0, "\"max_sessions\": 1024, ");
  Harness h(config);
  REQUIRE(h.apply(ops(R"([{"op": "UPDATE", "object": {"tenant": {"name": "core", "core": true}}}])")).code == Code::ok);
  CHECK(refusal(h, R"({"tenant": {"name": "core2", "core": true}})") ==
        "operations[0].tenant.core: tenant \"core\" is already the core (there is one)");
  CHECK(
      refusal(
          h,
          R"({"static_mapping": {"tenant": "core", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"}})") ==
      "operations[0].static_mapping.tenant: \"core\" is the core: it is not translated");
  CHECK(refusal(
            h,
            R"({"static_mapping": {"tenant": "a", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/25"}})") ==
        "operations[0].static_mapping.core_prefix: is a /25; tenant_prefix is a /24 (a 1:1 mapping needs the same "
        "length)");
  CHECK(refusal(
            h,
            R"({"static_mapping": {"tenant": "a", "tenant_prefix": "10.0.0.1/24", "core_prefix": "100.64.1.0/24"}})") ==
        "operations[0].static_mapping.tenant_prefix: \"10.0.0.1/24\" has host bits set (did you mean 10.0.0.0/24?)");
  CHECK(refusal(
            h, R"({"static_mapping": {"tenant": "a", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"}})")
            .empty());
  CHECK(refusal(
            h,
            R"({"static_mapping": {"tenant": "a", "tenant_prefix": "10.0.0.0/16", "core_prefix": "100.65.0.0/16"}})") ==
        "operations[0].static_mapping.tenant_prefix: overlaps the tenant's mapping of 10.0.0.0/24");
  CHECK(refusal(
            h,
            R"({"static_mapping": {"tenant": "b", "tenant_prefix": "10.0.0.0/24", "core_prefix": "100.64.1.0/24"}})") ==
        "operations[0].static_mapping.core_prefix: overlaps static mapping \"a\" 10.0.0.0/24 -> 100.64.1.0/24 (core "
        "addresses must be unique)");
  CHECK(refusal(h, R"({"napt_pool": {"tenant": "b", "addresses": ["100.64.1.7"]}})") ==
        "operations[0].napt_pool.addresses[0]: overlaps static mapping \"a\" 10.0.0.0/24 -> 100.64.1.0/24 (core "
        "addresses must be unique)");
  CHECK(refusal(h, R"({"napt_pool": {"tenant": "b", "addresses": ["100.64.9.1", "bogus"]}})") ==
        "operations[0].napt_pool.addresses[1]: \"bogus\" is not an address or a prefix like 100.64.9.0/30");
  CHECK(refusal(
            h, R"({"napt_pool": {"tenant": "b", "addresses": ["100.64.9.1"], "port_low": 2000, "port_high": 1000}})") ==
        "operations[0].napt_pool.port_low: 2000 is above port_high 1000");
  CHECK(refusal(h, R"({"napt_pool": {"tenant": "b", "addresses": []}})") ==
        "operations[0].napt_pool.addresses: at least one core address is required");
  CHECK(refusal(h, R"({"napt_pool": {"tenant": "b", "addresses": ["100.64.9.0/30"], "session_limit": 10}})").empty());
  CHECK(refusal(h, R"({"policy_rule": {"name": "r", "from_tenant": "nope"}})") ==
        "operations[0].policy_rule.from_tenant: no tenant named \"nope\"");
  CHECK(refusal(h, R"({"policy_rule": {"name": "r", "port_low": 80, "port_high": 80}})") ==
        "operations[0].policy_rule.port_low: ports need protocol 6 (TCP) or 17 (UDP)");
  CHECK(refusal(h, R"({"policy_rule": {"name": "r", "destination_prefix": "100.64.1.0/16"}})") ==
        "operations[0].policy_rule.destination_prefix: \"100.64.1.0/16\" has host bits set (did you mean "
        "100.64.0.0/16?)");
  CHECK(
      refusal(
          h,
          R"({"policy_rule": {"name": "r", "from_tenant": "a", "to_tenant": "b", "protocol": 6, "port_low": 104, "port_high": 104, "permit": true}})")
          .empty());
  // Objects that name a tenant keep it from being deleted.
  auto busy = h.apply(ops(R"([{"op": "DELETE", "object": {"tenant": {"name": "b"}}}])"));
  CHECK(busy.code == Code::failed_precondition);
  // And the core flag cannot move onto a translated tenant.
  CHECK(refusal(h, R"({"tenant": {"name": "a", "core": true}})") ==
        "operations[0].tenant: the tenant already exists and differs (use UPDATE)");
  auto move = h.apply(ops(R"([{"op": "UPDATE", "object": {"tenant": {"name": "a", "core": true}}}])"));
  CHECK(move.code == Code::invalid_argument);
  CHECK(move.message == "operations[0].tenant.core: tenant \"core\" is already the core (there is one)");
}

// The session index (nat/flow_table.h) against a map, on a table small enough that buckets fill:
// keys in their second bucket, entries moved to make room, erases that must find them there.
TEST_CASE("session table: every key found with its value, none that was not added, through overflow and churn") {
  using namespace medix::dp;
  constexpr uint32_t n_keys = 4096;
  std::vector<FlowKey> keys(n_keys);
  for (uint32_t i = 0; i < n_keys; i++)
    keys[i] = FlowKey{0x0a000000 + i * 7919, 0x64640001, uint16_t(1024 + i % 512), 104, 1, 17, flow_session};
  auto key_of = [&](uint32_t v) -> const FlowKey& { return keys[v >> 2]; };
  for (uint32_t buckets : {64u, 512u}) {
    std::vector<FlowTable::Bucket> storage(buckets);
    FlowTable t;
    t.buckets = storage.data();
    t.n_buckets = buckets;
    std::map<uint32_t, uint32_t> model;  // key index -> value
    std::mt19937 rng(buckets);
    // Up to two thirds of the slots (beyond the table's sizing, FlowTable::buckets_for: half),
    // then 20,000 random adds and removes at that load.
    uint32_t most = buckets * FlowTable::ways * 2 / 3;
    for (int step = 0; step < 20000; step++) {
      uint32_t i = rng() % n_keys;
      uint32_t h = flow_hash(keys[i]);
      if (model.count(i)) {
        REQUIRE(t.erase(h, model[i]));
        model.erase(i);
      } else if (model.size() < most) {
        REQUIRE(t.find(keys[i], h, key_of) == no_flow);
        uint32_t value = flow_value(i, FlowTable::session_forward);
        REQUIRE(t.insert(h, value, key_of));
        model[i] = value;
      }
      if (step % 1000 == 999) {
        for (uint32_t k = 0; k < n_keys; k++) {
          uint32_t found = t.find(keys[k], flow_hash(keys[k]), key_of);
          REQUIRE(found == (model.count(k) ? model[k] : no_flow));
        }
        REQUIRE(t.entries == model.size());
      }
    }
    uint64_t moved = 0;  // keys whose first bucket overflowed, as the buckets count them
    for (uint32_t b = 0; b < buckets; b++) moved += storage[b].moved;
    INFO(buckets << " buckets: " << moved << " keys in their second bucket, " << t.moves << " entries moved");
    CHECK(moved > 0);
    if (buckets == 64) CHECK(t.moves > 0);
  }
}

TEST_CASE("session table: a key built as two words is the key built member by member, and hashes alike") {
  using namespace medix::dp;
  std::mt19937 rng(19);
  for (int i = 0; i < 1000; i++) {
    uint32_t src = rng(), dst = rng(), r = rng();
    auto sport = uint16_t(r), dport = uint16_t(r >> 16), tenant = uint16_t(rng());
    auto protocol = uint8_t(rng()), kind = uint8_t(i % 3);
    FlowKey member{src, dst, sport, dport, tenant, protocol, kind};
    FlowWords words{src, dst, sport, dport, tenant, protocol, kind};
    FlowKey built = words.key();
    REQUIRE(built == member);
    REQUIRE(built.src == src);
    REQUIRE(built.dport == dport);
    REQUIRE(built.tenant == tenant);
    REQUIRE(built.kind == kind);
    REQUIRE(words.hash() == flow_hash(member));
  }
}
