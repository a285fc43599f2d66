#pragma once
// A worker's session index (docs/nat.md "The session table"): FlowKey -> a session's direction
// or a NAPT mapping's side. Bucketized, two buckets a key, one cache line a bucket: 8 slots of a
// 16-bit signature and a 32-bit value. The keys are not stored here: a value names the session
// or mapping that holds its key, and a signature match is confirmed there (a line the packet
// reads next anyway). So a lookup is one bucket line (and the object's); a miss is the bucket
// alone; an insert writes one line. rte_hash's key store (a line more a lookup and an insert)
// and its free-slot ring are what this saves (issue 19; measured against rte_hash in
// benchmarks/results/issue19).
//
// A key lives in its first bucket, or, when that was full as it came, in its second; the first
// bucket counts those (`moved`), so a lookup reads the second only where one was moved. Both
// full: an entry of either moves to its own other bucket (its key read to find it). Sized at
// twice the keys it can hold (two a session, two a mapping), a bucket is full rarely. The worker
// alone reads and writes it: nothing shared.
#include <rte_hash_crc.h>
#include <rte_prefetch.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include <cstdint>
#include <cstring>

namespace medix::dp {

// The 16 bytes sessions and NAPT mappings are found by.
struct FlowKey {
  uint32_t src, dst;      // host byte order
  uint16_t sport, dport;  // ICMP echo: the identifier in both
  uint16_t tenant;        // where the packet comes from
  uint8_t protocol;
  uint8_t kind;  // FlowKind
  // As two words (no padding): member by member, seven compares and branches.
  bool operator==(const FlowKey& o) const {
    uint64_t a[2], b[2];
    std::memcpy(a, this, sizeof a);
    std::memcpy(b, &o, sizeof b);
    return ((a[0] ^ b[0]) | (a[1] ^ b[1])) == 0;
  }
};
static_assert(sizeof(FlowKey) == 16);

enum FlowKind : uint8_t {
  flow_session = 0,
  mapping_inside = 1,   // NAPT: (tenant, inside address, port, protocol)
  mapping_outside = 2,  // NAPT: (pool address, port, protocol)
};

inline uint32_t flow_hash(const FlowKey& key) {
  uint64_t words[2];
  std::memcpy(words, &key, sizeof words);
  return rte_hash_crc_8byte(words[1], rte_hash_crc_8byte(words[0], 0));
}

// A key as FlowKey's two words, assembled in registers: hashing a key just stored member by
// member loads each word across narrower stores still in flight (a store-forwarding stall,
// ~10 cycles a key on the burst's path; docs/nat.md "What an established packet costs").
struct FlowWords {
  uint64_t lo, hi;
  FlowWords() = default;
  FlowWords(uint32_t src, uint32_t dst, uint16_t sport, uint16_t dport, uint16_t tenant, uint8_t protocol, uint8_t kind)
      : lo(uint64_t(dst) << 32 | src),
        hi(uint64_t(kind) << 56 | uint64_t(protocol) << 48 | uint64_t(tenant) << 32 | uint32_t(dport) << 16 | sport) {}
  uint32_t hash() const { return rte_hash_crc_8byte(hi, rte_hash_crc_8byte(lo, 0)); }  // flow_hash(key())
  FlowKey key() const {
    FlowKey k;
    std::memcpy(&k, &lo, 8);
    std::memcpy(reinterpret_cast<char*>(&k) + 8, &hi, 8);
    return k;
  }
};
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "FlowWords lays FlowKey's members out little-endian");

// What a key leads to: an object's index and which of its keys (FlowTable::Slot), in one word.
inline constexpr uint32_t flow_value(uint32_t index, uint32_t slot) { return index << 2 | slot; }
inline constexpr uint32_t no_flow = UINT32_MAX;

class FlowTable {
 public:
  enum Slot : uint32_t { session_forward = 0, session_reverse = 1, inside = 2, outside = 3 };
  static constexpr unsigned ways = 8;
  struct alignas(64) Bucket {
    uint16_t sig[ways];  // 0: free
    uint32_t value[ways];
    uint32_t moved;  // keys whose first bucket this is, kept in their second
  };
  static_assert(sizeof(Bucket) == 64);

  // Buckets for `keys` keys at most (twice as many slots).
  static uint32_t buckets_for(uint32_t keys) { return keys / 4 > 64 ? keys / 4 : 64; }

  Bucket* buckets = nullptr;  // zeroed
  uint32_t n_buckets = 0;
  uint32_t entries = 0;
  uint64_t moves = 0;  // entries moved to make room (both buckets of a key full)

  uint32_t first(uint32_t h) const { return uint32_t((uint64_t(h) * n_buckets) >> 32); }
  uint32_t second(uint32_t h) const {
    uint32_t b = uint32_t((uint64_t(rte_hash_crc_4byte(h, 0x9e3779b9)) * n_buckets) >> 32);
    uint32_t f = first(h);
    return b != f ? b : (f + 1 == n_buckets ? 0 : f + 1);
  }
  static uint16_t signature(uint32_t h) { return uint16_t(h) | 1; }
  void prefetch(uint32_t h) const { rte_prefetch0(&buckets[first(h)]); }

  // The value of `key` (hash `h`), or no_flow. key_of(value) -> const FlowKey&.
  template <typename KeyOf>
  uint32_t find(const FlowKey& key, uint32_t h, const KeyOf& key_of) const {
    const Bucket& b = buckets[first(h)];
    uint32_t v = in(b, key, signature(h), key_of);
    if (v != no_flow || !b.moved) return v;
    return in(buckets[second(h)], key, signature(h), key_of);
  }

  // The first value whose signature matches in the key's first bucket (no_flow: none): what a
  // batched lookup prefetches the object of before it confirms the key with find.
  uint32_t candidate(uint32_t h) const {
    const Bucket& b = buckets[first(h)];
    unsigned hits = matches(b, signature(h));
    return hits ? b.value[__builtin_ctz(hits) / 2] : no_flow;
  }

  // Adds `key` (absent: the caller looked) with `value`; false when no room was found.
  template <typename KeyOf>
  bool insert(uint32_t h, uint32_t value, const KeyOf& key_of) {
    uint32_t f = first(h);
    if (put(buckets[f], signature(h), value)) return true;
    uint32_t s = second(h);
    if (!put(buckets[s], signature(h), value)) {
      if (!make_room(f, key_of) && !make_room(s, key_of)) return false;
      if (put(buckets[f], signature(h), value)) return true;
      if (!put(buckets[s], signature(h), value)) return false;
    }
    buckets[f].moved++;
    return true;
  }

  // Removes the entry of `value` for a key of hash `h`; false if there is none.
  bool erase(uint32_t h, uint32_t value) {
    uint32_t f = first(h);
    if (take(buckets[f], signature(h), value)) return true;
    if (!buckets[f].moved || !take(buckets[second(h)], signature(h), value)) return false;
    buckets[f].moved--;
    return true;
  }

 private:
  // The slots whose signature is `sig`: bit 2i for slot i (as SSE2 compares them).
  static unsigned matches(const Bucket& b, uint16_t sig) {
#ifdef __SSE2__
    __m128i eq = _mm_cmpeq_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(b.sig)), _mm_set1_epi16(short(sig)));
    return unsigned(_mm_movemask_epi8(eq)) & 0x5555;
#else
    unsigned hits = 0;
    for (unsigned i = 0; i < ways; i++) hits |= unsigned(b.sig[i] == sig) << 2 * i;
    return hits;
#endif
  }
  template <typename KeyOf>
  static uint32_t in(const Bucket& b, const FlowKey& key, uint16_t sig, const KeyOf& key_of) {
    for (unsigned hits = matches(b, sig); hits; hits &= hits - 1) {
      uint32_t v = b.value[__builtin_ctz(hits) / 2];
      if (key_of(v) == key) return v;
    }
    return no_flow;
  }
  bool put(Bucket& b, uint16_t sig, uint32_t value) {
    unsigned free = matches(b, 0);
    if (!free) return false;
    unsigned i = __builtin_ctz(free) / 2;
    b.sig[i] = sig;
    b.value[i] = value;
    entries++;
    return true;
  }
  bool take(Bucket& b, uint16_t sig, uint32_t value) {
    for (unsigned hits = matches(b, sig); hits; hits &= hits - 1) {
      unsigned i = __builtin_ctz(hits) / 2;
      if (b.value[i] != value) continue;
      b.sig[i] = 0;
      entries--;
      return true;
    }
    return false;
  }
  // Frees a slot of bucket `at` by moving one of its entries to that entry's other bucket.
  template <typename KeyOf>
  bool make_room(uint32_t at, const KeyOf& key_of) {
    Bucket& b = buckets[at];
    for (unsigned i = 0; i < ways; i++) {
      uint32_t h = flow_hash(key_of(b.value[i]));
      uint32_t f = first(h), s = second(h);
      bool here_first = f == at;
      Bucket& to = buckets[here_first ? s : f];
      if (!put(to, b.sig[i], b.value[i])) continue;
      entries--;  // counted again by put
      if (here_first)
        b.moved++;
      else
        buckets[f].moved--;
      b.sig[i] = 0;
      moves++;
      return true;
    }
    return false;
  }
};

}  // namespace medix::dp
