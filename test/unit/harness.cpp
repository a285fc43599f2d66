#include "harness.h"

#include <google/protobuf/util/json_util.h>
#include <rte_malloc.h>
#include <rte_ring_elem.h>

#include <stdexcept>

#include <rte_ethdev.h>

#include "common/address.h"
#include "config/settings.h"
#include "ipsec/esp.h"

using medix::common::parse_ipv4;
using medix::common::parse_mac;

namespace {
rte_mempool* shared_pool(const char* name, uint16_t room) {
  if (auto* p = rte_mempool_lookup(name)) return p;
  return rte_pktmbuf_pool_create(name, 4095, 0, sizeof(PacketMeta), room, 0);
}
}  // namespace

Harness::Harness(const std::string& config_json, uint16_t queues, std::function<uint64_t(uint64_t, uint32_t)> sa_start,
                 std::function<std::optional<uint64_t>(uint64_t, uint32_t)> sa_peer_start) {
  medix::dataplane::v1::Config config;
  if (!google::protobuf::util::JsonStringToMessage(config_json, &config).ok())
    throw std::runtime_error("test config is not valid JSON");

  pool = shared_pool("unit_packets", 10240);
  indirect = shared_pool("unit_indirect", 0);
  learned = rte_ring_lookup("unit_learned");
  if (!learned) learned = rte_ring_create_elem("unit_learned", sizeof(LearnedNeighbour), 1024, 0, 0);

  medix::dp::Committer::Params params;
  params.queues = queues;
  params.pool = pool;
  params.max_mtu = 9600;
  params.sa_start = std::move(sa_start);
  params.sa_peer_start = std::move(sa_peer_start);
  params.max_sessions = settings_from(config.settings()).max_sessions;
  if (uint32_t mb = settings_from(config.settings()).fib_memory_mb) params.fib_plies = Lpm::plies_in(mb);
  if (auto e = controller.init(params)) throw std::runtime_error(*e);
  controller.set_device_check([](const std::string& device) {
    uint16_t id;
    return rte_eth_dev_get_port_by_name(device.c_str(), &id) == 0;
  });
  auto result = apply(medix::dp::operations_from(config));
  if (result.code != medix::dp::Code::ok) throw std::runtime_error(result.message);

  for (uint16_t q = 0; q < queues; q++) {
    std::string name = q ? "unit_handoff" + std::to_string(q) : "unit_handoff";
    rte_ring* ring = rte_ring_lookup(name.c_str());
    if (!ring) ring = rte_ring_create(name.c_str(), 1024, 0, 0);
    if (!ring) throw std::runtime_error("cannot create the ring " + name);
    handoff.push_back(ring);
  }
  events = rte_ring_lookup("unit_sa_events");
  if (!events) events = rte_ring_create_elem("unit_sa_events", sizeof(SaEventMessage), 1024, 0, 0);
  Settings settings = settings_from(config.settings());
  init_worker(worker, 0, settings);
  for (uint16_t q = 1; q < queues; q++) {
    others.push_back(std::make_unique<Worker>());
    init_worker(*others.back(), q, settings);
  }
}

void Harness::init_worker(Worker& w, uint16_t queue, const Settings& settings) {
  w.queue = queue;
  w.tables = tables;
  w.settings = settings;
  w.pool = pool;
  w.indirect_pool = indirect;
  w.learned = learned;
  w.tsc_hz = rte_get_tsc_hz();
  w.icmp_tokens = w.settings.icmp_burst;
  w.icmp_tokens_at = rte_rdtsc();
  w.counters = static_cast<Counters*>(rte_zmalloc("c", sizeof(Counters), 64));
  w.originated = static_cast<Batch*>(rte_zmalloc("o", sizeof(Batch), 64));
  w.to_shape = static_cast<Batch*>(rte_zmalloc("sh", sizeof(Batch), 64));
  w.neighbour_cache = static_cast<NeighbourCache*>(rte_zmalloc("nc", sizeof(NeighbourCache), 64));
  w.mgr = alloc_mb_mgr(0);
  init_mb_mgr_auto(w.mgr, nullptr);
  w.esp_jobs = esp_jobs_create();
  w.handoff = handoff.data();
  w.sa_events = events;
  w.tx = static_cast<TxBuffer*>(rte_zmalloc("t", sizeof(TxBuffer) * max_ports, 64));
  w.pending = static_cast<PendingQueue*>(rte_zmalloc("p", sizeof(PendingQueue), 64));
  w.shares = static_cast<Shares*>(rte_zmalloc("s", sizeof(Shares), 64));
}

void Harness::free_worker(Worker& w) {
  for (unsigned p = 0; p < max_ports; p++) {
    for (uint16_t i = 0; i < w.tx[p].count; i++) rte_pktmbuf_free(w.tx[p].pkts[i]);
    w.tx[p].clear();
  }
  for (uint32_t i = 0; i < w.pending->count; i++) rte_pktmbuf_free(w.pending->pkts[i]);
  for (uint16_t i = 0; i < w.originated->n; i++) rte_pktmbuf_free(w.originated->pkts[i]);
  rte_free(w.counters);
  rte_free(w.originated);
  for (uint16_t i = 0; i < w.to_shape->n; i++) rte_pktmbuf_free(w.to_shape->pkts[i]);
  rte_free(w.to_shape);
  rte_free(w.neighbour_cache);
  esp_discard(w);
  esp_jobs_destroy(w.esp_jobs);
  free_mb_mgr(w.mgr);
  rte_free(w.tx);
  rte_free(w.pending);
  rte_free(w.shares);
}

medix::dp::ApplyResult Harness::apply(const std::vector<medix::dp::Operation>& ops) {
  auto result = controller.apply(ops);
  tables = worker.tables = controller.published().load();
  for (auto& w : others) w->tables = tables;
  return result;
}

Harness::~Harness() {
  controller.stop_ports();
  free_worker(worker);
  for (auto& w : others) free_worker(*w);
  rte_mbuf* left[64];
  for (rte_ring* ring : handoff)
    while (unsigned n = rte_ring_dequeue_burst(ring, reinterpret_cast<void**>(left), 64, nullptr))
      rte_pktmbuf_free_bulk(left, n);
  LearnedNeighbour drain[64];
  while (rte_ring_dequeue_burst_elem(learned, drain, sizeof(LearnedNeighbour), 64, nullptr)) {
  }
  SaEventMessage drained[64];
  while (rte_ring_dequeue_burst_elem(events, drained, sizeof(SaEventMessage), 64, nullptr)) {
  }
}

void Harness::receive(uint16_t port, const std::vector<uint8_t>& bytes) {
  process_burst(worker, port, burst({bytes}).data(), 1);
  process_crypto(worker, true);  // as the worker's next loop does when it receives nothing
}

std::vector<rte_mbuf*> Harness::burst(const std::vector<std::vector<uint8_t>>& frames) {
  std::vector<rte_mbuf*> pkts;
  for (const auto& bytes : frames) {
    rte_mbuf* m = rte_pktmbuf_alloc(pool);
    auto* at = m ? rte_pktmbuf_append(m, uint16_t(bytes.size())) : nullptr;
    if (!at) {
      rte_pktmbuf_free(m);
      for (rte_mbuf* p : pkts) rte_pktmbuf_free(p);
      throw std::runtime_error("no mbuf for a test frame");
    }
    memcpy(at, bytes.data(), bytes.size());
    pkts.push_back(m);
  }
  return pkts;
}

uint16_t Harness::interface(const std::string& name) const {
  for (uint16_t i = 0; i < tables->interfaces.size(); i++)
    if (tables->interfaces[i].uid && tables->interfaces[i].name == name) return i;
  throw std::runtime_error("no interface " + name);
}

uint16_t Harness::tenant(const std::string& name) const {
  for (uint16_t i = 0; i < tables->tenants.size(); i++)
    if (tables->tenants[i].live && tables->tenants[i].name == name) return i;
  throw std::runtime_error("no tenant " + name);
}

std::string hosp_over_carrier(const std::string& rest) {
  return R"({
  "schema_version": 1,
  "ports": [{"name": "p0", "device": "net_null0"}, {"name": "p1", "device": "net_null1"}],
  "tenants": [{"name": "carrier"}, {"name": "hosp"}],
  "interfaces": [
    {"name": "c0", "tenant": "carrier", "port": "p0", "addresses": ["198.51.100.1/24"], "mac": "02:00:00:00:00:01"},
    {"name": "h0", "tenant": "hosp", "port": "p1", "addresses": ["10.0.1.1/24"], "mac": "02:00:00:00:01:01"}
  ],)" + rest +
         "}";
}

std::vector<uint8_t> bytes_of(const rte_mbuf* m) {
  std::vector<uint8_t> bytes(rte_pktmbuf_pkt_len(m));
  auto* data = static_cast<const uint8_t*>(rte_pktmbuf_read(m, 0, uint32_t(bytes.size()), bytes.data()));
  if (data != bytes.data()) memcpy(bytes.data(), data, bytes.size());
  return bytes;
}

std::vector<std::vector<uint8_t>> Harness::sent(uint16_t port) {
  std::vector<std::vector<uint8_t>> out;
  TxBuffer& b = worker.tx[port];
  for (uint16_t i = 0; i < b.count; i++) {
    out.push_back(bytes_of(b.pkts[i]));
    rte_pktmbuf_free(b.pkts[i]);
  }
  b.clear();
  return out;
}

uint64_t Harness::total_drops() const {
  uint64_t sum = 0;
  for (unsigned r = 0; r < drop_reason_count; r++) sum += worker.counters->drops[r];
  return sum;
}

void Harness::learn(const std::string& interface, const std::string& address, const std::string& mac) {
  for (uint16_t i = 0; i < tables->interfaces.size(); i++) {
    if (tables->interfaces[i].name != interface) continue;
    uint64_t m = *parse_mac(mac);
    rte_ether_addr a;
    for (unsigned b = 0; b < 6; b++) a.addr_bytes[b] = uint8_t(m >> (8 * (5 - b)));
    tables->neighbours->set(i, *parse_ipv4(address), a, false);
    return;
  }
  throw std::runtime_error("no interface " + interface);
}

namespace frame {

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

static void put16(Bytes& b, uint16_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}
static void put32(Bytes& b, uint32_t v) {
  put16(b, uint16_t(v >> 16));
  put16(b, uint16_t(v));
}
static void put_mac(Bytes& b, const std::string& mac) {
  uint64_t m = *parse_mac(mac);
  for (int i = 5; i >= 0; i--) b.push_back(uint8_t(m >> (8 * i)));
}
static uint16_t checksum(const uint8_t* p, size_t n) {
  uint32_t sum = 0;
  for (size_t i = 0; i + 1 < n; i += 2) sum += uint32_t(p[i] << 8 | p[i + 1]);
  if (n & 1) sum += uint32_t(p[n - 1] << 8);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return uint16_t(~sum);
}

Bytes ether(const std::string& dst, const std::string& src, uint16_t type) {
  Bytes b;
  put_mac(b, dst);
  put_mac(b, src);
  put16(b, type);
  return b;
}

Bytes vlan(uint16_t next, uint16_t vid) {
  Bytes b;
  put16(b, vid);
  put16(b, next);
  return b;
}

Bytes ipv4(const std::string& src, const std::string& dst, uint8_t proto, const Bytes& payload, uint8_t ttl,
           uint16_t frag) {
  Bytes b;
  b.push_back(0x45);
  b.push_back(0);
  put16(b, uint16_t(20 + payload.size()));
  put16(b, 0x1234);
  put16(b, frag);
  b.push_back(ttl);
  b.push_back(proto);
  put16(b, 0);
  put32(b, *parse_ipv4(src));
  put32(b, *parse_ipv4(dst));
  uint16_t c = checksum(b.data(), 20);
  b[10] = uint8_t(c >> 8);
  b[11] = uint8_t(c);
  return b + payload;
}

Bytes udp(uint16_t sport, uint16_t dport, size_t payload_len) {
  Bytes b;
  put16(b, sport);
  put16(b, dport);
  put16(b, uint16_t(8 + payload_len));
  put16(b, 0);  // no checksum: fine for UDP over IPv4
  b.resize(8 + payload_len, 0xab);
  return b;
}

Bytes icmp_echo(uint16_t id, uint16_t seq) {
  Bytes b = {8, 0, 0, 0};
  put16(b, id);
  put16(b, seq);
  for (int i = 0; i < 16; i++) b.push_back(uint8_t(i));
  uint16_t c = checksum(b.data(), b.size());
  b[2] = uint8_t(c >> 8);
  b[3] = uint8_t(c);
  return b;
}

Bytes arp(uint16_t op, const std::string& sha, const std::string& spa, const std::string& tha, const std::string& tpa) {
  Bytes b;
  put16(b, 1);
  put16(b, 0x0800);
  b.push_back(6);
  b.push_back(4);
  put16(b, op);
  put_mac(b, sha);
  put32(b, *parse_ipv4(spa));
  put_mac(b, tha);
  put32(b, *parse_ipv4(tpa));
  return b;
}

}  // namespace frame

std::vector<medix::dp::Operation> ops(const std::string& json) {
  medix::dataplane::v1::ApplyRequest request;
  if (!google::protobuf::util::JsonStringToMessage("{\"operations\": " + json + "}", &request).ok())
    throw std::runtime_error("test operations are not valid JSON: " + json);
  std::vector<medix::dp::Operation> out;
  for (int i = 0; i < request.operations_size(); i++)
    out.push_back(
        {request.operations(i).op(), request.operations(i).object(),
         "operations[" + std::to_string(i) + "]." + medix::dp::kind_name(request.operations(i).object().kind_case())});
  return out;
}
