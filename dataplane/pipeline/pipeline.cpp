// The pipeline: every stage and every edge between them, and nowhere else.
//
//   rx ─ l2_input ─┬─ arp_input
//                  └─ ip_input ─ esp_early ─┬─ (decrypted) ───────────────┐
//                                           └─ lookup ─┬─ fwd ─┬─ ip_output ─ tx
//   handoff ring ─ esp_input / esp_output / nat_input ─┘       └─ esp_output ─┐
//                                                      └─ local ─ local_input ─ esp_input
//   lookup, a burst of any tenants:  ip_lookup ─┬─ fwd / local
//                                               ├─ cross ─ nat_input ─ ip_route_crossed ─ fwd / local / leaked
//                                               └─ leaked: the next round, in its new tenant; into the core,
//                                                  established: nat_established ─ ip_route_crossed ─ fwd / local
//   established flows whose sessions know the way from their tenant: nat_established ahead of
//   ip_lookup ─ ip_route_crossed ─ fwd / local (by a kept `via` next hop: nat_established ─ fwd)
//   police (qos/) runs between l2_input and ip_input, in generations that have policers;
//   shape (qos/) takes what ip_output sent to shaped interfaces into their class queues, and
//   the worker loop's schedule step sends from them (process_shaped); a shaped tunnel's
//   packets wait before esp_output (shape_tunnels), and what its shaper sends goes
//   esp_output ─ lookup (underlay) ─ ip_output.
//
// run_ip passes: what a pass decrypts, encrypts or originates goes round again (decrypted: in
// its tunnel's tenant; encrypted: in the underlay; originated: ICMP, replies), so a few passes
// cover tunnel to tunnel; what is left after the last pass is a routing loop. Encrypted packets
// whose tunnel's underlay route the worker made in this generation (esp_route_outer) skip the
// round: esp_output ─ ip_output in the same pass.
#include "pipeline/pipeline.h"

#include <rte_cycles.h>

#include "arp/arp.h"
#include "infra/accounting.h"
#include "ip/ip.h"
#include "ipsec/esp.h"
#include "l2/l2.h"
#include "nat/nat.h"
#include "qos/qos.h"

namespace medix::dp {

namespace {

constexpr unsigned max_passes = 4;

void append(Worker& w, Batch& to, rte_mbuf** pkts, uint16_t n) {
  if (!n) return;  // most of a plain burst's appends: no memcpy call for nothing
  uint16_t fit = std::min<uint16_t>(n, uint16_t(std::size(to.pkts) - to.n));
  memcpy(to.pkts + to.n, pkts, fit * sizeof(rte_mbuf*));
  to.n = uint16_t(to.n + fit);
  for (uint16_t i = fit; i < n; i++) drop(w, pkts[i], Drop::no_buffer);
}

// Runs `stage(chunk, count)` over a batch a burst at a time (stages size their arrays by it).
template <typename F>
void in_bursts(Batch& b, F&& stage) {
  for (uint16_t first = 0; first < b.n; first += burst_size)
    stage(b.pkts + first, uint16_t(std::min<int>(burst_size, b.n - first)));
}

// ESP to one of our tunnel endpoints goes straight to decryption: its SA proves that the
// destination is ours (a tunnel's local address is a local address of its underlay), so the
// FIB and local delivery have nothing to add. Other ESP (transit, unknown SPIs) is routed as
// usual. Returns how many of `pkts` are left for the lookup; decrypted packets go to `inner`.
uint16_t esp_early(Worker& w, rte_mbuf** pkts, uint16_t n, Batch& inner) {
  rte_mbuf* esp[burst_size];
  uint16_t n_esp = 0, left = 0;
  for (uint16_t i = 0; i < n; i++) {
    if (esp_candidate(pkts[i]))
      esp[n_esp++] = pkts[i];
    else
      pkts[left++] = pkts[i];
  }
  if (n_esp) {
    rte_mbuf* decrypted[burst_size];
    uint16_t n_decrypted = 0;
    esp_input(w, esp, n_esp, decrypted, n_decrypted, pkts, &left);  // strangers after the others
    append(w, inner, decrypted, n_decrypted);
  }
  return left;
}

// A frame the main lcore made whole (VRRP's adverts and gratuitous ARP): out of its interface,
// if that is still the one it was made for.
void transmit(Worker& w, rte_mbuf* m) {
  const Tables& t = *w.tables;
  PacketMeta& pm = meta(m);
  if (pm.iface_out >= t.interfaces.size() || t.interfaces[pm.iface_out].uid != pm.out_uid) {
    drop(w, m, Drop::interface_gone);
    return;
  }
  bump(w.counters->interfaces[pm.iface_out].tx_packets);
  bump(w.counters->interfaces[pm.iface_out].tx_bytes, rte_pktmbuf_pkt_len(m));
  send(w, t.interfaces[pm.iface_out].port, m);
}

// Cycles and packets of the NAT stage, which runs between lookups.
struct StageTime {
  uint64_t cycles = 0, packets = 0;
};

// The lookup of a burst: all its tenants at once, crossing the core where it happens, route
// leaks round again in their new tenant (at most max_leak_hops times).
// `pkts` is the caller's to use: the first round works in it, without a copy.
void lookup(Worker& w, rte_mbuf** pkts, uint16_t n, Batch& eth, Batch& tunnel, Batch& local, StageTime& nat) {
  rte_mbuf* leaked[burst_size];
  rte_mbuf** left = pkts;  // still without a route (this round's tenants)
  for (unsigned round = 0; n > 0; round++) {
    if (round > max_leak_hops) {
      for (uint16_t i = 0; i < n; i++) drop(w, left[i], Drop::leak_loop);
      return;
    }
    Routed r;
    bool ahead = round == 0 && w.tables->nat;
    if (ahead) {
      // Established flows whose sessions know the way from the tenant they came in: across and
      // routed now, without any lookup.
      uint64_t start = stage_clock(w);
      rte_mbuf* known[burst_size];
      uint16_t n_known = 0, before = n;
      n = nat_established(w, left, n, true, known, n_known, r);
      nat.packets += before - n;
      if (stage_timing(w)) nat.cycles += rte_rdtsc() - start;
      ip_route_crossed(w, known, n_known, r);
    }
    while (n) {
      n = ip_lookup(w, left, n, r);
      if (!r.n_cross) continue;
      uint64_t start = stage_clock(w);
      rte_mbuf* crossed[burst_size];
      uint16_t n_crossed = 0;
      nat_input(w, r.cross, r.n_cross, false, crossed, n_crossed);
      nat.packets += r.n_cross;
      if (stage_timing(w)) nat.cycles += rte_rdtsc() - start;
      r.n_cross = 0;
      ip_route_crossed(w, crossed, n_crossed, r);
    }
    if (r.n_learn) {
      nat_learn(w, r.learn, r.n_learn);
      r.n_learn = 0;
    }
    if (r.n_leaked && !ahead) {
      // Established flows into the core whose sessions know their way: across and routed by
      // it now, without the core's round or the exit's. (In the first round what leaked into
      // the core came from the tenant it was looked up in ahead: asked already.)
      uint64_t start = stage_clock(w);
      rte_mbuf* known[burst_size];
      uint16_t n_known = 0, before = r.n_leaked;
      r.n_leaked = nat_established(w, r.leaked, r.n_leaked, false, known, n_known, r);
      nat.packets += before - r.n_leaked;
      if (stage_timing(w)) nat.cycles += rte_rdtsc() - start;
      ip_route_crossed(w, known, n_known, r);
    }
    append(w, eth, r.fwd, r.n_fwd);
    append(w, tunnel, r.tunnel, r.n_tunnel);
    append(w, local, r.local, r.n_local);
    memcpy(leaked, r.leaked, r.n_leaked * sizeof(rte_mbuf*));
    left = leaked;
    n = r.n_leaked;
  }
}

// What the IP part of the pipeline takes: packets whose IPv4 header is still to be checked
// (from the wire), packets checked already (decrypted: esp_input checks the inner header),
// and packets of our own making (encrypted, replies, injected: no TTL, no ICMP about them).
struct IpInput {
  Batch to_check, checked, ours;
  // l2_input found every to_check packet plain (ipv4_plain): ip_input's pass would keep each
  // as it is, so it is skipped (its calls and packets still counted).
  bool to_check_plain = false;
};

void run_passes(Worker& w, uint64_t t, IpInput& in);

// Spread SAs' packets at their owner's tx point (from its ring, or encrypted here): put in
// sequence order, then routed in the underlay (a hole may let out many at once: a batch at a
// time).
void send_ordered(Worker& w, rte_mbuf** pkts, uint16_t n) {
  for (uint16_t left = n; n; n = left) {
    OrderedSas sas;
    left = esp_order(w, pkts, n, sas);
    for (;;) {
      IpInput out;
      out.ours.n = esp_order_take(w, sas, out.ours.pkts);
      if (!out.ours.n) break;
      run_passes(w, stage_clock(w), out);
    }
  }
}

// The IP passes, then what they encrypted for spread SAs this worker owns.
void run_ip(Worker& w, uint64_t t, IpInput& in) {
  run_passes(w, t, in);
  Batch& own = esp_own_ordered(w);
  while (own.n) {
    Batch now = own;
    own.n = 0;
    in_bursts(now, [&](rte_mbuf** p, uint16_t n) { send_ordered(w, p, n); });
  }
}

void run_passes(Worker& w, uint64_t t, IpInput& in) {
  for (unsigned pass = 0; pass < max_passes; pass++) {
    // Encrypted packets whose underlay route esp_route_outer knew: out in this pass, after
    // esp_output, without the lookup.
    Batch sealed;
    // CBC jobs completed since the last pass, as many as leave a batch's room for what the
    // pass routes (the rest: next pass, or the worker loop's process_crypto).
    if (esp_done(w)) {
      int used = in.to_check.n + in.checked.n + in.ours.n + w.originated->n;
      if (used < int(std::size(in.ours.pkts))) {
        uint16_t first = in.ours.n;
        esp_take_done(w, in.checked, in.ours, uint16_t(std::size(in.ours.pkts) - used));
        in.ours.n = uint16_t(first + esp_route_outer(w, in.ours.pkts + first, uint16_t(in.ours.n - first), sealed));
      }
    }
    if (!in.to_check.n && !in.checked.n && !in.ours.n && !w.originated->n && !sealed.n) return;
    // What may be ESP (ip_input sorts it out; what is checked already, all of it) takes
    // esp_early's test; the rest goes straight to the lookup. What is routed: l2_input's packets
    // where they lie (ip_input keeps them at its front) and what else the pass routes after
    // them, or without them a batch of its own.
    Batch own_route, maybe_esp, decrypted;
    Batch& to_route = in.to_check.n ? in.to_check : own_route;
    if (in.to_check.n) {
      uint16_t plain =
          in.to_check_plain ? in.to_check.n : ip_input(w, in.to_check.pkts, in.to_check.n, maybe_esp.pkts, maybe_esp.n);
      t = account(w, Stage::ip_input, t, in.to_check.n);
      in.to_check.n = plain;
    }
    append(w, maybe_esp, in.checked.pkts, in.checked.n);
    if (maybe_esp.n) {
      uint16_t esp = 0;
      in_bursts(maybe_esp, [&](rte_mbuf** p, uint16_t n) {
        uint16_t left = esp_early(w, p, n, decrypted);
        esp = uint16_t(esp + n - left);
        append(w, to_route, p, left);
      });
      if (esp) t = account(w, Stage::esp_input, t, esp);
      // Decrypted packets are routed in this pass (their headers checked); only ESP inside ESP
      // to one of our endpoints waits for the next, which decrypts it.
      rte_mbuf* nested[std::size(decrypted.pkts)];
      uint16_t routable = 0, n_nested = 0;
      for (uint16_t i = 0; i < decrypted.n; i++) {
        rte_mbuf* m = decrypted.pkts[i];
        if (esp_candidate(m)) [[unlikely]]
          nested[n_nested++] = m;
        else
          decrypted.pkts[routable++] = m;
      }
      append(w, to_route, decrypted.pkts, routable);
      memcpy(decrypted.pkts, nested, n_nested * sizeof(rte_mbuf*));
      decrypted.n = n_nested;
    }
    append(w, to_route, in.ours.pkts, in.ours.n);
    append(w, to_route, w.originated->pkts, w.originated->n);
    in.checked.n = in.ours.n = w.originated->n = 0;

    Batch eth, tunnel, local;
    StageTime nat;
    in_bursts(to_route, [&](rte_mbuf** p, uint16_t n) { lookup(w, p, n, eth, tunnel, local, nat); });
    if (to_route.n) {
      t = account(w, Stage::ip_lookup, t + nat.cycles, to_route.n);
      if (stage_accounting && nat.packets) {
        StageStats& s = w.counters->stages[unsigned(Stage::nat)];
        bump(s.calls);
        bump(s.packets, nat.packets);
        bump(s.cycles, nat.cycles);
      }
    }
    to_route.n = 0;  // (in.to_check, if it was routed where it lay)

    Batch esp_in;
    if (local.n) {
      in_bursts(local, [&](rte_mbuf** p, uint16_t n) {
        if (w.trace) [[unlikely]]
          trace_step(w, TraceStep::local, p, n);
        rte_mbuf* e[burst_size];
        uint16_t ne = 0;
        local_input(w, p, n, e, ne);
        append(w, esp_in, e, ne);
      });
      t = account(w, Stage::local, t, local.n);
    }

    auto output = [&](Batch& b) {
      in_bursts(b, [&](rte_mbuf** p, uint16_t n) {
        ip_output(w, p, n);
        // Into the class queues (shaped interfaces only); its cycles count as ip_output's.
        if (w.to_shape->n) [[unlikely]]
          shape(w);
      });
      t = account(w, Stage::ip_output, t, b.n);
    };
    if (eth.n) output(eth);
    if (tunnel.n) {
      in_bursts(tunnel, [&](rte_mbuf** p, uint16_t n) {
        // A shaped tunnel's packets wait in its class queues (its cycles count as esp_output's):
        // process_shaped encrypts them as they leave, so their sequence numbers follow that order.
        if (!w.tables->qos.tunnel_shapers.empty()) [[unlikely]]
          n = shape_tunnels(w, p, n);
        rte_mbuf* o[2 * burst_size];
        uint16_t no = 0;
        esp_output(w, p, n, o, no);
        no = esp_route_outer(w, o, no, sealed);
        append(w, in.ours, o, no);
      });
      t = account(w, Stage::esp_output, t, tunnel.n);
    }
    if (sealed.n) output(sealed);
    if (esp_in.n) {
      in_bursts(esp_in, [&](rte_mbuf** p, uint16_t n) {
        rte_mbuf* inner[burst_size];
        uint16_t ni = 0;
        esp_input(w, p, n, inner, ni);
        append(w, in.checked, inner, ni);
      });
      t = account(w, Stage::esp_input, t, esp_in.n);
    }
    append(w, in.checked, decrypted.pkts, decrypted.n);
  }
  // Still more after the last pass: a routing loop through tunnels.
  for (Batch* b : {&in.to_check, &in.checked, &in.ours, w.originated}) {
    for (uint16_t i = 0; i < b->n; i++) drop(w, b->pkts[i], Drop::leak_loop);
    b->n = 0;
  }
}

}  // namespace

void process_burst(Worker& w, uint16_t port, rte_mbuf** pkts, uint16_t n) {
  uint64_t t = stage_clock(w);
  IpInput in;
  rte_mbuf** ip = in.to_check.pkts;  // l2_input's IPv4 packets go where the IP passes take them
  rte_mbuf* arp[burst_size];
  uint16_t n_ip = 0, n_plain = 0, n_arp = 0;

  l2_input(w, port, pkts, n, ip, n_ip, n_plain, arp, n_arp);
  t = account(w, Stage::l2_input, t, n);
  if (w.capture) [[unlikely]] {  // received, now that interface and tenant are known
    capture(w, CapturePoint::rx, port, ip, n_ip);
    capture(w, CapturePoint::rx, port, arp, n_arp);
  }
  if (w.trace) [[unlikely]] {  // stamped here: the trace's filter is capture's, matched as it
    trace_rx(w, port, ip, n_ip);
    trace_rx(w, port, arp, n_arp);
  }
  if (!w.tables->qos.policers.empty()) [[unlikely]] {  // one test a burst when there are none
    uint16_t classified = n_ip;
    n_ip = police(w, ip, n_ip, stage_timing(w) ? t : rte_rdtsc());  // t is 0 with timing off
    t = account(w, Stage::qos, t, classified);
  }
  if (n_arp) {
    arp_input(w, arp, n_arp);
    t = account(w, Stage::arp, t, n_arp);
  }
  // (police drops or remarks DSCP with the checksum: what it leaves is plain still.)
  in.to_check_plain = n_plain == n_ip;
  in.to_check.n = n_ip;
  run_ip(w, t, in);
}

void process_crypto(Worker& w, bool flush) {
  uint64_t t = stage_clock(w);
  esp_complete(w, flush);
  if (flush) t = account(w, Stage::esp_input, t, 0);  // the lanes' tail: both directions
  while (esp_done(w)) {
    IpInput in;
    run_ip(w, t, in);
    t = stage_clock(w);
  }
}

void process_originated(Worker& w) {
  if (!w.originated->n) return;
  IpInput in;
  run_ip(w, stage_clock(w), in);
}

unsigned process_shaped(Worker& w) {
  const qos::Tables& q = w.tables->qos;
  if (q.shapers.empty()) return 0;  // one test a loop when there are none
  uint64_t now = rte_rdtsc();
  uint16_t queued = w.to_shape->n;  // from the pending queue's packets, sent this loop
  if (queued) shape(w);
  unsigned sent = schedule(w, now);
  if (sent || queued) account(w, Stage::shape, now, sent);
  // A tunnel's shaper sends inner packets: encrypted in that order, then routed in the
  // underlay (out of its port, through the port's shaper if it has one), a tunnel at a time.
  for (uint16_t i : q.tunnel_shapers) {
    uint64_t t = stage_clock(w);
    rte_mbuf* inner[burst_size];
    uint16_t n = schedule_tunnel(w, q.shapers[i], now, inner);
    if (!n) continue;
    sent += n;
    t = account(w, Stage::shape, t, n);
    IpInput in;
    esp_output(w, inner, n, in.ours.pkts, in.ours.n);
    t = account(w, Stage::esp_output, t, n);
    run_ip(w, t, in);
  }
  return sent;
}

void drop_shaped_on_stop(Worker& w) {
  if (w.tables) drop_shaped(w);
}

void process_handoff(Worker& w, rte_mbuf** pkts, uint16_t n) {
  uint64_t t = stage_clock(w);
  IpInput ip;
  rte_mbuf *decrypt[burst_size], *encrypt[burst_size], *cross[burst_size], *ordered[burst_size];
  uint16_t n_decrypt = 0, n_encrypt = 0, n_cross = 0, n_ordered = 0;
  if (w.trace) [[unlikely]]
    trace_step(w, TraceStep::handoff, pkts, n);
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    switch (meta(m).handoff) {
      case Handoff::esp_decrypt: decrypt[n_decrypt++] = m; break;
      case Handoff::esp_encrypt: encrypt[n_encrypt++] = m; break;
      case Handoff::nat: cross[n_cross++] = m; break;
      case Handoff::inject: append(w, ip.ours, &m, 1); break;
      case Handoff::transmit: transmit(w, m); break;
      case Handoff::esp_ordered: ordered[n_ordered++] = m; break;
    }
  }
  if (n_cross) {
    rte_mbuf* crossed[burst_size];
    uint16_t n_crossed = 0;
    nat_input(w, cross, n_cross, true, crossed, n_crossed);
    append(w, ip.ours, crossed, n_crossed);
    t = account(w, Stage::nat, t, n_cross);
  }
  if (n_decrypt) {
    rte_mbuf* inner[burst_size];
    uint16_t n_inner = 0;
    esp_input(w, decrypt, n_decrypt, inner, n_inner);
    append(w, ip.checked, inner, n_inner);
    t = account(w, Stage::esp_input, t, n_decrypt);
  }
  if (n_encrypt) {
    rte_mbuf* outer[2 * burst_size];
    uint16_t n_outer = 0;
    esp_output(w, encrypt, n_encrypt, outer, n_outer);
    append(w, ip.ours, outer, n_outer);
    t = account(w, Stage::esp_output, t, n_encrypt);
  }
  if (n_ordered) send_ordered(w, ordered, n_ordered);
  run_ip(w, t, ip);
}

}  // namespace medix::dp
