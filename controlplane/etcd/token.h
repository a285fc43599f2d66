#pragma once

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "etcd/etcd.grpc.pb.h"

namespace medix::cp {

// etcd's user for one client: a token asked of etcd once (Authenticate) and put on each call,
// asked again after etcd refuses it (expired, or etcd restarted: it keeps tokens in memory).
// Without a user it does nothing. Any thread; one Authenticate at a time.
class EtcdToken {
 public:
  EtcdToken(const std::shared_ptr<grpc::Channel>& channel, std::string user, std::string password);
  // The token on `ctx` (asked of etcd first if there is none, waiting at most `wait`); the error
  // if etcd refuses the user, as "authentication: user NAME: ..." (never the password).
  grpc::Status add(grpc::ClientContext& ctx, std::chrono::milliseconds wait);
  // A call's status: UNAUTHENTICATED makes the next call ask for a new token.
  void forget(const grpc::Status& status);

 private:
  std::unique_ptr<etcdserverpb::Auth::Stub> auth_;
  const std::string user_, password_;
  std::mutex mu_;  // token_, and one Authenticate at a time
  std::string token_;
};

}  // namespace medix::cp
