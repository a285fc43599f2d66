#pragma once
// The static part of medix-cp's intent (tenants, interfaces, routes, ... in medix-dp's own
// messages) as medix-dp objects: keys, dependency order, validation of fields, and the errors
// of medix-dp's transactions named by the intent's fields.

#include <map>
#include <string>
#include <vector>

#include "medix/controlplane/v1/intent.pb.h"
#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::cp {

namespace c1 = medix::controlplane::v1;
namespace v1 = medix::dataplane::v1;

// An object of the intent and where it is ("routes[3]").
struct IntentObject {
  v1::Object object;
  std::string field;
};

// The object's key as one string: "tenant hosp-a", "route hosp-a 10.0.1.0/24", ...
std::string key_of(const v1::Object& o);

// A name in the intent: 1 to 64 letters, digits, '-', '_' or '.'.
bool is_name(const std::string& s);
// Creation order: ports, tenants, interfaces, neighbours, tunnels, routes, static mappings,
// NAPT pools, policy rules, SAs (deletion goes the other way).
int rank_of(const v1::Object& o);
// The kinds the static intent holds (and tunnels), in creation order.
std::vector<v1::Kind> static_kinds();

// The static objects of the intent, in creation order.
std::vector<IntentObject> static_objects(const c1::Intent& intent);

// Field checks of the static objects (names, prefixes, addresses, duplicate keys, routes that a
// peer's tunnel owns); "" or "routes[2].prefix: reason".
std::string validate_static(const c1::Intent& intent);

// medix-dp's "operations[N].kind.field: reason" with N an index into `fields`, rewritten as
// "routes[3].field: reason".
std::string name_fields(const std::string& message, const std::vector<std::string>& fields);

// A copy that compares with what medix-dp lists: output-only fields cleared.
v1::Object comparable(v1::Object o);

}  // namespace medix::cp
