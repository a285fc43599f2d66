#pragma once
// Fixed maxima: per-lcore counter arrays are sized by them so that nothing is allocated or
// resized while workers run.
#include <cstdint>

namespace medix::dp {

inline constexpr unsigned max_ports = 32;
inline constexpr unsigned max_workers = 64;
inline constexpr unsigned max_interfaces = 4096;
inline constexpr unsigned max_tenants = 1024;
// Routes of every tenant together (configured ones; connected and local ones not counted).
inline constexpr unsigned max_routes_total = 1u << 22;
// Compact FIBs (tables/lpm.h), every tenant's together: 1 KiB plies (1,284 bytes with what
// only the writer reads). A tenant holding random /24s takes up to two plies a route; one
// whose routes share their /16s far fewer (1M random /24s: ~57,000 plies).
inline constexpr unsigned max_fib_plies = 1u << 20;
inline constexpr unsigned max_nexthops = 32767;  // rte_fib DIR24_8 with 2-byte next hops
inline constexpr unsigned max_neighbours = 65536;
inline constexpr unsigned max_addresses_per_interface = 8;
inline constexpr unsigned burst_size = 32;
inline constexpr unsigned max_pending = 4096;
inline constexpr unsigned max_leak_hops = 4;
inline constexpr unsigned max_sas = 8192;  // slot 0 unused
inline constexpr unsigned max_policy_rules = 4096;
inline constexpr uint32_t max_session_limit = 1u << 28;  // a tenant's session_limit

// What medix-dp allocates at start is sized by these (and the tables' shapes, tables/tables.h);
// runtime/memory.cpp estimates it from them for `medix-dp --check`.
inline constexpr unsigned rx_descriptors = 1024;  // per port and worker
inline constexpr unsigned tx_descriptors = 1024;
inline constexpr unsigned packet_pool_cache = 256;     // per lcore, in the packet pools
inline constexpr unsigned indirect_buffers = 4095;     // clones (rte_pktmbuf_attach) without data
inline constexpr unsigned learned_ring_size = 4096;    // ARP learning, workers to the main lcore
inline constexpr unsigned handoff_ring_size = 4096;    // per worker: packets of what it owns
inline constexpr unsigned sa_event_ring_size = 4096;   // per worker: SA lifetime events
inline constexpr unsigned punt_ring_size = 1024;       // the exception TAP's, to workers
inline constexpr uint32_t default_max_routes = 65536;  // a tenant's, unless it says
// What an allocation EAL's memory refused says to do.
inline constexpr char more_memory[] = "give EAL more memory with -m (medix-dp --check estimates what is needed)";

}  // namespace medix::dp
