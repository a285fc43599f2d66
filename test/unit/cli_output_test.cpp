// medixctl's tables driven by the proto (controlplane/cli/output.cpp): a kind's counters and
// the objects of a kind with no table of its own print with no code for the kind.
#include <catch2/catch.hpp>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "output.h"

namespace v1 = medix::dataplane::v1;

TEST_CASE("medixctl prints a kind's counters as a table titled from the proto") {
  v1::CountersSnapshot snapshot;
  auto* p = snapshot.add_policers();
  p->set_name("pol-a");
  p->set_green_packets(11);
  p->set_green_bytes(528);
  p->set_red_packets(3);
  p->set_red_bytes(150);
  p->set_dropped(3);
  std::ostringstream out;
  medix::ctl::print_counters(out, snapshot);
  std::string text = out.str();
  CHECK(text.find("POLICER  GREEN-PKTS  GREEN-BYTES  YELLOW-PKTS  YELLOW-BYTES  RED-PKTS  RED-BYTES  DROPPED\n"
                  "pol-a            11          528            0             0         3        150        3\n") !=
        std::string::npos);

  std::ostringstream none;
  medix::ctl::print_counters(none, v1::CountersSnapshot());
  CHECK(none.str().find("POLICER") == std::string::npos);  // no objects, no table
}

TEST_CASE("medixctl prints objects of a kind with no table of its own from the proto") {
  google::protobuf::RepeatedPtrField<v1::Object> objects;
  auto* p = objects.Add()->mutable_policer();
  p->set_name("pol-a");
  p->set_tenant("a");
  p->set_mode(v1::POLICER_TRTCM);
  p->set_cir(1000);
  p->set_cbs(3000);
  p->set_pir(2000);
  p->set_pbs(4000);
  p->set_match_dscp(true);
  p->set_dscp(46);
  std::ostringstream out;
  medix::ctl::print_any_objects(out, objects);
  CHECK(out.str() ==
        "NAME   MODE            CIR   CBS  EBS   PIR   PBS  TENANT  INTERFACE  MATCH-DSCP  DSCP  COLOUR-AWARE  EIR\n"
        "pol-a  POLICER_TRTCM  1000  3000    0  2000  4000  a       -          yes           46  no              0\n");
  std::ostringstream empty;
  medix::ctl::print_any_objects(empty, {});
  CHECK(empty.str().empty());
}

TEST_CASE("medixctl qos shows a shaper class's WRED drops and CE marks beside its tail drops") {
  v1::CountersSnapshot before, after;
  before.set_timestamp_ns(1'000'000'000);
  after.set_timestamp_ns(2'000'000'000);
  auto* b = before.add_shaper_classes();
  b->set_name("carrier");
  b->set_class_("bulk");
  b->set_dropped(10);
  b->set_wred_dropped(100);
  auto* a = after.add_shaper_classes();
  *a = *b;
  a->set_sent_bytes(1'000'000);
  a->set_sent_packets(1000);
  a->set_dropped(15);
  a->set_wred_dropped(140);
  a->set_ecn_marked(7);
  a->set_depth(33);
  std::ostringstream out;
  medix::ctl::print_qos(out, before, after);
  std::istringstream lines(out.str());
  std::string header, row;
  std::getline(lines, header);
  std::getline(lines, row);
  CHECK(header.find("DROPS/S  DROPPED  WRED-DROPPED  ECN-MARKED  DEPTH") != std::string::npos);
  std::istringstream cells(row);
  std::vector<std::string> v{std::istream_iterator<std::string>(cells), {}};
  // 8 Mbit/s sent; drops a second are the queue's and WRED's (5 + 40).
  CHECK(v == std::vector<std::string>{"carrier", "bulk", "8.00", "1000", "45", "15", "140", "7", "33"});
}

TEST_CASE("medixctl show shapers shows a class's WRED: thresholds and maxp_inv by colour, weight, ECN") {
  google::protobuf::RepeatedPtrField<v1::Object> objects;
  auto* s = objects.Add()->mutable_shaper();
  s->set_name("carrier");
  s->set_interface("up");
  s->set_rate(25000000);
  s->set_burst(250000);
  auto* plain = s->add_classes();
  plain->set_name("ef");
  plain->set_priority(true);
  plain->set_rate(1000000);
  auto* bulk = s->add_classes();
  bulk->set_name("bulk");
  bulk->set_weight(1);
  auto* w = bulk->mutable_wred();
  w->mutable_green()->set_min_th(64);
  w->mutable_green()->set_max_th(256);
  w->mutable_red()->set_min_th(8);
  w->mutable_red()->set_max_th(64);
  w->mutable_red()->set_maxp_inv(2);
  w->set_ecn(true);
  medix::ctl::KindInfo kind{"shaper", "shapers", "shapers", v1::SHAPER, v1::Object::kShaper, "NAME"};
  std::ostringstream out;
  medix::ctl::print_objects(out, kind, objects);
  std::istringstream lines(out.str());
  std::string header, ef, row;
  std::getline(lines, header);
  std::getline(lines, ef);
  std::getline(lines, row);
  CHECK(header.substr(header.size() - 4) == "WRED");
  // Unset: maxp_inv 10, weight_log2 9, yellow as green (not shown).
  CHECK(row.size() > header.size() - 4);
  CHECK(row.substr(header.size() - 4) == "green 64-256/10 red 8-64/2 w9 ecn");
  CHECK(ef.find("green") == std::string::npos);
}
