#pragma once
// Routes between areas over BGP (docs/areas.md). The area's BGP daemon (gobgpd) peers with the
// other areas' over the backbone; medix-cp drives it through its gRPC API, every 200 ms:
//   - announces the core prefixes of the tenants attached in this area (the intent's static
//     mappings' core prefixes, NAPT pools, the core tenant's routes not via the backbone), with
//     the area's next hop on the backbone and its local preference (AddPath/DeletePath; ours are
//     the daemon's local paths, so a restarted medix-cp finds and corrects what it left);
//   - reads the daemon's best paths for the other areas' prefixes (ListPath) and keeps medix-dp's
//     core tenant at exactly those routes, via the backbone interface toward their next hop
//     (medix-dp's Apply; the routes of ours are those via the backbone that the intent lacks).
// A session lost (hold timer, the daemon dead) withdraws its paths in the daemon, and with them
// the routes; gobgpd itself unreachable: routes learned through it are removed too (they can
// no longer be withdrawn). The backbone port's link gone down (medix-dp says, each cycle): the
// sessions to neighbours on its subnets are shut at once (DisablePeer: their paths withdrawn)
// and nothing learned is installed, as FRR's fast external failover does, rather than waiting
// out the hold timer; the link back, they are enabled again (EnablePeer). Not ResetPeer: gobgpd
// 3.10 then waits 30 s before it reconnects, whatever idle-hold-time-after-reset says.
// With BFD (the area's BIRD, bird.h): a failure beyond the port (the links up, the path between
// the areas dropping everything) is seen in interval x multiplier (100 ms x 3 by default), not
// BGP's hold time: BFD to a neighbour down after it was up, its session is shut and nothing
// learned from it installed, as for a link down; BFD up again, the session is enabled.

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>

#include "bgp/bird.h"
#include "gobgp/gobgp.grpc.pb.h"
#include "medix/controlplane/v1/controlplane.pb.h"
#include "medix/dataplane/v1/dataplane.grpc.pb.h"

namespace medix::cp::bgp {

namespace c1 = medix::controlplane::v1;
namespace v1 = medix::dataplane::v1;

class Speaker {
 public:
  // `daemon`: gobgpd's API (HOST:PORT); `running`: this area's intent as applied; `changed`: called
  // (from the speaker's thread) when status() changed other than in its timers.
  // `bird`: the area's BFD daemon (nullptr: no BFD).
  Speaker(const std::string& daemon, const std::string& dataplane_target, std::function<c1::Intent()> running,
          std::function<void()> changed, std::unique_ptr<Bird> bird = nullptr);
  ~Speaker() { stop(); }
  void start();
  void stop();
  c1::BgpStatus status();

 private:
  struct Announcement {
    std::string tenant;
    std::string next_hop;
    uint32_t local_pref = 0;
    bool operator==(const Announcement&) const = default;
  };
  struct Ours {  // a path of ours in the daemon (by a medix-cp before this one, maybe)
    apipb::Path path;
    Announcement as;
  };
  void run();
  void cycle();
  // What medix-dp's core tenant has of ours: the routes via `interface` the intent does not name.
  std::string list_installed(const std::string& tenant, const std::string& interface,
                             const std::map<std::string, v1::Route>& intent_routes);
  std::string install(const std::map<std::string, v1::Route>& want);
  // The port's link as medix-dp reports it; nullopt if medix-dp does not answer or lacks it.
  std::optional<bool> link_up(const std::string& port);
  // Whether medix-dp has an outbound SA on the tunnel; nullopt if it does not answer.
  std::optional<bool> tunnel_has_sa(const std::string& tunnel);
  // Brings the sessions this medix-cp shut to `shut` (neighbour -> why): those in it shut, the
  // others enabled again; "" or what failed (a session not done is tried again next cycle).
  std::string shut_sessions(const std::map<std::string, std::string>& shut);
  // BIRD's BFD brought to `neighbours` (address -> ours; nullptr: left as it is) and the intent's
  // timers; each session's BFD state in `status`, those whose BFD went down after it was up
  // added to `shut`. "" or what failed (BIRD not answering: BFD acts on nothing).
  std::string read_bfd(const std::map<std::string, std::string>* neighbours, const c1::Bgp& conf, c1::BgpStatus& status,
                       std::map<std::string, std::string>& shut);
  std::string read_daemon(std::map<std::string, Ours>& ours, std::map<std::string, apipb::Path>& learned,
                          c1::BgpStatus& status);

  const std::string daemon_;
  std::function<c1::Intent()> running_;
  std::function<void()> changed_;
  std::unique_ptr<apipb::GobgpApi::Stub> gobgp_;
  std::unique_ptr<v1::Dataplane::Stub> dataplane_;

  std::map<std::string, v1::Route> installed_;  // by prefix, as medix-dp has them
  bool resync_ = true;                          // installed_ read from medix-dp again first
  uint64_t cycles_ = 0;
  // medix-dp's polls unanswered in a row (link_up); at kSilentCycles (600 ms: one slow answer
  // withdraws nothing) this area announces nothing. From there at start: not before it answers.
  static constexpr unsigned kSilentCycles = 3;
  unsigned dataplane_silent_ = kSilentCycles;
  std::string said_;                         // the last error logged
  bool backbone_up_ = true;                  // the backbone port's link, as last seen
  std::map<std::string, std::string> shut_;  // neighbours this medix-cp shut, and why
  bool started_ = false;                     // those a medix-cp before may have shut enabled
  uint64_t backbone_cuts_ = 0;
  std::unique_ptr<Bird> bird_;
  std::set<std::string> bfd_up_;               // neighbours whose BFD was seen up (and not down since)
  std::set<std::string> bfd_failed_;           // ... seen going down from up, until up again
  std::map<std::string, uint64_t> bfd_downs_;  // times each was seen going down from up

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;
  c1::BgpStatus status_;
  std::thread thread_;
};

}  // namespace medix::cp::bgp
