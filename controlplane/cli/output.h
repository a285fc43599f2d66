#pragma once
// What medixctl prints: aligned tables for people, the protobuf JSON mapping for scripts.
#include <google/protobuf/message.h>

#include <cstdint>
#include <ostream>
#include <string>
#include <vector>

#include "medix/dataplane/v1/dataplane.pb.h"
#include "objects.h"

namespace medix::ctl {
namespace v1 = medix::dataplane::v1;

// Columns padded to their widest cell, two spaces apart; an empty cell prints as "-".
class Table {
 public:
  struct Column {
    std::string title;
    bool right = false;  // numbers are right-aligned
  };
  explicit Table(std::vector<Column> columns) : columns_(std::move(columns)) {}
  void row(std::vector<std::string> cells);
  void print(std::ostream& out) const;

 private:
  std::vector<Column> columns_;
  std::vector<std::vector<std::string>> rows_;
};

// The protobuf JSON mapping with the proto's (snake_case) field names and every field, zeros
// included; `pretty` spreads it over lines, else it is one line.
std::string to_json(const google::protobuf::Message& message, bool pretty);

// One table of objects of one kind.
void print_objects(std::ostream& out, const KindInfo& kind,
                   const google::protobuf::RepeatedPtrField<v1::Object>& objects);
// Objects of a kind that has no table of its own: a column per scalar field (and list of
// text), titled from the proto, so that a new kind prints before it gets its own table.
void print_any_objects(std::ostream& out, const google::protobuf::RepeatedPtrField<v1::Object>& objects);
// Ports as configured, with their NICs' link (from the counters).
void print_ports(std::ostream& out, const google::protobuf::RepeatedPtrField<v1::Object>& objects,
                 const v1::CountersSnapshot& counters);
// "2026-12-06 04:30:00 UTC"; "-" for 0.
std::string format_time(uint64_t ns);
// Ports, interfaces, tenants and events.
void print_sessions(std::ostream& out, const v1::ListSessionsResponse& sessions);
void print_counters(std::ostream& out, const v1::CountersSnapshot& snapshot);
// A tenant's effective FIB, or (no tenant) what every FIB costs.
void print_fib(std::ostream& out, const v1::GetFibResponse& fib);
// Each FIB a lookup went through, and where it ends.
void print_lookup(std::ostream& out, const v1::LookupResponse& lookup);
// The drop reasons (summed, or each lcore's) that are not zero, or all of them.
v1::CountersSnapshot select_drops(const v1::CountersSnapshot& snapshot, bool by_lcore, bool all);
// Each shaper class's and policer's rates between two snapshots, drops and queue depths now.
void print_qos(std::ostream& out, const v1::CountersSnapshot& before, const v1::CountersSnapshot& after);
void print_drops(std::ostream& out, const v1::CountersSnapshot& selected, bool by_lcore);
void print_runtime(std::ostream& out, const v1::Runtime& runtime, bool by_lcore);
// `medixctl vrrp`: each VRRP instance's state, its last transitions, refused adverts.
void print_vrrp(std::ostream& out, const v1::GetVrrpResponse& vrrp);
// Per-second rates between two snapshots; `interval_ms` is used if they carry no timestamps.
void print_rates(std::ostream& out, const v1::CountersSnapshot& before, const v1::CountersSnapshot& after,
                 uint32_t interval_ms);

}  // namespace medix::ctl
