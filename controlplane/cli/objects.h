#pragma once
// The object kinds as medixctl names them, their keys, and objects built from `set` words.
#include <string>
#include <vector>

#include "args.h"
#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::ctl {
namespace v1 = medix::dataplane::v1;

struct KindInfo {
  std::string singular;      // the word in `show`, `set`, `delete`: "static-mapping"
  std::string plural;        // "static-mappings" (either word is accepted)
  std::string config_field;  // the kind's list in a Config file: "static_mappings"
  v1::Kind kind;
  v1::Object::KindCase oneof;
  std::string key_usage;  // "TENANT PREFIX"
};

const std::vector<KindInfo>& kinds();
const KindInfo* find_kind(const std::string& word);  // nullptr if no kind has that name
const KindInfo& kind_of(const v1::Object& object);

// The object of `kind` with only its key fields set, from the next words.
v1::Object key_object(const KindInfo& kind, Args& args);
// A string that is equal for two objects exactly when their keys are ("route/t/10.0.0.0/16");
// prefixes and addresses are compared as numbers.
std::string key_string(const v1::Object& object);
// The key as the words `show KIND KEY...` takes: "t1 10.0.0.0/16".
std::string key_words(const v1::Object& object);
// Clears what the server reports but does not take (a port's MAC, `learned`).
void clear_output_only(v1::Object& object);

// Applies the words of `set KIND KEY ...` that follow the key to `object`, which holds the key
// and, if the object exists, its current fields: the fields named change, the others stay.
void apply_set_words(v1::Object& object, Args& args);

}  // namespace medix::ctl
