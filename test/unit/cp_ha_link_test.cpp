// medix-cp's IKE sync link (controlplane/ha/wire.h): seal and open, and what the receiver refuses.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "../../controlplane/ha/link.h"
#include "../../controlplane/ha/wire.h"

using namespace medix::cp::ha;

namespace {

const std::vector<uint8_t> secret(40, 0x5a);
const std::vector<uint8_t> message = {3, 1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9};  // an ha plugin message

}  // namespace

TEST_CASE("cp ha link: a sealed datagram opens under the same direction's key, once") {
  Key a_to_b = direction_key(secret, "10.255.0.1:4520", "10.255.0.2:4520");
  std::vector<uint8_t> sealed, out;
  seal(a_to_b, 1000, message.data(), message.size(), sealed);
  REQUIRE(sealed.size() == sizeof(Header) + message.size() + tag_size);
  // The payload is not in clear (it holds DH secrets).
  REQUIRE(std::search(sealed.begin(), sealed.end(), message.begin() + 3, message.end()) == sealed.end());
  uint64_t last = 999;
  REQUIRE(open(a_to_b, sealed.data(), sealed.size(), last, out) == Reject::none);
  REQUIRE(out == message);
  REQUIRE(last == 1000);
  // The same datagram again, or an older counter: a replay, and nothing moves.
  REQUIRE(open(a_to_b, sealed.data(), sealed.size(), last, out) == Reject::replay);
  REQUIRE(out.empty());
  REQUIRE(last == 1000);
}

TEST_CASE("cp ha link: the other direction, another secret, a changed byte are refused as bad_tag") {
  Key a_to_b = direction_key(secret, "10.255.0.1:4520", "10.255.0.2:4520");
  Key b_to_a = direction_key(secret, "10.255.0.2:4520", "10.255.0.1:4520");
  REQUIRE(a_to_b != b_to_a);
  std::vector<uint8_t> sealed, out;
  seal(a_to_b, 7, message.data(), message.size(), sealed);
  uint64_t last = 0;
  REQUIRE(open(b_to_a, sealed.data(), sealed.size(), last, out) == Reject::bad_tag);
  Key other = direction_key(std::vector<uint8_t>(40, 0x5b), "10.255.0.1:4520", "10.255.0.2:4520");
  REQUIRE(open(other, sealed.data(), sealed.size(), last, out) == Reject::bad_tag);
  for (size_t i : {size_t(8), sizeof(Header), sealed.size() - 1}) {  // the counter, the payload, the tag
    auto changed = sealed;
    changed[i] ^= 1;
    REQUIRE(open(a_to_b, changed.data(), changed.size(), last, out) == Reject::bad_tag);
  }
  // A forged counter far ahead does not move the receiver's (the real peer is not shut out).
  REQUIRE(last == 0);
  REQUIRE(open(a_to_b, sealed.data(), sealed.size(), last, out) == Reject::none);
}

TEST_CASE("cp ha link: malformed datagrams") {
  Key key = direction_key(secret, "a:1", "b:2");
  std::vector<uint8_t> sealed, out;
  seal(key, 5, message.data(), message.size(), sealed);
  uint64_t last = 0;
  REQUIRE(open(key, sealed.data(), sizeof(Header) + tag_size - 1, last, out) == Reject::malformed);
  REQUIRE(open(key, message.data(), message.size(), last, out) == Reject::malformed);  // the plugin's, unsealed
  auto bad_magic = sealed;
  bad_magic[0] ^= 0xff;
  REQUIRE(open(key, bad_magic.data(), bad_magic.size(), last, out) == Reject::malformed);
  seal(key, 6, nullptr, 0, sealed);  // an empty payload is whole
  REQUIRE(open(key, sealed.data(), sealed.size(), last, out) == Reject::none);
  REQUIRE(out.empty());
}

TEST_CASE("cp ha link: the key file") {
  char path[] = "/tmp/medix-cp-ha-key.XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::vector<uint8_t> got;
  std::ofstream(path) << "too short\n";
  std::string e = read_secret(path, got);
  REQUIRE(e == std::string(path) + ": the sync key must be at least 32 bytes");
  REQUIRE(e.find("too short") == std::string::npos);  // never the key
  REQUIRE(got.empty());
  std::ofstream(path) << std::string(32, 'k') << "\n";
  REQUIRE(read_secret(path, got) == "");
  REQUIRE(got == std::vector<uint8_t>(32, 'k'));
  unlink(path);
  REQUIRE(read_secret(path, got) == std::string(path) + ": cannot read the sync key");
}

TEST_CASE("cp ha link: a stopping medix-cp closes its IKE_SAs only as the pair's one active") {
  using medix::cp::ha::owns_ike_sas_at_stop;
  CHECK(owns_ike_sas_at_stop(1, 0));     // active, the peer standby or gone: as without HA
  CHECK(!owns_ike_sas_at_stop(1, 1));    // a switchover's overlap: the peer serves them now
  CHECK(!owns_ike_sas_at_stop(0, 1));    // standby
  CHECK(!owns_ike_sas_at_stop(0, 0));    // standby, the peer silent
  CHECK(!owns_ike_sas_at_stop(-1, -1));  // medix-dp gone: the peer took over or will
}

TEST_CASE("cp ha link: who initiates a peer with initiate (the active node, once)") {
  using medix::cp::ha::initiates;
  CHECK(initiates(false, -1, false));  // alone: as without HA, whatever medix-dp says
  CHECK(initiates(false, -1, true));
  CHECK(initiates(true, 1, false));    // the pair's active, no IKE_SA yet
  CHECK(!initiates(true, 1, true));    // one synced from the old active: no second IKE_SA_INIT
  CHECK(!initiates(true, 0, false));   // standby: its IKE_SA_INIT would leave from the virtual address
  CHECK(!initiates(true, -1, false));  // the role not known yet (starting) or medix-dp gone
}

TEST_CASE("cp ha link: who may send IKE requests of its own (the witness's lease)") {
  constexpr int64_t settled = lease_settle_ns, early = lease_settle_ns - 1;
  // Paired: speaks, wants no lease (as before the witness).
  CHECK(may_speak({true, true, false, false, 0}));
  CHECK(!wants_lease({true, true, false, false, settled}));
  // Alone: wants the lease; speaks only with it, once active for 1.2 s.
  CHECK(wants_lease({true, false, false, false, 0}));
  CHECK(!may_speak({true, false, false, false, settled}));
  CHECK(!may_speak({true, false, false, true, early}));
  CHECK(may_speak({true, false, false, true, settled}));
  // The peer heard active (a split healing): neither wants nor uses a lease it still holds.
  CHECK(!wants_lease({true, false, true, true, settled}));
  CHECK(!may_speak({true, false, true, true, settled}));
  // Standby, or medix-dp gone: never.
  CHECK(!wants_lease({false, false, false, false, settled}));
  CHECK(!may_speak({false, false, false, true, settled}));
}

TEST_CASE("cp ha link: medix-cp's own messages beside the plugin's (heartbeat, message IDs)") {
  // The plugin's first byte is its version (3): ours never passes for one.
  CHECK(encode_heartbeat(1) == std::vector<uint8_t>{'m', 1, 1});
  CHECK(encode_heartbeat(0) == std::vector<uint8_t>{'m', 1, 0});
  CHECK(encode_heartbeat(-1) == std::vector<uint8_t>{'m', 1, 2});  // unknown: medix-dp does not answer
  std::vector<IkeMids> mids = {{0x0123456789abcdefull, 0xfedcba9876543210ull, 7, 12}, {1, 2, 0xffffffffu, 0}}, got;
  std::vector<uint8_t> wire = encode_mids(mids);
  REQUIRE(wire.size() == 2 + 2 * 24);
  REQUIRE(decode_mids(wire, got));
  REQUIRE(got.size() == 2);
  CHECK(got[0].spi_i == mids[0].spi_i);
  CHECK(got[0].spi_r == mids[0].spi_r);
  CHECK(got[0].initiating == 7);
  CHECK(got[0].responding == 12);
  CHECK(got[1].initiating == 0xffffffffu);
  REQUIRE(decode_mids(encode_mids({}), got));
  CHECK(got.empty());
  // Cut short, another kind, the plugin's: not a mids message, nothing taken.
  wire.pop_back();
  CHECK(!decode_mids(wire, got));
  CHECK(got.empty());
  CHECK(!decode_mids(encode_heartbeat(1), got));
  CHECK(!decode_mids(message, got));
}

TEST_CASE("cp ha link: the standby's acknowledgement of a plugin datagram, by its counter") {
  uint64_t counter = 0;
  std::vector<uint8_t> wire = encode_ack(0x0123456789abcdefull);
  CHECK(wire == std::vector<uint8_t>{'m', 5, 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef});
  REQUIRE(decode_ack(wire, counter));
  CHECK(counter == 0x0123456789abcdefull);
  // Cut short, another kind, the plugin's: not an ack, nothing taken.
  CHECK(!decode_ack(std::vector<uint8_t>(wire.begin(), wire.end() - 1), counter));
  CHECK(!decode_ack(encode_heartbeat(1), counter));
  CHECK(!decode_ack(message, counter));
  CHECK(counter == 0x0123456789abcdefull);
  std::vector<IkeMids> got;
  CHECK(!decode_mids(wire, got));  // nor anything else
}

TEST_CASE("cp ha link: the loser's CHILD_SAs (inbound ESP SPIs) at its rejoin") {
  std::vector<IkeChild> children = {{0x0123456789abcdefull, 0xfedcba9876543210ull, 0xc1234567u}, {1, 2, 0}}, got;
  std::vector<uint8_t> wire = encode_children(children);
  REQUIRE(wire.size() == 2 + 2 * 20);
  CHECK(wire[0] == 'm');
  CHECK(wire[1] == 4);
  REQUIRE(decode_children(wire, got));
  REQUIRE(got.size() == 2);
  CHECK(got[0].spi_i == children[0].spi_i);
  CHECK(got[0].spi_r == children[0].spi_r);
  CHECK(got[0].spi == 0xc1234567u);
  CHECK(got[1].spi == 0);
  // Cut short, another kind (a mids message of the same length is not one): nothing taken.
  wire.pop_back();
  CHECK(!decode_children(wire, got));
  CHECK(got.empty());
  CHECK(!decode_children(encode_mids({}), got));
  std::vector<IkeMids> mids;
  CHECK(!decode_mids(encode_children({}), mids));
}

TEST_CASE("cp ha link: the witness's message ID records (PREFIX/ike-mids/)") {
  IkeMids m{0x0123456789abcdefull, 0xfedcba9876543210ull, 7, 0xffffffffu}, got{};
  CHECK(mids_record_name(m) == "0123456789abcdef.fedcba9876543210");
  CHECK(mids_record_value(m) == "7 4294967295");
  REQUIRE(parse_mids_record(mids_record_name(m), mids_record_value(m), got));
  CHECK(got.spi_i == m.spi_i);
  CHECK(got.spi_r == m.spi_r);
  CHECK(got.initiating == 7);
  CHECK(got.responding == 0xffffffffu);
  // Not one of ours: nothing taken.
  IkeMids untouched{1, 2, 3, 4};
  for (auto [name, value] :
       std::vector<std::pair<std::string, std::string>>{{"0123456789abcdef.fedcba987654321", "7 8"},   // a digit short
                                                        {"0123456789abcdef-fedcba9876543210", "7 8"},  // no dot
                                                        {"0123456789ABCDEF.fedcba9876543210", "7 8"},  // not as written
                                                        {"0123456789abcdef.fedcba9876543210", "7"},    // one ID
                                                        {"0123456789abcdef.fedcba9876543210", "7 8 9"},  // three
                                                        {"0123456789abcdef.fedcba9876543210", "-1 8"},   // a sign
                                                        {"0123456789abcdef.fedcba9876543210", " 7 8"},  // a space first
                                                        {"0123456789abcdef.fedcba9876543210", "7 4294967296"}}) {
    CHECK(!parse_mids_record(name, value, untouched));
    CHECK(untouched.initiating == 3);
  }
}

TEST_CASE("cp ha link: the witness's records carry the CHILD_SAs' inbound SPIs") {
  IkeMids m{0x0123456789abcdefull, 0xfedcba9876543210ull, 9, 2}, got{};
  std::vector<uint32_t> children{0xc1a2b3d4u, 0x00000101u}, read;
  CHECK(mids_record_value(m, children) == "9 2 c1a2b3d4 00000101");
  REQUIRE(parse_mids_record(mids_record_name(m), mids_record_value(m, children), got, &read));
  CHECK(got.initiating == 9);
  CHECK(got.responding == 2);
  CHECK(read == children);
  // A record of before (IDs only): no CHILD_SA.
  read = {1};
  REQUIRE(parse_mids_record(mids_record_name(m), "9 2", got, &read));
  CHECK(read.empty());
  // At most max_record_children written: the newest (charon lists them oldest first), so that
  // what the split made is kept and what is left out is the oldest, copies from before it.
  std::vector<uint32_t> many;
  for (uint32_t i = 0; i < max_record_children + 3; i++) many.push_back(0xabcd0000u + i);
  REQUIRE(parse_mids_record(mids_record_name(m), mids_record_value(m, many), got, &read));
  CHECK(read.size() == max_record_children);
  CHECK(read == std::vector<uint32_t>(many.begin() + 3, many.end()));
  CHECK(read.front() == 0xabcd0003u);
  CHECK(read.back() == 0xabcd0000u + max_record_children + 2);
  CHECK(record_children(many) == read);
  CHECK(record_children(children) == children);  // at or under the cap: all, in order
  std::vector<uint32_t> exactly(many.begin(), many.begin() + long(max_record_children));
  CHECK(record_children(exactly) == exactly);
  // Not as written: nothing taken.
  IkeMids untouched{1, 2, 3, 4};
  std::vector<uint32_t> kept{7};
  std::string too_many = "9 2";
  for (size_t i = 0; i <= max_record_children; i++) too_many += " abcdef01";
  for (const std::string& value : {std::string("9 2 C1A2B3D4"),   // not as written
                                   std::string("9 2 c1a2b3d"),    // a digit short
                                   std::string("9 2 c1a2b3d4 "),  // a space last
                                   std::string("9 2  c1a2b3d4"),  // two spaces
                                   std::string("9 2 c1a2b3d4x"),  // a rest
                                   std::string("9 2 -1a2b3d4"),   // a sign
                                   too_many}) {
    CHECK(!parse_mids_record(mids_record_name(m), value, untouched, &kept));
    CHECK(untouched.initiating == 3);
    CHECK(kept == std::vector<uint32_t>{7});
  }
}
