// What every stage does with a packet it is done with: drop it (counted by reason and
// tenant), send it (buffered per port), originate it (routed in the next pass) or hand it to
// the worker that owns its state.
#include "infra/worker.h"

#include <rte_ethdev.h>

namespace medix::dp {

void drop(Worker& w, rte_mbuf* m, Drop reason) {
  if (w.capture) [[unlikely]]
    capture(w, CapturePoint::drop, capture_none, &m, 1, reason);
  if (w.trace) [[unlikely]]
    trace_drop(w, m, reason);
  bump(w.counters->drops[unsigned(reason)]);
  uint16_t tenant = meta(m).tenant;
  if (tenant != no_tenant) bump(w.counters->tenants[tenant].drops);
  rte_pktmbuf_free(m);
}

// Sends a port's buffered packets; what the tx queue does not take is dropped as tx_full.
void tx_burst(Worker& w, uint16_t port, TxBuffer& b) {
  uint16_t count = b.count;
  uint64_t bytes = b.bytes;
  b.clear();
  if (w.capture) [[unlikely]]
    capture(w, CapturePoint::tx, port, b.pkts, count);
  if (w.trace) [[unlikely]]
    trace_tx(w, port, b.pkts, count);
  uint16_t sent = rte_eth_tx_burst(w.tables->ports[port].port_id, w.queue, b.pkts, count);
  auto& c = w.counters->ports[port];
  if (sent != count) [[unlikely]]  // what the queue did not take is still ours to read
    for (uint16_t i = sent; i < count; i++) bytes -= rte_pktmbuf_pkt_len(b.pkts[i]);
  bump(c.tx_packets, sent);
  bump(c.tx_bytes, bytes);
  if (sent == count) return;
  bump(c.tx_dropped, count - sent);
  for (uint16_t i = sent; i < count; i++) drop(w, b.pkts[i], Drop::tx_full);
}

void queue_shaped(Worker& w, rte_mbuf* m) {
  Batch& b = *w.to_shape;
  // The pipeline takes the batch after each burst of ip_output: full only when fragmenting.
  if (b.full()) {
    drop(w, m, Drop::shaper_queue_full);
    return;
  }
  b.pkts[b.n++] = m;
}

void flush_tx(Worker& w) {
  for (uint16_t port = 0; port < w.tables->ports.size(); port++)
    if (w.tx[port].count) tx_burst(w, port, w.tx[port]);
}

void originate(Worker& w, rte_mbuf* m) {
  Batch& b = *w.originated;
  if (b.full()) {
    drop(w, m, Drop::no_buffer);
    return;
  }
  b.pkts[b.n++] = m;
}

void hand_off(Worker& w, uint16_t queue, rte_mbuf* m, Handoff why) {
  meta(m).handoff = why;
  if (rte_ring_mp_enqueue(w.handoff[queue], m) != 0) drop(w, m, Drop::handoff_full);
}

void hand_off_burst(Worker& w, uint16_t queue, rte_mbuf** pkts, uint16_t n, Handoff why) {
  for (uint16_t i = 0; i < n; i++) meta(pkts[i]).handoff = why;
  unsigned done = rte_ring_mp_enqueue_burst(w.handoff[queue], reinterpret_cast<void**>(pkts), n, nullptr);
  for (uint16_t i = uint16_t(done); i < n; i++) drop(w, pkts[i], Drop::handoff_full);
}

}  // namespace medix::dp
