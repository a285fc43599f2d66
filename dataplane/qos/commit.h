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

}  // namespace medix::dp::qos
