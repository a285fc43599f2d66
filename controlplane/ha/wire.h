// The IKE sync link between the two medix-cp of a pair (docs/ha.md, "IKE state"): strongSwan's
// ha plugin speaks plain UDP (its own protection, ha.secret, is kernel IPsec that medix has not),
// and what it sends holds every IKE_SA's and CHILD_SA's DH secret. medix-cp carries each of its
// datagrams sealed with AES-256-GCM under a key of the pair, with a counter against replays.
#ifndef MEDIX_CP_HA_WIRE_H
#define MEDIX_CP_HA_WIRE_H

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace medix::cp::ha {

// magic, version, then the sender's counter: the GCM nonce and the receiver's replay check.
struct Header {
  uint32_t magic;
  uint8_t version;
  uint8_t reserved[3];
  uint64_t counter;
};
static_assert(sizeof(Header) == 16);
inline constexpr uint32_t link_magic = 0x4d584841;  // "MXHA"
inline constexpr uint8_t link_version = 1;
inline constexpr size_t tag_size = 16;
inline constexpr size_t max_payload = 65000;  // what the plugin sends fits far below

// One direction's key: the pair's secret (at least 32 bytes, from a file) narrowed to "FROM>TO"
// (the sync endpoints as configured), so that the two nodes never seal under the same key and
// nonce.
using Key = std::array<uint8_t, 32>;
Key direction_key(const std::vector<uint8_t>& secret, const std::string& from, const std::string& to);

// The secret from FILE (a trailing newline dropped); an error naming the file, never the key.
std::string read_secret(const std::string& file, std::vector<uint8_t>& secret);

// Header + ciphertext + tag of `payload` into out (resized).
void seal(const Key& key, uint64_t counter, const uint8_t* payload, size_t len, std::vector<uint8_t>& out);

enum class Reject : uint8_t { none, malformed, bad_tag, replay };
const char* reject_name(Reject r);
// The payload of a datagram, if it is whole, sealed under `key` and newer than last_counter
// (advanced only then: a refused datagram moves nothing).
Reject open(const Key& key, const uint8_t* data, size_t len, uint64_t& last_counter, std::vector<uint8_t>& payload);

// medix-cp's own messages on the link, beside the plugin's (whose first byte is its version, 3):
// 'm', then the kind. A heartbeat every 100 ms says the sender's role (its medix-dp's: 0 standby,
// 1 active, 2 unknown), so each node knows whether its peer is there and standby; after a split
// brain the loser sends the message IDs of its IKE_SAs (docs/ha.md, "IKE in a split brain"), and
// an active node whose peer may lack some of its state asks it to rejoin (drop its copies, resync),
// and the loser sends its CHILD_SAs' inbound SPIs too (the winner deletes at the gateway those it
// does not hold: docs/ha.md, item 6, "A CHILD_SA the previous speaker changed"). Each of the
// plugin's datagrams a node takes is acknowledged by its counter: an active node's IKE message
// leaves only once the standby has the sync it depends on (docs/ha.md, item 6, "The standby's acknowledgement").
inline constexpr uint8_t link_own = 'm';
enum class Own : uint8_t { heartbeat = 1, mids = 2, rejoin = 3, children = 4, ack = 5 };
struct IkeMids {
  uint64_t spi_i, spi_r;  // as on the wire (libcharon keeps them so)
  uint32_t initiating, responding;
};
// The other node's answer without the witness's lease (witness.h): its responding ID, and its
// response's packet as sent ("": none kept). An encrypted IKE message: never logged.
struct IkeAnswer {
  IkeMids mids;
  std::string response;
};
// A CHILD_SA (ESP) by its IKE_SA's SPIs and its own inbound SPI; no key.
struct IkeChild {
  uint64_t spi_i, spi_r;
  uint32_t spi;
};
std::vector<uint8_t> encode_heartbeat(int role);
// At most what fits a datagram (2,700 IKE_SAs); the rest left out.
std::vector<uint8_t> encode_mids(const std::vector<IkeMids>& mids);
// False if `payload` is not a whole mids message.
bool decode_mids(const std::vector<uint8_t>& payload, std::vector<IkeMids>& mids);
// The peer's datagram sealed under `counter` was taken.
std::vector<uint8_t> encode_ack(uint64_t counter);
// False if `payload` is not a whole ack.
bool decode_ack(const std::vector<uint8_t>& payload, uint64_t& counter);
// At most what fits a datagram (3,200 CHILD_SAs); the rest left out.
std::vector<uint8_t> encode_children(const std::vector<IkeChild>& children);
// False if `payload` is not a whole children message.
bool decode_children(const std::vector<uint8_t>& payload, std::vector<IkeChild>& children);
// An IKE_SA's message IDs as the witness keeps them (witness.h): the key's name below
// PREFIX/ike-mids/ ("SPI_I.SPI_R", 16 hex digits each) and its value ("INITIATING RESPONDING",
// then the inbound ESP SPI of each of its CHILD_SAs, 8 hex digits each, at most
// max_record_children; no key). parse: false, `m` and `children` unchanged, if not one of these.
inline constexpr size_t max_record_children = 16;
// What a record carries of an IKE_SA's CHILD_SAs (`children` oldest first, as charon keeps them):
// the newest max_record_children. Past it the oldest are left out: those the next speaker most
// likely holds itself, copies synced before the split (docs/ha.md, "A CHILD_SA the previous
// speaker changed").
std::vector<uint32_t> record_children(std::vector<uint32_t> children);
std::string mids_record_name(const IkeMids& m);
std::string mids_record_value(const IkeMids& m, const std::vector<uint32_t>& children = {});
bool parse_mids_record(const std::string& name, const std::string& value, IkeMids& m,
                       std::vector<uint32_t>* children = nullptr);

}  // namespace medix::cp::ha

#endif
