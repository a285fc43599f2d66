#pragma once
// One table of object kinds. Each entry says, for one kind, everything the generic machinery
// needs: how it is named and keyed, how it enters and leaves the intent (keeping the indexes
// right), its checks, how it appears in a transaction's Diff, and how Get and List read it.
// The entries are defined in their features' folders (l2/kinds.cpp, nat/kinds.cpp, ...) and
// listed in control/kinds.cpp, in dependency order: a new kind is one entry and its folder.
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "control/commit.h"
#include "control/intent.h"
#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::dp {

// A kind's counters, declared once in its folder (Kind::counters): one row of uint64 columns
// per object. The snapshot, GetCounters, the Prometheus endpoint, telemetry and medixctl's
// counters table read them through the entry, so they know no such kind: a new counter is
// one column (and its proto field).
struct CounterColumn {
  const char* field;   // its uint64 field in the kind's counters message ("green_packets")
  const char* help;    // the Prometheus family's HELP
  bool gauge = false;  // how many now (a gauge), not a count (a counter, "_total"); a clear keeps it
  // Its Prometheus family when not medix_<prefix>_<field>[_total]; "": none (the API's only).
  // Columns next to each other with the same family are one family, told apart by
  // `label`="value" (medix_tenant_share_refused_total{budget="icmp"}).
  const char* metric = nullptr;
  const char* label = nullptr;
  const char* value = nullptr;
  // Not a uint64 field of the message: KindCounters::fill puts it (an SA's spi, its drops).
  bool by_fill = false;
};
struct CounterRow {
  std::string name;              // the object's
  std::vector<uint64_t> values;  // by column
  std::string part = {};         // the part of it the row counts (KindCounters::part), or empty
  // The workers' state the counters live in: ClearCounters' base applies while it is the same
  // (a changed object gets new state, which starts from zero anyway).
  const void* state = nullptr;
  // Its Prometheus samples' labels after the name's (and the part's): an interface's tenant.
  std::vector<std::pair<std::string, std::string>> labels = {};
};
// What `read` reads: the generation, and for the first kinds, whose counters live in the
// workers' Counters (infra/worker.h), those summed over workers.
struct CounterSource {
  const Tables& tables;
  const Committer& committer;
  // Each word minus the later of its slot's base and the last clear's (null while clearing).
  const Counters* since = nullptr;
  // Raw sums and the slots' bases: what exists now, counted up and down (NAT's sessions).
  const Counters* raw = nullptr;
  const Counters* bases = nullptr;
  uint64_t now_ns = 0, now_tsc = 0, tsc_hz = 1;  // an SA's last use in CLOCK_REALTIME
};
struct KindCounters {
  // Its list in v1::CountersSnapshot ("policers"): a message of `name`, `part` if any, and
  // the columns.
  const char* list;
  std::span<const CounterColumn> columns;
  // A row per object of the generation, in its order: raw counts (ClearCounters' base is
  // subtracted by the snapshot, from every column but the gauges).
  void (*read)(const CounterSource& source, std::vector<CounterRow>& rows);
  // A string field naming the part of the object a row counts, when it has several rows (a
  // shaper's "class"); null: a row per object.
  const char* part = nullptr;
  // How a ClearCounters applies. by_row: the snapshot subtracts each row's values at the clear
  // (rows keyed by state, name and part). in_source: `read` took them from
  // CounterSource::since, which counts since the clear already (the first kinds').
  enum class Clear { by_row, in_source } clear = Clear::by_row;
  // by_row: a value below its base is a new object's under the same key (an SA's, keyed by
  // tunnel, SPI and direction), which counts from zero, not from the base.
  bool below_base_is_new = false;
  // Its Prometheus families' infix (medix_<prefix>_...) and the label naming the row (null:
  // the kind's name); the string field naming the row in its message.
  const char* prefix = nullptr;
  const char* label = nullptr;
  const char* name_field = "name";
  // Puts what is no uint64 field (by_fill columns, enums, lists) into the row's message.
  void (*fill)(const CounterRow& row, google::protobuf::Message& out) = nullptr;
  // The message's fields that are no column: fill's (an SA's drops), or the API's (a port's
  // NIC, which the runtime reads).
  std::span<const char* const> others = {};

  const char* metric_prefix(const char* kind) const { return prefix ? prefix : kind; }
  const char* metric_label(const char* kind) const { return label ? label : metric_prefix(kind); }
};

struct Kind {
  v1::Object::KindCase object;  // its case in an Object
  v1::Kind list_kind;           // what a ListRequest names it
  const char* name;             // "interface": in paths and messages
  const char* plural;           // "interfaces": its list in a config file

  // The config's objects of this kind: how many, and the i-th moved into an Object.
  int (*config_size)(const v1::Config& config);
  void (*take)(v1::Config& config, int i, v1::Object& out);
  // Puts a config's operations of this kind in the order they are best applied in (null: the
  // file's order). Routes go in key order: a million random keys would each cost a descent of
  // the intent's tree through cold memory; in order, each finds its path in cache.
  void (*order_config)(std::span<Operation> ops) = nullptr;

  // Clears output-only fields, so that what Get returns can be sent back (null: none).
  void (*clear_output)(v1::Object& object);
  // Checks the key fields: without them nothing can be looked up.
  std::optional<Error> (*check_key)(const v1::Object& object, const std::string& path);
  Intent::Key (*key)(const v1::Object& object);
  std::optional<v1::Object> (*find)(const Intent& intent, const Intent::Key& key);
  // The only ways objects enter or leave the intent: they keep its indexes right.
  void (*put)(Intent& intent, const v1::Object& object);
  void (*erase)(Intent& intent, const v1::Object& object);
  // The object against the intent without it (an UPDATE's old version is out while checked).
  std::optional<Error> (*validate)(Intent& intent, const v1::Object& object, const std::string& path);
  // What an UPDATE may not change (null: anything may).
  std::optional<Error> (*check_update)(const Intent& intent, const v1::Object& existing, const v1::Object& object,
                                       const std::string& path);
  // Whether other objects still use it (null: nothing refers to this kind).
  std::optional<Error> (*check_delete)(const Intent& intent, const v1::Object& existing, const std::string& path);
  // Checks that hold between objects and are judged once the whole transaction is in, so
  // that changes which must go together (an interface's new subnet and the routes through
  // it) can come in any order: called for each object the transaction left in place, with
  // the path of the operation that last changed it (null: none).
  std::optional<Error> (*check_final)(const Intent& intent, const v1::Object& object, const std::string& path);
  // The name a commit error gives such an object (Error::name: a route by its tenant, an SA
  // by its SPI), so that the error gets the operation's path (null: errors name none).
  std::string (*error_name)(const v1::Object& object);
  // What the committer does with the kind's changes (control/commit.h): up to two build
  // steps, each in its phase, and a reclaim after the grace period (null: none).
  struct Step {
    Phase phase;
    Committer::BuildStep run;
  };
  Step build[2];
  Committer::ReclaimStep reclaim;

  // Records a changed key in the Diff (null: as its before and after objects, in
  // Diff::objects; routes keep only their keys).
  void (*diff)(Diff& diff, const Intent::Key& key);

  // Get: the object with the key fields of `key` into `out` (left empty if there is none).
  std::optional<Error> (*get)(const Intent& intent, const Committer& committer, const v1::Object& key, v1::Object& out);
  // List: a page of at most `page` objects after the request's page token.
  std::optional<Error> (*list)(const Intent& intent, const Committer& committer, const v1::ListRequest& request,
                               uint32_t page, v1::ListResponse& out);

  // Its counters (null: none of its own). NAT's by origin tenant are the static mapping's.
  const KindCounters* counters = nullptr;
};

// Every kind, in dependency order (a config's lists become operations in this order).
std::span<const Kind* const> kinds();
const Kind* kind_of(v1::Object::KindCase object);
const Kind* kind_of(v1::Kind list_kind);

// Whether a kind's counters match their message in v1::CountersSnapshot: a repeated message
// named by `list` with a string `name` and exactly the columns' uint64 fields (the unit test
// checks every kind, so that GetCounters never meets a column without its field).
std::optional<std::string> check_counters(const Kind& kind);
// The rows into `out`'s list of the kind (GetCounters).
void add_counters(const Kind& kind, const std::vector<CounterRow>& rows, v1::CountersSnapshot& out);
// The index of a column by its field (columns.size(): none), for readers that pick columns.
size_t column_of(const KindCounters& counters, std::string_view field);

// For the entries: an object of the map's value type at `key`, if any.
template <typename Map, typename K, typename Set>
std::optional<v1::Object> find_in(const Map& map, const K& key, Set set) {
  auto it = map.find(key);
  if (it == map.end()) return std::nullopt;
  v1::Object o;
  set(o, it->second);
  return o;
}

}  // namespace medix::dp
