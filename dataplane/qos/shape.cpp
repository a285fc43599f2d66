// Egress shaping: each shaped interface's packets wait in their class's queue on the worker
// that routed them, and the worker's loop sends what the contract and the classes allow
// (docs/qos.md). Only that worker touches its queues: no locks, no atomics but the counters.
#include <rte_ip.h>

#include <algorithm>

#include "infra/checksum.h"
#include "qos/qos.h"

namespace medix::dp {
namespace {

// DRR's quantum for weight 1: one full-sized frame.
constexpr int64_t quantum = 1514;

bool empty(const qos::ClassQueue& q) { return q.head == q.tail; }
rte_mbuf* head(const qos::ClassQueue& q) { return q.ring[q.head & q.mask]; }

// Where the packets a round sends go: a port's tx queue, or (a tunnel's shaper) `pkts`, for
// esp_output.
struct Out {
  rte_mbuf** pkts = nullptr;
  uint16_t n = 0;
};

// Takes `len` from the contract's bucket and sends the class's head packet.
void dequeue(Worker& w, const qos::Shaper& s, qos::ShaperShare& share, qos::ClassQueue& q, uint32_t len, uint64_t now,
             Out& out) {
  rte_mbuf* m = head(q);
  __atomic_store_n(&q.head, q.head + 1, __ATOMIC_RELAXED);  // depth() is read by the API too
  if (q.head == q.tail) q.idle_since = now;                 // WRED's average decays from here
  share.tokens -= len;
  bump(q.sent_packets);
  bump(q.sent_bytes, len);
  if (out.pkts)
    out.pkts[out.n++] = m;
  else
    send(w, s.port, m);
}

// The buckets, refilled for the time since the last call.
void refill(const qos::Shaper& s, qos::ShaperShare& share, uint64_t now) {
  if (!share.at) {  // full at the start, as the rest of the buckets
    share.at = now;
    share.tokens = s.burst;
    for (size_t c = 0; c < s.classes.size(); c++) share.classes[c].tokens = s.classes[c].burst;
    return;
  }
  double dt = double(now - share.at);
  share.at = now;
  share.tokens = std::min(s.burst, share.tokens + dt * s.rate);
  for (size_t c = 0; c < s.classes.size(); c++)
    if (s.classes[c].rate > 0)
      share.classes[c].tokens = std::min(s.classes[c].burst, share.classes[c].tokens + dt * s.classes[c].rate);
}

unsigned schedule_one(Worker& w, const qos::Shaper& s, qos::ShaperShare& share, uint64_t now, Out& out) {
  refill(s, share, now);
  unsigned budget = burst_size, sent = 0;
  const auto n = uint16_t(s.classes.size());
  // A bucket holds at most `burst`: a longer packet (a tunnel's, larger than its MTU with DF
  // clear, fragmented by esp_output) goes when a bucket is full, and leaves it owing the rest.
  auto holds = [&](double tokens, uint32_t len) { return tokens >= std::min<double>(len, s.burst); };
  auto fits = [&](uint32_t len) { return holds(share.tokens, len); };
  // 1. Strict priority, each class within its cap.
  for (uint16_t c = 0; c < n && budget; c++) {
    if (!s.classes[c].priority) continue;
    qos::ClassQueue& q = share.classes[c];
    while (budget && !empty(q)) {
      uint32_t len = rte_pktmbuf_pkt_len(head(q));
      if (!fits(len) || !holds(q.tokens, len)) break;
      q.tokens -= len;
      dequeue(w, s, share, q, len, now, out);
      budget--, sent++;
    }
  }
  // 2. The guarantees: a packet a class in turn while its bucket holds it.
  for (bool progress = true; budget && progress;) {
    progress = false;
    for (uint16_t i = 0; i < n && budget; i++) {
      uint16_t c = uint16_t((share.next_rr + i) % n);
      qos::ClassQueue& q = share.classes[c];
      if (s.classes[c].priority || s.classes[c].rate <= 0 || empty(q)) continue;
      uint32_t len = rte_pktmbuf_pkt_len(head(q));
      if (!fits(len)) return sent;  // the contract is spent: nothing else may go either
      if (!holds(q.tokens, len)) continue;
      q.tokens -= len;
      dequeue(w, s, share, q, len, now, out);
      budget--, sent++;
      progress = true;
      share.next_rr = uint16_t((c + 1) % n);
    }
  }
  // 3. What the contract leaves over, by weight (deficit round robin).
  for (unsigned visits = 0; budget && visits <= 2u * n;) {
    uint16_t c = share.next_drr;
    qos::ClassQueue& q = share.classes[c];
    auto next = [&] {
      share.next_drr = uint16_t((c + 1) % n);
      share.topped = false;
      visits++;
    };
    if (s.classes[c].priority || !s.classes[c].weight || empty(q)) {
      q.deficit = 0;
      next();
      continue;
    }
    if (!share.topped) {
      q.deficit += int64_t(s.classes[c].weight) * quantum;
      share.topped = true;
    }
    uint32_t len = rte_pktmbuf_pkt_len(head(q));
    if (q.deficit < len) {
      next();
      continue;
    }
    if (!fits(len)) break;
    q.deficit -= len;
    dequeue(w, s, share, q, len, now, out);
    budget--, sent++;
    visits = 0;
  }
  return sent;
}

// rte_red_enqueue_empty, for a packet that finds the queue empty after `frames` could have
// been sent: the average decays by (1 - wq)^frames; never a drop. Its own factor in rte_red.h
// shifts by -1 (undefined behaviour) when the idle time is short (under 342 frames at weight
// 9), so this computes it with the same tables, with that case (2^0) as it means.
void red_idle(const rte_red_config& cfg, rte_red& red, double frames) {
  red.count++;
  if (frames >= RTE_RED_2POW16) {
    red.avg = 0;
    return;
  }
  uint32_t n = uint32_t(frames) * rte_red_log2_1_minus_Wq[cfg.wq_log2 - RTE_RED_WQ_LOG2_MIN];
  uint32_t f = (n >> 6) & 0xf, shift = n >> 10;
  uint32_t factor = shift == 0                ? rte_red_pow2_frac_inv[f]
                    : shift < RTE_RED_SCALING ? (rte_red_pow2_frac_inv[f] + (1u << (shift - 1))) >> shift
                                              : 0;
  red.avg = (red.avg >> RTE_RED_SCALING) * factor;
}

// WRED's verdict on packet `m` (`ip` its header, nullptr if it has none) for class `k`'s
// queue `q`: true to queue it (perhaps marked CE), false when it was dropped.
bool wred_admits(Worker& w, const qos::Shaper& s, const qos::ShaperClass& k, qos::ClassQueue& q, rte_mbuf* m,
                 rte_ipv4_hdr* ip, int dscp) {
  qos::Colour colour = dscp < 0 ? qos::green : qos::colour_of_dscp(unsigned(dscp));
  // rte_red's average is 32 bits, the depth scaled by 2^(10 + weight_log2): an average of 1024
  // packets overflows it at weight 12 (8192 at the default 9). Held to rte_red's max_th limit
  // (1023), a deeper queue gets the same verdict (at or above every max_th).
  uint32_t depth = std::min<uint32_t>(q.depth(), RTE_RED_MAX_TH_MAX);
  if (!depth) {  // the frames the queue could have sent while it was idle
    red_idle(k.red[colour], q.red, w.now > q.idle_since ? double(w.now - q.idle_since) * s.frames_per_cycle : 0);
    return true;
  }
  int verdict = rte_red_enqueue_nonempty(&k.red[colour], &q.red, depth);
  if (verdict == 0) [[likely]]
    return true;
  // 2: dropped by probability, between the thresholds; 1: at or above max_th.
  if (verdict == 2 && k.ecn && ip && (ip->type_of_service & 3) && (ip->type_of_service & 3) != 3) {
    set_ecn_ce(ip);
    bump(q.ecn_marked);
    return true;
  }
  bump(q.wred_dropped);
  drop(w, m, Drop::shaper_wred);
  return false;
}

}  // namespace

uint16_t class_of(const Tables& t, const qos::Shaper& s, const PacketMeta& m, int dscp) {
  // A rule's class first: the rule that permitted the flow names it (docs/qos.md).
  if (m.flags & meta_classed) [[unlikely]]
    if (m.rule < s.class_of_rule.size() && s.class_of_rule[m.rule] != qos::no_class) return s.class_of_rule[m.rule];
  uint16_t tenant = m.iface_in < t.interfaces.size() ? t.interfaces[m.iface_in].tenant : no_tenant;
  const auto n = uint16_t(s.classes.size());
  for (uint16_t c = 0; c < n; c++) {
    const qos::ShaperClass& k = s.classes[c];
    if ((k.tenant == qos::any_tenant || k.tenant == tenant) &&
        (k.in_interface == qos::any_interface || k.in_interface == m.iface_in) &&
        (!k.dscps || (dscp >= 0 && (k.dscps >> dscp & 1))))
      return c;
  }
  return uint16_t(n - 1);
}

void shape(Worker& w) {
  Batch& b = *w.to_shape;
  const qos::Tables& t = w.tables->qos;
  for (uint16_t i = 0; i < b.n; i++) {
    rte_mbuf* m = b.pkts[i];
    const PacketMeta& pm = meta(m);
    const qos::Shaper& s = t.shapers[t.shaper_of[pm.iface_out]];
    bool has_ip = m->data_len >= s.l2_len + sizeof(rte_ipv4_hdr);
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, s.l2_len);
    int dscp = has_ip ? ip->type_of_service >> 2 : -1;
    uint16_t c = class_of(*w.tables, s, pm, dscp);
    const qos::ShaperClass& k = s.classes[c];
    if (has_ip && k.mark != qos::any_dscp) set_dscp(ip, uint8_t(k.mark));
    qos::ClassQueue& q = s.shares[w.queue].classes[c];
    if (q.depth() >= q.limit) {
      bump(q.dropped);
      drop(w, m, Drop::shaper_queue_full);
      continue;
    }
    // The colour is the DSCP the class matched on, before its own mark.
    if (k.wred && !wred_admits(w, s, k, q, m, has_ip ? ip : nullptr, dscp)) continue;
    q.ring[q.tail & q.mask] = m;
    __atomic_store_n(&q.tail, q.tail + 1, __ATOMIC_RELAXED);
    bump(q.queued_packets);
    bump(q.queued_bytes, rte_pktmbuf_pkt_len(m));
  }
  b.n = 0;
}

uint16_t shape_tunnels(Worker& w, rte_mbuf** pkts, uint16_t n) {
  const Tables& t = *w.tables;
  const auto& shaper_of = t.qos.shaper_of;
  Batch& b = *w.to_shape;
  uint16_t left = 0;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    PacketMeta& pm = meta(m);
    // Without an outbound SA esp_output drops it at once: it would only take a queue's place.
    if (pm.iface_out >= shaper_of.size() || shaper_of[pm.iface_out] == qos::no_shaper ||
        !t.interfaces[pm.iface_out].outbound_sa) {
      pkts[left++] = m;
      continue;
    }
    if (b.full()) {  // not while shape() empties it after every burst
      drop(w, m, Drop::shaper_queue_full);
      continue;
    }
    // Queued as esp_output takes it: the inner packet alone, which the contract counts.
    if (pm.l2_len) {
      rte_pktmbuf_adj(m, pm.l2_len);
      pm.l2_len = 0;
    }
    b.pkts[b.n++] = m;
  }
  if (b.n) shape(w);
  return left;
}

unsigned schedule(Worker& w, uint64_t now) {
  unsigned sent = 0;
  Out to_port;
  for (const qos::Shaper& s : w.tables->qos.shapers)
    if (!s.tunnel) sent += schedule_one(w, s, s.shares[w.queue], now, to_port);
  return sent;
}

uint16_t schedule_tunnel(Worker& w, const qos::Shaper& s, uint64_t now, rte_mbuf** out) {
  Out to_esp{out};
  schedule_one(w, s, s.shares[w.queue], now, to_esp);
  return to_esp.n;
}

void drop_shaped(Worker& w) {
  for (const qos::Shaper& s : w.tables->qos.shapers)
    for (qos::ClassQueue& q : s.shares[w.queue].classes)
      for (; q.head != q.tail; q.head++) drop(w, q.ring[q.head & q.mask], Drop::shaper_queue_full);
}

}  // namespace medix::dp
