// One SA over several workers (docs/ipsec.md, "One SA over several workers"): the tx point's
// ordering alone, then two workers encrypting one flow of a spread tunnel, its owner sending it.
#include <rte_ring.h>

#include <algorithm>
#include <catch2/catch.hpp>

#include "harness.h"
#include "ipsec/esp.h"
#include "ipsec/sa.h"

using namespace frame;

namespace {

// Tenant hosp behind the spread tunnel t1 over carrier. The inbound SA has the outbound one's
// SPI and key, so that what t1 sends can be decrypted here, looped back.
std::string spread_config(const std::string& crypto, bool spread = true) {
  return hosp_over_carrier(R"(
  "tunnels": [{"name": "t1", "tenant": "hosp", "underlay_tenant": "carrier", "local_address": "198.51.100.1",
               "remote_address": "198.51.100.2", "spread": )" +
                           std::string(spread ? "true" : "false") + R"(}],
  "routes": [{"tenant": "hosp", "prefix": "10.0.0.0/24", "via": {"interface": "t1"}}],
  "neighbours": [{"interface": "c0", "address": "198.51.100.2", "mac": "02:00:00:00:00:02"},
                 {"interface": "h0", "address": "10.0.1.10", "mac": "02:00:00:00:01:10"}],
  "sas": [{"spi": 8193, "tunnel": "t1", "inbound": true, "replay_window": 128, )" +
                           crypto + R"(},
          {"spi": 8193, "tunnel": "t1", "inbound": false, )" +
                           crypto + R"(}]
)");
}
const std::string gcm = R"("cipher": "AES_GCM_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODxAREhM=")";
const std::string cbc = R"("cipher": "AES_CBC_128", "cipher_key": "AAECAwQFBgcICQoLDA0ODw==",
     "integrity": "HMAC_SHA256_128", "integrity_key": "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=")";

// The flow: packet i of it has UDP source port 1000 + i.
Bytes flow_packet(unsigned i) {
  return ether("02:00:00:00:01:01", "02:00:00:00:01:10", 0x0800) +
         ipv4("10.0.1.10", "10.0.0.5", 17, udp(uint16_t(1000 + i), 9, 600));
}

// Packets [first, first + n) of the flow, received by worker w as one burst.
void receive(Harness& h, Worker& w, unsigned first, unsigned n) {
  std::vector<Bytes> frames;
  for (unsigned i = 0; i < n; i++) frames.push_back(flow_packet(first + i));
  process_burst(w, 1, h.burst(frames).data(), uint16_t(n));
}

// What the owner's hand-off ring holds.
std::vector<rte_mbuf*> ring_of(Harness& h, uint16_t queue) {
  std::vector<rte_mbuf*> out(1024);
  out.resize(rte_ring_sc_dequeue_burst(h.handoff[queue], reinterpret_cast<void**>(out.data()), 1024, nullptr));
  return out;
}

void run_handoff(Worker& w, std::vector<rte_mbuf*> pkts) {
  for (size_t i = 0; i < pkts.size(); i += burst_size)
    process_handoff(w, pkts.data() + i, uint16_t(std::min<size_t>(burst_size, pkts.size() - i)));
}

uint32_t be32(const Bytes& f, size_t at) {
  return uint32_t(f[at]) << 24 | uint32_t(f[at + 1]) << 16 | uint32_t(f[at + 2]) << 8 | f[at + 3];
}

// What a worker sent on the carrier port: ESP frames, oldest first.
std::vector<Bytes> sent_by(Worker& w) {
  std::vector<Bytes> out;
  TxBuffer& b = w.tx[0];
  for (uint16_t i = 0; i < b.count; i++) {
    out.push_back(bytes_of(b.pkts[i]));
    rte_pktmbuf_free(b.pkts[i]);
  }
  b.clear();
  return out;
}

// The flow's packet numbers in the ESP frames, decrypted on `w` as if the peer sent them back.
std::vector<unsigned> decrypted(Harness& h, Worker& w, const std::vector<Bytes>& frames) {
  std::vector<Bytes> back;
  for (Bytes f : frames) {
    for (unsigned k = 0; k < 4; k++) std::swap(f[14 + 12 + k], f[14 + 16 + k]);  // the sum stays
    back.push_back(f);
  }
  std::vector<rte_mbuf*> pkts = h.burst(back);
  for (rte_mbuf* m : pkts) {
    meta(m) = PacketMeta{};
    meta(m).l2_len = 14;
    meta(m).tenant = h.tenant("carrier");
  }
  std::vector<unsigned> order;
  auto take = [&order](rte_mbuf** inner, uint16_t n_inner) {
    for (uint16_t k = 0; k < n_inner; k++) {
      Bytes in = bytes_of(inner[k]);
      order.push_back(unsigned(in[20] << 8 | in[21]) - 1000);
      rte_pktmbuf_free(inner[k]);
    }
  };
  for (size_t i = 0; i < pkts.size(); i += burst_size) {
    rte_mbuf* inner[burst_size];
    uint16_t n_inner = 0;
    esp_input(w, pkts.data() + i, uint16_t(std::min<size_t>(burst_size, pkts.size() - i)), inner, n_inner);
    take(inner, n_inner);
  }
  // AES-CBC: verdicts as the jobs complete (EspJobs), in the order submitted.
  esp_complete(w, true);
  while (esp_done(w)) {
    Batch in, out;
    esp_take_done(w, in, out, burst_size);
    take(in.pkts, in.n);
    REQUIRE(out.n == 0);
  }
  return order;
}

std::vector<unsigned> upto(unsigned n) {
  std::vector<unsigned> v(n);
  for (unsigned i = 0; i < n; i++) v[i] = i;
  return v;
}

std::vector<rte_mbuf*> fake_packets(Harness& h, unsigned n) { return h.burst(std::vector<Bytes>(n, Bytes(64, 0))); }

}  // namespace

TEST_CASE("the tx point sends a spread SA's packets in sequence order, whatever order they come in", "[spread]") {
  Harness h(spread_config(gcm));
  auto pkts = fake_packets(h, 6);
  auto order = std::make_unique<TxOrder>();
  rte_mbuf* out[8];
  // 3 and 4 first (a worker's burst), then 1 and 2 (another's), then 6 with 5 lost.
  CHECK(order->place(pkts[2], 3) == TxOrder::held_back);
  CHECK(order->place(pkts[3], 4) == TxOrder::held_back);
  CHECK(order->take(out, 8, 100, 10) == 0);
  CHECK(order->place(pkts[0], 1) == TxOrder::held_back);
  CHECK(order->place(pkts[1], 2) == TxOrder::held_back);
  REQUIRE(order->take(out, 8, 100, 10) == 4);
  CHECK(std::vector<rte_mbuf*>(out, out + 4) == std::vector<rte_mbuf*>{pkts[0], pkts[1], pkts[2], pkts[3]});
  CHECK(order->place(pkts[5], 6) == TxOrder::held_back);
  CHECK(order->take(out, 8, 200, 10) == 0);  // 5 may still come
  CHECK(order->take(out, 8, 205, 10) == 0);
  REQUIRE(order->take(out, 8, 211, 10) == 1);  // given up after the patience
  CHECK(out[0] == pkts[5]);
  CHECK(order->skipped == 1);
  CHECK(order->place(pkts[4], 5) == TxOrder::late_one);  // 5 after all: it goes at once
  CHECK(order->late == 1);
  CHECK(order->next == 7);
  for (rte_mbuf* m : pkts) rte_pktmbuf_free(m);
}

TEST_CASE("the tx point gives up a hole as old as its window, and starts an empty one anywhere", "[spread]") {
  Harness h(spread_config(gcm));
  auto pkts = fake_packets(h, 3);
  auto order = std::make_unique<TxOrder>();
  rte_mbuf* out[8];
  CHECK(order->place(pkts[0], 2) == TxOrder::held_back);  // 1 is missing
  CHECK(order->place(pkts[1], 1 + TxOrder::size) == TxOrder::window_full);
  order->skip_hole();
  CHECK(order->next == 2);
  REQUIRE(order->take(out, 8, 0, 1000) == 1);
  CHECK(order->place(pkts[1], 1 + TxOrder::size) == TxOrder::held_back);  // within the window now
  REQUIRE(order->take(out, 8, 0, 1000) == 0);
  order->release();  // frees pkts[1]
  CHECK(order->held == 0);
  // Empty: an HA takeover's jump is where the window starts.
  CHECK(order->place(pkts[2], 1'000'000) == TxOrder::held_back);
  REQUIRE(order->take(out, 8, 0, 1000) == 1);
  CHECK(order->next == 1'000'001);
  rte_pktmbuf_free(pkts[0]);
  rte_pktmbuf_free(pkts[2]);
}

TEST_CASE("two workers encrypt one spread SA's flow; its owner sends it in order, every number once", "[spread]") {
  for (const std::string& crypto : {gcm, cbc}) {
    INFO((crypto == gcm ? "AES-GCM" : "AES-CBC + HMAC-SHA-256"));
    Harness h(spread_config(crypto), 2);
    Worker& w0 = h.worker;
    Worker& owner = *h.others.at(0);  // SPI 8193: worker 1
    const TxOrder& order = *h.tables->sas[h.tables->interfaces[h.interface("t1")].outbound_sa]->order;
    // Bursts of the flow taken by both workers; the other's reach the owner in reverse order.
    receive(h, w0, 0, 4);           // numbers 1..4, to the owner's ring
    receive(h, owner, 4, 4);        // 5..8: the owner's own, at its tx point at once
    CHECK(sent_by(owner).empty());  // waiting for 1..4
    CHECK(order.held == 4);
    receive(h, w0, 8, 4);  // 9..12
    auto first = ring_of(h, 1);
    REQUIRE(first.size() == 8);
    CHECK(h.total_drops() == 0);
    run_handoff(owner, {first[7], first[6], first[5], first[4]});  // 12..9
    CHECK(sent_by(owner).empty());
    CHECK(order.held == 8);
    run_handoff(owner, {first[3], first[2], first[1], first[0]});
    auto frames = sent_by(owner);
    REQUIRE(frames.size() == 12);
    CHECK(sent_by(w0).empty());  // one tx point
    std::vector<uint32_t> seqs, ids;
    for (const Bytes& f : frames) {
      CHECK(f[14 + 9] == 50);
      CHECK(be32(f, 14 + 20) == 8193);
      seqs.push_back(be32(f, 14 + 24));
      ids.push_back(uint32_t(f[14 + 4] << 8 | f[14 + 5]));
    }
    std::vector<uint32_t> expected{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    CHECK(seqs == expected);
    CHECK(ids == expected);  // the outer IP ID is the sequence number's low bits
    CHECK(decrypted(h, owner, frames) == upto(12));
    // Many bursts, both workers, handed over interleaved: every number once, in order.
    unsigned next = 12;
    std::vector<rte_mbuf*> mixed;
    for (unsigned round = 0; round < 12; round++) {  // 33 packets: within a tx buffer
      unsigned n = 1 + round % 5;
      receive(h, round % 3 ? w0 : owner, next, n);
      next += n;
      auto got = ring_of(h, 1);
      mixed.insert(round % 2 ? mixed.begin() : mixed.end(), got.begin(), got.end());
    }
    run_handoff(owner, mixed);
    frames = sent_by(owner);
    REQUIRE(frames.size() == next - 12);
    seqs.clear();
    for (const Bytes& f : frames) seqs.push_back(be32(f, 14 + 24));
    for (size_t i = 0; i < seqs.size(); i++) CHECK(seqs[i] == 13 + i);
    auto flow = decrypted(h, owner, frames);
    CHECK(flow.size() == next - 12);
    CHECK(std::is_sorted(flow.begin(), flow.end()));
    CHECK(flow.front() == 12);
    const SaState& sa = *h.tables->sas[h.tables->interfaces[h.interface("t1")].outbound_sa];
    CHECK(sa.seq == next);      // HA sync's high-water mark: every number reserved
    CHECK(sa.packets == next);  // counted once each, at the tx point
    CHECK(order.held == 0);
    CHECK(order.skipped == 0);
    CHECK(h.total_drops() == 0);
    CHECK(owner.counters->drops[unsigned(Drop::esp_replayed)] == 0);
  }
}

TEST_CASE("a spread SA's packet dropped after it was numbered leaves no hole at the tx point", "[spread]") {
  Harness h(spread_config(gcm), 2);
  Worker& owner = *h.others.at(0);
  SaState& sa = *h.tables->sas[h.tables->interfaces[h.interface("t1")].outbound_sa];
  __atomic_store_n(&sa.fence, 5, __ATOMIC_RELAXED);  // HA: 6 on may not be sent
  receive(h, h.worker, 0, 8);
  auto fenced = ring_of(h, 1);
  REQUIRE(fenced.size() == 8);  // all 8 numbered and handed over, 3 of them marked
  run_handoff(owner, fenced);
  CHECK(sent_by(owner).size() == 5);
  CHECK(owner.counters->drops[unsigned(Drop::ha_sa_fenced)] == 3);
  CHECK(sa.drops_of(Drop::ha_sa_fenced) == 3);
  CHECK(sa.fenced);
  // The fence moves on: the next burst goes at once, nothing waits for 6..8.
  __atomic_store_n(&sa.fence, UINT64_MAX, __ATOMIC_RELAXED);
  receive(h, h.worker, 8, 2);
  run_handoff(owner, ring_of(h, 1));
  auto frames = sent_by(owner);
  REQUIRE(frames.size() == 2);
  CHECK(be32(frames[0], 14 + 24) == 9);
  CHECK(sa.order->held == 0);
  CHECK(sa.order->skipped == 0);
  // A packet lost on its way (a full ring): the ones behind it wait a millisecond at most.
  receive(h, h.worker, 10, 3);
  auto lost = ring_of(h, 1);
  REQUIRE(lost.size() == 3);
  rte_pktmbuf_free(lost[0]);
  owner.now = rte_rdtsc();
  run_handoff(owner, {lost[1], lost[2]});
  CHECK(sent_by(owner).empty());
  receive(h, h.worker, 13, 1);
  owner.now += owner.tsc_hz / 500;  // 2 ms later
  run_handoff(owner, ring_of(h, 1));
  frames = sent_by(owner);
  REQUIRE(frames.size() == 3);
  CHECK(be32(frames[0], 14 + 24) == 12);
  CHECK(be32(frames[2], 14 + 24) == 14);
  CHECK(sa.order->skipped == 1);
}

TEST_CASE("a spread SA's CBC packets whose jobs fail reach the tx point marked: dropped there, no hole", "[spread]") {
  Harness h(spread_config(cbc), 2);
  Worker& owner = *h.others.at(0);
  SaState& sa = *h.tables->sas[h.tables->interfaces[h.interface("t1")].outbound_sa];
  // A key length IPsec-MB refuses in the SA's job: the jobs come back INVALID_ARGS, their
  // output unwritten.
  uint64_t key_len = sa.cbc_job.key_len_in_bytes;
  sa.cbc_job.key_len_in_bytes = 15;
  receive(h, h.worker, 0, 4);  // numbers 1..4
  sa.cbc_job.key_len_in_bytes = key_len;
  auto failed = ring_of(h, 1);
  REQUIRE(failed.size() == 4);  // the run's jobs completed before it was handed over
  receive(h, h.worker, 4, 2);   // 5, 6
  auto good = ring_of(h, 1);
  REQUIRE(good.size() == 2);
  run_handoff(owner, {good[0], good[1], failed[0], failed[1], failed[2], failed[3]});
  auto frames = sent_by(owner);
  REQUIRE(frames.size() == 2);
  CHECK(be32(frames[0], 14 + 24) == 5);
  CHECK(be32(frames[1], 14 + 24) == 6);
  CHECK(decrypted(h, owner, frames) == std::vector<unsigned>{4, 5});
  CHECK(owner.counters->drops[unsigned(Drop::esp_crypto_failed)] == 4);
  CHECK(sa.drops_of(Drop::esp_crypto_failed) == 4);
  CHECK(sa.packets == 2);
  CHECK(sa.order->held == 0);
  CHECK(sa.order->skipped == 0);
  CHECK(sent_by(h.worker).empty());  // nothing in the clear, nothing out of EspJobs
}

TEST_CASE("the inbound window accepts a spread SA's bursts interleaved within it, and refuses their replays",
          "[spread]") {
  Harness h(spread_config(gcm), 2);
  Worker& owner = *h.others.at(0);
  // 40 packets of the flow, numbered 1..40, looped back in bursts as two workers' rings may
  // interleave them: 21..30, 1..10, 31..40, 11..20.
  receive(h, h.worker, 0, 32);
  receive(h, h.worker, 32, 8);
  run_handoff(owner, ring_of(h, 1));
  auto frames = sent_by(owner);
  REQUIRE(frames.size() == 40);
  std::vector<Bytes> interleaved;
  for (unsigned from : {20u, 0u, 30u, 10u})
    interleaved.insert(interleaved.end(), frames.begin() + from, frames.begin() + from + 10);
  auto flow = decrypted(h, owner, interleaved);
  CHECK(flow.size() == 40);
  std::sort(flow.begin(), flow.end());
  CHECK(flow == upto(40));
  // The same again: every one a replay.
  CHECK(decrypted(h, owner, interleaved).empty());
  CHECK(owner.counters->drops[unsigned(Drop::esp_replayed)] == 40);
}
