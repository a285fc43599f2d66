// medix-cp's intent stores (controlplane/intent_store.h): areas, the file store's versions, the
// etcd URL. The etcd store itself runs against a real etcd in test/cp/etcd.sh.
#include <catch2/catch.hpp>

#include "common/json.h"
#include "intent_file.h"
#include "intent_store.h"

namespace {

using medix::cp::c1::Intent;

Intent parse(const std::string& text) {
  Intent intent;
  auto error = medix::common::parse_json(text, intent);
  REQUIRE_FALSE(error);
  return intent;
}

std::string tenants(const Intent& intent) {
  std::string out;
  for (const auto& t : intent.tenants()) out += t.name() + " ";
  return out;
}

const char* two_areas = R"({"schema_version": 1, "tenants": [{"name": "ix"}],
  "areas": {"east": {"tenants": [{"name": "hosp-e"}], "peers": [{"name": "gw-e", "psk": "secret-e-1"}]},
            "west": {"tenants": [{"name": "arch-w"}]}}})";

}  // namespace

TEST_CASE("an area's intent: the global objects, then its own") {
  Intent whole = parse(two_areas);
  Intent east = medix::cp::area_intent(whole, "east");
  CHECK(tenants(east) == "ix hosp-e ");
  CHECK(east.peers_size() == 1);
  CHECK(east.areas_size() == 0);
  CHECK(east.schema_version() == 1);
  CHECK(tenants(medix::cp::area_intent(whole, "west")) == "ix arch-w ");
  CHECK(tenants(medix::cp::area_intent(whole, "north")) == "ix ");  // no section: the global ones
  CHECK(tenants(medix::cp::area_intent(whole, "")) == "ix ");
}

TEST_CASE("areas are checked: names, no areas in a section") {
  CHECK(medix::cp::validate_areas(parse(two_areas)) == "");
  CHECK(medix::cp::validate_areas(parse(R"({"areas": {"no way": {}}})")).starts_with("areas[no way]: 'no way' is not"));
  CHECK(medix::cp::validate_areas(parse(R"({"areas": {"a": {"areas": {"b": {}}}}})")) ==
        "areas[a].areas: a section holds no areas");
}

TEST_CASE("secrets are cleared in the areas too") {
  Intent whole = parse(two_areas);
  medix::cp::clear_secrets(whole);
  CHECK(whole.areas().at("east").peers(0).psk().empty());
}

TEST_CASE("the file store: expected_version is compare-and-set, areas are refused") {
  int applied = 0;
  medix::cp::FileStore store(
      "/nonexistent/intent.json",
      [&](const Intent&, medix::cp::c1::ApplyIntentResponse*) {
        applied++;
        return grpc::Status::OK;
      },
      [] { return Intent(); });
  medix::cp::c1::ApplyIntentResponse response;
  CHECK(store.status().version() == 1);
  CHECK(store.apply(parse(R"({"tenants": [{"name": "a"}]})"), 0, &response).ok());
  CHECK(response.version() == 2);
  grpc::Status stale = store.apply(Intent(), 1, &response);
  CHECK(stale.error_code() == grpc::StatusCode::ABORTED);
  CHECK(stale.error_message().starts_with("conflict: the intent is at version 2, not 1"));
  CHECK(applied == 1);  // a conflict applies nothing
  CHECK(store.apply(Intent(), 2, &response).ok());
  CHECK(store.status().version() == 3);
  CHECK(store.apply(parse(two_areas), 0, &response).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(applied == 2);
}

TEST_CASE("etcd://HOST:PORT[/PREFIX]") {
  medix::cp::EtcdEndpoint e;
  CHECK_FALSE(medix::cp::parse_etcd_url("etcd://127.0.0.1:2379", e));
  CHECK(e.address == "127.0.0.1:2379");
  CHECK(e.prefix == "/medix");
  CHECK_FALSE(medix::cp::parse_etcd_url("etcd://[::1]:2379/ix/prod/", e));
  CHECK(e.address == "[::1]:2379");
  CHECK(e.prefix == "/ix/prod");
  CHECK(medix::cp::parse_etcd_url("http://127.0.0.1:2379", e));
  CHECK(medix::cp::parse_etcd_url("etcd://127.0.0.1", e));
  CHECK(medix::cp::parse_etcd_url("etcd://127.0.0.1:2379/", e));
  // Several members: gRPC's ipv4 resolver takes the list, pick_first fails over.
  CHECK_FALSE(medix::cp::parse_etcd_url("etcd://127.0.0.1:2379,127.0.0.2:2379/ix", e));
  CHECK(e.target == "ipv4:127.0.0.1:2379,127.0.0.2:2379");
  CHECK(e.prefix == "/ix");
  CHECK(medix::cp::parse_etcd_url("etcd://etcd1:2379,etcd2:2379", e));
  CHECK(medix::cp::parse_etcd_url("etcd://127.0.0.1:2379,", e));
}

TEST_CASE("a peer changed in its lifetimes alone is told apart (applied in place, its IKE_SA kept)") {
  using medix::cp::c1::Peer;
  Peer a;
  a.set_name("carrier-y");
  a.set_remote_address("192.0.2.10");
  a.set_child_rekey_seconds(3600);
  CHECK_FALSE(medix::cp::only_lifetimes_differ(a, a));  // unchanged: nothing to apply
  Peer b = a;
  b.set_ike_rekey_seconds(600);
  b.set_child_rekey_seconds(60);
  b.set_child_life_seconds(90);
  b.set_child_rekey_bytes(1 << 20);
  b.set_child_life_bytes(2 << 20);
  b.set_child_rekey_packets(1000);
  b.set_child_life_packets(2000);
  CHECK(medix::cp::only_lifetimes_differ(a, b));
  CHECK(medix::cp::only_lifetimes_differ(b, a));
  Peer c = b;
  c.set_dpd_seconds(10);  // anything else: the peer is re-created
  CHECK_FALSE(medix::cp::only_lifetimes_differ(a, c));
  c = b;
  c.add_esp_proposals("aes256-sha256");
  CHECK_FALSE(medix::cp::only_lifetimes_differ(a, c));
}
