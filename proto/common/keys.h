#pragma once
// The keys of medix-dp's objects that are not keyed by a name, from their v1 messages: one
// identity for an object in medix-dp's intent, medix-cp and medixctl. Addresses are compared as
// numbers, not as the text they were written in.
#include <compare>
#include <cstdint>
#include <optional>
#include <string>

#include "medix/dataplane/v1/objects.pb.h"

namespace medix::common {

struct RouteKey {
  std::string tenant;
  uint32_t address;
  uint8_t length;
  auto operator<=>(const RouteKey&) const = default;
};

struct NeighbourKey {
  std::string interface;
  uint32_t address;
  auto operator<=>(const NeighbourKey&) const = default;
};

struct SaKey {
  std::string tunnel;
  uint32_t spi;
  bool inbound;
  auto operator<=>(const SaKey&) const = default;
};

struct MappingKey {
  std::string tenant;
  uint32_t address;
  uint8_t length;
  auto operator<=>(const MappingKey&) const = default;
};

// nullopt where the message's prefix or address does not parse.
std::optional<RouteKey> route_key(const medix::dataplane::v1::Route& r);
std::optional<NeighbourKey> neighbour_key(const medix::dataplane::v1::Neighbour& n);
inline SaKey sa_key(const medix::dataplane::v1::SecurityAssociation& sa) {
  return SaKey{sa.tunnel(), sa.spi(), sa.inbound()};
}
std::optional<MappingKey> mapping_key(const medix::dataplane::v1::StaticMapping& m);

}  // namespace medix::common
