#include "controller.h"

#include <sstream>

#include "charon/glue.h"

namespace medixcp {

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

const c1::Peer* ControllerService::find(const std::string& name) const {
  for (const auto& p : intent_.peers())
    if (p.name() == name) return &p;
  return nullptr;
}

grpc::Status ControllerService::ListPeers(grpc::ServerContext*, const c1::ListPeersRequest* request,
                                          c1::ListPeersResponse* response) {
  if (!request->name().empty() && !find(request->name())) return no_peer(request->name());
  std::vector<std::pair<std::string, c1::IkeSa>> ike_sas;
  cp_charon_list_ike_sas(add_ike_sa, &ike_sas);
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

grpc::Status ControllerService::Initiate(grpc::ServerContext*, const c1::PeerRequest* request,
                                         c1::PeerActionResponse* response) {
  if (!find(request->name())) return no_peer(request->name());
  if (cp_charon_initiate(request->name().c_str()) != 0)
    return grpc::Status(grpc::StatusCode::INTERNAL, "charon has no config for '" + request->name() + "'");
  response->set_count(1);
  return grpc::Status::OK;
}

grpc::Status ControllerService::Terminate(grpc::ServerContext*, const c1::PeerRequest* request,
                                          c1::PeerActionResponse* response) {
  if (!find(request->name())) return no_peer(request->name());
  response->set_count(cp_charon_terminate(request->name().c_str()));
  return grpc::Status::OK;
}

grpc::Status ControllerService::Rekey(grpc::ServerContext*, const c1::PeerRequest* request,
                                      c1::PeerActionResponse* response) {
  if (!find(request->name())) return no_peer(request->name());
  response->set_count(cp_charon_rekey(request->name().c_str()));
  return grpc::Status::OK;
}

}  // namespace medixcp
