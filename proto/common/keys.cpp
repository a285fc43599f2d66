#include "common/keys.h"

#include "common/address.h"

namespace medix::common {

std::optional<RouteKey> route_key(const medix::dataplane::v1::Route& r) {
  auto p = parse_prefix(r.prefix());
  if (!p) return std::nullopt;
  return RouteKey{r.tenant(), p->address, p->length};
}

std::optional<NeighbourKey> neighbour_key(const medix::dataplane::v1::Neighbour& n) {
  auto a = parse_ipv4(n.address());
  if (!a) return std::nullopt;
  return NeighbourKey{n.interface(), *a};
}

std::optional<MappingKey> mapping_key(const medix::dataplane::v1::StaticMapping& m) {
  auto p = parse_prefix(m.tenant_prefix());
  if (!p) return std::nullopt;
  return MappingKey{m.tenant(), p->address, p->length};
}

}  // namespace medix::common
