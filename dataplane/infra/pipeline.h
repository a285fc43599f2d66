#pragma once
// The stages a burst goes through, in order. Each takes the packets it is given and either
// passes them on (filling the output arrays) or consumes them (sent or dropped).
#include "infra/worker.h"

void l2_input(Worker& w, uint16_t port, rte_mbuf** pkts, uint16_t n, rte_mbuf** ip, uint16_t& n_ip, rte_mbuf** arp,
              uint16_t& n_arp);
void arp_input(Worker& w, rte_mbuf** pkts, uint16_t n);
uint16_t ip_input(Worker& w, rte_mbuf** pkts, uint16_t n);
// ip_input's checks of one packet (IPv4 after meta(m).l2_len bytes); false: dropped.
bool ip_check(Worker& w, rte_mbuf* m);
void ip_lookup(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** fwd, uint16_t& n_fwd, rte_mbuf** local,
               uint16_t& n_local);
// A packet that crossed the core on its owner worker goes on in `exit` (nat/).
void nat_crossed(Worker& w, rte_mbuf* m, uint16_t exit);
// Our own addresses: ICMP echo answered; ESP and ESP-in-UDP handed on (to esp_input).
void local_input(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** esp, uint16_t& n_esp);
void ip_output(Worker& w, rte_mbuf** pkts, uint16_t n);

// Packets medix-dp makes itself.
enum : uint8_t {
  icmp_dest_unreachable = 3,
  icmp_time_exceeded = 11,
  unreach_net = 0,
  unreach_host = 1,
  unreach_needfrag = 4,
  unreach_admin = 13,
};
void icmp_error(Worker& w, rte_mbuf* orig, uint8_t type, uint8_t code, uint16_t mtu = 0);
void arp_request(Worker& w, uint16_t iface, uint32_t target);
