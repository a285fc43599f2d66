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

// The kinds' rows (Kind::counters), as `read` gives them; those whose clear is by row only
// with `only_by_row` (a clear needs no other).
template <typename Each>
void read_kinds(const CounterSource& source, bool only_by_row, Each each) {
  for (const Kind* k : kinds())
    if (k->counters && (!only_by_row || k->counters->clear == KindCounters::Clear::by_row)) {
      std::vector<CounterRow> rows;
      k->counters->read(source, rows);
      each(*k, rows);
    }
}

// A row's key in Cleared::kinds.
std::tuple<const void*, std::string, std::string> row_key(const CounterRow& row) {
  return {row.state, row.name, row.part};
}

// Each row's counters minus their base at the last clear, if that clear saw the same state;
// gauges as they are. Below its base, a counter is zero, or, where a new object may have the
// same key (KindCounters::below_base_is_new), its own.
void since_clear(const Cleared& cleared, const Kind& kind, std::vector<CounterRow>& rows) {
  const KindCounters& c = *kind.counters;
  for (CounterRow& row : rows) {
    auto base = cleared.kinds.find(row_key(row));
    if (base == cleared.kinds.end()) continue;
    for (size_t i = 0; i < row.values.size() && i < base->second.size(); i++) {
      if (c.columns[i].gauge) continue;
      uint64_t& v = row.values[i];
      uint64_t b = base->second[i];
      v = v >= b ? v - b : (c.below_base_is_new ? v : 0);
    }
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
  cleared.kinds.clear();
  controller.read([&](const Intent&, const Committer& committer, uint64_t) {
    const Tables& t = *committer.current();
    // The first kinds' counters are the workers' Counters: *cleared.totals below is their base.
    read_kinds({.tables = t, .committer = committer}, true, [&](const Kind&, std::vector<CounterRow>& rows) {
      for (CounterRow& row : rows) cleared.kinds[row_key(row)] = std::move(row.values);
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

const CounterSnapshot::KindRows* CounterSnapshot::of(std::string_view list) const {
  for (const KindRows& k : kinds)
    if (list == k.kind->counters->list) return &k;
  return nullptr;
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
    for (const auto& p : t.ports) {
      if (!p.live) continue;
      NicStats nic = read_nic(p.port_id);
      auto before = cleared.nics.find(p.name);
      s.nics.push_back({p.name, before == cleared.nics.end() ? nic : nic_since(nic, before->second)});
    }
    uint64_t now_tsc = rte_rdtsc();
    CounterSource source{.tables = t,
                         .committer = committer,
                         .since = &s.totals,
                         .raw = raw.get(),
                         .bases = &base,
                         .now_ns = now_ns(),
                         .now_tsc = now_tsc,
                         .tsc_hz = dp.tsc_hz};
    read_kinds(source, false, [&](const Kind& k, std::vector<CounterRow>& rows) {
      if (k.counters->clear == KindCounters::Clear::by_row) since_clear(cleared, k, rows);
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
  const Kind* port = kind_of(v1::Object::kPort);
  auto since = std::make_unique<Counters>();  // the ports' words only
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
      auto* o = reinterpret_cast<uint64_t*>(&since->ports[i]);
      auto* x = reinterpret_cast<const uint64_t*>(&raw);
      auto* a = reinterpret_cast<const uint64_t*>(&base.ports[i]);
      auto* b = reinterpret_cast<const uint64_t*>(&cleared.totals->ports[i]);
      for (size_t k = 0; k < sizeof(Counters::Port) / sizeof(uint64_t); k++) o[k] = x[k] - std::max(a[k], b[k]);
      NicStats nic = read_nic(t.ports[i].port_id);
      auto before = cleared.nics.find(t.ports[i].name);
      s.nics.push_back({t.ports[i].name, before == cleared.nics.end() ? nic : nic_since(nic, before->second)});
    }
    std::vector<CounterRow> rows;
    port->counters->read({.tables = t, .committer = committer, .since = since.get()}, rows);
    s.kinds.push_back({port, std::move(rows)});
  });
  return s;
}

}  // namespace medix::dp
