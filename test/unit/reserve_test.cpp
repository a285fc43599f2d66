// Outbound sequence numbers reserved on disk (ha/reserve.h, docs/ha.md "Sequence numbers that
// outlive a restart"): a restart or a fresh node's takeover never sends a number again.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>

#include "fixture.h"
#include "ha/fence.h"
#include "ha/reserve.h"
#include "harness.h"
#include "ipsec/sa.h"
#include "nat/sync.h"

using namespace frame;

namespace {

// A static tunnel t1 (AES-GCM both ways) from hosp to a carrier peer.
const std::string config = hosp_over_carrier(R"(
  "tunnels": [{"name": "t1", "tenant": "hosp", "underlay_tenant": "carrier", "local_address": "198.51.100.1",
               "remote_address": "198.51.100.2", "remote_selectors": ["10.0.0.0/24"]}],
  "routes": [{"tenant": "hosp", "prefix": "10.0.0.0/24", "via": {"interface": "t1"}}],
  "neighbours": [{"interface": "c0", "address": "198.51.100.2", "mac": "02:00:00:00:00:02"},
                 {"interface": "h0", "address": "10.0.1.10", "mac": "02:00:00:00:01:10"}],
  "sas": [
    {"spi": 4097, "tunnel": "t1", "inbound": true, "cipher": "AES_GCM_128",
     "cipher_key": "AAECAwQFBgcICQoLDA0ODxAREhM="},
    {"spi": 8193, "tunnel": "t1", "inbound": false, "cipher": "AES_GCM_128",
     "cipher_key": "AAECAwQFBgcICQoLDA0ODxAREhM="}
  ],
  "settings": {"max_sessions": 1024}
)");

// A fresh folder under /tmp, removed with what it holds.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/medix-reserve-XXXXXX";
    REQUIRE(mkdtemp(tmpl));
    path = tmpl;
  }
  ~TempDir() { [[maybe_unused]] int rc = system(("rm -rf " + path).c_str()); }
};

SaState& outbound(Harness& h) {
  for (const auto& f : h.tables->interfaces)
    if (f.name == "t1") return *h.tables->sas[f.outbound_sa];
  FAIL("no tunnel t1");
  throw;
}

// h's takeover from `peer` as Sync does it: ha::take_over, then t1's outbound SA advanced as the
// worker's advance_sa does. How many SAs it stopped.
unsigned take_over_t1(Harness& h, const ha::PeerSas& peer, uint64_t margin) {
  std::vector<ha::TakeoverRecord> advances;
  ha::SaFloors floors;
  SaState& sa = outbound(h);
  unsigned stopped = ha::take_over(h.tables->sas, max_sas, peer, margin, advances, floors);
  for (auto& t : advances)
    if (!t.record.sa.inbound) sa.seq = std::max(sa.seq, t.record.sa.value);
  return stopped;
}

// The slot of `sa` in h's table of SAs (what a fence round names).
uint16_t slot_of(Harness& h, const SaState& sa) {
  for (uint16_t s = 1; s < max_sas; s++)
    if (h.tables->sas[s] == &sa) return s;
  FAIL("SA not in the table");
  throw;
}

// `n` packets from the hospital into t1; the sequence numbers of those sent.
std::vector<uint64_t> send(Harness& h, unsigned n) {
  std::vector<uint64_t> seqs;
  Bytes frame =
      ether("02:00:00:00:01:01", "02:00:00:00:01:10", 0x0800) + ipv4("10.0.1.10", "10.0.0.5", 17, udp(1000, 9, 100));
  while (n) {
    unsigned k = std::min(n, 32u);
    std::vector<Bytes> frames(k, frame);
    process_burst(h.worker, 1, h.burst(frames).data(), uint16_t(k));
    for (const auto& f : h.sent(0))
      seqs.push_back(uint64_t(f[14 + 20 + 4]) << 24 | uint64_t(f[14 + 20 + 5]) << 16 | uint64_t(f[14 + 20 + 6]) << 8 |
                     f[14 + 20 + 7]);
    n -= k;
  }
  return seqs;
}

auto start_of(ha::Reserve& r) {
  return [&r](uint64_t tunnel, uint32_t spi) { return r.start_of(tunnel, spi); };
}

uint64_t mark_on_disk(const std::string& dir, const SaState& sa) {
  ha::SeqMarks marks;
  REQUIRE_FALSE(ha::read_seq_file(dir + "/sa-seq", marks));
  auto it = marks.find({sa.tunnel_id, sa.spi});
  return it == marks.end() ? 0 : it->second;
}

// What HA sync's start takes from r's peer file in a role (Sync::start, Reserve::start_sync).
ha::PeerSas started(ha::Reserve& r, bool standby) {
  ha::PeerSas peer;
  REQUIRE(r.start_sync(standby, peer));
  return peer;
}

// Every number of `more` is new to `used`; then they join it.
bool none_again(std::set<uint64_t>& used, const std::vector<uint64_t>& more) {
  bool fresh = true;
  for (uint64_t s : more) fresh = used.insert(s).second && fresh;
  return fresh;
}

// The peer file's cases: a margin of 1000, blocks of 100.
constexpr uint64_t margin = 1000, block = 100;

// A active (t1's outbound SA), B standby with its state in `dir_b`: B acks A's round at 500, all
// of A's SAs fenced, its mark and peer file written first (the file: t1 at 500 + margin + a
// block); A sends to its fence, B's last ack + margin - 1. A's numbers join `sent_a`.
void b_fences_a(Harness& a, const std::string& dir_b, std::set<uint64_t>& sent_a) {
  const ha::SeqKey key{sa_tunnel_id("t1"), 8193};
  SaState& sa_a = outbound(a);
  REQUIRE(none_again(sent_a, send(a, 500)));
  ha::Reserve rb;
  REQUIRE_FALSE(rb.open(dir_b, block));
  REQUIRE(rb.cover(nullptr, 0, {{key, 500 + margin}}, 1));
  REQUIRE(rb.prove({{key, 500 + margin}}, true, 1));
  ha::apply_fences(a.tables->sas, max_sas, {{slot_of(a, sa_a), ha::name_of(sa_a), 500}}, margin);
  auto seqs = send(a, 1200);
  CHECK(seqs.size() == margin - 1);
  REQUIRE(none_again(sent_a, seqs));
}

}  // namespace

TEST_CASE("sequence numbers on disk: the file round-trips; missing is empty; a bad one is refused by file and line") {
  TempDir dir;
  std::string file = dir.path + "/sa-seq";
  ha::SeqMarks marks, back;
  REQUIRE_FALSE(ha::read_seq_file(file, back));  // none yet: empty
  CHECK(back.empty());
  marks[{sa_tunnel_id("t1"), 8193}] = 1234567890123ull;
  marks[{1, 7}] = 0;
  REQUIRE_FALSE(ha::write_seq_file(file, marks));
  REQUIRE_FALSE(ha::read_seq_file(file, back));
  CHECK(back == marks);
  CHECK(access((file + ".tmp").c_str(), F_OK) != 0);  // renamed, not left

  for (const auto& [text, error] : std::vector<std::pair<std::string, std::string>>{
           {"", "empty"},
           {"medix-dp something 2\n", ":1: not a medix-dp sa-seq file"},
           {"medix-dp sa-seq 1\nzz 1 2\n", ":2: not \"TUNNEL SPI MARK\""},
           {"medix-dp sa-seq 1\n1 2 3\n1 2 3 4\n", ":3: not \"TUNNEL SPI MARK\""},
           {"medix-dp sa-seq 1\n1 2\n", ":2: not"}}) {
    std::ofstream(file) << text;
    auto e = ha::read_seq_file(file, back);
    REQUIRE(e);
    CHECK(e->find(file) == 0);
    CHECK(e->find(error) != std::string::npos);
    CHECK(back.empty());  // nothing of a bad file is used
  }
  // A node with a bad file does not start (its SAs would start at 0).
  ha::Reserve r;
  auto e = r.open(dir.path, 100);
  REQUIRE(e);
  CHECK(e->find("--state-dir " + file + ":2") == 0);
  CHECK_FALSE(r.configured());

  // Not writable (a folder where the file goes): said with the file and why.
  REQUIRE(mkdir((file + ".tmp").c_str(), 0700) == 0);
  e = ha::write_seq_file(file, marks);
  REQUIRE(e);
  CHECK(e->find(file + ".tmp: cannot create it: ") == 0);
}

TEST_CASE(
    "sequence numbers on disk: an SA sends nothing unwritten; a restart at any point never sends a number again") {
  TempDir dir;
  constexpr uint64_t block = 100;
  std::set<uint64_t> used;
  uint64_t now = 1;
  {
    ha::Reserve r;
    REQUIRE_FALSE(r.open(dir.path, block));
    Harness h(config, 1, start_of(r));
    SaState& sa = outbound(h);
    // Made before its first block is on disk: it sends nothing yet, and says why.
    CHECK(sa.seq == 0);
    CHECK(sa.reserved == 0);
    CHECK(send(h, 5).empty());
    CHECK(h.drops(Drop::sa_seq_unreserved) == 5);
    CHECK(sa.drops_of(Drop::sa_seq_unreserved) == 5);
    CHECK(r.status(now).sas == 0);  // no pass yet

    r.pass(h.tables->sas, max_sas, now);
    CHECK(sa.reserved == block);
    CHECK(mark_on_disk(dir.path, sa) == block);
    auto seqs = send(h, 40);
    REQUIRE(seqs.size() == 40);
    CHECK(seqs.front() == 1);
    CHECK(none_again(used, seqs));
    // Half a block left or more: no write.
    r.pass(h.tables->sas, max_sas, now);
    CHECK(r.status(now).writes == 1);
    // Past half: the next block.
    CHECK(send(h, 20).size() == 20);
    r.pass(h.tables->sas, max_sas, now);
    CHECK(r.status(now).writes == 2);
    CHECK(sa.reserved == 2 * block);
    // Faster than the writes: it stops at what is on disk, never past it.
    seqs = send(h, 150);
    REQUIRE(seqs.size() == 140);
    CHECK(seqs.back() == 200);
    CHECK(sa.seq == 200);
    CHECK(h.drops(Drop::sa_seq_unreserved) == 5 + 10);
    ha::ReserveStatus s = r.status(now);
    CHECK(s.sas == 1);
    CHECK(s.sas_waiting == 0);  // counted at the pass before
    r.pass(h.tables->sas, max_sas, now);
    CHECK(r.status(now).sas_waiting == 1);  // it was at its mark when the pass looked
    CHECK(none_again(used, seqs));
    CHECK(mark_on_disk(dir.path, sa) >= sa.seq);  // killed now, the file covers all it sent
    seqs = send(h, 30);
    CHECK(seqs.size() == 30);
    CHECK(none_again(used, seqs));
    CHECK(mark_on_disk(dir.path, sa) >= sa.seq);
  }  // killed: no write at the end (there is none)
  // Restarted, twice, on the same file: each starts past all it ever sent.
  for (int restart = 0; restart < 2; restart++) {
    ha::Reserve r;
    REQUIRE_FALSE(r.open(dir.path, block));
    Harness h(config, 1, start_of(r));
    SaState& sa = outbound(h);
    CHECK(sa.seq >= *used.rbegin());
    CHECK(send(h, 3).empty());  // not yet written anew
    r.pass(h.tables->sas, max_sas, now);
    auto seqs = send(h, 70);
    REQUIRE(seqs.size() == 70);
    CHECK(seqs.front() > *used.rbegin());
    CHECK(none_again(used, seqs));
    CHECK(mark_on_disk(dir.path, sa) >= sa.seq);
  }
  // The control: without the file the SA starts at 0 and sends 1 again.
  Harness plain(config);
  CHECK(outbound(plain).reserved == UINT64_MAX);
  auto seqs = send(plain, 1);
  REQUIRE(seqs.size() == 1);
  CHECK_FALSE(none_again(used, seqs));
}

TEST_CASE("sequence numbers on disk: a file that cannot be written stops the SA at its mark, counted and said") {
  TempDir dir;
  constexpr uint64_t block = 100;
  ha::Reserve r;
  REQUIRE_FALSE(r.open(dir.path, block));
  Harness h(config, 1, start_of(r));
  SaState& sa = outbound(h);
  uint64_t now = 1000000000;
  r.pass(h.tables->sas, max_sas, now);
  CHECK(send(h, 60).size() == 60);
  // The disk goes bad (a folder where the file is written: refused even to root).
  std::string tmp = dir.path + "/sa-seq.tmp";
  REQUIRE(mkdir(tmp.c_str(), 0700) == 0);
  r.pass(h.tables->sas, max_sas, now);
  ha::ReserveStatus s = r.status(now + 5000000);
  CHECK(s.write_failures == 1);
  CHECK(s.error.find(tmp + ": cannot create it: ") == 0);
  CHECK(s.failing_ms == 5);
  CHECK(sa.reserved == block);
  auto seqs = send(h, 60);
  CHECK(seqs.size() == 40);  // up to its mark, no further
  CHECK(sa.seq == block);
  CHECK(sa.drops_of(Drop::sa_seq_unreserved) == 20);
  r.pass(h.tables->sas, max_sas, now + 1000);  // within the retry delay: not tried again
  CHECK(r.status(now).write_failures == 1);
  r.pass(h.tables->sas, max_sas, now + 200000000);
  CHECK(r.status(now).write_failures == 2);
  CHECK(r.status(now).sas_waiting == 1);
  CHECK(send(h, 10).empty());
  // Writable again: the SA goes on from where it stopped, and the error is gone.
  REQUIRE(rmdir(tmp.c_str()) == 0);
  r.pass(h.tables->sas, max_sas, now + 400000000);
  s = r.status(now + 400000000);
  CHECK(s.error.empty());
  CHECK(s.failing_ms == -1);
  CHECK(s.writes == 2);
  seqs = send(h, 10);
  REQUIRE(seqs.size() == 10);
  CHECK(seqs.front() == block + 1);
  // The standby's cover (before an ack) fails the same way, and says so to the caller.
  REQUIRE(mkdir(tmp.c_str(), 0700) == 0);
  CHECK_FALSE(r.cover(nullptr, 0, {{{sa.tunnel_id, sa.spi}, 100000}}, now + 800000000));
  REQUIRE(rmdir(tmp.c_str()) == 0);
  CHECK(r.cover(nullptr, 0, {{{sa.tunnel_id, sa.spi}, 100000}}, now + 1000000000));
  CHECK(mark_on_disk(dir.path, sa) >= 100000);
  CHECK(r.cover(nullptr, 0, {{{sa.tunnel_id, sa.spi}, 100000}}, now + 1000000000));  // covered: no write
  CHECK(r.status(now).writes == 3);
}

TEST_CASE(
    "sequence numbers on disk: a standby fresh from a restart that heard no round fences the SA where it is, not "
    "at its mark") {
  // A active, B standby, one static outbound SA of the same intent, margin 1000. B writes each
  // acked round's value + margin before its ack; A's fence follows the ack. B restarts (holds
  // nothing of A), A goes on to its fence and dies, B takes over. (One harness at a time: the
  // unit tests' EAL memory holds one.)
  TempDir dir_b;
  constexpr uint64_t margin = 1000, block = 100;
  const ha::SeqKey key{sa_tunnel_id("t1"), 8193};
  std::set<uint64_t> sent_a;
  {
    Harness a(config);
    SaState& sa_a = outbound(a);
    const uint16_t slot_a = slot_of(a, sa_a);
    REQUIRE(none_again(sent_a, send(a, 500)));
    // B takes A's round whole and acks it once written.
    ha::Reserve rb;
    REQUIRE_FALSE(rb.open(dir_b.path, block));
    REQUIRE(rb.cover(nullptr, 0, {{key, 500 + margin}}, 1));
    ha::apply_fences(a.tables->sas, max_sas, {{slot_a, ha::name_of(sa_a), 500}}, margin);
    CHECK(sa_a.fence == 500 + margin - 1);
    // B stops; A sends to its fence, no further (no ack from a B that is down), and dies.
    auto seqs = send(a, 1200);
    CHECK(seqs.size() == margin - 1);
    REQUIRE(none_again(sent_a, seqs));
  }
  auto take_over = [&](Harness& h, const ha::PeerSas& peer) { return take_over_t1(h, peer, margin); };
  // B fresh from its start has heard no round: it cannot tell this A (fenced by its acks) from an
  // A that took over from B and had no ack since, whose numbers lie above any mark of B's. It
  // starts the SA at its mark and fences it there: it sends nothing (its next packet asks
  // medix-cp for a rekey).
  {
    ha::Reserve rb;
    REQUIRE_FALSE(rb.open(dir_b.path, block));
    Harness b(config, 1, start_of(rb));
    SaState& sa = outbound(b);
    CHECK(sa.seq >= 500 + margin);  // its mark (a block above what it covered)
    CHECK(take_over(b, ha::PeerSas{}) == 1);
    CHECK(sa.fence == sa.seq);
    rb.pass(b.tables->sas, max_sas, 1);
    CHECK(send(b, 50).empty());
    CHECK(sa.drops_of(Drop::ha_sa_fenced) == 50);
  }
  // Having heard a whole round of A's (A fenced, at 500), B goes on above A's fence.
  ha::PeerSas heard;
  SyncRecord r{};
  r.kind = uint8_t(SyncKind::sa_outbound);
  r.sa.tunnel = key.tunnel;
  r.sa.spi = key.spi;
  r.sa.value = 500;
  heard.take(r);
  heard.round(true);
  Harness b(config);
  CHECK(take_over(b, heard) == 0);
  auto seqs = send(b, 50);
  REQUIRE(seqs.size() == 50);
  CHECK(seqs.front() == 500 + margin + 1);
  std::set<uint64_t> all = sent_a;
  CHECK(none_again(all, seqs));
}

TEST_CASE("sequence numbers on disk: a standby started from its mark reports it to an active below it, not acks") {
  // B was active and sent on a static SA up to about 3000 (its mark on disk a block above), then
  // stopped; A, fresh, took over fenced where it is (at 600: it could not bound B). B restarts as
  // standby from its mark, having sent nothing in this run. A's round says 600: an ack would let
  // A go on from 601, into B's numbers of before. B withholds it and reports its mark, which A
  // goes on above.
  TempDir dir_b;
  const ha::SeqKey key{sa_tunnel_id("t1"), 8193};
  ha::Reserve rb;
  REQUIRE_FALSE(rb.open(dir_b.path, 100));
  REQUIRE(rb.cover(nullptr, 0, {{key, 3000}}, 1));
  ha::Reserve again;
  REQUIRE_FALSE(again.open(dir_b.path, 100));
  Harness b(config, 1, start_of(again));
  SaState& sa = outbound(b);
  REQUIRE(sa.seq >= 3000);
  REQUIRE(sa.packets == 0);
  const ha::SaValues round = {{ha::name_of(sa), 600}};
  CHECK(ha::sent_past(b.tables->sas, max_sas, round));
  auto past = ha::past_records(b.tables->sas, max_sas, round);
  REQUIRE(past.size() == 1);
  CHECK(past[0].sa.value == sa.seq);
  // An SA this run started at 0 (no mark) and never sent on used nothing: it acks.
  sa.started_at_mark = 0;
  CHECK_FALSE(ha::sent_past(b.tables->sas, max_sas, round));
}

TEST_CASE("HA fence: at a split brain's heal the active goes on above the numbers the standby sent, then acks resume") {
  // A active, B standby, one outbound SA, margin 1000. B acks A's round at 300; the split: B
  // takes over from it and sends, A sends to its fence; healed, B is standby again and has sent
  // past A's value: it withholds its ack and tells A its number, A goes on above it. B's copy of
  // the SA is a bare SaState (one harness at a time fits the unit tests' memory).
  constexpr uint64_t margin = 1000;
  std::set<uint64_t> used;
  Harness a(config);
  SaState& sa_a = outbound(a);
  const uint16_t slot_a = slot_of(a, sa_a);
  SaState sa_b;
  sa_b.spi = sa_a.spi;
  sa_b.tunnel_id = sa_a.tunnel_id;
  SaState* b_sas[2] = {nullptr, &sa_b};
  REQUIRE(none_again(used, send(a, 300)));
  ha::apply_fences(a.tables->sas, max_sas, {{slot_a, ha::name_of(sa_a), 300}}, margin);  // B acked the round at 300
  ha::PeerSas held;
  held.take(ha::round_record(sa_a, 0));
  held.round(true);
  // The split: B takes over from 300 and sends 200, A goes on to its fence.
  std::vector<ha::TakeoverRecord> advances;
  ha::SaFloors floors;
  REQUIRE(ha::take_over(b_sas, 2, held, margin, advances, floors) == 0);
  for (auto& t : advances) sa_b.seq = std::max(sa_b.seq, t.record.sa.value);
  CHECK(sa_b.seq == 300 + margin);
  std::vector<uint64_t> by_b;
  for (int i = 0; i < 200; i++) by_b.push_back(++sa_b.seq);  // as encapsulate numbers them
  sa_b.packets = 200;
  CHECK(none_again(used, by_b));
  auto seqs = send(a, 1200);
  CHECK(seqs.size() == margin - 1);
  CHECK(none_again(used, seqs));
  // Healed: A's round says 1299; B sent to 1500.
  ha::SaValues round{{ha::name_of(sa_a), sa_a.seq}};
  REQUIRE(ha::sent_past(b_sas, 2, round));
  auto past = ha::past_records(b_sas, 2, round);
  REQUIRE(past.size() == 1);
  CHECK(past[0].sa.value == 1500);
  CHECK(ha::name_of(past[0]) == ha::name_of(sa_a));
  CHECK(send(a, 10).empty());  // without the raise A stays at its fence (a static SA: for good)
  advances.clear();
  CHECK(ha::raise_past(a.tables->sas, max_sas, past, advances) == 1);
  REQUIRE(advances.size() == 1);
  for (auto& t : advances) sa_a.seq = std::max(sa_a.seq, t.record.sa.value);  // the owner's advance_sa
  CHECK(ha::raise_past(a.tables->sas, max_sas, past, advances) == 0);         // once applied: nothing more
  // A's next round says 1500: B has not sent past it and acks; the fence moves on.
  round = {{ha::name_of(sa_a), sa_a.seq}};
  CHECK_FALSE(ha::sent_past(b_sas, 2, round));
  CHECK(ha::past_records(b_sas, 2, round).empty());
  ha::apply_fences(a.tables->sas, max_sas, {{slot_a, ha::name_of(sa_a), sa_a.seq}}, margin);
  seqs = send(a, 100);
  REQUIRE(seqs.size() == 100);
  CHECK(seqs.front() == 1501);
  CHECK(none_again(used, seqs));
  // A number behind A's moves nothing.
  SyncRecord behind = past[0];
  behind.sa.value = 10;
  advances.clear();
  CHECK(ha::raise_past(a.tables->sas, max_sas, {behind}, advances) == 0);
}

TEST_CASE("HA: an outbound SA the peer negotiated, added on an active node, starts past what the peer may have sent") {
  // docs/ha.md, "An SA the peer negotiated": the pair's other node negotiated t1's CHILD_SA and
  // may have sent on it; this node, active, adds it from the IKE sync (SA_ORIGIN_PEER). It starts
  // as if held at the takeover: at the margin (nothing held), held + margin, or fenced where it
  // is when what the peer sends cannot be bounded. Locally negotiated (unset or LOCAL): at 0.
  constexpr uint64_t margin = 1000;
  auto with_origin = [](const std::string& origin) {
    std::string c = config;
    const std::string out = R"({"spi": 8193, "tunnel": "t1", "inbound": false,)";
    c.replace(c.find(out), out.size(), out + (origin.empty() ? "" : R"( "origin": ")" + origin + R"(",)"));
    return c;
  };
  ha::PeerSas peer;    // what this node held of the peer at its takeover (a node that starts: heard)
  peer.fenced = true;  // a whole round said the peer fences the SAs it makes
  auto active = [&](uint64_t tunnel, uint32_t spi) { return ha::peer_sa_start(peer, {tunnel, spi, false}, margin); };
  auto first_sent = [&](const std::string& origin) {
    Harness h(with_origin(origin), 1, {}, active);
    auto seqs = send(h, 3);
    return seqs.empty() ? uint64_t(0) : seqs.front();
  };
  CHECK(first_sent("SA_ORIGIN_PEER") == margin + 1);
  CHECK(first_sent("SA_ORIGIN_LOCAL") == 1);
  CHECK(first_sent("") == 1);  // unset: as local (a static SA, an older medix-cp)
  // No whole round heard since this node's start: the peer's numbers cannot be bounded.
  peer.fenced = false;
  {
    Harness h(with_origin("SA_ORIGIN_PEER"), 1, {}, active);
    CHECK(send(h, 3).empty());
    CHECK(h.drops(Drop::ha_sa_fenced) == 3);
  }
  peer.fenced = true;
  // A value held for it (the peer's rounds had it): past it by the margin.
  peer.values[{sa_tunnel_id("t1"), 8193, false}] = 700;
  CHECK(first_sent("SA_ORIGIN_PEER") == 700 + margin + 1);
  // The peer had no fence on it (no ack): unbounded, fenced where it is, nothing sent.
  peer.unfenced.insert({sa_tunnel_id("t1"), 8193, false});
  {
    Harness h(with_origin("SA_ORIGIN_PEER"), 1, {}, active);
    CHECK(send(h, 3).empty());
    CHECK(h.drops(Drop::ha_sa_fenced) == 3);
  }
  // The same start with numbers on disk above it: the higher of the two.
  peer = ha::PeerSas{};
  peer.fenced = true;
  {
    TempDir dir;
    ha::Reserve r;
    REQUIRE_FALSE(r.open(dir.path, 100));
    REQUIRE(r.cover(nullptr, 0, {{{sa_tunnel_id("t1"), 8193}, 5000}}, 1));
    Harness h(with_origin("SA_ORIGIN_PEER"), 1, start_of(r), active);
    CHECK(outbound(h).seq >= 5000);  // the mark (a block past the value covered), not the margin
  }
  // An origin this build does not know is refused by its path, nothing applied.
  Harness h(config);
  auto o = ops(R"([{"op": "CREATE", "object": {"sa": {"spi": 8195, "tunnel": "t1", "inbound": false,
    "cipher": "AES_GCM_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODxAREhM="}}}])");
  o[0].object.mutable_sa()->set_origin(static_cast<medix::dataplane::v1::SaOrigin>(7));  // as a client may send it
  auto result = h.apply(o);
  CHECK(result.code == Code::invalid_argument);
  CHECK(result.message.find("operations[0].sa.origin") != std::string::npos);
}

TEST_CASE(
    "the peer file: written for a fenced round before the ack, a block above; removed at a takeover; a bad one "
    "refused by file and line") {
  TempDir dir;
  const std::string file = dir.path + "/ha-peer";
  const ha::SeqKey key{sa_tunnel_id("t1"), 8193}, other{sa_tunnel_id("t2"), 9000};
  ha::SeqMarks back;
  {
    ha::Reserve r;
    REQUIRE_FALSE(r.open(dir.path, 100));
    CHECK(started(r, true).proven.empty());  // none yet
    CHECK_FALSE(r.status().peer_found);
    CHECK(r.status().peer_written_ms == -1);
    // A round of the peer's with an SA unfenced: nothing is proved, nothing written.
    CHECK(r.prove({{key, 1500}}, false, 1));
    CHECK(access(file.c_str(), F_OK) != 0);
    // All fenced: each SA's start, a block above, durable before the ack.
    CHECK(r.prove({{key, 1500}, {other, 2000}}, true, 2));
    REQUIRE_FALSE(ha::read_peer_file(file, back));
    CHECK(back == ha::SeqMarks{{key, 1600}, {other, 2100}});
    CHECK(access((file + ".tmp").c_str(), F_OK) != 0);
    // Shown (GetHaSync's peer_file_*): on disk, its SAs, when written (prove's clock: a moment ago).
    ha::ReserveStatus shown = r.status(2 + 5000000);
    CHECK(shown.peer_file == file);
    CHECK((shown.peer_on_disk && shown.peer_sas == 2 && shown.peer_written_ms == 5));
    CHECK_FALSE(shown.peer_found);
    // Within the block: no write. Past it, or a round without `other` (gone on the peer): written.
    CHECK(r.prove({{key, 1550}, {other, 2050}}, true, 3));
    CHECK(r.status().writes == 1);
    CHECK(r.prove({{key, 1700}}, true, 4));
    REQUIRE_FALSE(ha::read_peer_file(file, back));
    CHECK(back == ha::SeqMarks{{key, 1800}});
    // Read at the next start.
    ha::Reserve again;
    REQUIRE_FALSE(again.open(dir.path, 100));
    CHECK(started(again, true).proven == ha::SaValues{{{key.tunnel, key.spi, false}, 1800}});
    shown = again.status();
    CHECK((shown.peer_found && shown.peer_found_sas == 1 && shown.peer_on_disk && shown.peer_sas == 1));
    CHECK(shown.peer_written_ms == -1);  // not written since this start
    // This node becomes active: removed (and a round that shows an SA unfenced removes it too).
    CHECK(r.unprove());
    CHECK(access(file.c_str(), F_OK) != 0);
    ha::Reserve after;
    REQUIRE_FALSE(after.open(dir.path, 100));
    CHECK(started(after, true).proven.empty());
    CHECK_FALSE(after.status().peer_found);
    CHECK_FALSE(r.status().peer_on_disk);
    CHECK(after.prove({{key, 1700}}, true, 5));
    CHECK(after.prove({{key, 1700}}, false, 6));
    CHECK(access(file.c_str(), F_OK) != 0);
  }
  for (const auto& [text, error] : std::vector<std::pair<std::string, std::string>>{
           {"", "empty"},
           {"medix-dp sa-seq 1\n", ":1: not a medix-dp ha-peer file"},
           {"medix-dp ha-peer 1\n1 2 x\n", ":2: not \"TUNNEL SPI START\""}}) {
    std::ofstream(file) << text;
    auto e = ha::read_peer_file(file, back);
    REQUIRE(e);
    CHECK(e->find(file) == 0);
    CHECK(e->find(error) != std::string::npos);
    CHECK(back.empty());
  }
  // A node with a bad peer file does not start (it would trust, or drop, a bound by mistake).
  ha::Reserve r;
  auto e = r.open(dir.path, 100);
  REQUIRE(e);
  CHECK(e->find("--state-dir " + file + ":2") == 0);
  CHECK_FALSE(r.configured());
}

TEST_CASE(
    "HA: a standby whose acks fenced the active, restarted, takes over above the active's numbers from the peer file; "
    "not once it was active since, nor when the active shows an SA unfenced") {
  // As "a standby fresh from a restart that heard no round" above: A active, B standby, one
  // static outbound SA, margin 1000. B acks A's round at 500, all of A's SAs fenced: the peer
  // file says 500 + margin (a block above) first. A sends to its fence, B restarts, A dies, B
  // takes over before it hears a round.
  TempDir dir_b;
  const ha::SeqKey key{sa_tunnel_id("t1"), 8193};
  std::set<uint64_t> sent_a;
  {
    Harness a(config);
    b_fences_a(a, dir_b.path, sent_a);
  }
  const uint64_t a_top = *sent_a.rbegin();
  auto take_over = [&](Harness& h, const ha::PeerSas& peer) { return take_over_t1(h, peer, margin); };
  auto restarted = [](ha::Reserve& r) { return started(r, true); };
  {
    ha::Reserve rb;
    REQUIRE_FALSE(rb.open(dir_b.path, block));
    Harness b(config, 1, start_of(rb));
    ha::PeerSas peer = restarted(rb);
    REQUIRE(peer.proven.size() == 1);
    // An SA the peer negotiated, added after the takeover, starts there too.
    CHECK(ha::peer_sa_start(peer, {key.tunnel, key.spi, false}, margin) == 500 + margin + block);
    // Control: before this change (nothing proved) the SA stopped here.
    CHECK(take_over(b, peer) == 0);
    SaState& sa = outbound(b);
    CHECK(sa.fence == ha::no_fence);
    rb.pass(b.tables->sas, max_sas, 1);
    auto seqs = send(b, 50);
    REQUIRE(seqs.size() == 50);
    CHECK(seqs.front() > a_top);
    std::set<uint64_t> all = sent_a;
    CHECK(none_again(all, seqs));
    // An SA the file does not name (made on A since B's last write): fenced where it is.
    CHECK_FALSE(ha::peer_sa_start(peer, {key.tunnel, 4242, false}, margin));
    // A whole round heard since the start: what it says counts, not the file.
    ha::PeerSas heard = peer;
    heard.round(false);
    CHECK_FALSE(ha::peer_sa_start(heard, {key.tunnel, key.spi, false}, margin));
    // A shows an SA without a fence (it started active: no takeover fenced it): nothing proved.
    SyncRecord r{};
    r.kind = uint8_t(SyncKind::sa_outbound);
    r.sa.tunnel = key.tunnel;
    r.sa.spi = 4242;
    r.sa.value = 7;
    r.sa.flags = sa_unfenced;
    peer.take(r);
    CHECK_FALSE(ha::peer_sa_start(peer, {key.tunnel, key.spi, false}, margin));
    // B now active: the file goes (Sync::takeover) before B sends a round A could take over from.
    REQUIRE(rb.unprove());
  }
  // Control: B was active since. A may have taken over from B's rounds and sent on, unfenced,
  // far past the old bound: B, restarted again, proves nothing and fences the SA where it is.
  ha::Reserve rb;
  REQUIRE_FALSE(rb.open(dir_b.path, block));
  Harness b(config, 1, start_of(rb));
  ha::PeerSas peer = restarted(rb);
  CHECK(peer.proven.empty());
  CHECK(take_over(b, peer) == 1);
  rb.pass(b.tables->sas, max_sas, 1);
  CHECK(send(b, 50).empty());
}

TEST_CASE("HA: a node started active with a peer file takes nothing from it and removes it before its first round") {
  // docs/ha.md, "A restart that keeps the bound": B's acks fenced A, then B is started with
  // --ha-role active. It takes over nothing, and A may take over from its rounds (unfenced, or
  // above B's values) and send past the file's bound: B trusts nothing of the file, neither now
  // (an SA A negotiated, added on B, is fenced where it is: no round of A's heard) nor after a
  // later restart as standby (the file is gone before B's first round: Sync::start sends none
  // until it is).
  TempDir dir_b;
  const ha::SeqKey key{sa_tunnel_id("t1"), 8193};
  const std::string file = dir_b.path + "/ha-peer";
  std::set<uint64_t> sent_a;
  {
    Harness a(config);
    b_fences_a(a, dir_b.path, sent_a);
  }
  {
    ha::Reserve rb;
    REQUIRE_FALSE(rb.open(dir_b.path, block));
    ha::PeerSas peer = started(rb, false);
    CHECK(peer.proven.empty());
    CHECK_FALSE(ha::peer_sa_start(peer, {key.tunnel, key.spi, false}, margin));
    CHECK(access(file.c_str(), F_OK) != 0);
    // Shown: found at the start (naming t1), not on disk now.
    ha::ReserveStatus shown = rb.status();
    CHECK((shown.peer_found && shown.peer_found_sas == 1));
    CHECK_FALSE(shown.peer_on_disk);
  }
  // B restarted as standby, A gone before B hears a round: nothing proved, the SA fenced where
  // it is, nothing sent (control: with the file, B started it at 500 + margin + a block).
  ha::Reserve rb;
  REQUIRE_FALSE(rb.open(dir_b.path, block));
  Harness b(config, 1, start_of(rb));
  ha::PeerSas peer = started(rb, true);
  CHECK(peer.proven.empty());
  CHECK_FALSE(rb.status().peer_found);
  CHECK(take_over_t1(b, peer, margin) == 1);
  rb.pass(b.tables->sas, max_sas, 1);
  CHECK(send(b, 50).empty());
}

TEST_CASE(
    "HA: the peer file proves nothing once the peer showed an SA without a fence, even when that SA, added again with "
    "the same tunnel and SPI, shows a fence later") {
  // B's acks fenced A (B's file names t1 at 500 + margin + a block); B restarts. A loses its
  // fences without a takeover from B (it is started --ha-role active, say): its SAs have none,
  // and t1's goes on past the file's bound. B hears one datagram of A's (not a whole round): u,
  // another SA, without a fence (t1's datagram lost). Then u is removed and added again on A
  // with the same tunnel, SPI and keys: an SA the peer negotiated that A cannot bound, fenced
  // where it is (ipsec/commit.cpp), so A's next datagram shows u with a fence. B takes over
  // before a whole round: t1 must not start from the file (A sent past it), it is fenced where it
  // is. Before this rule (the file trusted while no SA is unfenced *now*), B started t1 at the
  // file's start and sent numbers A had sent.
  TempDir dir_b;
  std::set<uint64_t> sent_a;
  {
    Harness a(config);
    b_fences_a(a, dir_b.path, sent_a);
    ha::clear_fences(a.tables->sas, max_sas);
    auto seqs = send(a, 2000);
    REQUIRE(seqs.size() == 2000);
    REQUIRE(none_again(sent_a, seqs));
  }
  CHECK(*sent_a.rbegin() > 500 + margin + block);  // past the file's start
  ha::Reserve rb;
  REQUIRE_FALSE(rb.open(dir_b.path, block));
  ha::PeerSas peer = started(rb, true);
  REQUIRE(peer.proven.size() == 1);
  auto u = std::make_unique<SaState>();
  u->tunnel_id = sa_tunnel_id("t1");
  u->spi = 8195;
  u->seq = 40;
  u->fence = ha::no_fence;
  peer.take(ha::round_record(*u, 0));
  CHECK(peer.proven.empty());
  u->fence = u->seq;  // added again and fenced where it is
  peer.take(ha::round_record(*u, 0));
  CHECK(peer.unfenced.empty());  // what the peer says now: no SA without a fence
  CHECK(peer.proven.empty());    // what it said since the start still counts
  Harness b(config, 1, start_of(rb));
  CHECK(take_over_t1(b, peer, margin) == 1);
  rb.pass(b.tables->sas, max_sas, 1);
  auto b_seqs = send(b, 50);
  CHECK(b_seqs.empty());
  CHECK(none_again(sent_a, b_seqs));
}
