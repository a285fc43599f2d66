#include "control/kinds.h"

#include <algorithm>

#include "arp/kinds.h"
#include "ip/kinds.h"
#include "ipsec/kinds.h"
#include "l2/kinds.h"
#include "nat/kinds.h"
#include "qos/kinds.h"
#include "vrrp/kinds.h"

namespace medix::dp {

std::span<const Kind* const> kinds() {
  // Explicit: a kind exists because it is listed here. Tunnels before routes: routes use them.
  static const Kind* const table[] = {
      &port_kind,            // l2
      &tenant_kind,          // ip
      &interface_kind,       // l2
      &tunnel_kind,          // ipsec
      &route_kind,           // ip
      &neighbour_kind,       // arp
      &sa_kind,              // ipsec
      &static_mapping_kind,  // nat
      &napt_pool_kind,       // nat
      &policer_kind,         // qos (before the rules that may name one)
      &shaper_kind,          // qos (before the rules that may name a class)
      &policy_rule_kind,     // nat
      &vrrp_instance_kind,   // vrrp
  };
  return table;
}

const Kind* kind_of(v1::Object::KindCase object) {
  for (const Kind* k : kinds())
    if (k->object == object) return k;
  return nullptr;
}

const Kind* kind_of(v1::Kind list_kind) {
  for (const Kind* k : kinds())
    if (k->list_kind == list_kind) return k;
  return nullptr;
}

namespace {
using google::protobuf::FieldDescriptor;

const FieldDescriptor* list_field(const Kind& kind) {
  return v1::CountersSnapshot::descriptor()->FindFieldByName(kind.counters->list);
}
}  // namespace

std::optional<std::string> check_counters(const Kind& kind) {
  const KindCounters& c = *kind.counters;
  std::string where = std::string(kind.name) + "'s counters: ";
  const FieldDescriptor* list = list_field(kind);
  if (!list || !list->is_repeated() || list->type() != FieldDescriptor::TYPE_MESSAGE)
    return where + "CountersSnapshot has no list of messages named \"" + c.list + "\"";
  const auto* message = list->message_type();
  const FieldDescriptor* name = message->FindFieldByName(c.name_field);
  if (!name || name->type() != FieldDescriptor::TYPE_STRING)
    return where + message->name() + " has no string " + c.name_field;
  const FieldDescriptor* part = c.part ? message->FindFieldByName(c.part) : nullptr;
  if (c.part && (!part || part->type() != FieldDescriptor::TYPE_STRING))
    return where + message->name() + " has no string field \"" + c.part + "\"";
  for (const CounterColumn& column : c.columns) {
    if (column.by_fill) {
      if (!c.fill) return where + "column \"" + column.field + "\" is filled, but no fill is given";
      continue;
    }
    const FieldDescriptor* f = message->FindFieldByName(column.field);
    if (!f || f->is_repeated() || f->type() != FieldDescriptor::TYPE_UINT64)
      return where + message->name() + " has no uint64 field \"" + column.field + "\"";
  }
  for (int i = 0; i < message->field_count(); i++) {
    const FieldDescriptor* f = message->field(i);
    if (f == name || f == part) continue;
    if (std::any_of(c.others.begin(), c.others.end(), [&](const char* o) { return f->name() == o; })) continue;
    if (std::none_of(c.columns.begin(), c.columns.end(), [&](const CounterColumn& k) { return f->name() == k.field; }))
      return where + message->name() + "." + f->name() + " is no column";
  }
  return std::nullopt;
}

void add_counters(const Kind& kind, const std::vector<CounterRow>& rows, v1::CountersSnapshot& out) {
  const KindCounters& c = *kind.counters;
  const FieldDescriptor* list = list_field(kind);
  const auto* message = list->message_type();
  std::vector<const FieldDescriptor*> fields;  // null: by fill
  for (const CounterColumn& column : c.columns)
    fields.push_back(column.by_fill ? nullptr : message->FindFieldByName(column.field));
  const FieldDescriptor* name = message->FindFieldByName(c.name_field);
  const FieldDescriptor* part = c.part ? message->FindFieldByName(c.part) : nullptr;
  for (const CounterRow& row : rows) {
    auto* x = out.GetReflection()->AddMessage(&out, list);
    const auto* r = x->GetReflection();
    r->SetString(x, name, row.name);
    if (part) r->SetString(x, part, row.part);
    for (size_t i = 0; i < fields.size(); i++)
      if (fields[i]) r->SetUInt64(x, fields[i], row.values[i]);
    if (c.fill) c.fill(row, *x);
  }
}

size_t column_of(const KindCounters& counters, std::string_view field) {
  for (size_t i = 0; i < counters.columns.size(); i++)
    if (field == counters.columns[i].field) return i;
  return counters.columns.size();
}

}  // namespace medix::dp
