#pragma once
// The API's unix socket, accepted here rather than by gRPC: gRPC 1.51 tells a call nothing of
// a unix peer, so each connection's uid is read here (SO_PEERCRED) and handed to Access
// before the connection is given to the server, where its calls' peer is "fd:N".
#include <grpcpp/grpcpp.h>

#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "api/access.h"

namespace medix::dp {

class UnixListener {
 public:
  ~UnixListener() { stop(); }
  // Binds `path` with mode 0600 (claim_socket has made sure nothing live is there).
  std::optional<std::string> listen(const std::string& path);
  // Accepts connections for `server` until stop().
  void serve(grpc::Server* server, Access* access);
  // Stops accepting and removes the socket file; connections already made stay with gRPC.
  void stop();

 private:
  void run();
  int number_for(int fd);

  std::string path_;
  int listen_fd_ = -1, wake_[2] = {-1, -1};
  grpc::Server* server_ = nullptr;
  Access* access_ = nullptr;
  std::thread thread_;
  std::map<int, std::chrono::steady_clock::time_point> given_;  // fd number -> when it was given to gRPC
  int next_ = 0, limit_ = 0;
};

}  // namespace medix::dp
