#pragma once
// The exception path for IKE, BGP and BFD: a Linux TAP interface on the main lcore. Workers hand it
// the IKE packets addressed to us, and the BGP segments (TCP port 179) and BFD control packets
// (UDP port 3784) to our interfaces' addresses, over a ring; it writes them to the kernel, and
// what the kernel sends back (IKE from a tunnel endpoint, BGP and BFD from an interface's address
// or from one local in a tunnel's tenant: an ESP backbone's) is handed to worker 0 to be routed
// out in that tenant. Only the main lcore makes system calls.
#include <rte_ether.h>
#include <rte_mempool.h>
#include <rte_ring.h>

#include <atomic>
#include <optional>
#include <string>

namespace medix::dp {

struct Tables;

class ExceptionPort {
 public:
  ~ExceptionPort();
  std::optional<std::string> open(const std::string& name, unsigned socket);
  // Main lcore: moves packets both ways. `to_worker` is the ring worker 0 takes them from.
  unsigned poll(const Tables& tables, rte_mempool* pool, rte_ring* to_worker);
  rte_ring* from_workers() const { return punt_; }
  bool is_open() const { return fd_ >= 0; }
  uint64_t to_kernel() const { return to_kernel_; }
  uint64_t from_kernel() const { return from_kernel_; }

 private:
  void answer_arp(const uint8_t* frame, size_t len);
  int fd_ = -1;
  rte_ring* punt_ = nullptr;
  rte_ether_addr kernel_mac_{};
  uint64_t to_kernel_ = 0, from_kernel_ = 0;
};

}  // namespace medix::dp
