#include "common/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

namespace medix::common {

// As inet_pton(AF_INET) reads an address (four decimal parts of 0..255, no leading zero, nothing
// else), without its copy of the text: a million routes' prefixes are parsed several times.
std::optional<uint32_t> parse_ipv4(std::string_view text) {
  uint32_t address = 0;
  size_t i = 0;
  for (int part = 0; part < 4; part++) {
    if (part > 0) {
      if (i == text.size() || text[i] != '.') return std::nullopt;
      i++;
    }
    size_t start = i;
    unsigned value = 0;
    while (i < text.size() && i - start < 4 && text[i] >= '0' && text[i] <= '9')
      value = value * 10 + unsigned(text[i++] - '0');
    size_t digits = i - start;
    if (digits == 0 || digits > 3 || value > 255 || (digits > 1 && text[start] == '0')) return std::nullopt;
    address = address << 8 | value;
  }
  if (i != text.size()) return std::nullopt;
  return address;
}

std::optional<Prefix> parse_prefix(std::string_view text) {
  auto slash = text.find('/');
  if (slash == std::string_view::npos) return std::nullopt;
  auto address = parse_ipv4(text.substr(0, slash));
  auto len_text = text.substr(slash + 1);
  unsigned length = 0;
  auto [end, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), length);
  if (!address || ec != std::errc() || end != len_text.data() + len_text.size() || len_text.empty() || length > 32)
    return std::nullopt;
  return Prefix{*address, static_cast<uint8_t>(length)};
}

std::optional<uint64_t> parse_mac(std::string_view text) {
  if (text.size() != 17) return std::nullopt;
  uint64_t mac = 0;
  for (unsigned i = 0; i < 6; i++) {
    if (i > 0 && text[i * 3 - 1] != ':') return std::nullopt;
    unsigned byte = 0;
    auto [end, ec] = std::from_chars(text.data() + i * 3, text.data() + i * 3 + 2, byte, 16);
    if (ec != std::errc() || end != text.data() + i * 3 + 2) return std::nullopt;
    mac = (mac << 8) | byte;
  }
  return mac;
}

bool parse_endpoint(std::string_view text, sockaddr_in& out) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return false;
  auto address = parse_ipv4(text.substr(0, colon));
  std::string port(text.substr(colon + 1));
  char* end = nullptr;
  long p = std::strtol(port.c_str(), &end, 10);
  if (!address || port.empty() || *end || p <= 0 || p > 65535) return false;
  std::memset(&out, 0, sizeof out);
  out.sin_family = AF_INET;
  out.sin_port = htons(uint16_t(p));
  out.sin_addr.s_addr = htonl(*address);
  return true;
}

std::string format_ipv4(uint32_t address) {
  char buf[INET_ADDRSTRLEN];
  in_addr a{htonl(address)};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

std::string format_prefix(Prefix prefix) { return format_ipv4(prefix.address) + "/" + std::to_string(prefix.length); }

std::string format_network(Prefix prefix) {
  uint32_t mask = prefix.length == 0 ? 0 : ~uint32_t{0} << (32 - prefix.length);
  return format_prefix({prefix.address & mask, prefix.length});
}

}  // namespace medix::common
