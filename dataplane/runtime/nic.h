#pragma once
// What a port's NIC (its ethdev) says: link, rte_eth_stats and extended stats. Read on the
// control side (API, telemetry, metrics), never by workers.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace medix::dp {

struct NicStats {
  bool link_up = false, full_duplex = false, autoneg = false;
  uint32_t speed_mbps = 0;  // 0: unknown
  uint64_t rx_packets = 0, tx_packets = 0, rx_bytes = 0, tx_bytes = 0;
  uint64_t rx_missed = 0, rx_errors = 0, tx_errors = 0, rx_nombuf = 0;
  std::vector<std::pair<std::string, uint64_t>> xstats;
};

// The NIC's own drops, as reasons of their own beside the drop table's (`medixctl drops`).
struct NicDrop {
  const char* name;
  const char* description;
  uint64_t NicStats::*field;
};
inline constexpr NicDrop nic_drops[] = {
    {"nic_rx_missed", "the NIC had no free rx descriptor: the worker fell behind (imissed)", &NicStats::rx_missed},
    {"nic_rx_errors", "the NIC received an erroneous frame (ierrors)", &NicStats::rx_errors},
    {"nic_rx_nombuf", "no packet buffer was free for a received frame (rx_nombuf)", &NicStats::rx_nombuf},
    {"nic_tx_errors", "the NIC failed to send a frame (oerrors)", &NicStats::tx_errors},
};

NicStats read_nic(uint16_t port_id);

// The port's link: rte_eth_link's status, and for a PMD over a kernel netdev (its ethdev has an
// if_index: af_packet) the netdev's carrier too: DPDK 22.11's af_packet says "up" from its start
// whatever the cable does, and a backbone cut must be seen (docs/areas.md).
bool read_link_up(uint16_t port_id);

// `now` minus what was read at the last clear (`base`); a counter below its base started
// again (the device was probed anew), so it counts from zero. Link state is not a counter.
NicStats nic_since(const NicStats& now, const NicStats& base);

}  // namespace medix::dp
