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
#include <type_traits>
#include <vector>

#include "control/intent.h"
#include "infra/worker.h"
#include "ipsec/sa.h"
#include "tables/tables.h"

namespace medix::dp {

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
  };

  // A commit's steps, each in its feature's folder and named by its kind's entry in the kinds
  // table (control/kinds.h), which is how commit() finds them. A build step writes the next
  // generation (or undoes the steps before it and fails); a reclaim step runs after the grace
  // period. A step is a free function of its feature's folder taking the Build (control/build.h:
  // the next generation, the diff, the intent, the committer), so that a new kind declares
  // nothing here; the first kinds' steps below are members because the state they keep
  // between transactions (slots, FIBs, SAs, session tables) is the committer's. Public only so
  // that the entries can name them: nothing else calls them.
  struct Build;
  template <typename... Result>
  class Step {
   public:
    using Free = std::conditional_t<sizeof...(Result) == 0, void, std::optional<Error>> (*)(Build& b);
    using Member = std::conditional_t<sizeof...(Result) == 0, void, std::optional<Error>> (Committer::*)(Build& b);
    constexpr Step() = default;
    constexpr Step(std::nullptr_t) {}
    constexpr Step(Free f) : free_(f) {}
    constexpr Step(Member m) : member_(m) {}
    explicit operator bool() const { return free_ || member_; }
    bool operator==(const Step&) const = default;
    auto operator()(Committer& c, Build& b) const { return free_ ? free_(b) : (c.*member_)(b); }

   private:
    Free free_ = nullptr;
    Member member_ = nullptr;
  };
  using BuildStep = Step<std::optional<Error>>;
  using ReclaimStep = Step<>;
  std::optional<Error> build_ports(Build& b);              // l2/commit.cpp
  std::optional<Error> build_tenants(Build& b);            // ip/commit.cpp
  std::optional<Error> build_interfaces(Build& b);         // l2/commit.cpp
  std::optional<Error> build_tunnels(Build& b);            // ipsec/commit.cpp
  std::optional<Error> build_routes(Build& b);             // ip/commit.cpp
  std::optional<Error> build_neighbours(Build& b);         // arp/commit.cpp
  std::optional<Error> build_interface_index(Build& b);    // l2/commit.cpp
  std::optional<Error> build_sas(Build& b);                // ipsec/commit.cpp
  std::optional<Error> build_tunnel_mtus(Build& b);        // ipsec/commit.cpp
  std::optional<Error> build_translations(Build& b);       // nat/commit.cpp
  std::optional<Error> build_static_neighbours(Build& b);  // arp/commit.cpp
  void reclaim_routes(Build& b);
  void reclaim_neighbours(Build& b);
  void reclaim_sas(Build& b);
  void reclaim_tenants(Build& b);
  void reclaim_ports(Build& b);
  void reclaim_interfaces(Build& b);

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
  // The FIBs as the control side knows them (under the controller's lock), for the API.
  std::optional<uint16_t> tenant_slot(const std::string& name) const {
    auto it = tenant_slot_.find(name);
    return it == tenant_slot_.end() ? std::nullopt : std::optional<uint16_t>(it->second);
  }
  bool dir24_8(uint16_t tenant) const { return tenants_[tenant].dir24_8; }
  // Every prefix of the tenant's FIB and its next hop id, by (address, length).
  const std::map<std::pair<uint32_t, uint8_t>, uint16_t>& fib_entries(uint16_t tenant) const {
    return tenants_[tenant].effective;
  }
  // The interface whose address makes a connected prefix (a local one: UINT16_MAX), and
  // whether it is local.
  std::optional<std::pair<uint16_t, bool>> address_route(uint16_t tenant, uint32_t address, uint8_t length) const;
  const Nexthop& nexthop(uint16_t id) const { return nexthops_[id]; }
  // What the workers' tables find for `address` in a tenant now: a next hop id (0: none).
  uint16_t fib_lookup(uint16_t tenant, uint32_t address) const;
  struct FibCost {
    uint64_t entries = 0, compact_plies = 0, compact_bytes = 0, dir24_8_bytes = 0;
  };
  // One tenant's FIB, or every tenant's.
  FibCost fib_cost(std::optional<uint16_t> tenant) const;
  uint32_t fib_plies_limit() const { return lpm_.max_plies(); }

  // Every SA with its key (control side, under the controller's lock).
  template <typename F>
  void for_each_sa(F&& f) const {
    for (const auto& [key, slot] : sa_slot_) f(key, *sas_[slot]);
  }

 private:
  struct PortSlot {
    std::string name;
    uint16_t port_id = 0;
    bool configured = false;
  };
  struct TenantSlot {
    std::string name;
    bool dir24_8 = false;                  // else its FIB is the compact one of lpm_, table = slot
    rte_fib* fib[2] = {nullptr, nullptr};  // DIR24_8: the two copies
    uint64_t dir24_8_bytes = 0;            // ... their tables (tbl24 and tbl8 groups)
    int active = 0;
    std::map<std::pair<uint32_t, uint8_t>, uint16_t> effective;  // what both copies hold, once settled
    // Routes from interface addresses: (prefix) -> next hops, local ones first.
    std::map<std::pair<uint32_t, uint8_t>, std::vector<std::pair<int, uint16_t>>> automatic;
  };
  struct FibOp {
    uint16_t tenant;
    uint32_t address;
    uint8_t length;
    uint16_t before, after;  // next hop ids; 0: no route
  };

  uint16_t intern(const Nexthop& nh);
  void unref(uint16_t id);
  // A change to one copy of a DIR24_8 FIB; nothing for a compact tenant (fib nullptr: its
  // changes are undone by lpm_.abort()).
  bool apply_fib(rte_fib* fib, const FibOp& op, bool forward);
  void free_tenant(TenantSlot& t);
  std::string fibs_full() const;  // why a compact FIB could not grow
  std::optional<std::string> setup_port(uint16_t port_id, const v1::Port& p);
  void build_counter_bases(Build& b);
  // The core tenant, translations, policy rules and session tables of the next generation.
  std::optional<Error> build_crossing(const Diff& diff, const Intent& intent, Tables& next,
                                      const std::function<uint16_t(const std::string&)>& tenant_of,
                                      const std::vector<uint16_t>& new_tenant_slots,
                                      std::vector<uint16_t>& new_rule_slots);

  Params params_;
  std::atomic<const Tables*> current_{nullptr};
  Timing last_timing_;
  uint64_t next_uid_ = 1;
  uint32_t fib_serial_ = 0;
  uint32_t index_serial_ = 0;

  std::vector<PortSlot> ports_;
  std::vector<TenantSlot> tenants_;
  std::map<std::string, uint16_t> port_slot_, tenant_slot_, interface_slot_;
  std::vector<uint16_t> free_ports_, free_tenants_, free_interfaces_;  // reusable in a later transaction

  Lpm lpm_;                      // every compact tenant's FIB (table id = tenant slot)
  Nexthop* nexthops_ = nullptr;  // shared by all generations
  std::map<std::tuple<int, uint16_t, uint16_t, uint32_t>, uint16_t> nexthop_ids_;
  std::vector<uint32_t> nexthop_refs_;
  std::vector<uint16_t> free_nexthops_;
  NeighbourTable neighbours_;
  Counters* bases_ = nullptr;

  // IPsec: SA states by slot (shared with workers), inbound SPI -> slot, the newest outbound
  // SA of each tunnel last.
  IMB_MGR* mgr_ = nullptr;
  std::vector<SaState*> sas_;
  std::vector<uint16_t> free_sas_;
  rte_hash* sa_index_ = nullptr;
  std::map<SaKey, uint16_t> sa_slot_;
  std::map<std::string, std::vector<uint16_t>> outbound_;

  // Crossing the core: per-worker session tables (made when a core first appears, kept),
  // counter slots of policy rules, and the serial translation epochs are drawn from.
  std::vector<NatWorker*> nat_;
  std::map<std::string, uint16_t> rule_slot_;
  std::vector<uint16_t> free_rules_;
  uint32_t epochs_ = 0;
  uint32_t policy_epoch_ = 0;
};

}  // namespace medix::dp
