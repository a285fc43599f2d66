#include "runtime/snapshot.h"

#include <rte_cycles.h>

#include <chrono>

#include <rte_cycles.h>

#include <chrono>

#include "common/address.h"

namespace medix::dp {

using medix::common::format_ipv4;

namespace {
template <typename T>
T minus(const T& a, const T& b) {
  static_assert(sizeof(T) % sizeof(uint64_t) == 0);
  T out;
  auto* o = reinterpret_cast<uint64_t*>(&out);
  auto* x = reinterpret_cast<const uint64_t*>(&a);
  auto* y = reinterpret_cast<const uint64_t*>(&b);
  for (size_t i = 0; i < sizeof(T) / sizeof(uint64_t); i++) o[i] = x[i] - y[i];
  return out;
}
}  // namespace

CounterSnapshot take_snapshot(Dataplane& dp, bool with_neighbours) {
  CounterSnapshot s;
  s.totals = dp.totals();
  dp.controller.read([&](const Intent&, const Committer& committer, uint64_t version) {
    const Tables& t = *committer.current();
    const Counters& base = committer.bases();
    s.version = version;
    for (size_t i = 0; i < t.ports.size(); i++)
      if (t.ports[i].live) s.ports.push_back({t.ports[i].name, minus(s.totals.ports[i], base.ports[i])});
    for (size_t i = 0; i < t.interfaces.size(); i++) {
      if (!t.interfaces[i].uid) continue;
      auto c = minus(s.totals.interfaces[i], base.interfaces[i]);
      if (t.interfaces[i].tunnel)
        s.tunnels.push_back({t.interfaces[i].name, c});
      else
        s.interfaces.push_back({t.interfaces[i].name, c});
    }
    uint64_t now_tsc = rte_rdtsc();
    auto now_ns = uint64_t(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count());
    committer.for_each_sa([&](const SaKey& key, const SaState& sa) {
      CounterSnapshot::Sa x{key.spi,
                            key.tunnel,
                            key.inbound,
                            uint8_t(sa.life),
                            load_counter(sa.packets),
                            load_counter(sa.bytes),
                            0,
                            sa.inbound ? sa.replay.top : sa.seq,
                            {}};
      uint64_t used = sa.last_used_tsc;
      if (used) x.last_used_ns = now_ns - (now_tsc > used ? (now_tsc - used) * 1000000000 / dp.tsc_hz : 0);
      for (unsigned r = 0; r < sa_drop_count; r++) x.drops[r] = load_counter(sa.drops[r]);
      s.sas.push_back(x);
    });
    for (size_t i = 0; i < t.tenants.size(); i++)
      if (t.tenants[i].live) s.tenants.push_back({t.tenants[i].name, minus(s.totals.tenants[i], base.tenants[i])});
    if (t.nat)
      for (size_t i = 0; i < t.tenants.size(); i++)
        if (t.tenants[i].live) s.nat.push_back({t.tenants[i].name, minus(s.totals.nat[i], base.nat[i])});
    for (const auto& r : t.rules)
      s.rules.push_back({r.name, s.totals.rule_matched[r.slot] - base.rule_matched[r.slot], r.permit});
    if (with_neighbours)
      t.neighbours->for_each([&](const NeighbourSlotKey& key, const rte_ether_addr& mac, bool is_static) {
        char text[RTE_ETHER_ADDR_FMT_SIZE];
        rte_ether_format_addr(text, sizeof text, &mac);
        s.neighbours.push_back({t.interfaces[key.interface].name, format_ipv4(key.address), text, is_static});
      });
  });
  return s;
}

}  // namespace medix::dp
