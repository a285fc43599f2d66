#pragma once
// VRRP's part of a generation (Tables::vrrp, tables/tables.h): the instances and, shared by
// the generations that name an instance, whether it is master now. The main lcore's state
// machine (vrrp/runner.h) writes that flag; workers read it on the paths that are not the
// fast one (a frame not to the interface's MAC, an ARP request not for its addresses). Ground
// floor: no protobuf, no feature. Built by vrrp/commit.cpp.
#include <rte_ether.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace medix::dp::vrrp {

inline constexpr unsigned max_addresses = 16;
inline constexpr unsigned max_tracks = 8;
inline constexpr uint32_t group_address = 0xe0000012;  // 224.0.0.18
inline constexpr uint8_t protocol = 112;

// Written by the main lcore only; read by workers (relaxed: a frame seen a moment late is one
// a switch would have sent to the old master too).
struct Live {
  std::atomic<bool> master{false};
  // Yielded to a better master, still taking frames to the virtual MAC (docs/ha.md, drain);
  // ARP is the master's alone.
  std::atomic<bool> draining{false};
};

struct Track {
  uint16_t interface = 0;  // slot
  uint8_t weight = 0;      // 0: down forces backup
};

struct Instance {
  std::string name;
  uint16_t interface = 0;  // slot
  uint32_t interface_uid = 0;
  uint16_t tenant = 0;
  uint8_t vrid = 0;
  uint8_t priority = 100;
  uint16_t interval_cs = 100;
  bool preempt = false;
  std::string group;
  uint8_t n_addresses = 0;
  std::array<uint32_t, max_addresses> addresses{};  // host order
  uint8_t n_tracks = 0;
  std::array<Track, max_tracks> tracks{};
  // Kept while the instance keeps its interface and VRID (an UPDATE of its priority or
  // addresses does not restart its state machine).
  std::shared_ptr<Live> live;

  bool master() const { return live->master.load(std::memory_order_relaxed); }
  bool takes_frames() const { return master() || live->draining.load(std::memory_order_relaxed); }
  bool has(uint32_t address) const {
    for (unsigned i = 0; i < n_addresses; i++)
      if (addresses[i] == address) return true;
    return false;
  }
};

inline rte_ether_addr virtual_mac(uint8_t vrid) { return {{0x00, 0x00, 0x5e, 0x00, 0x01, vrid}}; }
inline rte_ether_addr group_mac() { return {{0x01, 0x00, 0x5e, 0x00, 0x00, 0x12}}; }

enum class Claim : uint8_t { none, advert, virtual_mac };

struct Tables {
  std::vector<Instance> instances;

  // A frame not to the interface's own MAC: an advert to VRRP's group, a frame to the virtual
  // MAC of an instance that is master (or draining) on the interface, or neither.
  Claim claim(uint16_t interface, const rte_ether_addr& dst) const {
    const uint8_t* d = dst.addr_bytes;
    if (d[0] == 0x01 && d[1] == 0x00 && d[2] == 0x5e && d[3] == 0x00 && d[4] == 0x00 && d[5] == 0x12)
      return Claim::advert;
    if (d[0] != 0x00 || d[1] != 0x00 || d[2] != 0x5e || d[3] != 0x00 || d[4] != 0x01) return Claim::none;
    for (const auto& i : instances)
      if (i.interface == interface && i.vrid == d[5] && i.takes_frames()) return Claim::virtual_mac;
    return Claim::none;
  }
  // The instance that is master on `interface` for a virtual `address`, else nullptr.
  const Instance* master_for(uint16_t interface, uint32_t address) const {
    for (const auto& i : instances)
      if (i.interface == interface && i.master() && i.has(address)) return &i;
    return nullptr;
  }
};

}  // namespace medix::dp::vrrp
