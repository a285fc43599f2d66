#include <google/protobuf/util/json_util.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "config/load.h"
#include "control/intent.h"
#include "fixture.h"
#include "infra/limits.h"

using namespace medix::dp;

namespace {
std::string error_of(const std::string& json) {
  medix::dataplane::v1::Config config;
  REQUIRE(google::protobuf::util::JsonStringToMessage(json, &config).ok());
  medix::dp::Intent intent;
  medix::dp::Diff diff;
  auto error = intent.apply(medix::dp::operations_from(config), diff);
  return error ? error->message : "";
}
std::string with(std::string json, const std::string& from, const std::string& to) {
  auto at = json.find(from);
  REQUIRE(at != std::string::npos);
  return json.replace(at, from.size(), to);
}
}  // namespace

TEST_CASE("the fixture config is valid") { CHECK(error_of(two_tenants).empty()); }

TEST_CASE("a bad config names the field and the reason") {
  CHECK(error_of(with(two_tenants, "\"vlan\": 10,", "\"vlan\": 4095,")) ==
        "interfaces[0].vlan: 4095 is out of range 0..4094");
  CHECK(error_of(with(two_tenants, "\"vlan\": 20,", "\"vlan\": 10,")) ==
        "interfaces[1].vlan: port \"p0\" already has an interface with these VLAN tags (\"a-lan\")");
  CHECK(error_of(with(two_tenants, "\"tenant\": \"b\", \"port\"", "\"tenant\": \"x\", \"port\"")) ==
        "interfaces[1].tenant: no tenant named \"x\"");
  CHECK(error_of(with(two_tenants, "192.168.0.0/16", "192.168.0.1/16")) ==
        "routes[0].prefix: \"192.168.0.1/16\" has host bits set (did you mean 192.168.0.0/16?)");
  CHECK(error_of(with(two_tenants, "\"100.64.0.9\", \"mac\": \"02:00:00:00:cc:cc\"",
                      "\"100.64.0.9\", \"mac\": \"01:00:00:00:cc:cc\"")) == "neighbours[2].mac: is a multicast MAC");
  CHECK(error_of(with(two_tenants, "\"inner_vlan\": 30", "\"inner_vlan\": 30, \"vlan\": 0")) ==
        "interfaces[2].inner_vlan: needs an outer vlan (QinQ)");
  CHECK(error_of(with(two_tenants, "{\"interface\": \"u-lan\", \"address\": \"100.64.0.9\"}",
                      "{\"interface\": \"a-lan\"}")) ==
        "routes[1].via.interface: interface \"a-lan\" is in tenant \"a\", not \"core\" (use next_tenant to leak)");
  CHECK(error_of(with(two_tenants, "\"next_tenant\": \"core\"", "\"next_tenant\": \"a\"")) ==
        "routes[0].next_tenant: is the route's own tenant");
  CHECK(error_of(with(two_tenants, ", \"blackhole\": {}", "")) ==
        "routes[3].target: is required: one of via, next_tenant, local, blackhole");
}

TEST_CASE("load_file reports the file name, unknown fields and JSON errors") {
  auto write = [](const std::string& text) {
    std::ofstream("/tmp/medix-unit-config.json") << text;
    return std::string("/tmp/medix-unit-config.json");
  };
  auto error = [](auto result) { return std::get<std::string>(result); };
  CHECK(error(medix::dp::load_file("/nonexistent.json")) == "/nonexistent.json: cannot open the file");
  auto unknown = error(medix::dp::load_file(write(R"({"schema_version": 1, "portz": []})")));
  CHECK(unknown.find("/tmp/medix-unit-config.json: ") == 0);
  CHECK(unknown.find("portz") != std::string::npos);
  auto broken = error(medix::dp::load_file(write(R"({"schema_version": 1,)")));
  CHECK(broken.find("/tmp/medix-unit-config.json: ") == 0);
  CHECK(std::holds_alternative<medix::dataplane::v1::Config>(medix::dp::load_file(write(two_tenants))));
}

// Each worker's ARP pending queue holds at most max_pending packets: a larger limit would
// write past its array, so the file is refused with the field's path.
TEST_CASE("settings.arp_pending_limit above max_pending is refused") {
  auto load = [](uint32_t limit) {
    return medix::dp::load_text(
        R"({"schema_version": 1, "settings": {"arp_pending_limit": )" + std::to_string(limit) + "}}", "f.json");
  };
  CHECK(std::get<std::string>(load(medix::dp::max_pending + 1)) ==
        "f.json: settings.arp_pending_limit: 4097 is above the most, 4096");
  CHECK(std::get<std::string>(load(1u << 31)).find("settings.arp_pending_limit: 2147483648 is above") !=
        std::string::npos);
  REQUIRE(std::holds_alternative<medix::dataplane::v1::Config>(load(medix::dp::max_pending)));
  CHECK(std::get<medix::dataplane::v1::Config>(load(medix::dp::max_pending)).settings().arp_pending_limit() == 4096);
}
