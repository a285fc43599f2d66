#pragma once
// The tx point of a spread outbound SA (docs/ipsec.md, "One SA over several workers"): workers
// reserve its sequence numbers a burst at a time and encrypt on their own cores; the owner
// puts what they encrypted back in sequence order here before it is routed and sent, so that
// one flow leaves in the order it came. Only the owner touches it (a ticket scheme keyed by
// the ESP sequence number, as DPDK's librte_reorder is, with its holes bounded in time).
#include <rte_mbuf.h>

#include <cstdint>

namespace medix::dp {

struct TxOrder {
  // Packets a hole may hold back: a power of two, one hand-off ring's worth (infra/limits.h).
  static constexpr uint32_t size = 4096;
  uint64_t next = 1;           // the sequence number to send next
  uint32_t held = 0;           // packets waiting for it
  uint64_t waiting_since = 0;  // TSC: since when `next` has been missing while packets wait
  // Sequence numbers given up (their packet was lost between its worker and here: a full
  // hand-off ring) and packets that came after theirs was given up (sent at once, out of order).
  uint64_t skipped = 0, late = 0;
  rte_mbuf* slots[size] = {};

  enum Placed { held_back, late_one, window_full };
  // Keeps the packet numbered seq until its turn. A first packet far ahead of an empty window
  // (an HA takeover moved the SA's numbers on) starts the window there.
  Placed place(rte_mbuf* m, uint64_t seq) {
    if (seq < next) {
      late++;
      return late_one;
    }
    if (seq - next >= size) {
      if (held) return window_full;  // the caller gives up the hole (skip_hole) and tries again
      skipped += seq - next;
      next = seq;
    }
    slots[seq & (size - 1)] = m;
    held++;
    return held_back;
  }

  // Up to `cap` packets in sequence order from `next`; stops at a hole. A hole older than
  // `patience` TSC cycles is given up (the packet behind it goes), so that a lost packet
  // delays its SA by at most that long.
  uint16_t take(rte_mbuf** out, uint16_t cap, uint64_t now, uint64_t patience) {
    uint16_t n = 0;
    while (n < cap && held) {
      rte_mbuf*& slot = slots[next & (size - 1)];
      if (!slot) {
        if (n) break;  // progress: the hole's clock starts again below
        if (!waiting_since) waiting_since = now;
        if (now - waiting_since <= patience) break;
        skip_hole();
        continue;
      }
      out[n++] = slot;
      slot = nullptr;
      next++;
      held--;
    }
    if (n || !held) waiting_since = held ? now : 0;
    return n;
  }

  // Gives up the missing numbers before the first packet held.
  void skip_hole() {
    if (!held) return;
    while (!slots[next & (size - 1)]) {
      next++;
      skipped++;
    }
    waiting_since = 0;
  }

  // The SA goes: what still waits is freed (the control side, after the grace period).
  void release() {
    for (rte_mbuf*& m : slots)
      if (m) {
        rte_pktmbuf_free(m);
        m = nullptr;
      }
    held = 0;
  }
};

}  // namespace medix::dp
