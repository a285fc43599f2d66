#pragma once
// Queries per tenant, from Knot DNS itself: knotd's probe module (mod-probe, built into Debian's
// knotd) sends one datagram per query and reply to a unix socket medix-cp binds; the query's
// source is a core address (queries reach the DNS service translated), and the tenant whose
// static mapping or NAPT pool owns it is the tenant that asked. Knot's statistics module counts
// per zone and server only, not per source: the probe is how Knot tells who asked.

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "medix/controlplane/v1/intent.pb.h"

namespace medix::cp::dns {

namespace c1 = medix::controlplane::v1;

struct TenantQueries {
  uint64_t queries = 0;   // query and reply pairs Knot reported
  uint64_t nxdomain = 0;  // of which answered NXDOMAIN
  uint64_t refused = 0;   // of which REFUSED (a name outside Knot's zones)
};

// A datagram of mod-probe (libknot's knot_probe_data_t, read as bytes): the query's IPv4 source
// and the reply's RCODE; false when it is not one (too short, not IPv4).
bool probe_source(const uint8_t* data, size_t size, uint32_t& source, uint16_t& rcode);

class Probe {
 public:
  // `dir`: mod-probe's `path` in knot.conf (its channel 1, dir/probe01.sock, is bound here).
  explicit Probe(std::string dir) : dir_(std::move(dir)) {}
  ~Probe() { stop(); }
  // Binds the socket and starts reading; "" or why not.
  std::string start();
  void stop();
  // Who owns which core addresses, from the intent (static mappings' core prefixes, NAPT pools).
  void set_owners(const c1::Intent& intent);
  // Counts since start, by tenant ("" for sources no tenant owns).
  std::map<std::string, TenantQueries> counts() const;

 private:
  void run();
  std::string tenant_of(uint32_t address) const;  // under mu_

  const std::string dir_;
  int fd_ = -1;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  mutable std::mutex mu_;
  struct Owner {
    uint32_t network, mask;
    std::string tenant;
  };
  std::vector<Owner> owners_;  // longest prefix first
  std::map<std::string, TenantQueries> counts_;
};

}  // namespace medix::cp::dns
