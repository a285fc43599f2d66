#pragma once
// Keeps Knot DNS's zones equal to the intent's: zones are members of a catalog zone of medix-cp's
// (Knot's catalog-role "interpret": adding or removing a member is a transaction on the catalog,
// and Knot creates or drops the zone), each zone's records brought to the intent in one
// transaction when it differs. Per-tenant answers: a file of views for Knot's geoip module,
// rewritten when the mappings or hosts change, and knotd told to reload (online). Run on every intent change, when
// medix-cp starts, and every half second after (so that a restarted, empty knotd is filled again within a second).

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "knot.h"
#include "probe.h"
#include "zones.h"

namespace medix::cp::dns {

class Sync {
 public:
  // `socket`: knotd's control socket; `catalog`: the catalog zone knot.conf gives medix-cp;
  // `geoip`: the file knot.conf's geoip module (subnet mode) reads, for per-tenant answers ("": none).
  Sync(const std::string& socket, const std::string& catalog, const std::string& geoip);
  ~Sync() { stop(); }

  // The intent's zones served from now on: Knot brought to them before this returns (new zones
  // waited for, up to 3 s, while Knot creates them from the catalog). "" or what is not there yet
  // (the background pass goes on trying).
  std::string apply(const c1::Intent& intent);
  void start();
  void stop();

  // Queries per tenant from knotd's probe module (docs/dns.md); none until set.
  void set_probe(std::unique_ptr<Probe> probe) { probe_ = std::move(probe); }
  const Probe* probe() const { return probe_.get(); }

  uint64_t transactions() const { return transactions_; }  // committed, since start
  bool in_sync() const { return in_sync_; }                // at the last pass

 private:
  // One pass over every zone; "" or the first error. `pending`: a zone Knot does not have yet.
  std::string reconcile(bool& pending);
  std::string bring(const std::string& name, const Zone& want, bool& pending);
  // The views file rewritten when it differs, and knotd told to reload it.
  std::string bring_views();

  Knot knot_;
  const std::string catalog_;
  std::mutex mu_;  // intent_ and Knot: one pass at a time
  Zones want_;
  std::set<View> views_;
  const std::string geoip_;
  bool views_loaded_ = false;  // knotd has read the file as it is
  bool loaded_once_ = false;   // the file compared once since medix-cp started
  bool configured_ = false;
  std::atomic<uint64_t> transactions_{0};
  std::atomic<bool> in_sync_{false};
  std::string last_error_;
  std::unique_ptr<Probe> probe_;
  std::thread thread_;
  std::mutex stop_mu_;
  std::condition_variable stop_cv_;
  bool stopping_ = false;
};

}  // namespace medix::cp::dns
