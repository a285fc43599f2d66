#pragma once
// The fence (docs/ha.md, "The fence"): how far an active may send on an outbound SA so that a
// standby taking over, which starts at the value it holds plus the margin, never sends a
// sequence number this node sent under the same key. The standby acknowledges each round of SA
// datagrams it took whole; the active keeps what its recent rounds said and, on an ack, sets
// each outbound SA's fence to the value the acked round gave it + margin - 1. The workers read
// the fence as they read the SA (ipsec/esp.cpp). Plain logic, no thread or socket: the sync
// thread calls it, and the unit tests do.
#include <compare>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "ipsec/sa.h"
#include "nat/sync.h"

namespace medix::dp::ha {

inline constexpr uint64_t no_fence = UINT64_MAX;

// An SA as both nodes name it: its tunnel (SaState::tunnel_id), SPI and direction. Not the SPI
// alone: an outbound SPI is chosen by the remote peer, so two carriers' tunnels may share one.
struct SaName {
  uint64_t tunnel;
  uint32_t spi;
  bool inbound;
  auto operator<=>(const SaName&) const = default;
};
SaName name_of(const SaState& sa);
SaName name_of(const SyncRecord& r);  // sa_outbound, sa_inbound

// SA values by name: the standby's latest from the active's rounds, or one round's.
using SaValues = std::map<SaName, uint64_t>;
// The value held for an SA: by its name, or, from a peer of a build that sent no tunnel (0), by
// SPI and direction alone. Null when none.
const uint64_t* held_for(const SaValues& held, const SaState& sa);

// Active: an SA's state as a round sends it (the record for the standby): its value, and for an
// outbound SA whether it has a fence; `floor`, its start at this node's takeover (the worker
// may not have applied it yet: the round never says less).
SyncRecord round_record(const SaState& sa, uint64_t floor);

// A takeover's start of each outbound SA it advanced, by slot, with the SA's name: a slot freed
// and taken by a new SA (a CHILD_SA rekeyed since) is not the SA that start was for.
struct SaFloor {
  SaName name{};
  uint64_t value = 0;
};
using SaFloors = std::vector<SaFloor>;
// The floor of the SA now in `slot` (round_record's): 0 unless the takeover advanced this SA.
uint64_t floor_of(const SaFloors& floors, uint32_t slot, const SaState& sa);

// Standby: what it holds of the active's SAs, for a takeover.
struct PeerSas {
  SaValues values;            // each SA's latest value (any SA datagram)
  std::set<SaName> unfenced;  // outbound SAs whose latest value came without a fence on the active
  // The last whole round: it had outbound SAs and all had a fence (the active then fences an SA
  // it makes at margin - 1 before its next round); false until a whole round came since this
  // node's start (a fresh node cannot tell whether its peer had a fence). `heard`: a whole round
  // came since this node was last active (true from its start: a node that starts has sent nothing).
  bool fenced = false, heard = true;
  // From this node's state dir (ha/reserve.h, the peer file), until a whole round comes: it was a
  // standby whose acks fenced the peer, not active since, so the peer sends on each outbound SA
  // named here below its start (by name, tunnel and SPI; outbound). Cleared for good by a value
  // that says sa_unfenced: the peer then sent on an SA no ack of this node's bounds, and may have
  // on any other (a later value with a fence, e.g. an SA added again and fenced where it is, does
  // not bound what it sent before).
  SaValues proven;
  void take(const SyncRecord& r);  // sa_outbound, sa_inbound
  void round(bool all_fenced);     // a whole round came
  void stepped_down() {            // this node was active: what the next one sends is unknown
    heard = false;
    proven.clear();
  }
};

// An outbound SA as a round of SA datagrams gave it (the active's own slots), with its name: a
// slot freed and taken by another tunnel's SA of the same SPI before the ack is not this SA.
struct SaValue {
  uint16_t slot;
  SaName name;
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
  const SaValues& outbound() const { return complete_; }
  // That round had outbound SAs and every one had a fence.
  bool fenced() const { return fenced_; }

 private:
  bool open_ = false, fenced_ = false;
  uint64_t next_ = 0, last_ = 0;
  unsigned unfenced_ = 0;
  SaValues collecting_, complete_;
};

// A record the owner worker of an SA applies (sa_takeover).
struct TakeoverRecord {
  uint16_t owner;
  SyncRecord record;
};

// Active, on an ack of `round`: each outbound SA of sas[1, slots) gets the fence of its value in
// the round (matched by slot and name), or of 0 when it is not in it (made since: the standby
// holds nothing of it, and a takeover starts such an SA at the margin). Fences only rise.
// Returns the SAs fenced.
unsigned apply_fences(SaState* const* sas, uint32_t slots, const std::vector<SaValue>& round, uint64_t margin);
// Active, once fenced: an outbound SA made since the last ack gets the fence of 0 at once.
unsigned fence_new_sas(SaState* const* sas, uint32_t slots, uint64_t margin);
// A role change: no fence until a standby acknowledges this node's rounds.
void clear_fences(SaState* const* sas, uint32_t slots);
// Standby, before it acks a round (its outbound SAs' values): whether this node has sent on one
// of them and is past the round's value (it was active in a split brain). Then it must not ack:
// the active's fence would move into numbers this node used. An SA only advanced at a takeover,
// never sent on here, used nothing; one started from a mark on disk counts as sent up to it (the
// node's previous run may have: an active fenced where it is would otherwise go on below it).
bool sent_past(SaState* const* sas, uint32_t slots, const SaValues& round);
// Standby, its ack withheld: each outbound SA it sent on past the round's value, with its own
// number (an sa_outbound record), so that the active goes on above the numbers this node used.
std::vector<SyncRecord> past_records(SaState* const* sas, uint32_t slots, const SaValues& round);
// Active, from a standby's past_records: each of its outbound SAs behind the standby's number is
// advanced to it (owner, sa_takeover), as at a takeover. Its next round then says at least the
// standby's number, the standby acks it again and the fence moves on: the split's two ranges of
// numbers stay behind both. Returns the SAs advanced.
unsigned raise_past(SaState* const* sas, uint32_t slots, const std::vector<SyncRecord>& past,
                    std::vector<TakeoverRecord>& records);

// Standby to active, for each SA of sas[1, slots): the records its owner worker applies
// (owner, sa_takeover). Inbound: the window closed at the value held. Outbound: advanced to
// held + margin (an SA not held: the margin, as the active fenced it at margin - 1), or, when
// what the peer sends on it cannot be bounded, fenced where it is: it sends no more, and its
// next packet's SA event makes medix-cp rekey it. Unbounded: no whole round from the peer since
// this node was last active (a chain of takeovers with none between them); the latest value held
// came without a fence (the peer had no ack yet); an SA not held unless the last whole round
// showed the peer fenced (none since this node's start: a fresh node cannot tell). floors[slot]
// gets each outbound start. Before a whole round since this node's start, an SA the peer file
// proved bounded starts at its start there (PeerSas::proven; none once the peer showed an SA
// without a fence). Returns the SAs fenced where they are.
unsigned take_over(SaState* const* sas, uint32_t slots, const PeerSas& peer, uint64_t margin,
                   std::vector<TakeoverRecord>& records, SaFloors& floors);

// Active, an outbound SA the pair's other node negotiated (SA_ORIGIN_PEER: its CHILD_SA, synced
// by IKE) added here: the peer may have sent on it, so it starts as take_over would have started
// it had this node held it at its takeover: held + margin, or the margin when not held; none when
// what the peer sends on it cannot be bounded (take_over's rules): it is then fenced where it is.
std::optional<uint64_t> peer_sa_start(const PeerSas& peer, const SaName& name, uint64_t margin);

}  // namespace medix::dp::ha
