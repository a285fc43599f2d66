// ESP paths the packet tests cannot reach from the wire: a crypto job that IPsec-MB does not
// complete (the packet must be dropped, never sent unencrypted), and ESP that is not ours.
#include <rte_ip.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <memory>

#include "fixture.h"
#include "ha/fence.h"
#include "ha/wire.h"
#include "harness.h"
#include "ipsec/sa.h"
#include "nat/sync.h"

using namespace frame;

namespace {
// Tenant hosp behind tunnel t1 over tenant carrier; tunnel_config: AES-CBC-128 + HMAC-SHA-256-128
// both ways.
const std::string tunnel_topology = R"(
  "tunnels": [{"name": "t1", "tenant": "hosp", "underlay_tenant": "carrier", "local_address": "198.51.100.1",
               "remote_address": "198.51.100.2", "remote_selectors": ["10.0.0.0/24"]}],
  "routes": [{"tenant": "hosp", "prefix": "10.0.0.0/24", "via": {"interface": "t1"}},
             {"tenant": "carrier", "prefix": "203.0.113.0/24", "via": {"interface": "c0", "address": "198.51.100.9"}}],
  "neighbours": [{"interface": "c0", "address": "198.51.100.2", "mac": "02:00:00:00:00:02"},
                 {"interface": "c0", "address": "198.51.100.9", "mac": "02:00:00:00:00:09"},
                 {"interface": "h0", "address": "10.0.1.10", "mac": "02:00:00:00:01:10"}],)";
const std::string tunnel_config = hosp_over_carrier(tunnel_topology + R"(
  "sas": [
    {"spi": 4097, "tunnel": "t1", "inbound": true, "cipher": "AES_CBC_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODw==",
     "integrity": "HMAC_SHA256_128", "integrity_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
    {"spi": 8193, "tunnel": "t1", "inbound": false, "cipher": "AES_CBC_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODw==",
     "integrity": "HMAC_SHA256_128", "integrity_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}
  ]
)");

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

  // A key length IPsec-MB refuses in the SA's job: the job comes back INVALID_ARGS, its output
  // unwritten.
  SaState& sa = outbound_sa(h);
  uint64_t key_len = sa.cbc_job.key_len_in_bytes;
  sa.cbc_job.key_len_in_bytes = 15;
  h.receive(1, from_host(inner));
  h.receive(1, from_host(inner));
  sa.cbc_job.key_len_in_bytes = key_len;
  CHECK(h.sent(0).empty());
  CHECK(h.sent(1).empty());
  CHECK(h.drops(Drop::esp_crypto_failed) == 2);
  CHECK(sa.drops_of(Drop::esp_crypto_failed) == 2);
  CHECK(h.total_drops() == 2);

  h.receive(1, from_host(inner));  // the SA works again
  CHECK(h.sent(0).size() == 1);
}

// esp_route_outer keeps a tunnel's underlay route for a generation: each change of the route,
// the neighbour or the egress interface must apply to the next packet, for jobs that complete
// in the call (GCM) and for those that stay in the lanes (CBC).
TEST_CASE("an encrypted packet follows its underlay's route, neighbour and interface as each changes") {
  std::string gcm = hosp_over_carrier(tunnel_topology + R"(
  "sas": [{"spi": 4097, "tunnel": "t1", "inbound": true, "cipher": "AES_GCM_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODxAREhM="},
          {"spi": 8193, "tunnel": "t1", "inbound": false, "cipher": "AES_GCM_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODxAREhM="}])");
  for (const auto& config : {tunnel_config, gcm}) {
    Harness h(config);
    Bytes inner = ipv4("10.0.1.10", "10.0.0.5", 17, udp(1000, 9, 100));
    // The next packet's frames on p0 and p1.
    auto next = [&] {
      h.receive(1, from_host(inner));
      return std::pair{h.sent(0), h.sent(1)};
    };
    auto change = [&](const std::string& json) { REQUIRE(h.apply(ops(json)).code == medix::dp::Code::ok); };
    for (int i = 0; i < 2; i++) {  // made, then kept
      auto [p0, p1] = next();
      REQUIRE(p0.size() == 1);
      CHECK(p0[0][5] == 0x02);  // connected: the remote is the neighbour
      CHECK(p0[0][14 + 9] == 50);
      CHECK(p1.empty());
    }
    // A route to the remote through a gateway whose MAC was learned.
    h.learn("c0", "198.51.100.8", "02:00:00:00:00:08");
    change(R"([{"op": "CREATE", "object": {"route": {"tenant": "carrier", "prefix": "198.51.100.2/32",
               "via": {"interface": "c0", "address": "198.51.100.8"}}}}])");
    auto [p0, p1] = next();
    REQUIRE(p0.size() == 1);
    CHECK(p0[0][5] == 0x08);
    // The gateway's MAC changes (learned again: no new generation).
    h.learn("c0", "198.51.100.8", "02:00:00:00:00:18");
    p0 = next().first;
    REQUIRE(p0.size() == 1);
    CHECK(p0[0][5] == 0x18);
    // The route moves to another interface, on p1 in VLAN 30.
    change(R"([{"op": "CREATE", "object": {"interface": {"name": "c1", "tenant": "carrier", "port": "p1", "vlan": 30,
               "addresses": ["192.0.2.1/24"], "mac": "02:00:00:00:02:01"}}},
             {"op": "CREATE", "object": {"neighbour": {"interface": "c1", "address": "192.0.2.9", "mac": "02:00:00:00:02:09"}}},
             {"op": "UPDATE", "object": {"route": {"tenant": "carrier", "prefix": "198.51.100.2/32",
               "via": {"interface": "c1", "address": "192.0.2.9"}}}}])");
    std::tie(p0, p1) = next();
    CHECK(p0.empty());
    REQUIRE(p1.size() == 1);
    CHECK(p1[0][5] == 0x09);
    CHECK((p1[0][12] == 0x81 && p1[0][13] == 0x00 && p1[0][15] == 30));
    CHECK(p1[0][18 + 9] == 50);
    // The interface alone changes: its VLAN, then an MTU the packet no longer fits (fragmented:
    // the outer header's DF follows the inner's, clear).
    std::string c1 =
        R"("name": "c1", "tenant": "carrier", "port": "p1", "addresses": ["192.0.2.1/24"], "mac": "02:00:00:00:02:01")";
    change(R"([{"op": "UPDATE", "object": {"interface": {)" + c1 + R"(, "vlan": 31}}}])");
    p1 = next().second;
    REQUIRE(p1.size() == 1);
    CHECK(p1[0][15] == 31);
    uint16_t outer_len = uint16_t(p1[0].size() - 18);
    change(R"([{"op": "UPDATE", "object": {"interface": {)" + c1 + R"(, "vlan": 31, "mtu": )" +
           std::to_string(outer_len - 8) + "}}}]");
    p1 = next().second;
    CHECK(p1.size() == 2);
    // The route goes: the remote is connected again.
    change(R"([{"op": "DELETE", "object": {"route": {"tenant": "carrier", "prefix": "198.51.100.2/32"}}}])");
    std::tie(p0, p1) = next();
    REQUIRE(p0.size() == 1);
    CHECK(p0[0][5] == 0x02);
    CHECK(p1.empty());
    CHECK(h.total_drops() == 0);
  }
}

TEST_CASE("an inbound packet whose crypto job fails is dropped before its ICV is judged") {
  Harness h(tunnel_config);
  Bytes packet = from_carrier(ipv4("198.51.100.2", "198.51.100.1", 50, esp(4097)));
  h.receive(0, packet);
  CHECK(h.drops(Drop::esp_bad_icv) == 1);  // the control: a wrong ICV

  SaState& sa = inbound_sa(h, 4097);
  sa.cbc_job.key_len_in_bytes = 15;  // a key length IPsec-MB refuses
  h.receive(0, packet);
  sa.cbc_job.key_len_in_bytes = 16;
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
std::vector<uint32_t> send_into_tunnel(Harness& h, unsigned n, const std::string& to = "10.0.0.5") {
  std::vector<uint32_t> seqs;
  std::vector<uint8_t> frame = from_host(ipv4("10.0.1.10", to, 17, udp(1000, 9, 100)));
  while (n) {
    unsigned k = std::min(n, 32u);
    std::vector<std::vector<uint8_t>> frames(k, frame);
    process_burst(h.worker, 1, h.burst(frames).data(), uint16_t(k));
    process_crypto(h.worker, true);
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
    rounds.sent(++counter, {{slot, ha::name_of(sa), sa.seq}});
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
  CHECK(t.outbound().at({0, 129, false}) == 29000);
  // The first datagram of the next round lost: its last one alone is no round.
  CHECK_FALSE(t.take(13, ha::flag_sa_last, out + 25, 5));
  // A gap inside a round (a session datagram cannot come between: the round is sent at once).
  CHECK_FALSE(t.take(14, ha::flag_sa_first, out, 25));
  CHECK_FALSE(t.take(16, ha::flag_sa_last, out + 25, 5));
  CHECK(t.last() == 11);  // still the last whole one
  REQUIRE(t.take(17, ha::flag_sa_first | ha::flag_sa_last, out, 1));
  CHECK(t.last() == 17);

  ha::SentRounds sent;
  sent.sent(11, {{1, {0, 100, false}, 5000}});
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
  CHECK(ha::apply_fences(sas, 4, {{1, {0, 100, false}, 5000}}, 64) == 2);
  CHECK(a->fence == 5000 + 63);
  CHECK(b->fence == 63);
  CHECK(c->fence == ha::no_fence);
  CHECK(ha::apply_fences(sas, 4, {{1, {0, 100, false}, 10}, {2, {0, 101, false}, 10}}, 64) == 2);
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
  ha::SaValues round = {{{0, 100, false}, 5000}, {{0, 101, false}, 7000}};
  CHECK_FALSE(ha::sent_past(sas, 3, round));  // a standby that never sent: seq 0
  a->seq = 5000 + 2000;                       // advanced at a takeover, nothing sent: no numbers used
  CHECK_FALSE(ha::sent_past(sas, 3, round));
  a->packets = 10;  // then sent on while active (a split brain): 7000 > 5000
  CHECK(ha::sent_past(sas, 3, round));
  CHECK_FALSE(ha::sent_past(sas, 3, {{{0, 100, false}, 8000}, {{0, 101, false}, 7000}}));  // the active is past it
  CHECK_FALSE(ha::sent_past(sas, 3, {{{0, 101, false}, 7000}}));  // gone from the active's rounds (rekeyed)
}

namespace {
// t1 as above and t2 to a second carrier peer whose IKE chose the same outbound SPI, 8193 (the
// remote peer picks it: legal across peers), with keys of its own.
const std::string same_spi_config = hosp_over_carrier(R"(
  "tunnels": [{"name": "t1", "tenant": "hosp", "underlay_tenant": "carrier", "local_address": "198.51.100.1",
               "remote_address": "198.51.100.2", "remote_selectors": ["10.0.0.0/24"]},
              {"name": "t2", "tenant": "hosp", "underlay_tenant": "carrier", "local_address": "198.51.100.1",
               "remote_address": "198.51.100.3", "remote_selectors": ["10.0.2.0/24"]}],
  "routes": [{"tenant": "hosp", "prefix": "10.0.0.0/24", "via": {"interface": "t1"}},
             {"tenant": "hosp", "prefix": "10.0.2.0/24", "via": {"interface": "t2"}}],
  "neighbours": [{"interface": "c0", "address": "198.51.100.2", "mac": "02:00:00:00:00:02"},
                 {"interface": "c0", "address": "198.51.100.3", "mac": "02:00:00:00:00:03"},
                 {"interface": "h0", "address": "10.0.1.10", "mac": "02:00:00:00:01:10"}],
  "sas": [
    {"spi": 4097, "tunnel": "t1", "inbound": true, "cipher": "AES_CBC_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODw==",
     "integrity": "HMAC_SHA256_128", "integrity_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
    {"spi": 8193, "tunnel": "t1", "inbound": false, "cipher": "AES_CBC_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODw==",
     "integrity": "HMAC_SHA256_128", "integrity_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="},
    {"spi": 4098, "tunnel": "t2", "inbound": true, "cipher": "AES_CBC_128", "cipher_key": "EBESExQVFhcYGRobHB0eHw==",
     "integrity": "HMAC_SHA256_128", "integrity_key": "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="},
    {"spi": 8193, "tunnel": "t2", "inbound": false, "cipher": "AES_CBC_128", "cipher_key": "EBESExQVFhcYGRobHB0eHw==",
     "integrity": "HMAC_SHA256_128", "integrity_key": "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8="}
  ]
)");

SaState& outbound_of(Harness& h, const std::string& tunnel) {
  for (const auto& f : h.tables->interfaces)
    if (f.name == tunnel) return *h.tables->sas[f.outbound_sa];
  FAIL("no tunnel " + tunnel);
  throw;
}
}  // namespace

TEST_CASE(
    "HA fence: two tunnels whose peers chose the same outbound SPI keep their own sequence numbers and fences, "
    "and each resumes past its own at a takeover") {
  constexpr uint64_t margin = 1000;
  std::vector<SyncRecord> round;  // the active's last round as the standby takes it
  {
    Harness active(same_spi_config);
    SaState& s1 = outbound_of(active, "t1");
    SaState& s2 = outbound_of(active, "t2");
    REQUIRE(s1.spi == s2.spi);
    REQUIRE(s1.tunnel_id != s2.tunnel_id);
    ha::SentRounds rounds;
    ha::RoundTracker standby;
    uint64_t counter = 6;
    // A round as send_sas makes it: a record each, named by tunnel and SPI; the standby acks it.
    auto round_acked = [&] {
      round.clear();
      std::vector<ha::SaValue> values;
      for (uint16_t slot = 1; slot < max_sas; slot++)
        if (const SaState* sa = active.tables->sas[slot]) {
          round.push_back(ha::round_record(*sa, 0));
          if (!sa->inbound) values.push_back({slot, ha::name_of(*sa), round.back().sa.value});
        }
      REQUIRE(round.size() == 4);
      rounds.sent(++counter, values);
      REQUIRE(standby.take(counter, ha::flag_sa_first | ha::flag_sa_last, round.data(), unsigned(round.size())));
      CHECK(standby.outbound().size() == 2);  // a value each, not one for the shared SPI
      REQUIRE(rounds.acked(standby.last()));
      CHECK(ha::apply_fences(active.tables->sas, max_sas, *rounds.acked(standby.last()), margin) == 2);
    };
    round_acked();
    CHECK_FALSE(standby.fenced());  // the first round: no fence yet on the active
    // t1 goes further than t2's value + margin: one shared entry would start it below its own.
    CHECK(send_into_tunnel(active, 900, "10.0.0.5").size() == 900);
    round_acked();
    CHECK(send_into_tunnel(active, 900, "10.0.0.5").size() == 900);
    CHECK(send_into_tunnel(active, 40, "10.0.2.5").size() == 40);
    round_acked();
    CHECK(standby.fenced());
    // Each SA fenced at its own value + margin - 1, and each stops there.
    CHECK(s1.fence == 1800 + margin - 1);
    CHECK(s2.fence == 40 + margin - 1);
    CHECK(send_into_tunnel(active, 1100, "10.0.2.5").size() == margin - 1);
    CHECK(s2.seq == 40 + margin - 1);
    CHECK(s1.seq == 1800);
    CHECK(send_into_tunnel(active, 10, "10.0.0.5").size() == 10);
  }
  // The standby (the same intent, its SAs fresh) holds what the round said, by name, and takes over.
  Harness standby(same_spi_config);
  SyncWorker sync{};
  sync.in = rte_ring_create_elem("unit_sync_in_fence", sizeof(SyncRecord), 64, 0, RING_F_SP_ENQ | RING_F_SC_DEQ);
  REQUIRE(sync.in);
  standby.worker.sync = &sync;
  ha::PeerSas peer;
  for (const SyncRecord& r : round) peer.take(r);  // as the sync thread keeps them
  peer.round(true);
  CHECK(peer.values.size() == 4);
  CHECK(peer.unfenced.empty());
  SaState& b1 = outbound_of(standby, "t1");
  SaState& b2 = outbound_of(standby, "t2");
  REQUIRE(ha::held_for(peer.values, b1));
  CHECK(*ha::held_for(peer.values, b1) == 1800);
  CHECK(*ha::held_for(peer.values, b2) == 40);
  std::vector<ha::TakeoverRecord> advances;
  ha::SaFloors floors;
  CHECK(ha::take_over(standby.tables->sas, max_sas, peer, margin, advances, floors) == 0);
  REQUIRE(advances.size() == 4);
  for (auto& t : advances) REQUIRE(rte_ring_sp_enqueue_elem(sync.in, &t.record, sizeof t.record) == 0);
  sync_install(standby.worker);
  CHECK(sync.sas_advanced == 4);
  CHECK(sync.install_failed == 0);
  CHECK(b1.seq == 1800 + margin);
  CHECK(b2.seq == 40 + margin);
  // Its rounds say its start even before the worker applied it.
  CHECK(ha::round_record(b1, ha::floor_of(floors, slot_of(standby, b1), b1)).sa.value == 1800 + margin);
  auto q1 = send_into_tunnel(standby, 3, "10.0.0.5");
  auto q2 = send_into_tunnel(standby, 3, "10.0.2.5");
  REQUIRE(q1.size() == 3);
  REQUIRE(q2.size() == 3);
  CHECK(q1.front() > 1810);  // never a number t1 used on the active (1 to 1810)
  CHECK(q1.front() == 1800 + margin + 1);
  CHECK(q2.front() == 40 + margin + 1);  // past t2's fence, 40 + margin - 1
  // A record from a build that sent no tunnel (those bytes zero) names the SA by SPI alone.
  ha::SaValues old_peer = {{{0, 8193, false}, 77}};
  REQUIRE(ha::held_for(old_peer, b2));
  CHECK(*ha::held_for(old_peer, b2) == 77);
  standby.worker.sync = nullptr;
  rte_ring_free(sync.in);
}

namespace {
// One node of a pair, for the chained takeovers: its copy of an outbound SA (the same name on
// both) and what it holds of the peer's rounds. The sync thread's steps, with ha/fence.h's calls.
struct PairNode {
  std::unique_ptr<SaState> sa = std::make_unique<SaState>();
  SaState* sas[2] = {nullptr, sa.get()};
  ha::PeerSas peer;
  ha::SaFloors floors;
  std::vector<ha::TakeoverRecord> advances;
  PairNode() {
    sa->spi = 8193;
    sa->tunnel_id = sa_tunnel_id("t1");
  }
  // Up to n packets, as the worker sends them: it stops at the fence.
  void send(unsigned n, std::vector<uint64_t>& used) {
    for (unsigned i = 0; i < n && sa->seq + 1 <= sa->fence; i++) {
      used.push_back(++sa->seq);
      sa->packets++;
    }
  }
  // Its round (one record), as the other node takes it whole.
  SyncRecord round() const { return ha::round_record(*sa, ha::floor_of(floors, 1, *sa)); }
  void take(const SyncRecord& r) {
    ha::RoundTracker t;
    REQUIRE(t.take(1, ha::flag_sa_first | ha::flag_sa_last, &r, 1));
    peer.take(r);
    peer.round(t.fenced());
  }
  void ack(const SyncRecord& r, uint64_t margin) {  // the other node's ack of round r
    CHECK(ha::apply_fences(sas, 2, {{1, ha::name_of(*sa), r.sa.value}}, margin) == 1);
  }
  void step_down() {
    ha::clear_fences(sas, 2);
    floors.clear();
    peer.stepped_down();
  }
  unsigned take_over(uint64_t margin) {
    ha::clear_fences(sas, 2);
    advances.clear();
    return ha::take_over(sas, 2, peer, margin, advances, floors);
  }
  void install() {  // the owner worker, between bursts (nat.cpp, advance_sa)
    for (auto& t : advances) sa->seq = std::max(sa->seq, t.record.sa.value);
    advances.clear();
  }
};

bool distinct(std::vector<uint64_t> used) {
  std::sort(used.begin(), used.end());
  return std::adjacent_find(used.begin(), used.end()) == used.end();
}

// The control of a rule: a node at `seq` that took its peer as bounded (a fenced round heard,
// nothing held) and sent n more would have sent some of `used` again.
bool bounded_would_reuse(uint64_t seq, uint64_t margin, const std::vector<uint64_t>& used, int n) {
  PairNode unaware;
  unaware.sa->seq = seq;
  unaware.peer.fenced = true;
  if (unaware.take_over(margin) != 0) return false;
  unaware.install();
  std::vector<uint64_t> would = used;
  unaware.send(n, would);
  return !distinct(would);
}
}  // namespace

TEST_CASE("HA fence: chained takeovers with no ack between them never reuse a sequence number") {
  constexpr uint64_t margin = 1000;
  std::vector<uint64_t> used;  // every sequence number either node sent under the SA's key
  PairNode a, b;
  // A active, B standby: A's first round, acked, fences A; its second says so.
  SyncRecord r0 = a.round();
  CHECK(r0.sa.flags & sa_unfenced);
  b.take(r0);
  CHECK_FALSE(b.peer.fenced);
  a.ack(r0, margin);
  a.send(600, used);
  SyncRecord r = a.round();
  CHECK_FALSE(r.sa.flags & sa_unfenced);
  b.take(r);
  a.ack(r, margin);
  CHECK(b.peer.fenced);

  SECTION("the sync link cut; B takes over, A takes back with no round of B's: A sends no more on the SA") {
    a.send(2000, used);
    CHECK(a.sa->seq == 600 + margin - 1);  // A stops at its fence
    CHECK(b.take_over(margin) == 0);
    b.install();
    b.send(5000, used);  // B has no ack: no fence
    CHECK(b.sa->seq == 600 + margin + 5000);
    a.step_down();
    // Without the rule A would go on from its own 1599 into B's 1601...
    CHECK(bounded_would_reuse(a.sa->seq, margin, used, 10));
    // ... with it, A fences the SA where it is (its next packet tells medix-cp to rekey it).
    CHECK(a.take_over(margin) == 1);
    CHECK(a.sa->fence == a.sa->seq);
    a.send(100, used);
    CHECK(a.sa->seq == 600 + margin - 1);
    CHECK(distinct(used));
  }

  SECTION("A takes back holding B's round, B never acked: A sends no more on the SA") {
    CHECK(b.take_over(margin) == 0);
    a.step_down();
    // B's first round leaves before its worker applied the advance: it says the start (1600),
    // not B's own 0, and that B has no fence.
    SyncRecord rb = b.round();
    CHECK(rb.sa.value == 600 + margin);
    CHECK(rb.sa.flags & sa_unfenced);
    a.take(rb);
    b.install();
    b.send(5000, used);  // A's ack lost: B unfenced
    b.step_down();
    CHECK(a.take_over(margin) == 1);
    a.send(100, used);
    CHECK(a.sa->seq == 600);
    CHECK(distinct(used));
  }

  SECTION("A takes back holding a round of B's that says B's fence: A starts above it") {
    CHECK(b.take_over(margin) == 0);
    a.step_down();
    SyncRecord rb = b.round();
    a.take(rb);
    b.install();
    b.ack(rb, margin);  // A's ack reached B: fenced at 1600 + margin - 1
    b.send(300, used);
    SyncRecord rb2 = b.round();
    CHECK_FALSE(rb2.sa.flags & sa_unfenced);
    a.take(rb2);
    CHECK(a.peer.fenced);
    b.send(5000, used);  // the link cut: B stops at its fence
    CHECK(b.sa->seq == 600 + 2 * margin - 1);
    b.step_down();
    CHECK(a.take_over(margin) == 0);
    a.install();
    a.send(100, used);
    CHECK(a.sa->seq == 600 + margin + 300 + margin + 100);
    CHECK(distinct(used));
  }
}

TEST_CASE(
    "HA fence: a node fresh from its start that heard no round fences the SAs it holds nothing of: its peer may "
    "have had no ack") {
  constexpr uint64_t margin = 1000;
  std::vector<uint64_t> used;
  PairNode a, b;
  // B active and fenced (A acks), sends 600; A takes B's round, B dies, A takes over from it and,
  // no standby acking, sends on unfenced.
  b.send(600, used);
  SyncRecord r = b.round();
  a.take(r);
  b.ack(r, margin);
  r = b.round();
  a.take(r);
  CHECK(a.peer.fenced);
  CHECK(a.take_over(margin) == 0);
  a.install();
  a.send(5000, used);
  CHECK(a.sa->seq == 600 + margin + 5000);
  // B starts again (from its own reservation on disk, say 600 + a block of 4000, or at 0), hears
  // no round of A's, and A dies: B takes over holding nothing. Before, it went on from its start
  // + margin, into A's numbers (1601 to 6600).
  for (uint64_t start : {uint64_t(4600), uint64_t(0)}) {
    PairNode fresh;
    fresh.sa->seq = start;
    // The rule before: a node that heard nothing took its peer as fenced.
    CHECK(bounded_would_reuse(start, margin, used, 1000));
    // Now: fenced where it is; it sends nothing (its next packet has medix-cp rekey it).
    CHECK(fresh.take_over(margin) == 1);
    CHECK(fresh.advances.empty());
    CHECK(fresh.sa->fence == start);
    fresh.send(100, used);
    CHECK(fresh.sa->seq == start);
  }
  CHECK(distinct(used));
  // Which SAs qualify, for a node fresh from its start: one it holds nothing of, until a whole
  // round says the peer fences its SAs (then the peer fenced a new SA at margin - 1: the margin
  // is past it); one whose value came with a fence (a round's datagram) goes on from it.
  PairNode heard_fenced, heard_unfenced, held;
  heard_fenced.peer.round(true);
  CHECK(heard_fenced.take_over(margin) == 0);
  CHECK(heard_fenced.advances.at(0).record.sa.value == margin);
  heard_unfenced.peer.round(false);
  CHECK(heard_unfenced.take_over(margin) == 1);
  SyncRecord fenced_value = a.round();
  a.ack(fenced_value, margin);
  fenced_value = a.round();
  REQUIRE_FALSE(fenced_value.sa.flags & sa_unfenced);
  held.peer.take(fenced_value);  // a datagram of a round that did not come whole
  CHECK(held.take_over(margin) == 0);
  CHECK(held.advances.at(0).record.sa.value == fenced_value.sa.value + margin);
}

TEST_CASE(
    "HA fence: an ack fences each SA by slot and name: another tunnel's SA of the same SPI in the slot since the "
    "round is fenced from 0") {
  constexpr uint64_t margin = 1000;
  std::vector<uint64_t> used;  // every number sent under t2's SA's key, by either node
  // A, active and fenced, sends 5000 on t1's SA (SPI 100, slot 1); its round says so and B takes it.
  auto t1 = std::make_unique<SaState>(), t2 = std::make_unique<SaState>(), t2_b = std::make_unique<SaState>();
  t1->spi = t2->spi = t2_b->spi = 100;
  t1->tunnel_id = sa_tunnel_id("t1");
  t2->tunnel_id = t2_b->tunnel_id = sa_tunnel_id("t2");
  t1->seq = 5000;
  SaState* a_sas[2] = {nullptr, t1.get()};
  ha::SentRounds rounds;
  rounds.sent(7, {{1, ha::name_of(*t1), ha::round_record(*t1, 0).sa.value}});
  ha::PeerSas b_peer;
  b_peer.take(ha::round_record(*t1, 0));
  b_peer.round(true);
  // Before B's ack comes back, t1's SA goes and another tunnel's outbound SA, whose peer chose
  // the same SPI, takes its slot. The ack must not give it t1's fence (5000 + margin - 1).
  a_sas[1] = t2.get();
  REQUIRE(rounds.acked(7));
  CHECK(ha::apply_fences(a_sas, 2, *rounds.acked(7), margin) == 1);
  CHECK(t2->fence == margin - 1);
  for (unsigned i = 0; i < 3000 && t2->seq + 1 <= t2->fence; i++) used.push_back(++t2->seq);
  CHECK(t2->seq == margin - 1);
  // B, holding nothing of t2's SA, takes over at the margin: past all A sent on it.
  SaState* b_sas[2] = {nullptr, t2_b.get()};
  std::vector<ha::TakeoverRecord> advances;
  ha::SaFloors floors;
  CHECK(ha::take_over(b_sas, 2, b_peer, margin, advances, floors) == 0);
  REQUIRE(advances.size() == 1);
  CHECK(advances[0].record.sa.value == margin);
  t2_b->seq = advances[0].record.sa.value;
  for (int i = 0; i < 10; i++) used.push_back(++t2_b->seq);
  CHECK(distinct(used));
}

TEST_CASE(
    "HA fence: a takeover's start stays with its SA: a CHILD_SA made since in its slot rounds at its own number, "
    "and a standby that sent on it past that withholds its ack") {
  constexpr uint64_t margin = 1000;
  const uint64_t t1 = sa_tunnel_id("t1");
  std::vector<uint64_t> used;                 // every number sent under the new CHILD_SA's key, by either node
  auto send = [&](SaState& sa, unsigned n) {  // as the worker sends: it stops at the fence
    for (unsigned i = 0; i < n && sa.seq + 1 <= sa.fence; i++) {
      used.push_back(++sa.seq);
      sa.packets++;
    }
  };
  auto record = [&](uint32_t spi, uint64_t value) {
    SyncRecord r{};
    r.kind = uint8_t(SyncKind::sa_outbound);
    r.sa.spi = spi;
    r.sa.tunnel = t1;
    r.sa.value = value;
    return r;
  };
  // A takes over an SA (SPI 100) that B's last round said was at 5000: its start, 5000 + margin,
  // is what A's rounds say of it until its worker applies it.
  auto old_a = std::make_unique<SaState>();
  old_a->spi = 100;
  old_a->tunnel_id = t1;
  SaState* a_sas[2] = {nullptr, old_a.get()};
  ha::PeerSas from_b;
  from_b.take(record(100, 5000));
  from_b.round(true);
  std::vector<ha::TakeoverRecord> advances;
  ha::SaFloors floors;
  REQUIRE(ha::take_over(a_sas, 2, from_b, margin, advances, floors) == 0);
  CHECK(ha::round_record(*old_a, ha::floor_of(floors, 1, *old_a)).sa.value == 5000 + margin);
  old_a->seq = 5000 + margin;  // applied
  // B, standby, acks A's rounds (A fenced). The gateway rekeys the CHILD_SA: SPI 200 takes the
  // freed slot 1 on A (fenced from 0 at once, fence_new_sas) and B's medix-cp installs its copy,
  // and the sync link is cut before a round of A's with it reaches B.
  auto x_a = std::make_unique<SaState>(), x_b = std::make_unique<SaState>();
  x_a->spi = x_b->spi = 200;
  x_a->tunnel_id = x_b->tunnel_id = t1;
  a_sas[1] = x_a.get();
  CHECK(ha::fence_new_sas(a_sas, 2, margin) == 1);
  SaState* b_sas[2] = {nullptr, x_b.get()};
  ha::PeerSas from_a;
  from_a.take(record(100, 5000 + margin));
  from_a.round(true);  // A's last round B took: every SA fenced
  // The split: B takes over the new SA at the margin (A fenced it at margin - 1) and sends on it;
  // A, active too, sends on it up to its fence.
  std::vector<ha::TakeoverRecord> b_advances;
  ha::SaFloors b_floors;
  REQUIRE(ha::take_over(b_sas, 2, from_a, margin, b_advances, b_floors) == 0);
  for (auto& t : b_advances) x_b->seq = std::max(x_b->seq, t.record.sa.value);
  CHECK(x_b->seq == margin);
  send(*x_b, 10);
  send(*x_a, 500);
  // The heal: B standby again. A's round says the new SA's own number (500), not the start
  // A's takeover gave the SA that had the slot before (6000, above B's 1010).
  SyncRecord r = ha::round_record(*x_a, ha::floor_of(floors, 1, *x_a));
  CHECK(r.sa.value == 500);
  // B withholds its ack while it sent past the round's value, and tells its number; A goes on
  // above it; then B acks and A's fence moves.
  for (int i = 0; i < 3 && ha::sent_past(b_sas, 2, {{ha::name_of(r), r.sa.value}}); i++) {
    std::vector<ha::TakeoverRecord> raised;
    CHECK(ha::raise_past(a_sas, 2, ha::past_records(b_sas, 2, {{ha::name_of(r), r.sa.value}}), raised) == 1);
    for (auto& t : raised) x_a->seq = std::max(x_a->seq, t.record.sa.value);
    r = ha::round_record(*x_a, ha::floor_of(floors, 1, *x_a));
  }
  CHECK_FALSE(ha::sent_past(b_sas, 2, {{ha::name_of(r), r.sa.value}}));
  CHECK(r.sa.value >= 1010);
  ha::apply_fences(a_sas, 2, {{1, ha::name_of(*x_a), r.sa.value}}, margin);
  send(*x_a, 3000);
  CHECK(x_a->seq == r.sa.value + margin - 1);
  CHECK(distinct(used));  // with the old SA's start in the round, A went on from 500 into B's 1001-1010
}
