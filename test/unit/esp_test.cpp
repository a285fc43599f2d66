// ESP paths the packet tests cannot reach from the wire: a crypto job that IPsec-MB does not
// complete (the packet must be dropped, never sent unencrypted), and ESP that is not ours.
#include <rte_ip.h>

#include <catch2/catch.hpp>

#include "fixture.h"
#include "ha/fence.h"
#include "ha/wire.h"
#include "harness.h"
#include "ipsec/sa.h"
#include "nat/sync.h"

using namespace frame;

namespace {
// Tenant hosp behind tunnel t1 over tenant carrier, AES-CBC-128 + HMAC-SHA-256-128 both ways.
const std::string tunnel_config = R"({
  "schema_version": 1,
  "ports": [{"name": "p0", "device": "net_null0"}, {"name": "p1", "device": "net_null1"}],
  "tenants": [{"name": "carrier"}, {"name": "hosp"}],
  "interfaces": [
    {"name": "c0", "tenant": "carrier", "port": "p0", "addresses": ["198.51.100.1/24"], "mac": "02:00:00:00:00:01"},
    {"name": "h0", "tenant": "hosp", "port": "p1", "addresses": ["10.0.1.1/24"], "mac": "02:00:00:00:01:01"}
  ],
  "tunnels": [{"name": "t1", "tenant": "hosp", "underlay_tenant": "carrier", "local_address": "198.51.100.1",
               "remote_address": "198.51.100.2", "remote_selectors": ["10.0.0.0/24"]}],
  "routes": [{"tenant": "hosp", "prefix": "10.0.0.0/24", "via": {"interface": "t1"}},
             {"tenant": "carrier", "prefix": "203.0.113.0/24", "via": {"interface": "c0", "address": "198.51.100.9"}}],
  "neighbours": [{"interface": "c0", "address": "198.51.100.2", "mac": "02:00:00:00:00:02"},
                 {"interface": "c0", "address": "198.51.100.9", "mac": "02:00:00:00:00:09"},
                 {"interface": "h0", "address": "10.0.1.10", "mac": "02:00:00:00:01:10"}],
  "sas": [
    {"spi": 4097, "tunnel": "t1", "inbound": true, "cipher": "AES_CBC_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODw==",
     "integrity": "HMAC_SHA256_128", "integrity_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
    {"spi": 8193, "tunnel": "t1", "inbound": false, "cipher": "AES_CBC_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODw==",
     "integrity": "HMAC_SHA256_128", "integrity_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
  ]
})";

Bytes from_carrier(const Bytes& ip) { return ether("02:00:00:00:00:01", "02:00:00:00:00:02", 0x0800) + ip; }
Bytes from_host(const Bytes& ip) { return ether("02:00:00:00:01:01", "02:00:00:00:01:10", 0x0800) + ip; }

// ESP with a CBC-sized body: SPI, sequence 1, IV, two blocks, an ICV of zeros (wrong).
Bytes esp(uint32_t spi) {
  Bytes b = {uint8_t(spi >> 24), uint8_t(spi >> 16), uint8_t(spi >> 8), uint8_t(spi), 0, 0, 0, 1};
  b.resize(8 + 16 + 32 + 16, 0x5a);
  std::fill(b.end() - 16, b.end(), 0);
  return b;
}

SaState& inbound_sa(Harness& h, uint32_t spi) {
  void* slot = nullptr;
  REQUIRE(rte_hash_lookup_data(h.tables->sa_index, &spi, &slot) >= 0);
  return *h.tables->sas[reinterpret_cast<uintptr_t>(slot)];
}

SaState& outbound_sa(Harness& h) {
  for (const auto& f : h.tables->interfaces)
    if (f.name == "t1") return *h.tables->sas[f.outbound_sa];
  FAIL("no tunnel t1");
  throw;
}
}  // namespace

TEST_CASE("an outbound packet whose crypto job fails is dropped, never sent in the clear") {
  Harness h(tunnel_config);
  Bytes inner = ipv4("10.0.1.10", "10.0.0.5", 17, udp(1000, 9, 100));
  h.receive(1, from_host(inner));
  auto out = h.sent(0);
  REQUIRE(out.size() == 1);  // the control: encrypted and sent to the peer
  CHECK(out[0][14 + 9] == 50);
  CHECK(h.total_drops() == 0);

  // A key length IPsec-MB refuses: the job comes back INVALID_ARGS, its output unwritten.
  SaState& sa = outbound_sa(h);
  uint8_t key_len = sa.key_len;
  sa.key_len = 15;
  h.receive(1, from_host(inner));
  h.receive(1, from_host(inner));
  sa.key_len = key_len;
  CHECK(h.sent(0).empty());
  CHECK(h.sent(1).empty());
  CHECK(h.drops(Drop::esp_crypto_failed) == 2);
  CHECK(sa.drops_of(Drop::esp_crypto_failed) == 2);
  CHECK(h.total_drops() == 2);

  h.receive(1, from_host(inner));  // the SA works again
  CHECK(h.sent(0).size() == 1);
}

TEST_CASE("an inbound packet whose crypto job fails is dropped before its ICV is judged") {
  Harness h(tunnel_config);
  Bytes packet = from_carrier(ipv4("198.51.100.2", "198.51.100.1", 50, esp(4097)));
  h.receive(0, packet);
  CHECK(h.drops(Drop::esp_bad_icv) == 1);  // the control: a wrong ICV

  SaState& sa = inbound_sa(h, 4097);
  sa.key_len = 15;
  h.receive(0, packet);
  sa.key_len = 16;
  CHECK(h.drops(Drop::esp_crypto_failed) == 1);
  CHECK(sa.drops_of(Drop::esp_crypto_failed) == 1);
  CHECK(h.drops(Drop::esp_bad_icv) == 1);
  CHECK(h.sent(1).empty());
}

TEST_CASE("ESP that is not addressed to one of our tunnel endpoints is routed, not dropped") {
  Harness h(tunnel_config);
  // Someone else's ESP through the carrier's network, with an SPI of ours and with another.
  for (uint32_t spi : {4097u, 0xdeadu}) {
    h.receive(0, from_carrier(ipv4("198.51.100.2", "203.0.113.7", 50, esp(spi))));
    auto out = h.sent(0);
    REQUIRE(out.size() == 1);
    CHECK(out[0][5] == 0x09);                           // to the carrier's next hop
    CHECK(out[0][14 + 8] == 63);                        // TTL decremented: forwarded
    CHECK(out[0][14 + 20 + 3] == uint8_t(spi & 0xff));  // the ESP untouched
  }
  // ESP in UDP too.
  Bytes in_udp = udp(4500, 4500, 0);
  in_udp[5] = uint8_t(8 + esp(4097).size());
  in_udp.resize(8);
  in_udp = in_udp + esp(4097);
  h.receive(0, from_carrier(ipv4("198.51.100.2", "203.0.113.7", 17, in_udp)));
  CHECK(h.sent(0).size() == 1);
  CHECK(h.total_drops() == 0);
  CHECK(inbound_sa(h, 4097).packets == 0);

  // To our own endpoint: an unknown SPI is dropped as such.
  h.receive(0, from_carrier(ipv4("198.51.100.2", "198.51.100.1", 50, esp(0xdead))));
  CHECK(h.drops(Drop::esp_unknown_spi) == 1);
}

TEST_CASE("a tunnel's outer DSCP is the inner's, or its outer_dscp; ECN is copied either way") {
  Harness h(tunnel_config);
  Bytes inner = ipv4("10.0.1.10", "10.0.0.5", 17, udp(1000, 9, 100));
  inner[1] = 34 << 2 | 1;  // AF41, ECT(1)
  inner[10] = inner[11] = 0;
  uint16_t sum = rte_ipv4_cksum(reinterpret_cast<const rte_ipv4_hdr*>(inner.data()));
  inner[10] = uint8_t(sum), inner[11] = uint8_t(sum >> 8);
  h.receive(1, from_host(inner));
  auto out = h.sent(0);
  REQUIRE(out.size() == 1);
  CHECK(out[0][14 + 1] == (34 << 2 | 1));  // copied (DSCP_COPY, the default)
  std::string tunnel = R"("name": "t1", "tenant": "hosp", "underlay_tenant": "carrier", "local_address": "198.51.100.1",
    "remote_address": "198.51.100.2", "remote_selectors": ["10.0.0.0/24"])";
  auto bad = h.apply(ops(R"([{"op": "UPDATE", "object": {"tunnel": {)" + tunnel + R"(, "outer_dscp": 46}}}])"));
  CHECK(bad.message.find("operations[0].tunnel.outer_dscp: is for DSCP_SET") == 0);
  bad = h.apply(
      ops(R"([{"op": "UPDATE", "object": {"tunnel": {)" + tunnel + R"(, "dscp": "DSCP_SET", "outer_dscp": 64}}}])"));
  CHECK(bad.message.find("operations[0].tunnel.outer_dscp: ") == 0);
  REQUIRE(h.apply(ops(R"([{"op": "UPDATE", "object": {"tunnel": {)" + tunnel +
                      R"(, "dscp": "DSCP_SET", "outer_dscp": 46}}}])"))
              .code == medix::dp::Code::ok);
  h.receive(1, from_host(inner));
  out = h.sent(0);
  REQUIRE(out.size() == 1);
  CHECK(out[0][14 + 1] == (46 << 2 | 1));  // set, ECN still the inner's
  CHECK(rte_raw_cksum(out[0].data() + 14, 20) == 0xffff);
}

TEST_CASE("HA sync: a takeover advances the outbound SA past the active's and closes the inbound window") {
  Harness h(tunnel_config);
  SyncWorker sync{};
  sync.in = rte_ring_create_elem("unit_sync_in_esp", sizeof(SyncRecord), 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  REQUIRE(sync.in);
  h.worker.sync = &sync;
  SaState& out = outbound_sa(h);
  SaState& in = inbound_sa(h, 4097);
  uint16_t out_slot = 0, in_slot = 0;
  for (uint16_t s = 1; s < max_sas; s++) {
    if (h.tables->sas[s] == &out) out_slot = s;
    if (h.tables->sas[s] == &in) in_slot = s;
  }
  REQUIRE(out_slot);
  REQUIRE(in_slot);
  out.seq = 10;  // this node's own, before it was standby
  auto record = [](uint16_t slot, uint32_t spi, bool inbound, uint64_t value) {
    SyncRecord r{};
    r.kind = uint8_t(SyncKind::sa_takeover);
    r.sa.slot = slot;
    r.sa.spi = spi;
    r.sa.inbound = inbound;
    r.sa.value = value;
    return r;
  };
  // The active had sent 5000 (the sync thread adds the margin); the inbound top was 700. A
  // record naming another SPI for the slot is refused.
  for (SyncRecord r : {record(out_slot, 8193, false, 5000 + 29760000), record(in_slot, 4097, true, 700),
                       record(out_slot, 1234, false, 1)})
    REQUIRE(rte_ring_sp_enqueue_elem(sync.in, &r, sizeof r) == 0);
  sync_install(h.worker);
  CHECK(sync.sas_advanced == 2);
  CHECK(sync.install_failed == 1);
  CHECK(out.seq == 5000 + 29760000);
  CHECK(in.replay.top == 700);
  CHECK(in.replay.check(700) == ReplayWindow::replayed);
  CHECK(in.replay.check(650) == ReplayWindow::replayed);  // seen by the active, maybe: refused
  CHECK(in.replay.check(701) == ReplayWindow::accept);
  // The next packet out carries a sequence number the carrier never saw.
  h.receive(1, from_host(ipv4("10.0.1.10", "10.0.0.5", 17, udp(1000, 9, 100))));
  auto sent = h.sent(0);
  REQUIRE(sent.size() == 1);
  uint32_t seq = uint32_t(sent[0][14 + 20 + 4]) << 24 | uint32_t(sent[0][14 + 20 + 5]) << 16 |
                 uint32_t(sent[0][14 + 20 + 6]) << 8 | sent[0][14 + 20 + 7];
  CHECK(seq == 5000 + 29760000 + 1);
  h.worker.sync = nullptr;
  rte_ring_free(sync.in);
}

namespace {
// Packets from the host into tunnel t1, `n` in bursts of up to 32 (as a port hands them); the
// number sent to the carrier, and their sequence numbers.
std::vector<uint32_t> send_into_tunnel(Harness& h, unsigned n) {
  std::vector<uint32_t> seqs;
  std::vector<uint8_t> frame = from_host(ipv4("10.0.1.10", "10.0.0.5", 17, udp(1000, 9, 100)));
  while (n) {
    unsigned k = std::min(n, 32u);
    std::vector<std::vector<uint8_t>> frames(k, frame);
    process_burst(h.worker, 1, h.burst(frames).data(), uint16_t(k));
    for (const auto& f : h.sent(0))
      seqs.push_back(uint32_t(f[14 + 20 + 4]) << 24 | uint32_t(f[14 + 20 + 5]) << 16 | uint32_t(f[14 + 20 + 6]) << 8 |
                     f[14 + 20 + 7]);
    n -= k;
  }
  return seqs;
}

// SA events of a kind the worker queued since the last call (the ring is the harness's).
unsigned events_of(Harness& h, SaEventKind kind) {
  unsigned n = 0;
  SaEventMessage e;
  while (rte_ring_sc_dequeue_elem(h.events, &e, sizeof e) == 0) n += e.kind == uint8_t(kind);
  return n;
}

uint16_t slot_of(Harness& h, const SaState& sa) {
  for (uint16_t s = 1; s < max_sas; s++)
    if (h.tables->sas[s] == &sa) return s;
  return 0;
}
}  // namespace

TEST_CASE(
    "HA fence: an outbound SA stops at its fence, dropped as ha_sa_fenced, told once; it goes on when the fence "
    "moves") {
  Harness h(tunnel_config);
  SaState& sa = outbound_sa(h);
  events_of(h, SaEventKind::ha_fenced);
  // No HA sync: no fence, as a single node always was.
  CHECK(sa.fence == ha::no_fence);
  CHECK(send_into_tunnel(h, 40).size() == 40);

  sa.fence = 100;  // as the sync thread publishes it
  auto seqs = send_into_tunnel(h, 100);
  REQUIRE(seqs.size() == 60);
  CHECK(seqs.front() == 41);
  CHECK(seqs.back() == 100);  // the fence itself is the last one sent
  CHECK(sa.seq == 100);
  CHECK(h.drops(Drop::ha_sa_fenced) == 40);
  CHECK(sa.drops_of(Drop::ha_sa_fenced) == 40);
  CHECK(events_of(h, SaEventKind::ha_fenced) == 1);  // medix-cp is asked to rekey once, not per packet
  CHECK(send_into_tunnel(h, 10).empty());
  CHECK(events_of(h, SaEventKind::ha_fenced) == 0);

  // The standby acks again: the fence moves on and so does the SA, from where it stopped.
  sa.fence = 150;
  seqs = send_into_tunnel(h, 64);
  REQUIRE(seqs.size() == 50);
  CHECK(seqs.front() == 101);
  CHECK(seqs.back() == 150);
  CHECK(events_of(h, SaEventKind::ha_fenced) == 1);  // reached again: told again
  CHECK(h.drops(Drop::ha_sa_fenced) == 40 + 10 + 14);
}

TEST_CASE(
    "HA fence: while the standby acks each round the fence stays ahead; without acks it holds at acked + margin - 1") {
  Harness h(tunnel_config);
  SaState& sa = outbound_sa(h);
  SaState& in = inbound_sa(h, 4097);
  uint16_t slot = slot_of(h, sa);
  REQUIRE(slot);
  events_of(h, SaEventKind::ha_fenced);
  constexpr uint64_t margin = 1000;
  ha::SentRounds rounds;     // the active's
  ha::RoundTracker standby;  // the standby's
  uint64_t counter = 5000;
  // One SA interval: the active's round (both SAs, in one datagram), as send_sas makes it.
  auto round = [&] {
    SyncRecord r[2]{};
    r[0].kind = uint8_t(SyncKind::sa_outbound);
    r[0].sa.spi = sa.spi;
    r[0].sa.value = sa.seq;
    r[1].kind = uint8_t(SyncKind::sa_inbound);
    r[1].sa.spi = in.spi;
    r[1].sa.inbound = 1;
    r[1].sa.value = in.replay.top;
    rounds.sent(++counter, {{slot, sa.spi, sa.seq}});
    return standby.take(counter, ha::flag_sa_first | ha::flag_sa_last, r, 2);
  };
  auto ack = [&] {
    const auto* acked = rounds.acked(standby.last());
    REQUIRE(acked);
    CHECK(ha::apply_fences(h.tables->sas, max_sas, *acked, margin) == 1);  // the outbound SA, not the inbound
  };
  REQUIRE(round());
  ack();
  CHECK(sa.fence == margin - 1);
  CHECK(in.fence == ha::no_fence);
  // 40 intervals of 400 packets: 16 times the margin, none fenced while the acks come.
  unsigned sent = 0;
  for (int i = 0; i < 40; i++) {
    sent += unsigned(send_into_tunnel(h, 400).size());
    REQUIRE(round());
    ack();
  }
  CHECK(sent == 16000);
  CHECK(h.drops(Drop::ha_sa_fenced) == 0);
  CHECK(sa.fence == 16000 + margin - 1);
  // The sync link cut: rounds go on, no ack comes. The SA sends up to the last acked value
  // (16000) + margin - 1 and no further: a standby taking over now starts at 16000 + margin + 1.
  sent = 0;
  for (int i = 0; i < 5; i++) {
    REQUIRE(round());  // taken by no one
    sent += unsigned(send_into_tunnel(h, 400).size());
  }
  CHECK(sent == margin - 1);
  CHECK(sa.seq == 16000 + margin - 1);
  CHECK(h.drops(Drop::ha_sa_fenced) == 2000 - (margin - 1));
  CHECK(events_of(h, SaEventKind::ha_fenced) == 1);
  // Acks return: the fence moves past the SA again and it goes on.
  REQUIRE(round());
  ack();
  CHECK(send_into_tunnel(h, 100).size() == 100);
}

TEST_CASE("HA fence: a round with a lost datagram is not acked; an SA not in the acked round is fenced from 0") {
  SyncRecord out[30]{};
  for (unsigned i = 0; i < 30; i++) {
    out[i].kind = uint8_t(SyncKind::sa_outbound);
    out[i].sa.spi = 100 + i;
    out[i].sa.value = 1000 * i;
  }
  ha::RoundTracker t;
  // 30 SAs: two datagrams, 25 and 5, counters 10 and 11.
  CHECK_FALSE(t.take(10, ha::flag_sa_first, out, 25));
  REQUIRE(t.take(11, ha::flag_sa_last, out + 25, 5));
  CHECK(t.last() == 11);
  CHECK(t.outbound().size() == 30);
  CHECK(t.outbound()[29] == std::pair<uint32_t, uint64_t>(129, 29000));
  // The first datagram of the next round lost: its last one alone is no round.
  CHECK_FALSE(t.take(13, ha::flag_sa_last, out + 25, 5));
  // A gap inside a round (a session datagram cannot come between: the round is sent at once).
  CHECK_FALSE(t.take(14, ha::flag_sa_first, out, 25));
  CHECK_FALSE(t.take(16, ha::flag_sa_last, out + 25, 5));
  CHECK(t.last() == 11);  // still the last whole one
  REQUIRE(t.take(17, ha::flag_sa_first | ha::flag_sa_last, out, 1));
  CHECK(t.last() == 17);

  ha::SentRounds sent;
  sent.sent(11, {{1, 100, 5000}});
  CHECK(sent.acked(11));
  CHECK_FALSE(sent.acked(12));  // an ack of a round never sent moves nothing
  for (uint64_t c = 100; c < 200; c++) sent.sent(c, {});
  CHECK_FALSE(sent.acked(11));  // older than those kept

  // Fences: from the round's value; an SA made since, from 0; they only rise; inbound never.
  auto a = std::make_unique<SaState>(), b = std::make_unique<SaState>(), c = std::make_unique<SaState>();
  a->spi = 100;
  b->spi = 101;
  c->spi = 102;
  c->inbound = true;
  SaState* sas[4] = {nullptr, a.get(), b.get(), c.get()};
  CHECK(ha::apply_fences(sas, 4, {{1, 100, 5000}}, 64) == 2);
  CHECK(a->fence == 5000 + 63);
  CHECK(b->fence == 63);
  CHECK(c->fence == ha::no_fence);
  CHECK(ha::apply_fences(sas, 4, {{1, 100, 10}, {2, 101, 10}}, 64) == 2);
  CHECK(a->fence == 5000 + 63);
  CHECK(b->fence == 10 + 63);
  ha::clear_fences(sas, 4);
  CHECK(a->fence == ha::no_fence);
  CHECK(ha::fence_new_sas(sas, 4, 64) == 2);
  CHECK(a->fence == 63);
}

TEST_CASE("HA fence: a standby that sent on an SA past the active's value withholds its ack") {
  auto a = std::make_unique<SaState>(), b = std::make_unique<SaState>();
  a->spi = 100;
  b->spi = 101;
  SaState* sas[3] = {nullptr, a.get(), b.get()};
  std::vector<std::pair<uint32_t, uint64_t>> round = {{100, 5000}, {101, 7000}};
  CHECK_FALSE(ha::sent_past(sas, 3, round));  // a standby that never sent: seq 0
  a->seq = 5000 + 2000;                       // advanced at a takeover, nothing sent: no numbers used
  CHECK_FALSE(ha::sent_past(sas, 3, round));
  a->packets = 10;  // then sent on while active (a split brain): 7000 > 5000
  CHECK(ha::sent_past(sas, 3, round));
  CHECK_FALSE(ha::sent_past(sas, 3, {{100, 8000}, {101, 7000}}));  // the active is past it again
  CHECK_FALSE(ha::sent_past(sas, 3, {{101, 7000}}));               // gone from the active's rounds (rekeyed)
}
