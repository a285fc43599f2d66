#include "runtime/snapshot.h"

#include <rte_cycles.h>

#include <algorithm>
#include <chrono>
#include <memory>

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

// `raw` minus, word by word, the later (larger) of a slot's base and the clear's.
void since_bases(const Counters& raw, const Counters& slots, const Counters& cleared, Counters& out) {
  constexpr size_t words = sizeof(Counters) / sizeof(uint64_t);
  auto* o = reinterpret_cast<uint64_t*>(&out);
  auto* x = reinterpret_cast<const uint64_t*>(&raw);
  auto* a = reinterpret_cast<const uint64_t*>(&slots);
  auto* b = reinterpret_cast<const uint64_t*>(&cleared);
  for (size_t i = 0; i < words; i++) o[i] = x[i] - std::max(a[i], b[i]);
}

uint64_t now_ns() {
  return uint64_t(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

LcoreStats raw_lcore(const Worker& w) {
  LcoreStats l;
  const Counters& c = *w.counters;
  for (unsigned r = 0; r < drop_reason_count; r++) l.drops[r] = load_counter(c.drops[r]);
  for (unsigned s = 0; s < unsigned(Stage::count); s++)
    l.stages[s] = {load_counter(c.stages[s].calls), load_counter(c.stages[s].packets),
                   load_counter(c.stages[s].cycles)};
  l.loops = load_counter(c.loops);
  l.empty_polls = load_counter(c.empty_polls);
  l.busy_cycles = load_counter(c.busy_cycles);
  l.loop_cycles = load_counter(c.loop_cycles);
  return l;
}

// An SA's counters in one row: packets, bytes, drops by reason.
std::vector<uint64_t> sa_row(const SaState& sa) {
  std::vector<uint64_t> row{load_counter(sa.packets), load_counter(sa.bytes)};
  for (unsigned r = 0; r < sa_drop_count; r++) row.push_back(load_counter(sa.drops[r]));
  return row;
}
// The kinds' rows (Kind::counters), raw.
template <typename Each>
void read_kinds(const Tables& t, Each each) {
  for (const Kind* k : kinds())
    if (k->counters) {
      std::vector<CounterRow> rows;
      k->counters->read(t, rows);
      each(*k, rows);
    }
}

// A row's key in Cleared::kinds.
std::tuple<const void*, std::string, std::string> row_key(const CounterRow& row) {
  return {row.state, row.name, row.part};
}

// Each row's counters minus their base at the last clear, if that clear saw the same state;
// gauges as they are.
void since_clear(const Cleared& cleared, const Kind& kind, std::vector<CounterRow>& rows) {
  const auto& columns = kind.counters->columns;
  for (CounterRow& row : rows) {
    auto base = cleared.kinds.find(row_key(row));
    if (base == cleared.kinds.end()) continue;
    for (size_t i = 0; i < row.values.size() && i < base->second.size(); i++)
      if (!columns[i].gauge) row.values[i] -= std::min(row.values[i], base->second[i]);
  }
}

}  // namespace

LcoreStats Dataplane::lcore_stats(size_t queue) const {
  std::lock_guard lock(clear_mutex);
  return minus(raw_lcore(*workers[queue]), cleared.lcores[queue]);
}

uint64_t Dataplane::clear_counters() {
  std::lock_guard lock(clear_mutex);
  cleared.nics.clear();
  cleared.sas.clear();
  cleared.kinds.clear();
  controller.read([&](const Intent&, const Committer& committer, uint64_t) {
    const Tables& t = *committer.current();
    read_kinds(t, [&](const Kind&, std::vector<CounterRow>& rows) {
      for (CounterRow& row : rows) cleared.kinds[row_key(row)] = std::move(row.values);
    });
    committer.for_each_sa([&](const SaKey& key, const SaState& sa) {
      cleared.sas[{key.tunnel, key.spi, key.inbound}] = sa_row(sa);
    });
    // The NICs first, the workers right after (and the other way round in take_snapshot): a NIC
    // counts a frame before a worker does, so its count since the clear is never below the
    // worker's; nothing between the two reads keeps the frames counted by one alone few.
    for (const auto& p : t.ports)
      if (p.live) cleared.nics[p.name] = read_nic(p.port_id);
    *cleared.totals = totals();
  });
  for (size_t q = 0; q < workers.size(); q++) cleared.lcores[q] = raw_lcore(*workers[q]);
  cleared.since_ns = now_ns();
  return cleared.since_ns;
}

CounterSnapshot take_snapshot(Dataplane& dp, bool with_neighbours) {
  CounterSnapshot s;
  std::lock_guard clear_lock(dp.clear_mutex);
  const Cleared& cleared = dp.cleared;
  s.since_ns = cleared.since_ns;
  for (size_t q = 0; q < dp.workers.size(); q++)
    s.lcores.push_back(minus(raw_lcore(*dp.workers[q]), cleared.lcores[q]));
  auto raw = std::make_unique<Counters>(dp.totals());
  dp.controller.read([&](const Intent&, const Committer& committer, uint64_t version) {
    const Tables& t = *committer.current();
    const Counters& base = committer.bases();
    since_bases(*raw, base, *cleared.totals, s.totals);
    s.version = version;
    for (size_t i = 0; i < t.ports.size(); i++) {
      if (!t.ports[i].live) continue;
      s.ports.push_back({t.ports[i].name, s.totals.ports[i]});
      NicStats nic = read_nic(t.ports[i].port_id);
      auto before = cleared.nics.find(t.ports[i].name);
      s.nics.push_back(before == cleared.nics.end() ? nic : nic_since(nic, before->second));
    }
    for (size_t i = 0; i < t.interfaces.size(); i++) {
      if (!t.interfaces[i].uid) continue;
      auto c = s.totals.interfaces[i];
      if (t.interfaces[i].tunnel)
        s.tunnels.push_back({t.interfaces[i].name, c});
      else {
        s.interfaces.push_back({t.interfaces[i].name, c});
        uint16_t tenant = t.interfaces[i].tenant;
        s.interface_tenants.push_back(tenant < t.tenants.size() ? t.tenants[tenant].name : "");
      }
    }
    uint64_t now_tsc = rte_rdtsc();
    uint64_t now = now_ns();
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
      if (used) x.last_used_ns = now - (now_tsc > used ? (now_tsc - used) * 1000000000 / dp.tsc_hz : 0);
      for (unsigned r = 0; r < sa_drop_count; r++) x.drops[r] = load_counter(sa.drops[r]);
      if (auto before = cleared.sas.find({key.tunnel, key.spi, key.inbound}); before != cleared.sas.end()) {
        // Below its base, a counter belongs to a new SA of the same key: it counts from zero.
        auto since = [](uint64_t a, uint64_t b) { return a >= b ? a - b : a; };
        const auto& b = before->second;
        x.packets = since(x.packets, b[0]);
        x.bytes = since(x.bytes, b[1]);
        for (unsigned r = 0; r < sa_drop_count; r++) x.drops[r] = since(x.drops[r], b[2 + r]);
      }
      s.sas.push_back(x);
    });
    for (size_t i = 0; i < t.tenants.size(); i++)
      if (t.tenants[i].live) s.tenants.push_back({t.tenants[i].name, s.totals.tenants[i]});
    auto gauge = [](uint64_t up, uint64_t down) { return up > down ? up - down : 0; };
    if (t.nat)
      for (size_t i = 0; i < t.tenants.size(); i++) {
        if (!t.tenants[i].live) continue;
        // How many exist now is no counter: a clear does not change it, the slot's base does.
        auto now = minus(raw->nat[i], base.nat[i]);
        s.nat.push_back({t.tenants[i].name, s.totals.nat[i], gauge(now.sessions_created, now.sessions_ended),
                         gauge(now.mappings_created, now.mappings_ended)});
      }
    for (const auto& r : t.rules) s.rules.push_back({r.name, s.totals.rule_matched[r.slot], r.permit});
    read_kinds(t, [&](const Kind& k, std::vector<CounterRow>& rows) {
      since_clear(cleared, k, rows);
      s.kinds.push_back({&k, std::move(rows)});
    });
    if (with_neighbours)
      t.neighbours->for_each([&](const NeighbourSlotKey& key, const rte_ether_addr& mac, bool is_static) {
        char text[RTE_ETHER_ADDR_FMT_SIZE];
        rte_ether_format_addr(text, sizeof text, &mac);
        s.neighbours.push_back({t.interfaces[key.interface].name, format_ipv4(key.address), text, is_static});
      });
  });
  return s;
}

CounterSnapshot take_port_snapshot(Dataplane& dp) {
  CounterSnapshot s;
  std::lock_guard clear_lock(dp.clear_mutex);
  const Cleared& cleared = dp.cleared;
  s.since_ns = cleared.since_ns;
  dp.controller.read([&](const Intent&, const Committer& committer, uint64_t version) {
    const Tables& t = *committer.current();
    const Counters& base = committer.bases();
    s.version = version;
    for (size_t i = 0; i < t.ports.size(); i++) {
      if (!t.ports[i].live) continue;
      // As since_bases does for the whole: the raw sum minus the later of the slot's base and
      // the clear's, word by word.
      Counters::Port raw{};
      for (const auto* w : dp.workers) {
        const Counters::Port& p = w->counters->ports[i];
        raw.rx_packets += load_counter(p.rx_packets);
        raw.rx_bytes += load_counter(p.rx_bytes);
        raw.tx_packets += load_counter(p.tx_packets);
        raw.tx_bytes += load_counter(p.tx_bytes);
        raw.tx_dropped += load_counter(p.tx_dropped);
      }
      Counters::Port since;
      auto* o = reinterpret_cast<uint64_t*>(&since);
      auto* x = reinterpret_cast<const uint64_t*>(&raw);
      auto* a = reinterpret_cast<const uint64_t*>(&base.ports[i]);
      auto* b = reinterpret_cast<const uint64_t*>(&cleared.totals->ports[i]);
      for (size_t k = 0; k < sizeof(Counters::Port) / sizeof(uint64_t); k++) o[k] = x[k] - std::max(a[k], b[k]);
      s.ports.push_back({t.ports[i].name, since});
      NicStats nic = read_nic(t.ports[i].port_id);
      auto before = cleared.nics.find(t.ports[i].name);
      s.nics.push_back(before == cleared.nics.end() ? nic : nic_since(nic, before->second));
    }
  });
  return s;
}

}  // namespace medix::dp
