#pragma once
// medix-cp's intent in etcd (docs/areas.md), shared by the medix-cp of every area:
//   PREFIX/intent/global       the global objects (the core's plan, the policy): JSON of an Intent
//   PREFIX/intent/areas/NAME   area NAME's own objects: JSON of an Intent (its section)
//   PREFIX/status/NAME         what area NAME's medix-cp applied: JSON of an IntentStatus
// ApplyIntent writes the whole intent in one Txn whose compares hold it to the keys as read (the
// intent's version is their highest mod_revision: expected_version), so two writers never
// interleave. A thread watches PREFIX/intent/ and brings this medix-cp to the global objects and
// its area's; when etcd is lost, medix-dp keeps what it has and the watch resumes where it stopped.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "etcd/etcd.grpc.pb.h"
#include "etcd/token.h"
#include "intent_store.h"
#include "medix/dataplane/v1/dataplane.grpc.pb.h"

namespace medix::cp {

class EtcdStore final : public IntentStore {
 public:
  // `running`: the intent this medix-cp runs (its local copy), shown until etcd is first read.
  EtcdStore(const EtcdEndpoint& endpoint, const std::string& area, ApplyLocal apply, CheckIntent check,
            std::function<c1::Intent()> running, const std::string& dataplane_target);
  ~EtcdStore() override { stop(); }
  void start();  // the watch thread
  void stop();

  grpc::Status apply(const c1::Intent& next, uint64_t expected, c1::ApplyIntentResponse* response) override;
  c1::Intent whole() override;
  c1::IntentStatus status() override;
  grpc::Status areas(c1::ListAreasResponse* response) override;
  // Has this area's status key written soon (the BGP speaker's changes: its sessions, its
  // prefixes), by a thread of the store's: the caller never waits for etcd.
  void publish();

 private:
  struct Value {
    int64_t mod_revision;
    std::string text;
  };
  // The intent's keys at one revision.
  struct Snapshot {
    int64_t revision = 0;  // etcd's, when read
    uint64_t version = 0;  // the highest mod_revision of the intent's keys
    std::map<std::string, Value> keys;
    c1::Intent whole;
    std::string error;  // a key that is no intent: nothing of this snapshot is applied
  };
  grpc::Status read(Snapshot& out);
  // One Txn of `whole` against the keys as read now (ABORTED if another change came first);
  // `written`: the new revision, or the version as read when nothing needed writing (operations 0).
  grpc::Status write(const c1::Intent& whole, uint64_t expected, int64_t& written, int& operations);
  void run();
  // Watches from `from`; returns when the stream ends (false) or when a full read is needed (true:
  // compacted, or etcd's revision went back).
  bool watch(int64_t from);
  void bring(const Snapshot& snapshot);  // this area's intent applied, status written
  void write_status();
  void set_connected(bool connected, const std::string& why);
  std::string area_key(const std::string& name) const { return intent_prefix_ + "areas/" + name; }
  std::unique_ptr<grpc::ClientContext> context(int seconds);
  // One call to etcd: a context with its deadline and the token; `call(ctx)` returns its status.
  template <typename Call>
  grpc::Status call(int seconds, Call&& call);

  const EtcdEndpoint endpoint_;
  const std::string area_, intent_prefix_, status_key_;
  ApplyLocal apply_;
  CheckIntent check_;
  std::function<c1::Intent()> running_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<etcdserverpb::KV::Stub> kv_;
  std::unique_ptr<etcdserverpb::Watch::Stub> watch_;
  std::unique_ptr<EtcdToken> token_;
  std::unique_ptr<medix::dataplane::v1::Dataplane::Stub> dataplane_;

  std::mutex apply_mu_;  // this medix-cp's ApplyIntent calls, one at a time (etcd orders the others')
  std::mutex mu_;        // what follows
  std::condition_variable changed_;
  bool stopping_ = false;
  grpc::ClientContext* watching_ = nullptr;  // cancelled by stop()
  bool read_once_ = false;
  c1::Intent whole_;      // as last read
  uint64_t version_ = 0;  // of whole_
  int64_t revision_ = 0;  // the last revision handled by the watch thread
  c1::Intent applied_;    // this area's intent as last applied (before defaults)
  uint64_t applied_version_ = 0;
  bool connected_ = false;
  std::string last_error_;
  c1::ApplyIntentResponse last_result_;  // of the last local apply
  std::optional<bool> said_connected_;   // what the log said last (the watch thread's alone)
  bool retry_ = false;                   // the last apply may pass if tried again (the watch thread's alone)
  std::thread thread_;
  bool publish_ = false;  // publish() asked for a status write
  std::thread publisher_;
};

}  // namespace medix::cp
