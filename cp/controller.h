#pragma once
// medix-cp's Controller service (proto/medix/controller/v1/controller.proto): the peers of the
// intent with their IKE and CHILD SAs and last errors, and initiate/terminate/rekey. Reads
// charon through the glue; holds no state of its own.

#include "intent.h"
#include "medix/controller/v1/controller.grpc.pb.h"

namespace medixcp {

class ControllerService final : public c1::Controller::Service {
 public:
  explicit ControllerService(const c1::Intent& intent) : intent_(intent) {}

  grpc::Status ListPeers(grpc::ServerContext*, const c1::ListPeersRequest*, c1::ListPeersResponse*) override;
  grpc::Status Initiate(grpc::ServerContext*, const c1::PeerRequest*, c1::PeerActionResponse*) override;
  grpc::Status Terminate(grpc::ServerContext*, const c1::PeerRequest*, c1::PeerActionResponse*) override;
  grpc::Status Rekey(grpc::ServerContext*, const c1::PeerRequest*, c1::PeerActionResponse*) override;

 private:
  const c1::Peer* find(const std::string& name) const;
  const c1::Intent intent_;
};

}  // namespace medixcp
