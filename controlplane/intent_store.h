#pragma once
// Where medix-cp's intent is kept, and how a change to it is committed (docs/areas.md):
//   FileStore  the intent file (the default, one site): ApplyIntent writes it durably and brings
//              medix-dp to it, as it always did;
//   EtcdStore  (etcd/store.h) etcd, shared by the areas' medix-cp: ApplyIntent is one etcd
//              transaction, and each medix-cp applies what its watch of the intent brings.
// Either way the intent this medix-cp runs is applied by ControlService::apply_local.

#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "medix/controlplane/v1/controlplane.pb.h"

namespace medix::cp {

namespace c1 = medix::controlplane::v1;

// Brings this medix-cp (charon, medix-dp, the local intent file) to an intent without areas;
// nothing changes on an error.
using ApplyLocal = std::function<grpc::Status(const c1::Intent&, c1::ApplyIntentResponse*)>;
// Whether an intent without areas would be applied (fields, charon's view of the peers).
using CheckIntent = std::function<grpc::Status(const c1::Intent&)>;

class IntentStore {
 public:
  virtual ~IntentStore() = default;
  // ApplyIntent: `next` replaces the intent whole if it is still at version `expected` (0: any),
  // else ABORTED and nothing changes.
  virtual grpc::Status apply(const c1::Intent& next, uint64_t expected, c1::ApplyIntentResponse* response) = 0;
  // The whole intent as last read, areas and secrets included.
  virtual c1::Intent whole() = 0;
  virtual c1::IntentStatus status() = 0;
  // Every area's status (medixctl areas): the file store has only its own.
  virtual grpc::Status areas(c1::ListAreasResponse* response) {
    *response->add_areas() = status();
    return grpc::Status::OK;
  }
  // The BGP speaker's status, part of status() (docs/areas.md); set before the store starts.
  void set_bgp(std::function<c1::BgpStatus()> bgp) { bgp_ = std::move(bgp); }

 protected:
  std::function<c1::BgpStatus()> bgp_;
};

// The intent file: what medix-cp always did. Its version counts the applies since medix-cp started.
class FileStore final : public IntentStore {
 public:
  FileStore(const std::string& path, ApplyLocal apply, std::function<c1::Intent()> running)
      : path_(path), apply_(std::move(apply)), running_(std::move(running)) {}
  grpc::Status apply(const c1::Intent& next, uint64_t expected, c1::ApplyIntentResponse* response) override;
  c1::Intent whole() override { return running_(); }
  c1::IntentStatus status() override;

 private:
  const std::string path_;
  ApplyLocal apply_;
  std::function<c1::Intent()> running_;
  std::mutex mu_;
  uint64_t version_ = 1;
  std::string last_error_;
};

struct EtcdEndpoint {
  std::string address;            // HOST:PORT, or the members' IPv4:PORT,IPv4:PORT,...
  std::string prefix = "/medix";  // no trailing slash
  // gRPC's target: the address, or with several members "ipv4:A:P,B:Q" (gRPC's pick_first takes
  // the first that answers and moves to the next when it is lost).
  std::string target;
  // TLS (PEM texts; ca_pem empty: plain gRPC): etcd's CA, and our certificate for --client-cert-auth.
  std::string ca_pem, cert_pem, key_pem;
  // The name the members' certificates must carry when there are several (gRPC checks one name
  // for the whole list): --etcd-server-name, else the first member's host.
  std::string server_name;
  // etcd's password authentication (--etcd-user-file); user empty: none. Never logged.
  std::string user, password;
};
// Where the etcd store is: "etcd://HOST:PORT[,HOST:PORT...][/PREFIX]" (the flag --intent-store
// takes; several members by IPv4 address). The error, or nothing.
std::optional<std::string> parse_etcd_url(const std::string& url, EtcdEndpoint& out);
// etcd's user and password from FILE (--etcd-user-file): its first line, USER:PASSWORD (as
// etcdctl's --user takes them). The error (naming the file, never its content), or nothing; a
// file that others may read is said on stderr, and taken.
std::optional<std::string> read_etcd_user(const std::string& path, EtcdEndpoint& out);

// A channel to etcd at `endpoint`: plain gRPC, or TLS with its CA and our certificate (with several
// members, the name their certificates share). `args`: the caller's (backoff, keepalive).
std::shared_ptr<grpc::Channel> etcd_channel(const EtcdEndpoint& endpoint, grpc::ChannelArguments args);

// What an area's medix-cp applies: the global objects with its area's section (none: "").
c1::Intent area_intent(const c1::Intent& whole, const std::string& area);
// Area names are names, and a section holds no areas. "" or "areas[east].areas: ...".
std::string validate_areas(const c1::Intent& whole);
// Every peer's PSK cleared, the areas' too (for GetIntent).
void clear_secrets(c1::Intent& intent);

}  // namespace medix::cp
