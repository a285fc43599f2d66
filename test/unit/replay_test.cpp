#include <catch2/catch.hpp>

#include "ipsec/replay.h"

using namespace medix::dp;

TEST_CASE("anti-replay window: accept, replay, too old, sliding (RFC 4303 3.4.3, RFC 6479)") {
  ReplayWindow w;
  w.size = 64;
  CHECK(w.check(1) == ReplayWindow::accept);
  w.update(1);
  CHECK(w.check(1) == ReplayWindow::replayed);
  w.update(100);
  CHECK(w.top == 100);
  CHECK(w.check(37) == ReplayWindow::accept);   // 100 - 37 = 63 < 64: inside, never seen
  CHECK(w.check(36) == ReplayWindow::too_old);  // 64 behind
  w.update(37);
  CHECK(w.check(37) == ReplayWindow::replayed);
  CHECK(w.check(100) == ReplayWindow::replayed);
  // A jump of more than a window clears everything.
  w.update(10000);
  CHECK(w.check(9999) == ReplayWindow::accept);
  CHECK(w.check(100) == ReplayWindow::too_old);
}

TEST_CASE("a 4096-packet window remembers each of its packets") {
  ReplayWindow w;
  w.size = 4096;
  for (uint64_t s = 1; s <= 20000; s += 2) w.update(s);  // odd ones only
  for (uint64_t s = 20000 - 4000; s <= 20000; s++)
    REQUIRE(w.check(s) == (s % 2 ? ReplayWindow::replayed : ReplayWindow::accept));
  CHECK(w.check(w.top - 4096) == ReplayWindow::too_old);
  CHECK(w.check(w.top - 4095) != ReplayWindow::too_old);
}

TEST_CASE("extended sequence numbers are inferred across the 2^32 wrap (RFC 4303 A2)") {
  ReplayWindow w;
  w.size = 64;
  w.update(0xfffffff0u);
  CHECK(w.infer_esn(0xfffffff5u) == 0xfffffff5u);    // same epoch, ahead
  CHECK(w.infer_esn(0xffffffe0u) == 0xffffffe0u);    // same epoch, in the window
  CHECK(w.infer_esn(3) == (uint64_t(1) << 32) + 3);  // wrapped
  w.update((uint64_t(1) << 32) + 3);
  CHECK(w.infer_esn(0xfffffffeu) == 0xfffffffeu);  // late packet of the old epoch
  CHECK(w.infer_esn(10) == (uint64_t(1) << 32) + 10);
  CHECK(w.check((uint64_t(1) << 32) + 3) == ReplayWindow::replayed);
}
