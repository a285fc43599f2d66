#pragma once
// Prometheus metrics of medix-cp (prefix medix_cp_): its peers and IKE_SAs as charon has them,
// IKE and CHILD_SA events, the reconcile runs that bring medix-dp to the intent, and whether
// medix-dp is connected. Served by common/metrics_http.h's thread: charon's state is read
// through the glue (its own locking and atomics), DataplaneClient's through its stats lock and
// atomics, the intent as a copy. No PSK, key or certificate path is ever written.
#include <optional>
#include <string>

#include "common/metrics_http.h"
#include "control_service.h"
#include "dataplane_client.h"
#include "ha/link.h"

namespace medix::cp {

// The whole exposition: HELP and TYPE lines, then samples.
// `ha_link`: a node of a pair's IKE sync link (nullptr: none, its families left out).
std::string render_metrics(ControlService& service, DataplaneClient& dataplane, const ha::Link* ha_link = nullptr);

class MetricsServer {
 public:
  // Listens on HOST:PORT (a name or an address; [::1]:PORT for IPv6) and serves in a thread.
  std::optional<std::string> start(ControlService& service, DataplaneClient& dataplane, const std::string& listen,
                                   const ha::Link* ha_link = nullptr) {
    return http_.start(
        listen, [&service, &dataplane, ha_link] { return render_metrics(service, dataplane, ha_link); }, "medix-cp");
  }
  void stop() { http_.stop(); }

 private:
  common::MetricsHttpServer http_;
};

}  // namespace medix::cp
