// IKE state between the two medix-cp of a pair (docs/ha.md, "IKE state"): strongSwan's ha plugin,
// loaded into the embedded charon, syncs every IKE_SA and CHILD_SA; this carries its datagrams
// between the nodes sealed (ha/wire.h) and switches its segment with the node's role in medix-dp.
//
//   ha plugin 127.0.0.1:4510 <-> relay 127.0.0.2:4510 ... --ha-sync-local ══AES-GCM══ peer's relay
//
// The plugin's socket is connected to the relay's address, so it takes datagrams from the relay
// alone; whatever reaches the relay from outside is opened under the pair's key first.
#ifndef MEDIX_CP_HA_LINK_H
#define MEDIX_CP_HA_LINK_H

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "wire.h"

namespace medix::cp::ha {

struct LinkConfig {
  std::string local;  // HOST:PORT (IPv4) of the sync link, this node's
  std::string peer;   // the other node's
  std::string key_file;
  bool configured() const { return !local.empty() || !peer.empty() || !key_file.empty(); }
};

// The role medix-dp gives the node: 1 active, 0 standby, -1 unknown (medix-dp did not answer).
using RoleSource = std::function<int()>;

// Whether a medix-cp that stops may close its IKE_SAs (charon sends the gateways DELETE, and the
// ha plugin tells the peer node to drop its copies): only while its medix-dp is active (`role`
// as RoleSource) and the peer is not active too (`peer_active`: a planned switchover's overlap,
// the old active still draining). A standby, or a node whose medix-dp no longer answers (dead:
// the peer took over or will), leaves them to the peer: made passive, they go without a word.
inline bool owns_ike_sas_at_stop(int role, int peer_active) { return role == 1 && peer_active != 1; }

class Link {
 public:
  // strongswan.conf text for the ha plugin: its endpoints inside the node, one segment, no
  // heartbeat of its own (the role comes from medix-dp: VRRP or medixctl ha-sync role).
  static std::string plugin_settings();

  ~Link() { stop(); }
  // Binds both sockets and starts the relay and the role watcher. "" or the error.
  std::string start(const LinkConfig& config, RoleSource role);
  void stop();

  struct Stats {
    std::atomic<uint64_t> sent{0}, received{0};
    std::atomic<uint64_t> rejected[4] = {};  // by Reject
    std::atomic<uint64_t> activations{0}, deactivations{0};
    std::atomic<uint64_t> before_resync{0};    // the peer's state left out before our resync request
    std::atomic<uint64_t> segment_ignored{0};  // the peer's segment take/drop/status, not passed on
    std::atomic<uint64_t> withheld{0};         // the plugin's datagrams not sent: medix-dp does not answer
  };
  const Stats& stats() const { return stats_; }

 private:
  void relay();
  void watch_role();
  // Whether medix-dp answers now (relay thread): asked again unless it answered in the last 20 ms.
  bool datapath_answers();

  int inner_ = -1, outer_ = -1;  // toward the plugin; toward the peer
  Key send_key_{}, recv_key_{};
  uint64_t counter_ = 0, last_counter_ = 0;
  bool joined_ = false;  // the plugin sent its resync request (relay thread only)
  // medix-dp has not answered the last few role polls: the node has no datapath (watcher sets it).
  std::atomic<bool> datapath_gone_{false};
  RoleSource role_;
  std::chrono::steady_clock::time_point last_answer_{};  // relay thread only
  std::string peer_;
  std::atomic<bool> stopping_{false};
  std::thread relay_thread_, role_thread_;
  Stats stats_;
};

}  // namespace medix::cp::ha

#endif
