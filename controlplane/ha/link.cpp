// The IKE sync link: the relay between the ha plugin and the peer, and the segment that follows
// the node's role.
#include "link.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <vector>

#include "common/address.h"
#include "witness.h"

namespace medix::cp::ha {

namespace {

constexpr const char* plugin_address = "127.0.0.1";
constexpr const char* relay_address = "127.0.0.2";
constexpr uint16_t plugin_port = 4510;  // the plugin's, fixed
constexpr const char* plugin_fifo = "/var/run/charon.ha";
// The plugin's messages start with its version and their type (ha_message.h, strongSwan 5.9).
constexpr uint8_t ha_message_version = 3;
constexpr uint8_t ha_segment_drop = 8, ha_segment_take = 9, ha_status = 10, ha_resync = 11;

int bound_socket(const sockaddr_in& at, std::string& error) {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&at), sizeof at) != 0) {
    char ip[INET_ADDRSTRLEN];
    inet_ntop(AF_INET, &at.sin_addr, ip, sizeof ip);
    error = std::string("cannot bind ") + ip + ":" + std::to_string(ntohs(at.sin_port)) + ": " + strerror(errno);
    if (fd >= 0) close(fd);
    return -1;
  }
  return fd;
}

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// How often each node says its role on the link, and how long the peer's word holds.
constexpr int64_t heartbeat_ns = 100'000'000, heard_for_ns = 1'000'000'000;

uint64_t wall_ns() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// "+1" takes segment 1 (the node's IKE_SAs become active), "-1" drops it (passive): the plugin's
// control FIFO. False if its reader is not there (yet).
bool command_segment(bool take) {
  int fd = ::open(plugin_fifo, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return false;
  const char* cmd = take ? "+1\n" : "-1\n";
  bool ok = write(fd, cmd, 3) == 3;
  close(fd);
  return ok;
}

}  // namespace

std::string Link::plugin_settings() {
  return std::string("medix-cp {\n plugins {\n  ha {\n   local = ") + plugin_address +
         "\n   remote = " + relay_address +
         "\n   segment_count = 1\n   monitor = no\n   fifo_interface = yes\n   resync = yes\n  }\n }\n}\n";
}

std::string Link::start(const LinkConfig& config, RoleSource role, Charon charon, Witness* witness) {
  sockaddr_in local, peer, inner;
  if (!common::parse_endpoint(config.local, local))
    return "--ha-sync-local " + config.local + ": not IPv4-ADDRESS:PORT";
  if (!common::parse_endpoint(config.peer, peer)) return "--ha-sync-peer " + config.peer + ": not IPv4-ADDRESS:PORT";
  if (config.key_file.empty()) return "--ha-sync-key-file: required with --ha-sync-local and --ha-sync-peer";
  std::vector<uint8_t> secret;
  if (std::string e = read_secret(config.key_file, secret); !e.empty()) return "--ha-sync-key-file " + e;
  send_key_ = direction_key(secret, config.local, config.peer);
  recv_key_ = direction_key(secret, config.peer, config.local);
  std::fill(secret.begin(), secret.end(), 0);
  common::parse_endpoint(std::string(relay_address) + ":" + std::to_string(plugin_port), inner);
  std::string error;
  if ((inner_ = bound_socket(inner, error)) < 0) return "the ha plugin's relay: " + error;
  if ((outer_ = bound_socket(local, error)) < 0) return "--ha-sync-local: " + error;
  // Datagrams go to the peer only; the peer's are checked by their key, not their source.
  if (connect(outer_, reinterpret_cast<const sockaddr*>(&peer), sizeof peer) != 0)
    return "--ha-sync-peer " + config.peer + ": " + strerror(errno);
  peer_ = config.peer;
  // Grows across restarts: the peer's replay check holds for a node that comes back.
  counter_ = wall_ns();
  role_ = std::move(role);
  charon_ = std::move(charon);
  witness_ = witness;
  relay_thread_ = std::thread([this] { relay(); });
  role_thread_ = std::thread([this] { watch_role(); });
  return "";
}

void Link::stop() {
  if (stopping_.exchange(true)) return;
  if (relay_thread_.joinable()) relay_thread_.join();
  if (role_thread_.joinable()) role_thread_.join();
  if (inner_ >= 0) close(inner_);
  if (outer_ >= 0) close(outer_);
}

uint64_t Link::send_sealed(const uint8_t* payload, size_t len) {
  std::vector<uint8_t> sealed;
  std::lock_guard lock(send_mutex_);
  seal(send_key_, ++counter_, payload, len, sealed);
  return send(outer_, sealed.data(), sealed.size(), 0) == ssize_t(sealed.size()) ? counter_ : 0;
}

bool Link::peer_is(int role) const {
  return peer_role_.load() == role && steady_ns() - peer_heard_ns_.load() < heard_for_ns;
}

// One datagram of the plugin's: sealed to the peer, or withheld. `relaying_` from before it is
// read until it is sent (and waits for its ack) or not: check_send waits for the relay to take all
// the plugin wrote before charon's message.
void Link::relay_plugin(std::vector<uint8_t>& buf, const sockaddr_in& plugin) {
  {
    std::lock_guard lock(ack_mutex_);
    relaying_ = true;
  }
  struct Done {
    Link* link;
    ~Done() {
      {
        std::lock_guard lock(link->ack_mutex_);
        link->relaying_ = false;
      }
      link->ack_cv_.notify_all();
    }
  } done{this};
  sockaddr_in from;
  socklen_t from_len = sizeof from;
  ssize_t n = recvfrom(inner_, buf.data(), max_payload + 1, 0, reinterpret_cast<sockaddr*>(&from), &from_len);
  if (n > 0 && size_t(n) <= max_payload && from.sin_port == htons(plugin_port) &&
      from.sin_addr.s_addr == plugin.sin_addr.s_addr) {
    // A node without its datapath is out of the pair: what its charon does now (a DPD that
    // cannot leave, a message ID it uses) must not reach the peer, which serves the IKE_SAs.
    // Asked for each datagram (they are few; an answer is trusted for 20 ms), not left to the
    // role watcher: a DPD due 0.1 s after medix-dp died came before the watcher noticed.
    int role = datapath_role();
    if (role < 0) {
      stats_.withheld++;
      if (!datapath_gone_.load())  // after the watcher's line, each is only counted
        fprintf(stderr, "medix-cp: ha link: medix-dp does not answer: a datagram of the plugin withheld\n");
      return;
    }
    bool resync = n >= 2 && buf[0] == ha_message_version && buf[1] == ha_resync;
    if (resync) {
      joined_ = true;
      plugin_resync_ns_ = steady_ns();
      std::lock_guard lock(send_mutex_);
      resync_request_.assign(buf.begin(), buf.begin() + n);
    }
    if (repairing_.load()) {  // rejoin() asks for the resync itself, once the copies are gone
      stats_.unpaired++;
      return;
    }
    // Active while the peer is not heard standby (a split brain, the peer gone, or the overlap
    // of a takeover): what the plugin says now (message IDs, CHILD_SAs) would be applied to
    // IKE_SAs the peer may be serving too. Withheld; the node is dirty: if it becomes standby
    // it asks for a resync (rejoin), and a peer that rejoins makes it clean.
    if (role == 1 && !peer_is(0)) {
      if (stats_.unpaired++ == 0 || !dirty_.load())
        fprintf(stderr,
                "medix-cp: ha link: active while the peer is not heard standby: the plugin's datagrams "
                "withheld\n");
      dirty_ = true;
      return;
    }
    if (uint64_t c = send_sealed(buf.data(), size_t(n))) {
      stats_.sent++;
      if (role == 1) {
        active_sent_ns_ = steady_ns();
        std::lock_guard lock(ack_mutex_);
        unacked_.emplace(c, steady_ns());  // our IKE messages after it wait for its ack
      }
    } else if (role == 1) {
      dirty_ = true;
    }
  }
}

void Link::relay() {
  sockaddr_in plugin;
  common::parse_endpoint(std::string(plugin_address) + ":" + std::to_string(plugin_port), plugin);
  std::vector<uint8_t> buf(sizeof(Header) + max_payload + tag_size + 1), payload;
  pollfd fds[2] = {{inner_, POLLIN, 0}, {outer_, POLLIN, 0}};
  time_t last_log[4] = {};  // by Reject
  int64_t last_heartbeat = 0;
  while (!stopping_.load()) {
    if (int64_t now = steady_ns(); now - last_heartbeat >= heartbeat_ns) {
      last_heartbeat = now;
      send_own(encode_heartbeat(datapath_gone_.load() ? -1 : my_role_.load()));
    }
    if (poll(fds, 2, 20) <= 0) continue;
    if (fds[0].revents & POLLIN) relay_plugin(buf, plugin);  // the plugin's: sealed to the peer
    if (fds[1].revents & POLLIN) {                           // the peer's: opened, then to the plugin
      ssize_t n = recv(outer_, buf.data(), buf.size(), 0);
      if (n <= 0) continue;
      Reject r = open(recv_key_, buf.data(), size_t(n), last_counter_, payload);
      if (r != Reject::none) {
        uint64_t count = ++stats_.rejected[size_t(r)];
        if (time_t now = time(nullptr); now != last_log[size_t(r)]) {  // a line a second, a reason
          last_log[size_t(r)] = now;
          fprintf(stderr, "medix-cp: ha link: refused a datagram (%s), %llu so far\n", reject_name(r),
                  static_cast<unsigned long long>(count));
        }
        continue;
      }
      if (payload.size() < 2) continue;
      if (payload[0] == link_own) {
        if (payload[1] == uint8_t(Own::heartbeat) && payload.size() == 3) {
          stats_.heartbeats++;
          if (payload[2] == 0 && !peer_is(0)) peer_standby_since_ns_ = steady_ns();
          peer_role_ = payload[2] <= 1 ? payload[2] : -1;
          peer_heard_ns_ = steady_ns();
        } else if (payload[1] == uint8_t(Own::rejoin)) {
          rejoin_asked_ = true;
        } else if (uint64_t acked; decode_ack(payload, acked)) {
          stats_.acks++;
          acks_seen_ = true;
          {
            std::lock_guard lock(ack_mutex_);
            unacked_.erase(acked);
          }
          ack_cv_.notify_all();
        } else if (std::vector<IkeMids> mids; decode_mids(payload, mids)) {
          // The loser of a split: its message IDs may be ahead of ours (the gateway's requests
          // reached it); taking the higher keeps both sides of each IKE_SA in step. Now, before
          // the resync request that follows starts our rekeys.
          stats_.received++;
          fprintf(stderr, "medix-cp: ha: the peer rejoins after acting active: %zu IKE_SA(s) reported\n", mids.size());
          raise(std::move(mids), "the peer's");
        } else if (std::vector<IkeChild> children; decode_children(payload, children)) {
          // After its message IDs: the CHILD_SAs the loser has, some made while it spoke. Those
          // not here are deleted at the gateway by us once we speak (docs/ha.md, item 6).
          stats_.received++;
          fprintf(stderr, "medix-cp: ha: the peer rejoins after acting active: %zu CHILD_SA(s) of its reported\n",
                  children.size());
          std::lock_guard lock(send_mutex_);
          peer_children_ = std::move(children);  // once the raise is done (the watcher)
        }
        continue;
      }
      stats_.received++;
      // Acknowledged once taken (passed on, or left to the resync, which carries it too), not when
      // ignored: the active peer's IKE messages wait for it (docs/ha.md, item 6).
      const uint64_t taken = last_counter_;
      // The peer's segment messages are not for the plugin: each node's segment follows its own
      // medix-dp's role, never the other node's word (a node going standby would otherwise make
      // the other active, and one taking over would make the other passive whatever its role).
      if (payload[1] == ha_segment_drop || payload[1] == ha_segment_take || payload[1] == ha_status) {
        stats_.segment_ignored++;
        send_own(encode_ack(taken));
        continue;
      }
      // Until the plugin asked for its resync, the peer's IKE_SAs and CHILD_SAs are left out: the
      // resync sends them all again, and the plugin would install twice an IKE_SA it got twice.
      if (!joined_ && payload[1] != ha_resync) {
        if (stats_.before_resync++ == 0)
          fprintf(stderr, "medix-cp: ha link: the peer's state is left out until the plugin asks for its resync\n");
        send_own(encode_ack(taken));
        continue;
      }
      if (payload[1] == ha_resync) {
        if (peer_is(0)) dirty_ = false;  // the standby peer rebuilds its copy from ours
      } else if (my_role_.load() == 1 && !peer_is(0)) {
        // Active here and the peer not standby: its word (a request's message ID, a delete)
        // would change the IKE_SAs this node serves.
        if (stats_.peer_ignored++ == 0)
          fprintf(stderr, "medix-cp: ha link: the peer is not standby: its state is not applied here\n");
        continue;
      }
      sendto(inner_, payload.data(), payload.size(), 0, reinterpret_cast<const sockaddr*>(&plugin), sizeof plugin);
      send_own(encode_ack(taken));
    }
  }
}

int Link::datapath_role() {
  if (datapath_gone_.load()) return -1;
  auto now = std::chrono::steady_clock::now();
  if (now - last_answer_ < std::chrono::milliseconds(20)) return last_role_;
  int role = role_();
  if (role < 0) return -1;
  last_answer_ = now;
  last_role_ = role;
  return role;
}

void Link::raise(std::vector<IkeMids> mids, const char* whose) {
  size_t n = mids.size();
  int raised = charon_.raise_mids ? charon_.raise_mids(mids) : 0;
  stats_.mids_raised += raised;
  std::lock_guard lock(send_mutex_);
  if (mids.empty()) {
    fprintf(stderr, "medix-cp: ha: %d of %zu IKE_SA(s) raised to %s message IDs\n", raised, n, whose);
    return;
  }
  pending_raised_ = raised;
  pending_mids_ = std::move(mids);
  pending_until_ = steady_ns() + 5 * heard_for_ns;
}

bool Link::rejoin() {
  std::vector<uint8_t> request;
  {
    std::lock_guard lock(send_mutex_);
    request = resync_request_;
  }
  if (request.empty()) return false;
  // The copies go first: the resync's IKE_ADD makes a new IKE_SA whatever is there (item 3 above).
  int dropped = charon_.drop_passive ? charon_.drop_passive() : 0;
  send_own(encode_heartbeat(0));  // before the request: the peer takes it from a standby only
  send_own(encode_mids(own_mids_));
  if (!own_children_.empty()) send_own(encode_children(own_children_));  // the loser of a split only
  send_sealed(request.data(), request.size());
  stats_.rejoins++;
  fprintf(stderr,
          "medix-cp: ha: rejoining the active peer: %d passive IKE_SA(s) dropped, the message IDs of %zu sent, resync "
          "asked\n",
          dropped, own_mids_.size());
  return true;
}

void Link::lose_unacked() {
  if (unacked_.empty()) return;
  lost_max_ = std::max(lost_max_, unacked_.rbegin()->first);
  unacked_.clear();
  dirty_ = true;  // the peer's copy may lack them: it rejoins (item 5)
}

Link::Send Link::check_send(const IkeMids& mids, const std::vector<uint32_t>& children, bool request,
                            std::string_view bytes) {
  // The standby first (docs/ha.md, item 6, "The standby's acknowledgement"): what the plugin synced before this message
  // (its message ID, the state it carries) acknowledged, or the message does not leave. A response not sent is asked
  // again by the gateway's retransmit, a request is charon's to retransmit; either is checked
  // again, and by then the peer is standby and acks, or silent, and the split's rules apply.
  // Not on the relay's own thread (a raise it makes may send): it takes the syncs and the acks.
  if (acks_seen_.load() && std::this_thread::get_id() != relay_thread_.get_id()) {
    int64_t start = steady_ns(), deadline = start + confirm_wait_ns;
    std::unique_lock lock(ack_mutex_);
    // The plugin wrote its sync before charon sends: the relay takes all it holds first.
    for (int pending = 1; pending && steady_ns() < deadline;) {
      if (relaying_ || ioctl(inner_, FIONREAD, &pending) != 0) pending = 1;
      if (pending) ack_cv_.wait_for(lock, std::chrono::milliseconds(2));
    }
    if (!unacked_.empty()) {
      const uint64_t low = unacked_.begin()->first, upto = unacked_.rbegin()->first;
      bool lost = false;
      while (!unacked_.empty() && unacked_.begin()->first <= upto) {
        if (!peer_is(0) || steady_ns() >= deadline || stopping_.load()) {
          lost = true;
          lose_unacked();  // the rest is no better off: the link is down or the peer is not standby
          break;
        }
        ack_cv_.wait_for(lock, std::chrono::milliseconds(5));
      }
      const auto waited_us = uint64_t(std::max<int64_t>(0, steady_ns() - start) / 1000);
      if (lost || lost_max_ >= low) {
        stats_.unconfirmed++;
        if (int64_t now = steady_ns(); now - unconfirmed_said_ns_ >= heard_for_ns) {
          unconfirmed_said_ns_ = now;
          fprintf(stderr,
                  "medix-cp: ha link: an IKE %s not sent: the standby did not acknowledge the sync it depends on "
                  "(%llu ms, the peer %s)\n",
                  request ? "request" : "response", static_cast<unsigned long long>(waited_us / 1000),
                  peer_is(0) ? "still heard standby" : "not heard standby");
        }
        lock.unlock();
        ack_cv_.notify_all();
        return Send::unconfirmed;
      }
      stats_.confirmed++;
      stats_.confirm_wait_us += waited_us;
      if (waited_us > stats_.confirm_wait_max_us.load()) stats_.confirm_wait_max_us = waited_us;
    }
  }
  if (!witness_) return Send::ok;
  // charon gives up on a request after its retransmits (about 165 s at its defaults).
  constexpr int64_t retransmit_window_ns = 300'000'000'000;
  int64_t now = steady_ns();
  std::pair<uint64_t, uint64_t> sa{mids.spi_i, mids.spi_r};
  // Paired: the watcher's view (every 100 ms), or a standby peer heard since (a heal: the rejoin's
  // raise comes with it, and what the raise started again goes out at once).
  if (!split_.load() || peer_is(0)) {
    if (request) {
      std::lock_guard lock(sent_mutex_);
      SentPaired& e = sent_paired_[sa];
      e = {std::max(e.initiating, mids.initiating), now};
      if (now - swept_ns_ > retransmit_window_ns) {  // IKE_SAs gone (rekeyed, deleted) leave with time
        std::erase_if(sent_paired_, [&](const auto& kv) { return now - kv.second.at_ns > retransmit_window_ns; });
        swept_ns_ = now;
      }
    }
    return Send::ok;
  }
  if (!request) {
    // Sent even if not recorded: the gateway asked. Without the lease, the answer is written for
    // the holder, which raises its responding ID to it (docs/ha.md, "An answer without the lease").
    if (by_lease_.load())
      witness_->record(mids, children);
    else
      witness_->answered(mids, bytes);
    return Send::ok;
  }
  bool ok;
  if (by_lease_.load()) {
    ok = witness_->record(mids, children, bytes);
  } else {
    std::lock_guard lock(sent_mutex_);
    auto it = sent_paired_.find(sa);
    ok = witness_->recorded(mids) || (it != sent_paired_.end() && mids.initiating <= it->second.initiating &&
                                      now - it->second.at_ns < retransmit_window_ns);
  }
  if (ok) return Send::ok;
  if (stats_.unrecorded++ == 0)
    fprintf(stderr,
            "medix-cp: ha witness: an IKE request not sent: its message ID not recorded with the witness (no lease, "
            "or etcd did not take it)\n");
  return Send::unrecorded;
}

void Link::watch_role() {
  int applied = -1;  // what the plugin was last told: unknown at first
  int silent = 0;    // role polls in a row medix-dp did not answer
  constexpr int gone_after = 3;
  int64_t raise_at = 0;  // after rejoin: our own message IDs again, once the resync brought the copies
  int64_t last_rejoin = -2 * heard_for_ns, last_ask = 0;
  int64_t active_since = 0;  // when the node last became active (0: it is not)
  bool held = false;         // cp_charon_hold(true) in force
  bool records_due = false;  // the lease obtained: our message IDs to record before we speak by it
  bool ready = false;        // they are (for the lease held now)
  while (!stopping_.load()) {
    int now = role_();
    // medix-dp not answering (killed, stopped): the node is out of the pair. Its IKE_SAs go
    // passive (no DPD or rekey of its own: the peer, active now, would be told their message
    // IDs) and the plugin's datagrams are withheld from the peer until medix-dp answers again.
    // A few polls first: one late answer of a busy medix-dp is not a dead one.
    if (now < 0 && ++silent == gone_after) {
      datapath_gone_ = true;
      fprintf(stderr,
              "medix-cp: ha: medix-dp does not answer: the IKE_SAs here are passive, nothing is sent to the peer\n");
      if (applied != 0 && command_segment(false)) {
        stats_.deactivations++;
        applied = 0;
      }
    }
    if (now >= 0) {
      if (silent >= gone_after) fprintf(stderr, "medix-cp: ha: medix-dp answers again\n");
      silent = 0;
      datapath_gone_ = false;
      my_role_ = now;  // what the heartbeats say, even before the plugin's FIFO is there
    }
    if (now >= 0 && now != applied && command_segment(now == 1)) {
      fprintf(stderr, "medix-cp: ha: medix-dp is %s: the IKE_SAs here are %s\n", now ? "active" : "standby",
              now ? "active" : "passive");
      (now ? stats_.activations : stats_.deactivations)++;
      if (now == 0 && dirty_.load() && charon_.mids) {
        // Demoted after acting active alone or beside another active: the peer's IKE_SAs may be
        // ahead of ours, ours of the peer's. Our message IDs kept now, before the peer's reach us.
        own_mids_ = charon_.mids();
        if (charon_.children) own_children_ = charon_.children();
        repairing_ = true;
      }
      if (now == 1 && repairing_.exchange(false))
        fprintf(stderr, "medix-cp: ha: active again before the peer was heard: no resync asked\n");
      applied = now;
    }
    int64_t t = steady_ns();
    // Sent while active, then the peer went silent within the second its word holds: that
    // datagram may be lost, so the peer's copy may lack it.
    if (applied == 1 && !peer_is(0) && t - active_sent_ns_.load() < heard_for_ns + heartbeat_ns) dirty_ = true;
    // Who may send IKE requests of its own (DPD, rekeys): a node with a standby peer (which keeps
    // copies of what it does); without one (a split brain, alone, or standby: then for the
    // takeover's first check) only the holder of the witness's lease, and not in its first
    // 1.2 s as active: until then the peer may still take it for standby (its word holds 1 s)
    // and speak as paired. Two nodes speaking would send requests with one message ID; the
    // gateway's own requests are answered either way.
    bool paired = peer_is(0), active = applied == 1 && !datapath_gone_.load();
    if (!paired) {  // what the peer did not acknowledge is lost: the IKE messages waiting for it stop
      {
        std::lock_guard lock(ack_mutex_);
        lose_unacked();
      }
      ack_cv_.notify_all();
    }
    {
      std::lock_guard lock(on_role_mutex_);
      if (on_role_) on_role_(active ? 1 : applied == 0 ? 0 : -1);
    }
    if (!active)
      active_since = 0;
    else if (!active_since)
      active_since = t;
    // Nor while the peer is heard active (a heal under way: the rejoin raises the message IDs
    // first; seen: a node that took the lease then sent a rekey with the IDs of before the split,
    // which the gateway ignored). The rules: may_speak (link.h).
    // A lease just obtained: its last holder's message IDs first (raised to; busy ones tried again
    // for 5 s), then ours recorded, and only then does the node speak by it.
    bool raised_all;
    {
      std::lock_guard lock(send_mutex_);
      raised_all = pending_mids_.empty();
    }
    if (witness_) {
      if (auto records = witness_->take_records()) {
        ready = false;
        records_due = true;
        if (!records->mids.empty()) {
          size_t n = records->mids.size(), c = records->children.size();
          {
            // Its CHILD_SAs after the raise, as the heal's winner does with the loser's: those
            // not held here are deleted at the gateway once the node speaks (charon/leftover.c).
            std::lock_guard lock(send_mutex_);
            peer_children_.insert(peer_children_.end(), records->children.begin(), records->children.end());
          }
          // Its last request of each IKE_SA, sent again as it is after the raise: the gateway,
          // whether it had it or not, then answers it and expects the ID we raise to (docs/ha.md,
          // item 6, "An exchange in flight when the lease changes hands"). We speak once it is
          // answered. Not where our copy is past it: a record left from an earlier lease (the key
          // let go when paired, and requests sent since, which our copy has by the sync) is
          // stale, and the gateway would ignore it.
          std::vector<std::pair<IkeMids, std::string>> requests;
          if (!records->requests.empty() && charon_.resend_requests && charon_.mids) {
            auto own = charon_.mids();
            for (auto& r : records->requests) {
              const auto* b = reinterpret_cast<const uint8_t*>(r.bytes.data());
              uint32_t mid = uint32_t(b[20]) << 24 | uint32_t(b[21]) << 16 | uint32_t(b[22]) << 8 | uint32_t(b[23]);
              auto it = std::find_if(own.begin(), own.end(),
                                     [&](const IkeMids& m) { return m.spi_i == r.spi_i && m.spi_r == r.spi_r; });
              if (it != own.end() && it->initiating <= mid + 1)
                requests.push_back({{r.spi_i, r.spi_r, mid + 1, 0}, std::move(r.bytes)});
            }
          }
          raise(std::move(records->mids), "the last lease holder's recorded");
          if (!requests.empty()) {
            int queued = charon_.resend_requests(requests);
            fprintf(stderr,
                    "medix-cp: ha witness: %d of the last lease holder's request(s) sent again as recorded; we speak "
                    "once they are answered\n",
                    queued);
          }
          fprintf(stderr,
                  "medix-cp: ha witness: %zu IKE_SA message ID record(s) read with the lease, %zu CHILD_SA SPI(s)\n", n,
                  c);
        }
        std::lock_guard lock(send_mutex_);
        raised_all = pending_mids_.empty();
      }
      // One etcd call (up to its 400 ms deadline) on this thread, once per lease obtained: the
      // node does not speak by the lease until it returns anyway.
      if (records_due && raised_all && witness_->holds() && charon_.mids) {
        auto own = charon_.mids();
        if (witness_->record_all(own)) {
          records_due = false;
          ready = true;
          fprintf(stderr, "medix-cp: ha witness: the message IDs of %zu IKE_SA(s) recorded\n", own.size());
        }
      }
      // The other node's answers without the lease (read by the holder): our responding ID raised
      // to them once no exchange of ours is in flight, before the gateway's next request reaches us.
      if (auto answers = witness_->take_answered(); !answers.empty() && charon_.raise_responding) {
        int n = charon_.raise_responding(answers);
        stats_.answers_raised += uint64_t(n);
        fprintf(stderr,
                "medix-cp: ha witness: the other node answered %zu IKE_SA(s) without the lease: %d responding message "
                "ID(s) to raise\n",
                answers.size(), n);
      }
      // The renew deadline passed: what the node answered meanwhile went unrecorded, so its own
      // IDs are recorded again before it speaks, whether a renewal brings the lease back or a
      // new one is obtained.
      if (!witness_->holds()) {
        ready = false;
        records_due = true;
        if (charon_.resends_stop) charon_.resends_stop();
      }
    }
    bool resending = charon_.resends_pending && charon_.resends_pending() > 0;
    SpeakerView view{active, paired, peer_is(1), witness_ && witness_->holds() && ready && raised_all && !resending,
                     active ? t - active_since : 0};
    if (witness_) witness_->want(wants_lease(view));
    bool speaks = may_speak(view), lease = speaks && !paired;
    split_ = witness_ && active && !paired;
    by_lease_ = lease;
    if (!speaks && charon_.hold_dpd) charon_.hold_dpd();
    // With a witness, the rest is held too (rekeys by lifetime or the fence, an operator's,
    // MOBIKE: cp_charon_hold), and let go with the lease, or once paired again and the loser's
    // message IDs raised (2 s of a standby peer: its rejoin comes first), or when the node is
    // no longer active (its IKE_SAs passive: charon refuses them; the winner's resync rekeys
    // every CHILD_SA).
    if (witness_ && charon_.hold) {
      bool raised;
      {
        std::lock_guard lock(send_mutex_);
        raised = pending_mids_.empty();
      }
      if (active && !speaks && !held) {
        held = true;
        stats_.holds++;
        charon_.hold(true);
        fprintf(stderr, "medix-cp: ha: active without a standby peer or the witness's lease: IKE requests held\n");
      } else if (held &&
                 (lease || !active || (paired && raised && t - peer_standby_since_ns_.load() >= 2 * heard_for_ns))) {
        held = false;
        int n = charon_.hold(false);
        stats_.released += uint64_t(n);
        fprintf(stderr, "medix-cp: ha: IKE requests let go (%s): %d held CHILD_SA expiries run\n",
                lease    ? "the witness's lease"
                : active ? "a standby peer"
                         : "not active",
                n);
      }
    }
    // Rejoin: on our own once the active peer is heard after we acted active without it (the
    // loser of a split), or when that peer asks (it acted active without us: our copies may lack
    // what it withheld). At most every 2 s: each resync rekeys every CHILD_SA.
    // An ask that crossed the plugin's own resync request (a node starting) is answered by it.
    bool asked = rejoin_asked_.exchange(false) && t - plugin_resync_ns_.load() >= 2 * heard_for_ns;
    if (applied == 0 && !datapath_gone_.load() && ((repairing_.load() && peer_is(1)) || asked) &&
        t - last_rejoin >= 2 * heard_for_ns) {
      if (!repairing_.load() && charon_.mids) own_mids_ = charon_.mids();
      if (rejoin()) {
        last_rejoin = t;
        repairing_ = false;
        own_children_.clear();
        dirty_ = false;
        raise_at = t + heard_for_ns;
      }
    }
    // Active and dirty, the peer standby for 2 s (a starting node asks for its resync after 1 s):
    // ask it to rejoin, every second until its resync request comes (which makes us clean).
    if (applied == 1 && dirty_.load() && peer_is(0) && t - peer_standby_since_ns_.load() >= 2 * heard_for_ns &&
        t - last_ask >= heard_for_ns) {
      if (last_ask == 0)
        fprintf(stderr, "medix-cp: ha: the standby peer may lack what was withheld: asking it to rejoin\n");
      last_ask = t;
      send_own({link_own, uint8_t(Own::rejoin)});
    }
    if (!dirty_.load()) last_ask = 0;
    if (raise_at && t >= raise_at) {  // the copies the resync brought: to our own IDs too
      raise_at = 0;
      raise(own_mids_, "our own (after the resync)");
    }
    std::vector<IkeMids> pending;
    int raised_before = 0;
    {
      std::lock_guard lock(send_mutex_);
      pending.swap(pending_mids_);
      raised_before = pending_raised_;
    }
    if (!pending.empty()) {  // busy before: tried again
      int raised = charon_.raise_mids ? charon_.raise_mids(pending) : 0;
      stats_.mids_raised += raised;
      std::lock_guard lock(send_mutex_);
      if (pending.empty() || t >= pending_until_) {
        fprintf(stderr, "medix-cp: ha: %d IKE_SA(s) raised to the other node's message IDs, %zu left busy\n",
                raised_before + raised, pending.size());
        pending_raised_ = 0;
      } else {
        pending_raised_ = raised_before + raised;
        pending_mids_ = std::move(pending);
      }
    }
    // The peer's CHILD_SAs, once no raise is pending: a DELETE of ours queued before would go out
    // under an ID the gateway has passed (charon's hold defers it further, until we speak).
    std::vector<IkeChild> leftovers;
    {
      std::lock_guard lock(send_mutex_);
      if (pending_mids_.empty()) leftovers.swap(peer_children_);
    }
    if (!leftovers.empty() && charon_.delete_leftovers) charon_.delete_leftovers(leftovers);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace medix::cp::ha
