#pragma once
// VRRP on the main lcore: every instance's state machine, driven from medix-dp's control
// loop (runtime/dataplane.cpp, about once a millisecond). Workers hand it the adverts they
// receive over a ring; it sends adverts and gratuitous ARP by handing frames it built to
// worker 0 (Handoff::transmit), and flips the flag workers read (vrrp::Live) on a transition.
// Nothing here runs per packet on a worker.
#include <rte_mempool.h>
#include <rte_ring.h>

#include <atomic>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "tables/tables.h"
#include "vrrp/machine.h"

namespace medix::dp::vrrp {

struct Transition {
  uint64_t realtime_ns;
  State from, to;
  Reason reason;
};

struct RxErrors {
  uint64_t ttl = 0, version = 0, type = 0, length = 0, checksum = 0, unknown_vrid = 0, address_list = 0, own = 0;
};

struct Status {
  std::string name, interface, group;
  uint8_t vrid = 0;
  State state = State::initialize;
  bool fault = false;  // backup for a link down (its own, or a tracked one of weight 0): shown as "fault"
  uint8_t priority = 0, effective_priority = 0;
  uint32_t master_address = 0;
  uint8_t master_priority = 0;
  uint16_t master_interval_cs = 0;
  uint64_t adverts_received = 0, adverts_sent = 0, garps_sent = 0, transitions = 0;
  std::vector<Transition> last;
};

// Where the runner's frames go: the pool to build them in, the ring of the worker that sends
// them. Tests give their own.
struct Io {
  rte_mempool* pool = nullptr;
  rte_ring* to_worker = nullptr;
  // A port's link (an instance's own, or a tracked one): up unless the port is deleted, set
  // down, or its link is down.
  bool (*link_up)(const PortEntry& p) = nullptr;
  // The node's HA role (Dataplane::ha_standby) and the group whose instances drive it
  // (--ha-vrrp-group, docs/ha.md): master of it, the node is active; backup, standby.
  // Null or empty: VRRP leaves the role alone.
  std::atomic<bool>* ha_standby = nullptr;
  const std::string* ha_group = nullptr;
  // Set while an instance of that group drains before the node becomes standby. Null: none.
  std::atomic<bool>* ha_draining = nullptr;
  // Sets the role and keeps the change with its reason (the runtime's ha::RoleLog; VRRP does
  // not depend on HA's folder). Null: the runner sets ha_standby alone.
  std::function<void(bool to_standby, const std::string& why)> set_role;
};

class Runner {
 public:
  // Main lcore: adverts from `from_workers`, links (every 100 ms), timers. `now_ns` monotonic.
  void poll(const dp::Tables& t, rte_ring* from_workers, const Io& io, uint64_t now_ns);
  // Any thread.
  std::vector<Status> status() const;
  RxErrors rx_errors() const;
  // Gives every master's adverts of priority 0 (shutdown: the backups take over after their
  // skew, not after the master down interval).
  void resign(const dp::Tables& t, const Io& io);

 private:
  struct Entry {
    Machine m;
    std::shared_ptr<Live> live;
    uint8_t priority = 0;  // configured
    uint64_t rx = 0, tx = 0, garps = 0, transitions = 0;
    std::deque<Transition> last;
    unsigned lowered = 0;   // the weights of the tracked links that are down
    bool fault = false;     // its own link, or a tracked link of weight 0, is down
    bool own_down = false;  // its own link is down
    // A master that yielded to a better one keeps taking frames to the virtual MAC (and, for
    // the HA group, stays active) until then: frames a segment's switch still sends here
    // (it relearns the MAC from the new master's next advert) are crossed, not lost.
    uint64_t drain_until = 0;
  };
  bool group_in_fault(const dp::Tables& t, const Instance& i) const;
  void end_drains(const dp::Tables& t, const Io& io, uint64_t now);
  void sync(const dp::Tables& t, uint64_t now);
  void receive(const dp::Tables& t, rte_ring* from_workers, uint64_t now);
  void track(const dp::Tables& t, const Io& io, uint64_t now);
  void act(const dp::Tables& t, const Io& io, const Instance& i, Entry& e, const Actions& a, uint64_t now);
  static std::string transition(const Actions& a, bool standby);
  static void set_role(const Io& io, bool standby, const Instance& i, const std::string& how);
  void send_advert(const dp::Tables& t, const Io& io, const Instance& i, Entry& e, uint8_t priority);
  void send_garps(const dp::Tables& t, const Io& io, const Instance& i, Entry& e);
  static Params params_of(const dp::Tables& t, const Instance& i, const Entry& e);

  mutable std::mutex mutex_;  // poll (main lcore) against status (API threads)
  std::map<std::string, Entry> entries_;
  RxErrors errors_;
  uint16_t ip_id_ = 0;
  std::vector<std::pair<std::string, Actions>> pending_;  // this poll's, in order
  uint64_t links_at_ = 0;                                 // when the tracked links were last read
};

}  // namespace medix::dp::vrrp
