#include "runtime/dataplane.h"

#include "ha/reserve.h"
#include "ha/sync.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_ring_elem.h>

#include <chrono>
#include <thread>
#include <utility>

#include "common/address.h"
#include "common/log.h"
#include "infra/accounting.h"
#include "ip/ip.h"
#include "ipsec/esp.h"
#include "nat/nat.h"
#include "nat/sync.h"
#include "pipeline/pipeline.h"
#include "runtime/memory.h"
#include "runtime/nic.h"

namespace medix::dp {

namespace {

uint64_t steady_ns() {
  return uint64_t(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
          .count());
}

// Whether a writer waits for a grace period: the QSBR token moved past this worker's last
// quiescent state.
bool grace_wanted(const Worker& w) {
  return __atomic_load_n(&w.rcu->token, __ATOMIC_ACQUIRE) !=
         __atomic_load_n(&w.rcu->qsbr_cnt[w.queue].cnt, __ATOMIC_RELAXED);
}

int worker_main(void* arg) {
  auto& w = *static_cast<Worker*>(arg);
  rte_rcu_qsbr_thread_online(w.rcu, w.queue);
  rte_mbuf* pkts[burst_size];
  unsigned n_handoff;
  uint64_t loop_start = rte_rdtsc();
  while (!w.stopping->load(std::memory_order_relaxed)) {
    w.tables = w.published->load(std::memory_order_acquire);
    w.capture = w.capture_published->load(std::memory_order_acquire);
    w.trace = w.trace_published->load(std::memory_order_acquire);
    w.timing = w.timing_published->load(std::memory_order_relaxed);
    w.now = loop_start;
    if (w.now - w.pool_checked_at > w.tsc_hz / 1000) {  // the caches of every lcore: not per packet
      w.pool_checked_at = w.now;
      w.pool_low = rte_mempool_avail_count(w.pool) < w.pool->size / buffer_guard_low;
    }
    bool work = false;  // anything received, handed over, waiting or sent this iteration
    uint64_t submitted = esp_submitted(w);
    nat_sweep(w);
    if (w.sync) [[unlikely]]
      sync_install(w);
    for (uint16_t port = 0; port < w.tables->ports.size(); port++) {
      const PortEntry& p = w.tables->ports[port];
      if (!p.live || p.admin_down) continue;
      uint64_t start = stage_clock(w);
      uint16_t n = rte_eth_rx_burst(p.port_id, w.queue, pkts, burst_size);
      if (!n) continue;
      work = true;
      uint64_t bytes = 0;
      for (uint16_t i = 0; i < n; i++) bytes += rte_pktmbuf_pkt_len(pkts[i]);
      auto& c = w.counters->ports[port];
      bump(c.rx_packets, n);
      bump(c.rx_bytes, bytes);
      account(w, Stage::rx, start, n);
      process_burst(w, port, pkts, n);
    }
    if (n_handoff = rte_ring_sc_dequeue_burst(w.handoff[w.queue], reinterpret_cast<void**>(pkts), burst_size, nullptr);
        n_handoff) {
      work = true;
      process_handoff(w, pkts, uint16_t(n_handoff));
    }
    // CBC jobs stay in the lanes while bursts keep coming; a loop that submitted none
    // completes them (a packet waits at most one loop, or until 255 jobs came after it), and
    // so does one in which a writer waits for a grace period (below).
    if (esp_in_flight(w) || esp_done(w)) {
      work = true;
      process_crypto(w, esp_submitted(w) == submitted || grace_wanted(w));
    }
    if (w.pending->count) {
      work = true;
      uint64_t start = stage_clock(w);
      service_pending(w);
      account(w, Stage::arp_pending, start, 0);
      process_originated(w);
    }
    if (process_shaped(w)) work = true;
    uint64_t start = stage_clock(w);
    unsigned queued = 0;
    for (uint16_t port = 0; port < w.tables->ports.size(); port++) queued += w.tx[port].count;
    if (queued) {
      flush_tx(w);
      account(w, Stage::tx, start, queued);
    }
    // Between bursts this worker holds no reference into the tables: a writer waiting for a
    // grace period may go on.
    // Jobs in flight refer to SAs and tunnels of the tables they were submitted under: no
    // quiescent state while there are any.
    if (!esp_in_flight(w)) rte_rcu_qsbr_quiescent(w.rcu, w.queue);
    // One stamp a loop: this iteration's end is the next one's start.
    uint64_t loop_end = rte_rdtsc();
    Counters& c = *w.counters;
    bump(c.loops);
    bump(c.loop_cycles, loop_end - loop_start);
    if (work || queued)
      bump(c.busy_cycles, loop_end - loop_start);
    else
      bump(c.empty_polls);
    loop_start = loop_end;
  }
  esp_discard(w);
  for (uint32_t i = 0; i < w.pending->count; i++) rte_pktmbuf_free(w.pending->pkts[i]);
  w.pending->count = 0;
  while (
      (n_handoff = rte_ring_sc_dequeue_burst(w.handoff[w.queue], reinterpret_cast<void**>(pkts), burst_size, nullptr)))
    rte_pktmbuf_free_bulk(pkts, n_handoff);
  rte_rcu_qsbr_thread_offline(w.rcu, w.queue);
  return 0;
}

}  // namespace

std::optional<std::string> Dataplane::start(const Settings& s, uint32_t mtu,
                                            const std::vector<unsigned>& worker_lcores) {
  settings = s;
  cleared.totals = std::make_unique<Counters>();
  cleared.since_ns =
      uint64_t(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
                   .count());
  cleared.lcores.assign(worker_lcores.size(), LcoreStats{});
  max_mtu = std::max<uint32_t>(1500, mtu);
  tsc_hz = rte_get_tsc_hz();
  auto queues = uint16_t(worker_lcores.size());
  unsigned socket = rte_socket_id();

  const PacketPool p = packet_pool(settings, queues, max_mtu);
  if (settings.packet_buffers && settings.packet_buffers < p.needed)
    fprintf(stderr, "medix-dp: settings.packet_buffers %u is below what %u worker(s) need (%u): using %u\n",
            settings.packet_buffers, unsigned(queues), p.needed, p.needed);
  pool = rte_pktmbuf_pool_create("packets", p.buffers, packet_pool_cache, p.priv_size, p.data_room, int(socket));
  indirect_pool =
      rte_pktmbuf_pool_create("indirect", indirect_buffers, packet_pool_cache, sizeof(PacketMeta), 0, int(socket));
  if (!pool || !indirect_pool)
    return "cannot allocate " + std::to_string(p.buffers) + " packet buffers of " + std::to_string(p.data_room) +
           " bytes: " + rte_strerror(rte_errno) + ": " + more_memory;
  learned = rte_ring_create_elem("learned", sizeof(LearnedNeighbour), learned_ring_size, int(socket), RING_F_SC_DEQ);
  vrrp_rx = rte_ring_create("vrrp", vrrp_ring_size, int(socket), RING_F_SC_DEQ);
  size_t rcu_size = rte_rcu_qsbr_get_memsize(queues);
  rcu = static_cast<rte_rcu_qsbr*>(rte_zmalloc("rcu", rcu_size, RTE_CACHE_LINE_SIZE));
  if (!learned || !vrrp_rx || !rcu || rte_rcu_qsbr_init(rcu, queues) != 0)
    return std::string("cannot allocate the control rings: ") + more_memory;

  if (!settings.exception_interface.empty())
    if (auto e = exception.open(settings.exception_interface, socket)) return e;

  Committer::Params params;
  params.rcu = rcu;
  params.queues = queues;
  params.pool = pool;
  params.socket = socket;
  params.max_mtu = max_mtu;
  params.totals = [this] { return totals(); };
  params.max_sessions = settings.max_sessions;
  if (settings.fib_memory_mb) params.fib_plies = Lpm::plies_in(settings.fib_memory_mb);
  if (sa_reserve)
    params.sa_start = [r = sa_reserve](uint64_t tunnel, uint32_t spi) { return r->start_of(tunnel, spi); };
  if (ha_sync)
    params.sa_peer_start = [this](uint64_t tunnel, uint32_t spi) -> std::optional<uint64_t> {
      // Before the sync thread starts (the config file's SAs) as any SA: nothing is held yet.
      return ha ? ha->peer_sa_start(tunnel, spi) : std::optional<uint64_t>(0);
    };
  if (auto e = controller.init(params)) return e;

  for (uint16_t q = 0; q < queues; q++) {
    std::string name = "handoff" + std::to_string(q);
    handoff.push_back(rte_ring_create(name.c_str(), handoff_ring_size, int(socket), RING_F_SC_DEQ));
    if (!handoff.back()) return std::string("cannot allocate the hand-off rings: ") + more_memory;
  }
  for (uint16_t q = 0; q < queues; q++) {
    unsigned lcore = worker_lcores[q];
    int wsocket = int(rte_lcore_to_socket_id(lcore));
    auto* w = new (rte_zmalloc_socket("worker", sizeof(Worker), RTE_CACHE_LINE_SIZE, wsocket)) Worker();
    w->lcore = lcore;
    w->queue = q;
    w->published = &controller.published();
    w->tables = w->published->load();
    w->stopping = &stopping;
    w->capture_published = &capture;
    w->trace_published = &trace;
    w->timing_published = &stage_timing;
    w->rcu = rcu;
    w->settings = settings;
    w->pool = pool;
    w->indirect_pool = indirect_pool;
    w->learned = learned;
    w->tsc_hz = tsc_hz;
    w->icmp_tokens = settings.icmp_burst;
    w->timeouts[timeout_tcp_established] = tsc_hz * settings.tcp_established_timeout_s;
    w->timeouts[timeout_tcp_transitory] = tsc_hz * settings.tcp_transitory_timeout_s;
    w->timeouts[timeout_udp] = tsc_hz * settings.udp_timeout_s;
    w->timeouts[timeout_icmp] = tsc_hz * settings.icmp_timeout_s;
    w->timeouts[timeout_other] = tsc_hz * settings.other_timeout_s;
    w->icmp_tokens_at = rte_rdtsc();
    w->counters =
        static_cast<Counters*>(rte_zmalloc_socket("counters", sizeof(Counters), RTE_CACHE_LINE_SIZE, wsocket));
    w->tx =
        static_cast<TxBuffer*>(rte_zmalloc_socket("tx", sizeof(TxBuffer) * max_ports, RTE_CACHE_LINE_SIZE, wsocket));
    w->pending =
        static_cast<PendingQueue*>(rte_zmalloc_socket("pending", sizeof(PendingQueue), RTE_CACHE_LINE_SIZE, wsocket));
    w->originated = static_cast<Batch*>(rte_zmalloc_socket("originated", sizeof(Batch), RTE_CACHE_LINE_SIZE, wsocket));
    w->to_shape = static_cast<Batch*>(rte_zmalloc_socket("to_shape", sizeof(Batch), RTE_CACHE_LINE_SIZE, wsocket));
    w->neighbour_cache = static_cast<NeighbourCache*>(
        rte_zmalloc_socket("neighbour_cache", sizeof(NeighbourCache), RTE_CACHE_LINE_SIZE, wsocket));
    w->shares = static_cast<Shares*>(rte_zmalloc_socket("shares", sizeof(Shares), RTE_CACHE_LINE_SIZE, wsocket));
    w->handoff = handoff.data();
    w->punt = exception.is_open() ? exception.from_workers() : nullptr;
    w->vrrp = vrrp_rx;
    std::string events = "sa_events" + std::to_string(q);
    w->sa_events = rte_ring_create_elem(events.c_str(), sizeof(SaEventMessage), sa_event_ring_size, wsocket,
                                        RING_F_SP_ENQ | RING_F_SC_DEQ);
    w->ha_standby = &ha_standby;
    if (ha_sync) {
      // Sessions made and ended, to the sync thread; records to install, from it (a bulk
      // resync fills this one fastest).
      w->sync = new (rte_zmalloc_socket("sync", sizeof(SyncWorker), RTE_CACHE_LINE_SIZE, wsocket)) SyncWorker();
      std::string out = "sync_out" + std::to_string(q), in = "sync_in" + std::to_string(q);
      w->sync->out = rte_ring_create_elem(out.c_str(), sizeof(SyncRecord), sync_out_ring_size, wsocket,
                                          RING_F_SP_ENQ | RING_F_SC_DEQ);
      w->sync->in = rte_ring_create_elem(in.c_str(), sizeof(SyncRecord), sync_in_ring_size, wsocket,
                                         RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (!w->sync->out || !w->sync->in) return std::string("cannot allocate the HA sync rings: ") + more_memory;
    }
    w->mgr = alloc_mb_mgr(0);
    if (w->mgr) init_mb_mgr_auto(w->mgr, nullptr);
    w->esp_jobs = esp_jobs_create();
    if (!w->counters || !w->tx || !w->pending || !w->originated || !w->to_shape || !w->neighbour_cache || !w->shares ||
        !w->sa_events || !w->mgr || !w->esp_jobs)
      return std::string("cannot allocate worker state: ") + more_memory;
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
    controller.learn(batch, n);
    total += n;
  }
  if (exception.is_open())
    total += controller.read(
        [&](auto&, auto& committer, uint64_t) { return exception.poll(*committer.current(), pool, handoff[0]); });
  // VRRP's timers need the loop's millisecond, not a second: its adverts may be 10 ms apart.
  controller.read([&](auto&, auto& committer, uint64_t) {
    if (committer.current()) vrrp.poll(*committer.current(), vrrp_rx, vrrp_io(), steady_ns());
    return 0;
  });
  SaEventMessage events[64];
  for (auto* w : workers)
    while ((n = rte_ring_sc_dequeue_burst_elem(w->sa_events, events, sizeof(SaEventMessage), 64, nullptr)) > 0) {
      controller.sa_events(events, n, tsc_hz);
      total += n;
    }
  report_arp_failures();
  return total;
}

void Dataplane::report_arp_failures() {
  auto now = std::chrono::steady_clock::now();
  if (now - arp_reported_ < std::chrono::seconds(1)) return;
  arp_reported_ = now;
  arp_timeouts_seen_.resize(workers.size());
  for (size_t q = 0; q < workers.size(); q++) {
    uint64_t timeouts = load_counter(workers[q]->counters->drops[unsigned(Drop::arp_timeout)]);
    uint64_t dropped = timeouts - std::exchange(arp_timeouts_seen_[q], timeouts);
    if (!dropped) continue;
    uint64_t last = __atomic_load_n(&workers[q]->arp_failed, __ATOMIC_RELAXED);
    auto slot = uint16_t(last >> 32);
    std::string where = controller.read([&](auto&, auto& committer, uint64_t) -> std::string {
      const Tables& t = *committer.current();
      if (slot >= t.interfaces.size() || t.interfaces[slot].name.empty()) return "a deleted interface";
      const auto& i = t.interfaces[slot];
      std::string tenant = i.tenant < t.tenants.size() ? t.tenants[i.tenant].name : "";
      return "interface \"" + i.name + "\" (tenant \"" + tenant + "\")";
    });
    medix::common::log(medix::common::LogLevel::warning,
                       "medix-dp: ARP: %s on %s did not answer in %u ms: %lu packets dropped (worker %zu, every "
                       "next hop, since the last such line)",
                       medix::common::format_ipv4(uint32_t(last)).c_str(), where.c_str(), settings.arp_timeout_ms,
                       (unsigned long)dropped, q);
  }
}

vrrp::Io Dataplane::vrrp_io() {
  vrrp::Io io;
  io.ha_standby = &ha_standby;
  io.ha_group = &ha_vrrp_group;
  io.ha_draining = &ha_draining;
  io.set_role = [this](bool to_standby, const std::string& why) {
    ha_roles.set(ha_standby, to_standby, ha::Cause::vrrp, why);
  };
  io.pool = pool;
  io.to_worker = handoff.empty() ? nullptr : handoff[0];
  io.link_up = [](const PortEntry& p) {
    if (!p.live || p.admin_down) return false;
    return read_link_up(p.port_id);
  };
  return io;
}

void Dataplane::stop() {
  // Masters say priority 0 (RFC 5798 6.4.3) so that backups take over after their skew; the
  // workers get a moment to send it.
  bool resigned = controller.read([&](auto&, auto& committer, uint64_t) {
    if (!committer.current() || committer.current()->vrrp.instances.empty() || handoff.empty()) return false;
    vrrp.resign(*committer.current(), vrrp_io());
    return true;
  });
  if (resigned) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  stopping.store(true);
  rte_eal_mp_wait_lcore();
  for (auto* w : workers) {
    // The generation published now: the one this worker last read may be reclaimed already
    // (it was quiescent), and its shapers' queues are in the newest one unless they changed.
    w->tables = w->published->load(std::memory_order_acquire);
    drop_shaped_on_stop(*w);
    flush_tx(*w);
    free_mb_mgr(w->mgr);  // with esp_jobs, the only worker state not in DPDK's memory: LeakSanitizer sees it
    w->mgr = nullptr;
    esp_jobs_destroy(w->esp_jobs);
    w->esp_jobs = nullptr;
  }
  controller.stop_ports();
}

Counters Dataplane::totals() const {
  Counters sum{};
  auto add = [](uint64_t* to, const uint64_t* from, size_t count) {
    for (size_t i = 0; i < count; i++) to[i] += load_counter(from[i]);
  };
  for (const auto* w : workers) {
    // Counters is made of uint64_t only: sum it word by word.
    static_assert(sizeof(Counters) % sizeof(uint64_t) == 0);
    add(reinterpret_cast<uint64_t*>(&sum), reinterpret_cast<const uint64_t*>(w->counters),
        sizeof(Counters) / sizeof(uint64_t));
  }
  return sum;
}

}  // namespace medix::dp
