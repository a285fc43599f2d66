#pragma once
// HA sync on the wire (docs/ha.md): a UDP datagram is a header, up to 25 records (nat/sync.h)
// and an HMAC-SHA-256 over both with the pair's configured key. A receiver checks, in this
// order: the length and header (malformed), the MAC (bad_mac), the sender's counter, which
// must grow (replay), the records (malformed); nothing of a rejected datagram is used, and
// a forged one does not move the counter.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "nat/sync.h"

namespace medix::dp::ha {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the sync wire format is the records' little-endian layout");

inline constexpr uint32_t wire_magic = 0x5848444d;  // "MDHX"
inline constexpr uint8_t wire_version = 2;          // 2: tenants by name (ha/tenants.h)

enum class MessageType : uint8_t {
  records = 1,         // sessions and SAs of the active
  hello = 2,           // once a second: the sender's role, its intent digest (one config record); a standby's
                       // also after each round of SA datagrams it took whole, with an sa_ack record
  resync_request = 3,  // a standby that (re)joined asks for every session
  tenants = 4,         // the sender's tenant table (SyncKind::tenants records): on each change and every second
};
enum HeaderFlags : uint8_t {
  flag_bulk = 1,      // records from a bulk pass (resync or periodic refresh), not from workers
  flag_bulk_end = 2,  // the last datagram of a resync
  // The sender is active but yielding (a planned switchover's drain): sessions it makes now are
  // for the new active to take as well (docs/ha.md, "Sessions made in the overlap").
  flag_draining = 4,
  // The first and last datagram of a round of SA records (sent back to back): a standby acks a
  // round that came whole (docs/ha.md, "The fence").
  flag_sa_first = 8,
  flag_sa_last = 16,
};
enum class WireRole : uint8_t { active = 1, standby = 2 };

struct WireHeader {
  uint32_t magic;
  uint8_t version;
  uint8_t type;      // MessageType
  uint8_t role;      // the sender's WireRole
  uint8_t flags;     // HeaderFlags
  uint64_t counter;  // strictly growing per sender, across its restarts (it starts at the clock)
  uint64_t sent_ns;  // CLOCK_REALTIME when the oldest record was taken from a worker
  uint16_t count;    // records that follow
  uint16_t workers;  // the sender's workers (both nodes must run as many)
  uint32_t rate;     // resync_request: records a second the standby can take (0: the active's own)
};
static_assert(sizeof(WireHeader) == 32);

inline constexpr size_t mac_size = 32;
// Fits a 1500-byte link in one IPv4/UDP datagram, never fragmented.
inline constexpr size_t max_datagram = 1472;
inline constexpr size_t records_per_datagram = (max_datagram - sizeof(WireHeader) - mac_size) / sizeof(SyncRecord);
static_assert(records_per_datagram == 25);

// The pair's key: at least 32 bytes. It is never printed: errors name its file only.
struct Key {
  std::vector<uint8_t> bytes;
};
inline constexpr size_t min_key_size = 32;

// The key from FILE (its bytes, a trailing newline dropped); an error naming the file.
std::string read_key(const std::string& file, Key& key);

// Header, records and MAC into out (max_datagram bytes); returns the length.
size_t encode(const WireHeader& header, const SyncRecord* records, const Key& key, uint8_t* out);

enum class Reject : uint8_t { none, malformed, bad_mac, replay };
const char* reject_name(Reject r);

struct Decoded {
  WireHeader header;
  const SyncRecord* records;  // into the datagram (count of them)
};

// Checks a datagram against the key and the last counter accepted from the peer (advanced
// when accepted). `records` point into `data` (which is 8-byte aligned).
Reject decode(const uint8_t* data, size_t len, const Key& key, uint64_t& last_counter, Decoded& out);

}  // namespace medix::dp::ha
