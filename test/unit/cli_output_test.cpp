// medixctl's tables driven by the proto (controlplane/cli/output.cpp): a kind's counters and
// the objects of a kind with no table of its own print with no code for the kind.
#include <catch2/catch.hpp>
#include <sstream>

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
