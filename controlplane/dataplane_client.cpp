#include "dataplane_client.h"
#include "common/json.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>

#include <google/protobuf/util/json_util.h>

namespace medix::cp {

namespace {

constexpr auto rpc_deadline = std::chrono::seconds(10);
constexpr uint32_t spi_min = 0xc0000000, spi_max = 0xcfffffff;  // as the kernel's default range

void set_deadline(grpc::ClientContext& context) {
  context.set_deadline(std::chrono::system_clock::now() + rpc_deadline);
}

std::string status_text(const grpc::Status& s) {
  static const char* names[] = {
      "OK",        "CANCELLED",      "UNKNOWN",           "INVALID_ARGUMENT",   "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED",   "OUT_OF_RANGE",   "UNIMPLEMENTED",     "INTERNAL",           "UNAVAILABLE",
      "DATA_LOSS", "UNAUTHENTICATED"};
  size_t code = static_cast<size_t>(s.error_code());
  return std::string("medix-dp: ") + (code < std::size(names) ? names[code] : "CODE_" + std::to_string(code)) + ": " +
         s.error_message();
}

v1::Operation op(v1::Operation::Op kind, v1::Object object) {
  v1::Operation o;
  o.set_op(kind);
  *o.mutable_object() = std::move(object);
  return o;
}

v1::Object object_of(const v1::Tunnel& t) {
  v1::Object o;
  *o.mutable_tunnel() = t;
  return o;
}

v1::Object object_of(const v1::SecurityAssociation& sa) {
  v1::Object o;
  *o.mutable_sa() = sa;
  return o;
}

v1::Object object_of(const v1::Route& r) {
  v1::Object o;
  *o.mutable_route() = r;
  return o;
}

bool same(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

// As charon's lines (time_format %T with milliseconds), so that the two interleave readably.
void log(const std::string& line) {
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  tm local;
  localtime_r(&now.tv_sec, &local);
  char stamp[32];
  strftime(stamp, sizeof(stamp), "%T", &local);
  fprintf(stderr, "%s.%03ld medix-cp: %s\n", stamp, now.tv_nsec / 1000000, line.c_str());
}

std::string hex(uint32_t spi) {
  char buf[16];
  snprintf(buf, sizeof(buf), "%.8x", spi);
  return buf;
}

}  // namespace

DataplaneClient::DataplaneClient(const std::string& target, const c1::Intent& intent, const std::string& owned_path)
    : target_(target), owned_path_(owned_path), intent_(intent) {
  reconnect();
}

void DataplaneClient::reconnect() {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);  // a counters snapshot of a large IX exceeds 4 MB
  auto channel = grpc::CreateCustomChannel(target_, grpc::InsecureChannelCredentials(), arguments);
  auto stub = v1::Dataplane::NewStub(channel);
  std::lock_guard lock(stub_mu_);
  channel_ = std::move(channel);
  stub_ = std::move(stub);
}

int DataplaneClient::ha_role(int* peer_active) {
  v1::HaSyncStatus status;
  grpc::ClientContext context;
  set_deadline(context);
  if (peer_active) *peer_active = -1;
  if (!stub()->GetHaSync(&context, v1::GetHaSyncRequest(), &status).ok()) return -1;
  // The peer's role as its last hello said, if that was recent (hellos come every second).
  if (peer_active)
    *peer_active = status.peer_role() == v1::HA_ROLE_ACTIVE && status.peer_last_heard_ms() >= 0 &&
                   status.peer_last_heard_ms() < 3000;
  return status.role() == v1::HA_ROLE_STANDBY ? 0 : 1;
}

bool DataplaneClient::connected() {
  std::shared_ptr<grpc::Channel> channel;
  {
    std::lock_guard lock(stub_mu_);
    channel = channel_;
  }
  return channel->GetState(false) == GRPC_CHANNEL_READY;
}

void DataplaneClient::record(Trigger trigger, std::chrono::steady_clock::time_point started, bool ok) {
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::lock_guard lock(stats_mu_);
  ReconcileStats& s = stats_[trigger];
  s.runs++;
  if (!ok) s.failures++;
  s.last_seconds = seconds;
  if (ok)
    s.last_success_unix_ns =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
}

DataplaneClient::ReconcileStats DataplaneClient::reconcile_stats(Trigger trigger) {
  std::lock_guard lock(stats_mu_);
  return stats_[trigger];
}

std::shared_ptr<v1::Dataplane::Stub> DataplaneClient::stub() {
  std::lock_guard lock(stub_mu_);
  return stub_;
}

DataplaneClient::~DataplaneClient() { stop(); }

const c1::Peer* DataplaneClient::peer_of(const std::string& local, const std::string& remote) const {
  for (const auto& p : intent_.peers())
    if (p.local_address() == local && p.remote_address() == remote) return &p;
  return nullptr;
}

v1::Tunnel DataplaneClient::tunnel_of(const c1::Peer& p) const {
  v1::Tunnel t;
  t.set_name(p.tunnel());
  t.set_tenant(p.tenant());
  t.set_underlay_tenant(p.underlay_tenant());
  t.set_local_address(p.local_address());
  t.set_remote_address(p.remote_address());
  t.set_encap_udp_port(4500);  // until an SA tells otherwise
  t.set_mtu(p.mtu());
  t.set_tcp_mss_clamp(p.tcp_mss_clamp());
  t.set_spread(p.spread());
  for (const auto& s : p.local_selectors()) t.add_local_selectors(s);
  for (const auto& s : p.remote_selectors()) t.add_remote_selectors(s);
  return t;
}

std::string DataplaneClient::apply(const std::vector<v1::Operation>& ops, v1::ApplyResponse* out) {
  if (ops.empty()) return "";
  v1::ApplyRequest request;
  for (const auto& o : ops) *request.add_operations() = o;
  v1::ApplyResponse response;
  grpc::ClientContext context;
  set_deadline(context);
  auto status = stub()->Apply(&context, request, &response);
  if (out) *out = response;
  return status.ok() ? "" : status_text(status);
}

std::string DataplaneClient::list(std::map<std::string, v1::Object>& out) {
  std::vector<v1::Kind> kinds = static_kinds();
  kinds.push_back(v1::SA);
  for (auto kind : kinds) {
    std::string token;
    do {
      v1::ListRequest list;
      list.set_kind(kind);
      list.set_page_token(token);
      v1::ListResponse listed;
      grpc::ClientContext context;
      set_deadline(context);
      auto status = stub()->List(&context, list, &listed);
      if (!status.ok()) return status_text(status);
      for (const auto& o : listed.objects()) {
        if (o.has_neighbour() && o.neighbour().learned()) continue;  // ARP's, not anyone's intent
        out[key_of(o)] = comparable(o);
      }
      token = listed.next_page_token();
    } while (!token.empty());
  }
  return "";
}

std::vector<IntentObject> DataplaneClient::desired(const c1::Intent& intent,
                                                   const std::set<std::string>* touched) const {
  std::vector<IntentObject> want = static_objects(intent);
  for (int i = 0; i < intent.peers_size(); i++) {
    const c1::Peer& p = intent.peers(i);
    auto known = tunnels_.find(p.tunnel());
    // A tunnel as last applied keeps the encapsulation its SAs gave it, unless its peer changed.
    const bool changed = touched && touched->count(p.name());
    v1::Tunnel t = known != tunnels_.end() && !changed ? known->second : tunnel_of(p);
    want.push_back({object_of(t), "peers[" + std::to_string(i) + "] (" + p.name() + ", its tunnel)"});
  }
  std::stable_sort(want.begin(), want.end(),
                   [](const IntentObject& a, const IntentObject& b) { return rank_of(a.object) < rank_of(b.object); });
  return want;
}

void DataplaneClient::upserts(const std::vector<IntentObject>& want, const std::map<std::string, v1::Object>& have,
                              std::vector<v1::Operation>& ops, std::vector<std::string>& fields) {
  for (const auto& w : want) {
    auto it = have.find(key_of(w.object));
    if (it == have.end())
      ops.push_back(op(v1::Operation::CREATE, w.object));
    else if (!same(it->second, comparable(w.object)))
      ops.push_back(op(v1::Operation::UPDATE, w.object));
    else
      continue;
    fields.resize(ops.size());
    fields.back() = w.field;
  }
}

std::string DataplaneClient::load_owned() {
  owned_.clear();
  std::ifstream in(owned_path_);
  if (!in) return "";  // none yet: medix-cp never created anything with this intent file
  std::stringstream text;
  text << in.rdbuf();
  v1::Config config;
  if (auto error = common::parse_json(text.str(), config)) return owned_path_ + ": " + *error;
  auto add = [&](const auto& items, auto mutable_field) {
    for (const auto& item : items) {
      v1::Object o;
      *(o.*mutable_field)() = item;
      owned_[key_of(o)] = o;
    }
  };
  add(config.ports(), &v1::Object::mutable_port);
  add(config.tenants(), &v1::Object::mutable_tenant);
  add(config.interfaces(), &v1::Object::mutable_interface);
  add(config.routes(), &v1::Object::mutable_route);
  add(config.neighbours(), &v1::Object::mutable_neighbour);
  add(config.tunnels(), &v1::Object::mutable_tunnel);
  add(config.static_mappings(), &v1::Object::mutable_static_mapping);
  add(config.napt_pools(), &v1::Object::mutable_napt_pool);
  add(config.policy_rules(), &v1::Object::mutable_policy_rule);
  return "";
}

bool unreachable(const std::string& error) {
  return error.starts_with("medix-dp: UNAVAILABLE") || error.starts_with("medix-dp: DEADLINE_EXCEEDED");
}

grpc::StatusCode write_failure_code(int error) {
  return error == ENOSPC || error == EDQUOT ? grpc::StatusCode::RESOURCE_EXHAUSTED : grpc::StatusCode::INTERNAL;
}

std::string DataplaneClient::save_owned(int* error) {
  owned_count_.store(owned_.size(), std::memory_order_relaxed);
  v1::Config config;
  config.set_schema_version(1);
  for (const auto& [key, o] : owned_) {
    switch (o.kind_case()) {
      case v1::Object::kPort: *config.add_ports() = o.port(); break;
      case v1::Object::kTenant: *config.add_tenants() = o.tenant(); break;
      case v1::Object::kInterface: *config.add_interfaces() = o.interface(); break;
      case v1::Object::kRoute: *config.add_routes() = o.route(); break;
      case v1::Object::kNeighbour: *config.add_neighbours() = o.neighbour(); break;
      case v1::Object::kTunnel: *config.add_tunnels() = o.tunnel(); break;
      case v1::Object::kStaticMapping: *config.add_static_mappings() = o.static_mapping(); break;
      case v1::Object::kNaptPool: *config.add_napt_pools() = o.napt_pool(); break;
      case v1::Object::kPolicyRule: *config.add_policy_rules() = o.policy_rule(); break;
      default: break;
    }
  }
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string text;
  auto status = google::protobuf::util::MessageToJsonString(config, &text, options);
  if (!status.ok()) {
    if (error) *error = EINVAL;
    return std::string(status.message());
  }
  return write_atomically(owned_path_, text, 0600, error);
}

std::string DataplaneClient::prepare() {
  std::lock_guard lock(mu_);
  Run run{*this, start_run};
  if (std::string error = load_owned(); !error.empty()) return error;
  std::map<std::string, v1::Object> have;
  if (std::string error = list(have); !error.empty()) return error;
  std::vector<IntentObject> want = desired(intent_, nullptr);
  std::set<std::string> wanted, ours;  // keys; our tunnels' names (now, and left by an earlier run)
  for (const auto& w : want) {
    wanted.insert(key_of(w.object));
    if (w.object.has_tunnel()) ours.insert(w.object.tunnel().name());
  }
  for (const auto& [key, o] : owned_)
    if (o.has_tunnel()) ours.insert(o.tunnel().name());
  std::vector<v1::Operation> ops;
  std::vector<std::string> fields;
  // What an earlier medix-cp left on our tunnels: its SAs and routes (IKE starts afresh). Static
  // routes of the intent through a tunnel stay.
  for (const auto& [key, o] : have) {
    if ((o.has_sa() && ours.count(o.sa().tunnel())) ||
        (o.has_route() && o.route().has_via() && ours.count(o.route().via().interface()) && !wanted.count(key)))
      ops.push_back(op(v1::Operation::DELETE, o));
  }
  fields.resize(ops.size());
  upserts(want, have, ops, fields);
  // Owned from now on: recorded before medix-dp is changed, so that a crash leaves nothing unknown.
  for (const auto& w : want) owned_[key_of(w.object)] = w.object;
  if (std::string error = save_owned(); !error.empty()) return error;
  if (std::string error = apply(ops); !error.empty()) return name_fields(error, fields);
  tunnels_.clear();
  for (const auto& w : want)
    if (w.object.has_tunnel()) tunnels_[w.object.tunnel().name()] = w.object.tunnel();
  log("medix-dp prepared: " + std::to_string(ops.size()) + " operations");
  run.ok = true;
  return "";
}

std::string DataplaneClient::update_intent(const c1::Intent& next, const std::set<std::string>& touched,
                                           uint32_t& changed, grpc::StatusCode& code) {
  std::lock_guard lock(mu_);
  Run run{*this, apply_run};
  code = grpc::StatusCode::UNAVAILABLE;
  std::map<std::string, v1::Object> have;
  if (std::string error = list(have); !error.empty()) return error;
  std::vector<IntentObject> want = desired(next, &touched);
  std::vector<v1::Operation> ops;
  std::vector<std::string> fields;
  upserts(want, have, ops, fields);
  const auto owned_before = owned_;
  for (const auto& w : want) owned_[key_of(w.object)] = w.object;
  int write_error = 0;
  if (std::string error = save_owned(&write_error); !error.empty()) {
    owned_ = owned_before;
    owned_count_.store(owned_.size(), std::memory_order_relaxed);
    code = write_failure_code(write_error);
    return "medix-dp not changed: " + error;
  }
  v1::ApplyResponse response;
  if (std::string error = apply(ops, &response); !error.empty()) {
    owned_ = owned_before;
    save_owned();
    // Refused by medix-dp (the intent is wrong), or medix-dp did not answer.
    code = unreachable(error) ? grpc::StatusCode::UNAVAILABLE : grpc::StatusCode::INVALID_ARGUMENT;
    return name_fields(error, fields);
  }
  changed = static_cast<uint32_t>(ops.size());  // objects that differed (medix-dp counts its own way)
  for (const auto& w : want)
    if (w.object.has_tunnel()) tunnels_[w.object.tunnel().name()] = w.object.tunnel();
  intent_ = next;
  run.ok = true;
  return "";
}

std::string DataplaneClient::prune(uint32_t& removed) {
  std::lock_guard lock(mu_);
  removed = 0;
  std::set<std::string> wanted;
  for (const auto& w : desired(intent_, nullptr)) wanted.insert(key_of(w.object));
  std::vector<v1::Object> gone;  // owned, no longer wanted
  for (const auto& [key, o] : owned_)
    if (!wanted.count(key)) gone.push_back(o);
  if (gone.empty()) return "";
  std::map<std::string, v1::Object> have;
  if (std::string error = list(have); !error.empty()) return error;
  std::stable_sort(gone.begin(), gone.end(),
                   [](const v1::Object& a, const v1::Object& b) { return rank_of(a) > rank_of(b); });
  std::vector<v1::Operation> ops;
  for (const auto& o : gone) {
    if (!have.count(key_of(o))) continue;  // gone already
    if (o.has_tunnel()) {                  // a tunnel of a peer removed while medix-cp was not running
      for (const auto& [key, h] : have)
        if ((h.has_sa() && h.sa().tunnel() == o.tunnel().name()) ||
            (h.has_route() && h.route().has_via() && h.route().via().interface() == o.tunnel().name() &&
             !wanted.count(key)))
          ops.push_back(op(v1::Operation::DELETE, h));
    }
    ops.push_back(op(v1::Operation::DELETE, o));
  }
  std::string error;
  v1::ApplyResponse response;
  if (!ops.empty()) error = apply(ops, &response);
  if (error.empty()) {
    removed = static_cast<uint32_t>(ops.size());
    for (const auto& o : gone) owned_.erase(key_of(o));
  } else {
    // One at a time, then: what medix-dp refuses (still in use by objects not ours) stays owned,
    // to be deleted by a later reconciliation.
    for (const auto& o : ops) {
      if (apply({o}).empty()) {
        removed++;
        owned_.erase(key_of(o.object()));
      }
    }
    for (const auto& o : gone)
      if (!have.count(key_of(o))) owned_.erase(key_of(o));
  }
  if (removed) log("removed " + std::to_string(removed) + " objects no longer in the intent");
  if (std::string e = save_owned(); !e.empty()) return e;
  if (!error.empty()) return "deleting what is no longer in the intent: " + error;
  return "";
}

std::string DataplaneClient::remove_tunnel(const std::string& name) {
  std::lock_guard lock(mu_);
  std::vector<v1::Operation> ops;
  // What charon did not delete (it should have: the peer's IKE_SAs were terminated first).
  for (auto it = routes_.begin(); it != routes_.end();) {
    if (it->second.object.via().interface() != name) {
      ++it;
      continue;
    }
    ops.push_back(op(v1::Operation::DELETE, object_of(it->second.object)));
    it = routes_.erase(it);
  }
  for (auto it = sas_.begin(); it != sas_.end();) {
    if (it->second.tunnel != name) {
      ++it;
      continue;
    }
    ops.push_back(op(v1::Operation::DELETE, object_of(it->second.object)));
    it = sas_.erase(it);
  }
  v1::Tunnel t;
  t.set_name(name);
  ops.push_back(op(v1::Operation::DELETE, object_of(t)));
  tunnels_.erase(name);
  log("tunnel " + name + " removed");
  std::string error = apply(ops);
  if (error.empty()) {
    owned_.erase(key_of(object_of(t)));
    save_owned();
  }
  return error;
}

bool DataplaneClient::inbound_spi_in_use(uint32_t spi) const {
  for (const auto& [key, sa] : sas_)
    if (sa.inbound && sa.spi == spi) return true;
  return false;
}

std::string DataplaneClient::get_spi(const std::string&, const std::string&, uint32_t& spi) {
  std::lock_guard lock(mu_);
  std::uniform_int_distribution<uint32_t> pick(spi_min, spi_max);
  // SPIs given out for negotiations that never installed their SA are free again after a while.
  const auto now = std::chrono::steady_clock::now();
  std::erase_if(reserved_, [&](const auto& r) { return now - r.second > std::chrono::minutes(2); });
  do spi = pick(random_);
  while (reserved_.count(spi) || inbound_spi_in_use(spi));
  reserved_[spi] = now;
  return "";
}

std::string DataplaneClient::add_sa(const cp_sa& in) {
  std::lock_guard lock(mu_);
  const std::string src = in.id.src, dst = in.id.dst;
  const c1::Peer* peer = in.inbound ? peer_of(dst, src) : peer_of(src, dst);
  if (!peer) return "no peer with the endpoints " + src + " -> " + dst + " in the intent";

  std::vector<v1::Operation> ops;
  // The tunnel follows the SA's encapsulation: ESP in UDP to the peer's port, or raw ESP.
  v1::Tunnel tunnel = tunnels_.count(peer->tunnel()) ? tunnels_[peer->tunnel()] : tunnel_of(*peer);
  v1::Tunnel wanted = tunnel;
  wanted.set_encap_udp_port(in.encap ? (in.inbound ? in.src_port : in.dst_port) : 0);
  if (!same(wanted, tunnel)) ops.push_back(op(v1::Operation::UPDATE, object_of(wanted)));

  v1::SecurityAssociation sa;
  sa.set_spi(in.id.spi);
  sa.set_tunnel(peer->tunnel());
  sa.set_inbound(in.inbound);
  sa.set_cipher(static_cast<v1::Cipher>(in.cipher));
  sa.set_cipher_key(in.cipher_key, in.cipher_key_len);
  sa.set_integrity(static_cast<v1::Integrity>(in.integrity));
  if (in.integrity != CP_INTEGRITY_NONE) sa.set_integrity_key(in.integrity_key, in.integrity_key_len);
  sa.set_esn(in.esn);
  sa.set_replay_window(std::min<uint32_t>(in.replay_window, 4096));
  sa.set_soft_bytes(in.soft_bytes);
  sa.set_hard_bytes(in.hard_bytes);
  sa.set_soft_packets(in.soft_packets);
  sa.set_hard_packets(in.hard_packets);
  sa.set_origin(in.from_peer ? v1::SA_ORIGIN_PEER : v1::SA_ORIGIN_LOCAL);
  ops.push_back(op(v1::Operation::CREATE, object_of(sa)));

  std::string error = apply(ops);
  if (!error.empty()) return error;
  tunnels_[peer->tunnel()] = wanted;

  Sa& entry = sas_[{in.id.spi, dst}];
  const auto now = std::chrono::steady_clock::now();
  entry = Sa{in.id.spi, in.inbound, src, dst, peer->tunnel(), ++generation_, sa, now};
  if (in.soft_s) entry.soft_at = now + std::chrono::seconds(in.soft_s);
  if (in.inbound) reserved_.erase(in.id.spi);
  // charon expects the kernel to raise soft then hard expiry at these times (from now).
  if (in.soft_s) schedule(in.id.spi, dst, in.soft_s, false, entry.generation);
  if (in.hard_s) schedule(in.id.spi, dst, in.hard_s, true, entry.generation);
  log("SA " + hex(in.id.spi) + (in.inbound ? " in " : " out ") + src + " -> " + dst + " on tunnel " + peer->tunnel() +
      " (soft " + std::to_string(in.soft_s) + " s, hard " + std::to_string(in.hard_s) + " s)" +
      (in.from_peer ? ", negotiated by the pair's other node" : ""));
  return "";
}

std::string DataplaneClient::update_sa(const cp_sa_id& id, const std::string& new_src, const std::string& new_dst,
                                       uint16_t new_src_port, uint16_t new_dst_port, bool new_encap) {
  std::lock_guard lock(mu_);
  auto it = sas_.find({id.spi, id.dst});
  if (it == sas_.end()) return "no SA " + hex(id.spi) + " to " + id.dst;
  Sa sa = it->second;
  v1::Tunnel tunnel = tunnels_[sa.tunnel];
  v1::Tunnel wanted = tunnel;
  // Only the peer's side can move here (our address is the tunnel's, from the intent).
  wanted.set_remote_address(sa.inbound ? new_src : new_dst);
  wanted.set_encap_udp_port(new_encap ? (sa.inbound ? new_src_port : new_dst_port) : 0);
  if (!same(wanted, tunnel)) {
    std::string error = apply({op(v1::Operation::UPDATE, object_of(wanted))});
    if (!error.empty()) return error;
    tunnels_[sa.tunnel] = wanted;
  }
  sas_.erase(it);
  sa.src = new_src;
  sa.dst = new_dst;
  sas_[{sa.spi, sa.dst}] = sa;
  return "";
}

std::string DataplaneClient::query_sa(const cp_sa_id& id, uint64_t& bytes, uint64_t& packets, uint64_t& last_used_ns) {
  std::string tunnel;
  bool inbound;
  {
    std::lock_guard lock(mu_);
    auto it = sas_.find({id.spi, id.dst});
    if (it == sas_.end()) return "no SA " + hex(id.spi) + " to " + id.dst;
    tunnel = it->second.tunnel;
    inbound = it->second.inbound;
  }
  v1::CountersSnapshot snapshot;
  grpc::ClientContext context;
  set_deadline(context);
  auto status = stub()->GetCounters(&context, v1::GetCountersRequest(), &snapshot);
  if (!status.ok()) return status_text(status);
  for (const auto& c : snapshot.sas()) {
    if (c.spi() == id.spi && c.tunnel() == tunnel && c.inbound() == inbound) {
      bytes = c.bytes();
      packets = c.packets();
      last_used_ns = c.last_used_ns();
      return "";
    }
  }
  return "medix-dp has no counters for SA " + hex(id.spi);
}

std::string DataplaneClient::del_sa(const cp_sa_id& id) {
  std::lock_guard lock(mu_);
  auto it = sas_.find({id.spi, id.dst});
  if (it == sas_.end()) return "no SA " + hex(id.spi) + " to " + id.dst;
  v1::SecurityAssociation sa;
  sa.set_spi(id.spi);
  sa.set_tunnel(it->second.tunnel);
  sa.set_inbound(it->second.inbound);
  log("SA " + hex(id.spi) + (it->second.inbound ? " in" : " out") + " deleted");
  sas_.erase(it);  // its timers find no SA of their generation and do nothing
  return apply({op(v1::Operation::DELETE, object_of(sa))});
}

std::string DataplaneClient::add_policy(const cp_policy& p) {
  std::lock_guard lock(mu_);
  Policy& policy = policies_[p.key];
  if (policy.refs++ > 0) return "";       // the same selectors again (a rekey): one more reference
  if (p.dir != CP_POLICY_OUT) return "";  // inbound selectors are checked by the tunnel itself
  const c1::Peer* peer = peer_of(p.src, p.dst);
  if (!peer) {
    policies_.erase(p.key);
    return std::string("no peer with the endpoints ") + p.src + " -> " + p.dst + " in the intent";
  }
  if (!*p.dst_ts) {
    log(std::string("policy ") + p.key + ": the remote selector is not one prefix: no route added");
    return "";
  }
  // The area's BGP backbone (docs/areas.md): what crosses it is routed by BGP, each prefix while
  // it is announced; a route for its selectors (the whole core) would outlive a cut as a black hole.
  const std::string& backbone = intent_.bgp().backbone_interface();
  if (!backbone.empty() && peer->tunnel() == backbone) return "";
  // Traffic to the remote selector goes into the peer's tunnel.
  v1::Route route;
  route.set_tenant(peer->tenant());
  route.set_prefix(p.dst_ts);
  route.mutable_via()->set_interface(peer->tunnel());
  const std::string key = route.tenant() + " " + route.prefix();
  Route& r = routes_[key];
  if (r.refs == 0) {
    std::string error = apply({op(v1::Operation::CREATE, object_of(route))});
    if (!error.empty()) {
      routes_.erase(key);
      policies_.erase(p.key);
      return error;
    }
    r.object = route;
    log("route " + key + " via tunnel " + peer->tunnel());
  }
  r.refs++;
  policy.route = key;
  return "";
}

std::string DataplaneClient::del_policy(const cp_policy& p) {
  std::lock_guard lock(mu_);
  auto it = policies_.find(p.key);
  if (it == policies_.end()) return std::string("no policy ") + p.key;
  if (--it->second.refs > 0) return "";
  std::string route_key = it->second.route;
  policies_.erase(it);
  if (route_key.empty()) return "";
  auto r = routes_.find(route_key);
  if (r == routes_.end() || --r->second.refs > 0) return "";
  v1::Route route = r->second.object;
  routes_.erase(r);
  log("route " + route_key + " removed");
  return apply({op(v1::Operation::DELETE, object_of(route))});
}

std::string DataplaneClient::flush() {
  std::lock_guard lock(mu_);
  std::vector<v1::Operation> ops;
  for (const auto& [key, sa] : sas_) {
    v1::SecurityAssociation o;
    o.set_spi(sa.spi);
    o.set_tunnel(sa.tunnel);
    o.set_inbound(sa.inbound);
    ops.push_back(op(v1::Operation::DELETE, object_of(o)));
  }
  for (const auto& [key, r] : routes_) ops.push_back(op(v1::Operation::DELETE, object_of(r.object)));
  sas_.clear();
  routes_.clear();
  policies_.clear();
  return apply(ops);
}

// --- lifetimes ---------------------------------------------------------------------------------

void DataplaneClient::schedule(uint32_t spi, const std::string& dst, uint64_t seconds, bool hard, uint64_t generation) {
  timers_.emplace(std::chrono::steady_clock::now() + std::chrono::seconds(seconds), Timer{spi, dst, hard, generation});
  timers_cv_.notify_all();
}

int DataplaneClient::retime(const c1::Peer& peer) {
  std::lock_guard lock(mu_);
  // As child_lifetime (charon/daemon.c): the rekey time less a jitter up to the gap to the life.
  const uint64_t rekey = peer.child_rekey_seconds() ? peer.child_rekey_seconds() : 3600;
  const uint64_t life = peer.child_life_seconds() ? peer.child_life_seconds() : rekey * 110 / 100;
  std::uniform_int_distribution<uint64_t> jitter(0, life > rekey ? life - rekey - 1 : 0);
  const auto now = std::chrono::steady_clock::now();
  int n = 0;
  for (auto& [key, sa] : sas_) {
    if (sa.tunnel != peer.tunnel() || sa.soft_at == std::chrono::steady_clock::time_point::max()) continue;
    auto due = sa.installed + std::chrono::seconds(rekey - jitter(random_));
    if (due >= sa.soft_at) continue;  // the timer it has comes first (or a lengthened lifetime)
    sa.soft_at = due;
    // The timer at the old time stays: by then the SA is rekeyed and gone (or its generation).
    timers_.emplace(std::max(due, now), Timer{sa.spi, sa.dst, false, sa.generation});
    log("SA " + hex(sa.spi) + " soft time lifetime brought forward: in " +
        std::to_string(std::chrono::duration_cast<std::chrono::seconds>(std::max(due, now) - now).count()) + " s");
    n++;
  }
  timers_cv_.notify_all();
  return n;
}

int DataplaneClient::expire_due() {
  std::vector<KernelSaKey> due;
  {
    std::lock_guard lock(mu_);
    const auto now = std::chrono::steady_clock::now();
    for (const auto& [key, sa] : sas_)
      if (sa.soft_at <= now) due.push_back(key);
  }
  for (const auto& [spi, dst] : due) {
    log("SA " + hex(spi) + " soft time lifetime passed: raised again");
    cp_charon_expire(spi, dst.c_str(), false);
  }
  return int(due.size());
}

int64_t DataplaneClient::rekey_in_s(const std::string& tunnel, uint32_t spi_in, uint32_t spi_out) {
  std::lock_guard lock(mu_);
  auto soft = std::chrono::steady_clock::time_point::max();
  for (const auto& [key, sa] : sas_)
    if (sa.tunnel == tunnel && sa.spi == (sa.inbound ? spi_in : spi_out)) soft = std::min(soft, sa.soft_at);
  if (soft == std::chrono::steady_clock::time_point::max()) return -1;
  auto left = std::chrono::duration_cast<std::chrono::seconds>(soft - std::chrono::steady_clock::now()).count();
  return std::max<int64_t>(left, 0);
}

void DataplaneClient::run_timers() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (timers_.empty()) {
      timers_cv_.wait(lock);
      continue;
    }
    auto first = timers_.begin();
    if (timers_cv_.wait_until(lock, first->first) != std::cv_status::timeout) continue;
    first = timers_.begin();
    if (first == timers_.end() || first->first > std::chrono::steady_clock::now()) continue;
    Timer t = first->second;
    timers_.erase(first);
    auto sa = sas_.find({t.spi, t.dst});
    if (sa == sas_.end() || sa->second.generation != t.generation) continue;  // deleted since
    lock.unlock();
    log("SA " + hex(t.spi) + (t.hard ? " hard" : " soft") + " time lifetime reached");
    cp_charon_expire(t.spi, t.dst.c_str(), t.hard);
    lock.lock();
  }
}

int DataplaneClient::replay() {
  reconnect();
  std::lock_guard lock(mu_);
  Run run{*this, replay_run};
  std::map<std::string, v1::Object> have;
  if (!list(have).empty()) return -1;
  // The static objects and tunnels (as last applied), then the SAs and routes IKE made.
  std::vector<v1::Operation> ops;
  std::vector<std::string> fields;
  upserts(desired(intent_, nullptr), have, ops, fields);
  for (const auto& [key, sa] : sas_) ops.push_back(op(v1::Operation::CREATE, object_of(sa.object)));
  for (const auto& [key, r] : routes_) ops.push_back(op(v1::Operation::CREATE, object_of(r.object)));
  run.ok = true;
  if (ops.empty()) return 0;
  v1::ApplyResponse response;
  if (std::string error = apply(ops, &response); !error.empty()) {
    log("replay refused: " + name_fields(error, fields));
    run.ok = false;
    return -1;
  }
  return static_cast<int>(response.changed());
}

// SA events from medix-dp (byte and packet lifetimes, sequence number overflow, the HA fence); when the
// stream breaks, medix-dp may have restarted: replay.
void DataplaneClient::watch_events() {
  bool broken = false;
  for (;;) {
    if (broken) {
      int changed = replay();
      if (changed < 0) {  // not back yet
        std::unique_lock lock(mu_);
        if (stopping_) return;
        timers_cv_.wait_for(lock, std::chrono::milliseconds(200));
        continue;
      }
      if (changed > 0) {
        // A new medix-dp: its outbound sequence numbers restarted, so rekey every CHILD_SA.
        std::vector<std::pair<uint32_t, std::string>> outbound;
        {
          std::lock_guard lock(mu_);
          for (const auto& [key, sa] : sas_)
            if (!sa.inbound) outbound.emplace_back(sa.spi, sa.dst);
        }
        log("medix-dp restarted: replayed " + std::to_string(changed) + " objects; rekeying " +
            std::to_string(outbound.size()) + " CHILD_SAs");
        for (const auto& [spi, dst] : outbound) cp_charon_expire(spi, dst.c_str(), false);
      }
      broken = false;
    }
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
      watch_context_ = std::make_unique<grpc::ClientContext>();
    }
    auto stub = this->stub();  // the reader uses its channel as long as it lives
    auto reader = stub->WatchSaEvents(watch_context_.get(), v1::WatchSaEventsRequest());
    v1::SaEvent event;
    while (reader->Read(&event)) {
      std::string dst;
      {
        std::lock_guard lock(mu_);
        for (const auto& [key, sa] : sas_)
          if (sa.spi == event.spi() && sa.inbound == event.inbound() && sa.tunnel == event.tunnel()) dst = sa.dst;
      }
      if (dst.empty()) continue;
      // Overflow stops the SA: a rekey (soft) brings a fresh one, as XFRM's replay expiry. So does
      // HA_FENCED (medix-dp's HA fence, docs/ha.md): new keys share no nonce space with the peer node.
      bool hard = event.kind() == v1::SaEvent::HARD_EXPIRED;
      log("SA " + hex(event.spi()) + " " + v1::SaEvent::Kind_Name(event.kind()) + " after " +
          std::to_string(event.packets()) + " packets, " + std::to_string(event.bytes()) + " bytes");
      cp_charon_expire(event.spi(), dst.c_str(), hard);
    }
    auto finished = reader->Finish();
    log("WatchSaEvents ended: " + status_text(finished));
    broken = true;
    std::unique_lock lock(mu_);
    if (stopping_) return;
    timers_cv_.wait_for(lock, std::chrono::milliseconds(200));
  }
}

void DataplaneClient::start() {
  timer_thread_ = std::thread([this] { run_timers(); });
  event_thread_ = std::thread([this] { watch_events(); });
}

void DataplaneClient::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    if (watch_context_) watch_context_->TryCancel();
  }
  timers_cv_.notify_all();
  if (timer_thread_.joinable()) timer_thread_.join();
  if (event_thread_.joinable()) event_thread_.join();
}

}  // namespace medix::cp

// --- the glue: charon's backend calls, on charon's threads -------------------------------------

namespace {

medix::cp::DataplaneClient* client;

int result(const std::string& error, char* err, size_t len) {
  if (error.empty()) return 0;
  snprintf(err, len, "%s", error.c_str());
  return -1;
}

}  // namespace

namespace medix::cp {
void set_glue_client(DataplaneClient* dp) { client = dp; }
}  // namespace medix::cp

extern "C" {

int cp_dp_get_spi(const char* src, const char* dst, uint32_t* spi, char* err, size_t len) {
  return result(client->get_spi(src, dst, *spi), err, len);
}

int cp_dp_add_sa(const struct cp_sa* sa, char* err, size_t len) { return result(client->add_sa(*sa), err, len); }

int cp_dp_update_sa(const struct cp_sa_id* id, const char* new_src, const char* new_dst, uint16_t new_src_port,
                    uint16_t new_dst_port, bool new_encap, char* err, size_t len) {
  return result(client->update_sa(*id, new_src, new_dst, new_src_port, new_dst_port, new_encap), err, len);
}

int cp_dp_query_sa(const struct cp_sa_id* id, uint64_t* bytes, uint64_t* packets, uint64_t* last_used_ns, char* err,
                   size_t len) {
  return result(client->query_sa(*id, *bytes, *packets, *last_used_ns), err, len);
}

int cp_dp_del_sa(const struct cp_sa_id* id, char* err, size_t len) { return result(client->del_sa(*id), err, len); }

int cp_dp_add_policy(const struct cp_policy* policy, char* err, size_t len) {
  return result(client->add_policy(*policy), err, len);
}

int cp_dp_del_policy(const struct cp_policy* policy, char* err, size_t len) {
  return result(client->del_policy(*policy), err, len);
}

int cp_dp_flush(char* err, size_t len) { return result(client->flush(), err, len); }

}  // extern "C"
