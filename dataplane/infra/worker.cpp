// The worker's pipeline over one burst, and the small shared pieces every stage uses:
// drop (count by reason), send (buffer per port) and flush.
#include "infra/worker.h"

#include <rte_cycles.h>
#include <rte_ethdev.h>

#include "infra/pipeline.h"
#include "ipsec/esp.h"
#include "nat/nat.h"

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

void originate(Worker& w, rte_mbuf* m) {
  Batch& b = *w.originated;
  if (b.full()) {
    drop(w, m, Drop::no_buffer);
    return;
  }
  b.pkts[b.n++] = m;
}

namespace {

void append(Worker& w, Batch& to, rte_mbuf** pkts, uint16_t n) {
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

// What the IP part of the pipeline takes: packets whose IPv4 header is still to be checked
// (from the wire), packets checked already (decrypted: esp_input checks the inner header),
// and packets of our own making (encrypted, replies, injected: no TTL, no ICMP about them).
struct IpInput {
  Batch to_check, checked, ours;
};

// The IP part of the pipeline. Decrypted packets come back for another pass (in their
// tunnel's tenant), and so do encrypted ones (routed in the underlay) and packets medix-dp
// made; a few passes cover tunnel to tunnel.
void run_ip(Worker& w, uint64_t t, IpInput& in) {
  for (unsigned pass = 0; pass < 4; pass++) {
    if (!in.to_check.n && !in.checked.n && !in.ours.n && !w.originated->n) return;
    Batch arrived, decrypted, lookup;
    if (in.to_check.n) {
      uint16_t valid = ip_input(w, in.to_check.pkts, in.to_check.n);
      t = account(w, Stage::ip_input, t, in.to_check.n);
      append(w, arrived, in.to_check.pkts, valid);
    }
    append(w, arrived, in.checked.pkts, in.checked.n);
    if (arrived.n) {
      uint16_t esp = 0;
      in_bursts(arrived, [&](rte_mbuf** p, uint16_t n) {
        uint16_t left = esp_early(w, p, n, decrypted);
        esp = uint16_t(esp + n - left);
        append(w, lookup, p, left);
      });
      if (esp) t = account(w, Stage::esp_input, t, esp);
    }
    append(w, lookup, in.ours.pkts, in.ours.n);
    append(w, lookup, w.originated->pkts, w.originated->n);
    in.to_check.n = in.checked.n = in.ours.n = w.originated->n = 0;

    Batch fwd, local;
    in_bursts(lookup, [&](rte_mbuf** p, uint16_t n) {
      rte_mbuf *f[burst_size], *l[burst_size];
      uint16_t nf = 0, nl = 0;
      ip_lookup(w, p, n, f, nf, l, nl);
      append(w, fwd, f, nf);
      append(w, local, l, nl);
    });
    if (lookup.n) {
      // Crossing the core happens inside the lookup; its cycles are its own stage.
      uint64_t nat = w.nat_cycles;
      w.nat_cycles = 0;
      t = account(w, Stage::ip_lookup, t + nat, lookup.n);
      if (nat) {
        StageStats& s = w.counters->stages[unsigned(Stage::nat)];
        bump(s.calls);
        bump(s.packets, w.nat_packets);
        bump(s.cycles, nat);
      }
      w.nat_packets = 0;
    }

    Batch esp_in;
    if (local.n) {
      in_bursts(local, [&](rte_mbuf** p, uint16_t n) {
        rte_mbuf* e[burst_size];
        uint16_t ne = 0;
        local_input(w, p, n, e, ne);
        append(w, esp_in, e, ne);
      });
      t = account(w, Stage::local, t, local.n);
    }

    Batch eth, tunnel;
    for (uint16_t i = 0; i < fwd.n; i++) {
      rte_mbuf* m = fwd.pkts[i];
      Batch& to = w.tables->interfaces[meta(m).iface_out].tunnel ? tunnel : eth;
      to.pkts[to.n++] = m;
    }
    if (eth.n) {
      in_bursts(eth, [&](rte_mbuf** p, uint16_t n) { ip_output(w, p, n); });
      t = account(w, Stage::ip_output, t, eth.n);
    }
    if (tunnel.n) {
      in_bursts(tunnel, [&](rte_mbuf** p, uint16_t n) {
        rte_mbuf* o[2 * burst_size];
        uint16_t no = 0;
        esp_output(w, p, n, o, no);
        append(w, in.ours, o, no);
      });
      t = account(w, Stage::esp_output, t, tunnel.n);
    }
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
  uint64_t t = rte_rdtsc();
  rte_mbuf *ip[burst_size], *arp[burst_size];
  uint16_t n_ip = 0, n_arp = 0;

  l2_input(w, port, pkts, n, ip, n_ip, arp, n_arp);
  t = account(w, Stage::l2_input, t, n);
  if (n_arp) {
    arp_input(w, arp, n_arp);
    t = account(w, Stage::arp, t, n_arp);
  }
  IpInput in;
  append(w, in.to_check, ip, n_ip);
  run_ip(w, t, in);
}

void process_originated(Worker& w) {
  if (!w.originated->n) return;
  IpInput in;
  run_ip(w, rte_rdtsc(), in);
}

void process_handoff(Worker& w, rte_mbuf** pkts, uint16_t n) {
  uint64_t t = rte_rdtsc();
  IpInput ip;
  rte_mbuf *in[burst_size], *out[burst_size];
  uint16_t n_in = 0, n_out = 0;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    uint8_t direction = meta(m).flags & (meta_handoff_in | meta_handoff_out);
    meta(m).flags &= uint8_t(~(meta_handoff_in | meta_handoff_out));
    if (meta(m).flags & meta_inject) {
      meta(m).flags &= uint8_t(~meta_inject);
      append(w, ip.ours, &m, 1);
    } else if (meta(m).flags & meta_handoff_nat) {
      meta(m).flags &= uint8_t(~meta_handoff_nat);
      uint64_t start = rte_rdtsc();
      uint16_t exit = meta(m).exit;
      if (nat_cross(w, m, uint16_t(meta(m).origin - 1), exit, true)) {
        nat_crossed(w, m, exit);
        append(w, ip.ours, &m, 1);
      }
      StageStats& s = w.counters->stages[unsigned(Stage::nat)];
      bump(s.calls);
      bump(s.packets);
      bump(s.cycles, rte_rdtsc() - start);
    } else if (direction == meta_handoff_in) {
      in[n_in++] = m;
    } else {
      out[n_out++] = m;
    }
  }
  if (n_in) {
    rte_mbuf* inner[burst_size];
    uint16_t n_inner = 0;
    esp_input(w, in, n_in, inner, n_inner);
    append(w, ip.checked, inner, n_inner);
    t = account(w, Stage::esp_input, t, n_in);
  }
  if (n_out) {
    rte_mbuf* outer[2 * burst_size];
    uint16_t n_outer = 0;
    esp_output(w, out, n_out, outer, n_outer);
    append(w, ip.ours, outer, n_outer);
    t = account(w, Stage::esp_output, t, n_out);
  }
  run_ip(w, t, ip);
}
