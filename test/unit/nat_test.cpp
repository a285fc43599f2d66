// Validation of address translation and policy objects: a bad one is refused whole, with the
// field named, and nothing else changes.
#include <google/protobuf/util/json_util.h>

#include <catch2/catch.hpp>

#include "fixture.h"
#include "harness.h"

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
