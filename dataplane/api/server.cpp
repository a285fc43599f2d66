#include "api/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <intel-ipsec-mb.h>
#include <rte_cycles.h>
#include <rte_version.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "api/access.h"
#include "api/capture.h"
#include "api/listener.h"
#include "api/trace.h"
#include "common/address.h"
#include "common/log.h"
#include "common/version.h"
#include "control/kinds.h"
#include "ha/show.h"
#include "ip/show.h"
#include "medix/dataplane/v1/dataplane.grpc.pb.h"
#include "nat/nat.h"
#include "nat/show.h"
#include "runtime/snapshot.h"
#include "vrrp/show.h"

namespace medix::dp {

namespace v1 = medix::dataplane::v1;
using medix::common::format_ipv4;
using medix::common::held_note;
using medix::common::log;
using medix::common::LogLevel;
using KindCase = v1::Object::KindCase;

namespace {

grpc::StatusCode status_code(Code code) {
  switch (code) {
    case Code::ok: return grpc::StatusCode::OK;
    case Code::invalid_argument: return grpc::StatusCode::INVALID_ARGUMENT;
    case Code::not_found: return grpc::StatusCode::NOT_FOUND;
    case Code::already_exists: return grpc::StatusCode::ALREADY_EXISTS;
    case Code::failed_precondition: return grpc::StatusCode::FAILED_PRECONDITION;
    case Code::resource_exhausted: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case Code::unimplemented: return grpc::StatusCode::UNIMPLEMENTED;
  }
  return grpc::StatusCode::INTERNAL;
}

void fill_drops(google::protobuf::RepeatedPtrField<v1::DropCounter>* out, const uint64_t* drops) {
  for (unsigned r = 0; r < drop_reason_count; r++) {
    auto* d = out->Add();
    d->set_reason(drop_reasons[r].name);
    d->set_description(drop_reasons[r].description);
    d->set_packets(drops[r]);
  }
}

void fill_stages(google::protobuf::RepeatedPtrField<v1::StageRuntime>* out, const StageStats* stages) {
  for (unsigned s = 0; s < unsigned(Stage::count); s++) {
    auto* st = out->Add();
    st->set_stage(stage_names[s]);
    st->set_calls(stages[s].calls);
    st->set_packets(stages[s].packets);
    st->set_cycles(stages[s].cycles);
    st->set_cycles_per_packet(stages[s].packets ? double(stages[s].cycles) / double(stages[s].packets) : 0);
  }
}

void fill_nic(const NicStats& n, v1::NicCounters& out) {
  out.set_link_up(n.link_up);
  out.set_speed_mbps(n.speed_mbps);
  out.set_full_duplex(n.full_duplex);
  out.set_autoneg(n.autoneg);
  out.set_rx_packets(n.rx_packets);
  out.set_tx_packets(n.tx_packets);
  out.set_rx_bytes(n.rx_bytes);
  out.set_tx_bytes(n.tx_bytes);
  out.set_rx_missed(n.rx_missed);
  out.set_rx_errors(n.rx_errors);
  out.set_tx_errors(n.tx_errors);
  out.set_rx_nombuf(n.rx_nombuf);
  for (const auto& [name, value] : n.xstats) {
    auto* x = out.add_xstats();
    x->set_name(name);
    x->set_value(value);
  }
}

// Stages summed and per worker, and each worker's loop: since the last clear.
void fill_runtime(Dataplane& dp, v1::Runtime& out) {
  out.set_tsc_hz(dp.tsc_hz);
  {
    std::lock_guard lock(dp.clear_mutex);
    out.set_since_ns(dp.cleared.since_ns);
  }
  StageStats sum[unsigned(Stage::count)] = {};
  std::vector<LcoreStats> lcores;
  for (size_t q = 0; q < dp.workers.size(); q++) {
    lcores.push_back(dp.lcore_stats(q));
    for (unsigned s = 0; s < unsigned(Stage::count); s++) {
      sum[s].calls += lcores.back().stages[s].calls;
      sum[s].packets += lcores.back().stages[s].packets;
      sum[s].cycles += lcores.back().stages[s].cycles;
    }
  }
  fill_stages(out.mutable_stages(), sum);
  for (size_t q = 0; q < dp.workers.size(); q++) {
    const LcoreStats& x = lcores[q];
    auto* l = out.add_lcores();
    l->set_lcore(dp.workers[q]->lcore);
    fill_stages(l->mutable_stages(), x.stages);
    l->set_loops(x.loops);
    l->set_empty_polls(x.empty_polls);
    l->set_busy_cycles(x.busy_cycles);
    l->set_cycles(x.loop_cycles);
    l->set_busy_share(x.loop_cycles ? double(x.busy_cycles) / double(x.loop_cycles) : 0);
  }
  // The limits of the fair shares, as the workers apply them (docs/fair-shares.md).
  const Settings& s = dp.settings;
  auto budget = [&](const char* resource, const std::string& all, const std::string& share, const char* refused) {
    auto* b = out.add_budgets();
    b->set_resource(resource);
    b->set_budget(all);
    b->set_share(share);
    b->set_refused(refused);
  };
  auto rate = [](uint32_t per_second, uint32_t burst) {
    return std::to_string(per_second) + "/s, burst " + std::to_string(burst);
  };
  uint32_t sessions = sessions_per_worker(s.max_sessions, unsigned(std::max<size_t>(1, dp.workers.size())));
  uint32_t hops = std::max<uint32_t>(1, pending_next_hops * s.arp_pending_tenant_limit / s.arp_pending_limit);
  budget("icmp_errors", rate(s.icmp_rate_per_second, s.icmp_burst),
         rate(s.icmp_tenant_rate_per_second, s.icmp_tenant_burst) + " a tenant", "icmp_rate_limited");
  budget("arp_pending_packets", std::to_string(s.arp_pending_limit),
         std::to_string(std::min(s.arp_pending_tenant_limit, s.arp_pending_limit)) + " a tenant", "arp_pending_share");
  budget("arp_pending_next_hops", std::to_string(pending_next_hops),
         std::to_string(std::min(pending_next_hops, hops)) + " a tenant", "arp_pending_share");
  budget("nat_sessions", std::to_string(sessions),
         std::to_string(default_session_share(sessions)) + " a tenant (its session_limit, else its pool's, if set)",
         "nat_session_limit");
  budget("ike_punt", std::to_string(punt_ring_size) + " in the ring",
         rate(s.punt_rate_per_second, s.punt_burst) + " a source", "punt_policed");
  budget("nat_fragments", std::to_string(fragment_max_entries) + " datagrams",
         std::to_string(fragment_tenant_share) + " fragments a tenant", "nat_fragment_share");
  budget("packet_buffers_held", std::to_string(dp.pool ? dp.pool->size : 0),
         std::to_string(buffer_guard_share) + " a tenant when under 1/" + std::to_string(buffer_guard_low) + " free",
         "buffer_guard");
}

// The two streams are served by callbacks (api/watch.h), the rest by gRPC's sync threads.
using ServiceBase = v1::Dataplane::WithCallbackMethod_WatchCounters<
    v1::Dataplane::WithCallbackMethod_WatchSaEvents<v1::Dataplane::Service>>;

class Service final : public ServiceBase {
 public:
  Service(Dataplane& dp, const Access& access) : dp_(dp), access_(access), captures_(dp), traces_(dp) {}
  void serve_streams(Watches* watches) { watches_ = watches; }

  // Every method starts by asking whether its caller may call it (the table in access.cpp).
  grpc::Status allowed(const grpc::ServerContextBase* context, const char* method) {
    return access_.check(access_.identify(*context), method);
  }

  grpc::Status Apply(grpc::ServerContext* context, const v1::ApplyRequest* request,
                     v1::ApplyResponse* response) override {
    if (auto s = allowed(context, "Apply"); !s.ok()) return s;
    std::vector<Operation> ops;
    if (auto e = operations_from(*request, ops)) return {status_code(e->code), e->message};
    auto result = dp_.controller.apply(ops, request->expected_version());
    std::string who = access_.identify(*context).name;
    if (result.code != Code::ok) {
      if (unsigned held = 0; refusals_.allow(held))
        log(LogLevel::notice, "medix-dp: API: transaction of %s refused (%s): %s%s", who.c_str(),
            operations_summary(ops).c_str(), result.message.c_str(), held_note(held).c_str());
      return {status_code(result.code), result.message};
    }
    log(LogLevel::info, "medix-dp: API: version %lu by %s: %s; %u changed in %.1f ms", (unsigned long)result.version,
        who.c_str(), operations_summary(ops).c_str(), result.changed, double(result.nanoseconds) / 1e6);
    response->set_version(result.version);
    response->set_changed(result.changed);
    response->set_apply_ns(result.nanoseconds);
    response->set_grace_ns(result.commit.grace_ns);
    return grpc::Status::OK;
  }

  grpc::Status Get(grpc::ServerContext* context, const v1::GetRequest* request, v1::GetResponse* response) override {
    if (auto s = allowed(context, "Get"); !s.ok()) return s;
    const v1::Object& key = request->key();
    const Kind* kind = kind_of(key.kind_case());
    if (!kind) return {grpc::StatusCode::INVALID_ARGUMENT, "key: an object with its key fields is required"};
    return dp_.controller.read([&](const Intent& in, const Committer& c, uint64_t version) -> grpc::Status {
      response->set_version(version);
      auto* o = response->mutable_object();
      if (auto e = kind->get(in, c, key, *o)) return {status_code(e->code), e->message};
      if (o->kind_case() == KindCase::KIND_NOT_SET)
        return {grpc::StatusCode::NOT_FOUND, std::string("no such ") + kind->name};
      return grpc::Status::OK;
    });
  }

  grpc::Status List(grpc::ServerContext* context, const v1::ListRequest* request, v1::ListResponse* response) override {
    if (auto s = allowed(context, "List"); !s.ok()) return s;
    uint32_t page = request->page_size() ? request->page_size() : 1000;
    if (page > 100000)
      return {grpc::StatusCode::INVALID_ARGUMENT, "page_size: " + std::to_string(page) + " is above 100000"};
    const Kind* kind = kind_of(request->kind());
    if (!kind) return {grpc::StatusCode::INVALID_ARGUMENT, "kind: is required"};
    return dp_.controller.read([&](const Intent& in, const Committer& c, uint64_t version) -> grpc::Status {
      response->set_version(version);
      if (auto e = kind->list(in, c, *request, page, *response)) return {status_code(e->code), e->message};
      return grpc::Status::OK;
    });
  }

  grpc::Status GetCounters(grpc::ServerContext* context, const v1::GetCountersRequest* request,
                           v1::CountersSnapshot* response) override {
    if (auto s = allowed(context, "GetCounters"); !s.ok()) return s;
    if (request->ports_only())
      fill_kinds(take_port_snapshot(dp_), *response);
    else
      fill_counters(*response);
    return grpc::Status::OK;
  }

  grpc::ServerWriteReactor<v1::CountersSnapshot>* WatchCounters(grpc::CallbackServerContext* context,
                                                                const v1::WatchCountersRequest* request) override {
    Identity who = access_.identify(*context);
    if (auto s = access_.check(who, "WatchCounters"); !s.ok()) return new RefusedStream<v1::CountersSnapshot>(s);
    return watches_->counters(context, who.name, request->interval_ms());
  }

  grpc::ServerWriteReactor<v1::SaEvent>* WatchSaEvents(grpc::CallbackServerContext* context,
                                                       const v1::WatchSaEventsRequest*) override {
    Identity who = access_.identify(*context);
    if (auto s = access_.check(who, "WatchSaEvents"); !s.ok()) return new RefusedStream<v1::SaEvent>(s);
    return watches_->sa_events(context, who.name);
  }

  grpc::Status ListSessions(grpc::ServerContext* context, const v1::ListSessionsRequest* request,
                            v1::ListSessionsResponse* response) override {
    if (auto s = allowed(context, "ListSessions"); !s.ok()) return s;
    if (auto e = list_sessions(dp_, *request, *response)) return {status_code(e->code), e->message};
    return grpc::Status::OK;
  }

  grpc::Status ClearSessions(grpc::ServerContext* context, const v1::ClearSessionsRequest* request,
                             v1::ClearSessionsResponse*) override {
    if (auto s = allowed(context, "ClearSessions"); !s.ok()) return s;
    if (request->tenant().empty()) return {grpc::StatusCode::INVALID_ARGUMENT, "tenant: is required"};
    if (!dp_.controller.clear_sessions(request->tenant()))
      return {grpc::StatusCode::NOT_FOUND, "tenant: no tenant named \"" + request->tenant() + "\""};
    log(LogLevel::notice, "medix-dp: API: %s cleared tenant \"%s\"'s sessions", access_.identify(*context).name.c_str(),
        request->tenant().c_str());
    return grpc::Status::OK;
  }

  grpc::Status GetFib(grpc::ServerContext* context, const v1::GetFibRequest* request,
                      v1::GetFibResponse* response) override {
    if (auto s = allowed(context, "GetFib"); !s.ok()) return s;
    uint32_t page = request->page_size() ? request->page_size() : 1000;
    if (page > 100000)
      return {grpc::StatusCode::INVALID_ARGUMENT, "page_size: " + std::to_string(page) + " is above 100000"};
    return dp_.controller.read([&](const Intent& in, const Committer& c, uint64_t) -> grpc::Status {
      if (auto e = get_fib(in, c, *request, page, *response)) return {status_code(e->code), e->message};
      return grpc::Status::OK;
    });
  }

  grpc::Status Lookup(grpc::ServerContext* context, const v1::LookupRequest* request,
                      v1::LookupResponse* response) override {
    if (auto s = allowed(context, "Lookup"); !s.ok()) return s;
    return dp_.controller.read([&](const Intent& in, const Committer& c, uint64_t) -> grpc::Status {
      if (auto e = lookup(in, c, *request, *response)) return {status_code(e->code), e->message};
      return grpc::Status::OK;
    });
  }

  grpc::Status GetVersion(grpc::ServerContext* context, const v1::GetVersionRequest*, v1::Version* response) override {
    if (auto s = allowed(context, "GetVersion"); !s.ok()) return s;
    response->set_version(medix::common::version());
    response->set_dpdk(rte_version());
    response->set_ipsec_mb(imb_get_version_str());
    response->set_started_unix_ns(medix::common::started_unix_ns());
    response->set_intent_version(dp_.controller.read([](auto&, auto&, uint64_t version) { return version; }));
    return grpc::Status::OK;
  }

  grpc::Status SetHaRole(grpc::ServerContext* context, const v1::SetHaRoleRequest* request,
                         v1::SetHaRoleResponse* response) override {
    if (auto s = allowed(context, "SetHaRole"); !s.ok()) return s;
    if (request->role() != v1::HA_ROLE_ACTIVE && request->role() != v1::HA_ROLE_STANDBY)
      return {grpc::StatusCode::INVALID_ARGUMENT, "role: active or standby is required"};
    bool standby = request->role() == v1::HA_ROLE_STANDBY;
    std::string who = access_.identify(*context).name;
    bool was = dp_.ha_roles.set(dp_.ha_standby, standby, ha::Cause::manual,
                                who + ": " + (request->reason().empty() ? "no reason given" : request->reason()));
    response->set_previous(was ? v1::HA_ROLE_STANDBY : v1::HA_ROLE_ACTIVE);
    return grpc::Status::OK;
  }

  grpc::Status GetHaSync(grpc::ServerContext* context, const v1::GetHaSyncRequest*,
                         v1::HaSyncStatus* response) override {
    if (auto s = allowed(context, "GetHaSync"); !s.ok()) return s;
    fill_ha_sync(dp_, *response);
    return grpc::Status::OK;
  }

  grpc::Status GetVrrp(grpc::ServerContext* context, const v1::GetVrrpRequest*,
                       v1::GetVrrpResponse* response) override {
    if (auto s = allowed(context, "GetVrrp"); !s.ok()) return s;
    uint64_t ring_full = dp_.totals().drops[unsigned(Drop::vrrp_full)];
    dp_.controller.read([&](const Intent&, const Committer& c, uint64_t) {
      vrrp::show(dp_.vrrp, *c.current(), ring_full, *response);
      return 0;
    });
    return grpc::Status::OK;
  }

  grpc::Status GetRuntime(grpc::ServerContext* context, const v1::GetRuntimeRequest*, v1::Runtime* response) override {
    if (auto s = allowed(context, "GetRuntime"); !s.ok()) return s;
    fill_runtime(dp_, *response);
    return grpc::Status::OK;
  }

  grpc::Status ClearCounters(grpc::ServerContext* context, const v1::ClearCountersRequest*,
                             v1::ClearCountersResponse* response) override {
    if (auto s = allowed(context, "ClearCounters"); !s.ok()) return s;
    response->set_since_ns(dp_.clear_counters());
    log(LogLevel::notice, "medix-dp: API: %s cleared the counters", access_.identify(*context).name.c_str());
    return grpc::Status::OK;
  }

  // Served by one of gRPC's sync threads for as long as it runs (api/capture.h).
  grpc::Status Capture(grpc::ServerContext* context, const v1::CaptureRequest* request,
                       grpc::ServerWriter<v1::CapturedPacket>* writer) override {
    if (auto s = allowed(context, "Capture"); !s.ok()) return s;
    return captures_.run(*context, *request, *writer);
  }
  void stop_captures() { captures_.stop(); }

  grpc::Status StartTrace(grpc::ServerContext* context, const v1::StartTraceRequest* request,
                          v1::StartTraceResponse*) override {
    if (auto s = allowed(context, "StartTrace"); !s.ok()) return s;
    return traces_.start(*request);
  }
  grpc::Status GetTrace(grpc::ServerContext* context, const v1::GetTraceRequest*,
                        v1::GetTraceResponse* response) override {
    if (auto s = allowed(context, "GetTrace"); !s.ok()) return s;
    traces_.get(*response);
    return grpc::Status::OK;
  }
  grpc::Status ClearTrace(grpc::ServerContext* context, const v1::ClearTraceRequest*,
                          v1::ClearTraceResponse*) override {
    if (auto s = allowed(context, "ClearTrace"); !s.ok()) return s;
    traces_.clear();
    return grpc::Status::OK;
  }

  // The versions, the kinds' counters (only the ports' with ports_only) and the ports' NICs.
  static void fill_kinds(const CounterSnapshot& s, v1::CountersSnapshot& out) {
    out.set_version(s.version);
    out.set_since_ns(s.since_ns);
    out.set_timestamp_ns(uint64_t(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count()));
    for (const auto& [kind, rows] : s.kinds) add_counters(*kind, rows, out);
    for (size_t i = 0; i < s.nics.size() && i < size_t(out.ports_size()); i++)
      fill_nic(s.nics[i].stats, *out.mutable_ports(int(i))->mutable_nic());
  }

  void fill_counters(v1::CountersSnapshot& out) {
    CounterSnapshot s = take_snapshot(dp_);
    fill_kinds(s, out);
    fill_drops(out.mutable_drops(), s.totals.drops);
    for (size_t q = 0; q < dp_.workers.size(); q++) {
      auto* l = out.add_lcores();
      l->set_lcore(dp_.workers[q]->lcore);
      fill_drops(l->mutable_drops(), s.lcores[q].drops);
    }
    for (const auto& nic : s.nics)
      for (const auto& drop : nic_drops) {
        auto* d = out.add_nic_drops();
        d->set_port(nic.port);
        d->set_reason(drop.name);
        d->set_description(drop.description);
        d->set_packets(nic.stats.*drop.field);
      }
    auto* e = out.mutable_events();
    e->set_icmp_sent(s.totals.icmp_sent);
    e->set_icmp_rate_limited(s.totals.icmp_rate_limited);
    e->set_arp_requests_sent(s.totals.arp_requests_sent);
    e->set_arp_replies_sent(s.totals.arp_replies_sent);
    e->set_arp_replies_received(s.totals.arp_replies_received);
  }

 private:
  Dataplane& dp_;
  const Access& access_;
  medix::common::LogLimit refusals_{20};  // refused transactions logged a second
  Watches* watches_ = nullptr;
  Captures captures_;
  Traces traces_;
};

std::optional<std::string> read_file(const std::string& path, std::string& out) {
  std::ifstream in(path);
  if (!in) return path + ": cannot open the file";
  std::stringstream s;
  s << in.rdbuf();
  out = s.str();
  return std::nullopt;
}

}  // namespace

struct ApiServer::Impl {
  Access access;
  std::unique_ptr<Service> service;
  std::unique_ptr<Watches> watches;
  UnixListener listener;
  std::unique_ptr<grpc::Server> server;
};

namespace {

// Only a stale socket may be replaced: a path that holds anything else, or a socket a live
// server answers on, is refused (and left as it is).
std::optional<std::string> claim_socket(const std::string& path) {
  struct stat st;
  if (lstat(path.c_str(), &st) != 0) return std::nullopt;  // nothing there
  if (!S_ISSOCK(st.st_mode)) return path + ": exists and is not a socket (refusing to replace it)";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return path + ": longer than a unix socket path may be";
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  bool live = fd >= 0 && connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  if (fd >= 0) close(fd);
  if (live) return path + ": a running server listens on it (another medix-dp?)";
  unlink(path.c_str());
  return std::nullopt;
}

}  // namespace

ApiServer::ApiServer() : impl_(std::make_unique<Impl>()) {}
ApiServer::~ApiServer() { stop(); }

std::optional<std::string> ApiServer::start(Dataplane& dp, const ApiOptions& options) {
  if (auto missing = Access::missing_methods(); !missing.empty())
    return "no role may call " + missing + " (api/access.cpp's table misses it)";
  if (auto e = impl_->access.load(options.roles)) return "--api-roles " + *e;
  impl_->access.set_unix_default(geteuid());
  impl_->service = std::make_unique<Service>(dp, impl_->access);
  impl_->watches = std::make_unique<Watches>(
      dp.controller, [service = impl_->service.get()](v1::CountersSnapshot& out) { service->fill_counters(out); },
      options.streams);
  impl_->service->serve_streams(impl_->watches.get());
  // Beside our service: grpc.health.v1.Health and server reflection, for any peer the transport
  // let in (the unix socket's owner, a TLS client with a certificate from the client CA); they
  // read nothing of the intent, so the role table (api/access.cpp) does not cover them.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.SetMaxReceiveMessageSize(1 << 30);  // a transaction of a million routes
  builder.SetMaxSendMessageSize(256 << 20);
  builder.RegisterService(impl_->service.get());
  if (auto e = claim_socket(options.socket_path)) return "--api-socket " + *e;
  if (auto e = impl_->listener.listen(options.socket_path)) return "--api-socket " + *e;
  if (!options.listen.empty()) {
    grpc::SslServerCredentialsOptions tls(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    if (auto e = read_file(options.tls_key, pair.private_key)) return "--tls-key " + *e;
    if (auto e = read_file(options.tls_cert, pair.cert_chain)) return "--tls-cert " + *e;
    if (auto e = read_file(options.tls_client_ca, tls.pem_root_certs)) return "--tls-client-ca " + *e;
    tls.pem_key_cert_pairs.push_back(pair);
    builder.AddListeningPort(options.listen, grpc::SslServerCredentials(tls));
  }
  impl_->server = builder.BuildAndStart();
  if (!impl_->server) return "cannot listen on " + options.listen;
  impl_->server->GetHealthCheckService()->SetServingStatus(v1::Dataplane::service_full_name(), true);
  impl_->listener.serve(impl_->server.get(), &impl_->access);
  return std::nullopt;
}

// Health turns NOT_SERVING (told to every Watch) while calls are still answered; then streams
// end (a client that does not read holds nothing up), then what is in flight has 2 s to finish
// before gRPC cancels it.
void ApiServer::stop() {
  if (impl_->server) impl_->server->GetHealthCheckService()->Shutdown();
  impl_->listener.stop();
  if (impl_->watches) impl_->watches->stop();
  if (impl_->service) impl_->service->stop_captures();
  if (impl_->server) impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  if (impl_->watches) impl_->watches->wait_done(std::chrono::seconds(2));
  impl_->server.reset();
  impl_->watches.reset();
}

}  // namespace medix::dp
