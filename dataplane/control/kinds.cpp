#include "control/kinds.h"

#include "arp/kinds.h"
#include "ip/kinds.h"
#include "ipsec/kinds.h"
#include "l2/kinds.h"
#include "nat/kinds.h"
#include "qos/kinds.h"

namespace medix::dp {

std::span<const Kind* const> kinds() {
  // Explicit: a kind exists because it is listed here. Tunnels before routes: routes use them.
  static const Kind* const table[] = {
      &port_kind,            // l2
      &tenant_kind,          // ip
      &interface_kind,       // l2
      &tunnel_kind,          // ipsec
      &route_kind,           // ip
      &neighbour_kind,       // arp
      &sa_kind,              // ipsec
      &static_mapping_kind,  // nat
      &napt_pool_kind,       // nat
      &policy_rule_kind,     // nat
      &policer_kind,         // qos
      &shaper_kind,          // qos
  };
  return table;
}

const Kind* kind_of(v1::Object::KindCase object) {
  for (const Kind* k : kinds())
    if (k->object == object) return k;
  return nullptr;
}

const Kind* kind_of(v1::Kind list_kind) {
  for (const Kind* k : kinds())
    if (k->list_kind == list_kind) return k;
  return nullptr;
}

}  // namespace medix::dp
