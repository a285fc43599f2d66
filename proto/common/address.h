#pragma once
// IPv4 addresses, prefixes and MACs in the text forms the APIs and files use: one parser for
// medix-dp, medix-cp and medixctl, so that all three accept exactly the same strings.
#include <netinet/in.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace medix::common {

struct Prefix {
  uint32_t address;  // host byte order
  uint8_t length;
};

std::optional<uint32_t> parse_ipv4(std::string_view text);
// "a.b.c.d/len"; the address may have host bits set (an interface address).
std::optional<Prefix> parse_prefix(std::string_view text);
std::optional<uint64_t> parse_mac(std::string_view text);  // "02:00:00:00:00:01", 48 bits
// "a.b.c.d:PORT" (PORT 1..65535) into a socket address: the HA sync link's ends, as medix-dp and
// medix-cp take them (--ha-sync-local, --ha-sync-peer). False if it is not one.
bool parse_endpoint(std::string_view text, sockaddr_in& out);
std::string format_ipv4(uint32_t address);
// "a.b.c.d/len" as parsed (host bits kept).
std::string format_prefix(Prefix prefix);
// "a.b.c.d/len" with the host bits cleared: one text for every spelling of a network.
std::string format_network(Prefix prefix);

}  // namespace medix::common
