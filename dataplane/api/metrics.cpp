#include "api/metrics.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "runtime/snapshot.h"

namespace medix::dp {

namespace {

// A label value: backslash, double quote and newline escaped (exposition format 0.0.4).
std::string quoted(const std::string& value) {
  std::string out = "\"";
  for (char c : value) {
    if (c == '\\' || c == '"')
      out += {'\\', c};
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
  return out + "\"";
}

// Samples of one metric, its HELP and TYPE written once before them.
class Family {
 public:
  Family(std::ostringstream& out, const char* name, const char* type, const char* help) : out_(out), name_(name) {
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  }
  // labels: {name, value}...; value: a count (uint64_t) or a ratio (double).
  template <typename V>
  Family& sample(std::initializer_list<std::pair<const char*, std::string>> labels, V value) {
    out_ << name_;
    if (labels.size()) {
      out_ << '{';
      bool first = true;
      for (const auto& [label, text] : labels) {
        out_ << (first ? "" : ",") << label << '=' << quoted(text);
        first = false;
      }
      out_ << '}';
    }
    out_ << ' ' << value << '\n';
    return *this;
  }

 private:
  std::ostringstream& out_;
  const char* name_;
};

}  // namespace

std::string render_metrics(Dataplane& dp) {
  CounterSnapshot s = take_snapshot(dp);
  std::ostringstream out;
  out.precision(17);
  Family(out, "medix_config_version", "gauge", "The version of the running configuration (transactions applied).")
      .sample({}, s.version);
  Family(out, "medix_counters_since_seconds", "gauge",
         "Unix time counters count from: the last ClearCounters, or the start.")
      .sample({}, double(s.since_ns) / 1e9);

  struct PortField {
    const char* name;
    const char* help;
    uint64_t Counters::Port::*field;
  };
  static const PortField port_fields[] = {
      {"medix_port_rx_packets_total", "Frames the workers received from the port.", &Counters::Port::rx_packets},
      {"medix_port_rx_bytes_total", "Bytes the workers received from the port.", &Counters::Port::rx_bytes},
      {"medix_port_tx_packets_total", "Frames the port's tx queues accepted.", &Counters::Port::tx_packets},
      {"medix_port_tx_bytes_total", "Bytes the port's tx queues accepted.", &Counters::Port::tx_bytes},
      {"medix_port_tx_dropped_total", "Frames the port's tx queues refused.", &Counters::Port::tx_dropped},
  };
  for (const auto& f : port_fields) {
    Family family(out, f.name, "counter", f.help);
    for (const auto& [name, p] : s.ports) family.sample({{"port", name}}, p.*f.field);
  }
  {
    Family up(out, "medix_port_link_up", "gauge", "1 if the port's link is up (rte_eth_link).");
    for (size_t i = 0; i < s.ports.size(); i++) up.sample({{"port", s.ports[i].first}}, uint64_t(s.nics[i].link_up));
    Family speed(out, "medix_port_link_speed_mbps", "gauge", "The port's link speed in Mbit/s (0: unknown).");
    for (size_t i = 0; i < s.ports.size(); i++)
      speed.sample({{"port", s.ports[i].first}}, uint64_t(s.nics[i].speed_mbps));
  }
  struct NicField {
    const char* name;
    const char* help;
    uint64_t NicStats::*field;
  };
  static const NicField nic_fields[] = {
      {"medix_port_nic_rx_packets_total", "Frames the NIC received (rte_eth_stats ipackets).", &NicStats::rx_packets},
      {"medix_port_nic_tx_packets_total", "Frames the NIC sent (opackets).", &NicStats::tx_packets},
      {"medix_port_nic_rx_bytes_total", "Bytes the NIC received (ibytes).", &NicStats::rx_bytes},
      {"medix_port_nic_tx_bytes_total", "Bytes the NIC sent (obytes).", &NicStats::tx_bytes},
  };
  for (const auto& f : nic_fields) {
    Family family(out, f.name, "counter", f.help);
    for (size_t i = 0; i < s.ports.size(); i++) family.sample({{"port", s.ports[i].first}}, s.nics[i].*f.field);
  }
  {
    Family drops(out, "medix_port_nic_drops_total", "counter",
                 "Frames the NIC dropped before a worker saw them, or failed to send, by reason.");
    for (size_t i = 0; i < s.ports.size(); i++)
      for (const auto& d : nic_drops)
        drops.sample({{"port", s.ports[i].first}, {"reason", d.name}}, s.nics[i].*d.field);
  }

  struct InterfaceField {
    const char* name;
    const char* help;
    uint64_t Counters::Interface::*field;
  };
  static const InterfaceField interface_fields[] = {
      {"medix_interface_rx_packets_total", "Frames classified to the interface.", &Counters::Interface::rx_packets},
      {"medix_interface_rx_bytes_total", "Bytes classified to the interface.", &Counters::Interface::rx_bytes},
      {"medix_interface_tx_packets_total", "Frames sent out of the interface.", &Counters::Interface::tx_packets},
      {"medix_interface_tx_bytes_total", "Bytes sent out of the interface.", &Counters::Interface::tx_bytes},
  };
  for (const auto& f : interface_fields) {
    Family family(out, f.name, "counter", f.help);
    for (size_t i = 0; i < s.interfaces.size(); i++)
      family.sample({{"interface", s.interfaces[i].first}, {"tenant", s.interface_tenants[i]}},
                    s.interfaces[i].second.*f.field);
  }
  {
    Family rx(out, "medix_tenant_rx_packets_total", "counter", "Frames received on the tenant's interfaces.");
    for (const auto& [name, t] : s.tenants) rx.sample({{"tenant", name}}, t.rx_packets);
    Family tx(out, "medix_tenant_tx_packets_total", "counter", "Packets forwarded out of the tenant's interfaces.");
    for (const auto& [name, t] : s.tenants) tx.sample({{"tenant", name}}, t.tx_packets);
    Family drops(out, "medix_tenant_drops_total", "counter", "Packets dropped while in the tenant.");
    for (const auto& [name, t] : s.tenants) drops.sample({{"tenant", name}}, t.drops);
  }
  {
    Family drops(out, "medix_drops_total", "counter", "Packets the workers dropped, by reason (all workers).");
    for (unsigned r = 0; r < drop_reason_count; r++)
      drops.sample({{"reason", drop_reasons[r].name}}, s.totals.drops[r]);
  }
  {
    Family tunnel_rx(out, "medix_tunnel_rx_packets_total", "counter", "Packets decrypted from the tunnel.");
    for (const auto& t : s.tunnels) tunnel_rx.sample({{"tunnel", t.name}}, t.counters.rx_packets);
    Family tunnel_tx(out, "medix_tunnel_tx_packets_total", "counter", "Packets encrypted into the tunnel.");
    for (const auto& t : s.tunnels) tunnel_tx.sample({{"tunnel", t.name}}, t.counters.tx_packets);
    Family packets(out, "medix_sa_packets_total", "counter", "Packets through the SA.");
    for (const auto& sa : s.sas)
      packets.sample({{"tunnel", sa.tunnel}, {"spi", std::to_string(sa.spi)}, {"direction", sa.inbound ? "in" : "out"}},
                     sa.packets);
    Family bytes(out, "medix_sa_bytes_total", "counter", "Bytes through the SA.");
    for (const auto& sa : s.sas)
      bytes.sample({{"tunnel", sa.tunnel}, {"spi", std::to_string(sa.spi)}, {"direction", sa.inbound ? "in" : "out"}},
                   sa.bytes);
    Family drops(out, "medix_sa_drops_total", "counter", "Packets of the SA dropped, by reason.");
    for (const auto& sa : s.sas)
      for (unsigned r = 0; r < sa_drop_count; r++)
        drops.sample({{"tunnel", sa.tunnel},
                      {"spi", std::to_string(sa.spi)},
                      {"direction", sa.inbound ? "in" : "out"},
                      {"reason", drop_reasons[unsigned(first_sa_drop) + r].name}},
                     sa.drops[r]);
  }
  {
    Family sessions(out, "medix_nat_sessions", "gauge", "Sessions crossing the core now, by origin tenant.");
    for (const auto& n : s.nat) sessions.sample({{"tenant", n.tenant}}, n.sessions);
    Family created(out, "medix_nat_sessions_created_total", "counter", "Sessions created, by origin tenant.");
    for (const auto& n : s.nat) created.sample({{"tenant", n.tenant}}, n.counters.sessions_created);
    Family translated(out, "medix_nat_translated_packets_total", "counter",
                      "Packets from the tenant that crossed the core.");
    for (const auto& n : s.nat) translated.sample({{"tenant", n.tenant}}, n.counters.translated);
    Family mappings(out, "medix_nat_napt_mappings", "gauge", "NAPT address and port pairs in use now.");
    for (const auto& n : s.nat) mappings.sample({{"tenant", n.tenant}}, n.mappings);
    Family refused(out, "medix_nat_refused_total", "counter", "New flows refused, by origin tenant and reason.");
    for (const auto& n : s.nat) {
      refused.sample({{"tenant", n.tenant}, {"reason", "pool_exhausted"}}, n.counters.pool_exhausted);
      refused.sample({{"tenant", n.tenant}, {"reason", "session_limit"}}, n.counters.session_limit);
      refused.sample({{"tenant", n.tenant}, {"reason", "no_mapping"}}, n.counters.no_mapping);
      refused.sample({{"tenant", n.tenant}, {"reason", "policy_denied"}}, n.counters.policy_denied);
    }
  }
  {
    Family calls(out, "medix_stage_calls_total", "counter", "Calls of the pipeline stage, by worker lcore.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      for (unsigned st = 0; st < unsigned(Stage::count); st++)
        calls.sample({{"stage", stage_names[st]}, {"lcore", std::to_string(dp.workers[q]->lcore)}},
                     s.lcores[q].stages[st].calls);
    Family packets(out, "medix_stage_packets_total", "counter", "Packets through the pipeline stage.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      for (unsigned st = 0; st < unsigned(Stage::count); st++)
        packets.sample({{"stage", stage_names[st]}, {"lcore", std::to_string(dp.workers[q]->lcore)}},
                       s.lcores[q].stages[st].packets);
    Family cycles(out, "medix_stage_cycles_total", "counter", "TSC cycles spent in the pipeline stage.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      for (unsigned st = 0; st < unsigned(Stage::count); st++)
        cycles.sample({{"stage", stage_names[st]}, {"lcore", std::to_string(dp.workers[q]->lcore)}},
                      s.lcores[q].stages[st].cycles);
  }
  {
    Family hz(out, "medix_tsc_hz", "gauge", "TSC cycles per second.");
    hz.sample({}, dp.tsc_hz);
    Family loops(out, "medix_worker_loops_total", "counter", "Iterations of the worker's loop.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      loops.sample({{"lcore", std::to_string(dp.workers[q]->lcore)}}, s.lcores[q].loops);
    Family empty(out, "medix_worker_empty_polls_total", "counter", "Iterations that found no work.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      empty.sample({{"lcore", std::to_string(dp.workers[q]->lcore)}}, s.lcores[q].empty_polls);
    Family busy(out, "medix_worker_busy_cycles_total", "counter", "TSC cycles of the iterations that had work.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      busy.sample({{"lcore", std::to_string(dp.workers[q]->lcore)}}, s.lcores[q].busy_cycles);
    Family cycles(out, "medix_worker_cycles_total", "counter", "TSC cycles of all iterations.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      cycles.sample({{"lcore", std::to_string(dp.workers[q]->lcore)}}, s.lcores[q].loop_cycles);
    Family share(out, "medix_worker_busy_ratio", "gauge",
                 "Busy cycles / all cycles since the counters' start (0..1; 1 - headroom).");
    for (size_t q = 0; q < s.lcores.size(); q++) {
      const LcoreStats& l = s.lcores[q];
      share.sample({{"lcore", std::to_string(dp.workers[q]->lcore)}},
                   l.loop_cycles ? double(l.busy_cycles) / double(l.loop_cycles) : 0.0);
    }
  }
  return out.str();
}

std::optional<std::string> MetricsServer::start(Dataplane& dp, const std::string& listen) {
  dp_ = &dp;
  auto colon = listen.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == listen.size())
    return listen + ": expected HOST:PORT (e.g. 127.0.0.1:9464)";
  std::string host = listen.substr(0, colon), port = listen.substr(colon + 1);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  if (int e = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); e != 0) return listen + ": " + gai_strerror(e);
  std::string error;
  for (addrinfo* a = found; a && fd_ < 0; a = a->ai_next) {
    int fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && ::listen(fd, 16) == 0) {
      fd_ = fd;
    } else {
      error = strerror(errno);
      close(fd);
    }
  }
  freeaddrinfo(found);
  if (fd_ < 0) return listen + ": cannot listen: " + error;
  thread_ = std::thread([this] { serve(); });
  return std::nullopt;
}

void MetricsServer::stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

// One connection at a time, each with 2 s to send its request and take the answer: a scrape
// every second or so needs no more, and a stuck client cannot hold the thread.
void MetricsServer::serve() {
  while (!stopping_.load()) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) continue;
    timeval timeout{2, 0};
    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    std::string request;
    char buffer[2048];
    while (request.find("\r\n\r\n") == std::string::npos && request.size() < 16384) {
      ssize_t n = recv(c, buffer, sizeof buffer, 0);
      if (n <= 0) break;
      request.append(buffer, size_t(n));
    }
    std::string line = request.substr(0, request.find("\r\n"));
    std::string path = line.starts_with("GET ") ? line.substr(4, line.find(' ', 4) - 4) : "";
    std::string status, type, body;
    if (path == "/metrics" || path.starts_with("/metrics?")) {
      status = "200 OK";
      type = "text/plain; version=0.0.4; charset=utf-8";
      body = render_metrics(*dp_);
    } else {
      status = "404 Not Found";
      type = "text/plain; charset=utf-8";
      body = "medix-dp serves GET /metrics only\n";
    }
    std::string head = "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                       "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n";
    std::string all = head + body;
    for (size_t sent = 0; sent < all.size();) {
      ssize_t n = send(c, all.data() + sent, all.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) break;
      sent += size_t(n);
    }
    close(c);
  }
}

}  // namespace medix::dp
