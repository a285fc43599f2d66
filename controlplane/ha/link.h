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

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

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

// Whether medix-cp initiates a peer with `initiate` now (docs/ha.md, "Who initiates"): a node
// alone always (at its start, and when ApplyIntent adds or changes the peer); a node of a pair only
// while active (`role` as RoleSource; unknown at its start: once known), and only a peer without an
// IKE_SA here (`has_ike_sa`: one the ha plugin synced from the old active counts). A standby's
// IKE_SA_INIT would leave from the virtual address, and its answer reach the active node.
inline bool initiates(bool paired, int role, bool has_ike_sa) { return !paired || (role == 1 && !has_ike_sa); }

// Who may send IKE requests of its own (DPD, rekeys, MOBIKE; docs/ha.md, "IKE state" items 5
// and 6). `active`: medix-dp active and answering; `paired`: the peer heard standby;
// `peer_active`: the peer heard active (a split healing); `lease`: the witness's lease held;
// `active_for_ns`: since the node became active.
struct SpeakerView {
  bool active = false, paired = false, peer_active = false, lease = false;
  int64_t active_for_ns = 0;
};
// The peer's word holds 1 s and comes every 0.1 s: a node active for less may still be taken
// for standby by its peer, which then sends as a paired node.
constexpr int64_t lease_settle_ns = 1'200'000'000;
// The witness's lease is wanted by an active node without a standby peer, unless the peer is
// heard active: then a heal is under way, and the loser's rejoin raises the message IDs first.
inline bool wants_lease(const SpeakerView& v) { return v.active && !v.paired && !v.peer_active; }
// A paired node speaks; without a standby peer only the lease's holder, once settled.
inline bool may_speak(const SpeakerView& v) {
  return v.paired || (wants_lease(v) && v.lease && v.active_for_ns >= lease_settle_ns);
}

// What the link asks of medix-cp's charon (charon/glue.h, wired in main.cpp); unset: nothing.
struct Charon {
  std::function<std::vector<IkeMids>()> mids;  // every IKE_SA's message IDs
  // To at least these; how many raised. Leaves in `mids` those busy (an exchange of ours in flight).
  std::function<int(std::vector<IkeMids>&)> raise_mids;
  // Responding IDs alone, each raised once no exchange of ours is in flight; how many will be.
  // Each answer's response (if any) is sent again for the peer's retransmit of that request.
  std::function<int(const std::vector<IkeAnswer>&)> raise_responding;
  std::function<int()> drop_passive;  // makes every IKE_SA passive, destroys them; how many
  std::function<void()> hold_dpd;     // no DPD of ours for the DPD delay
  std::function<int(bool)> hold;      // other requests of ours deferred (true) or let go; how many let go
  // Every IKE_SA's CHILD_SAs (inbound ESP SPIs).
  std::function<std::vector<IkeChild>()> children;
  // The peer's CHILD_SAs: those not here are deleted at the gateway by us (when the hold ends).
  std::function<void(const std::vector<IkeChild>&)> delete_leftovers;
  // The last holder's last requests, sent again as they are until answered; how many queued. And
  // how many still wait for their response (the node does not speak meanwhile).
  std::function<int(const std::vector<std::pair<IkeMids, std::string>>&)> resend_requests;
  std::function<int()> resends_pending;
  std::function<void()> resends_stop;  // the lease not held: those not answered no longer sent
};

class Witness;

class Link {
 public:
  // strongswan.conf text for the ha plugin: its endpoints inside the node, one segment, no
  // heartbeat of its own (the role comes from medix-dp: VRRP or medixctl ha-sync role).
  static std::string plugin_settings();

  ~Link() { stop(); }
  // Binds both sockets and starts the relay and the role watcher. "" or the error.
  // `witness` (may be null: none, DPD held without a standby peer and nothing else, as before the
  // witness) must outlive the link.
  std::string start(const LinkConfig& config, RoleSource role, Charon charon = {}, Witness* witness = nullptr);
  void stop();
  // Told the role the watcher applied to the plugin's segment, each 100 ms (1 active; 0 standby;
  // -1 not known yet or medix-dp gone); null: nobody. Returns once a call in progress is over.
  void on_role(std::function<void(int)> f) {
    std::lock_guard lock(on_role_mutex_);
    on_role_ = std::move(f);
  }

  // Why an IKE message of ours is not sent (check_send).
  enum class Send { ok, unrecorded, unconfirmed };
  // Whether charon may send an IKE message of ours now (charon/hold.c asks before each, with the
  // message IDs it leaves the IKE_SA at, and the IKE_SA's CHILD_SAs' inbound SPIs). First, any
  // message (request or response) waits until the standby has acknowledged every datagram of the
  // plugin's sent before it (the message ID and state it depends on: docs/ha.md, item 6), while the
  // peer is heard standby, at most confirm_wait_ns; unconfirmed, it is not sent (unconfirmed), the
  // datagrams count as lost and the node as dirty. Then, with a witness,
  // active and without a standby peer, a node speaking by the lease records them first
  // (Witness::record); a request it cannot record, or
  // one of a node that does not hold the lease and was neither recorded nor sent while paired
  // before (retransmits of those go, as they did before the witness), is dropped. Responses go out whatever: the
  // gateway's requests are answered by the node they reach. `bytes`: the message as charon encoded
  // it ("" for a fragmented one): a request's are recorded with it, for the next holder to send
  // again; a response's are written with a node's answer without the lease. Any thread.
  Send check_send(const IkeMids& mids, const std::vector<uint32_t>& children, bool request,
                  std::string_view bytes = {});
  // The longest an IKE message waits for the standby's acknowledgement: the peer's word (1 s) and
  // two heartbeats; a peer silent or no longer standby ends it sooner.
  static constexpr int64_t confirm_wait_ns = 1'200'000'000;

  struct Stats {
    std::atomic<uint64_t> sent{0}, received{0};
    std::atomic<uint64_t> rejected[4] = {};  // by Reject
    std::atomic<uint64_t> activations{0}, deactivations{0};
    std::atomic<uint64_t> before_resync{0};    // the peer's state left out before our resync request
    std::atomic<uint64_t> segment_ignored{0};  // the peer's segment take/drop/status, not passed on
    std::atomic<uint64_t> withheld{0};         // the plugin's datagrams not sent: medix-dp does not answer
    std::atomic<uint64_t> unpaired{0};         // not sent: the node active, its peer not heard standby (split, alone)
    std::atomic<uint64_t> peer_ignored{0};     // the peer's state not applied: active here, the peer not standby
    std::atomic<uint64_t> heartbeats{0};       // the peer's heartbeats received
    std::atomic<uint64_t> rejoins{0};          // resyncs asked after acting active without a standby peer
    std::atomic<uint64_t> mids_raised{0};      // IKE_SAs whose message IDs were raised to the other node's
    std::atomic<uint64_t> answers_raised{0};   // responding IDs raised to the other node's answers without the lease
    std::atomic<uint64_t> holds{0};            // times the node's IKE requests were held (witness configured)
    std::atomic<uint64_t> released{0};         // CHILD_SA expiries let go when a hold ended
    std::atomic<uint64_t> unrecorded{0};       // IKE requests not sent: in a split, not recorded with the witness
    std::atomic<uint64_t> acks{0};             // the peer's acknowledgements of our plugin's datagrams
    std::atomic<uint64_t> confirmed{0};        // IKE messages that waited for an acknowledgement and got it
    std::atomic<uint64_t> unconfirmed{0};      // IKE messages not sent: the standby did not acknowledge in time
    std::atomic<uint64_t> confirm_wait_us{0};  // their waits, summed (confirmed ones), and the longest
    std::atomic<uint64_t> confirm_wait_max_us{0};
  };
  const Stats& stats() const { return stats_; }
  const Witness* witness() const { return witness_; }

 private:
  void relay();
  void watch_role();
  // medix-dp's role now (relay thread), -1 if it does not answer: asked again unless it answered
  // in the last 20 ms.
  int datapath_role();
  // Whether the peer's last heartbeat, at most a second old, gave `role`.
  bool peer_is(int role) const;
  // Seals and sends one payload to the peer (relay and watcher threads).
  // The counter it was sealed under; 0: not sent.
  uint64_t send_sealed(const uint8_t* payload, size_t len);
  void send_own(const std::vector<uint8_t>& payload) { send_sealed(payload.data(), payload.size()); }
  // After a split: the loser, passive now, drops its copies, sends its message IDs, asks for a
  // resync (false, nothing done, if its plugin never asked one: it will, at its start).
  bool rejoin();

  int inner_ = -1, outer_ = -1;  // toward the plugin; toward the peer
  Key send_key_{}, recv_key_{};
  std::mutex send_mutex_;  // counter_ and resync_request_
  uint64_t counter_ = 0, last_counter_ = 0;
  std::vector<uint8_t> resync_request_;  // the plugin's own, kept to ask again after a split
  bool joined_ = false;                  // the plugin sent its resync request (relay thread only)
  // medix-dp has not answered the last few role polls: the node has no datapath (watcher sets it).
  std::atomic<bool> datapath_gone_{false};
  RoleSource role_;
  Charon charon_;
  Witness* witness_ = nullptr;
  std::chrono::steady_clock::time_point last_answer_{};  // relay thread only
  int last_role_ = -1;                                   // relay thread only
  // The split-brain guard (docs/ha.md): the role the watcher last applied, the peer's last
  // heartbeat (role, steady-clock ns), when the plugin last sent while active; `dirty_`: this
  // node acted as active while its peer may not have kept a copy (a datagram withheld or lost);
  // `repairing_`: standby after that, the plugin's datagrams held until rejoin().
  std::atomic<int> my_role_{-1}, peer_role_{-1};  // ours as medix-dp last gave it; the peer's word
  std::atomic<int64_t> peer_heard_ns_{0}, active_sent_ns_{0};
  std::atomic<int64_t> peer_standby_since_ns_{0};  // its heartbeats say standby since
  std::atomic<int64_t> plugin_resync_ns_{0};       // the plugin last asked for a resync
  std::atomic<bool> dirty_{false}, repairing_{false};
  std::atomic<bool> rejoin_asked_{false};  // the active peer asked us to rejoin
  // With a witness (the watcher sets them): active without a standby peer; and speaking by the
  // lease (the records raised to and our own written). check_send reads them.
  std::atomic<bool> split_{false}, by_lease_{false};
  // The last request each IKE_SA sent while paired (its initiating ID after it, when), kept while
  // charon may retransmit it: check_send lets those retransmits go in a split.
  struct SentPaired {
    uint32_t initiating = 0;
    int64_t at_ns = 0;
  };
  std::mutex sent_mutex_;
  std::map<std::pair<uint64_t, uint64_t>, SentPaired> sent_paired_;  // under sent_mutex_
  int64_t swept_ns_ = 0;                                             // under sent_mutex_
  std::vector<IkeMids> own_mids_;       // watcher only: the loser's message IDs, kept from its demotion
  std::vector<IkeChild> own_children_;  // watcher only: the loser's CHILD_SAs, kept from its demotion
  // Message IDs still to raise (busy IKE_SAs are tried again each 100 ms), until pending_until_.
  std::vector<IkeMids> pending_mids_;  // under send_mutex_
  int64_t pending_until_ = 0;          // under send_mutex_
  int pending_raised_ = 0;             // under send_mutex_
  // Under send_mutex_: the loser's CHILD_SAs (or the last lease holder's), handed to charon once no
  // raise is pending.
  std::vector<IkeChild> peer_children_;
  // The standby's acknowledgements (docs/ha.md, item 6). The relay, from taking a datagram of the plugin's to
  // sending it, is `relaying_`; an active node's datagrams sent wait in `unacked_` (counter -> sent
  // at) until acked, or lost (the peer not heard standby, or a check's wait ran out: `lost_max_`,
  // the highest counter given up). Acks are waited for only from a peer that sent one
  // (`acks_seen_`): an older medix-cp sends none.
  std::mutex ack_mutex_;
  std::condition_variable ack_cv_;
  bool relaying_ = false;                // under ack_mutex_
  std::map<uint64_t, int64_t> unacked_;  // under ack_mutex_
  uint64_t lost_max_ = 0;                // under ack_mutex_
  std::atomic<bool> acks_seen_{false};
  int64_t unconfirmed_said_ns_ = 0;  // under ack_mutex_: the last log line of it
  // Every pending datagram lost (the watcher, once the peer is not heard standby); under ack_mutex_.
  void lose_unacked();
  void relay_plugin(std::vector<uint8_t>& buf, const sockaddr_in& plugin);
  // Raises what it can now; the rest is pending (relay and watcher threads).
  void raise(std::vector<IkeMids> mids, const char* whose);
  std::mutex on_role_mutex_;
  std::function<void(int)> on_role_;  // under on_role_mutex_
  std::string peer_;
  std::atomic<bool> stopping_{false};
  std::thread relay_thread_, role_thread_;
  Stats stats_;
};

}  // namespace medix::cp::ha

#endif
