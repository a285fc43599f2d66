#pragma once
// Packet trace on the workers (medixctl trace, the StartTrace/GetTrace/ClearTrace RPCs): each
// stage's decision about the next N packets that match capture's filter, in order (VPP's
// `trace add`). The API thread builds a TraceSession (api/trace.cpp) and publishes it with one
// atomic store; each worker reads that pointer once a loop iteration (Worker::trace), so with
// no trace a worker pays one load a loop and a not-taken branch a burst at each hook, nothing
// a packet. With one, every packet received is stamped in its PacketMeta (the session's id and
// its entry + 1, or 0), and each hook appends a record to the entries of stamped packets.
// Entries are preallocated: a worker claims one with an atomic add, and appends to it while it
// holds the packet (a hand-off ring passes both on), so no two threads write one entry.
#include <rte_mbuf.h>

#include <atomic>
#include <cstdint>
#include <memory>

#include "infra/capture.h"
#include "infra/drop.h"

namespace medix::dp {

struct Worker;

// What a record says (fields by step: TraceRecord).
enum class TraceStep : uint8_t {
  rx = 1,      // received and classified
  handoff,     // taken off this worker's hand-off ring
  esp,         // ESP arriving: its SPI and sequence number
  decrypted,   // the inner packet, on its tunnel interface
  lookup,      // the FIB's answer in a tenant
  nat,         // crossing the core, as it came
  translated,  // and as it leaves
  local,       // to one of our addresses
  encrypted,   // the outer packet: SA, sequence number, endpoints
  neighbour,   // the next hop's MAC, or parked while ARP asks
  tx,          // handed to a port's tx queue
  drop,        // dropped, with the reason
};

// One stage's decision. By step (slots are table slots; addresses host byte order):
//   rx:         a port, b interface, c tenant, kind protocol, x src, y dst, z ports, v length
//   handoff:    a this worker's queue, kind Handoff
//   esp:        b tenant, x SPI, y sequence number (low 32 bits), z src, v dst
//   decrypted:  a interface, c tenant, kind protocol, x src, y dst, z ports
//   lookup:     a tenant, kind NexthopKind, b interface, c leak's tenant, x dst, y gateway
//   nat:        a origin tenant, b exit tenant, c handed off, kind protocol, x src, y dst, z ports
//   translated: c exit tenant, kind protocol, x src, y dst, z ports
//   local:      c tenant, x dst
//   encrypted:  a tunnel, b underlay tenant, x SPI, y sequence number, z src, v dst
//   neighbour:  a interface, kind 1 resolved / 0 parked, x address, y MAC's first 2 bytes, z last 4
//   tx:         a port, b interface, c queue, v length
//   drop:       a Drop, c tenant
struct TraceRecord {
  uint8_t step;  // TraceStep
  uint8_t kind;
  uint16_t a, b, c;
  uint32_t x, y, z, v;
};
static_assert(sizeof(TraceRecord) == 24);

inline constexpr uint16_t trace_none = UINT16_MAX;
inline constexpr uint32_t trace_max_packets = 1000;
inline constexpr unsigned trace_max_records = 40;  // a packet's; more are counted, not kept

struct TraceEntry {
  uint64_t tsc = 0;            // received
  uint16_t queue = 0;          // the worker that received it
  uint32_t lost = 0;           // records beyond trace_max_records
  std::atomic<uint32_t> n{0};  // records written: stored (release) after each
  TraceRecord records[trace_max_records];
};

struct TraceSession {
  CaptureFilter filter;  // matched at rx, as capture's (points, drop reason and snap length unused)
  uint32_t count = 0;    // packets to trace
  uint8_t id = 0;        // stamped with the entry: tells a stamp of an earlier session apart
  alignas(64) std::atomic<uint32_t> claimed{0};  // entries handed out (may pass count)
  std::unique_ptr<TraceEntry[]> entries;         // count of them
};

// The hooks. Callers test w.trace (once per burst) and call only when it is set.
// Stamps every packet of a received burst; the ones that match claim an entry.
void trace_rx(Worker& w, uint16_t port, rte_mbuf* const* pkts, uint16_t n);
// Records what the metadata says now (handoff, decrypted, local, translated).
void trace_step(Worker& w, TraceStep step, rte_mbuf* const* pkts, uint16_t n);
// ESP as it arrives (L2 at meta.l2_len, or none), before decryption.
void trace_esp(Worker& w, rte_mbuf* const* pkts, uint16_t n);
// The lookup's next hop ids (of w.tables) for each packet.
void trace_lookup(Worker& w, rte_mbuf* const* pkts, uint16_t n, const uint32_t* hops);
// Packets about to cross the core (meta origin and exit set).
void trace_nat(Worker& w, rte_mbuf* const* pkts, uint16_t n, bool handed_off);
// Encrypted outer packets (no L2).
void trace_encrypted(Worker& w, rte_mbuf* const* pkts, uint16_t n);
// ARP's answer for each packet: a neighbour table word (NeighbourTable::valid set: resolved).
void trace_neighbour(Worker& w, rte_mbuf* const* pkts, uint16_t n, const uint64_t* words);
void trace_tx(Worker& w, uint16_t port, rte_mbuf* const* pkts, uint16_t n);
void trace_drop(Worker& w, rte_mbuf* m, Drop reason);

}  // namespace medix::dp
