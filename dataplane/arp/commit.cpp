#include "arp/commit.h"

#include "control/build.h"

namespace medix::dp::arp {

// Neighbours: what goes away goes before the grace period.
std::optional<Error> build_neighbours(Committer::Build& b) {
  std::set<uint16_t> dead_set(b.dead_interfaces.begin(), b.dead_interfaces.end());
  if (!dead_set.empty()) {
    std::vector<std::pair<uint16_t, uint32_t>> purge;
    b.neighbours().for_each([&](const NeighbourSlotKey& k, const rte_ether_addr&, bool) {
      if (dead_set.count(k.interface)) purge.push_back({k.interface, k.address});
    });
    for (auto [i, a] : purge) b.neighbours().remove(i, a, b.release);
  }
  auto interface_dies = [&](const std::string& name) {
    const auto& interfaces = b.diff.of(v1::Object::kInterface);
    auto it = interfaces.find({.kind = v1::Object::kInterface, .name = name});
    return it != interfaces.end() && !it->second.after;
  };
  for (const auto& [key, change] : b.diff.of(v1::Object::kNeighbour))
    if (!change.after && !interface_dies(key.neighbour.interface))
      b.neighbours().remove(b.interface_slot_of(key.neighbour.interface), key.neighbour.address, b.release);
  return std::nullopt;
}

// Static neighbours are in place before the interfaces that use them appear: a new entry
// (or a new MAC in an entry) is one atomic word, safe under readers.
std::optional<Error> build_static_neighbours(Committer::Build& b) {
  for (const auto& [key, change] : b.diff.of(v1::Object::kNeighbour)) {
    if (!change.after) continue;
    const v1::Neighbour& n = change.after->neighbour();
    b.neighbours().set(b.interface_slot_of(n.interface()), key.neighbour.address, mac_from(*parse_mac(n.mac())), true);
  }
  return std::nullopt;
}

void reclaim_neighbours(Committer::Build& b) { b.neighbours().release(b.release); }

}  // namespace medix::dp::arp
