#pragma once
// A consistent, named copy of the counters: what telemetry, the API and the exit report show.
#include <string>
#include <vector>

#include "infra/dataplane.h"

struct CounterSnapshot {
  uint64_t version = 0;
  std::vector<std::pair<std::string, Counters::Port>> ports;
  std::vector<std::pair<std::string, Counters::Interface>> interfaces;
  std::vector<std::pair<std::string, Counters::Tenant>> tenants;
  Counters totals{};  // drops, events and stages summed over workers
  struct Neighbour {
    std::string interface, address, mac;
    bool is_static;
  };
  std::vector<Neighbour> neighbours;  // filled only when asked
};

// Live objects only; each counter minus its slot's base, so a reused slot starts at zero.
CounterSnapshot take_snapshot(Dataplane& dp, bool with_neighbours = false);
