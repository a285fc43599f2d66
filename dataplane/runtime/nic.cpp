#include "runtime/nic.h"

#include <net/if.h>
#include <rte_ethdev.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <map>

namespace medix::dp {

namespace {

// The kernel netdev under the port, if any: its IFF_RUNNING (carrier); true if there is none or
// it cannot be read (the PMD's word stands).
bool netdev_running(uint16_t port_id) {
  rte_eth_dev_info info{};
  char name[IF_NAMESIZE] = {};
  if (rte_eth_dev_info_get(port_id, &info) != 0 || info.if_index == 0 || !if_indextoname(info.if_index, name))
    return true;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return true;
  ifreq ifr{};
  static_assert(sizeof ifr.ifr_name == sizeof name);
  std::memcpy(ifr.ifr_name, name, sizeof name);
  bool running = ioctl(fd, SIOCGIFFLAGS, &ifr) != 0 || (ifr.ifr_flags & IFF_RUNNING);
  close(fd);
  return running;
}

}  // namespace

bool read_link_up(uint16_t port_id) {
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port_id, &link) != 0) return true;  // a PMD that cannot say
  return link.link_status == RTE_ETH_LINK_UP && netdev_running(port_id);
}

NicStats read_nic(uint16_t port_id) {
  NicStats n;
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(port_id, &link) == 0) {
    n.link_up = link.link_status == RTE_ETH_LINK_UP && netdev_running(port_id);
    n.speed_mbps = link.link_speed == RTE_ETH_SPEED_NUM_UNKNOWN ? 0 : link.link_speed;
    n.full_duplex = link.link_duplex == RTE_ETH_LINK_FULL_DUPLEX;
    n.autoneg = link.link_autoneg == RTE_ETH_LINK_AUTONEG;
  }
  rte_eth_stats st{};
  if (rte_eth_stats_get(port_id, &st) == 0) {
    n.rx_packets = st.ipackets;
    n.tx_packets = st.opackets;
    n.rx_bytes = st.ibytes;
    n.tx_bytes = st.obytes;
    n.rx_missed = st.imissed;
    n.rx_errors = st.ierrors;
    n.tx_errors = st.oerrors;
    n.rx_nombuf = st.rx_nombuf;
  }
  int count = rte_eth_xstats_get_names(port_id, nullptr, 0);
  if (count > 0) {
    std::vector<rte_eth_xstat_name> names(static_cast<size_t>(count));
    std::vector<rte_eth_xstat> values(static_cast<size_t>(count));
    int got_names = rte_eth_xstats_get_names(port_id, names.data(), unsigned(count));
    int got = rte_eth_xstats_get(port_id, values.data(), unsigned(count));
    if (got_names == count && got == count)
      for (const auto& v : values)
        if (v.id < names.size()) n.xstats.emplace_back(names[v.id].name, v.value);
  }
  return n;
}

NicStats nic_since(const NicStats& now, const NicStats& base) {
  auto since = [](uint64_t a, uint64_t b) { return a >= b ? a - b : a; };
  NicStats n = now;
  for (auto f : {&NicStats::rx_packets, &NicStats::tx_packets, &NicStats::rx_bytes, &NicStats::tx_bytes,
                 &NicStats::rx_missed, &NicStats::rx_errors, &NicStats::tx_errors, &NicStats::rx_nombuf})
    n.*f = since(now.*f, base.*f);
  std::map<std::string, uint64_t> before(base.xstats.begin(), base.xstats.end());
  for (auto& [name, value] : n.xstats)
    if (auto it = before.find(name); it != before.end()) value = since(value, it->second);
  return n;
}

}  // namespace medix::dp
