// HA sync messages (ha/wire.h): encode, decode, and what the receiver refuses.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>

#include "ha/sync.h"
#include "ha/wire.h"

using namespace medix::dp;
using namespace medix::dp::ha;

namespace {

Key key_of(char c) { return Key{std::vector<uint8_t>(32, uint8_t(c))}; }

WireHeader header(uint64_t counter, uint16_t count) {
  WireHeader h{};
  h.magic = wire_magic;
  h.version = wire_version;
  h.type = uint8_t(MessageType::records);
  h.role = uint8_t(WireRole::active);
  h.counter = counter;
  h.sent_ns = 12345;
  h.count = count;
  h.workers = 1;
  return h;
}

SyncRecord session(uint32_t src, uint16_t sport) {
  SyncRecord r{};
  r.kind = uint8_t(SyncKind::session);
  r.tcp = tcp_syn_forward;
  r.idle_ms = 7;
  r.s.key[0] = FlowKey{src, 0x0a000164, sport, 80, 1, 6, flow_session};
  r.s.key[1] = FlowKey{0x0a000164, 0x64400001, 80, 1024, 0, 6, flow_session};
  r.s.inside_ip = src;
  r.s.inside_port = sport;
  r.s.outside_ip = 0x64400001;
  r.s.outside_port = 1024;
  r.s.mapping_tenant = 1;
  return r;
}

}  // namespace

TEST_CASE("HA sync: a datagram of records comes back as it was sent") {
  Key key = key_of('k');
  SyncRecord records[records_per_datagram];
  for (unsigned i = 0; i < records_per_datagram; i++) records[i] = session(0x0a000000 + i, uint16_t(40000 + i));
  alignas(8) uint8_t buffer[max_datagram];
  size_t len = encode(header(10, records_per_datagram), records, key, buffer);
  CHECK(len == sizeof(WireHeader) + records_per_datagram * sizeof(SyncRecord) + mac_size);
  CHECK(len <= max_datagram);
  uint64_t last = 9;
  Decoded d{};
  REQUIRE(decode(buffer, len, key, last, d) == Reject::none);
  CHECK(last == 10);
  CHECK(d.header.count == records_per_datagram);
  CHECK(d.header.sent_ns == 12345);
  for (unsigned i = 0; i < records_per_datagram; i++)
    CHECK(std::memcmp(&d.records[i], &records[i], sizeof(SyncRecord)) == 0);
}

TEST_CASE("HA sync: another key, a changed byte, a replay and a malformed datagram are refused") {
  Key key = key_of('k');
  SyncRecord r = session(0x0a000005, 40000);
  alignas(8) uint8_t buffer[max_datagram];
  size_t len = encode(header(100, 1), &r, key, buffer);
  Decoded d{};

  uint64_t last = 0;
  CHECK(decode(buffer, len, key_of('x'), last, d) == Reject::bad_mac);
  CHECK(last == 0);  // a forged datagram does not move the counter

  alignas(8) uint8_t changed[max_datagram];
  std::memcpy(changed, buffer, len);
  changed[sizeof(WireHeader) + 8] ^= 1;  // the session's source address
  CHECK(decode(changed, len, key, last, d) == Reject::bad_mac);
  std::memcpy(changed, buffer, len);
  reinterpret_cast<WireHeader*>(changed)->counter++;  // the counter is under the MAC too
  CHECK(decode(changed, len, key, last, d) == Reject::bad_mac);

  CHECK(decode(buffer, len, key, last, d) == Reject::none);
  CHECK(last == 100);
  CHECK(decode(buffer, len, key, last, d) == Reject::replay);  // the same datagram again
  alignas(8) uint8_t older[max_datagram];
  size_t older_len = encode(header(99, 1), &r, key, older);
  CHECK(decode(older, older_len, key, last, d) == Reject::replay);  // an older one, validly signed
  CHECK(last == 100);

  CHECK(decode(buffer, len - 1, key, last, d) == Reject::malformed);  // cut short
  CHECK(decode(buffer, 10, key, last, d) == Reject::malformed);
  alignas(8) uint8_t bad[max_datagram];
  WireHeader h = header(200, 1);
  h.magic = 0;
  size_t bad_len = encode(h, &r, key, bad);
  CHECK(decode(bad, bad_len, key, last, d) == Reject::malformed);
  SyncRecord wrong = r;
  wrong.kind = uint8_t(SyncKind::sa_takeover);  // never sent: a key holder's garbage
  bad_len = encode(header(201, 1), &wrong, key, bad);
  CHECK(decode(bad, bad_len, key, last, d) == Reject::malformed);
  wrong = r;
  wrong.s.key[1].protocol = 17;
  bad_len = encode(header(202, 1), &wrong, key, bad);
  CHECK(decode(bad, bad_len, key, last, d) == Reject::malformed);
  CHECK(last == 100);
  h = header(203, 2);  // says two records, carries one
  bad_len = encode(header(203, 1), &r, key, bad);
  std::memcpy(bad, &h, sizeof h);
  CHECK(decode(bad, bad_len, key, last, d) == Reject::malformed);
}

TEST_CASE("HA sync: the key file, and errors that never show the key") {
  char path[] = "/tmp/medix-hasync-key.XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::string secret = "short-secret-value";
  std::ofstream(path) << secret << "\n";
  Key key;
  std::string e = read_key(path, key);
  CHECK(e.find("at least 32 bytes") != std::string::npos);
  CHECK(e.find(secret) == std::string::npos);
  CHECK(key.bytes.empty());
  std::string good(40, 'z');
  std::ofstream(path) << good << "\n";
  CHECK(read_key(path, key).empty());
  CHECK(key.bytes.size() == 40);  // the newline is not part of it
  unlink(path);
  CHECK(read_key(path, key).find("cannot read") != std::string::npos);
}

TEST_CASE("HA sync: the takeover margin exceeds a sync interval of line-rate ESP") {
  CHECK(sa_margin(100) >= 148800000ull * 100 / 1000);
  CHECK(sa_margin(100) == 29760000);
  CHECK(sa_margin(1) == uint64_t(1) << 20);
}
