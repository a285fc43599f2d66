#pragma once
// QoS's part of a generation (Tables::qos, tables/tables.h): what workers read to police the
// classes of ingress traffic and to shape what leaves shaped interfaces. Ground floor like tables/: no protobuf, no
// feature. Built by qos/commit.cpp.
#include <rte_common.h>
#include <rte_mbuf.h>
#include <rte_meter.h>
#include <rte_red.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace medix::dp::qos {

// As rte_meter gives them (RTE_COLOR_GREEN, _YELLOW, _RED).
enum Colour : uint8_t { green, yellow, red, colours };
enum class Action : uint8_t { transmit, drop, remark };
enum class Meter : uint8_t { srtcm, trtcm, rfc4115 };  // RFC 2697, 2698, 4115

// A colour-aware policer's input colour, by the packet's DSCP: the drop precedence of the
// assured forwarding classes (RFC 2597: AFx1 green, AFx2 yellow, AFx3 red); any other green.
constexpr Colour colour_of_dscp(unsigned dscp) {
  unsigned af = dscp >> 3, precedence = (dscp >> 1) & 3;
  if (af < 1 || af > 4 || (dscp & 1) || precedence == 0) return green;
  return Colour(precedence - 1);
}

inline constexpr uint16_t any_interface = UINT16_MAX;
inline constexpr int16_t any_dscp = -1;

// One worker's share of a policer: its buckets and its counters, on cache lines of its own
// (only that worker writes them; readers load them relaxed).
struct alignas(RTE_CACHE_LINE_SIZE) Share {
  rte_meter_srtcm srtcm;
  rte_meter_trtcm trtcm;
  rte_meter_trtcm_rfc4115 rfc4115;
  uint64_t packets[colours], bytes[colours];
  uint64_t dropped;
};

struct Policer {
  std::string name;
  Meter meter = Meter::srtcm;
  bool colour_aware = false;  // the DSCP's colour (colour_of_dscp) goes in, else green
  uint16_t tenant = 0;
  uint16_t interface = any_interface;  // slot
  int16_t dscp = any_dscp;
  Action action[colours] = {Action::transmit, Action::transmit, Action::drop};
  uint8_t remark[colours] = {};  // DSCP for Action::remark
  rte_meter_srtcm_profile srtcm{};
  rte_meter_trtcm_profile trtcm{};
  rte_meter_trtcm_rfc4115_profile rfc4115{};
  // One per worker (by queue), made when the policer is created or changed and freed with
  // the last generation that names it, after the grace period.
  std::shared_ptr<Share[]> shares;
  uint16_t workers = 1;  // how many shares
};

// Colours a packet of `len` bytes that comes in `in` (green: colour-blind, as the colour-aware
// checks with green are the colour-blind ones) with worker share `s` of policer `p`.
inline Colour meter(const Policer& p, Share& s, uint64_t now, uint32_t len, Colour in) {
  auto c = rte_color(in);
  // rte_meter takes the profiles by non-const pointer but only reads them.
  switch (p.meter) {
    case Meter::trtcm:
      return Colour(
          rte_meter_trtcm_color_aware_check(&s.trtcm, const_cast<rte_meter_trtcm_profile*>(&p.trtcm), now, len, c));
    case Meter::rfc4115:
      return Colour(rte_meter_trtcm_rfc4115_color_aware_check(
          &s.rfc4115, const_cast<rte_meter_trtcm_rfc4115_profile*>(&p.rfc4115), now, len, c));
    case Meter::srtcm: break;
  }
  return Colour(
      rte_meter_srtcm_color_aware_check(&s.srtcm, const_cast<rte_meter_srtcm_profile*>(&p.srtcm), now, len, c));
}

// Colours a packet of `len` bytes (IPv4 header and payload; `tos` its TOS byte, -1 if it has
// none) with worker share `s` of policer `p`, counts it, and says what its colour's action is
// (a drop counted as the policer's); `colour` is set.
inline Action police_one(const Policer& p, Share& s, uint64_t now, uint32_t len, int tos, Colour& colour) {
  colour = meter(p, s, now, len, p.colour_aware && tos >= 0 ? colour_of_dscp(unsigned(tos) >> 2) : green);
  // Only this worker writes its share; readers load relaxed (as bump() in infra/ does).
  __atomic_store_n(&s.packets[colour], s.packets[colour] + 1, __ATOMIC_RELAXED);
  __atomic_store_n(&s.bytes[colour], s.bytes[colour] + len, __ATOMIC_RELAXED);
  Action a = p.action[colour];
  if (a == Action::drop) __atomic_store_n(&s.dropped, s.dropped + 1, __ATOMIC_RELAXED);
  return a;
}

inline constexpr uint16_t no_policer = UINT16_MAX;

inline constexpr uint16_t no_shaper = UINT16_MAX;
inline constexpr uint32_t default_queue_limit = 256;  // packets, a class on a worker
inline constexpr uint16_t any_tenant = UINT16_MAX;
inline constexpr uint16_t no_class = UINT16_MAX;

// A shaper class as workers read it. Rates are this worker's share, in bytes per TSC cycle.
struct ShaperClass {
  std::string name;
  bool priority = false;
  double rate = 0;  // guaranteed (priority: the cap); 0: none
  double burst = 0;
  uint32_t weight = 0;
  uint16_t tenant = any_tenant;           // slot
  uint16_t in_interface = any_interface;  // slot
  uint64_t dscps = 0;                     // bit d: DSCP d matches; 0: any
  int16_t mark = any_dscp;                // DSCP set on the way out
  // WRED (docs/qos.md "WRED"): a profile per colour of the packet's DSCP (colour_of_dscp), one
  // average queue per worker (ClassQueue::red).
  bool wred = false;
  bool ecn = false;  // ECT packets that RED would drop below max_th are marked CE instead
  rte_red_config red[colours] = {};
};

// rte_red decays the average of an idle queue by the packets that could have arrived meanwhile,
// time / RTE_RED_S: a packet is a full frame (1514 bytes) at the worker's share of the contract.
inline constexpr double wred_frame = 1514;
inline constexpr uint16_t default_wred_weight_log2 = 9;  // rte_sched's
inline constexpr uint16_t default_wred_maxp_inv = 10;

// One class's queue on one worker: a ring of packets, its guarantee's bucket, its DRR deficit
// and its counters (read by others relaxed).
struct ClassQueue {
  std::unique_ptr<rte_mbuf*[]> ring;
  uint32_t mask = 0, limit = 0, head = 0, tail = 0;  // head: next out; tail: next in
  double tokens = 0;
  int64_t deficit = 0;
  uint64_t queued_packets = 0, queued_bytes = 0, sent_packets = 0, sent_bytes = 0, dropped = 0;
  rte_red red{};            // the WRED average (ShaperClass::wred)
  uint64_t idle_since = 0;  // TSC the queue last went empty
  uint64_t wred_dropped = 0, ecn_marked = 0;
  uint32_t depth() const { return tail - head; }
};

// One worker's share of a shaper: the contract's bucket and the classes' queues. Only that
// worker touches it; what it still holds when it is freed (after the grace period of the
// generation that last named it) is freed with it.
struct alignas(RTE_CACHE_LINE_SIZE) ShaperShare {
  double tokens = 0;
  uint64_t at = 0;        // TSC of the last refill; 0: not yet
  uint16_t next_rr = 0;   // the guaranteed round's next class
  uint16_t next_drr = 0;  // the excess round's class
  bool topped = false;    // next_drr got its quantum this visit
  std::vector<ClassQueue> classes;
  ShaperShare() = default;
  ShaperShare(const ShaperShare&) = delete;
  ShaperShare& operator=(const ShaperShare&) = delete;
  ~ShaperShare() {
    for (ClassQueue& q : classes)
      for (; q.head != q.tail; q.head++) rte_pktmbuf_free(q.ring[q.head & q.mask]);
  }
};

struct Shaper {
  std::string name;
  uint16_t interface = 0;  // slot (of an interface or a tunnel)
  // A tunnel's shaper queues inner packets without L2, before ESP: what it sends goes to
  // esp_output (the pipeline's process_shaped), so sequence numbers follow the order it sends in.
  bool tunnel = false;
  uint16_t port = 0;            // the interface's port (slot); none for a tunnel
  uint8_t l2_len = 0;           // the interface's Ethernet header and tags, as it sends them; 0 for a tunnel
  double rate = 0, burst = 0;   // this worker's share of the contract, bytes per TSC cycle; bytes
  double frames_per_cycle = 0;  // rate / wred_frame: an idle WRED queue's decay
  std::vector<ShaperClass> classes;
  // By policy rule slot: the class the rule's flows are queued in (the rule names it), or
  // no_class (slots past the end: none; the matches decide).
  std::vector<uint16_t> class_of_rule;
  std::shared_ptr<ShaperShare[]> shares;  // one per worker (by queue)
  uint16_t workers = 1;
};

struct Tables {
  // In the order they are tried: the first of a packet's tenant that matches it applies
  // (the most specific first: interface and DSCP, interface, DSCP, the tenant).
  std::vector<Policer> policers;
  // Policers of rules' classes (no tenant of their own): what crossing meters a session's
  // packets with, by the slot of the rule that permitted it (policer_of_rule: an index in
  // rule_policers or no_policer; slots past the end have none).
  std::vector<Policer> rule_policers;
  std::vector<uint16_t> policer_of_rule;
  std::vector<Shaper> shapers;
  // By interface (or tunnel) slot: its shaper's index in `shapers`, or no_shaper (slots past the
  // end have none).
  std::vector<uint16_t> shaper_of;
  // The indexes in `shapers` of tunnels' shapers (Shaper::tunnel), in order; empty when none.
  std::vector<uint16_t> tunnel_shapers;
  // By policy rule slot: 1 if the rule names a shaper class (some shaper has it), so crossing
  // marks its packets (meta_classed); empty when no rule does (slots past the end: 0).
  std::vector<uint8_t> classed_rules;
};

// The policer of the class of rule `rule_slot`'s flows, if it has one.
inline const Policer* rule_policer(const Tables& t, uint16_t rule_slot) {
  if (rule_slot >= t.policer_of_rule.size() || t.policer_of_rule[rule_slot] == no_policer) return nullptr;
  return &t.rule_policers[t.policer_of_rule[rule_slot]];
}

}  // namespace medix::dp::qos
