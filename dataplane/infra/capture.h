#pragma once
// Packet capture on the workers (medixctl capture, the Capture RPC): what a worker copies and
// where. The API thread builds a CaptureSession (api/capture.cpp) and publishes it with one
// atomic store; each worker reads that pointer once a loop iteration (Worker::capture), so a
// worker with no capture pays one load and a not-taken branch per burst at each capture point.
// With one, each packet at a point is matched against the filter, rate limited (a token bucket
// per worker) and copied into the worker's single-producer ring; a full ring or an empty
// bucket counts the packet as lost, never waits.
#include <rte_mbuf.h>
#include <rte_ring.h>

#include <array>
#include <cstdint>

#include "infra/drop.h"
#include "infra/limits.h"

struct rte_bpf;

namespace medix::dp {

struct Worker;

enum class CapturePoint : uint8_t { rx = 1, tx = 2, drop = 3 };

inline constexpr uint32_t capture_snap_max = 2048;
inline constexpr unsigned capture_ring_size = 1024;  // records per worker
inline constexpr uint16_t capture_none = UINT16_MAX;

// One captured packet, as a worker writes it into its ring.
struct CaptureRecord {
  uint64_t tsc;
  uint32_t length;  // the packet's, before the snap length
  uint16_t caplen;
  uint16_t port;    // slot
  uint16_t iface;   // slot, capture_none: not classified
  uint16_t tenant;  // slot, capture_none: none
  uint16_t reason;  // Drop, at CapturePoint::drop
  uint8_t point;    // CapturePoint
  uint8_t pad;
  uint8_t data[capture_snap_max];
};
static_assert(sizeof(CaptureRecord) % 4 == 0);

struct CaptureFilter {
  uint8_t points = 0;  // bit 1 << CapturePoint
  uint16_t port = capture_none;
  uint16_t tenant = capture_none;
  uint16_t drop_reason = capture_none;
  bool by_interface = false;  // only the interfaces set in `interfaces` (interface, VLAN)
  std::array<uint64_t, max_interfaces / 64> interfaces{};
  uint32_t spi = 0;  // ESP with this SPI, or a packet of `spi_tunnel`
  uint16_t spi_tunnel = capture_none;
  rte_bpf* bpf = nullptr;
  uint32_t snaplen = capture_snap_max;
};

struct CaptureSession {
  CaptureFilter filter;
  double rate_per_tsc = 0;  // tokens a TSC cycle
  double burst = 0;         // the bucket's depth
  struct alignas(RTE_CACHE_LINE_SIZE) PerWorker {
    rte_ring* ring = nullptr;  // SP/SC: this worker to the API thread
    double tokens = 0;
    uint64_t tokens_at = 0;
    uint64_t lost = 0;  // written by the worker (bump), read by the API thread
  };
  std::array<PerWorker, max_workers> workers{};
};

// Whether a packet seen on `port` (slot), in `iface` and `tenant` (slots, or capture_none)
// passes the filter (its points and drop reason aside). Capture's, and trace's at rx.
bool capture_matches(const CaptureFilter& f, rte_mbuf* m, uint16_t port, uint16_t iface, uint16_t tenant);

// Offers packets seen at a point to the worker's capture (w.capture is set: callers test it,
// so that the test is theirs, once per burst). `port` is a slot, or capture_none (found from
// the packet); `reason` is used at CapturePoint::drop.
void capture(Worker& w, CapturePoint point, uint16_t port, rte_mbuf* const* pkts, uint16_t n,
             Drop reason = Drop::count);

}  // namespace medix::dp
