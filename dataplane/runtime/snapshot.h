#pragma once
// A consistent, named copy of the counters: what telemetry, the API and the exit report show.
#include <string>
#include <vector>

#include "control/kinds.h"
#include "ipsec/sa.h"
#include "runtime/dataplane.h"

namespace medix::dp {

struct CounterSnapshot {
  uint64_t version = 0;
  uint64_t since_ns = 0;  // the last ClearCounters (or the start)
  std::vector<std::pair<std::string, Counters::Port>> ports;
  std::vector<NicStats> nics;  // by port, in the order of `ports`
  std::vector<std::pair<std::string, Counters::Interface>> interfaces;
  std::vector<std::string> interface_tenants;  // each interface's tenant, in the same order
  std::vector<std::pair<std::string, Counters::Tenant>> tenants;
  Counters totals{};               // drops, events and stages summed over workers
  std::vector<LcoreStats> lcores;  // each worker's, read with the totals
  struct Neighbour {
    std::string interface, address, mac;
    bool is_static;
  };
  std::vector<Neighbour> neighbours;  // filled only when asked
  struct Tunnel {
    std::string name;
    Counters::Interface counters;
  };
  std::vector<Tunnel> tunnels;
  struct Sa {
    uint32_t spi;
    std::string tunnel;
    bool inbound;
    uint8_t life;
    uint64_t packets, bytes, last_used_ns, sequence;
    uint64_t drops[sa_drop_count];  // by reason - first_sa_drop
  };
  std::vector<Sa> sas;
  // Crossing the core (when a core tenant exists): by origin tenant, and by rule. Counters
  // count since the clear; sessions and mappings are how many exist now.
  struct Nat {
    std::string tenant;
    Counters::Nat counters;
    uint64_t sessions, mappings;
  };
  std::vector<Nat> nat;
  struct Rule {
    std::string name;
    uint64_t matched;
    bool permit;
  };
  std::vector<Rule> rules;
  // The kinds that declare counters (Kind::counters: the policer's), in the table's order.
  struct KindRows {
    const Kind* kind;
    std::vector<CounterRow> rows;
  };
  std::vector<KindRows> kinds;
};

// Live objects only; each counter minus its base (its slot's, or the last clear's, whichever
// is later), so a reused slot starts at zero, and so does everything after ClearCounters.
CounterSnapshot take_snapshot(Dataplane& dp, bool with_neighbours = false);
// The same for the ports only (`ports`, `nics`, the versions): the workers' port counters
// summed, not the whole of their Counters.
CounterSnapshot take_port_snapshot(Dataplane& dp);

}  // namespace medix::dp
