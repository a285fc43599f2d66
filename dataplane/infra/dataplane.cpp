#include "infra/dataplane.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_ring_elem.h>

#include "infra/pipeline.h"

namespace {

constexpr uint16_t rx_descriptors = 1024;
constexpr uint16_t tx_descriptors = 1024;

int worker_main(void* arg) {
  auto& w = *static_cast<Worker*>(arg);
  auto& dp = *static_cast<Dataplane*>(w.tables_owner);
  rte_rcu_qsbr_thread_online(dp.rcu, w.queue);
  rte_mbuf* pkts[burst_size];
  while (!dp.stopping.load(std::memory_order_relaxed)) {
    w.tables = dp.current.load(std::memory_order_acquire);
    for (uint16_t port = 0; port < w.tables->ports.size(); port++) {
      uint64_t start = rte_rdtsc();
      uint16_t n = rte_eth_rx_burst(w.tables->ports[port].port_id, w.queue, pkts, burst_size);
      if (!n) continue;
      uint64_t bytes = 0;
      for (uint16_t i = 0; i < n; i++) bytes += rte_pktmbuf_pkt_len(pkts[i]);
      auto& c = w.counters->ports[port];
      bump(c.rx_packets, n);
      bump(c.rx_bytes, bytes);
      StageStats& s = w.counters->stages[unsigned(Stage::rx)];
      bump(s.calls);
      bump(s.packets, n);
      bump(s.cycles, rte_rdtsc() - start);
      process_burst(w, port, pkts, n);
    }
    if (w.pending->count) {
      uint64_t start = rte_rdtsc();
      service_pending(w);
      StageStats& s = w.counters->stages[unsigned(Stage::arp_pending)];
      bump(s.calls);
      bump(s.cycles, rte_rdtsc() - start);
    }
    uint64_t start = rte_rdtsc();
    unsigned queued = 0;
    for (uint16_t port = 0; port < w.tables->ports.size(); port++) queued += w.tx[port].count;
    if (queued) {
      flush_tx(w);
      StageStats& s = w.counters->stages[unsigned(Stage::tx)];
      bump(s.calls);
      bump(s.packets, queued);
      bump(s.cycles, rte_rdtsc() - start);
    }
    rte_rcu_qsbr_quiescent(dp.rcu, w.queue);
  }
  for (uint32_t i = 0; i < w.pending->count; i++) rte_pktmbuf_free(w.pending->pkts[i]);
  w.pending->count = 0;
  rte_rcu_qsbr_thread_offline(dp.rcu, w.queue);
  return 0;
}

std::optional<std::string> setup_port(const PortEntry& p, uint16_t queues, rte_mempool* pool) {
  std::string who = "port \"" + p.name + "\" (" + p.device + ")";
  rte_eth_dev_info info{};
  if (int rc = rte_eth_dev_info_get(p.port_id, &info); rc != 0) return who + ": " + rte_strerror(-rc);
  if (info.max_rx_queues < queues || info.max_tx_queues < queues)
    return who + ": offers " + std::to_string(std::min(info.max_rx_queues, info.max_tx_queues)) +
           " queue pairs; medix-dp needs one per worker (" + std::to_string(queues) + ")";
  if (p.mtu > info.max_mtu)
    return who + ": MTU " + std::to_string(p.mtu) + " is above the device's " + std::to_string(info.max_mtu);

  rte_eth_conf conf{};
  conf.rxmode.mtu = p.mtu;
  if (queues > 1) {
    conf.rxmode.mq_mode = RTE_ETH_MQ_RX_RSS;
    conf.rx_adv_conf.rss_conf.rss_hf =
        (RTE_ETH_RSS_IP | RTE_ETH_RSS_TCP | RTE_ETH_RSS_UDP) & info.flow_type_rss_offloads;
  }
  if (info.tx_offload_capa & RTE_ETH_TX_OFFLOAD_MULTI_SEGS) conf.txmode.offloads |= RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
  if (int rc = rte_eth_dev_configure(p.port_id, queues, queues, &conf); rc != 0)
    return who + ": cannot configure: " + rte_strerror(-rc);
  uint16_t rxd = rx_descriptors, txd = tx_descriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(p.port_id, &rxd, &txd);
  unsigned socket = rte_eth_dev_socket_id(p.port_id) < 0 ? 0 : unsigned(rte_eth_dev_socket_id(p.port_id));
  for (uint16_t q = 0; q < queues; q++) {
    if (int rc = rte_eth_rx_queue_setup(p.port_id, q, rxd, socket, nullptr, pool); rc != 0)
      return who + ": rx queue " + std::to_string(q) + ": " + rte_strerror(-rc);
    if (int rc = rte_eth_tx_queue_setup(p.port_id, q, txd, socket, nullptr); rc != 0)
      return who + ": tx queue " + std::to_string(q) + ": " + rte_strerror(-rc);
  }
  if (p.promiscuous) rte_eth_promiscuous_enable(p.port_id);
  if (int rc = rte_eth_dev_start(p.port_id); rc != 0) return who + ": cannot start: " + rte_strerror(-rc);
  return std::nullopt;
}

}  // namespace

std::optional<std::string> Dataplane::start(std::unique_ptr<Tables> t, const Settings& s,
                                            const std::vector<unsigned>& worker_lcores) {
  tables = std::move(t);
  settings = s;
  tsc_hz = rte_get_tsc_hz();
  auto queues = uint16_t(worker_lcores.size());
  unsigned socket = rte_socket_id();

  uint32_t max_mtu = 1500;
  for (const auto& p : tables->ports) max_mtu = std::max<uint32_t>(max_mtu, p.mtu);
  // Room for a whole frame of the largest MTU, with two VLAN tags.
  uint32_t data_room =
      std::max<uint32_t>(RTE_MBUF_DEFAULT_DATAROOM, max_mtu + RTE_ETHER_HDR_LEN + 8 + RTE_ETHER_CRC_LEN) +
      RTE_PKTMBUF_HEADROOM;
  unsigned per_worker = unsigned(tables->ports.size()) * (rx_descriptors + tx_descriptors + 2 * burst_size) +
                        max_pending + 4 * burst_size;
  unsigned mbufs = std::max(8191u, per_worker * queues + 2048);
  pool = rte_pktmbuf_pool_create("packets", mbufs, 256, sizeof(PacketMeta), uint16_t(data_room), int(socket));
  indirect_pool = rte_pktmbuf_pool_create("indirect", 4095, 256, sizeof(PacketMeta), 0, int(socket));
  if (!pool || !indirect_pool)
    return "cannot allocate " + std::to_string(mbufs) + " packet buffers of " + std::to_string(data_room) +
           " bytes: " + rte_strerror(rte_errno) + " (give EAL more memory with -m)";
  learned = rte_ring_create_elem("learned", sizeof(LearnedNeighbour), 4096, int(socket), RING_F_SC_DEQ);
  size_t rcu_size = rte_rcu_qsbr_get_memsize(queues);
  rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc("rcu", rcu_size, RTE_CACHE_LINE_SIZE));
  if (!learned || !rcu || rte_rcu_qsbr_init(rcu, queues) != 0) return "cannot allocate the control rings";

  for (const auto& p : tables->ports)
    if (auto error = setup_port(p, queues, pool)) return error;

  current.store(tables.get(), std::memory_order_release);
  for (uint16_t q = 0; q < queues; q++) {
    unsigned lcore = worker_lcores[q];
    unsigned wsocket = rte_lcore_to_socket_id(lcore);
    auto* w = new (rte_zmalloc_socket("worker", sizeof(Worker), RTE_CACHE_LINE_SIZE, int(wsocket))) Worker();
    w->lcore = lcore;
    w->queue = q;
    w->tables = tables.get();
    w->tables_owner = this;
    w->settings = settings;
    w->pool = pool;
    w->indirect_pool = indirect_pool;
    w->learned = learned;
    w->tsc_hz = tsc_hz;
    w->icmp_tokens = settings.icmp_burst;
    w->icmp_tokens_at = rte_rdtsc();
    w->counters =
        static_cast<Counters*>(rte_zmalloc_socket("counters", sizeof(Counters), RTE_CACHE_LINE_SIZE, int(wsocket)));
    w->tx = static_cast<TxBuffer*>(
        rte_zmalloc_socket("tx", sizeof(TxBuffer) * max_ports, RTE_CACHE_LINE_SIZE, int(wsocket)));
    w->pending = static_cast<PendingQueue*>(
        rte_zmalloc_socket("pending", sizeof(PendingQueue), RTE_CACHE_LINE_SIZE, int(wsocket)));
    if (!w->counters || !w->tx || !w->pending) return "cannot allocate worker state";
    rte_rcu_qsbr_thread_register(rcu, q);
    workers.push_back(w);
  }
  for (auto* w : workers)
    if (rte_eal_remote_launch(worker_main, w, w->lcore) != 0)
      return "cannot launch a worker on lcore " + std::to_string(w->lcore);
  return std::nullopt;
}

unsigned Dataplane::run_control() {
  LearnedNeighbour batch[64];
  unsigned total = 0;
  unsigned n;
  while ((n = rte_ring_sc_dequeue_burst_elem(learned, batch, sizeof(LearnedNeighbour), 64, nullptr)) > 0) {
    for (unsigned i = 0; i < n; i++) {
      rte_ether_addr mac;
      memcpy(mac.addr_bytes, batch[i].mac, 6);
      tables->neighbours.set(batch[i].interface, batch[i].address, mac, false);
    }
    total += n;
  }
  return total;
}

void Dataplane::stop() {
  stopping.store(true);
  rte_eal_mp_wait_lcore();
  if (!tables) return;
  for (auto* w : workers) flush_tx(*w);
  for (const auto& p : tables->ports) {
    rte_eth_dev_stop(p.port_id);
    rte_eth_dev_close(p.port_id);
  }
}

Counters Dataplane::totals() const {
  Counters sum{};
  auto add = [](uint64_t* to, const uint64_t* from, size_t count) {
    for (size_t i = 0; i < count; i++) to[i] += read(from[i]);
  };
  for (const auto* w : workers) {
    // Counters is made of uint64_t only: sum it word by word.
    static_assert(sizeof(Counters) % sizeof(uint64_t) == 0);
    add(reinterpret_cast<uint64_t*>(&sum), reinterpret_cast<const uint64_t*>(w->counters),
        sizeof(Counters) / sizeof(uint64_t));
  }
  return sum;
}
