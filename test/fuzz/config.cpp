// Fuzzes the config loader: text -> load_text (the JSON of medix.dataplane.v1.Config, strict:
// no unknown field, no key twice, no trailing comma) -> its objects as the first transaction,
// validated by Intent::apply as `medix-dp --check` does. An error must not quote a key of the
// input; an accepted config applied a second time must change nothing (idempotent re-sends).
// The fast JSON path must parse exactly as protobuf's parser does whenever it takes a text.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>

#include <google/protobuf/util/json_util.h>

#include "common/json.h"
#include "config/load.h"
#include "control/intent.h"
#include "secrets.h"

using namespace medix::dp;

namespace {

// The error for a config text, "" if it is accepted.
std::string run(const std::string& text) {
  auto loaded = load_text(text, "fuzz.json");
  if (auto* error = std::get_if<std::string>(&loaded)) return *error;
  auto ops = operations_from(std::move(std::get<medix::dataplane::v1::Config>(loaded)));
  Intent intent;
  Diff diff;
  if (auto e = intent.apply(ops, diff)) return e->message;
  if (auto again = intent.apply(ops, diff); again || diff.size()) {
    fprintf(stderr, "fuzz-config: the same config applied again %s\n",
            again ? again->message.c_str() : "changed objects");
    abort();
  }
  return "";
}

// A text the fast path took: protobuf's parser must take it too, into the same message.
void check_fast_path(const std::string& text) {
  medix::dataplane::v1::Config fast, slow;
  if (!medix::common::parse_json_fast(text, fast)) return;
  google::protobuf::util::JsonParseOptions options;
  if (!google::protobuf::util::JsonStringToMessage(text, &slow, options).ok() ||
      slow.SerializeAsString() != fast.SerializeAsString()) {
    fprintf(stderr, "fuzz-config: the fast JSON path took a text protobuf's parser reads otherwise\n");
    abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  check_fast_path(text);
  std::string message = run(text);
  if (message.empty()) return 0;
  fuzz::each_json_value(text, "_key",
                        [&](size_t at, size_t len) { fuzz::check_not_quoted(message, text, at, len, run, "key"); });
  return 0;
}
