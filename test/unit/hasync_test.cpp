// HA sync messages (ha/wire.h): encode, decode, and what the receiver refuses.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <string>

#include "control/intent.h"
#include "ha/role.h"
#include "ha/sync.h"
#include "ha/tenants.h"
#include "ha/wire.h"
#include "harness.h"

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

namespace {

// An intent that keeps its digest, from operations.
struct Tracked {
  Intent intent;
  Tracked() { intent.track_digest = true; }
  bool apply(const std::string& json) {
    Diff diff;
    auto e = intent.apply(ops(json), diff);
    if (!e) intent.forget_last();
    return !e;
  }
};

const char* pair_objects = R"([
  {"op": "CREATE", "object": {"port": {"name": "p0", "device": "net_null0"}}},
  {"op": "CREATE", "object": {"tenant": {"name": "a"}}},
  {"op": "CREATE", "object": {"interface": {"name": "a-lan", "tenant": "a", "port": "p0", "vlan": 10,
    "addresses": ["10.0.0.1/24"]}}},
  {"op": "CREATE", "object": {"route": {"tenant": "a", "prefix": "10.50.0.0/16",
    "via": {"interface": "a-lan", "address": "10.0.0.9"}}}},
  {"op": "CREATE", "object": {"vrrp_instance": {"name": "v", "interface": "a-lan", "vrid": 7,
    "priority": 200, "addresses": ["10.0.0.254"]}}}])";

}  // namespace

TEST_CASE("the intent's digest: the same objects in any order, the node's own left out, changes followed") {
  Tracked a, b;
  REQUIRE(a.apply(pair_objects));
  CHECK(a.intent.digest().objects == 5);
  CHECK(a.intent.digest().hex().size() == 32);
  // B gets the same intent in three transactions, in another order, with its own device,
  // interface address and MAC (the same subnet) and VRRP priority: the same digest.
  REQUIRE(b.apply(R"([{"op": "CREATE", "object": {"tenant": {"name": "a"}}},
                      {"op": "CREATE", "object": {"port": {"name": "p0", "device": "net_null1"}}}])"));
  CHECK_FALSE(a.intent.digest() == b.intent.digest());
  REQUIRE(b.apply(R"([{"op": "CREATE", "object": {"interface": {"name": "a-lan", "tenant": "a", "port": "p0",
                      "vlan": 10, "addresses": ["10.0.0.2/24"], "mac": "02:00:00:00:00:b2"}}},
                      {"op": "CREATE", "object": {"vrrp_instance": {"name": "v", "interface": "a-lan", "vrid": 7,
                      "priority": 100, "preempt": true, "addresses": ["10.0.0.254"]}}}])"));
  REQUIRE(b.apply(R"([{"op": "CREATE", "object": {"route": {"tenant": "a", "prefix": "10.50.0.0/16",
                      "via": {"interface": "a-lan", "address": "10.0.0.9"}}}}])"));
  CHECK(a.intent.digest() == b.intent.digest());
  // A changed route differs; changed back, the same again.
  const ConfigDigest same = b.intent.digest();
  REQUIRE(b.apply(R"([{"op": "UPDATE", "object": {"route": {"tenant": "a", "prefix": "10.50.0.0/16",
                      "via": {"interface": "a-lan", "address": "10.0.0.8"}}}}])"));
  CHECK_FALSE(b.intent.digest() == same);
  CHECK(b.intent.digest().objects == 5);
  REQUIRE(b.apply(R"([{"op": "UPDATE", "object": {"route": {"tenant": "a", "prefix": "10.50.0.0/16",
                      "via": {"interface": "a-lan", "address": "10.0.0.9"}}}}])"));
  CHECK(b.intent.digest() == same);
  // A refused transaction leaves it; a deleted object takes its part away.
  CHECK_FALSE(b.apply(R"([{"op": "CREATE", "object": {"tenant": {"name": "c"}}},
                         {"op": "CREATE", "object": {"interface": {"name": "x", "tenant": "nope", "port": "p0"}}}])"));
  CHECK(b.intent.digest() == same);
  REQUIRE(b.apply(R"([{"op": "CREATE", "object": {"tenant": {"name": "c"}}}])"));
  CHECK_FALSE(b.intent.digest() == same);
  REQUIRE(b.apply(R"([{"op": "DELETE", "object": {"tenant": {"name": "c"}}}])"));
  CHECK(b.intent.digest() == same);
  // rollback_last (the dataplane could not follow) takes the digest back too.
  Diff diff;
  REQUIRE_FALSE(b.intent.apply(ops(R"([{"op": "CREATE", "object": {"tenant": {"name": "d"}}}])"), diff).has_value());
  CHECK_FALSE(b.intent.digest() == same);
  b.intent.rollback_last();
  CHECK(b.intent.digest() == same);
  // Interface addresses count by their subnet: another host of it is the same, another subnet not.
  const char* lan = R"([{"op": "CREATE", "object": {"port": {"name": "p0", "device": "net_null0"}}},
    {"op": "CREATE", "object": {"tenant": {"name": "a"}}},
    {"op": "CREATE", "object": {"interface": {"name": "a-lan", "tenant": "a", "port": "p0", "addresses": ["%s"]}}}])";
  auto with_address = [&](const char* address) {
    auto t = std::make_unique<Tracked>();
    char text[512];
    snprintf(text, sizeof text, lan, address);
    REQUIRE(t->apply(text));
    return t;
  };
  auto one = with_address("10.0.0.1/24"), other_host = with_address("10.0.0.3/24"),
       other_net = with_address("10.0.1.1/24");
  CHECK(one->intent.digest() == other_host->intent.digest());
  CHECK_FALSE(one->intent.digest() == other_net->intent.digest());
  // Without tracking: nothing kept.
  Intent off;
  REQUIRE_FALSE(off.apply(ops(pair_objects), diff).has_value());
  CHECK(off.digest().objects == 0);
}

TEST_CASE("the HA role's changes: kept with time, cause and detail, the last 16, takeovers counted") {
  RoleLog log;
  std::atomic<bool> standby{false};
  log.start(standby, true);
  CHECK(standby.load());
  CHECK(log.last().size() == 1);
  CHECK(log.last()[0].cause == Cause::start);
  CHECK(log.changes() == 0);
  CHECK(log.set(standby, false, Cause::vrrp, "v of group g: backup -> master, master_down (peer lost)"));
  CHECK_FALSE(standby.load());
  CHECK_FALSE(log.set(standby, false, Cause::manual, "again"));  // no change: not kept
  CHECK(log.last().size() == 2);
  auto last = log.last().back();
  CHECK(last.from_standby);
  CHECK_FALSE(last.to_standby);
  CHECK(last.cause == Cause::vrrp);
  CHECK(last.detail.find("peer lost") != std::string::npos);
  CHECK(last.realtime_ns > 0);
  CHECK(log.failovers() == 1);
  for (int i = 0; i < 20; i++) log.set(standby, i % 2 == 0, Cause::manual, "flip " + std::to_string(i));
  CHECK(log.last().size() == RoleLog::kept);
  CHECK(log.last().back().detail == "flip 19");
  CHECK(log.changes() == 21);
  CHECK(log.failovers() == 11);
}

namespace {

// A node's tenant table as a commit leaves it: names by slot, an epoch.
Tables tenant_table(const std::vector<std::string>& by_slot, uint16_t epoch) {
  Tables t;
  t.tenant_epoch = epoch;
  t.tenants.resize(by_slot.size());
  for (size_t slot = 0; slot < by_slot.size(); slot++) {
    t.tenants[slot].name = by_slot[slot];
    t.tenants[slot].live = !by_slot[slot].empty();
  }
  return t;
}

// A session between two tenants (slots of the sender), NAPT-mapped in the first.
SyncRecord session_in(uint16_t from, uint16_t to, uint16_t epoch) {
  SyncRecord r = session(0x0a000005, 40000);
  r.s.key[0].tenant = from;
  r.s.key[1].tenant = to;
  r.s.mapping_tenant = from;
  r.s.tenant_epoch = epoch;
  return r;
}

// The peer's table as the receiver gets it: through the wire's checks.
void take_table(TenantMap& map, const Tables& t, uint64_t instance, uint64_t& counter) {
  std::vector<SyncRecord> records = tenant_records(t, instance);
  Key key = key_of('k');
  for (size_t at = 0; at < records.size(); at += records_per_datagram) {
    auto n = uint16_t(std::min(records_per_datagram, records.size() - at));
    WireHeader h = header(counter + 1, n);
    h.type = uint8_t(MessageType::tenants);
    alignas(8) uint8_t buffer[max_datagram];
    size_t len = encode(h, records.data() + at, key, buffer);
    Decoded d{};
    REQUIRE(decode(buffer, len, key, counter, d) == Reject::none);
    map.take(d.records, d.header.count);
  }
}

}  // namespace

TEST_CASE("HA sync: session records land in the tenant of the same name, whatever the two nodes' slots") {
  // A built from a file; B by API calls in another order, with a tenant of its own first.
  Tables a = tenant_table({"hosp-a", "clinic", "archive", "ix"}, 100);
  Tables b = tenant_table({"lab", "archive", "ix", "clinic", "hosp-a"}, 7);
  TenantMap map;
  uint64_t counter = 0;
  map.own(b);
  // No table of A's yet: refused, never put in B's slot of the same number.
  SyncRecord r = session_in(0, 2, 100);
  CHECK(map.translate(r) == TenantMap::Result::table_unknown);
  CHECK(r.s.key[0].tenant == 0);
  take_table(map, a, 1, counter);
  REQUIRE(map.translate(r) == TenantMap::Result::ok);
  CHECK(r.s.key[0].tenant == 4);  // hosp-a
  CHECK(r.s.key[1].tenant == 1);  // archive
  CHECK(r.s.mapping_tenant == 4);
  CHECK(r.s.tenant_epoch == 7);
  SyncRecord plain = session_in(1, 3, 100);
  plain.s.mapping_tenant = no_mapping_tenant;
  REQUIRE(map.translate(plain) == TenantMap::Result::ok);
  CHECK(plain.s.key[0].tenant == 3);  // clinic
  CHECK(plain.s.key[1].tenant == 2);  // ix
  CHECK(plain.s.mapping_tenant == no_mapping_tenant);

  // A tenant B lacks: refused whole, the record as it was.
  Tables a2 = tenant_table({"hosp-a", "clinic", "archive", "ix", "dental"}, 101);
  take_table(map, a2, 1, counter);
  SyncRecord dental = session_in(4, 2, 101);
  CHECK(map.translate(dental) == TenantMap::Result::tenant_unknown);
  CHECK(dental.s.key[0].tenant == 4);
  // A record made under A's table before is still A's slots (kept a while).
  SyncRecord older = session_in(1, 2, 100);
  REQUIRE(map.translate(older) == TenantMap::Result::ok);
  CHECK(older.s.key[0].tenant == 3);

  // B deletes clinic, then adds it again: another slot, which the map follows.
  map.own(tenant_table({"lab", "archive", "ix", "", "hosp-a"}, 8));
  SyncRecord clinic = session_in(1, 2, 101);
  CHECK(map.translate(clinic) == TenantMap::Result::tenant_unknown);
  map.own(tenant_table({"lab", "archive", "ix", "", "hosp-a", "clinic"}, 9));
  REQUIRE(map.translate(clinic) == TenantMap::Result::ok);
  CHECK(clinic.s.key[0].tenant == 5);
  // A deletes clinic and gives its slot to dental: records of that table name dental there.
  take_table(map, tenant_table({"hosp-a", "dental", "archive", "ix"}, 102), 1, counter);
  SyncRecord reused = session_in(1, 2, 102);
  CHECK(map.translate(reused) == TenantMap::Result::tenant_unknown);  // B has no dental
  SyncRecord before = session_in(1, 2, 101);
  REQUIRE(map.translate(before) == TenantMap::Result::ok);  // still clinic in A's table 101
  CHECK(before.s.key[0].tenant == 5);

  // A restarted: its tables before are forgotten (its epochs begin again).
  take_table(map, tenant_table({"clinic", "hosp-a", "archive", "ix"}, 100), 2, counter);
  SyncRecord restarted = session_in(0, 2, 100);
  REQUIRE(map.translate(restarted) == TenantMap::Result::ok);
  CHECK(restarted.s.key[0].tenant == 5);  // clinic, not hosp-a as the first run's table 100 said
  CHECK(map.knows(100));
  CHECK(!map.knows(101));

  // Many tenants: a table over several datagrams, every slot mapped.
  std::vector<std::string> many, reversed;
  for (int i = 0; i < 1000; i++) many.push_back("t" + std::to_string(i));
  reversed.assign(many.rbegin(), many.rend());
  take_table(map, tenant_table(many, 200), 2, counter);
  map.own(tenant_table(reversed, 10));
  for (uint16_t slot : {0, 1, 498, 999}) {
    SyncRecord m = session_in(slot, slot, 200);
    REQUIRE(map.translate(m) == TenantMap::Result::ok);
    CHECK(m.s.key[0].tenant == 999 - slot);
  }
  // A table record that names a slot past the limit, or more entries than it holds, is malformed.
  SyncRecord bad = tenant_records(a, 1)[0];
  bad.tenants.slot[0] = uint16_t(max_tenants);
  WireHeader h = header(counter + 1, 1);
  h.type = uint8_t(MessageType::tenants);
  alignas(8) uint8_t buffer[max_datagram];
  Key key = key_of('k');
  size_t len = encode(h, &bad, key, buffer);
  Decoded d{};
  CHECK(decode(buffer, len, key, counter, d) == Reject::malformed);
  bad = tenant_records(a, 1)[0];
  bad.tenants.count = 4;
  len = encode(h, &bad, key, buffer);
  CHECK(decode(buffer, len, key, counter, d) == Reject::malformed);
}
