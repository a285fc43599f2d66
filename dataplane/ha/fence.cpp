// The fence's bookkeeping: the active's recent rounds, the standby's round check, the fences.
#include "ha/fence.h"

#include <algorithm>

#include "ha/wire.h"
#include "infra/worker.h"

namespace medix::dp::ha {

namespace {

uint64_t fence_of(uint64_t acked, uint64_t margin) { return acked + margin - 1; }

void raise_fence(SaState& sa, uint64_t fence) {
  uint64_t now = __atomic_load_n(&sa.fence, __ATOMIC_RELAXED);
  if (now == no_fence || fence > now) __atomic_store_n(&sa.fence, fence, __ATOMIC_RELAXED);
}

}  // namespace

SaName name_of(const SaState& sa) { return {sa.tunnel_id, sa.spi, sa.inbound}; }
SaName name_of(const SyncRecord& r) { return {r.sa.tunnel, r.sa.spi, r.sa.inbound != 0}; }

const uint64_t* held_for(const SaValues& held, const SaState& sa) {
  auto it = held.find(name_of(sa));
  if (it == held.end()) it = held.find({0, sa.spi, sa.inbound});
  return it == held.end() ? nullptr : &it->second;
}

SyncRecord round_record(const SaState& sa, uint64_t floor) {
  SyncRecord r{};
  r.kind = uint8_t(sa.inbound ? SyncKind::sa_inbound : SyncKind::sa_outbound);
  r.queue = sa.owner;
  r.sa.spi = sa.spi;
  r.sa.inbound = sa.inbound;
  r.sa.tunnel = sa.tunnel_id;
  if (!sa.inbound && __atomic_load_n(&sa.fence, __ATOMIC_RELAXED) == no_fence) r.sa.flags = sa_unfenced;
  // Written by the owner worker alone; a whole 64-bit value is read.
  r.sa.value = sa.inbound ? __atomic_load_n(&sa.replay.top, __ATOMIC_RELAXED)
                          : std::max(__atomic_load_n(&sa.seq, __ATOMIC_RELAXED), floor);
  return r;
}

uint64_t floor_of(const SaFloors& floors, uint32_t slot, const SaState& sa) {
  // A stale start would make the round say more than the SA sent: a standby that sent on the
  // SA below it would ack, and this node's fence would move into the numbers it used.
  return slot < floors.size() && floors[slot].name == name_of(sa) ? floors[slot].value : 0;
}

void PeerSas::take(const SyncRecord& r) {
  SaName name = name_of(r);
  values[name] = r.sa.value;
  if (r.sa.flags & sa_unfenced) {
    unfenced.insert(name);
    proven.clear();  // for good: the peer is not bounded by this node's acks (fence.h)
  } else
    unfenced.erase(name);
}

void PeerSas::round(bool all_fenced) {
  fenced = all_fenced;
  heard = true;
  proven.clear();  // what the peer says now counts, not what it was
}

void SentRounds::sent(uint64_t last_counter, std::vector<SaValue> values) {
  rounds_.emplace_back(last_counter, std::move(values));
  if (rounds_.size() > kept) rounds_.pop_front();
}

const std::vector<SaValue>* SentRounds::acked(uint64_t counter) const {
  for (const auto& [last, values] : rounds_)
    if (last == counter) return &values;
  return nullptr;
}

bool RoundTracker::take(uint64_t counter, uint8_t flags, const SyncRecord* records, unsigned count) {
  if (flags & flag_sa_first) {
    open_ = true;
    collecting_.clear();
    unfenced_ = 0;
  } else if (!open_ || counter != next_) {
    open_ = false;  // a datagram of the round went missing: wait for the next round
    return false;
  }
  next_ = counter + 1;
  for (unsigned i = 0; i < count; i++)
    if (SyncKind(records[i].kind) == SyncKind::sa_outbound) {
      collecting_[name_of(records[i])] = records[i].sa.value;
      unfenced_ += records[i].sa.flags & sa_unfenced;
    }
  if (!(flags & flag_sa_last)) return false;
  open_ = false;
  complete_.swap(collecting_);
  fenced_ = !complete_.empty() && !unfenced_;
  last_ = counter;
  return true;
}

unsigned apply_fences(SaState* const* sas, uint32_t slots, const std::vector<SaValue>& round, uint64_t margin) {
  unsigned n = 0;
  for (uint32_t slot = 1; slot < slots; slot++) {
    SaState* sa = sas[slot];
    if (!sa || sa->inbound) continue;
    uint64_t acked = 0;
    for (const SaValue& v : round)
      if (v.slot == slot && v.name == name_of(*sa)) acked = v.value;
    raise_fence(*sa, fence_of(acked, margin));
    n++;
  }
  return n;
}

unsigned fence_new_sas(SaState* const* sas, uint32_t slots, uint64_t margin) {
  unsigned n = 0;
  for (uint32_t slot = 1; slot < slots; slot++) {
    SaState* sa = sas[slot];
    if (!sa || sa->inbound || __atomic_load_n(&sa->fence, __ATOMIC_RELAXED) != no_fence) continue;
    raise_fence(*sa, fence_of(0, margin));
    n++;
  }
  return n;
}

void clear_fences(SaState* const* sas, uint32_t slots) {
  for (uint32_t slot = 1; slot < slots; slot++)
    if (sas[slot] && !sas[slot]->inbound) __atomic_store_n(&sas[slot]->fence, no_fence, __ATOMIC_RELAXED);
}

// Whether this node may have sent up to its SA's number: it sent on it, or started it from a mark
// on disk (its previous run may have sent up to that, e.g. while its peer was fenced where it is).
static bool sent_here(const SaState& sa) { return load_counter(sa.packets) || sa.started_at_mark; }

bool sent_past(SaState* const* sas, uint32_t slots, const SaValues& round) {
  for (uint32_t slot = 1; slot < slots; slot++) {
    const SaState* sa = sas[slot];
    if (!sa || sa->inbound) continue;
    const uint64_t* value = held_for(round, *sa);
    if (value && sent_here(*sa) && __atomic_load_n(&sa->seq, __ATOMIC_RELAXED) > *value) return true;
  }
  return false;
}

std::vector<SyncRecord> past_records(SaState* const* sas, uint32_t slots, const SaValues& round) {
  std::vector<SyncRecord> out;
  for (uint32_t slot = 1; slot < slots; slot++) {
    const SaState* sa = sas[slot];
    if (!sa || sa->inbound) continue;
    const uint64_t* value = held_for(round, *sa);
    if (value && sent_here(*sa) && __atomic_load_n(&sa->seq, __ATOMIC_RELAXED) > *value)
      out.push_back(round_record(*sa, 0));
  }
  return out;
}

unsigned raise_past(SaState* const* sas, uint32_t slots, const std::vector<SyncRecord>& past,
                    std::vector<TakeoverRecord>& records) {
  SaValues theirs;
  for (const auto& r : past)
    if (SyncKind(r.kind) == SyncKind::sa_outbound) theirs[name_of(r)] = std::max(theirs[name_of(r)], r.sa.value);
  unsigned raised = 0;
  for (uint32_t slot = 1; slot < slots; slot++) {
    SaState* sa = sas[slot];
    if (!sa || sa->inbound) continue;
    const uint64_t* value = held_for(theirs, *sa);
    if (!value || *value <= __atomic_load_n(&sa->seq, __ATOMIC_RELAXED)) continue;
    SyncRecord r{};
    r.kind = uint8_t(SyncKind::sa_takeover);
    r.sa.spi = sa->spi;
    r.sa.slot = uint16_t(slot);
    r.sa.value = *value;
    records.push_back({sa->owner, r});
    raised++;
  }
  return raised;
}

std::optional<uint64_t> peer_sa_start(const PeerSas& peer, const SaName& name, uint64_t margin) {
  auto it = peer.values.find(name);
  if (it == peer.values.end()) it = peer.values.find({0, name.spi, name.inbound});  // a peer that names no tunnel
  const bool held = it != peer.values.end();
  // Not held: bounded only by a whole round that said the peer fences the SAs it makes. A node
  // fresh from its start that heard none cannot tell a fenced peer from one that took over
  // and had no ack since (its numbers unbounded); nor does a mark on disk bound that peer.
  const bool bounded = peer.heard && (held ? !peer.unfenced.count(it->first) : peer.fenced);
  // Proved by this node's state dir before its restart: its acks fenced the peer, and it has not
  // been active since, so the peer took over from no round of its and kept its fence (a takeover
  // that cannot bound this node fences where it is; so does a fresh start). An SA the peer showed
  // without a fence since breaks that (it started active, took over no SA): PeerSas::take cleared it.
  std::optional<uint64_t> proven;
  if (!name.inbound)
    if (auto p = peer.proven.find(name); p != peer.proven.end()) proven = p->second;
  if (!bounded) return proven;
  const uint64_t start = (held ? it->second : 0) + margin;
  return proven ? std::max(start, *proven) : start;
}

unsigned take_over(SaState* const* sas, uint32_t slots, const PeerSas& peer, uint64_t margin,
                   std::vector<TakeoverRecord>& records, SaFloors& floors) {
  unsigned stopped = 0;
  floors.assign(slots, {});
  for (uint32_t slot = 1; slot < slots; slot++) {
    SaState* sa = sas[slot];
    if (!sa) continue;
    SyncRecord r{};
    r.kind = uint8_t(SyncKind::sa_takeover);
    r.sa.spi = sa->spi;
    r.sa.slot = uint16_t(slot);
    r.sa.inbound = sa->inbound;
    if (sa->inbound) {
      auto it = peer.values.find(name_of(*sa));
      if (it == peer.values.end()) it = peer.values.find({0, sa->spi, sa->inbound});  // a peer that names no tunnel
      if (it == peer.values.end()) continue;
      r.sa.value = it->second;
      records.push_back({sa->owner, r});
      continue;
    }
    const std::optional<uint64_t> start = peer_sa_start(peer, name_of(*sa), margin);
    if (!start) {
      __atomic_store_n(&sa->fence, __atomic_load_n(&sa->seq, __ATOMIC_RELAXED), __ATOMIC_RELAXED);
      stopped++;
      continue;
    }
    r.sa.value = *start;
    floors[slot] = {name_of(*sa), r.sa.value};
    records.push_back({sa->owner, r});
  }
  return stopped;
}

}  // namespace medix::dp::ha
