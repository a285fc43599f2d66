// ESP paths the packet tests cannot reach from the wire: a crypto job that IPsec-MB does not
// complete (the packet must be dropped, never sent unencrypted), and ESP that is not ours.
#include <rte_ip.h>

#include <catch2/catch.hpp>

#include "fixture.h"
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
