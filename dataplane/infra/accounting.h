#pragma once
// Per-stage accounting (runtime's calls, packets and cycles per stage), for the pipeline and the
// worker loop only: compiled in (the default, switchable at run time by Worker::timing) or out
// (meson -Dstage_accounting=false: the reference that benchmarks measure the switch's cost
// against). Here, not in worker.h, so that only its two users differ in the reference build.
#include <rte_cycles.h>

#include "infra/worker.h"

namespace medix::dp {

#ifndef MEDIX_STAGE_ACCOUNTING
#define MEDIX_STAGE_ACCOUNTING 1
#endif
inline constexpr bool stage_accounting = MEDIX_STAGE_ACCOUNTING;

// Whether this loop stamps stages: the run-time switch, false where accounting is compiled out.
inline bool stage_timing(const Worker& w) { return stage_accounting && w.timing; }

// A stage's start: the TSC, or 0 while stage timing is off (then nothing reads it).
inline uint64_t stage_clock(const Worker& w) { return stage_timing(w) ? rte_rdtsc() : 0; }

// Adds the cycles since `start` to a stage's runtime counters; returns now, the next stage's
// start. Calls and packets are counted whether timing is on or not.
inline uint64_t account(Worker& w, Stage stage, uint64_t start, uint64_t packets) {
  if constexpr (!stage_accounting) return 0;
  StageStats& s = w.counters->stages[unsigned(stage)];
  bump(s.calls);
  bump(s.packets, packets);
  if (!stage_timing(w)) return 0;
  uint64_t now = rte_rdtsc();
  bump(s.cycles, now - start);
  return now;
}

}  // namespace medix::dp
