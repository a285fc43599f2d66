#pragma once
// QoS's part of a generation (Tables::qos, tables/tables.h): what workers read to police the
// classes of ingress traffic. Ground floor like tables/: no protobuf, no feature. Built by
// qos/commit.cpp.
#include <rte_common.h>
#include <rte_meter.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace medix::dp::qos {

// As rte_meter gives them (RTE_COLOR_GREEN, _YELLOW, _RED).
enum Colour : uint8_t { green, yellow, red, colours };
enum class Action : uint8_t { transmit, drop, remark };

inline constexpr uint16_t any_interface = UINT16_MAX;
inline constexpr int16_t any_dscp = -1;

// One worker's share of a policer: its buckets and its counters, on cache lines of its own
// (only that worker writes them; readers load them relaxed).
struct alignas(RTE_CACHE_LINE_SIZE) Share {
  rte_meter_srtcm srtcm;
  rte_meter_trtcm trtcm;
  uint64_t packets[colours], bytes[colours];
  uint64_t dropped;
};

struct Policer {
  std::string name;
  bool two_rate = false;  // trTCM, else srTCM
  uint16_t tenant = 0;
  uint16_t interface = any_interface;  // slot
  int16_t dscp = any_dscp;
  Action action[colours] = {Action::transmit, Action::transmit, Action::drop};
  uint8_t remark[colours] = {};  // DSCP for Action::remark
  rte_meter_srtcm_profile srtcm{};
  rte_meter_trtcm_profile trtcm{};
  // One per worker (by queue), made when the policer is created or changed and freed with
  // the last generation that names it, after the grace period.
  std::shared_ptr<Share[]> shares;
  uint16_t workers = 1;  // how many shares
};

struct Tables {
  // In the order they are tried: the first of a packet's tenant that matches it applies
  // (the most specific first: interface and DSCP, interface, DSCP, the tenant).
  std::vector<Policer> policers;
};

}  // namespace medix::dp::qos
