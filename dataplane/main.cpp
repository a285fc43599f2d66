// medix-dp: the dataplane. `medix-dp [EAL options] -- --config FILE [--check] [--stats-interval S]`
#include <intel-ipsec-mb.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_pdump.h>
#include <rte_version.h>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <rte_ethdev.h>

#include "api/metrics.h"
#include "api/server.h"
#include "common/log.h"
#include "common/notify.h"
#include "common/version.h"
#include "config/load.h"
#include "config/settings.h"
#include "control/intent.h"
#include "ha/reserve.h"
#include "ha/sync.h"
#include "runtime/dataplane.h"
#include "runtime/memory.h"

using namespace medix::dp;

namespace {

std::atomic<bool> stop_requested{false};
std::atomic<bool> hangup{false};

void on_signal(int) { stop_requested.store(true); }
void on_hangup(int) { hangup.store(true); }

struct Options {
  std::string config;
  bool check = false;
  unsigned stats_interval = 0;
  ApiOptions api;
  std::string metrics_listen;  // HOST:PORT of the Prometheus endpoint; empty: none
  bool standby = false;        // --ha-role standby
  std::string ha_vrrp_group;   // --ha-vrrp-group: VRRP drives the role
  medix::dp::ha::Options ha;   // HA state sync (docs/ha.md); unset: none
  std::string state_dir;       // --state-dir: outbound sequence numbers reserved on disk
  unsigned sa_seq_block = 1u << 24;
};

const char usage[] =
    "usage: medix-dp [EAL options] -- --config FILE [options]\n"
    "       medix-dp --version | --help\n"
    "  --config FILE           startup config: JSON of medix.dataplane.v1.Config\n"
    "  --check                 validate the config, estimate the memory it needs (-m) and exit\n"
    "  --stats-interval S      print counters every S seconds\n"
    "  --api-socket PATH       the gRPC API's unix socket (default: EAL runtime dir/api.sock)\n"
    "  --api-listen HOST:PORT  also serve the API over TCP, TLS with client certificates only:\n"
    "  --tls-cert FILE --tls-key FILE --tls-client-ca FILE --api-roles FILE\n"
    "  --api-roles FILE        who may do what: {\"identities\": {\"CN=nms\": \"monitor\", ...}}\n"
    "  --api-max-streams N     watch streams open at once (default 64)\n"
    "  --api-max-streams-per-client N  of those, one identity's (default 16)\n"
    "  --api-stall-timeout MS  end a stream whose client took nothing for MS (default 10000)\n"
    "  --metrics-listen HOST:PORT  serve Prometheus metrics (GET /metrics, plain HTTP, read only)\n"
    "  --log-level LEVEL       error, warning, notice, info (default: transactions, SA events,\n"
    "                          ARP failures) or debug; under systemd, lines carry journald priorities\n"
    "  --ha-role ROLE          active (default) or standby: a standby crosses nothing and installs\n"
    "                          the active's sessions; SetHaRole (medixctl ha-sync role) changes it\n"
    "  --ha-vrrp-group NAME    VRRP drives the role: active while this node is master of the\n"
    "                          instances of group NAME, standby while it is their backup\n"
    "  --ha-sync-local HOST:PORT  --ha-sync-peer HOST:PORT  --ha-sync-key-file FILE\n"
    "                          HA state sync over UDP on the sync link, HMAC-SHA-256 with FILE's key\n"
    "  --ha-sync-refresh S     every session's timer sent again every S s (default 10)\n"
    "  --ha-sync-sa-interval MS  every SA's sequence number sent every MS ms (default 100)\n"
    "  --ha-sync-bulk-rate N   records a second at most in a bulk resync (default 250000)\n"
    "  --ha-sync-sa-margin N   outbound sequence numbers a takeover skips, and the fence's headroom\n"
    "                          (default: 148.8 Mpps x 2 SA intervals, at least 2^20; for tests)\n"
    "  --state-dir DIR         outbound SAs' sequence numbers reserved in DIR/sa-seq, a block ahead:\n"
    "                          a restart or a takeover never sends one again (docs/ha.md)\n"
    "  --sa-seq-block N        sequence numbers a write reserves (default 16777216; for tests)\n";

// `option`'s value: a whole number in 1..max, or false (said on stderr).
bool number(const std::string& option, const char* text, unsigned max, unsigned& out) {
  char* end = nullptr;
  errno = 0;
  unsigned long n = strtoul(text, &end, 10);
  if (errno || end == text || *end || text[0] == '-' || n < 1 || n > max) {
    fprintf(stderr, "medix-dp: %s %s: a whole number from 1 to %u\n", option.c_str(), text, max);
    return false;
  }
  out = unsigned(n);
  return true;
}

// Our options are those after "--" (DPDK's convention); EAL never sees them.
// Why rte_eal_init failed. EAL leaves rte_errno at 0 when another primary process holds the
// lock on its runtime directory (same --file-prefix, or one killed a moment ago and not yet
// gone): say so, with that process.
std::string eal_failure() {
  std::string config = std::string(rte_eal_get_runtime_dir()) + "/config";
  int fd = open(config.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    struct flock lock {};
    lock.l_type = F_WRLCK;
    lock.l_whence = SEEK_SET;
    bool held = fcntl(fd, F_GETLK, &lock) == 0 && lock.l_type != F_UNLCK;
    close(fd);
    if (held)
      return "another primary process (pid " + std::to_string(lock.l_pid) + ") uses this --file-prefix (" +
             rte_eal_get_runtime_dir() + " is locked): stop it, or give this one another --file-prefix";
  }
  if (rte_errno) return rte_strerror(rte_errno);
  return "initialisation failed (EAL's messages above say why)";
}

// EAL leaves its runtime directory behind (config, fbarray files); an exit after a successful
// rte_eal_init removes it. The lock on `config` is still held, so no other primary of the same
// prefix runs: every file goes, `config` last, then the folder (a primary starting in between
// keeps its files: rmdir fails on them).
void remove_runtime_dir(const std::string& dir) {
  DIR* d = opendir(dir.c_str());
  if (!d) return;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name != "." && name != ".." && name != "config") unlinkat(dirfd(d), name.c_str(), 0);
  }
  closedir(d);
  unlink((dir + "/config").c_str());
  rmdir(dir.c_str());
}

bool parse_options(int argc, char** argv, Options& o) {
  int i = 0;
  while (i < argc && strcmp(argv[i], "--") != 0) i++;
  for (i++; i < argc; i++) {
    std::string a = argv[i];
    if (a == "--config" && i + 1 < argc)
      o.config = argv[++i];
    else if (a == "--check")
      o.check = true;
    else if (a == "--stats-interval" && i + 1 < argc)
      o.stats_interval = unsigned(std::stoul(argv[++i]));
    else if (a == "--api-socket" && i + 1 < argc)
      o.api.socket_path = argv[++i];
    else if (a == "--api-listen" && i + 1 < argc)
      o.api.listen = argv[++i];
    else if (a == "--tls-cert" && i + 1 < argc)
      o.api.tls_cert = argv[++i];
    else if (a == "--tls-key" && i + 1 < argc)
      o.api.tls_key = argv[++i];
    else if (a == "--tls-client-ca" && i + 1 < argc)
      o.api.tls_client_ca = argv[++i];
    else if (a == "--metrics-listen" && i + 1 < argc)
      o.metrics_listen = argv[++i];
    else if (a == "--api-roles" && i + 1 < argc)
      o.api.roles = argv[++i];
    else if (a == "--api-max-streams" && i + 1 < argc) {
      if (!number(a, argv[++i], 100000, o.api.streams.max_streams)) return false;
    } else if (a == "--api-max-streams-per-client" && i + 1 < argc) {
      if (!number(a, argv[++i], 100000, o.api.streams.max_per_client)) return false;
    } else if (a == "--api-stall-timeout" && i + 1 < argc) {
      if (!number(a, argv[++i], 3600000, o.api.streams.stall_ms)) return false;
    } else if (a == "--log-level" && i + 1 < argc) {
      auto level = medix::common::parse_log_level(argv[++i]);
      if (!level) {
        fprintf(stderr, "medix-dp: --log-level %s: one of error, warning, notice, info, debug\n", argv[i]);
        return false;
      }
      medix::common::set_log_level(*level);
    } else if (a == "--ha-role" && i + 1 < argc) {
      std::string role = argv[++i];
      if (role != "active" && role != "standby") {
        fprintf(stderr, "medix-dp: --ha-role %s: active or standby\n", role.c_str());
        return false;
      }
      o.standby = role == "standby";
    } else if (a == "--ha-vrrp-group" && i + 1 < argc) {
      o.ha_vrrp_group = argv[++i];
    } else if (a == "--ha-sync-local" && i + 1 < argc) {
      o.ha.local = argv[++i];
    } else if (a == "--ha-sync-peer" && i + 1 < argc) {
      o.ha.peer = argv[++i];
    } else if (a == "--ha-sync-key-file" && i + 1 < argc) {
      o.ha.key_file = argv[++i];
    } else if (a == "--ha-sync-refresh" && i + 1 < argc) {
      if (!number(a, argv[++i], 86400, o.ha.refresh_s)) return false;
    } else if (a == "--ha-sync-sa-interval" && i + 1 < argc) {
      if (!number(a, argv[++i], 10000, o.ha.sa_interval_ms)) return false;
    } else if (a == "--ha-sync-sa-margin" && i + 1 < argc) {
      unsigned margin = 0;
      if (!number(a, argv[++i], 1u << 31, margin)) return false;
      o.ha.sa_margin = margin;
    } else if (a == "--ha-sync-bulk-rate" && i + 1 < argc) {
      if (!number(a, argv[++i], 100000000, o.ha.bulk_rate)) return false;
    } else if (a == "--state-dir" && i + 1 < argc) {
      o.state_dir = argv[++i];
    } else if (a == "--sa-seq-block" && i + 1 < argc) {
      if (!number(a, argv[++i], 1u << 31, o.sa_seq_block)) return false;
    } else if (a == "-h" || a == "--help")
      return false;
    else {
      fprintf(stderr, "medix-dp: unknown option %s\n", a.c_str());
      return false;
    }
  }
  if (o.config.empty()) {
    fprintf(stderr, "medix-dp: --config FILE is required\n");
    return false;
  }
  if (!o.api.listen.empty() && (o.api.tls_cert.empty() || o.api.tls_key.empty() || o.api.tls_client_ca.empty())) {
    fprintf(stderr, "medix-dp: --api-listen needs --tls-cert, --tls-key and --tls-client-ca (no plaintext TCP)\n");
    return false;
  }
  if (!o.api.listen.empty() && o.api.roles.empty()) {
    fprintf(stderr,
            "medix-dp: --api-listen needs --api-roles FILE: which client certificates may read (monitor), clear "
            "sessions (operator) or change the dataplane (controller); see docs/running.md\n");
    return false;
  }
  return true;
}

// The config is the first transaction; a line says where its time went (a million routes
// take seconds: the engineer sees which part).
std::optional<std::string> apply_config(Dataplane& dp, std::vector<medix::dp::Operation> operations,
                                        const std::string& file, double read_s) {
  size_t objects = operations.size();
  auto r = dp.controller.apply(operations);
  if (r.code != medix::dp::Code::ok) return file + ": " + r.message;
  auto s = [](uint64_t ns) { return double(ns) / 1e9; };
  medix::common::log(medix::common::LogLevel::info,
                     "medix-dp: %s: %zu objects, version %lu, in %.2f s: read %.2f s, checked %.2f s, built %.2f s, "
                     "grace %.3f s, reclaimed %.2f s",
                     file.c_str(), objects, (unsigned long)r.version, read_s + s(r.nanoseconds), read_s, s(r.check_ns),
                     s(r.commit.build_ns), s(r.commit.grace_ns), s(r.commit.reclaim_ns));
  return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  // Before EAL, which would take them for its own: anywhere on the line.
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--version")) {
      printf("medix-dp %s, %s, Intel IPsec-MB %s\n", medix::common::version(), rte_version(), imb_get_version_str());
      return 0;
    }
    if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
      fputs(usage, stdout);
      return 0;
    }
  }
  Options options;
  if (!parse_options(argc, argv, options)) {
    fputs(usage, stderr);
    return 2;
  }
  // The file is checked before EAL starts, so that a typo costs no start-up time.
  auto read_start = std::chrono::steady_clock::now();
  auto loaded = medix::dp::load_file(options.config);
  if (auto* error = std::get_if<std::string>(&loaded)) {
    fprintf(stderr, "medix-dp: %s\n", error->c_str());
    return 2;
  }
  auto& config = std::get<medix::dataplane::v1::Config>(loaded);
  uint32_t max_mtu = 1500;
  for (const auto& p : config.ports()) max_mtu = std::max(max_mtu, p.mtu());
  Settings settings = settings_from(config.settings());
  // What EAL's memory must hold for it, for --check (before the config goes into operations).
  const EalShape eal = options.check ? eal_shape(argc, argv) : EalShape{};
  const MemoryEstimate memory =
      options.check ? estimate_memory(config, settings, eal, max_mtu, options.ha.configured()) : MemoryEstimate{};
  // The file's objects are the first transaction, validated like any API request.
  auto operations = medix::dp::operations_from(std::move(config));
  double read_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - read_start).count();
  if (options.check) {
    medix::dp::Intent intent;
    medix::dp::Diff diff;
    if (auto e = intent.apply(operations, diff)) {
      fprintf(stderr, "medix-dp: %s: %s\n", options.config.c_str(), e->message.c_str());
      return 2;
    }
    printf("%s: ok\n", options.config.c_str());
    print_estimate(stdout, memory, eal);
    return 0;
  }

  // The sequence numbers on disk, read before EAL too: a bad file stops the start (docs/ha.md).
  medix::dp::ha::Reserve reserve;
  if (!options.state_dir.empty())
    if (auto error = reserve.open(options.state_dir, options.sa_seq_block)) {
      fprintf(stderr, "medix-dp: %s\n", error->c_str());
      return 2;
    }

  int eal_args = 0;
  while (eal_args < argc && strcmp(argv[eal_args], "--") != 0) eal_args++;
  if (rte_eal_init(eal_args, argv) < 0) {
    fprintf(stderr, "medix-dp: EAL: %s\n", eal_failure().c_str());
    return 1;
  }
  // So that stock dpdk-dumpcap (a secondary process) can capture on our ports. Secondaries
  // attach only to a primary with hugepages: under --no-huge use `medixctl capture`.
  if (rte_pdump_init() != 0)
    fprintf(stderr, "medix-dp: rte_pdump_init failed (%s): dpdk-dumpcap will not attach\n", rte_strerror(rte_errno));
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::signal(SIGHUP, on_hangup);

  std::vector<unsigned> workers;
  unsigned lcore;
  RTE_LCORE_FOREACH_WORKER(lcore) workers.push_back(lcore);
  if (workers.empty() || workers.size() > max_workers) {
    fprintf(stderr, "medix-dp: give 1..%u worker lcores besides the main one (e.g. -l 0,1)\n", max_workers);
    std::string runtime_dir = rte_eal_get_runtime_dir();
    rte_eal_cleanup();
    remove_runtime_dir(runtime_dir);
    return 2;
  }

  int status = 0;
  {
    Dataplane dp;
    medix::dp::ha::Sync ha;
    dp.ha_roles.start(dp.ha_standby, options.standby);
    dp.ha_vrrp_group = options.ha_vrrp_group;
    dp.ha_sync = options.ha.configured();
    if (dp.ha_sync) dp.controller.track_digest();  // the pair compares their intents
    ApiServer api;
    MetricsServer metrics;
    if (options.api.socket_path.empty()) options.api.socket_path = std::string(rte_eal_get_runtime_dir()) + "/api.sock";
    dp.controller.set_device_check([](const std::string& device) {
      uint16_t id;
      return rte_eth_dev_get_port_by_name(device.c_str(), &id) == 0;
    });
    dp.sa_reserve = reserve.configured() ? &reserve : nullptr;
    if (auto error = dp.start(settings, max_mtu, workers)) {
      fprintf(stderr, "medix-dp: %s\n", error->c_str());
      status = 2;
    } else if (auto error = apply_config(dp, std::exchange(operations, {}), options.config, read_s)) {
      fprintf(stderr, "medix-dp: %s\n", error->c_str());
      status = 2;
    } else if (auto error = reserve.configured() ? reserve.start(dp) : std::nullopt) {
      fprintf(stderr, "medix-dp: %s\n", error->c_str());
      status = 2;
    } else if (auto error = dp.ha_sync ? ha.start(dp, options.ha) : std::nullopt) {
      fprintf(stderr, "medix-dp: %s\n", error->c_str());
      status = 2;
    } else if (auto error = (dp.ha = dp.ha_sync ? &ha : nullptr, api.start(dp, options.api))) {
      fprintf(stderr, "medix-dp: API: %s\n", error->c_str());
      status = 2;
    } else if (auto error = options.metrics_listen.empty() ? std::nullopt : metrics.start(dp, options.metrics_listen)) {
      fprintf(stderr, "medix-dp: --metrics-listen %s\n", error->c_str());
      status = 2;
    } else {
      register_telemetry(dp);
      size_t ports = dp.controller.read([](auto&, auto& c, uint64_t) { return c.current()->ports.size(); });
      medix::common::log(medix::common::LogLevel::notice, "medix-dp: ready (%zu ports, %zu workers)", ports,
                         workers.size());
      medix::common::notify_ready(std::to_string(ports) + " ports, " + std::to_string(workers.size()) + " workers");
      auto next_stats = std::chrono::steady_clock::now() + std::chrono::seconds(options.stats_interval);
      while (!stop_requested.load()) {
        dp.run_control();
        if (hangup.exchange(false)) {
          // Daemons reload on SIGHUP; medix-dp's state changes only by transactions.
          medix::common::log(medix::common::LogLevel::notice,
                             "medix-dp: SIGHUP: nothing to reload (change the running state through the API)");
        }
        if (options.stats_interval && std::chrono::steady_clock::now() >= next_stats) {
          print_counters(dp, stdout);
          next_stats += std::chrono::seconds(options.stats_interval);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      medix::common::notify_stopping();
    }
    metrics.stop();
    api.stop();
    ha.stop();
    dp.ha = nullptr;
    reserve.stop();
    dp.stop();
    if (status == 0) {
      printf("medix-dp: stopping; final counters:\n");
      print_counters(dp, stdout);
    }
  }
  std::string runtime_dir = rte_eal_get_runtime_dir();
  rte_pdump_uninit();
  rte_eal_cleanup();
  remove_runtime_dir(runtime_dir);
  return status;
}
