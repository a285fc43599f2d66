#include "control_service.h"

#include <chrono>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "charon/glue.h"
#include "common/version.h"
#include "ha/link.h"

namespace medix::cp {

namespace {

void split(const char* list, google::protobuf::RepeatedPtrField<std::string>* out) {
  std::stringstream in(list ? list : "");
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty()) *out->Add() = item;
}

// The glue's callbacks, into protobuf.
void add_ike_sa(void* ctx, const cp_ike_info* info) {
  auto* all = static_cast<std::vector<std::pair<std::string, c1::IkeSa>>*>(ctx);
  c1::IkeSa sa;
  sa.set_unique_id(info->unique_id);
  sa.set_state(info->state);
  sa.set_local(info->local);
  sa.set_remote(info->remote);
  sa.set_local_id(info->local_id);
  sa.set_remote_id(info->remote_id);
  sa.set_initiator(info->initiator);
  sa.set_proposal(info->proposal);
  sa.set_established_seconds(info->established_s);
  sa.set_rekey_in_seconds(info->rekey_in_s);
  for (size_t i = 0; i < info->n_children; i++) {
    const cp_child_info& c = info->children[i];
    c1::ChildSa* child = sa.add_child_sas();
    child->set_unique_id(c.unique_id);
    child->set_name(c.name);
    child->set_state(c.state);
    child->set_spi_in(c.spi_in);
    child->set_spi_out(c.spi_out);
    child->set_proposal(c.proposal);
    split(c.local_ts, child->mutable_local_selectors());
    split(c.remote_ts, child->mutable_remote_selectors());
    child->set_bytes_in(c.bytes_in);
    child->set_packets_in(c.packets_in);
    child->set_bytes_out(c.bytes_out);
    child->set_packets_out(c.packets_out);
    child->set_installed_seconds(c.installed_s);
    child->set_rekey_in_seconds(c.rekey_in_s);
  }
  all->emplace_back(info->peer, std::move(sa));
}

struct ErrorRecord {
  std::string peer, remote;
  c1::PeerError error;
};

void add_error(void* ctx, const cp_error* e) {
  auto* all = static_cast<std::vector<ErrorRecord>*>(ctx);
  ErrorRecord r{e->peer, e->remote, {}};
  r.error.set_time_unix(e->time);
  r.error.set_what(e->what);
  r.error.set_reason(e->reason);
  r.error.set_remote(e->remote);
  all->push_back(std::move(r));
}

grpc::Status no_peer(const std::string& name) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND, "no peer named '" + name + "' in the intent");
}

}  // namespace

c1::Intent ControlService::intent() {
  std::lock_guard lock(mu_);
  return intent_;
}

bool ControlService::known(const std::string& name) {
  std::lock_guard lock(mu_);
  for (const auto& p : intent_.peers())
    if (p.name() == name) return true;
  return false;
}

grpc::Status ControlService::GetVersion(grpc::ServerContext*, const c1::GetVersionRequest*, c1::Version* response) {
  response->set_version(medix::common::version());
  response->set_strongswan(MEDIX_STRONGSWAN_VERSION);
  response->set_started_unix_ns(medix::common::started_unix_ns());
  return grpc::Status::OK;
}

grpc::Status ControlService::ListPeers(grpc::ServerContext*, const c1::ListPeersRequest* request,
                                       c1::ListPeersResponse* response) {
  if (!request->name().empty() && !known(request->name())) return no_peer(request->name());
  const c1::Intent intent_ = intent();
  std::vector<std::pair<std::string, c1::IkeSa>> ike_sas;
  cp_charon_list_ike_sas(add_ike_sa, &ike_sas);
  // A CHILD_SA's rekey is raised by medix-cp's timer, which a lifetime changed in place may
  // have brought forward (retime): that, not charon's time from the install (docs/cp.md).
  for (auto& [peer, sa] : ike_sas)
    for (const auto& p : intent_.peers())
      if (p.name() == peer)
        for (auto& c : *sa.mutable_child_sas())
          if (int64_t in = dataplane_.rekey_in_s(p.tunnel(), c.spi_in(), c.spi_out()); in >= 0)
            c.set_rekey_in_seconds(in);
  std::vector<ErrorRecord> errors;
  cp_charon_list_errors(add_error, &errors);
  for (const auto& p : intent_.peers()) {
    if (!request->name().empty() && p.name() != request->name()) continue;
    c1::PeerStatus* status = response->add_peers();
    *status->mutable_peer() = p;
    status->mutable_peer()->clear_psk();  // secrets stay in medix-cp
    for (const auto& [peer, sa] : ike_sas)
      if (peer == p.name()) *status->add_ike_sas() = sa;
    // Before a peer config is chosen (IKE_SA_INIT), only the address tells whose error it is.
    for (const auto& e : errors)
      if (e.peer == p.name() || (e.peer.empty() && e.remote == p.remote_address())) *status->add_errors() = e.error;
  }
  return grpc::Status::OK;
}

grpc::Status ControlService::Initiate(grpc::ServerContext*, const c1::PeerRequest* request,
                                      c1::PeerActionResponse* response) {
  if (!known(request->name())) return no_peer(request->name());
  if (cp_charon_initiate(request->name().c_str()) != 0)
    return grpc::Status(grpc::StatusCode::INTERNAL, "charon has no config for '" + request->name() + "'");
  response->set_count(1);
  return grpc::Status::OK;
}

grpc::Status ControlService::Terminate(grpc::ServerContext*, const c1::PeerRequest* request,
                                       c1::PeerActionResponse* response) {
  if (!known(request->name())) return no_peer(request->name());
  response->set_count(cp_charon_terminate(request->name().c_str(), false));
  return grpc::Status::OK;
}

grpc::Status ControlService::Rekey(grpc::ServerContext*, const c1::PeerRequest* request,
                                   c1::PeerActionResponse* response) {
  if (!known(request->name())) return no_peer(request->name());
  response->set_count(request->ike() ? cp_charon_rekey_ike(request->name().c_str())
                                     : cp_charon_rekey(request->name().c_str()));
  return grpc::Status::OK;
}

grpc::Status ControlService::GetIntent(grpc::ServerContext*, const c1::GetIntentRequest*, c1::Intent* response) {
  *response = store_->whole();
  clear_secrets(*response);
  return grpc::Status::OK;
}

grpc::Status ControlService::GetIntentStatus(grpc::ServerContext*, const c1::GetIntentStatusRequest*,
                                             c1::IntentStatus* response) {
  *response = store_->status();
  return grpc::Status::OK;
}

grpc::Status ControlService::ListAreas(grpc::ServerContext*, const c1::ListAreasRequest*,
                                       c1::ListAreasResponse* response) {
  return store_->areas(response);
}

grpc::Status ControlService::GetDnsQueries(grpc::ServerContext*, const c1::GetDnsQueriesRequest*,
                                           c1::DnsQueries* response) {
  if (!dns_ || !dns_->probe())
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "medix-cp counts DNS queries with --knot-probe only");
  for (const auto& [tenant, c] : dns_->probe()->counts()) {
    auto* t = response->add_tenants();
    t->set_tenant(tenant);
    t->set_queries(c.queries);
    t->set_nxdomain(c.nxdomain);
    t->set_refused(c.refused);
  }
  return grpc::Status::OK;
}

grpc::Status ControlService::ApplyIntent(grpc::ServerContext*, const c1::ApplyIntentRequest* request,
                                         c1::ApplyIntentResponse* response) {
  return store_->apply(request->intent(), request->expected_version(), response);
}

grpc::Status ControlService::check(const c1::Intent& wanted) {
  c1::Intent next = wanted;
  if (next.schema_version() == 0) next.set_schema_version(1);
  std::string error = validate_intent(next);
  if (!error.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error);
  char err[512];
  for (int i = 0; i < next.peers_size(); i++) {
    GluePeer peer(next.peers(i));
    if (cp_charon_add_peer(&peer.c, true, err, sizeof(err)) != 0)
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "peers[" + std::to_string(i) + "] (" + next.peers(i).name() + "): " + err);
  }
  return grpc::Status::OK;
}

grpc::Status ControlService::apply_local(const c1::Intent& wanted, c1::ApplyIntentResponse* response) {
  std::lock_guard serial(apply_mu_);
  // 1. Checked whole: fields, then what charon would make of each peer. Nothing changed yet.
  if (grpc::Status s = check(wanted); !s.ok()) return s;
  c1::Intent next = wanted;
  if (next.schema_version() == 0) next.set_schema_version(1);
  std::string error = validate_intent(next);  // defaults filled, as check() did on its copy
  char err[512];
  const c1::Intent current = intent();
  std::map<std::string, const c1::Peer*> before, after;
  for (const auto& p : current.peers()) before[p.name()] = &p;
  for (const auto& p : next.peers()) after[p.name()] = &p;
  std::set<std::string> touched;  // added or changed, but for their lifetimes alone
  std::set<std::string> retimed;  // changed in their lifetimes alone: applied in place
  for (const auto& [name, p] : after) {
    auto old = before.find(name);
    if (old == before.end()) {
      response->add_added(name);
      touched.insert(name);
    } else if (old->second->SerializeAsString() != p->SerializeAsString()) {
      response->add_changed(name);
      (only_lifetimes_differ(*old->second, *p) ? retimed : touched).insert(name);
    }
  }
  for (const auto& [name, p] : before)
    if (!after.count(name)) response->add_removed(name);

  // 2. The intent file first, durably: medix-cp replays it when it starts, so it may be ahead of
  // medix-dp (a crash before step 3 is through: the restart applies it) but never behind, which
  // a restart would undo. Not written: nothing changed.
  int write_error = 0;
  error = replace_intent(path_, next, &write_error);
  if (!error.empty())
    return grpc::Status(write_failure_code(write_error), "the intent file was not written, nothing changed: " + error);
  // 3. medix-dp's static objects and tunnels, in one transaction. Refused, not answered, or
  // FILE.owned not written: medix-dp did not change, and the previous file goes back.
  uint32_t changed = 0;
  grpc::StatusCode code;
  error = dataplane_.update_intent(next, touched, changed, code);
  if (!error.empty()) {
    if (std::string e = restore_intent(path_); !e.empty()) error += "; the previous intent file was not put back: " + e;
    return grpc::Status(code, error);
  }
  forget_previous_intent(path_);
  response->set_objects_changed(changed);
  {
    std::lock_guard lock(mu_);
    intent_ = next;
  }
  // 4. charon: removed peers closed and forgotten (their tunnels deleted once their SAs are
  // gone), changed ones reconnected with the new config, new ones loaded. A peer whose lifetimes
  // alone changed keeps its IKE_SA and CHILD_SAs: the new lifetimes apply to the next rekeys,
  // and bring forward the present ones' that are due sooner (docs/cp.md).
  for (const auto& name : retimed) {
    GluePeer peer(*after[name]);
    int ike = cp_charon_update_lifetimes(&peer.c, err, sizeof(err));
    if (ike < 0) {  // not loaded (should not happen): as any changed peer
      touched.insert(name);
      continue;
    }
    int sas = dataplane_.retime(*after[name]);
    fprintf(stderr,
            "medix-cp: peer %s: lifetimes changed in place: %d IKE_SA(s) kept, %d SA rekey(s) brought forward\n",
            name.c_str(), ike, sas);
  }
  for (const auto& name : response->removed()) {
    cp_charon_terminate(name.c_str(), true);
    cp_charon_remove_peer(name.c_str());
    if (std::string e = dataplane_.remove_tunnel(before[name]->tunnel()); !e.empty())
      fprintf(stderr, "medix-cp: removing tunnel %s: %s\n", before[name]->tunnel().c_str(), e.c_str());
  }
  for (const auto& name : response->changed())
    if (touched.count(name)) cp_charon_terminate(name.c_str(), true);
  for (const auto& name : touched) {
    GluePeer peer(*after[name]);
    if (cp_charon_add_peer(&peer.c, false, err, sizeof(err)) != 0)  // checked above: should not happen
      return grpc::Status(grpc::StatusCode::INTERNAL, name + ": " + err);
    if (after[name]->initiate()) initiate(name);
  }
  // 5. Knot's zones: each that changed in one transaction. The intent is accepted by now: Knot
  // down or slow is said, and the background pass brings it there later.
  if (dns_)
    if (std::string e = dns_->apply(next); !e.empty()) fprintf(stderr, "medix-cp: dns: %s (trying on)\n", e.c_str());
  // 6. What medix-cp created in medix-dp and the intent no longer has (the removed peers' tunnels
  // are gone by now, so what they used can go).
  uint32_t removed = 0;
  if (std::string e = dataplane_.prune(removed); !e.empty()) fprintf(stderr, "medix-cp: %s\n", e.c_str());
  response->set_objects_removed(removed);
  fprintf(stderr,
          "medix-cp: intent applied: peers %d added, %d changed, %d removed; medix-dp objects %u changed, %u removed\n",
          response->added_size(), response->changed_size(), response->removed_size(), changed, removed);
  return grpc::Status::OK;
}

bool ControlService::initiate(const std::string& name) {
  std::pair<const std::string*, int> ike_sas{&name, 0};
  if (paired_)  // any state but on its way out: a passive one synced from the old active counts
    cp_charon_list_ike_states(
        [](void* ctx, const char* peer, const char* state, uint32_t) {
          auto* c = static_cast<std::pair<const std::string*, int>*>(ctx);
          if (*c->first == peer && strcmp(state, "DELETING") != 0 && strcmp(state, "DESTROYING") != 0) c->second++;
        },
        &ike_sas);
  // role_ as the last activation saw it, and still the link's (an apply may span a role change).
  if (!ha::initiates(paired_, role_ == live_role_.load() ? role_ : -1, ike_sas.second > 0)) return false;
  return cp_charon_initiate(name.c_str()) == 0;
}

void ControlService::set_paired() {
  paired_ = true;
  role_thread_ = std::thread([this] { follow_role(); });
}

void ControlService::stop_paired() {
  if (!role_thread_.joinable()) return;
  {
    std::lock_guard lock(role_mu_);
    stopping_ = true;
  }
  role_cv_.notify_all();
  role_thread_.join();
}

void ControlService::follow_role() {
  std::unique_lock stop(role_mu_);
  while (!role_cv_.wait_for(stop, std::chrono::milliseconds(100), [this] { return stopping_; })) {
    stop.unlock();
    {
      // After an ApplyIntent under way, which initiates by the role it saw if it is still the link's.
      std::lock_guard serial(apply_mu_);
      act_on_role(live_role_.load());
    }
    stop.lock();
  }
}

void ControlService::act_on_role(int role) {
  const auto now = std::chrono::steady_clock::now();
  if (role != role_) {
    role_ = role;
    activated_at_ = role == 1 ? now : std::chrono::steady_clock::time_point{};
    if (role == 1) {
      int wanted = 0, initiated = 0;
      const c1::Intent running = intent();
      for (const auto& p : running.peers())
        if (p.initiate()) {
          wanted++;
          initiated += initiate(p.name());
        }
      if (wanted)
        fprintf(stderr,
                "medix-cp: ha: active: %d of %d peer(s) with initiate initiated (the others have an IKE_SA here)\n",
                initiated, wanted);
    }
  }
  // The soft time lifetimes that fell due while standby were refused (charon starts no exchange on
  // a passive IKE_SA): raised again once the plugin has made the IKE_SAs active (on its own thread,
  // after the link's command), or 2 s after the node became active, whichever comes first.
  if (activated_at_ == std::chrono::steady_clock::time_point{}) return;
  int passive = 0;
  cp_charon_list_ike_states(
      [](void* ctx, const char*, const char* state, uint32_t) {
        if (strcmp(state, "PASSIVE") == 0) ++*static_cast<int*>(ctx);
      },
      &passive);
  if (passive && now - activated_at_ < std::chrono::seconds(2)) return;
  activated_at_ = {};
  if (int n = dataplane_.expire_due(); n > 0)
    fprintf(stderr, "medix-cp: ha: active: %d SA soft time lifetime(s) due while standby raised again\n", n);
}

grpc::Status ControlService::GetHaWitness(grpc::ServerContext*, const c1::GetHaWitnessRequest*,
                                          c1::HaWitness* response) {
  if (witness_) *response = witness_();  // else configured is false
  return grpc::Status::OK;
}

}  // namespace medix::cp
