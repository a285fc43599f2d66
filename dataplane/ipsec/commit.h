#pragma once
// What the committer builds from IPsec's kinds (ipsec/kinds.cpp): tunnels, which share the
// interfaces' slots and names, their MTUs, and the SAs. Free functions of this folder; what
// they keep between transactions (Kept) is held by the committer, and the steps reach it
// through the Build.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control/commit.h"

namespace medix::dp::ipsec {

// SA states by slot (shared with workers: Tables::sas) and the free slots, the inbound SPI
// index (Tables::sa_index), each SA's slot by key, and each tunnel's outbound SAs, the newest
// last. The committer makes them (Committer::init) and frees them.
struct Kept {
  IMB_MGR* mgr = nullptr;
  std::vector<SaState*> sas;
  std::vector<uint16_t> free_sas;
  rte_hash* sa_index = nullptr;
  std::map<SaKey, uint16_t> sa_slot;
  std::map<std::string, std::vector<uint16_t>> outbound;
};

// Phase::attachments: tunnels, interfaces without a port in the interfaces' slots and names.
std::optional<Error> build_tunnels(Committer::Build& b);
// Phase::security: new SAs complete before anything can find them; the old go after the grace
// period.
std::optional<Error> build_sas(Committer::Build& b);
// Phase::derived: each tunnel's inner MTU from its underlay's interfaces, once they are in.
std::optional<Error> build_tunnel_mtus(Committer::Build& b);
// After the grace period: the dead SAs' slots and index positions are free again.
void reclaim_sas(Committer::Build& b);

}  // namespace medix::dp::ipsec
