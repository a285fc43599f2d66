#pragma once
// QoS: policers on classes of ingress traffic, shapers on egress (docs/qos.md).
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

// Takes the packets send_out() put in w.to_shape (L2 header written, meta iface_out set; a
// tunnel's, from shape_tunnels: no L2) into their shaper's class queues on this worker:
// classified, marked, queued or dropped when the class's queue is full.
void shape(Worker& w);
// Packets routed to tunnels (L2 still on, TTL done): those whose tunnel has a shaper (and an
// outbound SA) lose their L2 header and go into its class queues, as shape() takes them; the
// others stay in `pkts`, in order, for esp_output. Returns how many are left.
uint16_t shape_tunnels(Worker& w, rte_mbuf** pkts, uint16_t n);
// Sends what this worker's interfaces' shapers allow now: at most a burst a shaper, strict
// priority first, then the guarantees, then the excess by weight; never waits. Returns how many.
unsigned schedule(Worker& w, uint64_t now);
// What tunnel shaper `s` allows now, scheduled as schedule() does: at most a burst of inner
// packets into `out`, in the order they leave, for esp_output. Returns how many.
uint16_t schedule_tunnel(Worker& w, const qos::Shaper& s, uint64_t now, rte_mbuf** out);
// The class of a packet in shaper `s` (its index): the first whose match holds, else the last.
// `dscp` is -1 when the packet has no IPv4 header.
uint16_t class_of(const Tables& t, const qos::Shaper& s, const PacketMeta& m, int dscp);
// Frees every packet this worker's shapers hold (medix-dp stopping).
void drop_shaped(Worker& w);

}  // namespace medix::dp
