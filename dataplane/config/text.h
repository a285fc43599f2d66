#pragma once
// Parsing of the textual forms the config uses for addresses, prefixes and MACs.
#include <cstdint>
#include <optional>
#include <string_view>

struct Prefix {
  uint32_t address;  // host byte order
  uint8_t length;
};

std::optional<uint32_t> parse_ipv4(std::string_view text);
// "a.b.c.d/len"; the address may have host bits set (an interface address).
std::optional<Prefix> parse_prefix(std::string_view text);
std::optional<uint64_t> parse_mac(std::string_view text);  // "02:00:00:00:00:01", 48 bits
std::string format_ipv4(uint32_t address);
