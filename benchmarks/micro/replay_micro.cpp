// SPDX-License-Identifier: BSD-3-Clause
// What one inbound SA's anti-replay window costs a packet when one worker owns it (medix-dp:
// ipsec/replay.h, plain loads and stores) and when several workers would share it: an atomic
// fetch-or to claim the packet's bit and a compare-and-swap to move the top (the cheapest
// shared form, and it still races: a slide clears words another worker may just have set).
// Shared is timed on one thread and on two threads at once (each half the numbers,
// interleaved in bursts of 32, as two workers decrypting one SA's bursts would be). TSC cycles
// per packet, best of 5. docs/ipsec.md, "One SA over several workers", quotes it.
//   replay-micro [packets]
#include <x86intrin.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "ipsec/replay.h"

using medix::dp::ReplayWindow;

namespace {

constexpr uint32_t window = 1024;
constexpr uint64_t burst = 32;

// The shared form: true if seq was new (its bit claimed by this caller).
bool shared_update(ReplayWindow& r, uint64_t seq) {
  unsigned words = ReplayWindow::words_for(r.size);
  uint64_t top = __atomic_load_n(&r.top, __ATOMIC_ACQUIRE);
  while (seq > top) {
    if (__atomic_compare_exchange_n(&r.top, &top, seq, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
      for (uint64_t w = top / 64 + 1; w <= seq / 64 && w - top / 64 <= words; w++)
        __atomic_store_n(&r.bits[w % words], 0, __ATOMIC_RELAXED);
      break;
    }
  }
  if (top >= seq && top - seq >= r.size) return false;
  uint64_t bit = uint64_t(1) << (seq % 64);
  return !(__atomic_fetch_or(&r.bits[(seq / 64) % words], bit, __ATOMIC_ACQ_REL) & bit);
}

// Packets numbered [0, n) of which this thread takes the bursts `part` of `parts`.
template <typename F>
uint64_t run(uint64_t n, unsigned part, unsigned parts, F&& update) {
  uint64_t accepted = 0;
  for (uint64_t first = 1 + part * burst; first <= n; first += parts * burst)
    for (uint64_t s = first; s < first + burst && s <= n; s++) accepted += update(s);
  return accepted;
}

double best_of(int rounds, uint64_t n, double (*round)(uint64_t)) {
  double best = 1e18;
  for (int i = 0; i < rounds; i++) best = std::min(best, round(n));
  return best;
}

ReplayWindow* fresh() {
  auto* r = new ReplayWindow();
  r->size = window;
  return r;
}

double owned(uint64_t n) {
  ReplayWindow* r = fresh();
  uint64_t t0 = __rdtsc();
  uint64_t ok = run(n, 0, 1, [&](uint64_t s) {
    if (r->check(s) != ReplayWindow::accept) return 0;
    r->update(s);
    return 1;
  });
  double c = double(__rdtsc() - t0) / double(n);
  if (ok != n) std::fprintf(stderr, "owned: %lu of %lu accepted\n", (unsigned long)ok, (unsigned long)n);
  delete r;
  return c;
}

double shared_one(uint64_t n) {
  ReplayWindow* r = fresh();
  uint64_t t0 = __rdtsc();
  uint64_t ok = run(n, 0, 1, [&](uint64_t s) { return shared_update(*r, s) ? 1 : 0; });
  double c = double(__rdtsc() - t0) / double(n);
  if (ok != n) std::fprintf(stderr, "shared: %lu of %lu accepted\n", (unsigned long)ok, (unsigned long)n);
  delete r;
  return c;
}

double shared_two(uint64_t n) {
  ReplayWindow* r = fresh();
  std::atomic<int> ready{0};
  uint64_t ok[2] = {};
  auto body = [&](unsigned part) {
    ready++;
    while (ready.load() < 2) {
    }
    ok[part] = run(n, part, 2, [&](uint64_t s) { return shared_update(*r, s) ? 1 : 0; });
  };
  uint64_t t0 = __rdtsc();
  std::thread a(body, 0), b(body, 1);
  a.join();
  b.join();
  // Both threads ran at once: the wall time is for n packets over two cores.
  double c = double(__rdtsc() - t0) / double(n) * 2;
  if (ok[0] + ok[1] != n)
    std::fprintf(stderr,
                 "shared, two threads: %lu of %lu accepted (the rest fell left of the window: one thread ran ahead; or "
                 "the slide race)\n",
                 (unsigned long)(ok[0] + ok[1]), (unsigned long)n);
  delete r;
  return c;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t n = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 20'000'000;
  double a = best_of(5, n, owned), b = best_of(5, n, shared_one), c = best_of(5, n, shared_two);
  std::printf(
      "{\"packets\": %lu, \"window\": %u, \"owned_cycles\": %.2f, \"shared_one_thread_cycles\": %.2f, "
      "\"shared_two_threads_core_cycles\": %.2f}\n",
      (unsigned long)n, window, a, b, c);
  return 0;
}
