#pragma once
// What the committer builds from QoS's kinds: its step functions, named by their entries
// (qos/kinds.cpp). Free functions of this folder: QoS keeps its state in the generation.
#include <optional>

#include "control/commit.h"

namespace medix::dp::qos {

// The policers of the next generation, rebuilt whole when one changes.
std::optional<Error> build_policers(Committer::Build& b);
// A policer's worker-read form (its slots filled in by the caller); nullopt if rte_meter
// refuses its parameters. Each of `workers` shares meters rate / workers.
std::optional<std::string> compile(const v1::Policer& p, uint16_t workers, Policer& out);

// The shapers of the next generation: their interfaces' slots and ports again at every commit
// (an interface may have moved), fresh queues only for shapers the transaction changed.
std::optional<Error> build_shapers(Committer::Build& b);
// A shaper's worker-read form but for its slots (filled in by the caller): rates as each of
// `workers` shares them, in bytes per cycle of a `tsc_hz` clock; empty queues, full buckets.
void compile(const v1::Shaper& s, uint16_t workers, uint64_t tsc_hz, Shaper& out);

}  // namespace medix::dp::qos
