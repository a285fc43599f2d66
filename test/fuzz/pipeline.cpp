// Fuzzes frames through the whole pipeline (process_burst, then process_handoff on the workers
// they were handed to), on the IX of pipeline.json: tenants with VLAN and QinQ interfaces,
// route leaks, a core with static mappings, NAPT and policy, ESP tunnels whose inbound SAs
// have known keys (GCM and CBC with SHA-256 or SHA-1, ESN, a lifetime), so that seeds made
// with those keys (seeds.py) take mutations into decryption and out again.
//
// An input is frames, each [port][length, 2 bytes big endian][frame]; a length beyond the input
// takes what is left. Consecutive frames of one port are one burst (at most 32). A port byte
// with its top bit set asks for the frame to be sealed first: ESP to one of the inbound SAs is
// encrypted and authenticated with its keys (seal()), so that mutations of the plaintext reach
// what comes after decryption, where an ICV would otherwise stop them. Each input
// starts from the same state: SAs' counters and replay windows restored, sessions, NAPT
// mappings and fragments expired, nothing queued. Beyond what ASan and UBSan find, an input
// fails when a packet buffer is left over (a packet lost without a count); when, for one frame
// that nothing can fragment or reassemble, what came out, was dropped (by reason) or consumed
// does not add up to what went in and what medix-dp made (ICMP errors, ARP requests); and when
// a frame sent is not well-formed IPv4 within its interface's MTU (ARP aside).
#include <rte_eal.h>
#include <rte_ether.h>
#include <rte_ring.h>
#include <rte_ring_elem.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "harness.h"  // test/unit: workers without threads, tables from a config text
#include "ip/ip.h"
#include "ipsec/sa.h"
#include "nat/nat.h"
#include "pipeline/pipeline.h"

namespace {

constexpr uint16_t queues = 2;         // SAs and sessions get owners: hand-offs happen
constexpr size_t max_frames = 64;      // per input
constexpr uint32_t exact_below = 577;  // a frame this short is never fragmented (MTUs >= 1000)
constexpr unsigned max_handoff_rounds = 8;

struct Rig {
  Harness h;
  std::vector<Worker*> workers;  // by queue
  rte_ring* punt = nullptr;
  std::vector<std::pair<SaState*, SaState>> sas;  // each SA and its state as built
  uint64_t clock = 0;
  unsigned baseline = 0, indirect_baseline = 0;  // buffers in use between inputs

  explicit Rig(const std::string& config) : h(config, queues) {
    workers.push_back(&h.worker);
    for (auto& w : h.others) workers.push_back(w.get());
    punt = rte_ring_create("fuzz_punt", 4096, 0, RING_F_SC_DEQ);
    for (Worker* w : workers) {
      w->punt = punt;
      // Sessions last the input (its clock stands still) and are over by the next one.
      for (auto& t : w->timeouts) t = w->tsc_hz;
    }
    for (unsigned slot = 1; slot < max_sas; slot++)
      if (SaState* sa = h.tables->sas[slot]) sas.emplace_back(sa, *sa);
    clock = rte_rdtsc();
    baseline = rte_mempool_in_use_count(h.pool);
    indirect_baseline = rte_mempool_in_use_count(h.indirect);
  }
};

Rig* rig = nullptr;
bool trace = false;

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) {
    fprintf(stderr, "fuzz-pipeline: cannot read %s\n", path.c_str());
    abort();
  }
  return text.str();
}

struct Tally {
  uint64_t drops = 0, made = 0, consumed = 0, sent = 0;
  uint64_t by_reason[drop_reason_count] = {};
};

// What the counters of every worker say: drops by any reason, packets medix-dp made, packets
// consumed without a drop (ARP replies learned), packets a full tx buffer pushed to its port.
Tally count(const Rig& r) {
  Tally t;
  for (const Worker* w : r.workers) {
    const Counters& c = *w->counters;
    for (unsigned i = 0; i < drop_reason_count; i++) {
      t.drops += c.drops[i];
      t.by_reason[i] += c.drops[i];
    }
    t.made += c.icmp_sent + c.arp_requests_sent;
    t.consumed += c.arp_replies_received;
    for (unsigned p = 0; p < max_ports; p++) t.sent += c.ports[p].tx_packets;
  }
  return t;
}

[[noreturn]] void fail(const char* what, uint64_t a, uint64_t b) {
  fprintf(stderr, "fuzz-pipeline: %s (%llu, expected %llu)\n", what, static_cast<unsigned long long>(a),
          static_cast<unsigned long long>(b));
  abort();
}

// What every frame medix-dp sends must be, whatever came in: IPv4 with a valid header whose
// total length is the frame's (no padding, nothing cut), within the MTU of the interface it
// leaves by (port and tags).
void check_sent(const Rig& r, uint16_t port, const rte_mbuf* m) {
  std::vector<uint8_t> f = bytes_of(m);
  auto be16 = [&](size_t at) { return uint16_t(f[at] << 8 | f[at + 1]); };
  if (f.size() < 14) fail("a frame sent shorter than its Ethernet header", f.size(), 14);
  size_t off = 12;
  uint16_t outer = 0, inner = 0;
  if ((be16(off) == RTE_ETHER_TYPE_VLAN || be16(off) == RTE_ETHER_TYPE_QINQ) && f.size() >= off + 6) {
    outer = be16(off + 2) & 0xfff;
    off += 4;
    if (be16(off) == RTE_ETHER_TYPE_VLAN && f.size() >= off + 6) {
      inner = be16(off + 2) & 0xfff;
      off += 4;
    }
  }
  if (be16(off) != RTE_ETHER_TYPE_IPV4) return;
  size_t l2 = off + 2;
  if (f.size() < l2 + 20) fail("an IPv4 frame sent with less than a header", f.size() - l2, 20);
  const uint8_t* ip = f.data() + l2;
  size_t ihl = size_t(ip[0] & 0xf) * 4, total = size_t(ip[2]) << 8 | ip[3];
  if (ip[0] >> 4 != 4 || ihl < 20 || ihl > total) fail("an IPv4 header sent with a bad version or IHL", ip[0], 0x45);
  if (total != f.size() - l2) fail("an IPv4 packet sent whose total length is not its frame's", total, f.size() - l2);
  uint32_t sum = 0;
  for (size_t i = 0; i < ihl; i += 2) sum += uint32_t(ip[i] << 8 | ip[i + 1]);
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  if (sum != 0xffff) fail("an IPv4 header sent with a wrong checksum", sum, 0xffff);
  for (const InterfaceEntry& i : r.h.tables->interfaces)
    if (i.uid && !i.tunnel && i.port == port && i.outer_vlan == outer && i.inner_vlan == inner) {
      if (total > i.mtu) fail("an IPv4 packet sent beyond its interface's MTU", total, i.mtu);
      return;
    }
  fail("a frame sent by no interface (port, tags)", uint64_t(outer) << 16 | inner, 0);
}

uint32_t be32(const uint8_t* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// ESP to one of our inbound SAs, [L2][IPv4][UDP]?[SPI][sequence][IV][plaintext][ICV], encrypted
// and authenticated in place with the SA's keys: what decryption will find is the plaintext the
// fuzzer wrote (inner packet, padding, pad length, next header). The high sequence bits (ESN)
// are those the SA would infer now. Anything else is left as it is.
void seal(Rig& r, uint8_t* f, size_t len) {
  auto be16 = [&](size_t at) { return uint16_t(f[at] << 8 | f[at + 1]); };
  size_t off = 12;
  for (int tags = 0;
       tags < 2 && off + 6 <= len && (be16(off) == RTE_ETHER_TYPE_VLAN || be16(off) == RTE_ETHER_TYPE_QINQ); tags++)
    off += 4;
  if (off + 2 + 20 > len || be16(off) != RTE_ETHER_TYPE_IPV4) return;
  uint8_t* ip = f + off + 2;
  size_t ihl = size_t(ip[0] & 0xf) * 4, total = be16(off + 4);
  size_t esp_at = ihl + (ip[9] == IPPROTO_UDP ? 8 : 0);
  if (ihl < 20 || total > len - off - 2 || total < esp_at + 8) return;
  uint8_t* esp = ip + esp_at;
  SaState* sa = nullptr;
  for (auto& [state, built] : r.sas)
    if (state->inbound && state->spi == be32(esp)) sa = state;
  if (!sa) return;
  auto cipher_len = int64_t(total - esp_at) - 8 - sa->iv_len - sa->icv_len;
  if (cipher_len < 2 || cipher_len % sa->block) return;
  uint32_t low = be32(esp + 4), high = sa->esn ? uint32_t(sa->replay.infer_esn(low) >> 32) : 0;
  uint8_t* iv = esp + 8;
  uint8_t* payload = iv + sa->iv_len;
  uint8_t* icv = payload + cipher_len;
  IMB_MGR* mgr = r.h.worker.mgr;
  if (sa->cipher == CipherKind::aes_gcm) {
    // RFC 4106: nonce = salt || IV; AAD = SPI, [high bits], low bits.
    alignas(16) uint8_t nonce[12], aad[12];
    memcpy(nonce, sa->salt, 4);
    memcpy(nonce + 4, iv, 8);
    memcpy(aad, esp, 4);
    size_t aad_len = 8;
    if (sa->esn) {
      for (int i = 0; i < 4; i++) aad[4 + i] = uint8_t(high >> (24 - 8 * i));
      memcpy(aad + 8, esp + 4, 4);
      aad_len = 12;
    } else {
      memcpy(aad + 4, esp + 4, 4);
    }
    gcm_context_data ctx;
    if (sa->key_len == 16)
      IMB_AES128_GCM_ENC(mgr, &sa->gcm, &ctx, payload, payload, uint64_t(cipher_len), nonce, aad, aad_len, icv, 16);
    else
      IMB_AES256_GCM_ENC(mgr, &sa->gcm, &ctx, payload, payload, uint64_t(cipher_len), nonce, aad, aad_len, icv, 16);
    return;
  }
  // AES-CBC, then HMAC over ESP header, IV, ciphertext and, with ESN, the high bits (RFC 4303).
  std::vector<uint8_t> hashed(esp, icv);
  auto job = [&](bool cipher, uint8_t* src, uint64_t hash_len, uint8_t* tag) {
    IMB_JOB* j = IMB_GET_NEXT_JOB(mgr);
    j->user_data = nullptr;
    j->chain_order = IMB_ORDER_CIPHER_HASH;
    j->cipher_direction = IMB_DIR_ENCRYPT;
    j->cipher_mode = cipher ? IMB_CIPHER_CBC : IMB_CIPHER_NULL;
    j->enc_keys = sa->enc_keys;
    j->dec_keys = sa->dec_keys;
    j->key_len_in_bytes = sa->key_len;
    j->src = src;
    j->dst = src;
    j->cipher_start_src_offset_in_bytes = 0;
    j->msg_len_to_cipher_in_bytes = cipher ? uint64_t(cipher_len) : 0;
    j->iv = iv;
    j->iv_len_in_bytes = 16;
    j->hash_alg = !tag                                    ? IMB_AUTH_NULL
                  : sa->auth == AuthKind::hmac_sha256_128 ? IMB_AUTH_HMAC_SHA_256
                                                          : IMB_AUTH_HMAC_SHA_1;
    j->hash_start_src_offset_in_bytes = 0;
    j->msg_len_to_hash_in_bytes = hash_len;
    j->u.HMAC._hashed_auth_key_xor_ipad = sa->ipad;
    j->u.HMAC._hashed_auth_key_xor_opad = sa->opad;
    j->auth_tag_output = tag;
    j->auth_tag_output_len_in_bytes = sa->icv_len;
    IMB_SUBMIT_JOB(mgr);
    while (IMB_FLUSH_JOB(mgr)) {
    }
  };
  job(true, payload, 0, nullptr);
  memcpy(hashed.data() + (payload - esp), payload, size_t(cipher_len));
  if (sa->esn)
    for (int i = 0; i < 4; i++) hashed.push_back(uint8_t(high >> (24 - 8 * i)));
  job(false, hashed.data(), hashed.size(), icv);
}

// Frees what is queued anywhere (tx buffers, rings, pending queues); returns how many packets.
// What the tx buffers hold is checked first.
uint64_t drain(Rig& r) {
  uint64_t n = 0;
  rte_mbuf* pkts[64];
  for (Worker* w : r.workers) {
    for (unsigned p = 0; p < max_ports; p++) {
      TxBuffer& b = w->tx[p];
      for (uint16_t i = 0; i < b.count; i++) check_sent(r, uint16_t(p), b.pkts[i]);
      rte_pktmbuf_free_bulk(b.pkts, b.count);
      n += b.count;
      b.clear();
    }
    PendingQueue& q = *w->pending;
    for (uint32_t i = 0; i < q.count; i++) rte_pktmbuf_free(q.pkts[i]);
    n += q.count;
    q.count = 0;
    q.n_waiting = 0;
    q.next_service = 0;
  }
  for (rte_ring* ring : r.h.handoff)
    while (unsigned k = rte_ring_dequeue_burst(ring, reinterpret_cast<void**>(pkts), 64, nullptr)) {
      rte_pktmbuf_free_bulk(pkts, k);
      n += k;
    }
  while (unsigned k = rte_ring_dequeue_burst(r.punt, reinterpret_cast<void**>(pkts), 64, nullptr)) {
    rte_pktmbuf_free_bulk(pkts, k);
    n += k;
  }
  LearnedNeighbour learned[64];
  while (rte_ring_dequeue_burst_elem(r.h.learned, learned, sizeof(LearnedNeighbour), 64, nullptr)) {
  }
  SaEventMessage events[64];
  while (rte_ring_dequeue_burst_elem(r.h.events, events, sizeof(SaEventMessage), 64, nullptr)) {
  }
  return n;
}

// Each worker takes what was handed to it, as its loop would, until nothing moves.
void run_handoffs(Rig& r) {
  rte_mbuf* pkts[burst_size];
  for (unsigned round = 0; round < max_handoff_rounds; round++) {
    unsigned moved = 0;
    for (uint16_t q = 0; q < queues; q++) {
      unsigned n = rte_ring_sc_dequeue_burst(r.h.handoff[q], reinterpret_cast<void**>(pkts), burst_size, nullptr);
      if (n) process_handoff(*r.workers[q], pkts, uint16_t(n));
      moved += n;
    }
    if (!moved) return;
  }
}

// CBC jobs still in IPsec-MB's lanes are flushed, as the worker loop does when it submitted
// none, and what that hands to another worker is run there (twice: a flush may hand off jobs).
void settle(Rig& r) {
  for (int round = 0; round < 2; round++) {
    for (Worker* w : r.workers) process_crypto(*w, true);
    run_handoffs(r);
  }
}

// The next input's time: every session, mapping and fragment of this one has expired. The
// sweep looks at 16 sessions a call.
void expire(Rig& r) {
  r.clock += 3 * r.h.worker.tsc_hz;  // fragments wait 2 s, sessions 1 s here
  for (Worker* w : r.workers) {
    w->now = r.clock;
    if (!w->tables->nat) continue;  // no core: no sessions
    NatWorker& nw = *w->tables->nat[w->queue];
    for (uint32_t k = 0; k <= nw.capacity / 16 + 1; k++) nat_sweep(*w);
    // Fragments wait in the frag table's death row until a sweep frees them.
    nat_sweep(*w);
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::string prefix = "--file-prefix=medix-fuzz-" + std::to_string(getpid());
  const char* eal[] = {"fuzz-pipeline",
                       "--no-huge",
                       "-m",
                       "1536",
                       "--no-pci",
                       "--no-telemetry",
                       "--no-shconf",
                       "-l",
                       "0",
                       "--log-level=crit",
                       "--vdev=net_null0",
                       "--vdev=net_null1",
                       "--vdev=net_null2",
                       "--vdev=net_null3",
                       "--vdev=net_null4",
                       prefix.c_str()};
  if (rte_eal_init(int(std::size(eal)), const_cast<char**>(eal)) < 0) {
    fprintf(stderr, "fuzz-pipeline: EAL did not start\n");
    abort();
  }
  // EAL's runtime directory (empty without shared config) goes with the process.
  atexit([] { rmdir(rte_eal_get_runtime_dir()); });
  trace = getenv("MEDIX_FUZZ_TRACE") != nullptr;
  const char* config = getenv("MEDIX_FUZZ_PIPELINE_CONFIG");
  rig = new Rig(read_file(config ? config : MEDIX_FUZZ_DIR "/pipeline.json"));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Rig& r = *rig;
  for (auto& [sa, built] : r.sas) *sa = built;
  for (Worker* w : r.workers) {
    w->now = r.clock;
    w->icmp_tokens = w->settings.icmp_burst;
    w->icmp_tokens_at = rte_rdtsc();
  }

  struct Frame {
    uint16_t port;
    const uint8_t* bytes;
    uint16_t len;
    bool seal;
  };
  std::vector<Frame> frames;
  const auto& ports = r.h.tables->ports;
  while (size >= 3 && frames.size() < max_frames) {
    bool sealed = data[0] & 0x80;
    auto port = uint16_t((data[0] & 0x7f) % ports.size());
    size_t len = std::min<size_t>(size_t(data[1]) << 8 | data[2], size - 3);
    data += 3;
    size -= 3;
    // A NIC delivers no frame beyond its MTU (Ethernet and two tags), nor an empty one.
    size_t cap = std::min<size_t>(ports[port].mtu + 22u, rte_pktmbuf_data_room_size(r.h.pool) - RTE_PKTMBUF_HEADROOM);
    if (len) frames.push_back({port, data, uint16_t(std::min(len, cap)), sealed});
    data += len;
    size -= len;
  }

  Tally before = count(r);
  for (size_t first = 0; first < frames.size();) {
    rte_mbuf* pkts[burst_size];
    uint16_t n = 0;
    uint16_t port = frames[first].port;
    while (first < frames.size() && frames[first].port == port && n < burst_size) {
      const Frame& f = frames[first++];
      rte_mbuf* m = rte_pktmbuf_alloc(r.h.pool);
      if (!m) fail("no packet buffer for a frame", 0, 1);
      auto* at = rte_pktmbuf_mtod(m, uint8_t*);
      memcpy(rte_pktmbuf_append(m, f.len), f.bytes, f.len);
      if (f.seal) seal(r, at, f.len);
      pkts[n++] = m;
    }
    process_burst(r.h.worker, port, pkts, n);
    run_handoffs(r);
  }
  settle(r);
  for (Worker* w : r.workers) {
    if (w->pending->count) {
      service_pending(*w);
      process_originated(*w);
    }
  }
  settle(r);
  uint64_t out = drain(r);
  expire(r);
  out += drain(r);  // what the sweep may have sent (nothing, today)

  if (unsigned used = rte_mempool_in_use_count(r.h.pool); used != r.baseline)
    fail("packet buffers left in use after the input", used, r.baseline);
  if (unsigned used = rte_mempool_in_use_count(r.h.indirect); used != r.indirect_baseline)
    fail("indirect buffers left in use after the input", used, r.indirect_baseline);
  Tally after = count(r);
  uint64_t in = frames.size();
  uint64_t made = after.made - before.made;
  uint64_t gone = out + (after.sent - before.sent) + (after.drops - before.drops) + (after.consumed - before.consumed);
  if (trace) {
    // MEDIX_FUZZ_TRACE=1: what became of each input (to check that seeds go where they should).
    fprintf(stderr, "fuzz-pipeline: %llu frames: %llu out, %llu made, %llu consumed, dropped:",
            static_cast<unsigned long long>(in), static_cast<unsigned long long>(out + after.sent - before.sent),
            static_cast<unsigned long long>(made), static_cast<unsigned long long>(after.consumed - before.consumed));
    for (unsigned i = 0; i < drop_reason_count; i++)
      if (uint64_t n = after.by_reason[i] - before.by_reason[i])
        fprintf(stderr, " %s %llu", drop_reasons[i].name, static_cast<unsigned long long>(n));
    fprintf(stderr, "\n");
  }
  if (in == 1 && frames[0].len < exact_below && gone != in + made)
    fail("a frame's packets do not add up: out + dropped + consumed", gone, in + made);
  if (in && gone == 0) fail("frames vanished: nothing out, dropped or consumed", gone, in);
  return 0;
}
