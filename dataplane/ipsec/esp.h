#pragma once
// ESP tunnel mode (RFC 4303), raw or in UDP (RFC 3948), IPv4 in IPv4, with Intel IPsec-MB:
// AES-GCM (RFC 4106) through its direct API, AES-CBC with HMAC-SHA-256-128 (RFC 4868) or
// HMAC-SHA1-96 through its job API.
#include "infra/worker.h"

// Outer packets addressed to a tunnel endpoint of ours (L2 still on). Decrypted inner packets
// come out with no L2, in the tunnel's tenant, as if received on the tunnel interface.
void esp_input(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** inner, uint16_t& n_inner);
// Packets routed to a tunnel (L2 still on, TTL done). Encrypted outer packets come out with
// no L2, in the underlay tenant, marked as our own (no TTL decrement, no ICMP about them).
void esp_output(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** outer, uint16_t& n_outer);
// TCP MSS clamping (both directions of a tunnel): rewrites the MSS option of a SYN.
void clamp_mss(rte_mbuf* m, uint16_t l3_offset, uint16_t mss);
