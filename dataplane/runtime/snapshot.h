#pragma once
// A consistent, named copy of the counters: what telemetry, the API and the exit report show.
#include <string>
#include <string_view>
#include <vector>

#include "control/kinds.h"
#include "runtime/dataplane.h"

namespace medix::dp {

struct CounterSnapshot {
  uint64_t version = 0;
  uint64_t since_ns = 0;  // the last ClearCounters (or the start)
  // Each live port's NIC (its ethdev's counters and link, read on the control side), in the
  // order of the ports' rows.
  struct Nic {
    std::string port;
    NicStats stats;
  };
  std::vector<Nic> nics;
  Counters totals{};               // drops, events and stages summed over workers
  std::vector<LcoreStats> lcores;  // each worker's, read with the totals
  struct Neighbour {
    std::string interface, address, mac;
    bool is_static;
  };
  std::vector<Neighbour> neighbours;  // filled only when asked
  // Every kind's counters (Kind::counters: ports, tenants, SAs, policers, ...), in the table's
  // order, since the clear or the object's start.
  struct KindRows {
    const Kind* kind;
    std::vector<CounterRow> rows;
  };
  std::vector<KindRows> kinds;
  // A kind's rows by its list in v1::CountersSnapshot ("tenants"); null: none.
  const KindRows* of(std::string_view list) const;
};

// Live objects only; each counter minus its base (its slot's, or the last clear's, whichever
// is later), so a reused slot starts at zero, and so does everything after ClearCounters.
CounterSnapshot take_snapshot(Dataplane& dp, bool with_neighbours = false);
// The same for the ports only (the port kind's rows, `nics`, the versions): the workers' port
// counters summed, not the whole of their Counters.
CounterSnapshot take_port_snapshot(Dataplane& dp);

}  // namespace medix::dp
