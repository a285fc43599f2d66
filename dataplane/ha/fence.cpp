// The fence's bookkeeping: the active's recent rounds, the standby's round check, the fences.
#include "ha/fence.h"

#include <map>

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
  } else if (!open_ || counter != next_) {
    open_ = false;  // a datagram of the round went missing: wait for the next round
    return false;
  }
  next_ = counter + 1;
  for (unsigned i = 0; i < count; i++)
    if (SyncKind(records[i].kind) == SyncKind::sa_outbound)
      collecting_.emplace_back(records[i].sa.spi, records[i].sa.value);
  if (!(flags & flag_sa_last)) return false;
  open_ = false;
  complete_.swap(collecting_);
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
      if (v.slot == slot && v.spi == sa->spi) acked = v.value;
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

bool sent_past(SaState* const* sas, uint32_t slots, const std::vector<std::pair<uint32_t, uint64_t>>& round) {
  std::map<uint32_t, uint64_t> values(round.begin(), round.end());
  for (uint32_t slot = 1; slot < slots; slot++) {
    const SaState* sa = sas[slot];
    if (!sa || sa->inbound) continue;
    auto it = values.find(sa->spi);
    if (it != values.end() && load_counter(sa->packets) && __atomic_load_n(&sa->seq, __ATOMIC_RELAXED) > it->second)
      return true;
  }
  return false;
}

}  // namespace medix::dp::ha
