#pragma once
// The running dataplane: pools, workers and the controller whose tables they read. The main
// lcore owns it; workers see only their Worker and the published tables.
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "control/controller.h"
#include "ha/role.h"
#include "infra/worker.h"
#include "punt/exception.h"
#include "runtime/nic.h"
#include "vrrp/runner.h"

namespace medix::dp {

namespace ha {
class Sync;
class Reserve;
}  // namespace ha

// One worker's own counters: its drops, its stages and its loop (GetRuntime, `drops --lcore`).
struct LcoreStats {
  uint64_t drops[drop_reason_count];
  StageStats stages[unsigned(Stage::count)];
  uint64_t loops, empty_polls, busy_cycles, loop_cycles;
};

// What the last ClearCounters read: reads subtract it, so that neither workers nor NICs ever
// reset anything (the committer's slot bases work the same way; a counter's base is the later
// of the two, which, counters only growing, is the larger).
struct Cleared {
  uint64_t since_ns = 0;                 // CLOCK_REALTIME: the clear, or the start
  std::unique_ptr<Counters> totals;      // all workers' sums (zero until a clear)
  std::vector<LcoreStats> lcores;        // by worker
  std::map<std::string, NicStats> nics;  // by port name
  // The kinds' counters (Kind::counters) by row: its state, name and part (CounterRow).
  std::map<std::tuple<const void*, std::string, std::string>, std::vector<uint64_t>> kinds;
};

struct Dataplane {
  std::atomic<bool> stopping{false};
  // The running capture (api/capture.cpp publishes it; workers read it once a loop).
  std::atomic<CaptureSession*> capture{nullptr};
  // The running trace (api/trace.cpp publishes it; workers read it once a loop).
  std::atomic<TraceSession*> trace{nullptr};
  // HA (docs/ha.md): true while this node is the standby (it crosses nothing, installs what
  // the active syncs); set before start() from --ha-role, then by SetHaRole (VRRP).
  std::atomic<bool> ha_standby{false};
  // Its changes, with time and cause (ha/role.h): every writer of ha_standby goes through it.
  ha::RoleLog ha_roles;
  // The VRRP group whose instances drive ha_standby (--ha-vrrp-group; "": none, docs/ha.md).
  std::string ha_vrrp_group;
  // True while this active node drains (VRRP yielded to a planned switchover, docs/ha.md): the
  // sync thread marks its datagrams so that the new active takes its new sessions.
  std::atomic<bool> ha_draining{false};
  bool ha_sync = false;    // before start(): give workers sync rings (nat/sync.h)
  ha::Sync* ha = nullptr;  // the sync thread, when configured (main.cpp owns it)
  // Outbound sequence numbers reserved on disk (--state-dir, ha/reserve.h); set before start().
  ha::Reserve* sa_reserve = nullptr;
  // Per-stage cycle accounting (telemetry /medix/runtime,on|off; workers read it once a loop).
  std::atomic<bool> stage_timing{true};
  Settings settings;
  rte_mempool* pool = nullptr;
  rte_mempool* indirect_pool = nullptr;
  rte_ring* learned = nullptr;
  rte_rcu_qsbr* rcu = nullptr;
  std::vector<Worker*> workers;
  std::vector<rte_ring*> handoff;  // by worker queue: packets of the SAs it owns
  uint64_t tsc_hz = 0;
  uint32_t max_mtu = 1500;  // the largest MTU the packet buffers hold
  Controller controller;
  ExceptionPort exception;
  // VRRP's state machines (main lcore) and the ring of adverts workers hand them.
  vrrp::Runner vrrp;
  rte_ring* vrrp_rx = nullptr;

  // Pools, controller and workers, polling an empty set of ports until the first transaction.
  std::optional<std::string> start(const Settings& settings, uint32_t max_mtu,
                                   const std::vector<unsigned>& worker_lcores);
  // Main lcore: hands what workers learned and SA events to the controller. Returns how many.
  unsigned run_control();
  // Once a second at most: a log line per worker whose packets waited for ARP in vain since
  // the last (the next hop it last gave up on, and how many packets).
  void report_arp_failures();
  void stop();         // workers finish their burst and return; ports are stopped
  vrrp::Io vrrp_io();  // where VRRP's frames go out

  // Sums of every worker's counters (not yet minus the bases of reused slots).
  Counters totals() const;

  // ClearCounters: records what reads subtract from now on (runtime/snapshot.cpp); returns
  // the new since_ns.
  uint64_t clear_counters();
  // A worker's counters since the last clear.
  LcoreStats lcore_stats(size_t queue) const;
  mutable std::mutex clear_mutex;  // taken before the controller's lock, never after
  Cleared cleared;

 private:
  std::chrono::steady_clock::time_point arp_reported_{};
  std::vector<uint64_t> arp_timeouts_seen_;  // by worker
};

// Telemetry commands (/medix/...) and the human report printed at exit.
void register_telemetry(Dataplane& dp);
void print_counters(Dataplane& dp, FILE* out);

}  // namespace medix::dp
