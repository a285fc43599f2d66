#pragma once
// What medix-dp takes from EAL's memory (-m) for a config, item by item. Computed from what the
// runtime allocates with (infra/limits.h, the tables' shapes in tables/tables.h and nat/nat.h, the
// tenants' FIB configuration, the packet pool below) and DPDK 22.11's layouts of its objects;
// `medix-dp --check` prints it with a suggested -m (docs/running.md). test/unit/memory_test.cpp
// holds each item against what DPDK's heap really gives out.
#include <rte_fib.h>

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "infra/settings.h"
#include "medix/dataplane/v1/objects.pb.h"
#include "tables/tables.h"

namespace medix::dp {

// The packet pool (runtime/dataplane.cpp creates it so).
struct PacketPool {
  unsigned buffers = 0;    // settings.packet_buffers, raised to `needed`
  unsigned needed = 0;     // every descriptor of 8 ports, the pending queue and bursts in flight
  uint16_t data_room = 0;  // a whole frame of the largest MTU with two VLAN tags, and headroom
  uint16_t priv_size = 0;  // PacketMeta, rounded to a cache line
};
PacketPool packet_pool(const Settings& settings, unsigned workers, uint32_t max_mtu);

// Bytes of EAL memory DPDK's objects take, its allocator's overhead included. `page_size`: EAL's
// memory pages (4 KiB with --no-huge, else the hugepage size), which a mempool's objects do not
// straddle: with --no-huge a packet buffer takes a page of its own.
uint64_t mempool_bytes(unsigned n, unsigned element_size, unsigned cache_size, unsigned private_size,
                       uint64_t page_size);
uint64_t packet_pool_bytes(unsigned n, uint16_t priv_size, uint16_t data_room, uint64_t page_size);
uint64_t ring_bytes(unsigned element_size, unsigned count);
uint64_t hash_bytes(const HashShape& shape);
uint64_t fib_bytes(const rte_fib_conf& conf, uint64_t page_size);
uint64_t nat_worker_bytes(uint32_t capacity);  // nat_worker_create
uint64_t worker_bytes();                       // one worker's state and rings (Dataplane::start)

struct MemoryItem {
  std::string what, detail;
  uint64_t bytes = 0;
};

struct MemoryEstimate {
  std::vector<MemoryItem> items;
  uint64_t total = 0;
  unsigned suggested_mb = 0;        // -m: the total and room for what transactions add later
  uint64_t per_dir24_8_tenant = 0;  // a DIR24_8 tenant more, with the default max_routes
  uint64_t core_sessions = 0;       // the session tables a first core tenant adds (0: one is counted)
};

// What EAL's options (before "--") will give, read without starting EAL: the worker lcores
// (-l, --lcores, -c; every core but the main one if none) and the page size (--no-huge: the
// system's; else the hugepage size, /proc/meminfo's Hugepagesize).
struct EalShape {
  unsigned workers = 1;
  uint64_t page_size = 4096;
  bool no_huge = false;
  unsigned memory_mb = 0;  // -m, 0 if not given
};
EalShape eal_shape(int argc, char** argv);

uint64_t sync_worker_bytes();  // one worker's HA sync rings (--ha-sync-*)

// For the config file (validated); `ha_sync`: with HA state sync (each worker's sync rings).
MemoryEstimate estimate_memory(const medix::dataplane::v1::Config& config, const Settings& settings,
                               const EalShape& eal, uint32_t max_mtu, bool ha_sync = false);
void print_estimate(FILE* out, const MemoryEstimate& estimate, const EalShape& eal);

}  // namespace medix::dp
