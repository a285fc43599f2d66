#pragma once
// ARP: answers for our addresses, learning (handed to the main lcore), requests.
#include "infra/worker.h"

namespace medix::dp {

void arp_input(Worker& w, rte_mbuf** pkts, uint16_t n);
void arp_request(Worker& w, uint16_t iface, uint32_t target);

}  // namespace medix::dp
