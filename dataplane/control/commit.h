#pragma once
// Turns an accepted transaction (a Diff of the intent) into what workers read, without ever
// stopping them: build the next generation of tables, publish it with one atomic store, wait
// for an RCU grace period, then reclaim what the old generation used.
//
// A compact tenant's routes go to copies of the plies they touch (tables/lpm.h): the new root
// is published with the generation, the plies the old one alone reached are freed after the
// grace period. A DIR24_8 tenant's go to two copies of its FIB (left-right): the standby copy
// first, then the generation that reads it is published, and after the grace period the same
// changes go to the copy nobody reads any more. rte_fib's DIR24_8 is not safe to change under
// readers (tbl8 groups are freed and reused), but no reader ever sees a copy being written.
#include <rte_mempool.h>
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "control/intent.h"
#include "infra/worker.h"
#include "ipsec/sa.h"
#include "tables/tables.h"

namespace medix::dp {

namespace l2 {
struct Kept;  // l2/commit.h
}
namespace ip {
struct Kept;  // ip/commit.h
}
namespace nat {
struct Kept;  // nat/commit.h
}
namespace ipsec {
struct Kept;  // ipsec/commit.h
}

// The phases of a commit, in order. Each build step of a kind (control/kinds.h) runs in one;
// within a phase, steps run in the kinds table's order.
enum class Phase {
  slots,        // what others refer to by slot: ports, tenants
  attachments,  // interfaces and tunnels
  routes,       // the standby FIB copies
  removals,     // what goes away with its object (neighbours)
  indexes,      // lookups over the attachments
  security,     // SAs
  derived,      // what follows from several kinds (a tunnel's MTU from its SA and port)
  crossing,     // the core's translations and policy
  last,         // static neighbours, just before the interfaces that use them appear
};

class Committer {
 public:
  struct Params {
    rte_rcu_qsbr* rcu = nullptr;  // nullptr: no reader threads (unit tests)
    uint16_t queues = 1;          // rx/tx queue pairs per port: one per worker
    rte_mempool* pool = nullptr;
    unsigned socket = 0;
    uint32_t max_mtu = 1500;             // what the pool's buffers hold
    std::function<Counters()> totals;    // for counter bases of reused slots
    uint32_t max_sessions = 1u << 20;    // crossing the core, all workers together
    uint32_t fib_plies = max_fib_plies;  // the compact FIBs' pool
    // Outbound sequence numbers reserved on disk (ha/reserve.h): where a new outbound SA of a
    // tunnel (its SaState::tunnel_id) and SPI starts. Null: no reservation.
    std::function<uint64_t(uint64_t tunnel, uint32_t spi)> sa_start;
    // HA (ha/sync.h): where an outbound SA the pair's other node negotiated (SA_ORIGIN_PEER)
    // starts at the least, past what that node may have sent on it; none: it is fenced where it
    // is (sends nothing, and its SA event has medix-cp rekey it). Null: as any SA (no HA sync).
    std::function<std::optional<uint64_t>(uint64_t tunnel, uint32_t spi)> sa_peer_start;
  };

  // A commit's steps, each a free function of its feature's folder (declared in its
  // commit.h) and named by its kind's entry in the kinds table (control/kinds.h), which is how
  // commit() finds them. A build step writes the next generation (or undoes the steps before
  // it and fails); a reclaim step runs after the grace period. A step takes the Build
  // (control/build.h: the next generation, the diff, the intent, the committer), so that a new
  // kind declares nothing here: a feature's state kept between transactions is a struct of its
  // folder (l2::Kept, ip::Kept, ipsec::Kept, nat::Kept), held here and handed out by the
  // Build, as are the tables features share (the interfaces' and tunnels' slots and names,
  // the neighbour table).
  struct Build;
  using BuildStep = std::optional<Error> (*)(Build& b);
  using ReclaimStep = void (*)(Build& b);
  // A route change of a transaction (Build::ops), applied to the standby FIB copies.
  struct FibOp {
    uint16_t tenant;
    uint32_t address;
    uint8_t length;
    uint16_t before, after;  // next hop ids; 0: no route
  };

  Committer();
  ~Committer();
  std::optional<std::string> init(const Params& params);
  // Applies a diff the intent accepted; on error nothing changed in the dataplane.
  std::optional<Error> commit(const Diff& diff, const Intent& intent, uint64_t version);
  // A neighbour a worker learned from ARP (control side, under the controller's lock).
  void learn(const LearnedNeighbour& learned);
  // Ends every session the tenant takes part in: its translation epoch changes, and workers
  // end such sessions on their next packet or sweep. False if there is no such tenant.
  bool clear_sessions(const std::string& tenant);
  // Stops every port (at exit).
  void stop_ports();

  const Tables* current() const { return current_.load(std::memory_order_acquire); }
  const Params& params() const { return params_; }
  // Where the last commit's time went: building the next generation, waiting for every
  // worker to let go of the old one (the grace period), reclaiming it.
  struct Timing {
    uint64_t build_ns = 0, grace_ns = 0, reclaim_ns = 0;
  };
  const Timing& last_timing() const { return last_timing_; }
  const std::atomic<const Tables*>& published() const { return current_; }
  // Counters as they were when the slot was given to its present object.
  const Counters& bases() const { return *bases_; }
  // The FIBs as the control side knows them (under the controller's lock), for the API
  // (ip/commit.cpp).
  std::optional<uint16_t> tenant_slot(const std::string& name) const;
  bool dir24_8(uint16_t tenant) const;
  // Every prefix of the tenant's FIB and its next hop id, by (address, length).
  const std::map<std::pair<uint32_t, uint8_t>, uint16_t>& fib_entries(uint16_t tenant) const;
  // The interface whose address makes a connected prefix (a local one: UINT16_MAX), and
  // whether it is local.
  std::optional<std::pair<uint16_t, bool>> address_route(uint16_t tenant, uint32_t address, uint8_t length) const;
  const Nexthop& nexthop(uint16_t id) const;
  // What the workers' tables find for `address` in a tenant now: a next hop id (0: none).
  uint16_t fib_lookup(uint16_t tenant, uint32_t address) const;
  struct FibCost {
    uint64_t entries = 0, compact_plies = 0, compact_bytes = 0, dir24_8_bytes = 0;
  };
  // One tenant's FIB, or every tenant's.
  FibCost fib_cost(std::optional<uint16_t> tenant) const;
  uint32_t fib_plies_limit() const;

  // Every SA with its key (control side, under the controller's lock).
  void for_each_sa(const std::function<void(const SaKey& key, const SaState& sa)>& f) const;

 private:
  void build_counter_bases(Build& b);

  Params params_;
  std::atomic<const Tables*> current_{nullptr};
  Timing last_timing_;
  uint64_t next_uid_ = 1;     // of tenants, interfaces and tunnels
  uint32_t generations_ = 0;  // Tables::generation of the last one built

  // Interfaces and tunnels share slots and names: name -> slot as of the last commit, and
  // the slots reusable in a later transaction.
  std::map<std::string, uint16_t> interface_slot_;
  std::vector<uint16_t> free_interfaces_;
  NeighbourTable neighbours_;
  Counters* bases_ = nullptr;

  // What each feature's steps keep between transactions (its commit.h): ports; tenants with
  // their FIBs and the next hops; SAs; the core's crossing.
  std::unique_ptr<l2::Kept> l2_;
  std::unique_ptr<ip::Kept> ip_;
  std::unique_ptr<ipsec::Kept> ipsec_;
  std::unique_ptr<nat::Kept> nat_;
};

}  // namespace medix::dp
