#include "runtime/memory.h"

#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pdump.h>
#include <rte_rcu_qsbr.h>
#include <rte_ring_elem.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>

#include "infra/worker.h"
#include "ip/kinds.h"
#include "ipsec/sa.h"
#include "nat/nat.h"
#include "nat/sync.h"

namespace medix::dp {

namespace {

// DPDK 22.11's layouts that its headers do not show (test/unit/memory_test.cpp checks them
// against the heap): each allocation's header (struct malloc_elem, one cache line; no trailer
// without RTE_MALLOC_DEBUG); an rte_hash bucket (8 signatures, 8 key indexes, 8 flags, the next
// pointer: one cache line) and the rte_hash itself; a RIB node (three pointers, address, depth,
// flag, next hop); a reassembly table entry (key, LRU links, times, and a fragment of 16 bytes
// for each of RTE_LIBRTE_IP_FRAG_MAX_FRAG, in cache lines); the small headers of a FIB, a RIB,
// a DIR24_8 table, a reassembly table.
constexpr uint64_t malloc_header = RTE_CACHE_LINE_SIZE;
constexpr uint64_t hash_bucket = 64, hash_bucket_entries = 8, hash_key_alignment = 16, hash_header = 384;
constexpr uint64_t rib_node = 40;
constexpr uint64_t fragment_entry = RTE_ALIGN_CEIL(80 + 16 * RTE_LIBRTE_IP_FRAG_MAX_FRAG, RTE_CACHE_LINE_SIZE);
constexpr uint64_t fragment_hash_functions = 2;  // IP_FRAG_HASH_FNUM
constexpr uint64_t small_header = 256;
// Ports: what a driver allocates for its rx and tx rings, per descriptor (a NIC's descriptor and
// its software ring entry; net_null and net_af_packet take less). EAL and the drivers' own: what
// DPDK's heap holds beside medix-dp's objects, measured with DPDK 22.11 and two net_null ports
// (--no-huge: 0.3 MiB), with room.
constexpr uint64_t port_descriptor_bytes = 64;
constexpr uint64_t eal_base_bytes = 1 << 20;

// One rte_malloc or rte_memzone_reserve of `size` bytes.
uint64_t allocation(uint64_t size) { return RTE_ALIGN_CEIL(size, RTE_CACHE_LINE_SIZE) + malloc_header; }

// The lcore ids EAL's options name (-l 0,2-4; --lcores 0@0,1@1,(2-3)@1; -c 0x3).
void lcores_in(int argc, char** argv, std::set<unsigned>& lcores, bool& given) {
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
    std::string a = argv[i], value;
    auto take = [&](const std::string& option) {
      if (a == option && i + 1 < argc) {
        value = argv[++i];
        return true;
      }
      if (a.starts_with(option) && a.size() > option.size()) {
        value = a.substr(option.size() + (a[option.size()] == '=' ? 1 : 0));
        return true;
      }
      return false;
    };
    if (take("--lcores")) {
      // "0,1", "0@0,1@1,2@1", "(0-3)@1": lcore ids are what stands before each '@'.
      given = true;
      std::string ids;
      for (size_t j = 0; j < value.size(); j++) {
        char c = value[j];
        if (c == '@') {  // its cpus, up to the next ',' outside parentheses
          int depth = 0;
          for (j++; j < value.size() && (value[j] != ',' || depth); j++)
            depth += value[j] == '(' ? 1 : value[j] == ')' ? -1 : 0;
          ids += ',';
          continue;
        }
        ids += c == '(' || c == ')' ? ',' : c;
      }
      value = ids;
    } else if (take("-l")) {
      given = true;
    } else if (take("-c")) {
      given = true;
      unsigned long mask = std::stoul(value, nullptr, 16);
      for (unsigned bit = 0; bit < 64; bit++)
        if (mask & (1ul << bit)) lcores.insert(bit);
      continue;
    } else {
      continue;
    }
    // A list: "0,2-4".
    size_t at = 0;
    while (at < value.size()) {
      size_t end = value.find(',', at);
      std::string part = value.substr(at, end == std::string::npos ? std::string::npos : end - at);
      at = end == std::string::npos ? value.size() : end + 1;
      if (part.empty()) continue;
      size_t dash = part.find('-');
      unsigned low = unsigned(std::stoul(part.substr(0, dash)));
      unsigned high = dash == std::string::npos ? low : unsigned(std::stoul(part.substr(dash + 1)));
      for (unsigned id = low; id <= high; id++) lcores.insert(id);
    }
  }
}

std::string mib(uint64_t bytes) {
  char text[32];
  snprintf(text, sizeof text, "%.1f", double(bytes) / (1 << 20));
  return text;
}

}  // namespace

PacketPool packet_pool(const Settings& settings, unsigned workers, uint32_t max_mtu) {
  PacketPool p;
  // Room for a whole frame of the largest MTU, with two VLAN tags.
  p.data_room = uint16_t(std::max<uint32_t>(RTE_MBUF_DEFAULT_DATAROOM, std::max<uint32_t>(1500, max_mtu) +
                                                                           RTE_ETHER_HDR_LEN + 8 + RTE_ETHER_CRC_LEN) +
                         RTE_PKTMBUF_HEADROOM);
  // The private area rounded to a cache line puts frames on a cache line boundary, so that
  // Ethernet, IPv4 and UDP or ESP headers share one line.
  p.priv_size = uint16_t(RTE_CACHE_LINE_ROUNDUP(sizeof(PacketMeta)));
  // Enough for every descriptor of 8 ports, the pending queue and bursts in flight.
  unsigned per_worker = 8 * (rx_descriptors + tx_descriptors + 2 * burst_size) + max_pending + 4 * burst_size;
  p.needed = std::max(8191u, per_worker * workers + 2048);
  p.buffers = std::max(p.needed, settings.packet_buffers);
  return p;
}

uint64_t ring_bytes(unsigned element_size, unsigned count) {
  ssize_t size = rte_ring_get_memsize_elem(element_size, count);
  return size < 0 ? 0 : allocation(uint64_t(size));
}

uint64_t mempool_bytes(unsigned n, unsigned element_size, unsigned cache_size, unsigned private_size,
                       uint64_t page_size) {
  rte_mempool_objsz object{};
  const uint64_t size = rte_mempool_calc_obj_size(element_size, 0, &object);
  uint64_t header = sizeof(rte_mempool) + (cache_size ? RTE_MAX_LCORE * sizeof(rte_mempool_cache) : 0) + private_size;
  // As rte_mempool_op_calc_mem_size_helper: objects do not straddle pages; the last page holds
  // what is left, and one object's worth of room covers an unaligned start.
  uint64_t objects = size * n;
  if (const uint64_t per_page = page_size / size; n && per_page) {
    const uint64_t last = (n - 1) % per_page + 1;
    objects = last * size + (n - last) / per_page * page_size + size - 1;
  } else if (n) {
    objects = RTE_ALIGN_CEIL(size, page_size) * n;
  }
  return allocation(RTE_ALIGN_CEIL(header, RTE_MEMPOOL_ALIGN)) +
         ring_bytes(sizeof(void*), rte_align32pow2(n + 1)) +  // its ring_mp_mc handler
         allocation(objects);
}

uint64_t packet_pool_bytes(unsigned n, uint16_t priv_size, uint16_t data_room, uint64_t page_size) {
  return mempool_bytes(n, sizeof(rte_mbuf) + priv_size + data_room, packet_pool_cache, sizeof(rte_pktmbuf_pool_private),
                       page_size);
}

uint64_t hash_bytes(const HashShape& shape) {
  const uint64_t slots = uint64_t(shape.entries) + 1;
  const uint64_t buckets = rte_align32pow2(shape.entries) / hash_bucket_entries;
  const uint64_t key_entry = RTE_ALIGN_CEIL(sizeof(void*) + shape.key_len, hash_key_alignment);
  uint64_t bytes = ring_bytes(sizeof(uint32_t), rte_align32pow2(uint32_t(slots))) + allocation(hash_header) +
                   allocation(buckets * hash_bucket) + allocation(key_entry * slots) + 2 * allocation(sizeof(uint32_t));
  if (shape.extra_flag & RTE_HASH_EXTRA_FLAGS_EXT_TABLE) {
    bytes += ring_bytes(sizeof(uint32_t), rte_align32pow2(uint32_t(buckets) + 1)) + allocation(buckets * hash_bucket);
    if (shape.extra_flag & RTE_HASH_EXTRA_FLAGS_RW_CONCURRENCY_LF) bytes += allocation(sizeof(uint32_t) * slots);
  }
  return bytes;
}

uint64_t fib_bytes(const rte_fib_conf& conf, uint64_t page_size) {
  const uint64_t next_hop = uint64_t(1) << conf.dir24_8.nh_sz;
  const uint64_t tbl8_groups = RTE_ALIGN_CEIL(conf.dir24_8.num_tbl8, 64);
  return allocation(small_header) * 3 +  // the FIB, the RIB, their list entries
         mempool_bytes(uint32_t(conf.max_routes) * 2, rib_node, 0, 0, page_size) +  // the RIB's nodes
         allocation(small_header + (uint64_t(1) << 24) * next_hop) +                // tbl24
         allocation(256 * next_hop * (tbl8_groups + 1)) +                           // tbl8 groups
         allocation(tbl8_groups / 8);
}

uint64_t nat_worker_bytes(uint32_t capacity) {
  const uint64_t fragments =
      uint64_t(rte_align32pow2(fragment_buckets)) * fragment_bucket_entries * fragment_hash_functions;
  return allocation(sizeof(NatWorker)) + allocation(sizeof(FlowTable::Bucket) * uint64_t(nat_index_buckets(capacity))) +
         allocation(sizeof(Session) * uint64_t(capacity)) + allocation(sizeof(Mapping) * uint64_t(capacity)) +
         2 * allocation(sizeof(uint32_t) * uint64_t(capacity)) + allocation(sizeof(uint32_t) * max_tenants) +
         allocation(small_header + fragments * fragment_entry);
}

uint64_t worker_bytes() {
  return allocation(sizeof(Worker)) + allocation(sizeof(Counters)) + allocation(sizeof(TxBuffer) * max_ports) +
         allocation(sizeof(PendingQueue)) + 2 * allocation(sizeof(Batch)) + allocation(sizeof(NeighbourCache)) +
         allocation(sizeof(Shares)) + ring_bytes(sizeof(SaEventMessage), sa_event_ring_size) +
         ring_bytes(sizeof(void*), handoff_ring_size);
}

uint64_t sync_worker_bytes() {
  return allocation(sizeof(SyncWorker)) + ring_bytes(sizeof(SyncRecord), sync_out_ring_size) +
         ring_bytes(sizeof(SyncRecord), sync_in_ring_size);
}

MemoryEstimate estimate_memory(const medix::dataplane::v1::Config& config, const Settings& settings,
                               const EalShape& eal, uint32_t max_mtu, bool ha_sync) {
  const unsigned workers = eal.workers;
  MemoryEstimate e;
  auto add = [&e](std::string what, std::string detail, uint64_t bytes) {
    e.items.push_back({std::move(what), std::move(detail), bytes});
    e.total += bytes;
  };
  const std::string per = workers == 1 ? "1 worker" : std::to_string(workers) + " workers";

  PacketPool pool = packet_pool(settings, workers, max_mtu);
  add("packet buffers",
      std::to_string(pool.buffers) + " of " + std::to_string(pool.data_room) + " B (" +
          (settings.packet_buffers > pool.needed ? "settings.packet_buffers" : "the minimum for " + per) + ")",
      packet_pool_bytes(pool.buffers, pool.priv_size, pool.data_room, eal.page_size));
  add("indirect buffers", std::to_string(indirect_buffers) + " clones",
      mempool_bytes(indirect_buffers, sizeof(rte_mbuf) + sizeof(PacketMeta), packet_pool_cache,
                    sizeof(rte_pktmbuf_pool_private), eal.page_size));

  // DIR24_8 FIBs are EAL memory, two copies each; compact ones live outside it (tables/lpm.h:
  // address space reserved, taken as routes need it, up to settings.fib_memory_mb).
  uint64_t fibs = 0;
  uint64_t max_routes = 0;
  unsigned dir24_8 = 0;
  bool core = false;
  for (const auto& t : config.tenants()) {
    const uint32_t routes = max_routes_of(t);
    if (uses_dir24_8(t)) {
      fibs += 2 * fib_bytes(tenant_fib_conf(routes), eal.page_size);
      max_routes += routes;
      dir24_8++;
    }
    core = core || t.core();
  }
  e.per_dir24_8_tenant = 2 * fib_bytes(tenant_fib_conf(default_max_routes), eal.page_size);
  add("tenant FIBs",
      std::to_string(config.tenants_size()) + (config.tenants_size() == 1 ? " tenant: " : " tenants: ") +
          std::to_string(dir24_8) + " DIR24_8 x 2 copies (" + std::to_string(max_routes) + " max_routes in all), " +
          std::to_string(config.tenants_size() - dir24_8) + " compact (outside EAL memory)",
      fibs);

  const uint32_t sessions = sessions_per_worker(settings.max_sessions, workers);
  const uint64_t nat = workers * nat_worker_bytes(sessions);
  if (core)
    add("session tables", per + " x " + std::to_string(sessions) + " sessions (settings.max_sessions)", nat);
  else
    e.core_sessions = nat;

  add("neighbours", std::to_string(max_neighbours) + " entries",
      hash_bytes(neighbour_index_shape) + allocation(sizeof(uint64_t) * (max_neighbours + 1)));
  add("next hops, counter bases", std::to_string(max_nexthops) + " next hops",
      allocation(sizeof(Nexthop) * (max_nexthops + 1)) + allocation(sizeof(Counters)));
  add("SAs", std::to_string(config.sas_size()) + " SAs, an index of " + std::to_string(max_sas),
      hash_bytes(sa_index_shape) + config.sas_size() * allocation(sizeof(SaState)));
  if (config.interfaces_size() || config.tunnels_size())
    add("interface index", "two while a transaction replaces it", 2 * hash_bytes(interface_index_shape));
  add("workers", per + ": counters, tx buffers, ARP queue, rings", workers * worker_bytes());
  if (ha_sync)
    add("HA sync rings",
        per + " x " + std::to_string(sync_out_ring_size) + " records out, " + std::to_string(sync_in_ring_size) +
            " in, " + std::to_string(sizeof(SyncRecord)) + " B each",
        workers * sync_worker_bytes());
  add("control rings", "ARP learning, RCU" + std::string(settings.exception_interface.empty() ? "" : ", exception TAP"),
      ring_bytes(sizeof(LearnedNeighbour), learned_ring_size) + allocation(rte_rcu_qsbr_get_memsize(workers)) +
          (settings.exception_interface.empty() ? 0 : ring_bytes(sizeof(void*), punt_ring_size)));
  add("port queues",
      std::to_string(config.ports_size()) + (config.ports_size() == 1 ? " port x " : " ports x ") + per +
          " (drivers' rings, up to " + std::to_string(port_descriptor_bytes) + " B a descriptor)",
      uint64_t(config.ports_size()) * workers * (rx_descriptors + tx_descriptors) * port_descriptor_bytes);
  // rte_pdump_init's memzone (so that dpdk-dumpcap can attach): statistics of every queue
  // of every possible port, rx and tx.
  add("rte_pdump", "dpdk-dumpcap's statistics, every port and queue",
      allocation(2 * RTE_MAX_ETHPORTS * RTE_MAX_QUEUES_PER_PORT * sizeof(struct rte_pdump_stats)));
  add("EAL and drivers", "their own, whatever the config", eal_base_bytes);

  // Room for what transactions add later: SAs, the interface index, a little fragmentation.
  const uint64_t headroom = std::max<uint64_t>(e.total / 10, 16 << 20);
  e.suggested_mb = unsigned((e.total + headroom + (1 << 20) - 1) >> 20);
  return e;
}

void print_estimate(FILE* out, const MemoryEstimate& e, const EalShape& eal) {
  fprintf(out, "memory (EAL -m), with %u worker%s and %s pages:\n", eal.workers, eal.workers == 1 ? "" : "s",
          eal.page_size >= (1 << 20) ? (std::to_string(eal.page_size >> 20) + " MiB").c_str()
                                     : (std::to_string(eal.page_size >> 10) + " KiB").c_str());
  for (const auto& item : e.items)
    fprintf(out, "  %-26s %9s MiB  %s\n", item.what.c_str(), mib(item.bytes).c_str(), item.detail.c_str());
  fprintf(out, "  %-26s %9s MiB\n", "total", mib(e.total).c_str());
  fprintf(out, "suggested: -m %u (the total and 10%%, at least 16 MiB, for what transactions add)\n", e.suggested_mb);
  fprintf(out, "each tenant more: a compact FIB, outside EAL memory (a DIR24_8 one: %s MiB)",
          mib(e.per_dir24_8_tenant).c_str());
  if (e.core_sessions) fprintf(out, "; a core tenant: %s MiB of session tables", mib(e.core_sessions).c_str());
  fprintf(out, "\n");
  if (eal.memory_mb && (uint64_t(eal.memory_mb) << 20) < e.total)
    fprintf(out, "-m %u is below the total: medix-dp would not start with it\n", eal.memory_mb);
}

EalShape eal_shape(int argc, char** argv) {
  EalShape eal;
  std::set<unsigned> lcores;
  bool given = false;
  try {
    lcores_in(argc, argv, lcores, given);
  } catch (const std::exception&) {  // not a list: EAL will say so
    given = false;
  }
  long count = given ? long(lcores.size()) : sysconf(_SC_NPROCESSORS_ONLN);
  eal.workers = unsigned(std::max(1L, count - 1));  // the first is the main lcore
  for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
    eal.no_huge = eal.no_huge || !strcmp(argv[i], "--no-huge");
    if (!strcmp(argv[i], "-m") && i + 1 < argc) eal.memory_mb = unsigned(atoi(argv[i + 1]));
  }
  eal.page_size = uint64_t(sysconf(_SC_PAGESIZE));
  if (!eal.no_huge) {
    eal.page_size = 2 << 20;
    std::ifstream meminfo("/proc/meminfo");
    std::string line;
    while (std::getline(meminfo, line))
      if (line.starts_with("Hugepagesize:")) eal.page_size = std::stoull(line.substr(13)) << 10;  // "2048 kB"
  }
  return eal;
}

}  // namespace medix::dp
