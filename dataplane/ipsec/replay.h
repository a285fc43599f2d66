#pragma once
// Anti-replay (RFC 4303 3.4.3) with a bitmap window as in RFC 6479: the bit of sequence
// number s is bit s % 64 of word (s / 64) % words, and one spare word lets the window slide a
// word at a time without moving bits. Extended sequence numbers are inferred as in RFC 4303
// appendix A2.
#include <cstdint>
#include <cstring>

namespace medix::dp {

inline constexpr uint32_t max_replay_window = 4096;
// An inbound SA's window when its object does not say (RFC 4303: on unless both ends agree).
inline constexpr uint32_t default_replay_window = 64;

struct ReplayWindow {
  uint64_t top = 0;   // highest sequence number accepted (64-bit with ESN)
  uint32_t size = 0;  // the window, in packets; 0: no replay protection
  uint64_t bits[max_replay_window / 64 + 2] = {};

  // The bitmap holds the window rounded up to whole words, and one spare word.
  static constexpr unsigned words_for(uint32_t size) { return (size + 63) / 64 + 1; }

  enum Verdict { accept, replayed, too_old };

  Verdict check(uint64_t seq) const {
    if (size == 0 || seq > top) return accept;
    if (top - seq >= size) return too_old;
    unsigned words = words_for(size);
    return (bits[(seq / 64) % words] >> (seq % 64)) & 1 ? replayed : accept;
  }

  // After the ICV was verified: slide the window if needed, mark seq.
  void update(uint64_t seq) {
    if (size == 0) {
      if (seq > top) top = seq;
      return;
    }
    unsigned words = words_for(size);
    if (seq > top) {
      uint64_t from = top / 64 + 1, to = seq / 64;
      if (to - from + 1 >= words || top == 0)
        memset(bits, 0, sizeof(uint64_t) * words);
      else
        for (uint64_t w = from; w <= to; w++) bits[w % words] = 0;
      top = seq;
    }
    bits[(seq / 64) % words] |= uint64_t(1) << (seq % 64);
  }

  // The 64-bit sequence number a 32-bit one on the wire stands for (RFC 4303 A2.2).
  uint64_t infer_esn(uint32_t low) const { return infer_esn(top, low); }
  // The same, against a given highest sequence number.
  uint64_t infer_esn(uint64_t top, uint32_t low) const {
    uint32_t window = size ? size : 64;
    uint32_t top_low = uint32_t(top), top_high = uint32_t(top >> 32);
    uint32_t high;
    if (top_low >= window - 1) {
      high = low >= top_low - window + 1 ? top_high : top_high + 1;  // case A
    } else {
      high = low >= top_low - window + 1 ? top_high - 1 : top_high;  // case B (wraps below 0)
      if (top_high == 0 && high == uint32_t(-1)) high = 0;
    }
    return (uint64_t(high) << 32) | low;
  }
};

}  // namespace medix::dp
