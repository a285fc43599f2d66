#pragma once
// Who may call what on the Dataplane API: every caller is an identity (a client certificate's
// names over TCP, the peer's uid on the unix socket), every identity has a role, and every RPC
// needs a role (the table in access.cpp). A refusal is PERMISSION_DENIED naming the identity,
// its role and the RPC, and one line in the log. docs/running.md, "Who may do what".
#include <grpcpp/grpcpp.h>
#include <sys/types.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/log.h"

namespace medix::dp {

// Each role may do what the ones before it may.
enum class Role { none, monitor, operator_, controller };
const char* role_name(Role role);

struct Identity {
  std::string name;  // for refusals, logs and per-client stream caps: "uid 0 (root)", "CN=nms"
  Role role = Role::none;
};

class Access {
 public:
  // Reads the roles file (`--api-roles FILE`, JSON: {"identities": {"CN=nms": "monitor", ...}});
  // with an empty path only the unix socket's defaults hold. Errors read "FILE: reason".
  std::optional<std::string> load(const std::string& path);

  // The least role `method` (its name in dataplane.proto) needs; nullopt for a method the
  // table does not know, which nobody may call.
  static std::optional<Role> needs(const std::string& method);
  // Methods of the service that the table misses (start-up refuses to serve them).
  static std::string missing_methods();

  Identity identify(const grpc::ServerContextBase& context) const;
  // OK if `who` may call `method`; else PERMISSION_DENIED, logged.
  grpc::Status check(const Identity& who, const char* method) const;

  // The unix socket's listener tells which uid each of its connections (by gRPC's "fd:N"
  // peer) belongs to.
  void add_connection(int fd, uid_t uid);
  void set_unix_default(uid_t owner) { owner_ = owner; }

 private:
  Role unix_role(uid_t uid) const;

  std::map<std::string, Role> names_;  // "CN=...", "DNS:...", "URI:..."
  std::map<uid_t, Role> uids_;         // from "uid:N" and "user:NAME"
  uid_t owner_ = 0;                    // the socket's owner: controller unless the file says otherwise
  mutable std::mutex mutex_;
  struct Peer {
    uid_t uid;
    std::string name;  // "uid 0 (root)"
  };
  std::unordered_map<int, Peer> connections_;  // fd -> the unix socket's peer
  mutable medix::common::LogLimit refusals_{20};
};

}  // namespace medix::dp
