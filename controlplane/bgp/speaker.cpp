#include "bgp/speaker.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdio>
#include <set>
#include <vector>

#include "common/address.h"

namespace medix::cp::bgp {

namespace {

constexpr auto kPeriod = std::chrono::milliseconds(200);
constexpr uint32_t kDefaultLocalPref = 100;
constexpr uint64_t kResyncCycles = 25;  // 5 s
constexpr unsigned kDefaultBfdIntervalMs = 100;
constexpr unsigned kDefaultBfdMultiplier = 3;

std::unique_ptr<grpc::ClientContext> context() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(1));
  return c;
}

apipb::Family ipv4_unicast() {
  apipb::Family f;
  f.set_afi(apipb::Family::AFI_IP);
  f.set_safi(apipb::Family::SAFI_UNICAST);
  return f;
}

// "100.64.1.7/24" -> "100.64.1.0/24"; "100.64.9.1" -> "100.64.9.1/32"; "" if not IPv4.
std::string network(const std::string& text) {
  std::string t = text.find('/') == std::string::npos ? text + "/32" : text;
  auto p = common::parse_prefix(t);
  return p ? common::format_network(*p) : "";
}

std::string address_of(const std::string& text) { return text.substr(0, text.find('/')); }

std::string text(const grpc::Status& s) { return std::to_string(s.error_code()) + " " + s.error_message(); }

}  // namespace

Speaker::Speaker(const std::string& daemon, const std::string& dataplane_target, std::function<c1::Intent()> running,
                 std::function<void()> changed, std::unique_ptr<Bird> bird)
    : daemon_(daemon), running_(std::move(running)), changed_(std::move(changed)), bird_(std::move(bird)) {
  gobgp_ = apipb::GobgpApi::NewStub(grpc::CreateChannel(daemon, grpc::InsecureChannelCredentials()));
  dataplane_ = v1::Dataplane::NewStub(grpc::CreateChannel(dataplane_target, grpc::InsecureChannelCredentials()));
  status_.set_daemon(daemon);
  if (bird_) status_.set_bfd_daemon(bird_->socket());
}

void Speaker::start() {
  thread_ = std::thread([this] { run(); });
}

void Speaker::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

c1::BgpStatus Speaker::status() {
  std::lock_guard lock(mu_);
  return status_;
}

void Speaker::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    lock.unlock();
    cycle();
    lock.lock();
    wake_.wait_for(lock, kPeriod, [this] { return stopping_; });
  }
}

std::string Speaker::read_daemon(std::map<std::string, Ours>& ours, std::map<std::string, apipb::Path>& learned,
                                 c1::BgpStatus& status) {
  apipb::ListPathRequest request;
  request.set_table_type(apipb::GLOBAL);
  *request.mutable_family() = ipv4_unicast();
  auto ctx = context();
  auto reader = gobgp_->ListPath(ctx.get(), request);
  apipb::ListPathResponse response;
  while (reader->Read(&response)) {
    const auto& d = response.destination();
    for (const auto& path : d.paths()) {
      Announcement as;
      for (const auto& a : path.pattrs()) {
        apipb::NextHopAttribute nh;
        apipb::LocalPrefAttribute lp;
        if (a.UnpackTo(&nh))
          as.next_hop = nh.next_hop();
        else if (a.UnpackTo(&lp))
          as.local_pref = lp.local_pref();
      }
      // A path of this speaker's own (AddPath) has no source: gobgpd says "<nil>".
      if (path.neighbor_ip().empty() || path.neighbor_ip() == "<nil>") {
        ours[d.prefix()] = Ours{path, as};
      } else if (path.best() && !path.is_withdraw()) {
        learned[d.prefix()] = path;
      }
    }
  }
  if (grpc::Status s = reader->Finish(); !s.ok()) return "gobgpd " + daemon_ + ": ListPath: " + text(s);

  apipb::ListPeerRequest peers;
  auto pctx = context();
  auto preader = gobgp_->ListPeer(pctx.get(), peers);
  apipb::ListPeerResponse peer;
  while (preader->Read(&peer)) {
    auto* s = status.add_sessions();
    const auto& st = peer.peer().state();
    s->set_neighbor(peer.peer().conf().neighbor_address());
    s->set_state(apipb::PeerState::SessionState_Name(st.session_state()));
    s->set_hold_time(peer.peer().timers().state().negotiated_hold_time());
    if (st.session_state() == apipb::PeerState::ESTABLISHED) {
      const auto& up = peer.peer().timers().state().uptime();
      s->set_up_unix_ns(up.seconds() * 1000000000LL + up.nanos());
    }
  }
  if (grpc::Status s = preader->Finish(); !s.ok()) return "gobgpd " + daemon_ + ": ListPeer: " + text(s);
  return "";
}

std::string Speaker::list_installed(const std::string& tenant, const std::string& interface,
                                    const std::map<std::string, v1::Route>& intent_routes) {
  installed_.clear();
  std::string token;
  do {
    v1::ListRequest list;
    list.set_kind(v1::ROUTE);
    list.set_tenant(tenant);
    list.set_page_token(token);
    v1::ListResponse listed;
    if (grpc::Status s = dataplane_->List(context().get(), list, &listed); !s.ok())
      return "medix-dp: List routes: " + text(s);
    for (const auto& o : listed.objects()) {
      const auto& r = o.route();
      if (r.has_via() && r.via().interface() == interface && !intent_routes.count(network(r.prefix())))
        installed_[network(r.prefix())] = r;
    }
    token = listed.next_page_token();
  } while (!token.empty());
  return "";
}

std::string Speaker::install(const std::map<std::string, v1::Route>& want) {
  v1::ApplyRequest request;
  auto add = [&request](v1::Operation::Op op, const v1::Route& r) {
    auto* o = request.add_operations();
    o->set_op(op);
    *o->mutable_object()->mutable_route() = r;
  };
  for (const auto& [prefix, route] : installed_)
    if (!want.count(prefix)) add(v1::Operation::DELETE, route);
  for (const auto& [prefix, route] : want) {
    auto it = installed_.find(prefix);
    if (it == installed_.end())
      add(v1::Operation::CREATE, route);
    else if (it->second.SerializeAsString() != route.SerializeAsString())
      add(v1::Operation::UPDATE, route);
  }
  if (request.operations_size() == 0) return "";
  v1::ApplyResponse response;
  if (grpc::Status s = dataplane_->Apply(context().get(), request, &response); !s.ok()) {
    resync_ = true;  // medix-dp restarted, or a route taken meanwhile: read what it has again
    return "medix-dp: Apply routes: " + text(s);
  }
  installed_ = want;
  return "";
}

std::optional<bool> Speaker::link_up(const std::string& port) {
  v1::CountersSnapshot counters;
  v1::GetCountersRequest request;
  request.set_ports_only(true);  // every 200 ms: not every tenant's counters, summed and sent
  if (!dataplane_->GetCounters(context().get(), request, &counters).ok()) {
    dataplane_silent_++;
    return std::nullopt;
  }
  dataplane_silent_ = 0;
  for (const auto& p : counters.ports())
    if (p.name() == port) return p.nic().link_up();
  return std::nullopt;
}

std::optional<bool> Speaker::tunnel_has_sa(const std::string& tunnel) {
  std::string token;
  do {
    v1::ListRequest list;
    list.set_kind(v1::SA);
    list.set_page_token(token);
    v1::ListResponse listed;
    if (!dataplane_->List(context().get(), list, &listed).ok()) return std::nullopt;
    for (const auto& o : listed.objects())
      if (o.sa().tunnel() == tunnel && !o.sa().inbound()) return true;
    token = listed.next_page_token();
  } while (!token.empty());
  return false;
}

std::string Speaker::shut_sessions(const std::map<std::string, std::string>& shut) {
  std::string error;
  std::map<std::string, std::string> said;  // why -> the neighbours shut for it
  for (const auto& [neighbor, why] : shut) {
    auto it = shut_.find(neighbor);
    if (it != shut_.end()) {  // shut already: said again if for another reason now
      if (it->second != why) said[why] += (said[why].empty() ? "" : ", ") + neighbor;
      it->second = why;
      continue;
    }
    apipb::DisablePeerRequest request;
    request.set_address(neighbor);
    request.set_communication(why);
    google::protobuf::Empty empty;
    if (grpc::Status s = gobgp_->DisablePeer(context().get(), request, &empty); !s.ok()) {
      error = "gobgpd " + daemon_ + ": DisablePeer " + neighbor + ": " + text(s);
    } else {
      shut_[neighbor] = why;
      said[why] += (said[why].empty() ? "" : ", ") + neighbor;
    }
  }
  for (const auto& [why, neighbors] : said)
    fprintf(stderr, "medix-cp: bgp: %s: sessions to %s shut\n", why.c_str(), neighbors.c_str());
  for (auto it = shut_.begin(); it != shut_.end();) {
    if (shut.count(it->first)) {
      ++it;
      continue;
    }
    apipb::EnablePeerRequest request;
    request.set_address(it->first);
    google::protobuf::Empty empty;
    if (grpc::Status s = gobgp_->EnablePeer(context().get(), request, &empty); !s.ok()) {
      error = "gobgpd " + daemon_ + ": EnablePeer " + it->first + ": " + text(s);
      ++it;
    } else {
      fprintf(stderr, "medix-cp: bgp: session to %s enabled again (shut: %s)\n", it->first.c_str(), it->second.c_str());
      it = shut_.erase(it);
    }
  }
  return error;
}

std::string Speaker::read_bfd(const std::map<std::string, std::string>* neighbours, const c1::Bgp& conf,
                              c1::BgpStatus& status, std::map<std::string, std::string>& shut) {
  std::string error;
  if (neighbours)
    error = bird_->configure(*neighbours, conf.bfd_interval_ms() ? conf.bfd_interval_ms() : kDefaultBfdIntervalMs,
                             conf.bfd_multiplier() ? conf.bfd_multiplier() : kDefaultBfdMultiplier);
  std::map<std::string, std::string> state;
  if (std::string e = bird_->sessions(state); !e.empty()) {
    bfd_up_.clear();  // nothing known: the sessions are left to BGP's hold timer
    bfd_failed_.clear();
    return e;
  }
  status.set_bfd_connected(error.empty());
  for (auto& session : *status.mutable_sessions()) {
    const std::string& n = session.neighbor();
    auto it = state.find(n);
    if (it == state.end()) {  // no BFD with it (not on the backbone, or not configured yet)
      bfd_up_.erase(n);
      bfd_failed_.erase(n);
      continue;
    }
    session.set_bfd_state(it->second);
    if (it->second == "Up") {
      bfd_up_.insert(n);
      bfd_failed_.erase(n);
    } else if (it->second != "AdminDown" && bfd_up_.erase(n)) {  // down after it was up
      bfd_failed_.insert(n);
      bfd_downs_[n]++;
    }
    session.set_bfd_downs(bfd_downs_[n]);
    if (bfd_failed_.count(n)) shut.emplace(n, "BFD to " + n + " down");
  }
  return error;
}

void Speaker::cycle() {
  c1::BgpStatus next;
  next.set_daemon(daemon_);
  if (bird_) next.set_bfd_daemon(bird_->socket());
  std::string error;
  const c1::Intent intent = running_();
  const c1::Bgp& conf = intent.bgp();

  // Where the routes go: the backbone interface of the core tenant, and our next hop on it.
  std::string core, next_hop, port;
  std::vector<common::Prefix> backbone;  // its subnets: a next hop elsewhere is not reachable
  for (const auto& i : intent.interfaces())
    if (i.name() == conf.backbone_interface()) {
      core = i.tenant();
      port = i.port();
      next_hop = conf.next_hop().empty() && i.addresses_size() ? address_of(i.addresses(0)) : conf.next_hop();
      for (const auto& a : i.addresses())
        if (auto p = common::parse_prefix(a)) backbone.push_back(*p);
    }
  // Or an ESP tunnel over a carrier (a peer's): no address of its own (our next hop is the
  // intent's), the other areas' behind its remote selectors, the underlay port's link watched.
  bool tunnel = false;
  for (const auto& p : intent.peers()) {
    if (!core.empty() || (p.tunnel().empty() ? p.name() : p.tunnel()) != conf.backbone_interface()) continue;
    tunnel = true;
    core = p.tenant();
    next_hop = conf.next_hop();
    for (const auto& sel : p.remote_selectors())
      if (auto r = common::parse_prefix(sel)) backbone.push_back(*r);
    for (const auto& i : intent.interfaces())
      if (i.tenant() == p.underlay_tenant())
        for (const auto& a : i.addresses())
          if (address_of(a) == p.local_address()) port = i.port();
  }
  auto on_backbone = [&backbone](const std::string& address) {
    auto a = common::parse_ipv4(address);
    if (!a) return false;
    for (const auto& p : backbone) {
      uint32_t mask = p.length ? ~uint32_t(0) << (32 - p.length) : 0;
      if ((*a & mask) == (p.address & mask)) return true;
    }
    return false;
  };
  // Now and then medix-dp's routes are read again: one deleted or changed by hand is put back.
  if (++cycles_ % kResyncCycles == 0) resync_ = true;
  if (conf.backbone_interface().empty())
    error = "the area's intent has no bgp.backbone_interface: nothing announced or installed";
  else if (core.empty())
    error = "bgp.backbone_interface " + conf.backbone_interface() + ": no such interface in the area's intent";

  // What this area announces, by prefix.
  std::map<std::string, Announcement> announce;
  std::map<std::string, v1::Route> intent_routes;  // the core tenant's own, never replaced
  if (error.empty()) {
    auto pref = [&conf](const std::string& tenant) {
      auto it = conf.tenant_local_pref().find(tenant);
      if (it != conf.tenant_local_pref().end()) return it->second;
      return conf.local_pref() ? conf.local_pref() : kDefaultLocalPref;
    };
    auto add = [&](const std::string& prefix, const std::string& tenant) {
      if (std::string n = network(prefix); !n.empty()) announce[n] = Announcement{tenant, next_hop, pref(tenant)};
    };
    for (const auto& m : intent.static_mappings()) add(m.core_prefix(), m.tenant());
    for (const auto& p : intent.napt_pools())
      for (const auto& a : p.addresses()) add(a, p.tenant());
    for (const auto& r : intent.routes()) {
      if (r.tenant() != core) continue;
      intent_routes[network(r.prefix())] = r;
      // Not medix-dp's own addresses (a local route: the BGP daemon's over a tunnel).
      if (!(r.has_via() && r.via().interface() == conf.backbone_interface()) && !r.has_local())
        add(r.prefix(), r.has_next_tenant() ? r.next_tenant() : core);
    }
  }

  // The backbone's link, before anything else: a cut is acted on within the cycle it is seen.
  bool backbone_up = true;
  if (!core.empty()) {
    backbone_up = link_up(port).value_or(true);  // medix-dp silent: the routes' own errors say so
    next.set_backbone_port(port);
  }
  next.set_backbone_link_up(backbone_up);
  // medix-dp not answering (killed, or not up yet): this area forwards nothing, so it announces
  // nothing. The other areas then move a tenant attached here too to its other area, and drop
  // the routes of one attached only here (unreachable there, not a black hole). Announced again
  // once medix-dp answers.
  if (dataplane_silent_ >= kSilentCycles) {
    announce.clear();
    error = "medix-dp does not answer: nothing announced until it does";
  }
  // A tunnel carries nothing without an outbound SA (IKE not up yet, or its SA deleted): what
  // was learned is not installed (unreachable, not dropped in the tunnel); the sessions are
  // left to their hold timer, as none can be up without it.
  bool sa_up = true;
  if (tunnel && backbone_up) sa_up = tunnel_has_sa(conf.backbone_interface()).value_or(true);

  std::map<std::string, Ours> ours;
  std::map<std::string, apipb::Path> learned;
  std::string daemon_error = read_daemon(ours, learned, next);
  next.set_connected(daemon_error.empty());
  if (!backbone_up && backbone_up_) backbone_cuts_++;
  backbone_up_ = backbone_up;
  next.set_backbone_cuts(backbone_cuts_);
  // The sessions to shut: those on the backbone while its link is down, and those whose BFD went
  // down after it was up; the others this medix-cp shut are enabled again. What failed (or
  // found gobgpd not answering) is tried again next cycle.
  std::map<std::string, std::string> shut;
  std::map<std::string, std::string> neighbours;  // on the backbone: BFD's, with our address
  for (const auto& session : next.sessions()) {
    if (!on_backbone(session.neighbor())) continue;
    neighbours[session.neighbor()] = next_hop;
    if (!backbone_up)
      shut[session.neighbor()] = "backbone " + conf.backbone_interface() + " (port " + port + ") link down";
  }
  if (bird_) {
    // BIRD's neighbours are gobgpd's: not rewritten while gobgpd does not say which they are.
    std::string e = read_bfd(daemon_error.empty() && !core.empty() ? &neighbours : nullptr, conf, next, shut);
    if (!e.empty()) error = "BFD: " + e;
  }
  // At start, a medix-cp before this one may have left sessions shut (stopped while a link or BFD
  // was down), and gobgpd's ListPeer does not say which: each backbone session not to be shut
  // now is taken as shut, so it is enabled (EnablePeer on an enabled peer changes nothing).
  if (daemon_error.empty() && !core.empty() && !started_) {
    for (const auto& [neighbor, ours] : neighbours)
      if (!shut.count(neighbor)) shut_.emplace(neighbor, "at start: maybe by a medix-cp before this one");
    started_ = true;
  }
  if (daemon_error.empty())
    if (std::string e = shut_sessions(shut); !e.empty()) error = e;
  if (!daemon_error.empty()) {
    error = daemon_error;
    learned.clear();  // nobody withdraws them now
  } else {
    // Our paths brought to `announce`: a changed one is deleted and added again.
    for (const auto& [prefix, path] : ours) {
      auto it = announce.find(prefix);
      if (it != announce.end() && it->second.next_hop == path.as.next_hop &&
          it->second.local_pref == path.as.local_pref)
        continue;
      apipb::DeletePathRequest del;
      del.set_table_type(apipb::GLOBAL);
      *del.mutable_family() = ipv4_unicast();
      *del.mutable_path() = path.path;
      google::protobuf::Empty empty;
      if (grpc::Status s = gobgp_->DeletePath(context().get(), del, &empty); !s.ok())
        error = "gobgpd " + daemon_ + ": DeletePath " + prefix + ": " + text(s);
    }
    for (const auto& [prefix, as] : announce) {
      auto it = ours.find(prefix);
      if (it != ours.end() && it->second.as.next_hop == as.next_hop && it->second.as.local_pref == as.local_pref)
        continue;
      apipb::AddPathRequest add;
      add.set_table_type(apipb::GLOBAL);
      auto* path = add.mutable_path();
      *path->mutable_family() = ipv4_unicast();
      apipb::IPAddressPrefix nlri;
      auto p = common::parse_prefix(prefix);
      nlri.set_prefix(common::format_ipv4(p->address));
      nlri.set_prefix_len(p->length);
      path->mutable_nlri()->PackFrom(nlri);
      apipb::OriginAttribute origin;  // IGP
      path->add_pattrs()->PackFrom(origin);
      apipb::NextHopAttribute nh;
      nh.set_next_hop(as.next_hop);
      path->add_pattrs()->PackFrom(nh);
      apipb::LocalPrefAttribute lp;
      lp.set_local_pref(as.local_pref);
      path->add_pattrs()->PackFrom(lp);
      apipb::AddPathResponse added;
      if (grpc::Status s = gobgp_->AddPath(context().get(), add, &added); !s.ok())
        error = "gobgpd " + daemon_ + ": AddPath " + prefix + ": " + text(s);
    }
  }
  for (const auto& [prefix, as] : announce) {
    auto* a = next.add_announced();
    a->set_prefix(prefix);
    a->set_next_hop(as.next_hop);
    a->set_local_pref(as.local_pref);
    a->set_tenant(as.tenant);
  }

  // The other areas' prefixes, as routes in the core tenant (not those this area has itself).
  std::map<std::string, v1::Route> want;
  for (const auto& [prefix, path] : learned) {
    auto* l = next.add_learned();
    l->set_prefix(prefix);
    l->set_from(path.source_id());
    for (const auto& a : path.pattrs()) {
      apipb::NextHopAttribute nh;
      apipb::LocalPrefAttribute lp;
      if (a.UnpackTo(&nh))
        l->set_next_hop(nh.next_hop());
      else if (a.UnpackTo(&lp))
        l->set_local_pref(lp.local_pref());
    }
    if (core.empty()) continue;
    if (announce.count(prefix) || intent_routes.count(prefix)) {  // attached here too: local delivery
      l->set_reason(announce.count(prefix) ? "announced here too" : "the intent routes it");
      continue;
    }
    if (!backbone_up) {  // nothing crosses a dead link: unreachable at once, not a black hole
      l->set_reason("backbone " + conf.backbone_interface() + "'s link is down");
      continue;
    }
    if (bfd_failed_.count(path.neighbor_ip())) {  // its session is being shut: not waited for
      l->set_reason("BFD to " + path.neighbor_ip() + " is down");
      continue;
    }
    if (!sa_up) {
      l->set_reason("tunnel " + conf.backbone_interface() + " has no outbound SA");
      continue;
    }
    if (!on_backbone(l->next_hop())) {  // medix-dp would refuse the route, and every other with it
      l->set_reason("next hop " + l->next_hop() + " is not " +
                    (tunnel ? "in tunnel " + conf.backbone_interface() + "'s remote selectors"
                            : "on " + conf.backbone_interface() + "'s subnets"));
      continue;
    }
    v1::Route r;
    r.set_tenant(core);
    r.set_prefix(prefix);
    r.mutable_via()->set_interface(conf.backbone_interface());
    if (!tunnel) r.mutable_via()->set_address(l->next_hop());  // a tunnel is point to point
    want[prefix] = r;
    l->set_installed(true);
  }
  if (!core.empty()) {
    std::string e;
    if (resync_) {
      e = list_installed(core, conf.backbone_interface(), intent_routes);
      if (e.empty()) resync_ = false;
    }
    if (e.empty()) e = install(want);
    if (!e.empty()) {
      error = e;
      for (auto& l : *next.mutable_learned()) l.set_installed(installed_.count(l.prefix()) > 0);
    }
  } else if (!installed_.empty()) {  // the bgp section (or its interface) left the intent: ours go
    if (std::string e = install({}); !e.empty()) error = e;
  }
  next.set_last_error(error);
  if (error != said_) {
    if (!error.empty()) fprintf(stderr, "medix-cp: bgp: %s (trying again)\n", error.c_str());
    said_ = error;
  }

  bool changed;
  {
    std::lock_guard lock(mu_);
    changed = status_.SerializeAsString() != next.SerializeAsString();
    status_ = std::move(next);
  }
  if (changed && changed_) changed_();
}

}  // namespace medix::cp::bgp
