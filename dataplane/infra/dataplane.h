#pragma once
// The running dataplane: ports, pools, workers and the tables they read. The main lcore owns
// it; workers see only their Worker and the published tables.
#include <rte_rcu_qsbr.h>

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "infra/worker.h"

struct Dataplane {
  std::unique_ptr<Tables> tables;  // published to workers through `current`
  std::atomic<const Tables*> current{nullptr};
  std::atomic<bool> stopping{false};
  Settings settings;
  rte_mempool* pool = nullptr;
  rte_mempool* indirect_pool = nullptr;
  rte_ring* learned = nullptr;
  rte_rcu_qsbr* rcu = nullptr;
  std::vector<Worker*> workers;
  uint64_t tsc_hz = 0;

  // Sets up pools, workers and ports for `tables`; an error names the port and reason.
  std::optional<std::string> start(std::unique_ptr<Tables> tables, const Settings& settings,
                                   const std::vector<unsigned>& worker_lcores);
  // Main lcore: applies what workers learned. Returns how many neighbours were learned.
  unsigned run_control();
  void stop();  // workers finish their burst and return; ports are stopped and closed

  // Sums of every worker's counters.
  Counters totals() const;
};

// Telemetry commands (/medix/...) and the human report printed at exit.
void register_telemetry(Dataplane& dp);
void print_counters(const Dataplane& dp, FILE* out);
