// The FIB structures side by side, in one process (benchmarks/lpm runs it; see README.md):
//
//   dir24_8     rte_fib DIR24_8, 2-byte next hops: what medix-dp had for every tenant, two copies
//   compact     tables/lpm.h: 8-8-8-8 trie, every tenant's plies in one pool, one copy
//   fib6_trie   DPDK's alternative for many tenants in one table: rte_fib6 TRIE with the key
//               (tenant, IPv4 address) in the first 6 bytes of an IPv6 address
//
// For each: TSC cycles per lookup (bursts of 32, 1,024 flows, best of --rounds), memory and
// time to build one copy. compact's memory is its plies and its routes (the writer's RIB, in
// the C++ heap); the others' is what rte_malloc's heap grew by, their RIBs included. Prints a
// table; --json writes the figures.
#include <malloc.h>
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_fib.h>
#include <rte_fib6.h>
#include <rte_malloc.h>
#include <rte_vect.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "tables/lpm.h"

using medix::dp::Lpm;

namespace {

constexpr unsigned burst = 32;
constexpr unsigned flows = 1024;

struct Route {
  uint32_t address;
  uint8_t length;
  uint16_t nh;
};
struct Flow {
  uint16_t tenant;
  uint32_t address;
};

std::mt19937 generator(42);
uint32_t rng() { return uint32_t(generator()); }

// Distinct random /24s from unicast space (not 0/8, 10/8, 127/8, 224/3), as benchmarks/run.
std::vector<Route> random_routes(unsigned n, std::set<uint32_t>& taken) {
  std::vector<Route> out;
  while (out.size() < n) {
    uint32_t a = rng() & 0xffffff00;
    uint8_t first = uint8_t(a >> 24);
    if (first == 0 || first == 10 || first == 127 || first >= 224 || !taken.insert(a).second) continue;
    out.push_back({a, 24, uint16_t(1 + rng() % 1000)});
  }
  return out;
}

double heap_bytes() {
  rte_malloc_socket_stats s{};
  rte_malloc_get_socket_stats(0, &s);
  return double(s.heap_allocsz_bytes);
}

// The writer's own memory (the compact tables' routes, kept in the C++ heap).
double cxx_heap_bytes() { return double(mallinfo2().uordblks); }

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

struct Result {
  std::string name, structure;
  unsigned tenants, routes_per_tenant;
  double cycles_per_lookup, memory_bytes, build_s;
  std::vector<double> rounds;
};

template <typename F>
Result measure(const std::string& name, unsigned rounds, unsigned iterations, F&& burst_fn) {
  Result r;
  r.name = name;
  double best = 1e18;
  volatile uint64_t sink = 0;
  for (unsigned round = 0; round < rounds; round++) {
    uint64_t sum = 0;
    uint64_t start = rte_rdtsc_precise();
    for (unsigned it = 0; it < iterations; it++)
      for (unsigned first = 0; first < flows; first += burst) sum += burst_fn(first);
    uint64_t cycles = rte_rdtsc_precise() - start;
    sink = sink + sum;
    double per = double(cycles) / (double(iterations) * flows);
    r.rounds.push_back(per);
    best = std::min(best, per);
  }
  r.cycles_per_lookup = best;
  return r;
}

rte_fib* make_dir24(const std::vector<Route>& routes, unsigned serial) {
  rte_fib_conf conf{};
  conf.type = RTE_FIB_DIR24_8;
  conf.default_nh = 0;
  conf.max_routes = int(routes.size() + 64);
  conf.dir24_8.nh_sz = RTE_FIB_DIR24_8_2B;
  conf.dir24_8.num_tbl8 = std::min<uint32_t>(32767, std::max<uint32_t>(1024, uint32_t(routes.size() / 8)));
  rte_fib* fib = rte_fib_create(("d" + std::to_string(serial)).c_str(), 0, &conf);
  if (!fib) return nullptr;
  for (const auto& r : routes) rte_fib_add(fib, r.address, r.length, r.nh);
  return fib;
}

void key6(uint8_t* key, uint16_t tenant, uint32_t address) {
  key[0] = uint8_t(tenant >> 8);
  key[1] = uint8_t(tenant);
  key[2] = uint8_t(address >> 24);
  key[3] = uint8_t(address >> 16);
  key[4] = uint8_t(address >> 8);
  key[5] = uint8_t(address);
}

}  // namespace

int main(int argc, char** argv) {
  unsigned tenants = 1000, routes_per_tenant = 100, core_routes = 1000000, rounds = 5, iterations = 2000;
  std::string json;
  std::string prefix = "--file-prefix=medix-lpm-" + std::to_string(getpid());
  const char* eal[] = {"lpm-bench", "--no-huge",         "-m",          "3072", "--no-pci", "-l",
                       "0",         "--log-level=error", prefix.c_str()};
  if (rte_eal_init(int(std::size(eal)), const_cast<char**>(eal)) < 0) return 1;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    unsigned v = unsigned(atoi(argv[i + 1]));
    if (a == "--tenants") tenants = v;
    if (a == "--routes") routes_per_tenant = v;
    if (a == "--core-routes") core_routes = v;
    if (a == "--rounds") rounds = v;
    if (a == "--iterations") iterations = v;
    if (a == "--json") json = argv[i + 1];
  }
  std::vector<Result> results;

  // Every tenant: its own random /24s (they overlap between tenants as often as chance has it).
  std::vector<std::vector<Route>> plan(tenants);
  for (auto& p : plan) {
    std::set<uint32_t> taken;
    p = random_routes(routes_per_tenant, taken);
  }
  // Flows: a random host of a random route, in tenant 0 only (single) or in any tenant (mixed).
  std::vector<Flow> single(flows), mixed(flows);
  for (unsigned i = 0; i < flows; i++) {
    const auto& r0 = plan[0][rng() % plan[0].size()];
    single[i] = {0, r0.address | (rng() & 0xff)};
    uint16_t t = uint16_t(rng() % tenants);
    const auto& r = plan[t][rng() % plan[t].size()];
    mixed[i] = {t, r.address | (rng() & 0xff)};
  }
  std::vector<uint32_t> addresses(flows);
  auto address_of = [&](const std::vector<Flow>& f) {
    for (unsigned i = 0; i < flows; i++) addresses[i] = f[i].address;
  };

  // --- One tenant: DIR24_8 (the reference), compact, fib6 trie.
  {
    double h0 = heap_bytes(), t0 = now_s();
    rte_fib* fib = make_dir24(plan[0], 0);
    double built = now_s() - t0, mem = heap_bytes() - h0;
    address_of(single);
    auto r = measure("dir24_8, 1 tenant", rounds, iterations, [&](unsigned first) {
      uint64_t hops[burst];
      rte_fib_lookup_bulk(fib, addresses.data() + first, hops, burst);
      uint64_t s = 0;
      for (unsigned i = 0; i < burst; i++) s += hops[i];
      return s;
    });
    r.structure = "dir24_8";
    r.tenants = 1;
    r.routes_per_tenant = routes_per_tenant;
    r.memory_bytes = mem;
    r.build_s = built;
    results.push_back(r);
    rte_fib_free(fib);
  }
  Lpm lpm;
  if (auto e = lpm.init(1u << 22)) {
    fprintf(stderr, "%s\n", e->c_str());
    return 1;
  }
  {
    double t0 = now_s(), c0 = cxx_heap_bytes();
    lpm.create(0);
    for (const auto& r : plan[0]) lpm.set(0, r.address, r.length, r.nh);
    lpm.commit();
    double built = now_s() - t0;
    address_of(single);
    uint32_t root = lpm.root(0);
    auto r = measure("compact, 1 tenant", rounds, iterations, [&](unsigned first) {
      uint32_t roots[burst], leaves[burst];
      for (unsigned i = 0; i < burst; i++) roots[i] = root;
      Lpm::lookup_bulk(lpm.plies(), roots, addresses.data() + first, leaves, burst);
      uint64_t s = 0;
      for (unsigned i = 0; i < burst; i++) s += leaves[i];
      return s;
    });
    r.structure = "compact";
    r.tenants = 1;
    r.routes_per_tenant = routes_per_tenant;
    r.memory_bytes = double(lpm.plies_in_use() * Lpm::ply_bytes) + cxx_heap_bytes() - c0;
    r.build_s = built;
    results.push_back(r);
    lpm.destroy(0);
  }

  // --- Every tenant, flows spread over all of them.
  {
    double t0 = now_s(), c0 = cxx_heap_bytes();
    for (unsigned t = 0; t < tenants; t++) {
      lpm.create(t);
      for (const auto& r : plan[t]) lpm.set(t, r.address, r.length, r.nh);
    }
    lpm.commit();
    double built = now_s() - t0;
    std::vector<uint32_t> table_roots(tenants);
    for (unsigned t = 0; t < tenants; t++) table_roots[t] = lpm.root(t);
    address_of(mixed);
    auto r = measure("compact, " + std::to_string(tenants) + " tenants mixed", rounds, iterations, [&](unsigned first) {
      uint32_t roots[burst], leaves[burst];
      for (unsigned i = 0; i < burst; i++) roots[i] = table_roots[mixed[first + i].tenant];
      Lpm::lookup_bulk(lpm.plies(), roots, addresses.data() + first, leaves, burst);
      uint64_t s = 0;
      for (unsigned i = 0; i < burst; i++) s += leaves[i];
      return s;
    });
    r.structure = "compact";
    r.tenants = tenants;
    r.routes_per_tenant = routes_per_tenant;
    r.memory_bytes = double(lpm.plies_in_use() * Lpm::ply_bytes) + cxx_heap_bytes() - c0;
    r.build_s = built;
    results.push_back(r);
  }
  {
    double h0 = heap_bytes(), t0 = now_s();
    rte_fib6_conf conf{};
    conf.type = RTE_FIB6_TRIE;
    conf.default_nh = 0;
    conf.max_routes = int(tenants * routes_per_tenant + 64);
    conf.trie.nh_sz = RTE_FIB6_TRIE_4B;  // 2-byte entries allow at most 32,767 tbl8 groups
    conf.trie.num_tbl8 = std::max<uint32_t>(4096, tenants * routes_per_tenant * 5 / 2);
    rte_fib6* fib = rte_fib6_create("t6", 0, &conf);
    if (!fib) {
      fprintf(stderr, "rte_fib6_create failed\n");
      return 1;
    }
    uint8_t key[16] = {};
    for (unsigned t = 0; t < tenants; t++)
      for (const auto& r : plan[t]) {
        key6(key, uint16_t(t), r.address);
        rte_fib6_add(fib, key, uint8_t(16 + r.length), r.nh);
      }
    double built = now_s() - t0, mem = heap_bytes() - h0;
    static uint8_t keys[flows][16];
    memset(keys, 0, sizeof(keys));
    auto r =
        measure("fib6_trie, " + std::to_string(tenants) + " tenants mixed", rounds, iterations, [&](unsigned first) {
          uint8_t k[burst][16];
          memset(k, 0, sizeof(k));
          for (unsigned i = 0; i < burst; i++) key6(k[i], mixed[first + i].tenant, mixed[first + i].address);
          uint64_t hops[burst];
          rte_fib6_lookup_bulk(fib, k, hops, burst);
          uint64_t s = 0;
          for (unsigned i = 0; i < burst; i++) s += hops[i];
          return s;
        });
    r.structure = "fib6_trie";
    r.tenants = tenants;
    r.routes_per_tenant = routes_per_tenant;
    r.memory_bytes = mem;
    r.build_s = built;
    results.push_back(r);
    rte_fib6_free(fib);
  }
  // What medix-dp did with mixed bursts: one DIR24_8 per tenant, one bulk lookup per tenant
  // present in the burst (10 tenants: 1,000 would need ~34 GB).
  {
    unsigned few = std::min(10u, tenants);
    std::vector<rte_fib*> fibs;
    for (unsigned t = 0; t < few; t++) fibs.push_back(make_dir24(plan[t], 100 + t));
    std::vector<Flow> f(flows);
    for (unsigned i = 0; i < flows; i++) {
      uint16_t t = uint16_t(rng() % few);
      f[i] = {t, plan[t][rng() % plan[t].size()].address | (rng() & 0xff)};
    }
    address_of(f);
    auto r = measure("dir24_8 per tenant, " + std::to_string(few) + " tenants mixed", rounds, iterations,
                     [&](unsigned first) {
                       uint64_t s = 0;
                       uint32_t ips[burst];
                       uint64_t hops[burst];
                       bool done[burst] = {};
                       for (unsigned i = 0; i < burst; i++) {
                         if (done[i]) continue;
                         uint16_t t = f[first + i].tenant;
                         unsigned n = 0;
                         for (unsigned k = i; k < burst; k++)
                           if (!done[k] && f[first + k].tenant == t) {
                             done[k] = true;
                             ips[n++] = addresses[first + k];
                           }
                         rte_fib_lookup_bulk(fibs[t], ips, hops, n);
                         for (unsigned k = 0; k < n; k++) s += hops[k];
                       }
                       return s;
                     });
    r.structure = "dir24_8";
    r.tenants = few;
    r.routes_per_tenant = routes_per_tenant;
    r.memory_bytes = 0;
    r.build_s = 0;
    results.push_back(r);
    for (auto* fib : fibs) rte_fib_free(fib);
  }

  // --- The core: one large table.
  if (core_routes) {
    std::set<uint32_t> taken;
    auto core = random_routes(core_routes, taken);
    std::vector<Flow> f(flows);
    for (unsigned i = 0; i < flows; i++) f[i] = {0, core[rng() % core.size()].address | (rng() & 0xff)};
    address_of(f);
    {
      double h0 = heap_bytes(), t0 = now_s();
      rte_fib* fib = make_dir24(core, 1);
      double built = now_s() - t0, mem = heap_bytes() - h0;
      auto r = measure("dir24_8, core", rounds, iterations, [&](unsigned first) {
        uint64_t hops[burst];
        rte_fib_lookup_bulk(fib, addresses.data() + first, hops, burst);
        uint64_t s = 0;
        for (unsigned i = 0; i < burst; i++) s += hops[i];
        return s;
      });
      r.structure = "dir24_8";
      r.tenants = 1;
      r.routes_per_tenant = core_routes;
      r.memory_bytes = mem;
      r.build_s = built;
      results.push_back(r);
      rte_fib_free(fib);
    }
    {
      size_t before = lpm.plies_in_use();
      double t0 = now_s(), c0 = cxx_heap_bytes();
      uint32_t t = tenants;
      lpm.create(t);
      for (const auto& r : core) lpm.set(t, r.address, r.length, r.nh);
      lpm.commit();
      double built = now_s() - t0;
      uint32_t root = lpm.root(t);
      auto r = measure("compact, core", rounds, iterations, [&](unsigned first) {
        uint32_t roots[burst], leaves[burst];
        for (unsigned i = 0; i < burst; i++) roots[i] = root;
        Lpm::lookup_bulk(lpm.plies(), roots, addresses.data() + first, leaves, burst);
        uint64_t s = 0;
        for (unsigned i = 0; i < burst; i++) s += leaves[i];
        return s;
      });
      r.structure = "compact";
      r.tenants = 1;
      r.routes_per_tenant = core_routes;
      r.memory_bytes = double((lpm.plies_in_use() - before) * Lpm::ply_bytes) + cxx_heap_bytes() - c0;
      r.build_s = built;
      results.push_back(r);
      lpm.destroy(t);
    }
  }

  printf("%-40s %10s %12s %10s %12s\n", "structure", "cyc/lookup", "vs ref", "build s", "memory MB");
  for (const auto& r : results)
    printf("%-40s %10.2f %12.2f %10.3f %12.1f\n", r.name.c_str(), r.cycles_per_lookup,
           r.cycles_per_lookup / results[0].cycles_per_lookup, r.build_s, r.memory_bytes / 1e6);
  if (!json.empty()) {
    FILE* out = fopen(json.c_str(), "w");
    if (!out) return 1;
    fprintf(out, "{\n  \"tsc_hz\": %lu,\n  \"flows\": %u,\n  \"burst\": %u,\n  \"points\": [\n", rte_get_tsc_hz(),
            flows, burst);
    for (size_t i = 0; i < results.size(); i++) {
      const auto& r = results[i];
      fprintf(out,
              "    {\"name\": \"%s\", \"structure\": \"%s\", \"tenants\": %u, \"routes_per_tenant\": %u, "
              "\"cycles_per_lookup\": %.3f, \"ratio_to_dir24_8_single\": %.3f, \"memory_bytes\": %.0f, "
              "\"build_s\": %.4f, \"rounds\": [",
              r.name.c_str(), r.structure.c_str(), r.tenants, r.routes_per_tenant, r.cycles_per_lookup,
              r.cycles_per_lookup / results[0].cycles_per_lookup, r.memory_bytes, r.build_s);
      for (size_t k = 0; k < r.rounds.size(); k++) fprintf(out, "%s%.3f", k ? ", " : "", r.rounds[k]);
      fprintf(out, "]}%s\n", i + 1 < results.size() ? "," : "");
    }
    fprintf(out, "  ]\n}\n");
    fclose(out);
  }
  rte_eal_cleanup();
  return 0;
}
