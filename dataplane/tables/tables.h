#pragma once
// The compiled form of the config that workers read: flat arrays indexed by small ids, a FIB
// per tenant (a root in the compact LPM's pool, or an rte_fib DIR24_8), and rte_hash indexes
// with lock-free readers. Built by the main lcore
// (control/commit.cpp); workers only read it.
#include <rte_ether.h>
#include <rte_fib.h>
#include <rte_hash.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "infra/limits.h"
#include "ipsec/tables.h"
#include "nat/tables.h"
#include "qos/tables.h"
#include "tables/hash.h"
#include "tables/lpm.h"
#include "vrrp/tables.h"

namespace medix::dp {

// Addresses are kept in host byte order everywhere but on the wire.
struct Subnet {
  uint32_t address = 0;  // the interface's own address
  uint8_t length = 0;
  bool contains(uint32_t ip) const {
    uint32_t mask = length == 0 ? 0 : ~uint32_t(0) << (32 - length);
    return (ip & mask) == (address & mask);
  }
};

struct PortEntry {
  uint16_t port_id = 0;  // the ethdev id
  uint16_t mtu = 1500;
  bool live = false;        // a slot of a deleted port is not polled
  bool admin_down = false;  // not polled, nothing sent
  rte_ether_addr mac{};
  std::string name;
};

struct InterfaceEntry {
  uint32_t uid = 0;   // never reused, unlike the slot: tells a packet's interface is still the same one
  uint16_t port = 0;  // slot in Tables::ports
  uint16_t tenant = 0;
  uint16_t outer_vlan = 0;
  uint16_t inner_vlan = 0;
  uint16_t mtu = 1500;
  rte_ether_addr mac{};
  // The master flag of the interface's first VRRP instance (by name), if any: while it is master, frames
  // forwarded out of the interface carry its virtual MAC as source (l2/l2.h). Set by
  // vrrp/commit.cpp; the Live belongs to the same generation's Tables::vrrp.
  const vrrp::Live* vrrp_live = nullptr;
  uint8_t vrrp_vrid = 0;
  uint8_t subnet_count = 0;
  std::array<Subnet, max_addresses_per_interface> subnets{};
  std::string name;

  // Tunnels (route-based IPsec) only.
  bool tunnel = false;
  uint16_t underlay = 0;           // tenant slot of the outer packets
  uint32_t local = 0, remote = 0;  // outer addresses
  uint16_t remote_port = 0;        // ESP in UDP to this port; 0: raw ESP
  uint8_t ttl = 64;
  uint8_t df_mode = 0;           // v1::DfMode
  int16_t outer_dscp = -1;       // the outer DSCP; -1: the inner's (copied)
  bool decap_copy_dscp = false;  // decapsulated packets take the outer DSCP
  uint16_t mss_clamp = 0;
  uint16_t outbound_sa = 0;  // SA slot; 0: none
  uint8_t n_local_selectors = 0, n_remote_selectors = 0;
  std::array<Subnet, 8> local_selectors{}, remote_selectors{};

  // Our address on the subnet of `ip`, else the first address, else 0.
  uint32_t source_for(uint32_t ip) const {
    for (unsigned i = 0; i < subnet_count; i++)
      if (subnets[i].contains(ip)) return subnets[i].address;
    return subnet_count ? subnets[0].address : 0;
  }
  bool on_link(uint32_t ip) const {
    for (unsigned i = 0; i < subnet_count; i++)
      if (subnets[i].contains(ip)) return true;
    return false;
  }
  bool owns(uint32_t ip) const {
    for (unsigned i = 0; i < subnet_count; i++)
      if (subnets[i].address == ip) return true;
    return false;
  }
};

enum class NexthopKind : uint8_t { no_route, via, leak, local, blackhole, unreachable };

struct Nexthop {
  NexthopKind kind = NexthopKind::no_route;
  uint16_t interface = 0;  // via
  uint16_t tenant = 0;     // leak: where the lookup continues
  uint32_t gateway = 0;    // via: 0 means connected (the destination is the neighbour)
  bool operator==(const Nexthop&) const = default;
};

struct TenantEntry {
  bool live = false;       // a free slot is not
  uint32_t uid = 0;        // new for each tenant a slot holds: workers reset their state of it
  rte_fib* fib = nullptr;  // a DIR24_8 tenant's: the copy workers read in this generation
  std::string name;
  bool core = false;
  Translation nat;  // nat/tables.h
};

// Each of a tenant's two FIB copies (ip/commit.cpp): DIR24_8 with 2-byte next hops, room for its
// routes and its interfaces' addresses, tbl8 groups (routes longer than /24) for one route in 8,
// 1024 to 32767.
inline rte_fib_conf tenant_fib_conf(uint32_t max_routes) {
  rte_fib_conf conf{};
  conf.type = RTE_FIB_DIR24_8;
  conf.default_nh = 0;
  conf.max_routes = int(max_routes + 2 * max_addresses_per_interface * 64);
  conf.dir24_8.nh_sz = RTE_FIB_DIR24_8_2B;
  conf.dir24_8.num_tbl8 = std::min<uint32_t>(32767, std::max<uint32_t>(1024, max_routes / 8));
  return conf;
}

// Key of the interface index: which interface a frame arrived on.
struct InterfaceKey {
  uint16_t port;
  uint16_t outer_vlan;
  uint16_t inner_vlan;
  uint16_t zero;
};

// Neighbours: (interface slot, address) -> MAC. Workers read; only the control side writes.
// The MAC and flags share one 64-bit word so that readers see a whole entry or none.
struct NeighbourSlotKey {
  uint32_t address;
  uint16_t interface;
  uint16_t zero;
};

// The interface index (room for twice max_interfaces), rebuilt by each transaction that changes
// interfaces; the neighbour table's index, read lock-free by workers while the main lcore adds.
inline constexpr HashShape interface_index_shape{max_interfaces * 2, sizeof(InterfaceKey), 0};
inline constexpr HashShape neighbour_index_shape{max_neighbours, sizeof(NeighbourSlotKey),
                                                 RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF};

// A worker's memory of the neighbours it looked up (one per worker, its own): an entry holds
// while the table's epoch is the one it was filled in, and the table changes its epoch with
// every change of an entry. With traffic to many next hops (a thousand tenants' gateways) a
// burst then reads one line a packet instead of a hash bucket and its key.
struct NeighbourCache {
  static constexpr unsigned size = 4096;
  struct Entry {
    uint64_t word;  // as the table holds it (MAC, valid, static)
    uint32_t address;
    uint16_t interface;
    uint16_t zero;
    uint64_t epoch;
  } entries[size];
  static unsigned index(uint32_t address, uint16_t interface) {  // Fibonacci hashing of the whole key
    return unsigned(((uint64_t(interface) << 32 | address) * 0x9e3779b97f4a7c15ull) >> (64 - 12));
  }
  static_assert(size == 1u << 12);
};

class NeighbourTable {
 public:
  static constexpr uint64_t valid = uint64_t(1) << 48;
  static constexpr uint64_t is_static = uint64_t(1) << 49;

  bool init(const char* name, unsigned socket);
  void destroy();
  // Control side only. Returns false when the table is full.
  bool set(uint16_t interface, uint32_t address, const rte_ether_addr& mac, bool make_static);
  // Control side only: readers see the entry gone at once; its slot is kept until release()
  // after an RCU grace period (lock-free readers may still hold its position).
  void remove(uint16_t interface, uint32_t address, std::vector<int32_t>& release_after_grace);
  void release(const std::vector<int32_t>& positions);
  // Any lcore. Fills words[i] (0 when unknown) for each key; a worker passes its cache.
  void lookup_bulk(const NeighbourSlotKey* keys, unsigned n, uint64_t* words, NeighbourCache* cache = nullptr) const;
  static rte_ether_addr mac_of(uint64_t word);
  template <typename F>
  void for_each(F&& f) const;

 private:
  rte_hash* index_ = nullptr;
  std::atomic<uint64_t>* entries_ = nullptr;  // by hash position
  // Changes after every entry's change (stored after the entry: a reader that sees an epoch
  // sees the entries as they were when it was stored, or newer).
  std::atomic<uint64_t> epoch_{1};
};

template <typename F>
void NeighbourTable::for_each(F&& f) const {
  const void* key;
  void* data;
  uint32_t next = 0;
  int32_t pos;
  while ((pos = rte_hash_iterate(index_, &key, &data, &next)) >= 0) {
    uint64_t w = entries_[pos].load(std::memory_order_acquire);
    if (w & valid) f(*static_cast<const NeighbourSlotKey*>(key), mac_of(w), (w & is_static) != 0);
  }
}

// One generation of what workers read. Immutable once published: the control side builds the
// next one and swaps the pointer (control/commit.cpp). The nexthop array and the neighbour
// table are shared between generations and updated in ways readers tolerate (see there).
struct Tables {
  uint64_t version = 0;
  // Serial of this generation, one more for each published (commits and ClearSessions): what a
  // session's kept routing proves itself current by (nat/nat.h, Session::checked).
  uint32_t generation = 0;
  std::vector<PortEntry> ports;            // by slot
  std::vector<InterfaceEntry> interfaces;  // by slot; a slot with uid 0 is free
  std::vector<TenantEntry> tenants;        // by slot; not live: free
  // Which tenant table this is, for HA sync (ha/tenants.h): a new value, never 0, each time a
  // tenant is added or removed. A session record names its tenants by slot in this table.
  uint16_t tenant_epoch = 0;
  // Compact FIBs (tables/lpm.h): each tenant's root ply by slot, 0 for a DIR24_8 tenant
  // (tenants[slot].fib) or a free slot; the pool of plies every root is in.
  std::vector<uint32_t> fib_roots;
  const uint32_t* plies = nullptr;
  const Nexthop* nexthops = nullptr;  // index 0: no route (every FIB's default)
  std::shared_ptr<rte_hash> interface_index;
  // The same for frames without an inner tag, by port and outer VLAN (port << 12 | vlan): the
  // slot + 1, 0 for none. One read where the hash needs a bucket and a key (and 1,000 VLANs'
  // entries fit in 32 cache lines). QinQ interfaces are in interface_index only.
  std::shared_ptr<const uint16_t[]> vlan_map;
  NeighbourTable* neighbours = nullptr;
  // IPsec (ipsec/tables.h).
  SaState* const* sas = nullptr;  // by slot, shared; 0 is never used
  rte_hash* sa_index = nullptr;   // inbound SPI -> slot, lock-free readers
  // Crossing the core (nat/tables.h): the core tenant's slot, the rules in the order they are
  // tried, and every worker's session tables (nullptr until a core tenant exists).
  uint16_t core = UINT16_MAX;
  std::vector<PolicyRuleEntry> rules;
  uint32_t policy_epoch = 0;  // the generation that last changed the rules
  NatWorker* const* nat = nullptr;
  uint16_t workers = 1;
  // Features' own parts, each declared in its folder's tables.h (one line a feature). IPsec's
  // and NAT's above keep their older names, which their datapath reads.
  qos::Tables qos;
  vrrp::Tables vrrp;
};

}  // namespace medix::dp
