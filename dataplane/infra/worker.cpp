// The worker's pipeline over one burst, and the small shared pieces every stage uses:
// drop (count by reason), send (buffer per port) and flush.
#include "infra/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "infra/pipeline.h"

void drop(Worker& w, rte_mbuf* m, Drop reason) {
  bump(w.counters->drops[unsigned(reason)]);
  uint16_t tenant = meta(m).tenant;
  if (tenant != no_tenant) bump(w.counters->tenants[tenant].drops);
  rte_pktmbuf_free(m);
}

void send(Worker& w, uint16_t port, rte_mbuf* m) {
  const PortEntry& p = w.tables->ports[port];
  if (!p.live || p.admin_down) {
    drop(w, m, Drop::port_down);
    return;
  }
  TxBuffer& b = w.tx[port];
  b.pkts[b.count++] = m;
  if (b.count == std::size(b.pkts)) {
    // Full: push it out now rather than wait for the end of the burst.
    uint16_t saved = b.count;
    b.count = 0;
    uint16_t sent = rte_eth_tx_burst(w.tables->ports[port].port_id, w.queue, b.pkts, saved);
    auto& c = w.counters->ports[port];
    bump(c.tx_packets, sent);
    for (uint16_t i = 0; i < sent; i++) bump(c.tx_bytes, rte_pktmbuf_pkt_len(b.pkts[i]));
    for (uint16_t i = sent; i < saved; i++) {
      bump(c.tx_dropped);
      bump(w.counters->drops[unsigned(Drop::tx_full)]);
      rte_pktmbuf_free(b.pkts[i]);
    }
  }
}

void flush_tx(Worker& w) {
  for (uint16_t port = 0; port < w.tables->ports.size(); port++) {
    TxBuffer& b = w.tx[port];
    if (!b.count) continue;
    uint16_t sent = rte_eth_tx_burst(w.tables->ports[port].port_id, w.queue, b.pkts, b.count);
    auto& c = w.counters->ports[port];
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < sent; i++) bytes += rte_pktmbuf_pkt_len(b.pkts[i]);
    bump(c.tx_packets, sent);
    bump(c.tx_bytes, bytes);
    for (uint16_t i = sent; i < b.count; i++) {
      bump(c.tx_dropped);
      bump(w.counters->drops[unsigned(Drop::tx_full)]);
      rte_pktmbuf_free(b.pkts[i]);
    }
    b.count = 0;
  }
}

namespace {

// Adds the cycles since `start` to a stage and returns now, the next stage's start.
inline uint64_t account(Worker& w, Stage stage, uint64_t start, uint16_t packets) {
  uint64_t now = rte_rdtsc();
  StageStats& s = w.counters->stages[unsigned(stage)];
  bump(s.calls);
  bump(s.packets, packets);
  bump(s.cycles, now - start);
  return now;
}

}  // namespace

void process_burst(Worker& w, uint16_t port, rte_mbuf** pkts, uint16_t n) {
  uint64_t t = rte_rdtsc();
  rte_mbuf *ip[burst_size], *arp[burst_size], *fwd[burst_size], *local[burst_size];
  uint16_t n_ip = 0, n_arp = 0, n_fwd = 0, n_local = 0;

  l2_input(w, port, pkts, n, ip, n_ip, arp, n_arp);
  t = account(w, Stage::l2_input, t, n);
  if (n_arp) {
    arp_input(w, arp, n_arp);
    t = account(w, Stage::arp, t, n_arp);
  }
  if (n_ip) {
    uint16_t valid = ip_input(w, ip, n_ip);
    t = account(w, Stage::ip_input, t, n_ip);
    ip_lookup(w, ip, valid, fwd, n_fwd, local, n_local);
    t = account(w, Stage::ip_lookup, t, valid);
  }
  if (n_local) {
    local_input(w, local, n_local);
    t = account(w, Stage::local, t, n_local);
  }
  if (n_fwd) {
    ip_output(w, fwd, n_fwd);
    t = account(w, Stage::ip_output, t, n_fwd);
  }
}
