#pragma once
// Prometheus metrics of medix-dp: the text exposition format 0.0.4, served over HTTP/1.1 on
// GET /metrics (anything else: 404) by one control thread, never a worker (the HTTP server is
// common/metrics_http.h, medix-cp's too). Every scrape reads the same snapshot the API reads
// (runtime/snapshot.h).
#include <optional>
#include <string>

#include "common/metrics_http.h"
#include "runtime/dataplane.h"

namespace medix::dp {

// The whole exposition: HELP and TYPE lines, then samples.
std::string render_metrics(Dataplane& dp);

class MetricsServer {
 public:
  // Listens on HOST:PORT (a name or an address; [::1]:PORT for IPv6) and serves in a thread.
  std::optional<std::string> start(Dataplane& dp, const std::string& listen) {
    return http_.start(
        listen, [&dp] { return render_metrics(dp); }, "medix-dp");
  }
  void stop() { http_.stop(); }

 private:
  common::MetricsHttpServer http_;
};

}  // namespace medix::dp
