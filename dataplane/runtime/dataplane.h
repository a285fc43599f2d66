#pragma once
// The running dataplane: pools, workers and the controller whose tables they read. The main
// lcore owns it; workers see only their Worker and the published tables.
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <optional>
#include <string>
#include <vector>

#include "control/controller.h"
#include "infra/worker.h"
#include "punt/exception.h"

namespace medix::dp {

struct Dataplane {
  std::atomic<bool> stopping{false};
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

  // Pools, controller and workers, polling an empty set of ports until the first transaction.
  std::optional<std::string> start(const Settings& settings, uint32_t max_mtu,
                                   const std::vector<unsigned>& worker_lcores);
  // Main lcore: hands what workers learned and SA events to the controller. Returns how many.
  unsigned run_control();
  void stop();  // workers finish their burst and return; ports are stopped

  // Sums of every worker's counters (not yet minus the bases of reused slots).
  Counters totals() const;
};

// Telemetry commands (/medix/...) and the human report printed at exit.
void register_telemetry(Dataplane& dp);
void print_counters(Dataplane& dp, FILE* out);

}  // namespace medix::dp
