#pragma once
// HA state sync between an active and a standby medix-dp (docs/ha.md): one thread of its own,
// off the workers, on a kernel UDP socket bound to the sync link's address. On the active it
// drains the workers' session records (nat/sync.h) into authenticated datagrams, sends every
// SA's sequence number every sa_interval, refreshes every session's timer every refresh_s and
// answers a resync request with a bulk pass over every session. On the standby it checks
// each datagram (ha/wire.h) and hands the records to the worker that owns them, which
// installs them (the sessions' only writer); when the standby becomes active it advances its
// SAs past what the active may have used.
#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "control/digest.h"
#include "ha/fence.h"
#include "ha/tenants.h"
#include "ha/wire.h"

namespace medix::dp {

struct Dataplane;

namespace ha {

struct Options {
  std::string local;  // HOST:PORT the sync socket binds (the sync link's own address)
  std::string peer;   // HOST:PORT of the other node's
  std::string key_file;
  unsigned refresh_s = 10;        // every session's timer sent again (below the shortest timeout)
  unsigned sa_interval_ms = 100;  // every SA's sequence number sent
  unsigned bulk_rate = 250000;    // records a second at most in a bulk pass (1M sessions: 4 s)
  uint64_t sa_margin = 0;         // 0: sa_margin(sa_interval_ms); set only to test the fence with few packets
  uint64_t margin() const;
  bool configured() const { return !local.empty() || !peer.empty() || !key_file.empty(); }
};

// Outbound sequence numbers a takeover skips: more than a 100 Gb/s link carries of the
// smallest ESP packets (148.8 Mpps) in two SA intervals (one lost datagram), at least 2^20.
uint64_t sa_margin(unsigned sa_interval_ms);

// Sessions live on every worker of this node now.
uint64_t live_sessions(Dataplane& dp);

// What GetHaSync reports (counters since the start).
struct Status {
  bool configured = false;
  bool standby = false;
  std::string local, peer;
  int peer_role = 0;                // WireRole; 0: never heard
  int64_t peer_last_heard_ms = -1;  // -1: never
  uint64_t datagrams_sent = 0, datagrams_received = 0, records_sent = 0, records_received = 0, bytes_sent = 0;
  uint64_t rejected_bad_mac = 0, rejected_replay = 0, rejected_malformed = 0;
  uint64_t datagrams_lost = 0;      // gaps in the peer's counter (the link or a full socket buffer)
  uint64_t resyncs_incomplete = 0;  // resyncs with a gap: asked again, at half the rate
  uint64_t ring_full = 0;           // workers' records lost to a full ring (active)
  uint64_t install_ring_full = 0;   // records lost to a worker's full install ring (standby)
  uint64_t unknown_worker = 0;      // records for a worker this node does not have
  // Session records refused by their tenants (ha/tenants.h): a tenant of the peer's this node
  // lacks, or a tenant table of the peer's not received (yet).
  uint64_t tenant_unknown = 0, tenant_table_unknown = 0;
  uint64_t ignored_not_standby = 0;
  uint64_t overlap_received = 0;  // active: sessions a draining peer made (planned switchover)
  uint64_t installed = 0, refreshed = 0, removed = 0, install_failed = 0;
  uint64_t bulk_passes_sent = 0, resyncs_requested = 0, resyncs_completed = 0;
  uint64_t last_resync_ms = 0;  // standby: request to the last bulk datagram
  uint64_t sessions = 0;        // live sessions on this node
  uint64_t sas_synced = 0;      // standby: SAs whose state it holds; active: SAs it sends
  uint64_t sas_advanced = 0;    // at takeovers
  uint64_t sas_stopped = 0;     // outbound SAs a takeover fenced where they were (the peer's use unbounded)
  uint64_t role_changes = 0;
  uint64_t sa_margin = 0;
  // The fence (ha/fence.h): standby, rounds acked and withheld; active, acks taken, outbound SAs
  // with a fence now and those at it.
  uint64_t sa_acks_sent = 0, sa_acks_withheld = 0, sa_acks_received = 0;
  uint64_t sas_fenced = 0, sas_at_fence = 0;
  uint64_t sas_raised = 0;  // active: outbound SAs advanced past numbers a standby sent (in a split brain)
  // The peer file found at the start (ha/reserve.h): the SAs a start may still take from it
  // (PeerSas::proven: until a whole round of the peer's or a value without a fence is heard, or
  // this node steps down), and those a takeover started from it.
  uint64_t peer_file_in_force = 0, peer_file_used = 0;
  double lag_ms_last = 0, lag_ms_p99 = 0, lag_ms_max = 0;
  uint64_t lag_samples = 0;
  // The intents compared (control/digest.h): ours now, the peer's from its last hello.
  ConfigDigest config, peer_config;
  bool peer_config_known = false;
  bool config_mismatch = false;     // the peer heard, and the digests differ
  uint64_t config_mismatches = 0;   // times a mismatch began
  int64_t config_mismatch_ms = -1;  // how long it lasts; -1: none
};

class Sync {
 public:
  ~Sync() { stop(); }
  // Opens the socket and starts the thread; an error names the option (never the key).
  std::optional<std::string> start(Dataplane& dp, const Options& options);
  void stop();
  Status status() const;
  // Where an outbound SA the peer negotiated (SA_ORIGIN_PEER) starts when it is added now
  // (Committer::Params::sa_peer_start): on a standby 0 (its takeover starts it, take_over); on
  // an active, as its takeover would have (peer_sa_start, from what the peer's rounds said
  // before it); none: fenced where it is. Any thread.
  std::optional<uint64_t> peer_sa_start(uint64_t tunnel, uint32_t spi) const;

 private:
  void run();
  void receive();
  void handle(const Decoded& d, uint64_t now_ns, uint64_t previous_counter);
  void take_overlap(const Decoded& d);
  void drain_workers(uint64_t now_ns);
  // A bulk pass from the first session: a resync the standby asked for (at the rate it asked,
  // ended by flag_bulk_end), or a refresh or a heal's hand-over (at our own rate).
  void start_bulk(bool resync, uint64_t now_ns);
  void bulk_step(uint64_t now_ns);
  void send_sas();
  void send_hello(uint64_t now_ns, uint64_t ack, const std::vector<SyncRecord>& past = {});
  void take_past();
  void ack_round(uint64_t now_ns);
  void take_ack();
  void takeover();
  void forget();
  bool forgetting() const;
  void check_config(uint64_t now_ns);
  // This node's tenant table to the peer: when it changed since last sent, or `always`.
  void send_tenants(uint64_t now_ns, bool always);
  // A peer's session record into this node's tenant slots (counted when refused).
  bool to_own_tenants(SyncRecord& r);
  void send(MessageType type, uint8_t flags, const SyncRecord* records, unsigned count, uint64_t sent_ns,
            uint32_t rate = 0);
  void flush(uint8_t flags, uint64_t sent_ns);

  Dataplane* dp_ = nullptr;
  Options options_;
  Key key_;
  int fd_ = -1;
  std::vector<uint8_t> peer_addr_;  // sockaddr_in
  std::thread thread_;
  std::atomic<bool> stopping_{false};
  uint64_t counter_ = 0;
  uint64_t instance_ = 0;  // this run's (its start): the tenant tables' epochs are of it
  bool tenants_sent_ = false;
  uint16_t tenants_sent_epoch_ = 0;
  // The peer's tenant slots to this node's (the sync thread's).
  TenantMap tenants_;
  uint64_t last_counter_ = 0;  // the peer's
  bool was_standby_ = false;
  // Active, yielding: its sessions are handed to the peer once, when the peer is heard after the
  // drain began (the sync link may come back a moment after VRRP's segments).
  uint64_t drain_since_ns_ = 0;
  bool handed_over_ = false;

  // Outgoing records not yet sent (at most a datagram's).
  std::vector<SyncRecord> pending_;
  uint64_t pending_since_ns_ = 0;
  // A bulk pass: where it is, whether it answers a request (bulk_end) or refreshes.
  bool bulk_active_ = false, bulk_is_resync_ = false;
  uint16_t bulk_queue_ = 0;
  uint32_t bulk_index_ = 0;
  double bulk_budget_ = 0;
  uint64_t bulk_last_ns_ = 0, next_refresh_ns_ = 0, next_sa_ns_ = 0, next_hello_ns_ = 0;
  // Standby: whether it still needs a resync, and when it asked last.
  bool need_resync_ = true;
  uint64_t resync_asked_ns_ = 0, resync_first_asked_ns_ = 0;
  uint64_t bulk_heard_ns_ = 0;    // the last bulk datagram: no new request while they flow
  bool resync_gap_ = false;       // a datagram of the resync under way went missing
  uint64_t forgets_wanted_ = 0;   // the workers' forgets_done, summed, once the last forget ends
  uint32_t resync_rate_ = 0;      // asked of the active (0: its own); halved after a gap
  uint32_t peer_asked_rate_ = 0;  // active: what the standby asked for

  mutable std::mutex mutex_;  // what status() reads beside the thread
  Status s_;
  std::vector<double> lags_;  // the last 4096 samples, ms
  size_t lag_at_ = 0;
  uint64_t peer_heard_ns_ = 0;
  uint64_t mismatch_since_ns_ = 0;  // 0: the intents agree (or the peer is not heard)
  PeerSas peer_;                    // standby: what the active's rounds said
  // The fence. Active: its recent rounds, the last ack not yet applied, whether a standby has
  // acked one since this node became active (before that no SA has a fence), each outbound
  // SA's start at the takeover (by slot and name: its rounds never say less). Standby: the rounds it
  // takes, and one it took whole that awaits its ack.
  SentRounds rounds_;
  uint64_t ack_pending_ = 0;
  bool fenced_ = false;
  SaFloors floors_;
  RoundTracker tracker_;
  bool round_to_ack_ = false;
  std::vector<SyncRecord> past_;  // active: a standby's numbers past this node's (its withheld acks)
  bool proof_gone_ = true;        // active: the peer file is removed (ha/reserve.h); no round before
};

}  // namespace ha
}  // namespace medix::dp
