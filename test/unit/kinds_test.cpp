#include <catch2/catch.hpp>
#include <set>

#include "arp/commit.h"
#include "control/kinds.h"
#include "ip/commit.h"
#include "ipsec/commit.h"
#include "l2/commit.h"
#include "nat/commit.h"
#include "qos/commit.h"
#include "vrrp/commit.h"

using namespace medix::dp;

namespace v1 = medix::dataplane::v1;
using medix::dp::Kind;
using medix::dp::kinds;

// The table must name every kind the proto has, once, by its proto names: a kind left out
// would be refused by Apply and missing from Get, List and config files.
TEST_CASE("the table of kinds has every object kind once, named as the proto names it") {
  const auto* oneof = v1::Object::descriptor()->FindOneofByName("kind");
  REQUIRE(oneof);
  CHECK(kinds().size() == size_t(oneof->field_count()));
  std::set<int> cases, list_kinds;
  for (const Kind* k : kinds()) {
    CHECK(cases.insert(k->object).second);
    CHECK(list_kinds.insert(k->list_kind).second);
    const auto* field = v1::Object::descriptor()->FindFieldByNumber(k->object);
    REQUIRE(field);
    CHECK(field->containing_oneof() == oneof);
    CHECK(field->name() == k->name);
    const auto* list = v1::Config::descriptor()->FindFieldByName(k->plural);
    REQUIRE(list);
    CHECK(list->is_repeated());
    CHECK(list->message_type() == field->message_type());
    CHECK(medix::dp::kind_of(k->object) == k);
    CHECK(medix::dp::kind_of(k->list_kind) == k);
    // The hooks every kind needs (clear_output, check_update, check_delete, check_final, the
    // commit steps and diff may be null).
    CHECK((k->config_size && k->take && k->check_key && k->key && k->find && k->put && k->erase && k->validate &&
           k->get && k->list));
  }
  CHECK(list_kinds.size() == size_t(v1::Kind_descriptor()->value_count() - 1));  // less KIND_UNSPECIFIED
  CHECK(!medix::dp::kind_of(v1::Object::KIND_NOT_SET));
  CHECK(!medix::dp::kind_of(v1::KIND_UNSPECIFIED));
  CHECK(std::string(medix::dp::kind_name(v1::Object::KIND_NOT_SET)) == "object");
}

TEST_CASE("a config's lists become operations in the table's (dependency) order") {
  v1::Config config;
  for (int i = int(kinds().size()); i-- > 0;) {
    v1::Object o;
    const auto* field = v1::Object::descriptor()->FindFieldByNumber(kinds()[i]->object);
    o.GetReflection()->MutableMessage(&o, field);  // an empty object of that kind
    const auto* list = v1::Config::descriptor()->FindFieldByName(kinds()[i]->plural);
    config.GetReflection()->AddMessage(&config, list)->CopyFrom(o.GetReflection()->GetMessage(o, field));
  }
  auto ops = medix::dp::operations_from(config);
  REQUIRE(ops.size() == kinds().size());
  for (size_t i = 0; i < ops.size(); i++) {
    CHECK(ops[i].object.kind_case() == kinds()[i]->object);
    CHECK(ops[i].path == std::string(kinds()[i]->plural) + "[0]");
    CHECK(ops[i].op == v1::Operation::CREATE);
  }
}

// The committer runs the kinds' build steps phase by phase, in table order within a phase:
// slots before what refers to them, the standby FIB copies before the neighbours that go,
// the SAs before the tunnel MTUs that follow from them, static neighbours last.
TEST_CASE("the kinds' commit steps run in the order the committer needs") {
  using medix::dp::Committer;
  using medix::dp::Phase;
  std::vector<Committer::BuildStep> order;
  for (int phase = 0; phase <= int(Phase::last); phase++)
    for (const Kind* k : kinds())
      for (const auto& step : k->build)
        if (step.run && int(step.phase) == phase) order.push_back(step.run);
  std::vector<Committer::BuildStep> expected = {
      medix::dp::l2::build_ports,         medix::dp::ip::build_tenants,
      medix::dp::l2::build_interfaces,    medix::dp::ipsec::build_tunnels,
      medix::dp::vrrp::build_addresses,   medix::dp::ip::build_routes,
      medix::dp::arp::build_neighbours,   medix::dp::l2::build_interface_index,
      medix::dp::ipsec::build_sas,        medix::dp::ipsec::build_tunnel_mtus,
      medix::dp::nat::build_translations, medix::dp::arp::build_static_neighbours,
      medix::dp::qos::build_policers,     medix::dp::qos::build_shapers,
      medix::dp::vrrp::build_instances};
  CHECK(order == expected);
  // Reclaims run in reverse table order: a dead tenant's routes before its FIB copies.
  auto at = [](Committer::ReclaimStep step) {
    for (size_t i = 0; i < kinds().size(); i++)
      if (kinds()[i]->reclaim == step) return i;
    return kinds().size();
  };
  CHECK(at(medix::dp::ip::reclaim_routes) > at(medix::dp::ip::reclaim_tenants));
  CHECK(at(medix::dp::ip::reclaim_tenants) < kinds().size());
}

// GetCounters, the Prometheus endpoint and medixctl read a kind's counters through its entry:
// each column must be a uint64 field of the kind's message in CountersSnapshot, and each field
// a column (a field no column fills would read 0 forever).
TEST_CASE("the kinds' counters match their messages in CountersSnapshot") {
  std::set<std::string> lists;
  for (const Kind* k : kinds()) {
    if (!k->counters) continue;
    INFO(k->name);
    CHECK(medix::dp::check_counters(*k) == std::nullopt);
    CHECK(lists.insert(k->counters->list).second);
    CHECK(k->counters->read);
  }
  CHECK(lists.count("policers"));
  CHECK(lists.count("shaper_classes"));
  // The first kinds' too: they are declared the same way.
  for (const char* list : {"ports", "interfaces", "tenants", "tunnels", "sas", "nat", "policy_rules"}) {
    INFO(list);
    CHECK(lists.count(list));
  }

  const Kind* policer = medix::dp::kind_of(v1::Object::kPolicer);
  REQUIRE(policer);
  v1::CountersSnapshot out;
  medix::dp::add_counters(
      *policer, {{"p1", {1, 2, 3, 4, 5, 6, 7}, "", nullptr}, {"p2", {10, 20, 30, 40, 50, 60, 70}, "", nullptr}}, out);
  REQUIRE(out.policers_size() == 2);
  CHECK(out.policers(0).name() == "p1");
  CHECK(out.policers(0).green_packets() == 1);
  CHECK(out.policers(0).green_bytes() == 2);
  CHECK(out.policers(0).yellow_packets() == 3);
  CHECK(out.policers(0).yellow_bytes() == 4);
  CHECK(out.policers(0).red_packets() == 5);
  CHECK(out.policers(0).red_bytes() == 6);
  CHECK(out.policers(0).dropped() == 7);
  CHECK(out.policers(1).name() == "p2");
  CHECK(out.policers(1).dropped() == 70);

  // A row per part of an object: the shaper's, by class.
  const Kind* shaper = medix::dp::kind_of(v1::Object::kShaper);
  REQUIRE(shaper);
  medix::dp::add_counters(
      *shaper, {{"s1", {1, 2, 3, 4, 5, 6, 8, 9}, "voice", nullptr}, {"s1", {0, 0, 0, 0, 0, 7, 0, 0}, "bulk", nullptr}},
      out);
  REQUIRE(out.shaper_classes_size() == 2);
  CHECK(out.shaper_classes(0).name() == "s1");
  CHECK(out.shaper_classes(0).class_() == "voice");
  CHECK(out.shaper_classes(0).queued_packets() == 1);
  CHECK(out.shaper_classes(0).depth() == 6);
  CHECK(out.shaper_classes(0).wred_dropped() == 8);
  CHECK(out.shaper_classes(0).ecn_marked() == 9);
  CHECK(out.shaper_classes(1).class_() == "bulk");
  CHECK(out.shaper_classes(1).depth() == 7);

  // What is no uint64 field, a kind's fill puts: an SA's SPI, direction, state and drops by
  // reason; its row is named by its tunnel.
  const Kind* sa = medix::dp::kind_of(v1::Object::kSa);
  REQUIRE(sa);
  const medix::dp::KindCounters& sc = *sa->counters;
  std::vector<uint64_t> v(sc.columns.size());
  v[medix::dp::column_of(sc, "packets")] = 5;
  v[medix::dp::column_of(sc, "spi")] = 2011;
  v[medix::dp::column_of(sc, "inbound")] = 1;
  v[medix::dp::column_of(sc, "state")] = v1::SA_SOFT_EXPIRED;
  v[medix::dp::column_of(sc, "ha_sa_fenced")] = 3;  // the last reason counted against an SA
  medix::dp::add_counters(*sa, {{"tr", v, "2011/in", nullptr}}, out);
  REQUIRE(out.sas_size() == 1);
  CHECK(out.sas(0).tunnel() == "tr");
  CHECK(out.sas(0).spi() == 2011);
  CHECK(out.sas(0).inbound());
  CHECK(out.sas(0).state() == v1::SA_SOFT_EXPIRED);
  CHECK(out.sas(0).packets() == 5);
  REQUIRE(out.sas(0).drops_size() == int(medix::dp::sa_drop_count));
  CHECK(out.sas(0).drops(int(medix::dp::sa_drop_count) - 2).reason() == "sa_seq_overflow");
  CHECK(out.sas(0).drops(int(medix::dp::sa_drop_count) - 1).reason() == "ha_sa_fenced");
  CHECK(out.sas(0).drops(int(medix::dp::sa_drop_count) - 1).packets() == 3);

  // What the check refuses: a list that is not there, a column without its field, a field
  // without its column.
  const medix::dp::CounterColumn missing[] = {{"green_packets", ""}, {"blue_packets", ""}};
  medix::dp::KindCounters bad = *policer->counters;
  Kind kind = *policer;
  kind.counters = &bad;
  bad.list = "policer_list";
  CHECK(medix::dp::check_counters(kind).value_or("").find("no list") != std::string::npos);
  bad.list = "policers";
  bad.columns = missing;
  CHECK(medix::dp::check_counters(kind).value_or("").find("\"blue_packets\"") != std::string::npos);
  bad.columns = std::span(policer->counters->columns.data(), policer->counters->columns.size() - 1);
  CHECK(medix::dp::check_counters(kind).value_or("").find("PolicerCounters.dropped is no column") != std::string::npos);
  // A part that is not a string field of the message.
  medix::dp::KindCounters no_part = *shaper->counters;
  Kind shaper_kind = *shaper;
  shaper_kind.counters = &no_part;
  no_part.part = "lane";
  CHECK(medix::dp::check_counters(shaper_kind).value_or("").find("no string field \"lane\"") != std::string::npos);
  no_part.part = nullptr;
  CHECK(medix::dp::check_counters(shaper_kind).value_or("").find("ShaperCounters.class is no column") !=
        std::string::npos);
}
