// Fuzzes medix-cp's intent loader (controlplane/intent_file.cpp): text -> parse_intent (the
// JSON of medix.controlplane.v1.Intent, strict) -> defaults and validation of peers and static
// objects. An error must not quote a PSK of the input; an accepted intent, saved as medix-cp
// saves it and loaded again, must be accepted as the same intent; its DNS zones (dns/zones.cpp)
// are made without a fault, each zone with its SOA.
#include <google/protobuf/util/message_differencer.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "dns/zones.h"
#include "intent_file.h"
#include "secrets.h"

namespace c1 = medix::controlplane::v1;

namespace {

// The error for an intent text, "" if it is accepted.
std::string run(const std::string& text) {
  c1::Intent intent;
  if (auto error = medix::cp::parse_intent(text, "fuzz.json", intent)) return *error;
  // What save_intent writes (the file medix-cp keeps) must load back to the same intent.
  std::string unprintable;
  std::string saved = medix::cp::intent_json(intent, unprintable);
  if (!unprintable.empty()) {
    fprintf(stderr, "fuzz-intent: an accepted intent cannot be saved: %s\n", unprintable.c_str());
    abort();
  }
  c1::Intent again;
  auto reload = medix::cp::parse_intent(saved, "saved.json", again);
  if (reload || !google::protobuf::util::MessageDifferencer::Equals(intent, again)) {
    fprintf(stderr, "fuzz-intent: the saved intent does not load back the same: %s\n",
            reload ? reload->c_str() : "it differs");
    abort();
  }
  for (const auto& [name, zone] : medix::cp::dns::zones_of(intent))
    if (zone.empty() || zone.begin()->owner.empty()) {
      fprintf(stderr, "fuzz-intent: zone %s of an accepted intent has no records\n", name.c_str());
      abort();
    }
  return "";
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  std::string message = run(text);
  if (message.empty()) return 0;
  fuzz::each_json_value(text, "psk",
                        [&](size_t at, size_t len) { fuzz::check_not_quoted(message, text, at, len, run, "PSK"); });
  return 0;
}
