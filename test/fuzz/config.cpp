// Fuzzes the config loader: text -> load_text (the JSON of medix.dataplane.v1.Config, strict:
// no unknown field, no key twice, no trailing comma) -> its objects as the first transaction,
// validated by Intent::apply as `medix-dp --check` does. An error must not quote a key of the
// input; an accepted config applied a second time must change nothing (idempotent re-sends).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::string message = run(text);
  if (message.empty()) return 0;
  fuzz::each_json_value(text, "_key",
                        [&](size_t at, size_t len) { fuzz::check_not_quoted(message, text, at, len, run, "key"); });
  return 0;
}
