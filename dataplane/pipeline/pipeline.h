#pragma once
// The pipeline: the one place that knows every stage and the edges between them
// (pipeline.cpp). The runtime's worker loop calls these; stages live in their feature folders.
#include "infra/worker.h"

namespace medix::dp {

// A burst received on a port (slot `port`).
void process_burst(Worker& w, uint16_t port, rte_mbuf** pkts, uint16_t n);
// Packets other workers handed to this one (meta.handoff says why).
void process_handoff(Worker& w, rte_mbuf** pkts, uint16_t n);
// Routes the packets whose AES-CBC jobs completed; with `flush`, first completes every job in
// flight (ipsec/esp.h: when a loop submitted none, and before the tables change).
void process_crypto(Worker& w, bool flush);
// Routes what was originated outside a burst (ICMP errors of the ARP pending queue).
void process_originated(Worker& w);
// Sends what the shapers allow now (qos/); returns how many packets. Called every loop.
unsigned process_shaped(Worker& w);
// Frees what the shapers still hold (medix-dp stopping).
void drop_shaped_on_stop(Worker& w);

}  // namespace medix::dp
