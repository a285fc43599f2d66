#pragma once
// Helpers the kinds' checks share: each returns the error naming the field it is about.
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/address.h"
#include "control/intent.h"

namespace medix::dp {

Error invalid(const std::string& path, const std::string& reason);
std::string quoted(const std::string& s);
bool same(const v1::Object& a, const v1::Object& b);
std::optional<Error> range(const std::string& path, uint64_t value, uint64_t lo, uint64_t hi);
// A name: 1 to 63 characters, no space, quote or control character.
std::optional<Error> name(const std::string& path, const std::string& value);
// A unicast, non-zero MAC address.
std::optional<Error> mac(const std::string& path, const std::string& value);

uint32_t mask_of(uint8_t length);
bool overlap(uint32_t a, uint8_t la, uint32_t b, uint8_t lb);
std::string cidr(uint32_t address, uint8_t length);
// A prefix whose host bits are zero, or the error naming the field.
std::optional<Error> network(const std::string& path, const std::string& text, Prefix& out);

// Objects referring to others by name, counted so that a DELETE can be refused.
void count(std::unordered_map<std::string, size_t>& users, const std::string& name, int delta);
size_t users(const std::unordered_map<std::string, size_t>& users, const std::string& name);
// The DELETE of a `kind` that `n` objects still use.
std::optional<Error> in_use(const std::string& path, const char* kind, const std::string& name, size_t n);

}  // namespace medix::dp
