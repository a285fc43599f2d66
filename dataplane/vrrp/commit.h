#pragma once
// What the committer builds from VRRP instances: their virtual addresses as local routes, and
// the generation's instances. Free functions of this folder: VRRP keeps its part in the
// generation and its running state in vrrp/runner.h.
#include <optional>

#include "control/commit.h"

namespace medix::dp::vrrp {

// Phase::attachments: each changed instance's virtual addresses become (or stop being) local
// routes of its tenant, recomputed by the routes phase like an interface's own addresses.
std::optional<Error> build_addresses(Committer::Build& b);
// Phase::last: the next generation's instances, rebuilt whole when one changes; an instance
// that keeps its interface and VRID keeps its state (vrrp::Live).
std::optional<Error> build_instances(Committer::Build& b);

}  // namespace medix::dp::vrrp
