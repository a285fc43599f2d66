#pragma once
// What libcharon's kernel-ipsec backend asks (controlplane/charon/kernel_ipsec.c -> glue.h cp_dp_*), done
// on medix-dp through its gRPC API:
//   add_sa      -> Apply [tunnel UPDATE if its peer port/encapsulation changed, SA CREATE]
//   del_sa      -> Apply [SA DELETE]
//   query_sa    -> GetCounters, the SA's packets, bytes and last use
//   add_policy  -> refcounted per (selectors, direction, mark, if_id) as XFRM does; the first
//                  outbound one of a selector pair adds a route (peer's tenant, remote prefix)
//                  via the peer's tunnel, the last one removes it
// and what charon does not do itself for a userspace backend: time lifetimes (timers) and
// byte/packet lifetimes (medix-dp's WatchSaEvents) become charon expires (rekey, delete).
//
// When medix-dp restarts (its WatchSaEvents stream breaks), everything is replayed into it, SAs
// included, and each CHILD_SA is then rekeyed (a soft expire): the new medix-dp's outbound
// sequence numbers start again at 1, which the gateway's anti-replay window would refuse. The
// IKE_SA is kept: traffic resumes after one CREATE_CHILD_SA exchange.
//
// SAs are matched to their peer (and so tunnel and tenant) by their endpoints: the intent
// allows one peer per (local, remote) address pair.

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "charon/glue.h"
#include "intent_file.h"
#include "medix/dataplane/v1/dataplane.grpc.pb.h"
#include "objects.h"

namespace medix::cp {

namespace v1 = medix::dataplane::v1;

class DataplaneClient {
 public:
  // `owned_path`: where medix-cp records what it created in medix-dp (the objects of its intent,
  // tunnels included), so that what leaves the intent is deleted, even across restarts.
  DataplaneClient(const std::string& target, const c1::Intent& intent, const std::string& owned_path);
  ~DataplaneClient();

  // Brings medix-dp to the intent before IKE starts, in one transaction: every static object
  // and every peer's tunnel is created or updated; SAs and routes left on our tunnels by an
  // earlier medix-cp are removed. "" or the error. prune() then deletes what no longer belongs.
  std::string prepare();
  // A new intent (validated): its static objects and its peers' tunnels (the `touched` ones as
  // their peers now say) are created or updated in one transaction (`changed` of them). On an
  // error nothing changes; `code` says whose: INVALID_ARGUMENT medix-dp refused it (the error
  // naming the intent's field), UNAVAILABLE it did not answer, else FILE.owned was not written.
  std::string update_intent(const c1::Intent& next, const std::set<std::string>& touched, uint32_t& changed,
                            grpc::StatusCode& code);
  // Deletes what medix-cp created in medix-dp that is no longer in the intent (after the
  // removed peers' tunnels are gone); `removed` of them. "" or the error.
  std::string prune(uint32_t& removed);
  // Deletes a tunnel (and whatever SA or route of ours is still on it).
  std::string remove_tunnel(const std::string& name);
  // A peer's CHILD_SA lifetimes changed in place (docs/cp.md, "Lifetimes changed in place"):
  // each of its SAs with a soft time lifetime gets its rekey at the new one from its install (less
  // a jitter, as charon's) if that comes sooner, at once if past; hard lifetimes stay. Returns
  // how many were brought forward.
  int retime(const c1::Peer& peer);
  // Raises again the soft time lifetime of every SA here whose timer fell due (charon refuses it
  // on a passive IKE_SA: a standby's; an SA still here past it is not rekeyed yet). How many.
  int expire_due();
  // Seconds until the soft time lifetime of the CHILD_SA of `tunnel` with these SPIs (host order) is raised:
  // the earlier timer of its two SAs, as retime may have brought it forward. -1: no timer (no
  // time lifetime, or no such SA here).
  int64_t rekey_in_s(const std::string& tunnel, uint32_t spi_in, uint32_t spi_out);
  // Starts the lifetime timer thread and the WatchSaEvents reader.
  void start();
  void stop();

  // The glue (see glue.h); each returns "" or the error.
  std::string get_spi(const std::string& src, const std::string& dst, uint32_t& spi);
  std::string add_sa(const cp_sa& sa);
  std::string update_sa(const cp_sa_id& id, const std::string& new_src, const std::string& new_dst,
                        uint16_t new_src_port, uint16_t new_dst_port, bool new_encap);
  std::string query_sa(const cp_sa_id& id, uint64_t& bytes, uint64_t& packets, uint64_t& last_used_ns);
  std::string del_sa(const cp_sa_id& id);
  std::string add_policy(const cp_policy& policy);
  std::string del_policy(const cp_policy& policy);
  std::string flush();

  // What Prometheus reads (metrics.cpp). A reconcile run brings medix-dp to the intent: at the
  // start (prepare), on ApplyIntent (update_intent), after medix-dp restarted (replay).
  enum Trigger { start_run, apply_run, replay_run, trigger_count };
  static constexpr const char* trigger_names[trigger_count] = {"start", "apply", "replay"};
  struct ReconcileStats {
    uint64_t runs = 0, failures = 0;
    double last_seconds = 0;           // the last run's duration
    int64_t last_success_unix_ns = 0;  // 0: none yet
  };
  ReconcileStats reconcile_stats(Trigger trigger);
  // medix-dp's HA role (GetHaSync): 1 active, 0 standby, -1 no answer. The ha link follows it.
  // With `peer_active`: 1 if the sync peer said it is active within the last 3 s, else 0 (-1: no answer).
  int ha_role(int* peer_active = nullptr);
  // Whether the channel to medix-dp is up now (gRPC's READY; the SA event stream keeps it so).
  bool connected();
  // Objects medix-cp created in medix-dp and keeps there (FILE.owned), as last written.
  size_t owned_objects() const { return owned_count_.load(std::memory_order_relaxed); }

 private:
  // Times one reconcile run; ok set before the successful return.
  struct Run {
    DataplaneClient& client;
    Trigger trigger;
    std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
    bool ok = false;
    ~Run() { client.record(trigger, started, ok); }
  };
  void record(Trigger trigger, std::chrono::steady_clock::time_point started, bool ok);

  struct Sa {
    uint32_t spi = 0;
    bool inbound = false;
    std::string src, dst;
    std::string tunnel;
    uint64_t generation = 0;         // timers of an SA since deleted (or re-added) are ignored
    v1::SecurityAssociation object;  // with its keys: replayed into a restarted medix-dp
    std::chrono::steady_clock::time_point installed;
    std::chrono::steady_clock::time_point soft_at = std::chrono::steady_clock::time_point::max();  // its soft timer
  };
  struct Policy {
    int refs = 0;
    std::string route;  // key in routes_, "" if the policy adds none
  };
  struct Route {
    int refs = 0;
    v1::Route object;
  };
  struct Timer {
    uint32_t spi;
    std::string dst;
    bool hard;
    uint64_t generation;
  };
  using KernelSaKey = std::pair<uint32_t, std::string>;  // (spi, dst), as the kernel keys SAs (not medix-dp's SaKey)

  const c1::Peer* peer_of(const std::string& local, const std::string& remote) const;
  v1::Tunnel tunnel_of(const c1::Peer& peer) const;
  std::string apply(const std::vector<v1::Operation>& ops, v1::ApplyResponse* response = nullptr);
  // medix-dp's objects of the static kinds, tunnels and SAs (learned neighbours left out), by key.
  std::string list(std::map<std::string, v1::Object>& out);
  // The intent's static objects and its peers' tunnels, in creation order: a tunnel as last
  // applied (its encapsulation), or as its peer says if the peer is new or `touched` (changed).
  std::vector<IntentObject> desired(const c1::Intent& intent, const std::set<std::string>* touched) const;
  // The CREATE or UPDATE of each wanted object that medix-dp lacks or has otherwise; `fields`
  // gets the intent field of each operation ("" for others), for medix-dp's errors.
  void upserts(const std::vector<IntentObject>& want, const std::map<std::string, v1::Object>& have,
               std::vector<v1::Operation>& ops, std::vector<std::string>& fields);
  std::string load_owned();
  std::string save_owned(int* error = nullptr);
  bool inbound_spi_in_use(uint32_t spi) const;  // with mu_ held
  void schedule(uint32_t spi, const std::string& dst, uint64_t seconds, bool hard, uint64_t generation);
  void run_timers();
  void watch_events();
  // Re-creates every tunnel, SA and route we hold (a no-op where medix-dp still has them).
  // Returns the operations that changed something, or -1 if medix-dp did not answer.
  int replay();

  // A fresh channel (after a medix-dp restart gRPC's reconnection backoff would keep an old one
  // failing for seconds); stub() is the current one.
  void reconnect();
  std::shared_ptr<v1::Dataplane::Stub> stub();

  std::string target_;
  std::string owned_path_;
  std::mutex stub_mu_;  // stub_ and channel_ only (taken inside mu_, never the other way)
  std::shared_ptr<grpc::Channel> channel_;
  std::shared_ptr<v1::Dataplane::Stub> stub_;
  std::mutex stats_mu_;  // stats_ only (taken inside mu_, never the other way)
  ReconcileStats stats_[trigger_count];
  std::atomic<size_t> owned_count_{0};
  c1::Intent intent_;

  std::mutex mu_;  // everything below; charon calls from several threads
  std::map<KernelSaKey, Sa> sas_;
  // Inbound SPIs given out by get_spi whose SA is not installed yet, and when.
  std::map<uint32_t, std::chrono::steady_clock::time_point> reserved_;
  std::map<std::string, Policy> policies_;
  std::map<std::string, Route> routes_;
  std::map<std::string, v1::Tunnel> tunnels_;  // as last applied
  std::map<std::string, v1::Object> owned_;    // what we created in medix-dp, by key (owned_path_)
  uint64_t generation_ = 0;
  std::mt19937 random_{std::random_device{}()};

  std::multimap<std::chrono::steady_clock::time_point, Timer> timers_;
  std::condition_variable timers_cv_;
  bool stopping_ = false;
  std::thread timer_thread_, event_thread_;
  std::unique_ptr<grpc::ClientContext> watch_context_;
};

// Whether an error of DataplaneClient's says medix-dp did not answer (not running yet, or too
// slow), rather than that it refused or that a file could not be written.
bool unreachable(const std::string& error);

// The status for a file medix-cp could not write: RESOURCE_EXHAUSTED for a full disk or quota
// (gRPC's meaning of it), else INTERNAL.
grpc::StatusCode write_failure_code(int error);

// The instance the glue's cp_dp_* calls reach (one per process).
void set_glue_client(DataplaneClient* dp);

}  // namespace medix::cp
