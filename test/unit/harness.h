#pragma once
// A worker without a thread: tables built from a config text, counters, and tx buffers the
// test inspects instead of flushing to a port.
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "control/controller.h"
#include "pipeline/pipeline.h"

using namespace medix::dp;

// Operations from the JSON of ApplyRequest.operations: [{"op": "CREATE", "object": {...}}, ...],
// with the paths the API gives them ("operations[0].route").
std::vector<medix::dp::Operation> ops(const std::string& json);

struct Harness {
  // With `queues` > 1 the tables are built for that many workers (SAs and sessions get owners
  // among them) and `others` are workers 1.. with their hand-off rings: a test (or the
  // pipeline fuzzer, test/fuzz) plays each by calling process_handoff on what its ring holds.
  // `sa_start`: outbound SAs' sequence numbers on disk (Committer::Params::sa_start);
  // `sa_peer_start`: HA's start of an SA the peer negotiated (Committer::Params::sa_peer_start).
  explicit Harness(const std::string& config_json, uint16_t queues = 1,
                   std::function<uint64_t(uint64_t, uint32_t)> sa_start = {},
                   std::function<std::optional<uint64_t>(uint64_t, uint32_t)> sa_peer_start = {});
  ~Harness();

  // Runs a frame through the whole pipeline of one burst, as if received on port `port`.
  void receive(uint16_t port, const std::vector<uint8_t>& frame);
  // Frames queued for transmission on a port, oldest first; the queue is emptied.
  std::vector<std::vector<uint8_t>> sent(uint16_t port);
  uint64_t drops(Drop reason) const { return worker.counters->drops[unsigned(reason)]; }
  uint64_t total_drops() const;
  void learn(const std::string& interface, const std::string& address, const std::string& mac);

  // Mbufs holding `frames`, as a port hands them to the pipeline (metadata not set); for
  // tests that call one stage. The caller frees what the stage passes on.
  std::vector<rte_mbuf*> burst(const std::vector<std::vector<uint8_t>>& frames);
  // Slots by name, as the stages see them.
  uint16_t interface(const std::string& name) const;
  uint16_t tenant(const std::string& name) const;

  // Applies a transaction (JSON of ApplyRequest's operations) and reloads the tables.
  medix::dp::ApplyResult apply(const std::vector<medix::dp::Operation>& ops);

  medix::dp::Controller controller;
  const Tables* tables = nullptr;
  Worker worker;                                // queue 0
  std::vector<std::unique_ptr<Worker>> others;  // queues 1 .. queues - 1
  std::vector<rte_ring*> handoff;               // by queue
  rte_mempool* pool = nullptr;
  rte_mempool* indirect = nullptr;
  rte_ring* learned = nullptr;
  rte_ring* events = nullptr;

 private:
  void init_worker(Worker& w, uint16_t queue, const Settings& settings);
  void free_worker(Worker& w);
};

// The unit tests' tunnel configs: ports p0 and p1, tenants carrier and hosp, interfaces c0
// (carrier, p0, 198.51.100.1/24) and h0 (hosp, p1, 10.0.1.1/24), then `rest`: the members
// after "interfaces" (tunnels, routes, SAs ...), each followed by a comma but the last.
std::string hosp_over_carrier(const std::string& rest);

// A packet's bytes, every segment.
std::vector<uint8_t> bytes_of(const rte_mbuf* m);

// Frame building, in the spirit of scapy: bytes in network order.
namespace frame {
using Bytes = std::vector<uint8_t>;
Bytes ether(const std::string& dst, const std::string& src, uint16_t type);
Bytes vlan(uint16_t tpid_after, uint16_t vid);  // a tag: TCI then the next ethertype
Bytes ipv4(const std::string& src, const std::string& dst, uint8_t proto, const Bytes& payload, uint8_t ttl = 64,
           uint16_t frag = 0);
Bytes udp(uint16_t sport, uint16_t dport, size_t payload_len);
Bytes icmp_echo(uint16_t id, uint16_t seq);
Bytes arp(uint16_t op, const std::string& sha, const std::string& spa, const std::string& tha, const std::string& tpa);
Bytes operator+(Bytes a, const Bytes& b);
}  // namespace frame
