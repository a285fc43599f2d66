// runtime/memory.cpp against DPDK's heap: each object medix-dp creates at start, created here as
// the runtime creates it, takes what the estimate says (at most 1% less, 2% more).
#include <rte_fib.h>
#include <rte_hash.h>
#include <rte_jhash.h>
#include <rte_malloc.h>
#include <rte_mbuf.h>
#include <rte_ring_elem.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "infra/worker.h"
#include "nat/nat.h"
#include "nat/sync.h"
#include "runtime/memory.h"

using namespace medix::dp;

namespace {

uint64_t heap_in_use() {
  rte_malloc_socket_stats stats{};
  rte_malloc_get_socket_stats(0, &stats);
  return stats.heap_allocsz_bytes;
}

// What creating (and keeping) an object takes from the heap.
template <typename Create>
uint64_t measured(Create create) {
  uint64_t before = heap_in_use();
  create();
  return heap_in_use() - before;
}

void close_to(const char* what, uint64_t estimate, uint64_t real) {
  INFO(what << ": estimate " << estimate << ", heap " << real);
  CHECK(double(estimate) >= 0.99 * double(real));
  CHECK(double(estimate) <= 1.02 * double(real) + 4096);
}

}  // namespace

TEST_CASE("the memory estimate matches what DPDK allocates", "[memory]") {
  const uint64_t page = uint64_t(sysconf(_SC_PAGESIZE));  // test/unit/main.cpp: --no-huge
  SECTION("a tenant's FIB copy") {
    for (uint32_t routes : {1024u, default_max_routes, 1u << 17}) {
      rte_fib_conf conf = tenant_fib_conf(routes);
      rte_fib* fib = nullptr;
      uint64_t real = measured([&] { fib = rte_fib_create(("mem_fib" + std::to_string(routes)).c_str(), 0, &conf); });
      REQUIRE(fib);
      close_to(("FIB, " + std::to_string(routes) + " routes").c_str(), fib_bytes(conf, page), real);
      rte_fib_free(fib);
    }
  }
  SECTION("the packet pool") {
    PacketPool p = packet_pool(Settings{}, 1, 1500);
    rte_mempool* pool = nullptr;
    uint64_t real = measured([&] {
      pool = rte_pktmbuf_pool_create("mem_packets", p.buffers, packet_pool_cache, p.priv_size, p.data_room, 0);
    });
    REQUIRE(pool);
    close_to("packet pool", packet_pool_bytes(p.buffers, p.priv_size, p.data_room, page), real);
    rte_mempool_free(pool);
  }
  SECTION("the tables' indexes") {
    for (auto [what, shape] : {std::pair{"neighbour index", neighbour_index_shape},
                               {"SA index", sa_index_shape},
                               {"interface index", interface_index_shape}}) {
      const std::string name = std::string("mem_") + what;
      rte_hash_parameters params = hash_parameters(shape, name.c_str(), rte_jhash, 0);
      rte_hash* hash = nullptr;
      uint64_t real = measured([&] { hash = rte_hash_create(&params); });
      REQUIRE(hash);
      close_to(what, hash_bytes(shape), real);
      rte_hash_free(hash);
    }
  }
  SECTION("a worker's session tables") {
    NatWorker* n = nullptr;
    uint64_t real = measured([&] { n = nat_worker_create(0, 65536, 0); });
    REQUIRE(n);
    close_to("session tables", nat_worker_bytes(65536), real);
    nat_worker_free(n);
  }
  SECTION("a worker's HA sync rings (as runtime/dataplane.cpp makes them)") {
    SyncWorker* w = nullptr;
    uint64_t real = measured([&] {
      w = new (rte_zmalloc_socket("mem_sync", sizeof(SyncWorker), RTE_CACHE_LINE_SIZE, 0)) SyncWorker();
      w->out = rte_ring_create_elem("mem_sync_out", sizeof(SyncRecord), sync_out_ring_size, 0,
                                    RING_F_SP_ENQ | RING_F_SC_DEQ);
      w->in =
          rte_ring_create_elem("mem_sync_in", sizeof(SyncRecord), sync_in_ring_size, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
    });
    REQUIRE(w->out);
    REQUIRE(w->in);
    close_to("HA sync rings", sync_worker_bytes(), real);
    rte_ring_free(w->out);
    rte_ring_free(w->in);
    rte_free(w);
  }
}
