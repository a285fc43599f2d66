#pragma once
// Outbound sequence numbers reserved on disk (docs/ha.md, "Sequence numbers that outlive a
// restart"): a node writes, a block ahead, the highest sequence number it may send on each
// outbound SA into a state file (`--state-dir DIR`: DIR/sa-seq), and an SA made when it starts
// begins at the number written. So neither a restart nor a fresh node's takeover sends a
// number (and, under AES-GCM, a nonce) again under a key that outlives them (a static SA).
// The workers only compare: an SA's next number past what is on disk is dropped
// (`sa_seq_unreserved`) until the next block is. A thread of its own writes: it reads each SA's
// number every millisecond and writes the next block once the SA has used half of its own.
// A standby also writes, before it acknowledges a round of the active's values, each SA's value
// plus the margin: the active's fence stays below where this node starts after a restart.
// And, while its acks fence the active and it has not been active since, what those acks bound
// (DIR/ha-peer): a restart does not lose that the peer is bounded (docs/ha.md, "A restart that
// keeps the bound").
#include <atomic>
#include <compare>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "ha/fence.h"
#include "ipsec/sa.h"

namespace medix::dp {

struct Dataplane;

namespace ha {

// An outbound SA as the file names it: its tunnel (SaState::tunnel_id) and SPI.
struct SeqKey {
  uint64_t tunnel;
  uint32_t spi;
  auto operator<=>(const SeqKey&) const = default;
};
// Each SA's mark: the number a fresh start of it begins at (it sends the next one).
using SeqMarks = std::map<SeqKey, uint64_t>;

// The file: a first line "medix-dp sa-seq 1", then "TUNNEL SPI MARK" (hex, decimal, decimal)
// a line. A missing file is empty; anything else unreadable is an error naming the file and
// line (a node must not start its SAs at 0 by mistake).
std::optional<std::string> read_seq_file(const std::string& path, SeqMarks& out);
// Written whole to PATH.tmp, synced, renamed over PATH, the folder synced: durable when it
// returns nothing. The error names the file and the system's reason.
std::optional<std::string> write_seq_file(const std::string& path, const SeqMarks& marks);

// The peer file (DIR/ha-peer): a first line "medix-dp ha-peer 1", then "TUNNEL SPI START" a
// line: the peer's outbound SA cannot send past START - 1 (this node's acks fence it there).
// Present only while this node is a standby whose acks fence the peer and it has not been
// active since. Missing: empty; anything else unreadable is an error naming the file and line.
std::optional<std::string> read_peer_file(const std::string& path, SeqMarks& out);
std::optional<std::string> write_peer_file(const std::string& path, const SeqMarks& starts);

struct ReserveStatus {
  bool configured = false;
  std::string file;
  uint64_t block = 0;
  uint64_t sas = 0;          // outbound SAs under reservation
  uint64_t sas_waiting = 0;  // of those, at their reserved number (dropping until the next block is written)
  uint64_t writes = 0, write_failures = 0;
  std::string error;        // the last write's failure, while writes fail ("" once one succeeds)
  int64_t failing_ms = -1;  // how long writes have failed; -1: they do not
  // The peer file (DIR/ha-peer): as found at the start, and now.
  std::string peer_file;
  bool peer_found = false;
  uint64_t peer_found_sas = 0;  // the outbound SAs it named then
  bool peer_on_disk = false;
  uint64_t peer_sas = 0;         // the outbound SAs it names now
  int64_t peer_written_ms = -1;  // since this node last wrote it; -1: not since its start
};

class Reserve {
 public:
  ~Reserve() { stop(); }
  // Reads DIR/sa-seq; an error names the option or the file.
  std::optional<std::string> open(const std::string& dir, uint64_t block);
  bool configured() const { return !path_.empty(); }
  uint64_t block() const { return block_; }
  // The committer, for a new outbound SA: where its numbers start (0: never written).
  uint64_t start_of(uint64_t tunnel, uint32_t spi) const;
  // One pass over sas[1, slots): each outbound SA under reservation with less than half a block
  // left gets its mark raised to its number + a block, all in one write; then every SA's
  // reservation is what the file holds. The thread calls it every millisecond (tests do).
  void pass(SaState* const* sas, uint32_t slots, uint64_t now_ns);
  // Each (SA, number) made durable as a mark of at least that number (a block above, so that the
  // next rounds need no write), then published to sas. False when the file could not be
  // written: the caller must not act as if they were (the standby withholds its ack).
  bool cover(SaState* const* sas, uint32_t slots, const std::vector<std::pair<SeqKey, uint64_t>>& floors,
             uint64_t now_ns);
  ReserveStatus status(uint64_t now_ns = 0) const;  // 0: now

  // HA sync starts, in this node's role. A standby may start each SA the file (as found at the
  // start) names from it at a takeover before a whole round of the peer's: peer.proven gets them.
  // A node that starts active takes over nothing, and sends rounds from which the peer may take
  // over unfenced: it takes nothing from the file and removes it (unprove), so that no later
  // restart trusts it. False while that failed: the caller sends no round until it is removed.
  bool start_sync(bool standby, PeerSas& peer);
  // Standby, before it acks a whole round (each outbound SA's value + margin in `starts`, the
  // peer's SAs all fenced or not): a fenced round's starts are made durable in the peer file (a
  // block above: the next rounds need no write); an unfenced one removes the file (the peer
  // sends on an SA no ack of this node's bounds). False when that failed: no ack.
  bool prove(const std::vector<std::pair<SeqKey, uint64_t>>& starts, bool fenced, uint64_t now_ns);
  // This node becomes active: it sends rounds from which the peer may take over unfenced, so
  // nothing proves the peer bounded any more. The file removed, durably; false when it could not
  // be (the caller sends no round until it is).
  bool unprove();

  // The thread, after a first pass (the config's SAs get their first block before the node is
  // ready); an error says why it could not start.
  std::optional<std::string> start(Dataplane& dp);
  void stop();

 private:
  // pass() in three steps, so that the controller's lock (the SA table) is not held while the
  // file is synced: what to raise (and the SAs live), the write, each SA's reservation.
  SeqMarks plan(SaState* const* sas, uint32_t slots, std::vector<SeqKey>& live);
  bool raise(const SeqMarks& wants, const std::vector<SeqKey>* live, uint64_t now_ns);
  void publish(SaState* const* sas, uint32_t slots) const;

  std::string path_;
  uint64_t block_ = 0;
  std::mutex write_mutex_;  // one write at a time: marks_ changes only under it
  mutable std::mutex mutex_;
  SeqMarks marks_;  // what the file holds
  std::string peer_path_;
  SeqMarks peer_, proven_at_start_;  // what the peer file holds; what it held at open()
  bool peer_on_disk_ = false, peer_found_ = false;
  uint64_t peer_written_ns_ = 0;  // 0: not written since the start
  // A write's outcome, under mutex_: counted, said once when failures begin and when they end.
  void failed(const std::string& error, const char* effect, uint64_t now_ns);
  void succeeded(uint64_t now_ns);
  ReserveStatus s_;
  uint64_t failing_since_ns_ = 0, retry_ns_ = 0;
  std::thread thread_;
  std::atomic<bool> stopping_{false};
};

}  // namespace ha
}  // namespace medix::dp
