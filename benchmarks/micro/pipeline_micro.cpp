// The whole pipeline in one process, without ports' noise (benchmarks/pipeline_micro.py runs
// it; benchmarks/README.md "Pipeline microbenchmark"): the worker loop's body as
// runtime/dataplane.cpp runs it (nat_sweep, rx's counters and stage account, process_burst,
// flush_tx to a net_null port and its account) on bursts of 32 frames that this program writes
// into mbufs beforehand, as a port would; TSC cycles a burst are stamped around that body only.
//
//   pipeline-micro forward|napt [BLOCKS] [BURSTS] [FLOWS]   accounting switched off and on,
//                                                   alternating by block, the order turned every
//                                                   block; FLOWS distinct flows (1,024)
//   pipeline-micro new [SESSIONS] [ROUNDS]          new NAPT sessions, timing off, a fresh
//                                                   table each round; then one round timing on
//                                                   for the nat stage's share
//
//   pipeline-micro esp-in-gcm|esp-in-cbc|esp-out-gcm|esp-out-cbc [BLOCKS] [BURSTS] [FLOWS]
//                                                   as forward, through an ESP tunnel (esp_config)
//
// forward: VLAN 10 -> VLAN 20 in one tenant; napt: the same frames crossing the IX core from
// tenant hosp (NAPT) to tenant archive (static mapping), established sessions (benchmarks/nat.py's
// topology and frames). Each block prints one JSON line. Built twice by meson: pipeline-micro
// (accounting compiled in) and pipeline-micro-noacct (pipeline.cpp and this file with
// MEDIX_STAGE_ACCOUNTING=0: the reference for what the switch costs when off).
#include <rte_cycles.h>
#include <rte_eal.h>
#include <rte_ip.h>
#include <rte_mbuf.h>
#include <unistd.h>

#include <time.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "harness.h"
#include "infra/accounting.h"
#include "ipsec/esp.h"
#include "nat/nat.h"

namespace {

constexpr uint16_t burst = 32;
constexpr uint32_t archive_core = 0x64640000;  // 100.100.0.0/16

const std::string ports =
    R"("ports": [{"name": "in", "device": "net_null0"}, {"name": "out", "device": "net_null1"}],)";
const std::string in10 =
    R"({"name": "in10", "port": "in", "vlan": 10, "addresses": ["10.15.255.254/12"], "mac": "02:00:00:00:01:01")";
const std::string out20 =
    R"({"name": "out20", "port": "out", "vlan": 20, "addresses": ["192.168.255.1/24"], "mac": "02:00:00:00:02:01")";
const std::string neighbour =
    R"("neighbours": [{"interface": "out20", "address": "192.168.255.2", "mac": "02:00:00:00:02:02"}],)";

std::string forward_config() {
  return R"({"schema_version": 1, )" + ports + R"( "tenants": [{"name": "bench", "max_routes": 1024}],
    "interfaces": [)" +
         in10 + R"(, "tenant": "bench"}, )" + out20 + R"(, "tenant": "bench"}],
    "routes": [{"tenant": "bench", "prefix": "100.100.0.0/16", "via": {"interface": "out20", "address": "192.168.255.2"}}],
    )" + neighbour +
         R"( "settings": {}})";
}

std::string napt_config(uint32_t sessions) {
  std::string table = std::to_string(std::max<uint32_t>(4096, uint32_t(sessions * 1.05)));
  return R"({"schema_version": 1, )" + ports + R"(
    "tenants": [{"name": "hosp", "max_routes": 1024}, {"name": "archive", "max_routes": 1024},
                {"name": "ix", "core": true, "max_routes": 1024}],
    "interfaces": [)" +
         in10 + R"(, "tenant": "hosp"}, )" + out20 + R"(, "tenant": "archive"}],
    "routes": [
      {"tenant": "hosp", "prefix": "100.100.0.0/16", "next_tenant": "ix"},
      {"tenant": "ix", "prefix": "100.100.0.0/16", "next_tenant": "archive"},
      {"tenant": "ix", "prefix": "100.64.0.0/10", "next_tenant": "hosp"},
      {"tenant": "archive", "prefix": "100.64.0.0/10", "next_tenant": "ix"},
      {"tenant": "archive", "prefix": "192.168.0.0/17", "via": {"interface": "out20", "address": "192.168.255.2"}}],
    )" + neighbour +
         R"(
    "static_mappings": [{"tenant": "archive", "tenant_prefix": "192.168.0.0/16", "core_prefix": "100.100.0.0/16"}],
    "napt_pools": [{"tenant": "hosp", "addresses": ["100.127.0.0/26"], "session_limit": )" +
         table + R"(}],
    "policy_rules": [{"name": "hosp-archive", "priority": 10, "from_tenant": "hosp", "to_tenant": "archive", "permit": true}],
    "settings": {"max_sessions": )" +
         table + R"(}})";
}

// ESP (benchmarks/ipsec.py's topology): tunnel t1 of tenant hosp over tenant carrier, one SA
// each way, no replay window (the frames repeat). esp-out-*: the frames below, from VLAN 10 of
// port in, encrypted and sent out of VLAN 20 of port out. esp-in-*: the same frames as `peer`
// (this config mirrored: local and remote swapped, the SAs' directions too, ESP out of VLAN 10
// to our MAC) encrypted them, received on VLAN 10 of port in, decrypted and routed out of
// VLAN 20 of port out.
std::string esp_config(const std::string& mode, bool peer) {
  bool cbc = mode.ends_with("cbc"), inbound = mode.starts_with("esp-in") && !peer;
  std::string local = peer ? "198.51.100.2" : "198.51.100.1", remote = peer ? "198.51.100.1" : "198.51.100.2";
  std::string keys = cbc ? R"("cipher": "AES_CBC_128", "cipher_key": "QEFCQ0RFRkdISUpLTE1OTw==",
    "integrity": "HMAC_SHA256_128", "integrity_key": "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=")"
                         : R"("cipher": "AES_GCM_128", "cipher_key": "AAECAwQFBgcICQoLDA0OD8r+ur4=")";
  auto sa = [&](int spi, bool in) {
    return R"({"spi": )" + std::to_string(spi) + R"(, "tunnel": "t1", "replay_window": 0, "inbound": )" +
           (in ? "true, " : "false, ") + keys + "}";
  };
  std::string interfaces, routes, neighbours;
  if (inbound) {
    interfaces = R"({"name": "c0", "tenant": "carrier", "port": "in", "vlan": 10, "addresses": [")" + local +
                 R"(/24"], "mac": "02:00:00:00:01:01"}, {"name": "h0", "tenant": "hosp", "port": "out", "vlan": 20,
                 "addresses": ["192.168.255.1/24"], "mac": "02:00:00:00:02:01"})";
    routes =
        R"({"tenant": "hosp", "prefix": "100.100.0.0/16", "via": {"interface": "h0", "address": "192.168.255.2"}})";
    neighbours = R"({"interface": "h0", "address": "192.168.255.2", "mac": "02:00:00:00:02:02"})";
  } else {
    interfaces = R"({"name": "h0", "tenant": "hosp", "port": "in", "vlan": 10, "addresses": ["10.15.255.254/12"],
                 "mac": "02:00:00:00:01:01"}, {"name": "c0", "tenant": "carrier", "port": "out", "vlan": )" +
                 std::string(peer ? "10" : "20") + R"(, "addresses": [")" + local +
                 R"(/24"], "mac": "02:00:00:00:02:01"})";
    routes = R"({"tenant": "hosp", "prefix": "100.100.0.0/16", "via": {"interface": "t1"}})";
    neighbours = R"({"interface": "c0", "address": ")" + remote + R"(", "mac": ")" +
                 (peer ? "02:00:00:00:01:01" : "02:00:00:00:02:02") + R"("})";
  }
  return R"({"schema_version": 1, )" + ports + R"( "tenants": [{"name": "carrier"}, {"name": "hosp"}],
    "interfaces": [)" +
         interfaces + R"(],
    "tunnels": [{"name": "t1", "tenant": "hosp", "underlay_tenant": "carrier", "local_address": ")" +
         local + R"(", "remote_address": ")" + remote + R"("}],
    "routes": [)" +
         routes + R"(], "neighbours": [)" + neighbours + R"(],
    "sas": [)" +
         sa(4097, !peer) + ", " + sa(8193, peer) + R"(], "settings": {}})";
}

// A 64-byte (on the wire) 802.1Q VLAN 10 IPv4/UDP frame to port 104 (benchmarks/nat.py's).
constexpr uint16_t frame_len = 60;
void write_frame(uint8_t* f, uint32_t src, uint16_t sport, uint32_t dst) {
  static const uint8_t eth[18] = {2, 0, 0, 0, 1, 1, 2, 0, 0, 0, 1, 2, 0x81, 0, 0, 10, 0x08, 0};
  memcpy(f, eth, sizeof eth);
  memset(f + 18, 0, frame_len - 18);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(f + 18);
  ip->version_ihl = 0x45;
  ip->total_length = rte_cpu_to_be_16(frame_len - 18);
  ip->fragment_offset = rte_cpu_to_be_16(0x4000);
  ip->time_to_live = 64;
  ip->next_proto_id = 17;
  ip->src_addr = rte_cpu_to_be_32(src);
  ip->dst_addr = rte_cpu_to_be_32(dst);
  ip->hdr_checksum = rte_ipv4_cksum(ip);
  uint8_t* udp = f + 38;
  udp[0] = uint8_t(sport >> 8);
  udp[1] = uint8_t(sport);
  udp[3] = 104;
  udp[5] = frame_len - 38;
}

// Flow i: inside host 10.0.0.1 + i / 256, source port 1024 + i % 256, to a pseudo-random
// archive host in 100.100.0.0/17 (nat.py's flows).
void write_flow(uint8_t* f, uint32_t i) {
  uint32_t h = i * 2654435761u;
  write_frame(f, 0x0A000001 + (i >> 8), uint16_t(1024 + (i & 255)), archive_core + 1 + (h >> 17) % 32767);
}

// esp-in-*: flow i's frame as the peer sends it (esp_config), for each of `flows` flows.
std::vector<std::vector<uint8_t>> esp_frames(const std::string& mode, uint32_t flows) {
  Harness peer(esp_config(mode, true));
  std::vector<std::vector<uint8_t>> frames;
  std::vector<uint8_t> plain(frame_len);
  for (uint32_t i = 0; i < flows; i++) {
    write_flow(plain.data(), i);
    peer.receive(0, plain);
    for (auto& f : peer.sent(1)) frames.push_back(std::move(f));
  }
  if (frames.size() != flows) throw std::runtime_error("the peer did not encrypt every frame");
  return frames;
}

struct Bench {
  Harness h;
  rte_mempool* rx_pool;
  std::vector<std::vector<uint8_t>> frames;  // esp-in-*: flow i's frame; else written by write_flow
  explicit Bench(const std::string& config, std::vector<std::vector<uint8_t>> frames_ = {})
      : h(config), frames(std::move(frames_)) {
    rx_pool = rte_mempool_lookup("micro_rx");
    if (!rx_pool) rx_pool = rte_pktmbuf_pool_create("micro_rx", 8191, 256, sizeof(PacketMeta), 2048, 0);
    Worker& w = h.worker;
    for (uint64_t& t : w.timeouts) t = w.tsc_hz * 3600;
  }

  // A burst of the flows first .. first + 31 (mod `modulo`) as a port hands it over, the flows
  // in a scattered order (a multiple of a prime mod `modulo` is a permutation).
  void receive(rte_mbuf** pkts, uint32_t first, uint32_t modulo) {
    if (rte_pktmbuf_alloc_bulk(rx_pool, pkts, burst)) throw std::runtime_error("no mbufs");
    for (uint16_t i = 0; i < burst; i++) {
      uint32_t flow = uint32_t(uint64_t((first + i) % modulo) * 2654435761u % modulo);
      uint16_t len = frame_len;
      if (frames.empty()) {
        write_flow(rte_pktmbuf_mtod(pkts[i], uint8_t*), flow);
      } else {
        len = uint16_t(frames[flow].size());
        memcpy(rte_pktmbuf_mtod(pkts[i], uint8_t*), frames[flow].data(), len);
      }
      pkts[i]->data_len = pkts[i]->pkt_len = len;
      pkts[i]->port = 0;
    }
  }

  // The worker loop's body for one burst (runtime/dataplane.cpp): its TSC cycles.
  uint64_t loop(rte_mbuf** pkts) {
    Worker& w = h.worker;
    uint64_t t0 = rte_rdtsc();
    w.now = t0;
    nat_sweep(w);
    uint64_t start = stage_clock(w);
    uint64_t bytes = 0;
    for (uint16_t i = 0; i < burst; i++) bytes += rte_pktmbuf_pkt_len(pkts[i]);
    auto& c = w.counters->ports[0];
    bump(c.rx_packets, burst);
    bump(c.rx_bytes, bytes);
    account(w, Stage::rx, start, burst);
    process_burst(w, 0, pkts, burst);
    // CBC jobs left in the lanes: completed as later bursts fill them (no flush: bursts keep coming).
    if (esp_in_flight(w) || esp_done(w)) process_crypto(w, false);
    start = stage_clock(w);
    unsigned queued = 0;
    for (uint16_t port = 0; port < w.tables->ports.size(); port++) queued += w.tx[port].count;
    if (queued) {
      flush_tx(w);
      account(w, Stage::tx, start, queued);
    }
    return rte_rdtsc() - t0;
  }

  uint64_t sent() const { return h.worker.counters->ports[1].tx_packets; }
  // Calls of every stage so far: none where accounting is compiled out (the proof that this
  // binary's pipeline is the reference one).
  uint64_t stage_calls() const {
    uint64_t sum = 0;
    for (const StageStats& s : h.worker.counters->stages) sum += s.calls;
    return sum;
  }
  uint64_t drops() const { return h.total_drops(); }
};

uint64_t percentile(std::vector<uint64_t> v, double p) {
  size_t k = std::min(v.size() - 1, size_t(p * double(v.size())));
  std::nth_element(v.begin(), v.begin() + long(k), v.end());
  return v[k];
}

double thread_cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

const char* variant() { return stage_accounting ? "compiled_in" : "compiled_out"; }

// Each stage's cycles a packet of the block (timing on; all 0 with it off): where they go.
std::string stages(const Bench& b, const uint64_t* before, unsigned bursts) {
  std::string out;
  for (unsigned s = 0; s < unsigned(Stage::count); s++) {
    uint64_t c = b.h.worker.counters->stages[s].cycles - before[s];
    if (!c) continue;
    char item[64];
    snprintf(item, sizeof item, "%s\"%s\": %.1f", out.empty() ? "" : ", ", stage_names[s],
             double(c) / (double(bursts) * burst));
    out += item;
  }
  return out;
}

// Established traffic: `blocks` blocks of `bursts` bursts, timing off and on in turn.
int steady(const std::string& mode, unsigned blocks, unsigned bursts, unsigned flows) {
  bool esp = mode.starts_with("esp-");
  Bench b(esp                 ? esp_config(mode, false)
          : mode == "forward" ? forward_config()
                              : napt_config(flows),
          mode.starts_with("esp-in") ? esp_frames(mode, flows) : std::vector<std::vector<uint8_t>>{});
  rte_mbuf* pkts[burst];
  uint32_t next = 0;
  for (unsigned i = 0; i < 4 * flows / burst; i++) {  // sessions made, caches warm
    b.receive(pkts, next, flows);
    next += burst;
    b.loop(pkts);
  }
  std::vector<uint64_t> cycles(bursts);
  for (unsigned block = 0; block < 2 * blocks; block++) {
    bool timing = (block & 1) ^ ((block >> 1) & 1);  // off on on off off on ...
    b.h.worker.timing = timing;
    uint64_t sent = b.sent(), drops = b.drops(), calls = b.stage_calls();
    uint64_t stage_cycles[unsigned(Stage::count)];
    for (unsigned s = 0; s < unsigned(Stage::count); s++) stage_cycles[s] = b.h.worker.counters->stages[s].cycles;
    for (unsigned i = 0; i < bursts; i++) {
      b.receive(pkts, next, flows);
      next += burst;
      cycles[i] = b.loop(pkts);
    }
    printf(
        "{\"variant\": \"%s\", \"mode\": \"%s\", \"block\": %u, \"timing\": %s, \"bursts\": %u, "
        "\"min\": %.2f, \"p10\": %.2f, \"p50\": %.2f, \"p90\": %.2f, \"sent\": %lu, \"drops\": %lu, \"stage_calls\": "
        "%lu, \"stages\": {%s}}\n",
        variant(), mode.c_str(), block / 2, timing ? "true" : "false", bursts,
        double(*std::min_element(cycles.begin(), cycles.end())) / burst, double(percentile(cycles, 0.1)) / burst,
        double(percentile(cycles, 0.5)) / burst, double(percentile(cycles, 0.9)) / burst, b.sent() - sent,
        b.drops() - drops, b.stage_calls() - calls, stages(b, stage_cycles, bursts).c_str());
    fflush(stdout);
  }
  return 0;
}

// New NAPT sessions: `sessions` distinct flows, each once, into an empty table.
int fresh(uint32_t sessions, unsigned rounds) {
  for (unsigned round = 0; round <= rounds; round++) {
    bool timing = round == rounds;  // the last round: the stages' cycles
    Bench b(napt_config(sessions));
    b.h.worker.timing = timing;
    rte_mbuf* pkts[burst];
    std::vector<uint64_t> cycles;
    cycles.reserve(sessions / burst);
    uint64_t total = 0;
    double cpu = thread_cpu_s();
    for (uint32_t first = 0; first + burst <= sessions; first += burst) {
      b.receive(pkts, first, sessions);
      uint64_t c = b.loop(pkts);
      cycles.push_back(c);
      total += c;
    }
    cpu = thread_cpu_s() - cpu;
    const auto& nat = b.h.worker.counters->nat[b.h.tenant("hosp")];
    const auto& stage = b.h.worker.counters->stages[unsigned(Stage::nat)];
    uint64_t made = nat.sessions_created;
    // Per new session: all bursts (preemption included), this thread's CPU time (not
    // preemption, but writing the frames and page faults: an upper bound), and the median
    // burst (and of the last tenth of the run: the table at 0.9-1.0 of `sessions`).
    size_t tenth = cycles.size() / 10;
    std::vector<uint64_t> last(cycles.end() - long(tenth), cycles.end());
    printf(
        "{\"variant\": \"%s\", \"mode\": \"new\", \"round\": %u, \"timing\": %s, \"sessions\": %u, "
        "\"made\": %lu, \"sent\": %lu, \"drops\": %lu, \"mean\": %.1f, \"on_cpu\": %.1f, \"p50\": %.1f, "
        "\"p50_last_tenth\": %.1f, "
        "\"p10_last_tenth\": %.1f, \"nat_stage\": %.1f, \"tsc_hz\": %lu}\n",
        variant(), round, timing ? "true" : "false", sessions, made, b.sent(), b.drops(),
        double(total) / double(cycles.size() * burst), cpu * double(rte_get_tsc_hz()) / double(cycles.size() * burst),
        double(percentile(cycles, 0.5)) / burst, double(percentile(last, 0.5)) / burst,
        double(percentile(last, 0.1)) / burst, timing && stage.packets ? double(stage.cycles) / double(made) : 0.0,
        rte_get_tsc_hz());
    fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string prefix = "--file-prefix=medix-micro-" + std::to_string(getpid());
  std::string mode = argc > 1 ? argv[1] : "forward";
  // MEDIX_MICRO_HUGE_DIR: a hugetlbfs mount to take the memory from (2 MiB pages: the tables'
  // TLB misses out of the figure) instead of --no-huge's 4 KiB pages.
  const char* huge = getenv("MEDIX_MICRO_HUGE_DIR");
  std::string huge_dir = huge ? std::string("--huge-dir=") + huge : "--no-huge";
  std::vector<const char*> eal = {"pipeline-micro", huge_dir.c_str()};
  if (!huge) eal.insert(eal.end(), {"-m", mode == "new" ? "2048" : "512"});
  eal.insert(eal.end(),
             {"--no-pci", "-l", "0", "--log-level=error", "--vdev=net_null0", "--vdev=net_null1", prefix.c_str()});
  if (rte_eal_init(int(eal.size()), const_cast<char**>(eal.data())) < 0) return 1;
  int rc;
  if (mode == "new")
    rc = fresh(argc > 2 ? uint32_t(std::stoul(argv[2])) : 1u << 20, argc > 3 ? unsigned(std::stoul(argv[3])) : 3);
  else
    rc = steady(mode, argc > 2 ? unsigned(std::stoul(argv[2])) : 20, argc > 3 ? unsigned(std::stoul(argv[3])) : 2000,
                argc > 4 ? unsigned(std::stoul(argv[4])) : 1024);
  rte_eal_cleanup();
  return rc;
}
