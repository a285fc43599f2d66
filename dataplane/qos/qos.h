#pragma once
// QoS on ingress: policers on classes of traffic (docs/qos.md).
#include <rte_mbuf.h>

#include <cstdint>

#include "infra/worker.h"

namespace medix::dp {

// Polices a burst of IPv4 packets l2_input classified (meta iface_in, tenant, l2_len): each
// packet in a policer's class is coloured by this worker's share of it and counted, then
// transmitted, remarked or dropped as its colour says. Keeps the others in order; returns how
// many are left in `pkts`. `now` is the TSC the meters run on. The pipeline calls it only when
// the generation has policers.
uint16_t police(Worker& w, rte_mbuf** pkts, uint16_t n, uint64_t now);

}  // namespace medix::dp
