#pragma once
// medix-cp's ControlPlane service (proto/medix/controlplane/v1/controlplane.proto): the peers of the
// intent with their IKE and CHILD SAs and last errors, initiate/terminate/rekey, and the intent
// itself (read, replaced whole). It owns the running intent; charon's state is read through the
// glue.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>

#include "dataplane_client.h"
#include "dns/sync.h"
#include "intent_file.h"
#include "intent_store.h"
#include "medix/controlplane/v1/controlplane.grpc.pb.h"

namespace medix::cp {

class ControlService final : public c1::ControlPlane::Service {
 public:
  // `path`: where an accepted intent is written (with the etcd store: this area's, as a local
  // copy); `dns`: Knot's zones (none without --knot).
  ControlService(const c1::Intent& intent, const std::string& path, DataplaneClient& dataplane, dns::Sync* dns)
      : intent_(intent), path_(path), dataplane_(dataplane), dns_(dns) {}

  grpc::Status ListPeers(grpc::ServerContext*, const c1::ListPeersRequest*, c1::ListPeersResponse*) override;
  grpc::Status GetVersion(grpc::ServerContext*, const c1::GetVersionRequest*, c1::Version*) override;
  grpc::Status Initiate(grpc::ServerContext*, const c1::PeerRequest*, c1::PeerActionResponse*) override;
  grpc::Status Terminate(grpc::ServerContext*, const c1::PeerRequest*, c1::PeerActionResponse*) override;
  grpc::Status Rekey(grpc::ServerContext*, const c1::PeerRequest*, c1::PeerActionResponse*) override;
  grpc::Status GetIntent(grpc::ServerContext*, const c1::GetIntentRequest*, c1::Intent*) override;
  grpc::Status ApplyIntent(grpc::ServerContext*, const c1::ApplyIntentRequest*, c1::ApplyIntentResponse*) override;
  grpc::Status GetIntentStatus(grpc::ServerContext*, const c1::GetIntentStatusRequest*, c1::IntentStatus*) override;
  grpc::Status ListAreas(grpc::ServerContext*, const c1::ListAreasRequest*, c1::ListAreasResponse*) override;
  grpc::Status GetDnsQueries(grpc::ServerContext*, const c1::GetDnsQueriesRequest*, c1::DnsQueries*) override;
  grpc::Status GetHaWitness(grpc::ServerContext*, const c1::GetHaWitnessRequest*, c1::HaWitness*) override;

  // Where the intent is kept (intent_store.h); set before the service is served.
  void set_store(IntentStore* store) { store_ = store; }
  // A node of a pair with --ike-witness: the witness's state (docs/ha.md); set before serving.
  void set_witness(std::function<c1::HaWitness()> witness) { witness_ = std::move(witness); }
  // A node of a pair (--ha-sync-*): its peers with `initiate` are initiated by the active node
  // alone (docs/ha.md, "Who initiates"), as role() tells it. Starts the thread that acts on it
  // (it calls into charon: not the link's watcher); stop_paired() ends it, before charon stops.
  // Set before serving.
  void set_paired();
  void stop_paired();
  ~ControlService() override { stop_paired(); }
  // The role the ha link applied (ha::Link::on_role, each 100 ms; never blocks). When the node
  // becomes active, each peer with `initiate` that has no IKE_SA here is initiated, and the SAs'
  // soft time lifetimes that fell due while standby are raised again (DataplaneClient::expire_due).
  void role(int role) { live_role_ = role; }
  // Whether `intent` (no areas) would be applied: its fields, then charon's view of each peer.
  grpc::Status check(const c1::Intent& wanted);
  // Brings charon and medix-dp to `intent` (no areas), writing it to the intent file first
  // (durably; put back if medix-dp refuses). Nothing changes on an error.
  grpc::Status apply_local(const c1::Intent& wanted, c1::ApplyIntentResponse* response);

  dns::Sync* dns() { return dns_; }  // none without --knot
  c1::Intent intent();               // a copy of the running one (PSKs included: for medix-cp's own use)
  c1::IntentStatus intent_status() { return store_ ? store_->status() : c1::IntentStatus(); }

 private:
  bool known(const std::string& name);
  void follow_role();          // the pair's role thread: every 100 ms
  void act_on_role(int role);  // with apply_mu_ held
  // Initiates the peer if this node initiates it now (ha::initiates); apply_mu_ held. Whether it did.
  bool initiate(const std::string& name);

  std::mutex mu_;        // intent_
  std::mutex apply_mu_;  // apply_local calls, one at a time; role_ and initiations
  bool paired_ = false;
  int role_ = -1;                   // as follow_role() last had it, under apply_mu_
  std::atomic<int> live_role_{-1};  // as the link last told it
  std::thread role_thread_;
  std::mutex role_mu_;  // stopping_
  std::condition_variable role_cv_;
  bool stopping_ = false;
  // When the node became active, until the soft lifetimes due meanwhile are raised again.
  std::chrono::steady_clock::time_point activated_at_{};
  c1::Intent intent_;
  const std::string path_;
  DataplaneClient& dataplane_;
  dns::Sync* dns_;
  IntentStore* store_ = nullptr;
  std::function<c1::HaWitness()> witness_;
};

}  // namespace medix::cp
