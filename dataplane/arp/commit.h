#pragma once
// What the committer builds from neighbours (arp/kinds.cpp): the entries of the neighbour
// table, which every generation shares (Tables::neighbours). Free functions of this folder;
// the table is the committer's, and the steps reach it through the Build.
#include <optional>

#include "control/commit.h"

namespace medix::dp::arp {

// Phase::removals: the neighbours that go (deleted, or on an interface that goes) leave the
// table before the grace period.
std::optional<Error> build_neighbours(Committer::Build& b);
// Phase::last: static neighbours are in place before the interfaces that use them appear.
std::optional<Error> build_static_neighbours(Committer::Build& b);
// After the grace period: the removed entries' slots are free again.
void reclaim_neighbours(Committer::Build& b);

}  // namespace medix::dp::arp
