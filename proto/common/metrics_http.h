#pragma once
// Prometheus metrics as medix-dp and medix-cp serve them: the text exposition format 0.0.4
// (MetricFamily writes one metric's HELP, TYPE and samples), served over HTTP/1.1 on
// GET /metrics (anything else: 404) by one thread of its own, never a worker or a charon thread.
#include <atomic>
#include <functional>
#include <initializer_list>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace medix::common {

// A label value: backslash, double quote and newline escaped, in double quotes.
std::string quoted_label(const std::string& value);

// Samples of one metric, its HELP and TYPE written once before them.
class MetricFamily {
 public:
  MetricFamily(std::ostringstream& out, const char* name, const char* type, const char* help) : out_(out), name_(name) {
    out_ << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
  }
  // labels: {name, value}...; value: a count (an integer) or a ratio (double).
  template <typename V>
  MetricFamily& sample(std::initializer_list<std::pair<const char*, std::string>> labels, V value) {
    return write(labels, value);
  }
  // The same with labels built at run time (a kind's counters, api/metrics.cpp).
  template <typename V>
  MetricFamily& sample(const std::vector<std::pair<std::string, std::string>>& labels, V value) {
    return write(labels, value);
  }

 private:
  template <typename Labels, typename V>
  MetricFamily& write(const Labels& labels, V value) {
    out_ << name_;
    if (labels.size()) {
      out_ << '{';
      bool first = true;
      for (const auto& [label, text] : labels) {
        out_ << (first ? "" : ",") << label << '=' << quoted_label(text);
        first = false;
      }
      out_ << '}';
    }
    out_ << ' ' << value << '\n';
    return *this;
  }

  std::ostringstream& out_;
  const char* name_;
};

class MetricsHttpServer {
 public:
  ~MetricsHttpServer() { stop(); }
  // Listens on HOST:PORT (a name or an address; [::1]:PORT for IPv6) and serves in a thread;
  // each GET /metrics answers render(). `daemon` names the binary in the 404 text. An error, or
  // nothing.
  std::optional<std::string> start(const std::string& listen, std::function<std::string()> render,
                                   const std::string& daemon);
  void stop();
  // The port listened on (where start was given port 0: the one the kernel chose); 0 if none.
  unsigned port() const;

 private:
  void serve();
  std::function<std::string()> render_;
  std::string daemon_;
  int fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace medix::common
