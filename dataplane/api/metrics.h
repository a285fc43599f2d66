#pragma once
// Prometheus metrics of medix-dp: the text exposition format 0.0.4, served over HTTP/1.1 on
// GET /metrics (anything else: 404) by one control thread, never a worker. Every scrape reads
// the same snapshot the API reads (runtime/snapshot.h).
#include <atomic>
#include <optional>
#include <string>
#include <thread>

#include "runtime/dataplane.h"

namespace medix::dp {

// The whole exposition: HELP and TYPE lines, then samples.
std::string render_metrics(Dataplane& dp);

class MetricsServer {
 public:
  ~MetricsServer() { stop(); }
  // Listens on HOST:PORT (a name or an address; [::1]:PORT for IPv6) and serves in a thread.
  std::optional<std::string> start(Dataplane& dp, const std::string& listen);
  void stop();

 private:
  void serve();
  Dataplane* dp_ = nullptr;
  int fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace medix::dp
