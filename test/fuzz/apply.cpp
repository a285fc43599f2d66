// Fuzzes Apply's validation: a transaction (an ApplyRequest, as protobuf's binary encoding, or
// its JSON when the input starts with '{') against a populated intent, the IX of pipeline.json
// (every kind of object). The operations go through operations_from and Intent::apply, as
// the API's Apply does. A rejected transaction must leave the intent exactly as it was, its
// indexes included ("validated whole, applied whole"); an accepted one is taken back with
// rollback_last (what the controller does when the dataplane cannot follow it), which must
// restore it exactly too. An error must not quote a key of the request.
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <variant>

#include "common/json.h"
#include "config/load.h"
#include "control/intent.h"
#include "secrets.h"

using namespace medix::dp;

namespace {

Intent* intent = nullptr;
std::string baseline;

// Everything the intent holds, indexes and their leftovers (a count of 0) included, in a
// deterministic order. Creation stamps of SAs are compared by key: their values only order
// the SAs one transaction creates.
std::string dump(const Intent& in) {
  std::ostringstream out;
  auto objects = [&](const char* kind, const auto& map) {
    for (const auto& [key, value] : map) out << kind << ' ' << value.ShortDebugString() << '\n';
  };
  objects("port", in.ports);
  objects("tenant", in.tenants);
  objects("interface", in.interfaces);
  objects("tunnel", in.tunnels);
  objects("napt_pool", in.napt_pools);
  objects("policy_rule", in.policy_rules);
  for (const auto& [k, v] : in.routes)
    out << "route " << k.tenant << ' ' << k.address << '/' << int(k.length) << ' ' << v.ShortDebugString() << '\n';
  for (const auto& [k, v] : in.neighbours)
    out << "neighbour " << k.interface << ' ' << k.address << ' ' << v.ShortDebugString() << '\n';
  for (const auto& [k, v] : in.sas)
    out << "sa " << k.tunnel << ' ' << k.spi << ' ' << k.inbound << ' ' << v.ShortDebugString() << '\n';
  for (const auto& [k, v] : in.sa_serial) out << "sa_serial " << k.tunnel << ' ' << k.spi << ' ' << k.inbound << '\n';
  for (const auto& [k, v] : in.static_mappings)
    out << "static_mapping " << k.tenant << ' ' << k.address << '/' << int(k.length) << ' ' << v.ShortDebugString()
        << '\n';
  out << "settings " << in.settings.ShortDebugString() << '\n';
  for (const auto& [k, v] : in.attachments)
    out << "attachment " << std::get<0>(k) << ' ' << std::get<1>(k) << ' ' << std::get<2>(k) << ' ' << v << '\n';
  for (const auto& [k, v] : in.tenant_addresses) out << "address " << k.first << ' ' << k.second << ' ' << v << '\n';
  auto users = [&](const char* what, const std::unordered_map<std::string, size_t>& map) {
    std::map<std::string, size_t> sorted(map.begin(), map.end());
    for (const auto& [k, v] : sorted) out << what << ' ' << k << ' ' << v << '\n';
  };
  users("tenant_users", in.tenant_users);
  users("interface_users", in.interface_users);
  users("port_users", in.port_users);
  for (const auto& [k, v] : in.tenant_routes) out << "tenant_routes " << k << ' ' << v << '\n';
  for (uint32_t spi : in.inbound_spis) out << "inbound_spi " << spi << '\n';
  return out.str();
}

void check_unchanged(const char* after) {
  std::string now = dump(*intent);
  if (now == baseline) return;
  // The first line that differs says what was left behind.
  size_t at = 0;
  while (at < now.size() && at < baseline.size() && now[at] == baseline[at]) at++;
  size_t line = baseline.rfind('\n', at ? at - 1 : 0);
  line = line == std::string::npos ? 0 : line + 1;
  fprintf(stderr, "fuzz-apply: %s left the intent changed, from:\n  before: %.200s\n  after:  %.200s\n", after,
          baseline.c_str() + line, now.c_str() + std::min(line, now.size()));
  abort();
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* path = getenv("MEDIX_FUZZ_PIPELINE_CONFIG");
  std::ifstream in(path ? path : MEDIX_FUZZ_DIR "/pipeline.json");
  std::stringstream text;
  text << in.rdbuf();
  auto loaded = load_text(text.str(), "pipeline.json");
  if (auto* error = std::get_if<std::string>(&loaded)) {
    fprintf(stderr, "fuzz-apply: %s\n", error->c_str());
    abort();
  }
  intent = new Intent;
  Diff diff;
  if (auto e = intent->apply(operations_from(std::move(std::get<medix::dataplane::v1::Config>(loaded))), diff)) {
    fprintf(stderr, "fuzz-apply: pipeline.json: %s\n", e->message.c_str());
    abort();
  }
  intent->forget_last();
  baseline = dump(*intent);
  return 0;
}

namespace {

// The error for a request (protobuf's binary encoding, or JSON if it starts with '{'), "" if
// it is accepted or not a request; the intent is as before either way (or the run aborts).
std::string run(const std::string& input, v1::ApplyRequest& request) {
  size_t first = input.find_first_not_of(" \t\r\n");
  bool json = first != std::string::npos && input[first] == '{';
  if (json ? medix::common::parse_json(input, request).has_value() : !request.ParseFromString(input))
    return "";  // not a request (the loader's own fuzzer covers JSON errors)
  std::vector<Operation> ops;
  if (auto e = operations_from(request, ops)) return e->message;
  Diff diff;
  if (auto e = intent->apply(ops, diff)) {
    check_unchanged("a rejected transaction");
    return e->message;
  }
  intent->rollback_last();
  check_unchanged("rollback_last of an accepted transaction");
  return "";
}

std::string message_of(const std::string& input) {
  v1::ApplyRequest request;
  return run(input, request);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string input(reinterpret_cast<const char*>(data), size);
  v1::ApplyRequest request;
  std::string message = run(input, request);
  if (message.empty()) return 0;
  auto check = [&](size_t at, size_t len) { fuzz::check_not_quoted(message, input, at, len, message_of, "key"); };
  // Keys as JSON text only in JSON: in the binary encoding such a pattern is other fields'
  // bytes, and changing them changes the request (a false finding).
  size_t first = input.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && input[first] == '{') fuzz::each_json_value(input, "_key", check);
  // In the binary encoding a key's bytes are in the input as they are: each place they are.
  for (const auto& op : request.operations())
    for (const std::string* key : {&op.object().sa().cipher_key(), &op.object().sa().integrity_key()})
      for (size_t at = key->empty() ? std::string::npos : input.find(*key), n = 0; at != std::string::npos && n < 4;
           at = input.find(*key, at + 1), n++)
        check(at, key->size());
  return 0;
}
