#include "control/check.h"

#include <google/protobuf/util/message_differencer.h>

namespace medix::dp {

Error invalid(const std::string& path, const std::string& reason) {
  return {Code::invalid_argument, path + ": " + reason};
}

std::string quoted(const std::string& s) { return "\"" + s + "\""; }

bool same(const v1::Object& a, const v1::Object& b) { return google::protobuf::util::MessageDifferencer::Equals(a, b); }

std::optional<Error> range(const std::string& path, uint64_t value, uint64_t lo, uint64_t hi) {
  if (value >= lo && value <= hi) return std::nullopt;
  return invalid(path, std::to_string(value) + " is out of range " + std::to_string(lo) + ".." + std::to_string(hi));
}

std::optional<Error> name(const std::string& path, const std::string& value) {
  if (value.empty()) return invalid(path, "is required");
  if (value.size() > 63) return invalid(path, "is longer than 63 characters");
  for (char c : value)
    if (c <= ' ' || c == '"' || c == '\\' || c == 0x7f)
      return invalid(path, quoted(value) + " has a space, quote or control character");
  return std::nullopt;
}

std::optional<Error> mac(const std::string& path, const std::string& value) {
  auto m = parse_mac(value);
  if (!m) return invalid(path, quoted(value) + " is not a MAC address like 02:00:00:00:00:01");
  if ((*m >> 40) & 1) return invalid(path, "is a multicast MAC");
  if (*m == 0) return invalid(path, "is the zero MAC");
  return std::nullopt;
}

uint32_t mask_of(uint8_t length) { return length == 0 ? 0 : ~uint32_t(0) << (32 - length); }

bool overlap(uint32_t a, uint8_t la, uint32_t b, uint8_t lb) {
  uint32_t m = mask_of(std::min(la, lb));
  return (a & m) == (b & m);
}

std::string cidr(uint32_t address, uint8_t length) { return format_ipv4(address) + "/" + std::to_string(length); }

std::optional<Error> network(const std::string& path, const std::string& text, Prefix& out) {
  auto p = parse_prefix(text);
  if (!p) return invalid(path, quoted(text) + " is not a prefix like 10.1.0.0/16");
  if (p->address & ~mask_of(p->length))
    return invalid(path, quoted(text) + " has host bits set (did you mean " +
                             cidr(p->address & mask_of(p->length), p->length) + "?)");
  out = *p;
  return std::nullopt;
}

void count(std::unordered_map<std::string, size_t>& users, const std::string& name, int delta) {
  auto it = users.find(name);
  if (it == users.end()) it = users.emplace(name, 0).first;
  it->second += delta;
  // A count of 0 goes: a name whose users all went (deleted, or undone with a refused
  // transaction, whose intent must be as before) would otherwise stay in the index for ever.
  // Found by fuzz-apply.
  if (it->second == 0) users.erase(it);
}

size_t users(const std::unordered_map<std::string, size_t>& users, const std::string& name) {
  auto it = users.find(name);
  return it == users.end() ? 0 : it->second;
}

std::optional<Error> in_use(const std::string& path, const char* kind, const std::string& name, size_t n) {
  if (!n) return std::nullopt;
  return Error{Code::failed_precondition, path + ": " + kind + " " + quoted(name) + " is still used by " +
                                              std::to_string(n) + (n == 1 ? " object" : " objects") +
                                              " (interfaces, routes, neighbours, mappings, pools or rules)"};
}

}  // namespace medix::dp
