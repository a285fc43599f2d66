#include "api/capture.h"

#include <pcap/pcap.h>
#include <rte_bpf.h>
#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_malloc.h>
#include <rte_ring_elem.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "common/log.h"
#include "runtime/dataplane.h"

namespace medix::dp {

namespace v1 = medix::dataplane::v1;
using medix::common::log;
using medix::common::LogLevel;

grpc::Status invalid_argument(const std::string& message) { return {grpc::StatusCode::INVALID_ARGUMENT, message}; }

uint64_t realtime_ns() {
  return uint64_t(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

namespace {

grpc::Status not_found(const std::string& message) { return {grpc::StatusCode::NOT_FOUND, message}; }

// A pcap filter expression, compiled by libpcap for Ethernet frames and converted to eBPF that
// workers run on the mbuf (rte_bpf_convert, then rte_bpf_load: JIT-compiled where it can be).
grpc::Status compile_bpf(const std::string& expression, uint32_t snaplen, rte_bpf*& out) {
  pcap_t* pcap = pcap_open_dead(DLT_EN10MB, int(snaplen));
  if (!pcap) return {grpc::StatusCode::INTERNAL, "bpf: libpcap: pcap_open_dead failed"};
  bpf_program program{};
  if (pcap_compile(pcap, &program, expression.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    std::string e = pcap_geterr(pcap);
    pcap_close(pcap);
    return invalid_argument("bpf: \"" + expression + "\": " + e);
  }
  pcap_close(pcap);
  rte_bpf_prm* prm = rte_bpf_convert(&program);
  pcap_freecode(&program);
  if (!prm)
    return invalid_argument("bpf: \"" + expression + "\": cannot convert to eBPF (rte_errno " +
                            std::to_string(rte_errno) + ")");
  out = rte_bpf_load(prm);
  rte_free(prm);
  if (!out)
    return invalid_argument("bpf: \"" + expression + "\": rte_bpf_load refused it (rte_errno " +
                            std::to_string(rte_errno) + ")");
  return grpc::Status::OK;
}

}  // namespace

grpc::Status make_filter(const Tables& t, const v1::CaptureRequest& r, CaptureFilter& f) {
  if (r.snaplen() > capture_snap_max)
    return invalid_argument("snaplen: " + std::to_string(r.snaplen()) + " is above the most, " +
                            std::to_string(capture_snap_max));
  f.snaplen = r.snaplen() ? r.snaplen() : capture_snap_max;
  if (r.vlan() > 4094) return invalid_argument("vlan: " + std::to_string(r.vlan()) + " is out of range 1..4094");
  for (int p : r.points()) {
    if (p < v1::CAPTURE_RX || p > v1::CAPTURE_DROP)
      return invalid_argument("points: " + std::to_string(p) + " is not a point");
    f.points |= uint8_t(1u << p);
  }
  if (!r.drop_reason().empty()) {
    for (unsigned i = 0; i < drop_reason_count; i++)
      if (r.drop_reason() == drop_reasons[i].name) f.drop_reason = uint16_t(i);
    if (f.drop_reason == capture_none)
      return invalid_argument("drop_reason: \"" + r.drop_reason() + "\" is no drop reason (medixctl drops lists them)");
    if (f.points && !(f.points & (1u << unsigned(CapturePoint::drop))))
      return invalid_argument("drop_reason: given, but points leave out CAPTURE_DROP");
    f.points = 1u << unsigned(CapturePoint::drop);
  }
  if (!f.points) f.points = 1u << 1 | 1u << 2 | 1u << 3;
  if (!r.port().empty()) {
    for (uint16_t i = 0; i < t.ports.size(); i++)
      if (t.ports[i].live && t.ports[i].name == r.port()) f.port = i;
    if (f.port == capture_none) return not_found("port: no port named \"" + r.port() + "\"");
  }
  if (!r.tenant().empty()) {
    for (uint16_t i = 0; i < t.tenants.size(); i++)
      if (t.tenants[i].live && t.tenants[i].name == r.tenant()) f.tenant = i;
    if (f.tenant == capture_none) return not_found("tenant: no tenant named \"" + r.tenant() + "\"");
  }
  if (!r.interface().empty() || r.vlan()) {
    f.by_interface = true;
    bool named = false;
    for (uint16_t i = 0; i < t.interfaces.size(); i++) {
      const InterfaceEntry& e = t.interfaces[i];
      if (!e.uid) continue;
      bool by_name = r.interface().empty() || e.name == r.interface();
      named |= !r.interface().empty() && e.name == r.interface();
      if (by_name && (!r.vlan() || (!e.tunnel && e.outer_vlan == r.vlan())))
        f.interfaces[i / 64] |= uint64_t(1) << (i % 64);
    }
    if (!r.interface().empty() && !named)
      return not_found("interface: no interface or tunnel named \"" + r.interface() + "\"");
  }
  if (r.sa_spi()) {
    f.spi = r.sa_spi();
    for (unsigned i = 1; i < max_sas && t.sas; i++)
      if (t.sas[i] && t.sas[i]->spi == r.sa_spi()) f.spi_tunnel = t.sas[i]->tunnel;
    if (f.spi_tunnel == capture_none) return not_found("sa_spi: no SA with SPI " + std::to_string(r.sa_spi()));
  }
  if (!r.bpf().empty()) return compile_bpf(r.bpf(), f.snaplen, f.bpf);
  return grpc::Status::OK;
}

namespace {

// Slot -> name, from the tables of one version.
struct Names {
  uint64_t version = UINT64_MAX;
  std::vector<std::string> ports, interfaces, tenants;
  void refresh(Dataplane& dp) {
    dp.controller.read([&](const Intent&, const Committer&, uint64_t) {
      const Tables& t = *dp.controller.published().load();
      if (t.version == version) return;
      version = t.version;
      ports.clear(), interfaces.clear(), tenants.clear();
      for (const auto& p : t.ports) ports.push_back(p.name);
      for (const auto& i : t.interfaces) interfaces.push_back(i.uid ? i.name : "");
      for (const auto& x : t.tenants) tenants.push_back(x.live ? x.name : "");
    });
  }
  static const std::string& at(const std::vector<std::string>& v, uint16_t slot) {
    static const std::string none;
    return slot < v.size() ? v[slot] : none;
  }
};

}  // namespace

grpc::Status Captures::run(grpc::ServerContext& context, const v1::CaptureRequest& request,
                           grpc::ServerWriterInterface<v1::CapturedPacket>& out) {
  if (busy_.exchange(true))
    return {grpc::StatusCode::RESOURCE_EXHAUSTED, "a capture is running already (one at a time)"};
  auto session = std::make_unique<CaptureSession>();
  CaptureFilter& f = session->filter;
  // What to give back whatever happens from here: the BPF program and the rings.
  auto release = [&] {
    if (f.bpf) rte_bpf_destroy(f.bpf);
    for (auto& pw : session->workers)
      if (pw.ring) rte_ring_free(pw.ring);
    busy_.store(false);
  };
  grpc::Status s = dp_.controller.read([&](const Intent&, const Committer&, uint64_t) {
    return make_filter(*dp_.controller.published().load(), request, f);
  });
  if (!s.ok()) {
    release();
    return s;
  }
  static std::atomic<unsigned> sequence{0};
  unsigned id = sequence++;
  for (size_t q = 0; q < dp_.workers.size(); q++) {
    std::string name = "capture" + std::to_string(id) + "_" + std::to_string(q);
    session->workers[q].ring = rte_ring_create_elem(name.c_str(), sizeof(CaptureRecord), capture_ring_size,
                                                    SOCKET_ID_ANY, RING_F_SP_ENQ | RING_F_SC_DEQ);
    if (!session->workers[q].ring) {
      release();
      return {grpc::StatusCode::RESOURCE_EXHAUSTED, "no memory for the capture's rings (" +
                                                        std::to_string(sizeof(CaptureRecord) * capture_ring_size) +
                                                        " bytes a worker)"};
    }
  }
  double rate = request.rate_pps() ? request.rate_pps() : 10000;
  session->rate_per_tsc = rate / double(dp_.tsc_hz);
  session->burst = std::max(32.0, rate / 10);
  uint64_t tsc0 = rte_rdtsc(), ns0 = realtime_ns();
  for (auto& pw : session->workers) pw.tokens = session->burst, pw.tokens_at = tsc0;

  Names names;
  names.refresh(dp_);
  log(LogLevel::notice, "medix-dp: API: capture started (%s)", request.ShortDebugString().c_str());
  dp_.capture.store(session.get(), std::memory_order_release);

  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(request.duration_ms());
  std::vector<CaptureRecord> records(64);
  uint64_t sent = 0, lost = 0;
  bool done = false;
  while (!done) {
    if (context.IsCancelled() || stopping_.load() || dp_.stopping.load()) break;
    if (request.duration_ms() && std::chrono::steady_clock::now() >= deadline) break;
    unsigned got_any = 0;
    for (size_t q = 0; q < dp_.workers.size() && !done; q++) {
      unsigned n = rte_ring_sc_dequeue_burst_elem(session->workers[q].ring, records.data(), sizeof(CaptureRecord),
                                                  unsigned(records.size()), nullptr);
      if (!n) continue;
      got_any += n;
      names.refresh(dp_);
      lost = 0;
      for (size_t k = 0; k < dp_.workers.size(); k++)
        lost += __atomic_load_n(&session->workers[k].lost, __ATOMIC_RELAXED);
      for (unsigned i = 0; i < n && !done; i++) {
        const CaptureRecord& r = records[i];
        v1::CapturedPacket p;
        p.set_timestamp_ns(ns0 + uint64_t(double(int64_t(r.tsc - tsc0)) * 1e9 / double(dp_.tsc_hz)));
        p.set_point(v1::CapturePoint(r.point));
        p.set_port(Names::at(names.ports, r.port));
        if (r.iface != capture_none) p.set_interface(Names::at(names.interfaces, r.iface));
        if (r.tenant != capture_none) p.set_tenant(Names::at(names.tenants, r.tenant));
        if (r.point == uint8_t(CapturePoint::drop) && r.reason < drop_reason_count)
          p.set_drop_reason(drop_reasons[r.reason].name);
        p.set_original_length(r.length);
        p.set_data(r.data, r.caplen);
        p.set_lcore(dp_.workers[q]->lcore);
        p.set_lost(lost);
        if (!out.Write(p)) done = true;  // the client went away
        if (++sent == request.max_packets()) done = true;
      }
    }
    if (!got_any) std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  // Workers stop seeing the session at their next loop; after the grace period none holds it.
  dp_.capture.store(nullptr, std::memory_order_release);
  rte_rcu_qsbr_synchronize(dp_.rcu, RTE_QSBR_THRID_INVALID);
  lost = 0;
  for (size_t k = 0; k < dp_.workers.size(); k++) lost += session->workers[k].lost;
  log(LogLevel::notice, "medix-dp: API: capture ended: %llu packets sent, %llu lost (rate limit or full ring)",
      (unsigned long long)sent, (unsigned long long)lost);
  context.AddTrailingMetadata("medix-capture-lost", std::to_string(lost));
  release();
  return grpc::Status::OK;
}

}  // namespace medix::dp
