// HA state sync: the sync thread of either node (docs/ha.md).
#include "ha/sync.h"

#include <netinet/in.h>
#include <poll.h>
#include <rte_cycles.h>
#include <rte_ring_elem.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "common/address.h"
#include "common/log.h"
#include "ha/reserve.h"
#include "ipsec/sa.h"
#include "runtime/dataplane.h"

namespace medix::dp::ha {

namespace {

constexpr uint64_t ms = 1000000, s = 1000000000;
constexpr uint64_t peer_silence_ns = 3 * s;  // a peer unheard this long is gone (it will resync)
constexpr uint64_t resync_retry_ns = 2 * s;
constexpr size_t lag_samples = 4096;

uint64_t realtime_ns() {
  return uint64_t(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

// The sync thread waits for a worker's install ring rather than lose a record: it is no worker.
bool push_in(rte_ring* ring, const SyncRecord& r) {
  for (int i = 0; i < 400; i++) {
    if (rte_ring_sp_enqueue_elem(ring, const_cast<SyncRecord*>(&r), sizeof r) == 0) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
  return false;
}

}  // namespace

uint64_t live_sessions(Dataplane& dp) {
  return dp.controller.read([](auto&, auto& c, uint64_t) {
    const Tables& t = *c.current();
    uint64_t n = 0;
    if (t.nat)
      for (uint16_t q = 0; q < t.workers; q++)
        n += t.nat[q]->capacity - __atomic_load_n(&t.nat[q]->n_free_sessions, __ATOMIC_RELAXED);
    return n;
  });
}

uint64_t Options::margin() const { return sa_margin ? sa_margin : ha::sa_margin(sa_interval_ms); }

uint64_t sa_margin(unsigned sa_interval_ms) {
  constexpr uint64_t line_rate_pps = 148800000;  // 100 Gb/s of 64-byte frames
  return std::max<uint64_t>(uint64_t(1) << 20, line_rate_pps * 2 * sa_interval_ms / 1000);
}

std::optional<std::string> Sync::start(Dataplane& dp, const Options& options) {
  dp_ = &dp;
  options_ = options;
  if (options.local.empty()) return std::string("--ha-sync-local HOST:PORT is required with HA sync");
  if (options.peer.empty()) return std::string("--ha-sync-peer HOST:PORT is required with HA sync");
  if (options.key_file.empty()) return std::string("--ha-sync-key-file FILE is required with HA sync");
  if (auto e = read_key(options.key_file, key_); !e.empty()) return "--ha-sync-key-file " + e;
  sockaddr_in local{}, peer{};
  if (!medix::common::parse_endpoint(options.local, local))
    return "--ha-sync-local " + options.local + ": not an IPv4 HOST:PORT";
  if (!medix::common::parse_endpoint(options.peer, peer))
    return "--ha-sync-peer " + options.peer + ": not an IPv4 HOST:PORT";
  for (auto* w : dp.workers)
    if (!w->sync) return std::string("HA sync: the workers have no sync rings");
  fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return std::string("HA sync: socket: ") + strerror(errno);
  // A bulk resync arrives faster than one poll drains: room for tens of thousands of datagrams.
  int size = 64 << 20;
  if (setsockopt(fd_, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  setsockopt(fd_, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
  if (bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0) {
    std::string e = "--ha-sync-local " + options.local + ": " + strerror(errno);
    close(fd_);
    fd_ = -1;
    return e;
  }
  peer_addr_.assign(reinterpret_cast<uint8_t*>(&peer), reinterpret_cast<uint8_t*>(&peer) + sizeof peer);
  counter_ = realtime_ns();  // grows across restarts: the peer's replay check holds
  instance_ = counter_;
  was_standby_ = dp.ha_standby.load();
  // The peer file (ha/reserve.h): what a takeover before the peer's first whole round may trust.
  // A node that starts active takes over nothing and sends rounds: the file goes first.
  proof_gone_ = !dp.sa_reserve || dp.sa_reserve->start_sync(was_standby_, peer_);
  s_.configured = true;
  s_.local = options.local;
  s_.peer = options.peer;
  s_.sa_margin = options.margin();
  lags_.assign(lag_samples, 0);
  uint64_t now = realtime_ns();
  next_refresh_ns_ = now + options.refresh_s * s;
  thread_ = std::thread([this] { run(); });
  medix::common::log(medix::common::LogLevel::notice, "medix-dp: HA sync on %s, peer %s, role %s",
                     options.local.c_str(), options.peer.c_str(), was_standby_ ? "standby" : "active");
  return std::nullopt;
}

void Sync::stop() {
  if (thread_.joinable()) {
    stopping_.store(true);
    thread_.join();
  }
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

void Sync::send(MessageType type, uint8_t flags, const SyncRecord* records, unsigned count, uint64_t sent_ns,
                uint32_t rate) {
  alignas(8) uint8_t buffer[max_datagram];
  WireHeader h{};
  h.magic = wire_magic;
  h.version = wire_version;
  h.type = uint8_t(type);
  h.role = uint8_t(dp_->ha_standby.load() ? WireRole::standby : WireRole::active);
  h.flags = flags;
  if (h.role == uint8_t(WireRole::active) && dp_->ha_draining.load()) h.flags |= flag_draining;
  h.counter = ++counter_;
  h.sent_ns = sent_ns;
  h.count = uint16_t(count);
  h.workers = uint16_t(dp_->workers.size());
  h.rate = rate;
  size_t len = encode(h, records, key_, buffer);
  // A full socket buffer loses the datagram (as the link would): the peer's resync heals.
  ssize_t sent =
      sendto(fd_, buffer, len, 0, reinterpret_cast<const sockaddr*>(peer_addr_.data()), socklen_t(peer_addr_.size()));
  std::lock_guard lock(mutex_);
  if (sent == ssize_t(len)) {
    s_.datagrams_sent++;
    s_.records_sent += count;
    s_.bytes_sent += len;
  }
}

void Sync::flush(uint8_t flags, uint64_t sent_ns) {
  // The records' tenant tables go first: they were taken from the workers before this reads
  // the table, so none is newer than the one the peer has by then.
  send_tenants(sent_ns, false);
  for (size_t at = 0; at < pending_.size(); at += records_per_datagram) {
    auto n = unsigned(std::min(records_per_datagram, pending_.size() - at));
    uint8_t f = flags;
    if (at + n < pending_.size()) f &= uint8_t(~flag_bulk_end);  // the end marks the last one only
    send(MessageType::records, f, pending_.data() + at, n, sent_ns);
  }
  pending_.clear();
}

void Sync::drain_workers(uint64_t now_ns) {
  bool standby = dp_->ha_standby.load();
  SyncRecord batch[256];
  for (auto* w : dp_->workers) {
    unsigned n;
    while ((n = rte_ring_sc_dequeue_burst_elem(w->sync->out, batch, sizeof(SyncRecord), 256, nullptr)) > 0) {
      if (standby) continue;  // the standby's own sessions (ended ones it installed) go nowhere
      pending_.insert(pending_.end(), batch, batch + n);
    }
  }
  if (!pending_.empty()) flush(0, now_ns);
}

void Sync::start_bulk(bool resync, uint64_t now_ns) {
  bulk_active_ = true;
  bulk_is_resync_ = resync;
  bulk_queue_ = 0;
  bulk_index_ = 0;
  bulk_last_ns_ = now_ns;
  bulk_budget_ = double(records_per_datagram);
}

void Sync::bulk_step(uint64_t now_ns) {
  double rate =
      double(bulk_is_resync_ && peer_asked_rate_ ? std::min(peer_asked_rate_, options_.bulk_rate) : options_.bulk_rate);
  bulk_budget_ = std::min<double>(bulk_budget_ + rate * double(now_ns - bulk_last_ns_) / 1e9, rate / 100);
  bulk_last_ns_ = now_ns;
  if (bulk_budget_ < double(records_per_datagram)) return;
  size_t want = size_t(bulk_budget_);
  bool done = false;
  uint64_t hz = dp_->tsc_hz;
  dp_->controller.read([&](auto&, auto& c, uint64_t) {
    const Tables& t = *c.current();
    if (!t.nat) {
      done = true;
      return;
    }
    uint64_t tsc = rte_rdtsc();
    uint32_t scanned = 0;
    while (bulk_queue_ < t.workers && pending_.size() < want && scanned < 262144) {
      const NatWorker& nw = *t.nat[bulk_queue_];
      if (bulk_index_ >= nw.capacity) {
        bulk_queue_++;
        bulk_index_ = 0;
        continue;
      }
      const Session& session = nw.sessions[bulk_index_++];
      scanned++;
      // Read as the API lists sessions: one changing under us is left out (its own record
      // tells the standby).
      uint32_t before = session.seq.load(std::memory_order_acquire);
      if ((before & 1) || !session.live) continue;
      SyncRecord r = session_record(t, nw, session, bulk_queue_, tsc, hz);
      std::atomic_thread_fence(std::memory_order_acquire);
      if (session.seq.load(std::memory_order_relaxed) != before) continue;
      pending_.push_back(r);
    }
    done = bulk_queue_ >= t.workers;
  });
  bulk_budget_ -= double(pending_.size());
  uint8_t flags = flag_bulk;
  if (done && bulk_is_resync_) flags |= flag_bulk_end;
  if (done && pending_.empty() && bulk_is_resync_) {
    send(MessageType::records, flags, nullptr, 0, now_ns);  // nothing left: the end alone
  } else {
    flush(flags, now_ns);
  }
  if (done) {
    bulk_active_ = false;
    std::lock_guard lock(mutex_);
    s_.bulk_passes_sent++;
  }
}

void Sync::send_sas() {
  std::vector<SyncRecord> records;
  std::vector<SaValue> values;  // the round's outbound values, kept for the standby's ack
  dp_->controller.read([&](auto&, auto& c, uint64_t) {
    const Tables& t = *c.current();
    if (!t.sas) return;
    // Once a standby acked: an SA made since has the fence of 0 now, not at the next ack.
    if (fenced_) fence_new_sas(t.sas, max_sas, options_.margin());
    for (uint32_t slot = 1; slot < max_sas; slot++) {
      const SaState* sa = t.sas[slot];
      if (!sa) continue;
      SyncRecord r = round_record(*sa, floor_of(floors_, slot, *sa));
      records.push_back(r);
      if (!sa->inbound) values.push_back({uint16_t(slot), name_of(*sa), r.sa.value});
    }
  });
  {
    std::lock_guard lock(mutex_);
    s_.sas_synced = records.size();
  }
  // One round, back to back (nothing else is sent between): its first and last flagged.
  for (size_t at = 0; at < records.size(); at += records_per_datagram) {
    size_t n = std::min(records_per_datagram, records.size() - at);
    uint8_t flags = uint8_t((at == 0 ? flag_sa_first : 0) | (at + n == records.size() ? flag_sa_last : 0));
    send(MessageType::records, flags, records.data() + at, unsigned(n), realtime_ns());
  }
  if (!records.empty()) rounds_.sent(counter_, std::move(values));
}

// Standby: a round came whole. Acked unless this node has sent on one of its outbound SAs and
// is past the active's value (it was active in a split brain): the active's fence must then not move
// into what this node used. This node tells its numbers instead (past_records): the active goes
// on above them, and its next round is acked.
void Sync::ack_round(uint64_t now_ns) {
  std::vector<SyncRecord> past;
  bool ahead = dp_->controller.read([&](auto&, auto& c, uint64_t) {
    const Tables& t = *c.current();
    if (t.sas) past = past_records(t.sas, max_sas, tracker_.outbound());
    return !past.empty();
  });
  // With numbers on disk (ha/reserve.h): before the ack lets the active's fence reach value +
  // margin - 1, this node's marks are at least value + margin, so that after a restart it
  // starts above the fence. Not written: not acked (the active stays at its fence).
  if (!ahead && dp_->sa_reserve) {
    std::vector<std::pair<SeqKey, uint64_t>> floors;
    for (const auto& [name, value] : tracker_.outbound())
      if (name.tunnel && !name.inbound) floors.push_back({{name.tunnel, name.spi}, value + options_.margin()});
    if (!dp_->sa_reserve->cover(nullptr, 0, floors, now_ns)) ahead = true;
    // And what this ack bounds, while the peer shows every SA fenced (the peer file): a restart
    // of this node before its next round keeps it.
    if (!ahead && !dp_->sa_reserve->prove(floors, tracker_.fenced(), now_ns)) ahead = true;
  }
  {
    std::lock_guard lock(mutex_);
    (ahead ? s_.sa_acks_withheld : s_.sa_acks_sent)++;
  }
  if (!ahead)
    send_hello(now_ns, tracker_.last());
  else if (!past.empty())
    send_hello(now_ns, 0, past);  // the active goes on above these numbers, then this node acks
}

// Active: a standby's numbers past this node's (it sent on those SAs while active in a split
// brain): each SA goes on above them (its owner applies it as a takeover's advance).
void Sync::take_past() {
  std::vector<SyncRecord> past;
  {
    std::lock_guard lock(mutex_);
    past.swap(past_);
  }
  if (past.empty()) return;
  std::vector<TakeoverRecord> advances;
  unsigned raised = dp_->controller.read([&](auto&, auto& c, uint64_t) {
    const Tables& t = *c.current();
    return t.sas ? raise_past(t.sas, max_sas, past, advances) : 0u;
  });
  if (!raised) return;
  // Numbers on disk: written before the workers go on from them.
  if (dp_->sa_reserve) {
    std::vector<std::pair<SeqKey, uint64_t>> starts;
    dp_->controller.read([&](auto&, auto& c, uint64_t) {
      const Tables& t = *c.current();
      for (const auto& [owner, r] : advances)
        if (t.sas && t.sas[r.sa.slot]) starts.push_back({{t.sas[r.sa.slot]->tunnel_id, r.sa.spi}, r.sa.value});
    });
    dp_->sa_reserve->cover(nullptr, 0, starts, realtime_ns());
  }
  for (auto& [owner, r] : advances)
    if (owner < dp_->workers.size()) push_in(dp_->workers[owner]->sync->in, r);
  {
    std::lock_guard lock(mutex_);
    s_.sas_raised += raised;
  }
  medix::common::log(medix::common::LogLevel::notice,
                     "medix-dp: HA: %u outbound SAs go on above the numbers the standby sent on them (it was "
                     "active in a split brain)",
                     raised);
}

// Active: the standby took a round whole; every outbound SA's fence follows it.
void Sync::take_ack() {
  uint64_t ack;
  {
    std::lock_guard lock(mutex_);
    ack = ack_pending_;
    ack_pending_ = 0;
  }
  const std::vector<SaValue>* round = ack ? rounds_.acked(ack) : nullptr;
  if (!round) return;  // older than the rounds kept: the next ack will do
  dp_->controller.read([&](auto&, auto& c, uint64_t) {
    const Tables& t = *c.current();
    if (t.sas) apply_fences(t.sas, max_sas, *round, options_.margin());
  });
  if (!fenced_)
    medix::common::log(medix::common::LogLevel::info,
                       "medix-dp: HA: the standby acknowledges SA state: outbound SAs fenced at its value + %lu",
                       (unsigned long)(options_.margin() - 1));
  fenced_ = true;
}

void Sync::send_hello(uint64_t now_ns, uint64_t ack, const std::vector<SyncRecord>& past) {
  SyncRecord records[records_per_datagram]{};
  records[0].kind = uint8_t(SyncKind::config);
  ConfigDigest digest = dp_->controller.read([](const Intent& intent, auto&, uint64_t) { return intent.digest(); });
  records[0].config.digest[0] = digest.lanes[0];
  records[0].config.digest[1] = digest.lanes[1];
  records[0].config.objects = digest.objects;
  unsigned n = 1;
  if (ack) {
    records[n].kind = uint8_t(SyncKind::sa_ack);
    records[n++].sa.value = ack;
  }
  for (const auto& r : past) {
    if (n == records_per_datagram) break;  // the rest at the next round
    records[n++] = r;
  }
  send(MessageType::hello, 0, records, n, now_ns);
}

void Sync::send_tenants(uint64_t now_ns, bool always) {
  std::vector<SyncRecord> records;
  dp_->controller.read([&](auto&, auto& c, uint64_t) {
    const Tables& t = *c.current();
    if (always || !tenants_sent_ || t.tenant_epoch != tenants_sent_epoch_) {
      records = tenant_records(t, instance_);
      tenants_sent_epoch_ = t.tenant_epoch;
    }
  });
  if (records.empty()) return;
  tenants_sent_ = true;
  for (size_t at = 0; at < records.size(); at += records_per_datagram)
    send(MessageType::tenants, 0, records.data() + at, unsigned(std::min(records_per_datagram, records.size() - at)),
         now_ns);
}

bool Sync::to_own_tenants(SyncRecord& r) {
  switch (tenants_.translate(r)) {
    case TenantMap::Result::ok: return true;
    case TenantMap::Result::table_unknown: s_.tenant_table_unknown++; return false;
    case TenantMap::Result::tenant_unknown: s_.tenant_unknown++; return false;
  }
  return false;
}

std::optional<uint64_t> Sync::peer_sa_start(uint64_t tunnel, uint32_t spi) const {
  // Read under the controller's lock (the commit's): a takeover's scan of the SAs (takeover(),
  // under it too) comes after this SA is published if this sees the node standby, so one of the
  // two starts it; both may (the node became active in between): the same start, or the higher.
  if (dp_->ha_standby.load()) return 0;
  std::lock_guard lock(mutex_);
  return ha::peer_sa_start(peer_, {tunnel, spi, false}, options_.margin());
}

void Sync::takeover() {
  PeerSas peer;
  {
    std::lock_guard lock(mutex_);
    peer = peer_;
  }
  uint64_t margin = options_.margin();
  std::vector<TakeoverRecord> advances;
  std::vector<std::pair<SeqKey, uint64_t>> starts;
  unsigned stopped = dp_->controller.read([&](auto&, auto& c, uint64_t) {
    const Tables& t = *c.current();
    if (!t.sas) return 0u;
    unsigned n = take_over(t.sas, max_sas, peer, margin, advances, floors_);
    for (uint32_t slot = 1; slot < floors_.size() && slot < max_sas; slot++)
      if (floors_[slot].value && t.sas[slot] && !t.sas[slot]->inbound)
        starts.push_back({{t.sas[slot]->tunnel_id, t.sas[slot]->spi}, floors_[slot].value});
    return n;
  });
  // Numbers on disk: the new starts written before the workers apply them, so that the SAs do
  // not wait for a block (if the write fails they wait, and send nothing unwritten).
  if (dp_->sa_reserve && !starts.empty()) dp_->sa_reserve->cover(nullptr, 0, starts, realtime_ns());
  // Active now: the peer file proves nothing from here on, and goes before the first round.
  proof_gone_ = !dp_->sa_reserve || dp_->sa_reserve->unprove();
  for (auto& [owner, r] : advances)
    if (owner < dp_->workers.size()) push_in(dp_->workers[owner]->sync->in, r);
  medix::common::log(medix::common::LogLevel::notice,
                     "medix-dp: HA: now active: %zu SAs advanced (outbound by %lu sequence numbers)", advances.size(),
                     (unsigned long)margin);
  unsigned proven = 0;
  for (const auto& f : floors_) proven += f.value && peer.proven.count(f.name);
  {
    std::lock_guard lock(mutex_);
    s_.peer_file_used += proven;
  }
  if (proven)
    medix::common::log(medix::common::LogLevel::notice,
                       "medix-dp: HA: %u outbound SAs started above the peer's bound in the state dir (this node's "
                       "acks fenced the peer before its restart)",
                       proven);
  if (stopped) {
    {
      std::lock_guard lock(mutex_);
      s_.sas_stopped += stopped;
    }
    medix::common::log(medix::common::LogLevel::warning,
                       "medix-dp: HA: %u outbound SAs fenced where they are (what the peer sent on them cannot "
                       "be bounded: no round since this node's start or since it was last active, or no fence on "
                       "the peer): rekeyed at their next packet",
                       stopped);
  }
}

// Stepping down: each worker ends the sessions it made as active (a chunk at a time); the
// resync that brings the active's is asked for once all are done (forgetting()).
void Sync::forget() {
  SyncRecord r{};
  r.kind = uint8_t(SyncKind::forget);
  forgets_wanted_ = 0;
  for (auto* w : dp_->workers) {
    forgets_wanted_ += load_counter(w->sync->forgets_done);
    if (push_in(w->sync->in, r)) forgets_wanted_++;
  }
  medix::common::log(medix::common::LogLevel::notice,
                     "medix-dp: HA: now standby: this node's sessions dropped, a resync from the active follows");
}

bool Sync::forgetting() const {
  uint64_t done = 0;
  for (const auto* w : dp_->workers) done += load_counter(w->sync->forgets_done);
  return done < forgets_wanted_;
}

// Active, from a draining peer: its new sessions only (not its ends: this node forwards the
// flows now, and its own timers end them; nor its SAs: this node advanced them at takeover).
void Sync::take_overlap(const Decoded& d) {
  for (unsigned i = 0; i < d.header.count; i++) {
    SyncRecord r = d.records[i];
    if (SyncKind(r.kind) != SyncKind::session) continue;
    r.kind = uint8_t(SyncKind::session_overlap);
    s_.overlap_received++;
    if (!to_own_tenants(r)) continue;
    if (r.queue >= dp_->workers.size())
      s_.unknown_worker++;
    else if (!push_in(dp_->workers[r.queue]->sync->in, r))
      s_.install_ring_full++;
  }
}

void Sync::handle(const Decoded& d, uint64_t now_ns, uint64_t previous_counter) {
  const WireHeader& h = d.header;
  bool standby = dp_->ha_standby.load();
  std::lock_guard lock(mutex_);
  s_.datagrams_received++;
  // The peer numbers its datagrams one by one: a gap is datagrams lost on the way (a restart
  // of the peer jumps by far more: not counted).
  uint64_t gap = previous_counter && h.counter > previous_counter + 1 ? h.counter - previous_counter - 1 : 0;
  if (gap && gap < 1000000) {
    s_.datagrams_lost += gap;
    if (standby && need_resync_ && resync_first_asked_ns_) resync_gap_ = true;
  }
  peer_heard_ns_ = now_ns;
  s_.peer_role = h.role;
  switch (MessageType(h.type)) {
    case MessageType::hello:
      for (unsigned i = 0; i < h.count; i++)
        if (SyncKind(d.records[i].kind) == SyncKind::config) {
          s_.peer_config.lanes[0] = d.records[i].config.digest[0];
          s_.peer_config.lanes[1] = d.records[i].config.digest[1];
          s_.peer_config.objects = d.records[i].config.objects;
          s_.peer_config_known = true;
        } else if (SyncKind(d.records[i].kind) == SyncKind::sa_ack && !standby &&
                   h.role == uint8_t(WireRole::standby)) {
          ack_pending_ = d.records[i].sa.value;
          s_.sa_acks_received++;
        } else if (SyncKind(d.records[i].kind) == SyncKind::sa_outbound && !standby &&
                   h.role == uint8_t(WireRole::standby) && past_.size() < max_sas) {
          past_.push_back(d.records[i]);
        }
      return;
    case MessageType::resync_request:
      if (!standby) {  // every session, from the first
        peer_asked_rate_ = h.rate;
        start_bulk(true, now_ns);
        tenants_sent_ = false;  // the table again first: the standby may have restarted
      }
      return;
    case MessageType::tenants: tenants_.take(d.records, h.count); return;
    case MessageType::records: break;
  }
  s_.records_received += h.count;
  if (h.flags & flag_bulk) bulk_heard_ns_ = now_ns;
  if (!standby) {
    // A planned switchover's overlap: the old active, draining, still makes sessions for
    // frames the switch sends it; the new active takes those it has no flow or port of.
    if (h.flags & flag_draining) {
      take_overlap(d);
      return;
    }
    s_.ignored_not_standby += h.count;  // two actives (split brain): neither takes the other's state
    return;
  }
  if (h.flags & (flag_sa_first | flag_sa_last) || (h.count && (SyncKind(d.records[0].kind) == SyncKind::sa_outbound ||
                                                               SyncKind(d.records[0].kind) == SyncKind::sa_inbound)))
    if (tracker_.take(h.counter, h.flags, d.records, h.count)) {
      round_to_ack_ = true;
      peer_.round(tracker_.fenced());
    }
  bool sessions = false;
  for (unsigned i = 0; i < h.count; i++) {
    const SyncRecord& r = d.records[i];
    switch (SyncKind(r.kind)) {
      case SyncKind::session:
      case SyncKind::session_end: {
        sessions = true;
        SyncRecord own = r;
        if (!to_own_tenants(own)) break;
        if (own.queue >= dp_->workers.size())
          s_.unknown_worker++;  // the active runs more workers: its sessions cannot be placed here
        else if (!push_in(dp_->workers[own.queue]->sync->in, own))
          s_.install_ring_full++;
        break;
      }
      case SyncKind::sa_outbound:
      case SyncKind::sa_inbound: peer_.take(r); break;
      default: break;
    }
  }
  s_.sas_synced = peer_.values.size();
  if (sessions && !(h.flags & flag_bulk) && now_ns >= h.sent_ns) {
    double lag = double(now_ns - h.sent_ns) / double(ms);
    lags_[lag_at_++ % lag_samples] = lag;
    s_.lag_samples++;
    s_.lag_ms_last = lag;
    s_.lag_ms_max = std::max(s_.lag_ms_max, lag);
  }
  if ((h.flags & flag_bulk_end) && resync_gap_) {
    // Records went missing: ask again, at half the rate (the next request goes out at once).
    resync_gap_ = false;
    s_.resyncs_incomplete++;
    resync_rate_ = std::max<uint32_t>(10000, (resync_rate_ ? resync_rate_ : options_.bulk_rate) / 2);
    resync_asked_ns_ = 0;
    medix::common::log(medix::common::LogLevel::warning,
                       "medix-dp: HA: resync from the active lost datagrams: asking again at %u records/s",
                       resync_rate_);
  } else if (h.flags & flag_bulk_end) {
    need_resync_ = false;
    s_.resyncs_completed++;
    if (resync_first_asked_ns_) s_.last_resync_ms = (now_ns - resync_first_asked_ns_) / ms;
    resync_first_asked_ns_ = 0;
    medix::common::log(medix::common::LogLevel::info, "medix-dp: HA: resync from the active complete in %lu ms",
                       (unsigned long)s_.last_resync_ms);
  }
}

void Sync::receive() {
  alignas(8) uint8_t buffer[2048];
  for (int i = 0; i < 1024; i++) {
    ssize_t n = recv(fd_, buffer, sizeof buffer, MSG_DONTWAIT);
    if (n < 0) return;
    Decoded d{};
    uint64_t previous = last_counter_;
    Reject why = decode(buffer, size_t(n), key_, last_counter_, d);
    uint64_t now = realtime_ns();
    if (why != Reject::none) {
      std::lock_guard lock(mutex_);
      (why == Reject::bad_mac  ? s_.rejected_bad_mac
       : why == Reject::replay ? s_.rejected_replay
                               : s_.rejected_malformed)++;
      continue;
    }
    // This node's tenants as they are now (read outside mutex_: a commit may ask peer_sa_start).
    dp_->controller.read([&](auto&, auto& c, uint64_t) { tenants_.own(*c.current()); });
    handle(d, now, previous);
  }
}

// Once a second: our intent against the peer's last digest. A mismatch is logged when it
// begins and ends, and counted; it is reported only while the peer is heard.
void Sync::check_config(uint64_t now_ns) {
  ConfigDigest ours = dp_->controller.read([](const Intent& intent, auto&, uint64_t) { return intent.digest(); });
  std::lock_guard lock(mutex_);
  s_.config = ours;
  bool heard = peer_heard_ns_ && now_ns - peer_heard_ns_ < peer_silence_ns;
  bool mismatch = heard && s_.peer_config_known && !(s_.peer_config == ours);
  if (mismatch && !s_.config_mismatch) {
    s_.config_mismatches++;
    mismatch_since_ns_ = now_ns;
    medix::common::log(medix::common::LogLevel::warning,
                       "medix-dp: HA: the peer's intent differs from ours (digest %s, %lu objects; ours %s, %lu "
                       "objects): apply the same config to both nodes",
                       s_.peer_config.hex().c_str(), (unsigned long)s_.peer_config.objects, ours.hex().c_str(),
                       (unsigned long)ours.objects);
  } else if (!mismatch && s_.config_mismatch) {
    medix::common::log(medix::common::LogLevel::notice, "medix-dp: HA: %s after %lu ms",
                       heard ? "the peer's intent is ours again" : "the peer is not heard: no intent to compare",
                       (unsigned long)((now_ns - mismatch_since_ns_) / ms));
    mismatch_since_ns_ = 0;
  }
  s_.config_mismatch = mismatch;
}

void Sync::run() {
  while (!stopping_.load()) {
    pollfd p{fd_, POLLIN, 0};
    poll(&p, 1, bulk_active_ ? 0 : 1);
    receive();
    uint64_t now = realtime_ns();
    bool standby = dp_->ha_standby.load();
    if (standby != was_standby_) {
      was_standby_ = standby;
      {
        std::lock_guard lock(mutex_);
        s_.role_changes++;
        if (standby) need_resync_ = true;  // a node that steps down takes the other's state anew
      }
      // No fence until a standby acks this node's rounds as active; a standby has none.
      dp_->controller.read([&](auto&, auto& c, uint64_t) {
        const Tables& t = *c.current();
        if (t.sas) clear_fences(t.sas, max_sas);
      });
      rounds_.clear();
      fenced_ = false;
      floors_.clear();
      bulk_active_ = false;  // a pass of the role before (a drain's hand-over) ends with it
      tracker_ = RoundTracker();
      {
        std::lock_guard lock(mutex_);
        ack_pending_ = 0;
        past_.clear();
        round_to_ack_ = false;
        if (standby) peer_.stepped_down();
      }
      if (standby)
        forget();
      else
        takeover();
    }
    bool to_ack;
    {
      std::lock_guard lock(mutex_);
      to_ack = round_to_ack_;
      round_to_ack_ = false;
    }
    if (standby && to_ack) ack_round(now);
    if (!standby) {
      take_past();
      take_ack();
    }
    drain_workers(now);
    bool heard;
    int peer_role;
    {
      std::lock_guard lock(mutex_);
      heard = peer_heard_ns_ && now - peer_heard_ns_ < peer_silence_ns;
      peer_role = s_.peer_role;
      if (!heard && standby) need_resync_ = true;  // the active went away: resync when it is back
    }
    if (!heard) {
      tenants_.forget_peer();  // it may come back restarted, its epochs anew
      tenants_sent_ = false;   // and it forgot ours: the table again before the next records
    }
    // Yielding (a split brain's heal, a planned switchover's old active): every session of this
    // node, in one pass flagged draining (send() adds it), so that the winner takes those that
    // clash with nothing of its own before this node forgets them (docs/ha.md, Part 3's heal).
    // Once the peer is heard since the drain began: at a heal the sync link may come back a
    // moment after the segments, and what is sent before is lost.
    bool draining = !standby && dp_->ha_draining.load();
    if (!draining) {
      drain_since_ns_ = 0;
      handed_over_ = false;
    } else if (!drain_since_ns_) {
      drain_since_ns_ = now;
    }
    bool peer_since_drain;
    {
      std::lock_guard lock(mutex_);
      peer_since_drain = draining && peer_heard_ns_ > drain_since_ns_;
    }
    if (peer_since_drain && !handed_over_) {
      handed_over_ = true;
      tenants_sent_ = false;  // the pass is sent once: the table ahead of it, whatever the peer kept
      start_bulk(false, now);
    }
    if (!standby) {
      // No round while the peer file still says this node's acks bound the peer: the peer
      // could take over from it unfenced, and a restart of this node would trust the file.
      if (!proof_gone_) proof_gone_ = dp_->sa_reserve->unprove();
      if (now >= next_sa_ns_ && proof_gone_) {
        send_sas();
        next_sa_ns_ = now + options_.sa_interval_ms * ms;
      }
      if (!bulk_active_ && now >= next_refresh_ns_) start_bulk(false, now);
      if (bulk_active_) {
        bulk_step(now);
        if (!bulk_active_ && !bulk_is_resync_) next_refresh_ns_ = now + options_.refresh_s * s;
      }
    } else if (need_resync_ && heard && peer_role == int(WireRole::active) && !forgetting() &&
               now - std::max(resync_asked_ns_, bulk_heard_ns_) >= resync_retry_ns) {
      // Asked again only when no bulk datagram came for a while: a request restarts the
      // active's pass from the first session.
      resync_asked_ns_ = now;
      {
        std::lock_guard lock(mutex_);
        if (!resync_first_asked_ns_) resync_first_asked_ns_ = now;
        s_.resyncs_requested++;
      }
      send(MessageType::resync_request, 0, nullptr, 0, now, resync_rate_);
    }
    if (now >= next_hello_ns_) {
      check_config(now);
      send_tenants(now, true);  // before the hello: a peer that hears it has the table
      send_hello(now, 0);
      next_hello_ns_ = now + s;
    }
  }
}

Status Sync::status() const {
  Status out;
  std::vector<double> lags;
  uint64_t heard;
  {
    std::lock_guard lock(mutex_);
    out = s_;
    lags.assign(lags_.begin(), lags_.begin() + std::min<size_t>(s_.lag_samples, lag_samples));
    heard = peer_heard_ns_;
    out.peer_file_in_force = peer_.proven.size();
  }
  if (!lags.empty()) {
    std::sort(lags.begin(), lags.end());
    out.lag_ms_p99 = lags[std::min(lags.size() - 1, lags.size() * 99 / 100)];
  }
  if (heard) out.peer_last_heard_ms = int64_t((realtime_ns() - heard) / ms);
  {
    std::lock_guard lock(mutex_);
    if (mismatch_since_ns_) out.config_mismatch_ms = int64_t((realtime_ns() - mismatch_since_ns_) / ms);
  }
  out.config = dp_->controller.read([](const Intent& intent, auto&, uint64_t) { return intent.digest(); });
  dp_->controller.read([&](auto&, auto& c, uint64_t) {
    const Tables& t = *c.current();
    if (!t.sas) return;
    for (uint32_t slot = 1; slot < max_sas; slot++) {
      const SaState* sa = t.sas[slot];
      if (!sa || sa->inbound) continue;
      uint64_t fence = __atomic_load_n(&sa->fence, __ATOMIC_RELAXED);
      if (fence == no_fence) continue;
      out.sas_fenced++;
      if (__atomic_load_n(&sa->seq, __ATOMIC_RELAXED) >= fence) out.sas_at_fence++;
    }
  });
  out.standby = dp_->ha_standby.load();
  out.sessions = live_sessions(*dp_);
  for (const auto* w : dp_->workers) {
    out.ring_full += load_counter(w->sync->ring_full);
    out.installed += load_counter(w->sync->installed);
    out.refreshed += load_counter(w->sync->refreshed);
    out.removed += load_counter(w->sync->removed);
    out.install_failed += load_counter(w->sync->install_failed);
    out.sas_advanced += load_counter(w->sync->sas_advanced);
  }
  return out;
}

}  // namespace medix::dp::ha
