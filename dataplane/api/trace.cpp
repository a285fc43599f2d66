#include "api/trace.h"

#include <arpa/inet.h>
#include <rte_bpf.h>
#include <rte_cycles.h>

#include <chrono>
#include <string>

#include "api/capture.h"
#include "common/address.h"
#include "common/log.h"
#include "ip/show.h"
#include "ipsec/sa.h"
#include "runtime/dataplane.h"

namespace medix::dp {

namespace v1 = medix::dataplane::v1;
using medix::common::format_ipv4;
using medix::common::log;
using medix::common::LogLevel;

namespace {

std::string protocol(uint8_t p) {
  switch (p) {
    case IPPROTO_TCP: return "tcp";
    case IPPROTO_UDP: return "udp";
    case IPPROTO_ICMP: return "icmp";
    case IPPROTO_ESP: return "esp";
    default: return "proto " + std::to_string(p);
  }
}

// "udp 10.0.0.5:40000 > 100.100.2.10:5000", "icmp 10.0.0.5 > 10.9.9.9 type 8 code 0".
std::string flow(uint8_t proto, uint32_t src, uint32_t dst, uint32_t ports) {
  if (proto == IPPROTO_TCP || proto == IPPROTO_UDP)
    return protocol(proto) + " " + format_ipv4(src) + ":" + std::to_string(ports >> 16) + " > " + format_ipv4(dst) +
           ":" + std::to_string(ports & 0xffff);
  std::string s = protocol(proto) + " " + format_ipv4(src) + " > " + format_ipv4(dst);
  if (proto == IPPROTO_ICMP) s += " type " + std::to_string(ports >> 8) + " code " + std::to_string(ports & 0xff);
  return s;
}

std::string hex(uint32_t v) {
  char s[16];
  snprintf(s, sizeof s, "0x%x", v);
  return s;
}

const char* handoff_name(uint8_t why) {
  switch (Handoff(why)) {
    case Handoff::esp_decrypt: return "esp_decrypt";
    case Handoff::esp_encrypt: return "esp_encrypt";
    case Handoff::nat: return "nat";
    case Handoff::inject: return "inject";
    case Handoff::transmit: return "transmit";
    case Handoff::esp_ordered: return "esp_ordered";
  }
  return "?";
}

const char* step_name(uint8_t step) {
  switch (TraceStep(step)) {
    case TraceStep::rx: return "rx";
    case TraceStep::handoff: return "handoff";
    case TraceStep::esp: return "esp";
    case TraceStep::decrypted: return "decrypted";
    case TraceStep::lookup: return "lookup";
    case TraceStep::nat: return "nat";
    case TraceStep::translated: return "translated";
    case TraceStep::local: return "local";
    case TraceStep::encrypted: return "encrypted";
    case TraceStep::neighbour: return "neighbour";
    case TraceStep::tx: return "tx";
    case TraceStep::drop: return "drop";
  }
  return "?";
}

// Records in words, with the names of one version of the tables and intent.
struct Renderer {
  const Intent& intent;
  const Committer& committer;
  const Tables& t;

  std::string port(uint16_t s) const {
    return s < t.ports.size() && t.ports[s].live ? t.ports[s].name : "port#" + std::to_string(s);
  }
  std::string interface(uint16_t s) const {
    return s < t.interfaces.size() && t.interfaces[s].uid ? t.interfaces[s].name : "interface#" + std::to_string(s);
  }
  std::string tenant(uint16_t s) const {
    return s < t.tenants.size() && t.tenants[s].live ? t.tenants[s].name : "tenant#" + std::to_string(s);
  }
  // The SA with this SPI ("SA 0x3e9 of tunnel tr, inbound"), as the tables hold it now.
  std::string sa(uint32_t spi, bool inbound) const {
    for (unsigned i = 1; i < max_sas && t.sas; i++)
      if (t.sas[i] && t.sas[i]->spi == spi && t.sas[i]->inbound == inbound)
        return "sa " + hex(spi) + " (tunnel " + interface(t.sas[i]->tunnel) + ")";
    return "sa " + hex(spi) + " (none now)";
  }
  // The prefix a lookup in `tenant` for `dst` matches now (the Lookup RPC's first step).
  std::string route(uint16_t tenant_slot, uint32_t dst) const {
    v1::LookupRequest q;
    q.set_tenant(tenant(tenant_slot));
    q.set_address(format_ipv4(dst));
    v1::LookupResponse r;
    if (lookup(intent, committer, q, r) || r.steps().empty() || !r.steps(0).has_route()) return "";
    return r.steps(0).route().prefix();
  }

  std::string text(const TraceRecord& r) const {
    switch (TraceStep(r.step)) {
      case TraceStep::rx:
        return "port " + port(r.a) + " interface " + interface(r.b) + " tenant " + tenant(r.c) + ": " +
               flow(r.kind, r.x, r.y, r.z) + " len " + std::to_string(r.v);
      case TraceStep::handoff:
        return std::string("to worker ") + std::to_string(r.a) + " (" + handoff_name(r.kind) + ")";
      case TraceStep::esp:
        return sa(r.x, true) + " seq " + std::to_string(r.y) + ": " + format_ipv4(r.z) + " > " + format_ipv4(r.v) +
               " tenant " + tenant(r.b);
      case TraceStep::decrypted:
        return "interface " + interface(r.a) + " tenant " + tenant(r.c) + ": " + flow(r.kind, r.x, r.y, r.z);
      case TraceStep::lookup: {
        std::string s = "tenant " + tenant(r.a) + " " + format_ipv4(r.x) + ": ";
        if (NexthopKind(r.kind) == NexthopKind::no_route) return s + "no route";
        // The route as the tables hold it now (the lookup's own answer is the rest).
        std::string prefix = route(r.a, r.x);
        s += (prefix.empty() ? std::string("no such route now") : "route " + prefix) + ", ";
        switch (NexthopKind(r.kind)) {
          case NexthopKind::no_route: return s + "no route";
          case NexthopKind::via:
            return s + "via " + (r.y ? format_ipv4(r.y) : std::string("connected")) + " interface " + interface(r.b);
          case NexthopKind::leak: return s + "leak to tenant " + tenant(r.c);
          case NexthopKind::local: return s + "local";
          case NexthopKind::blackhole: return s + "blackhole";
          case NexthopKind::unreachable: return s + "unreachable";
        }
        return s;
      }
      case TraceStep::nat:
        return "tenant " + tenant(r.a) + " to " + tenant(r.b) + (r.c == 1 ? " (handed off)" : "") + ": " +
               flow(r.kind, r.x, r.y, r.z);
      case TraceStep::translated: return "rewritten to " + flow(r.kind, r.x, r.y, r.z) + " in tenant " + tenant(r.c);
      case TraceStep::local: return "tenant " + tenant(r.c) + " " + format_ipv4(r.x) + " is ours";
      case TraceStep::encrypted:
        return sa(r.x, false) + " seq " + std::to_string(r.y) + ": " + format_ipv4(r.z) + " > " + format_ipv4(r.v) +
               " tenant " + tenant(r.b);
      case TraceStep::neighbour: {
        std::string s = "interface " + interface(r.a) + " " + format_ipv4(r.x) + ": ";
        if (!r.kind) return s + "not resolved, parked while ARP asks";
        char mac[24];
        snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", r.y >> 8 & 0xff, r.y & 0xff, r.z >> 24,
                 r.z >> 16 & 0xff, r.z >> 8 & 0xff, r.z & 0xff);
        return s + mac;
      }
      case TraceStep::tx:
        return "port " + port(r.a) + " queue " + std::to_string(r.c) + " interface " + interface(r.b) + " len " +
               std::to_string(r.v);
      case TraceStep::drop:
        return std::string(r.a < drop_reason_count ? drop_reasons[r.a].name : "?") +
               (r.c != no_tenant ? " (tenant " + tenant(r.c) + ")" : "");
    }
    return "";
  }
};

}  // namespace

grpc::Status Traces::start(const v1::StartTraceRequest& request) {
  if (request.count() < 1 || request.count() > trace_max_packets)
    return invalid_argument("count: " + std::to_string(request.count()) + " is out of range 1.." +
                            std::to_string(trace_max_packets));
  const v1::CaptureRequest& r = request.filter();
  for (auto [set, name] : {std::pair{r.points_size() > 0, "points"},
                           {!r.drop_reason().empty(), "drop_reason"},
                           {r.snaplen() != 0, "snaplen"},
                           {r.max_packets() != 0, "max_packets"},
                           {r.duration_ms() != 0, "duration_ms"},
                           {r.rate_pps() != 0, "rate_pps"}})
    if (set)
      return invalid_argument(std::string("filter.") + name + ": a capture's, not a trace's (traces match at rx)");
  auto session = std::make_unique<TraceSession>();
  grpc::Status s = dp_.controller.read([&](const Intent&, const Committer&, uint64_t) {
    return make_filter(*dp_.controller.published().load(), r, session->filter);
  });
  if (!s.ok()) return {s.error_code(), "filter." + s.error_message()};
  session->count = request.count();
  session->entries = std::make_unique<TraceEntry[]>(request.count());
  std::lock_guard lock(mutex_);
  retire();
  last_id_ = uint8_t(last_id_ == 255 ? 1 : last_id_ + 1);  // never 0: a fresh buffer's
  session->id = last_id_;
  tsc0_ = rte_rdtsc(), ns0_ = realtime_ns();
  session_ = std::move(session);
  dp_.trace.store(session_.get(), std::memory_order_release);
  log(LogLevel::notice, "medix-dp: API: trace started (%s)", request.ShortDebugString().c_str());
  return grpc::Status::OK;
}

void Traces::get(v1::GetTraceResponse& out) {
  std::lock_guard lock(mutex_);
  out.set_running(session_ != nullptr);
  if (!session_) return;
  const TraceSession& s = *session_;
  out.set_count(s.count);
  uint32_t claimed = std::min(s.claimed.load(std::memory_order_relaxed), s.count);
  dp_.controller.read([&](const Intent& intent, const Committer& committer, uint64_t) {
    Renderer names{intent, committer, *dp_.controller.published().load()};
    for (uint32_t k = 0; k < claimed; k++) {
      const TraceEntry& e = s.entries[k];
      uint32_t n = e.n.load(std::memory_order_acquire);
      if (!n) continue;  // claimed, its first record not written yet
      v1::TracedPacket* p = out.add_packets();
      p->set_index(k);
      p->set_timestamp_ns(ns0_ + uint64_t(double(int64_t(e.tsc - tsc0_)) * 1e9 / double(dp_.tsc_hz)));
      p->set_lcore(e.queue < dp_.workers.size() ? dp_.workers[e.queue]->lcore : 0);
      for (uint32_t i = 0; i < n; i++) {
        v1::TraceStep* step = p->add_steps();
        step->set_stage(step_name(e.records[i].step));
        step->set_text(names.text(e.records[i]));
      }
      p->set_steps_lost(__atomic_load_n(&e.lost, __ATOMIC_RELAXED));
    }
  });
}

void Traces::clear() {
  std::lock_guard lock(mutex_);
  if (session_) log(LogLevel::notice, "medix-dp: API: trace cleared");
  retire();
}

void Traces::retire() {
  if (!session_) return;
  // Workers stop seeing the session at their next loop; after the grace period none holds it.
  dp_.trace.store(nullptr, std::memory_order_release);
  rte_rcu_qsbr_synchronize(dp_.rcu, RTE_QSBR_THRID_INVALID);
  if (session_->filter.bpf) rte_bpf_destroy(session_->filter.bpf);
  session_.reset();
}

}  // namespace medix::dp
