#pragma once
// What the committer builds from l2's kinds (l2/kinds.cpp): ports, set up and started before
// anything uses them, and interfaces with their index. Free functions of this folder; what
// they keep between transactions (Kept) is held by the committer, and the steps reach it
// through the Build. Interfaces share their slots and names with tunnels (ipsec/commit.h):
// those are the committer's, and the Build hands them out.
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control/commit.h"

namespace medix::dp::l2 {

// A port slot's DPDK port, and whether medix-dp configured it (Committer::stop_ports stops it).
struct PortSlot {
  std::string name;
  uint16_t port_id = 0;
  bool configured = false;
};
// Port slots and their names, the slots free for a later transaction, and the serial the
// interface index's EAL names are drawn from.
struct Kept {
  std::vector<PortSlot> ports;
  std::map<std::string, uint16_t> port_slot;
  std::vector<uint16_t> free_ports;
  uint32_t index_serial = 0;
};

// Phase::slots: new ports set up and started; changed ones' MTU, promiscuity and link.
std::optional<Error> build_ports(Committer::Build& b);
// Phase::attachments: the interfaces' entries in the next generation.
std::optional<Error> build_interfaces(Committer::Build& b);
// Phase::indexes: the interface index, rebuilt when interfaces come, go or move.
std::optional<Error> build_interface_index(Committer::Build& b);
// After the grace period: dead ports stopped and their slots free; the new ones named.
void reclaim_ports(Committer::Build& b);
// After the grace period: interfaces' and tunnels' slots (they share them) by name.
void reclaim_interfaces(Committer::Build& b);

}  // namespace medix::dp::l2
