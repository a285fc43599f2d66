#pragma once
// The fence (docs/ha.md, "The fence"): how far an active may send on an outbound SA so that a
// standby taking over, which starts at the value it holds plus the margin, never sends a
// sequence number this node sent under the same key. The standby acknowledges each round of SA
// datagrams it took whole; the active keeps what its recent rounds said and, on an ack, sets
// each outbound SA's fence to the value the acked round gave it + margin - 1. The workers read
// the fence as they read the SA (ipsec/esp.cpp). Plain logic, no thread or socket: the sync
// thread calls it, and the unit tests do.
#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "ipsec/sa.h"
#include "nat/sync.h"

namespace medix::dp::ha {

inline constexpr uint64_t no_fence = UINT64_MAX;

// An outbound SA as a round of SA datagrams gave it.
struct SaValue {
  uint16_t slot;
  uint32_t spi;
  uint64_t value;
};

// Active: its last rounds, by the counter of each round's last datagram.
class SentRounds {
 public:
  void sent(uint64_t last_counter, std::vector<SaValue> values);
  // The round an ack names; null when it is older than those kept, or unknown.
  const std::vector<SaValue>* acked(uint64_t counter) const;
  void clear() { rounds_.clear(); }

 private:
  static constexpr size_t kept = 64;  // 6.4 s at 100 ms
  std::deque<std::pair<uint64_t, std::vector<SaValue>>> rounds_;
};

// Standby: whether every datagram of a round came (the first flagged sa_first, the last
// sa_last, their counters consecutive: the active sends a round back to back).
class RoundTracker {
 public:
  // A records datagram; true when it ends a round that came whole (then last() and
  // outbound() are that round's).
  bool take(uint64_t counter, uint8_t flags, const SyncRecord* records, unsigned count);
  uint64_t last() const { return last_; }
  const std::vector<std::pair<uint32_t, uint64_t>>& outbound() const { return complete_; }  // (spi, value)

 private:
  bool open_ = false;
  uint64_t next_ = 0, last_ = 0;
  std::vector<std::pair<uint32_t, uint64_t>> collecting_, complete_;
};

// Active, on an ack of `round`: each outbound SA of sas[1, slots) gets the fence of its value in
// the round, or of 0 when it is not in it (made since: the standby holds nothing of it, and a
// takeover starts such an SA at the margin). Fences only rise. Returns the SAs fenced.
unsigned apply_fences(SaState* const* sas, uint32_t slots, const std::vector<SaValue>& round, uint64_t margin);
// Active, once fenced: an outbound SA made since the last ack gets the fence of 0 at once.
unsigned fence_new_sas(SaState* const* sas, uint32_t slots, uint64_t margin);
// A role change: no fence until a standby acknowledges this node's rounds.
void clear_fences(SaState* const* sas, uint32_t slots);
// Standby, before it acks a round ((spi, value) of its outbound SAs): whether this node has sent
// on one of them and is past the round's value (it was active in a split brain). Then it must not
// ack: the active's fence would move into numbers this node used. An SA only advanced at a
// takeover, never sent on here, used nothing.
bool sent_past(SaState* const* sas, uint32_t slots, const std::vector<std::pair<uint32_t, uint64_t>>& round);

}  // namespace medix::dp::ha
