#include "ipsec/esp.h"

#include <algorithm>
#include <bit>
#include <new>

#include <rte_cycles.h>
#include <rte_hash.h>
#include <rte_ip.h>
#include <rte_ip_frag.h>
#include <rte_ring_elem.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "infra/checksum.h"
#include "ip/ip.h"
#include "ipsec/sa.h"

namespace medix::dp {

namespace {

constexpr uint16_t esp_header = 8;  // SPI, sequence number
constexpr uint16_t ike_port = nat_t_port;

inline uint32_t be32_at(const uint8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return rte_be_to_cpu_32(v);
}
inline void put_be32(uint8_t* p, uint32_t v) {
  v = rte_cpu_to_be_32(v);
  memcpy(p, &v, 4);
}

// ICVs are 12 or 16 bytes (commit.cpp): as two 8-byte words, the second ending at the ICV's
// end (overlapping the first for 12), fixed-size loads where a memcpy of n bytes is a call.
inline void icv_words(const uint8_t* p, unsigned n, uint64_t& a, uint64_t& b) {
  memcpy(&a, p, 8);
  memcpy(&b, p + n - 8, 8);
}
inline void copy_icv(uint8_t* to, const uint8_t* from, unsigned n) {
  uint64_t a, b;
  icv_words(from, n, a, b);
  memcpy(to, &a, 8);
  memcpy(to + n - 8, &b, 8);
}
// Constant time, so that a forger learns nothing from how long a wrong ICV took.
inline bool same_icv(const uint8_t* x, const uint8_t* y, unsigned n) {
  uint64_t xa, xb, ya, yb;
  icv_words(x, n, xa, xb);
  icv_words(y, n, ya, yb);
  return ((xa ^ ya) | (xb ^ yb)) == 0;
}

// Self-describing padding (RFC 4303 2.4: 1, 2, 3, ...) of up to 16 bytes, as two words.
static_assert(std::endian::native == std::endian::little);
constexpr uint64_t pad_ramp_lo = 0x0807060504030201, pad_ramp_hi = 0x100f0e0d0c0b0a09;
// Whether the n bytes at p are 1, 2, ..., n. With n <= 15 and 16 bytes readable at p (the
// trailer and ICV follow the padding), without a branch a byte.
inline bool padding_ok(const uint8_t* p, unsigned n, bool sixteen_readable) {
  if (n <= 15 && sixteen_readable) [[likely]] {
    uint64_t lo, hi;
    memcpy(&lo, p, 8);
    memcpy(&hi, p + 8, 8);
    uint64_t mask_lo = n >= 8 ? ~uint64_t(0) : (uint64_t(1) << (8 * n)) - 1;
    uint64_t mask_hi = n > 8 ? (uint64_t(1) << (8 * (n - 8))) - 1 : 0;
    return (((lo ^ pad_ramp_lo) & mask_lo) | ((hi ^ pad_ramp_hi) & mask_hi)) == 0;
  }
  for (unsigned k = 0; k < n; k++)
    if (p[k] != k + 1) return false;
  return true;
}

// A drop that counts against the SA too, by the same reason.
void sa_drop(Worker& w, SaState& sa, rte_mbuf* m, Drop reason) {
  static_assert(counts_against_sa(Drop::esp_truncated) && counts_against_sa(Drop::ha_sa_fenced));
  if (sa.spread)
    __atomic_fetch_add(&sa.drops_of(reason), 1, __ATOMIC_RELAXED);  // any of its workers drops
  else
    bump(sa.drops_of(reason));
  drop(w, m, reason);
}

// A spread SA's packet (marked for its tx point, mark_ordered) whose crypto failed: it still
// goes there, so that its number leaves no hole, and is dropped there.
void mark_failed(rte_mbuf* m) {
  PacketMeta& pm = meta(m);
  pm.out_uid = (pm.out_uid & 0xffff) | uint32_t(int(Drop::esp_crypto_failed) + 1) << 16;
}

void sa_event(Worker& w, const SaState& sa, SaEventKind kind) {
  SaEventMessage e{sa.spi, sa.tunnel, uint8_t(kind), sa.inbound, sa.packets, sa.bytes, rte_rdtsc()};
  rte_ring_sp_enqueue_elem(w.sa_events, &e, sizeof e);  // full: the control side is far behind; it reads state too
}

// Counts a packet against the SA's lifetimes; true if it may still be used.
bool account(Worker& w, SaState& sa, uint32_t bytes) {
  bump(sa.packets);
  bump(sa.bytes, bytes);
  sa.last_used_tsc = w.now;  // the burst's time: an rdtsc per packet costs ~30 cycles
  if (sa.life == SaLife::active &&
      ((sa.soft_bytes && sa.bytes >= sa.soft_bytes) || (sa.soft_packets && sa.packets >= sa.soft_packets))) {
    sa.life = SaLife::soft_expired;
    sa_event(w, sa, SaEventKind::soft_expired);
  }
  if (sa.life != SaLife::hard_expired &&
      ((sa.hard_bytes && sa.bytes >= sa.hard_bytes) || (sa.hard_packets && sa.packets >= sa.hard_packets))) {
    sa.life = SaLife::hard_expired;
    sa_event(w, sa, SaEventKind::hard_expired);
  }
  return true;
}

bool gcm(const SaState& sa) { return sa.cipher == CipherKind::aes_gcm; }

void gcm_crypt(Worker& w, const SaState& sa, bool encrypt, uint8_t* data, uint64_t len, const uint8_t* iv8,
               const uint8_t* aad, uint64_t aad_len, uint8_t* tag) {
  alignas(16) uint8_t nonce[12];
  memcpy(nonce, sa.salt, 4);
  memcpy(nonce + 4, iv8, 8);
  gcm_context_data ctx;
  if (sa.key_len == 16) {
    if (encrypt)
      IMB_AES128_GCM_ENC(w.mgr, &sa.gcm, &ctx, data, data, len, nonce, aad, aad_len, tag, 16);
    else
      IMB_AES128_GCM_DEC(w.mgr, &sa.gcm, &ctx, data, data, len, nonce, aad, aad_len, tag, 16);
  } else {
    if (encrypt)
      IMB_AES256_GCM_ENC(w.mgr, &sa.gcm, &ctx, data, data, len, nonce, aad, aad_len, tag, 16);
    else
      IMB_AES256_GCM_DEC(w.mgr, &sa.gcm, &ctx, data, data, len, nonce, aad, aad_len, tag, 16);
  }
}

bool in_selectors(const std::array<Subnet, 8>& list, uint8_t n, uint32_t address) {
  if (n == 0) return true;
  for (unsigned i = 0; i < n; i++)
    if (list[i].contains(address)) return true;
  return false;
}

}  // namespace

// A packet whose crypto is done or under way: inbound, what its verdict needs.
struct EspPacket {
  rte_mbuf* m;
  SaState* sa;
  const InterfaceEntry* tunnel;  // inbound
  uint8_t* payload;              // inbound: the ESP payload, decrypted in place
  int32_t cipher_len;
  uint64_t seq;
  bool inbound;
  uint8_t outer_tos;              // inbound: the outer header's, for RFC 6040
  uint8_t failed;                 // its crypto job did not complete
  uint8_t tag[16], received[16];  // inbound: the ICV computed and the one that came
};

// Packets counted on their tunnel (and its tenant) a run of one tunnel's at a time, not a
// packet at a time: added to the worker's counters when the tunnel changes and before the
// call that counted them (esp_input, esp_complete, esp_output) returns.
struct TunnelTally {
  uint16_t tunnel = 0, tenant = 0;
  uint32_t packets = 0;
  uint64_t bytes = 0;
};

// The underlay's route for one tunnel's outer packets, as ip_lookup decides it for a packet of
// our own (no TTL, no ICMP) in `tenant` to `remote`: a function of the FIB, the next hops and
// the interfaces, none of which changes within a generation (a route or interface change is a
// commit, which publishes a new one; next hop ids are reused only once no FIB points at them).
// So an entry holds for the packets of the generation it was made in with that tenant and
// destination. The neighbour is not kept: ip_output resolves it from the table as for any
// packet, so that a neighbour change applies to the next packet.
struct UnderlayRoute {
  uint32_t generation = 0;
  uint32_t remote = 0;  // host order
  uint16_t tenant = 0;
  bool made = false;  // never made: generation and the rest mean nothing
  bool out = false;   // a plain `via` out of an interface; else the lookup decides each packet
  uint16_t iface = 0, mtu = 0;
  uint32_t neighbour = 0;  // the gateway, or the remote for a connected one
};

struct EspJobs {
  TunnelTally rx;  // decrypted packets
  // The CBC IVs' ECB jobs run here, to completion, without flushing the lanes of w.mgr.
  IMB_MGR* iv_mgr = nullptr;
  unsigned in_flight = 0;
  uint64_t submitted = 0;
  EspPacket slots[IMB_MAX_JOBS];  // by the index of its job in w.mgr's queue
  // Completed packets, until the pipeline takes them; jobs complete in the order submitted.
  uint16_t n_in = 0, n_out = 0;
  rte_mbuf* done_in[2 * IMB_MAX_JOBS];
  rte_mbuf* done_out[2 * IMB_MAX_JOBS];
  UnderlayRoute underlay[max_interfaces];  // by tunnel slot (esp_route_outer)
};

EspJobs* esp_jobs_create() {
  auto* q = new (std::nothrow) EspJobs();
  if (!q) return nullptr;
  q->iv_mgr = alloc_mb_mgr(0);
  if (!q->iv_mgr) {
    delete q;
    return nullptr;
  }
  init_mb_mgr_auto(q->iv_mgr, nullptr);
  return q;
}

void esp_jobs_destroy(EspJobs* q) {
  if (!q) return;
  free_mb_mgr(q->iv_mgr);
  delete q;
}

unsigned esp_in_flight(const Worker& w) { return w.esp_jobs->in_flight; }
bool esp_done(const Worker& w) { return w.esp_jobs->n_in || w.esp_jobs->n_out; }
uint64_t esp_submitted(const Worker& w) { return w.esp_jobs->submitted; }

namespace {

void flush_rx(Worker& w, TunnelTally& r) {
  if (!r.packets) return;
  bump(w.counters->interfaces[r.tunnel].rx_packets, r.packets);
  bump(w.counters->interfaces[r.tunnel].rx_bytes, r.bytes);
  bump(w.counters->tenants[r.tenant].rx_packets, r.packets);
  r.packets = 0;
  r.bytes = 0;
}

void tally_rx(Worker& w, uint16_t tunnel, uint16_t tenant, uint32_t bytes) {
  TunnelTally& r = w.esp_jobs->rx;
  if (r.packets && (r.tunnel != tunnel || r.tenant != tenant)) flush_rx(w, r);
  r.tunnel = tunnel;
  r.tenant = tenant;
  r.packets++;
  r.bytes += bytes;
}

// The verdict on an inbound packet whose ICV has been computed: the inner packet, its header
// checked, or nullptr (dropped and counted).
rte_mbuf* verdict_in(Worker& w, EspPacket& d) {
  auto& [m, sa, tunnel, payload, cipher_len, seq, inbound, outer_tos, failed, tag, received] = d;
  if (failed) {
    sa_drop(w, *sa, m, Drop::esp_crypto_failed);
    return nullptr;
  }
  if (!same_icv(tag, received, sa->icv_len)) {
    sa_drop(w, *sa, m, Drop::esp_bad_icv);
    return nullptr;
  }
  if (sa->life == SaLife::hard_expired) {  // an earlier packet used it up
    sa_drop(w, *sa, m, Drop::sa_expired);
    return nullptr;
  }
  // Checked again: packets verified since this one was submitted have moved the window.
  if (auto again = sa->replay.check(seq); again != ReplayWindow::accept) {
    if (again == ReplayWindow::replayed)
      sa_drop(w, *sa, m, Drop::esp_replayed);
    else
      sa_drop(w, *sa, m, Drop::esp_too_old);
    return nullptr;
  }
  sa->replay.update(seq);
  uint8_t next_header = payload[cipher_len - 1];
  uint8_t pad = payload[cipher_len - 2];
  // From the padding's first byte: the padding, the trailer's 2 and the ICV.
  if (pad + 2 > cipher_len || !padding_ok(payload + cipher_len - 2 - pad, pad, pad + 2u + sa->icv_len >= 16)) {
    sa_drop(w, *sa, m, Drop::esp_bad_padding);
    return nullptr;
  }
  if (next_header != IPPROTO_IPIP) {
    sa_drop(w, *sa, m, Drop::esp_bad_next_header);
    return nullptr;
  }
  uint32_t inner_len = uint32_t(cipher_len - pad - 2);
  if (inner_len < sizeof(rte_ipv4_hdr) || (payload[0] >> 4) != 4) {
    sa_drop(w, *sa, m, Drop::esp_bad_next_header);
    return nullptr;
  }
  auto* in = reinterpret_cast<rte_ipv4_hdr*>(payload);
  if (!in_selectors(tunnel->remote_selectors, tunnel->n_remote_selectors, rte_be_to_cpu_32(in->src_addr)) ||
      !in_selectors(tunnel->local_selectors, tunnel->n_local_selectors, rte_be_to_cpu_32(in->dst_addr))) {
    sa_drop(w, *sa, m, Drop::esp_selector_mismatch);
    return nullptr;
  }
  // RFC 6040 decapsulation (section 4.2): CE outside marks an ECN-capable inside CE, and
  // is dropped over a not-ECT inside; ECT(1) outside over ECT(0) inside becomes ECT(1).
  uint8_t outer_ecn = outer_tos & 3, inner_ecn = in->type_of_service & 3;
  uint8_t ecn = inner_ecn;
  if (inner_ecn != 0 && outer_ecn == 3)
    ecn = 3;
  else if (inner_ecn == 2 && outer_ecn == 1)
    ecn = 1;
  if (inner_ecn == 0 && outer_ecn == 3) {
    sa_drop(w, *sa, m, Drop::esp_ecn);
    return nullptr;
  }
  // The uniform model (RFC 2983): the inner DSCP takes the outer's.
  uint8_t dscp = tunnel->decap_copy_dscp ? outer_tos & ~3 : in->type_of_service & ~3;
  if (ecn != inner_ecn || dscp != (in->type_of_service & ~3)) {
    uint16_t old = load16(&in->version_ihl);
    in->type_of_service = uint8_t(dscp | ecn);
    in->hdr_checksum = checksum_replace16(in->hdr_checksum, old, load16(&in->version_ihl));
  }
  account(w, *sa, inner_len);
  // One segment (esp_input linearized it): L2, the outer headers and the trailer cut in one
  // write of its bounds.
  m->data_off = uint16_t(payload - static_cast<uint8_t*>(m->buf_addr));
  m->data_len = uint16_t(inner_len);
  m->pkt_len = inner_len;
  PacketMeta& pm = meta(m);
  pm.iface_in = sa->tunnel;
  pm.tenant = tunnel->tenant;
  pm.l2_len = 0;
  pm.flags = 0;
  pm.session = 0;
  if (tunnel->mss_clamp) clamp_mss(m, 0, tunnel->mss_clamp);
  tally_rx(w, sa->tunnel, tunnel->tenant, inner_len);
  // The inner header is checked here while it is in cache; the pipeline does not again.
  return ip_check(w, m) ? m : nullptr;
}

void put_done(Worker& w, rte_mbuf** done, uint16_t& n, rte_mbuf* m) {
  if (n < 2 * IMB_MAX_JOBS)
    done[n++] = m;
  else
    drop(w, m, Drop::no_buffer);
}

// A job IPsec-MB hands back (in the order submitted): its packet's verdict, or its ICV in place.
void complete(Worker& w, IMB_JOB* job) {
  EspJobs& q = *w.esp_jobs;
  EspPacket& p = q.slots[job - w.mgr->jobs];
  p.failed = job->status != IMB_STATUS_COMPLETED;
  q.in_flight--;
  if (p.inbound) {
    p.sa->checking--;
    if (rte_mbuf* m = verdict_in(w, p)) put_done(w, q.done_in, q.n_in, m);
  } else if (p.sa->spread) {
    if (p.failed) mark_failed(p.m);  // its run hands it to the tx point, which drops and counts it
  } else if (p.failed) {
    sa_drop(w, *p.sa, p.m, Drop::esp_crypto_failed);  // its output was not written: it may not leave
  } else {
    put_done(w, q.done_out, q.n_out, p.m);
  }
}

// AES-CBC and HMAC in one job, left in the multi-buffer lanes: it completes as later jobs fill
// them (IPsec-MB completes the earliest when its queue is full) or when the worker flushes
// (docs/ipsec.md, "Speed"). `p` is the packet's state; its ICV goes to `tag_out`, or with none
// (inbound) to the state's tag.
void submit_cbc_hmac(Worker& w, const EspPacket& p, uint8_t* esp, uint64_t cipher_len, uint64_t hash_len,
                     const uint8_t* iv, uint8_t* tag_out) {
  const SaState& sa = *p.sa;
  EspJobs& q = *w.esp_jobs;
  IMB_JOB* job = IMB_GET_NEXT_JOB(w.mgr);
  EspPacket& slot = q.slots[job - w.mgr->jobs];
  slot = p;
  // The SA's job, made with it; this packet's own fields on top.
  *job = sa.cbc_job;
  job->src = esp;
  job->dst = esp + esp_header + 16;
  job->msg_len_to_cipher_in_bytes = cipher_len;
  job->iv = iv;
  job->msg_len_to_hash_in_bytes = hash_len;
  job->auth_tag_output = tag_out ? tag_out : slot.tag;
  q.in_flight++;
  q.submitted++;
  if (IMB_JOB* done = IMB_SUBMIT_JOB(w.mgr)) complete(w, done);
}

}  // namespace

void esp_complete(Worker& w, bool flush) {
  while (IMB_JOB* job = IMB_GET_COMPLETED_JOB(w.mgr)) complete(w, job);
  if (flush)
    while (IMB_JOB* job = IMB_FLUSH_JOB(w.mgr)) complete(w, job);
  flush_rx(w, w.esp_jobs->rx);
}

void esp_take_done(Worker& w, Batch& inner, Batch& outer, uint16_t room) {
  EspJobs& q = *w.esp_jobs;
  auto take = [&room](rte_mbuf** done, uint16_t& n, Batch& to) {
    uint16_t k = std::min<uint16_t>({n, room, uint16_t(std::size(to.pkts) - to.n)});
    memcpy(to.pkts + to.n, done, k * sizeof(rte_mbuf*));
    memmove(done, done + k, (n - k) * sizeof(rte_mbuf*));
    n = uint16_t(n - k);
    to.n = uint16_t(to.n + k);
    room = uint16_t(room - k);
    return k;
  };
  uint16_t first_in = inner.n, first_out = outer.n;
  uint16_t k_in = q.n_in ? take(q.done_in, q.n_in, inner) : 0;
  uint16_t k_out = q.n_out ? take(q.done_out, q.n_out, outer) : 0;
  if (w.trace) [[unlikely]] {
    trace_step(w, TraceStep::decrypted, inner.pkts + first_in, k_in);
    trace_encrypted(w, outer.pkts + first_out, k_out);
  }
}

void esp_discard(Worker& w) {
  EspJobs& q = *w.esp_jobs;
  while (IMB_JOB* job = IMB_FLUSH_JOB(w.mgr)) {
    rte_pktmbuf_free(q.slots[job - w.mgr->jobs].m);
    q.in_flight--;
  }
  for (uint16_t i = 0; i < q.n_in; i++) rte_pktmbuf_free(q.done_in[i]);
  for (uint16_t i = 0; i < q.n_out; i++) rte_pktmbuf_free(q.done_out[i]);
  q.n_in = q.n_out = 0;
}

void clamp_mss(rte_mbuf* m, uint16_t l3, uint16_t mss) {
  auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l3);
  if (ip->next_proto_id != IPPROTO_TCP || rte_ipv4_frag_pkt_is_fragmented(ip)) return;
  uint16_t ihl = uint16_t((ip->version_ihl & 0xf) * 4);
  if (rte_pktmbuf_data_len(m) < l3 + ihl + sizeof(rte_tcp_hdr)) return;
  auto* tcp = reinterpret_cast<rte_tcp_hdr*>(reinterpret_cast<uint8_t*>(ip) + ihl);
  if (!(tcp->tcp_flags & RTE_TCP_SYN_FLAG)) return;
  uint16_t header = uint16_t((tcp->data_off >> 4) * 4);
  if (header < sizeof(rte_tcp_hdr) || rte_pktmbuf_data_len(m) < l3 + ihl + header) return;
  uint8_t* opt = reinterpret_cast<uint8_t*>(tcp) + sizeof(rte_tcp_hdr);
  uint8_t* end = reinterpret_cast<uint8_t*>(tcp) + header;
  while (opt < end) {
    if (*opt == 0) break;
    if (*opt == 1) {
      opt++;
      continue;
    }
    if (opt + 1 >= end || opt[1] < 2 || opt + opt[1] > end) break;
    if (opt[0] == 2 && opt[1] == 4) {
      uint16_t old = load16(opt + 2);
      if (rte_be_to_cpu_16(old) > mss) {
        uint16_t now = rte_cpu_to_be_16(mss);
        memcpy(opt + 2, &now, 2);
        // At an odd offset from the header the value straddles two checksum words: in the
        // ones' complement sum that is the same as the byte-swapped value in one.
        bool odd = (opt + 2 - reinterpret_cast<uint8_t*>(tcp)) & 1;
        tcp->cksum = odd ? checksum_replace16(tcp->cksum, rte_bswap16(old), rte_bswap16(now))
                         : checksum_replace16(tcp->cksum, old, now);
      }
      break;
    }
    opt += opt[1];
  }
}

void esp_input(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** inner, uint16_t& n_inner, rte_mbuf** not_ours,
               uint16_t* n_not_ours) {
  const Tables& t = *w.tables;
  uint16_t first_inner = n_inner;
  if (w.trace) [[unlikely]]
    trace_esp(w, pkts, n);
  // Not ESP to one of our tunnel endpoints: handed back as it came, or dropped.
  auto stranger = [&](rte_mbuf* m, Drop reason) {
    if (not_ours)
      not_ours[(*n_not_ours)++] = m;
    else
      drop(w, m, reason);
  };
  uint32_t spis[burst_size];
  const void* keys[burst_size];
  uint16_t lookup_of[burst_size];  // the packet's run of equal SPIs
  rte_mbuf* kept[burst_size];
  uint16_t n_kept = 0, n_lookups = 0;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) {
      drop(w, m, Drop::no_buffer);
      continue;
    }
    uint16_t l2 = meta(m).l2_len;
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, l2);
    uint16_t esp_off = uint16_t(l2 + (ip->version_ihl & 0xf) * 4 + (ip->next_proto_id == IPPROTO_UDP ? 8 : 0));
    if (rte_pktmbuf_data_len(m) < esp_off + esp_header) {
      stranger(m, Drop::esp_truncated);
      continue;
    }
    // A burst from one carrier mostly carries one SPI: each run of equal SPIs looked up once.
    spis[n_kept] = be32_at(rte_pktmbuf_mtod_offset(m, uint8_t*, esp_off));
    if (n_kept == 0 || spis[n_kept] != spis[n_kept - 1]) keys[n_lookups++] = &spis[n_kept];
    lookup_of[n_kept] = uint16_t(n_lookups - 1);
    kept[n_kept++] = m;
  }
  if (!n_kept) return;
  void* found[burst_size];
  uint64_t hits = 0;
  if (t.sa_index) rte_hash_lookup_bulk_data(t.sa_index, keys, n_lookups, &hits, found);

  // GCM packets get their verdict as soon as they are decrypted; CBC packets when their jobs
  // complete (EspJobs), this burst or later.
  for (uint16_t i = 0; i < n_kept; i++) {
    rte_mbuf* m = kept[i];
    auto* ip = rte_pktmbuf_mtod_offset(m, rte_ipv4_hdr*, meta(m).l2_len);
    uint16_t run = lookup_of[i];
    SaState* sa = (hits >> run) & 1 ? t.sas[reinterpret_cast<uintptr_t>(found[run])] : nullptr;
    const InterfaceEntry* tunnel = sa ? &t.interfaces[sa->tunnel] : nullptr;
    // The SPI must be ours for this endpoint, in this underlay.
    if (!sa || !sa->inbound || tunnel->local != rte_be_to_cpu_32(ip->dst_addr) || tunnel->underlay != meta(m).tenant) {
      stranger(m, Drop::esp_unknown_spi);
      continue;
    }
    // L2 stays on (its length in the meta, for the owner if handed over): verdict_in cuts
    // it with the outer headers, one write of the mbuf's bounds.
    if (sa->owner != w.queue) {
      hand_off(w, sa->owner, m, Handoff::esp_decrypt);
      continue;
    }
    uint16_t ihl = uint16_t((ip->version_ihl & 0xf) * 4);
    uint16_t esp_off = uint16_t(ihl + (ip->next_proto_id == IPPROTO_UDP ? 8 : 0));
    uint8_t* esp = reinterpret_cast<uint8_t*>(ip) + esp_off;
    int32_t esp_len = int32_t(rte_be_to_cpu_16(ip->total_length)) - esp_off;
    int32_t cipher_len = esp_len - esp_header - sa->iv_len - sa->icv_len;
    if (cipher_len < 2 || (cipher_len & (sa->block - 1))) {  // blocks are powers of two
      sa_drop(w, *sa, m, Drop::esp_truncated);
      continue;
    }
    if (sa->life == SaLife::hard_expired) {
      sa_drop(w, *sa, m, Drop::sa_expired);
      continue;
    }
    uint32_t seq_low = be32_at(esp + 4);
    // Packets whose verdicts are still to come count as accepted for ESN inference.
    uint64_t top = sa->checking ? sa->checking_top : sa->replay.top;
    uint64_t seq = sa->esn ? sa->replay.infer_esn(top, seq_low) : seq_low;
    auto verdict = seq == 0 ? ReplayWindow::too_old : sa->replay.check(seq);
    if (verdict != ReplayWindow::accept) {
      if (verdict == ReplayWindow::replayed)
        sa_drop(w, *sa, m, Drop::esp_replayed);
      else
        sa_drop(w, *sa, m, Drop::esp_too_old);
      continue;
    }
    uint8_t* iv = esp + esp_header;
    uint8_t* payload = iv + sa->iv_len;
    uint8_t* icv = payload + cipher_len;
    EspPacket d;
    d.m = m;
    d.sa = sa;
    d.tunnel = tunnel;
    d.payload = payload;
    d.cipher_len = cipher_len;
    d.seq = seq;
    d.inbound = true;
    d.outer_tos = ip->type_of_service;
    d.failed = 0;
    copy_icv(d.received, icv, sa->icv_len);
    if (gcm(*sa)) {
      uint8_t aad[12];
      memcpy(aad, esp, 4);
      unsigned aad_len = 8;
      if (sa->esn) {
        put_be32(aad + 4, uint32_t(seq >> 32));
        memcpy(aad + 8, esp + 4, 4);
        aad_len = 12;
      } else {
        memcpy(aad + 4, esp + 4, 4);
      }
      gcm_crypt(w, *sa, false, payload, uint64_t(cipher_len), iv, aad, aad_len, d.tag);
      if (rte_mbuf* in = verdict_in(w, d)) inner[n_inner++] = in;
      continue;
    }
    // The ICV covers the ESP header, IV and ciphertext, and with ESN the high sequence bits
    // appended (RFC 4303 2.2.1), which take the ICV's place while hashing.
    uint64_t hashed = esp_header + sa->iv_len + uint64_t(cipher_len);
    if (sa->esn) {
      put_be32(icv, uint32_t(seq >> 32));
      hashed += 4;
    }
    if (!sa->checking++ || seq > sa->checking_top) sa->checking_top = std::max(seq, sa->replay.top);
    // Hash, then decrypt, in one job; a forged packet is decrypted for nothing and dropped.
    submit_cbc_hmac(w, d, esp, uint64_t(cipher_len), hashed, iv, nullptr);
  }
  esp_complete(w, false);
  if (w.trace) [[unlikely]]
    trace_step(w, TraceStep::decrypted, inner + first_inner, uint16_t(n_inner - first_inner));
}

namespace {

// The CBC packets of an esp_output call. Their IVs are made together: one AES-ECB job over
// the counter blocks of each run of one SA's packets (~2 cycles an IV, where a single-block
// call costs ~45), in a manager of their own, so that the lanes of w.mgr are not flushed.
// Then their jobs are submitted, to complete this burst or later (EspJobs).
struct CbcBatch {
  struct Packet {
    rte_mbuf* m;
    SaState* sa;
    uint8_t* esp;
    uint8_t* icv;
    uint32_t padded, hashed;
  };
  uint16_t n = 0;
  Packet pkts[2 * burst_size];
  alignas(16) uint8_t counters[2 * burst_size][16];
  alignas(16) uint8_t ivs[2 * burst_size][16];

  void add(Worker& w, const Packet& p, uint64_t seq) {
    if (n == std::size(pkts)) run(w);
    // CBC needs an unpredictable IV: the sequence number under a key of the SA's own.
    memset(counters[n], 0, 16);
    uint64_t s = rte_cpu_to_be_64(seq);
    memcpy(counters[n], &s, 8);
    memcpy(counters[n] + 8, p.esp, 4);
    pkts[n++] = p;
  }

  void run(Worker& w) {
    IMB_MGR* iv_mgr = w.esp_jobs->iv_mgr;
    for (uint16_t first = 0, last; first < n; first = uint16_t(last + 1)) {
      for (last = first; last + 1 < n && pkts[last + 1].sa == pkts[first].sa;) last++;
      IMB_JOB* job = IMB_GET_NEXT_JOB(iv_mgr);
      job->cipher_mode = IMB_CIPHER_ECB;
      job->cipher_direction = IMB_DIR_ENCRYPT;
      job->chain_order = IMB_ORDER_CIPHER_HASH;
      job->hash_alg = IMB_AUTH_NULL;
      job->enc_keys = job->dec_keys = pkts[first].sa->iv_keys;
      job->key_len_in_bytes = 16;
      job->src = counters[first];
      job->dst = ivs[first];
      job->cipher_start_src_offset_in_bytes = 0;
      job->msg_len_to_cipher_in_bytes = 16u * (last - first + 1);
      job->iv = nullptr;
      job->iv_len_in_bytes = 0;
      job->msg_len_to_hash_in_bytes = 0;
      // The manager's only job: ECB is not multi-buffer, it is done when submitted.
      IMB_JOB* done = IMB_SUBMIT_JOB(iv_mgr);
      if (!done) done = IMB_FLUSH_JOB(iv_mgr);
      bool ok = done && done->status == IMB_STATUS_COMPLETED;
      for (uint16_t i = first; i <= last; i++) {
        Packet& p = pkts[i];
        if (!ok) {  // no IV: nothing of it may leave
          if (p.sa->spread)
            mark_failed(p.m);
          else
            sa_drop(w, *p.sa, p.m, Drop::esp_crypto_failed);
          continue;
        }
        memcpy(p.esp + esp_header, ivs[i], 16);
        EspPacket state{};
        state.m = p.m;
        state.sa = p.sa;
        submit_cbc_hmac(w, state, p.esp, p.padded, p.hashed, p.esp + esp_header, p.icv);
      }
    }
    n = 0;
  }
};

// A packet's room for ESP, made before it is numbered: what sealing it needs.
struct Room {
  uint8_t* head;  // where the outer header starts
  uint32_t inner_len, padded;
  uint8_t tos;
  bool inner_df;
};

// The part of encapsulation that may fail before a sequence number is spent: the SA still
// usable, one segment, headroom and tailroom. MSS clamped, padding and trailer written.
bool make_room(Worker& w, SaState& sa, const InterfaceEntry& tunnel, rte_mbuf* m, Room& r) {
  if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) {
    drop(w, m, Drop::no_buffer);
    return false;
  }
  if (std::atomic_ref(sa.life).load(std::memory_order_relaxed) == SaLife::hard_expired) {
    sa_drop(w, sa, m, Drop::sa_expired);
    return false;
  }
  if (tunnel.mss_clamp) clamp_mss(m, 0, tunnel.mss_clamp);
  const auto* inner_ip = rte_pktmbuf_mtod(m, const rte_ipv4_hdr*);
  r.tos = inner_ip->type_of_service;
  if (tunnel.outer_dscp >= 0) r.tos = uint8_t(tunnel.outer_dscp << 2 | (r.tos & 3));  // DSCP_SET; ECN still copied
  r.inner_df = inner_ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG);
  r.inner_len = rte_pktmbuf_pkt_len(m);
  r.padded = RTE_ALIGN_CEIL(r.inner_len + 2, sa.block);
  uint32_t pad = r.padded - r.inner_len - 2;
  uint16_t outer = uint16_t(sizeof(rte_ipv4_hdr) + (tunnel.remote_port ? sizeof(rte_udp_hdr) : 0));
  auto* tail = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, uint16_t(pad + 2 + sa.icv_len)));
  r.head = reinterpret_cast<uint8_t*>(rte_pktmbuf_prepend(m, uint16_t(outer + esp_header + sa.iv_len)));
  if (!tail || !r.head) {
    drop(w, m, Drop::no_buffer);
    return false;
  }
  if (pad <= 15 && pad + 2 + sa.icv_len >= 16) [[likely]] {  // 16 bytes appended: one store
    uint64_t ramp[2] = {pad_ramp_lo, pad_ramp_hi};
    memcpy(tail, ramp, 16);
  } else {
    for (uint32_t k = 0; k < pad; k++) tail[k] = uint8_t(k + 1);
  }
  tail[pad] = uint8_t(pad);
  tail[pad + 1] = IPPROTO_IPIP;
  return true;
}

// Whether sequence number seq may go out on the SA; else why not (told to the control side
// once). Any worker of a spread SA may get here: the flags are swapped atomically.
bool may_send(Worker& w, SaState& sa, uint64_t seq, uint64_t fence, Drop& reason) {
  if (!sa.esn && seq > UINT32_MAX) {  // RFC 4303 3.3.3: never cycle; IKE must rekey
    if (std::atomic_ref(sa.life).exchange(SaLife::hard_expired, std::memory_order_relaxed) != SaLife::hard_expired)
      sa_event(w, sa, SaEventKind::sequence_overflow);
    reason = Drop::sa_seq_overflow;
    return false;
  }
  // HA (docs/ha.md, "The fence"): past what the standby acknowledged plus the margin, a node
  // that took over could send these numbers under this key too. Rekeyed, not sent.
  if (seq > fence) [[unlikely]] {
    // Not yet on disk (ha/reserve.h): sent, a restart could send it again.
    if (seq > __atomic_load_n(&sa.reserved, __ATOMIC_RELAXED)) {
      reason = Drop::sa_seq_unreserved;
      return false;
    }
    if (!__atomic_exchange_n(&sa.fenced, true, __ATOMIC_RELAXED)) sa_event(w, sa, SaEventKind::ha_fenced);
    reason = Drop::ha_sa_fenced;
    return false;
  }
  return true;
}

// ESP with sequence number seq in the room made: header, crypto (CBC: queued on `cbc`), the
// outer header.
void seal(Worker& w, SaState& sa, const InterfaceEntry& tunnel, rte_mbuf* m, const Room& r, uint64_t seq,
          uint16_t ip_id, CbcBatch& cbc) {
  bool udp = tunnel.remote_port != 0;
  uint16_t outer = uint16_t(sizeof(rte_ipv4_hdr) + (udp ? sizeof(rte_udp_hdr) : 0));
  uint8_t* esp = r.head + outer;
  put_be32(esp, sa.spi);
  put_be32(esp + 4, uint32_t(seq));
  uint8_t* iv = esp + esp_header;
  uint8_t* payload = iv + sa.iv_len;
  uint8_t* icv = payload + r.padded;
  if (gcm(sa)) {
    // RFC 4106: the IV must never repeat under a key; the sequence number never does.
    uint64_t iv_value = rte_cpu_to_be_64(seq);
    memcpy(iv, &iv_value, 8);
    uint8_t aad[12];
    memcpy(aad, esp, 4);
    unsigned aad_len = 8;
    if (sa.esn) {
      put_be32(aad + 4, uint32_t(seq >> 32));
      memcpy(aad + 8, esp + 4, 4);
      aad_len = 12;
    } else {
      memcpy(aad + 4, esp + 4, 4);
    }
    gcm_crypt(w, sa, true, payload, r.padded, iv, aad, aad_len, icv);
  } else {
    uint32_t hashed = esp_header + sa.iv_len + r.padded;
    if (sa.esn) {
      put_be32(icv, uint32_t(seq >> 32));
      hashed += 4;
    }
    cbc.add(w, {m, &sa, esp, icv, r.padded, hashed}, seq);
  }

  // The outer header is built in registers and its checksum summed from the same values:
  // summing it back from memory would wait for the narrow stores just made.
  bool df = tunnel.df_mode == 2 || ((tunnel.df_mode == 0 || tunnel.df_mode == 1) && r.inner_df);
  uint16_t total = uint16_t(rte_pktmbuf_pkt_len(m));
  uint16_t fragment = df ? RTE_IPV4_HDR_DF_FLAG : 0;
  uint8_t proto = udp ? IPPROTO_UDP : IPPROTO_ESP;
  uint32_t sum = (uint32_t(RTE_IPV4_VHL_DEF) << 8 | r.tos) + total + ip_id + fragment +
                 (uint32_t(tunnel.ttl) << 8 | proto) + (tunnel.local >> 16) + (tunnel.local & 0xffff) +
                 (tunnel.remote >> 16) + (tunnel.remote & 0xffff);
  sum = (sum & 0xffff) + (sum >> 16);
  sum = (sum & 0xffff) + (sum >> 16);
  rte_ipv4_hdr outer_ip;
  outer_ip.version_ihl = RTE_IPV4_VHL_DEF;
  outer_ip.type_of_service = r.tos;  // DSCP copied or set, ECN copied (RFC 6040 normal mode)
  outer_ip.total_length = rte_cpu_to_be_16(total);
  outer_ip.packet_id = rte_cpu_to_be_16(ip_id);
  outer_ip.fragment_offset = rte_cpu_to_be_16(fragment);
  outer_ip.time_to_live = tunnel.ttl;
  outer_ip.next_proto_id = proto;
  outer_ip.hdr_checksum = rte_cpu_to_be_16(uint16_t(~sum));
  outer_ip.src_addr = rte_cpu_to_be_32(tunnel.local);
  outer_ip.dst_addr = rte_cpu_to_be_32(tunnel.remote);
  auto* ip = reinterpret_cast<rte_ipv4_hdr*>(r.head);
  memcpy(ip, &outer_ip, sizeof outer_ip);
  if (udp) {
    auto* u = reinterpret_cast<rte_udp_hdr*>(ip + 1);
    u->src_port = rte_cpu_to_be_16(ike_port);
    u->dst_port = rte_cpu_to_be_16(tunnel.remote_port);
    u->dgram_len = rte_cpu_to_be_16(uint16_t(rte_pktmbuf_pkt_len(m) - sizeof(rte_ipv4_hdr)));
    u->dgram_cksum = 0;  // RFC 3948: zero for ESP in UDP over IPv4
  }
}

// Encrypts one packet that starts at its inner IPv4 header, on the SA's owner; false if it
// was dropped. `fence`: the lower of the SA's fence and reservation, as read once for this
// burst's run of its packets.
bool encapsulate(Worker& w, SaState& sa, const InterfaceEntry& tunnel, rte_mbuf* m, CbcBatch& cbc, uint64_t fence) {
  Room r;
  if (!make_room(w, sa, tunnel, m, r)) return false;
  uint64_t seq = sa.seq + 1;
  if (Drop reason; !may_send(w, sa, seq, fence, reason)) {
    sa_drop(w, sa, m, reason);
    return false;
  }
  seal(w, sa, tunnel, m, r, seq, w.ip_id++, cbc);
  sa.seq = seq;
  account(w, sa, r.inner_len);
  return true;
}

// What each worker (by queue) encrypted for the spread SAs it owns, for its own tx point:
// taken by the pipeline (esp_own_ordered) before the call that made them returns.
Batch ordered_here[max_workers];

// On its way from the worker that encrypted it to its SA's tx point, a spread SA's packet
// carries these in fields only the pending queue uses (it is routed after the tx point): its
// sequence number, the SA's slot, its inner bytes (the owner counts lifetimes) and, for one
// that must not leave, why (+1; 0: send it).
void mark_ordered(rte_mbuf* m, uint64_t seq, uint16_t sa_slot, uint32_t inner_len, int reason) {
  PacketMeta& pm = meta(m);
  pm.deadline = seq;
  pm.in_uid = inner_len;
  pm.out_uid = uint32_t(sa_slot) | uint32_t(reason + 1) << 16;
}

// The packets of one spread SA in an esp_output call, their room made: numbered with one
// atomic add on the SA's counter, encrypted on this worker, handed to the owner's tx point.
// A packet that must not leave goes too, marked, so that its number leaves no hole there.
struct SpreadRun {
  SaState* sa = nullptr;
  const InterfaceEntry* tunnel = nullptr;
  uint16_t slot = 0;  // the tunnel's interface slot
  uint64_t fence = UINT64_MAX;
  uint16_t n = 0;
  rte_mbuf* pkts[2 * burst_size];
  Room rooms[2 * burst_size];

  void flush(Worker& w, CbcBatch& cbc) {
    if (!n) return;
    SaState& s = *sa;
    // The owner's own go straight to its tx point, not round its ring.
    Batch& own = ordered_here[w.queue];
    bool here = s.owner == w.queue && own.n + n <= std::size(own.pkts);
    // No room for them on the owner's ring: dropped before they are numbered (a packet lost
    // after would hold its SA back at the tx point) and before their crypto is spent.
    if (unsigned room = here ? n : rte_ring_free_count(w.handoff[s.owner]); room < n) [[unlikely]] {
      for (uint16_t i = uint16_t(room); i < n; i++) drop(w, pkts[i], Drop::handoff_full);
      n = uint16_t(room);
      if (!n) return;
    }
    uint64_t first = __atomic_fetch_add(&s.seq, n, __ATOMIC_RELAXED) + 1;
    for (uint16_t i = 0; i < n; i++) {
      uint64_t seq = first + i;
      Drop reason;
      if (!may_send(w, s, seq, fence, reason)) {
        mark_ordered(pkts[i], seq, tunnel->outbound_sa, 0, int(reason));
        continue;
      }
      // Marked first: a job that fails marks it again (mark_failed).
      mark_ordered(pkts[i], seq, tunnel->outbound_sa, rooms[i].inner_len, -1);
      // The outer IP ID from the sequence number: unique per tunnel whichever worker sends.
      seal(w, s, *tunnel, pkts[i], rooms[i], seq, uint16_t(seq), cbc);
    }
    // Every job done before the packets leave this core: the run's CBC jobs are flushed
    // through the lanes now (with whatever else is in them), not left for later bursts.
    cbc.run(w);
    if (!gcm(s)) esp_complete(w, true);
    uint64_t bytes = 0;
    uint16_t sealed = 0;
    for (uint16_t i = 0; i < n; i++)
      if (meta(pkts[i]).out_uid >> 16 == 0) {
        bytes += rooms[i].inner_len;
        sealed++;
      }
    bump(w.counters->interfaces[slot].tx_packets, sealed);
    bump(w.counters->interfaces[slot].tx_bytes, bytes);
    bump(w.counters->tenants[tunnel->tenant].tx_packets, sealed);
    for (uint16_t i = 0; i < n; i++) {
      PacketMeta& om = meta(pkts[i]);
      om.tenant = tunnel->underlay;
      om.flags = uint8_t(meta_local | (om.flags & meta_classed));
      om.l2_len = 0;
    }
    if (here) {
      memcpy(own.pkts + own.n, pkts, n * sizeof(rte_mbuf*));
      own.n = uint16_t(own.n + n);
    } else {
      hand_off_burst(w, s.owner, pkts, n, Handoff::esp_ordered);
    }
    n = 0;
  }

  // Makes the packet's room; packets of another SA first send this run's on.
  void add(Worker& w, SaState& s, const InterfaceEntry& t, uint16_t tunnel_slot, uint64_t sa_fence, rte_mbuf* m,
           CbcBatch& cbc) {
    if (sa != &s || n == std::size(pkts)) {
      flush(w, cbc);
      sa = &s;
      tunnel = &t;
      slot = tunnel_slot;
      fence = sa_fence;
    }
    if (make_room(w, s, t, m, rooms[n])) pkts[n++] = m;
  }
};

void flush_tx_tally(Worker& w, TunnelTally& r) {
  if (!r.packets) return;
  bump(w.counters->interfaces[r.tunnel].tx_packets, r.packets);
  bump(w.counters->interfaces[r.tunnel].tx_bytes, r.bytes);
  bump(w.counters->tenants[r.tenant].tx_packets, r.packets);
  r.packets = 0;
  r.bytes = 0;
}

}  // namespace

void esp_output(Worker& w, rte_mbuf** pkts, uint16_t n, rte_mbuf** outer, uint16_t& n_outer) {
  const Tables& t = *w.tables;
  uint16_t first_outer = n_outer;
  CbcBatch cbc;
  SpreadRun spread;
  TunnelTally tx;  // encrypted packets
  // The fence of the SA whose packets come now: one relaxed load a run of them, not a packet.
  const SaState* fence_of = nullptr;
  uint64_t fence = UINT64_MAX;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    PacketMeta& pm = meta(m);
    uint16_t slot = pm.iface_out;
    const InterfaceEntry& tunnel = t.interfaces[slot];
    SaState* sa = tunnel.outbound_sa ? t.sas[tunnel.outbound_sa] : nullptr;
    if (!sa) {
      drop(w, m, Drop::tunnel_no_sa);
      continue;
    }
    if (sa->owner != w.queue && !sa->spread) {
      hand_off(w, sa->owner, m, Handoff::esp_encrypt);
      continue;
    }
    if (sa != fence_of) {
      fence_of = sa;
      fence = __atomic_load_n(&sa->fence, __ATOMIC_RELAXED);
      if (__atomic_load_n(&sa->fenced, __ATOMIC_RELAXED) && __atomic_load_n(&sa->seq, __ATOMIC_RELAXED) < fence)
        __atomic_store_n(&sa->fenced, false, __ATOMIC_RELAXED);  // the fence moved on: told again next time
      fence = std::min(fence, __atomic_load_n(&sa->reserved, __ATOMIC_RELAXED));
    }
    if (pm.l2_len) {
      rte_pktmbuf_adj(m, pm.l2_len);
      pm.l2_len = 0;
    }
    // Too big for the tunnel with DF clear: fragment the inner packet, then encrypt each.
    rte_mbuf* parts[burst_size];
    int32_t n_parts = 1;
    parts[0] = m;
    if (pm.flags & meta_fragment) {
      PacketMeta saved = pm;
      n_parts = rte_ipv4_fragment_packet(m, parts, burst_size, tunnel.mtu, w.pool, w.indirect_pool);
      if (n_parts < 0) {
        drop(w, m, Drop::fragmentation_failed);
        continue;
      }
      rte_pktmbuf_free(m);
      for (int32_t k = 0; k < n_parts; k++) {
        auto* fip = rte_pktmbuf_mtod(parts[k], rte_ipv4_hdr*);
        fip->hdr_checksum = 0;
        fip->hdr_checksum = uint16_t(~ipv4_header_sum(fip, rte_ipv4_hdr_len(fip)));
        meta(parts[k]) = saved;
      }
    }
    for (int32_t k = 0; k < n_parts; k++) {
      rte_mbuf* p = parts[k];
      if (sa->spread) {
        spread.add(w, *sa, tunnel, slot, fence, p, cbc);
        continue;
      }
      uint32_t bytes = rte_pktmbuf_pkt_len(p);
      if (!encapsulate(w, *sa, tunnel, p, cbc, fence)) continue;
      if (tx.packets && (tx.tunnel != slot || tx.tenant != tunnel.tenant)) flush_tx_tally(w, tx);
      tx.tunnel = slot;
      tx.tenant = tunnel.tenant;
      tx.packets++;
      tx.bytes += bytes;
      PacketMeta& om = meta(p);
      om.tenant = tunnel.underlay;
      // A policy rule's shaper class goes with it onto the underlay (meta.rule kept).
      om.flags = uint8_t(meta_local | (om.flags & meta_classed));
      om.l2_len = 0;
      if (!gcm(*sa)) continue;  // in the CBC batch: out when its job completes
      if (n_outer < 2 * burst_size)
        outer[n_outer++] = p;
      else
        drop(w, p, Drop::no_buffer);
    }
  }
  flush_tx_tally(w, tx);
  spread.flush(w, cbc);
  cbc.run(w);
  esp_complete(w, false);
  if (w.trace) [[unlikely]]
    trace_encrypted(w, outer + first_outer, uint16_t(n_outer - first_outer));
}

namespace {

// What ip_lookup decides for a packet of our own in `tenant` to `remote` in this generation.
void make_route(const Tables& t, UnderlayRoute& r, uint16_t tenant, uint32_t remote) {
  r = UnderlayRoute{t.generation, remote, tenant, true};
  if (tenant >= t.tenants.size() || tenant == t.core) return;  // the core: it may cross
  uint32_t root = tenant < t.fib_roots.size() ? t.fib_roots[tenant] : 0;
  uint32_t hop = 0;
  if (root) {
    hop = Lpm::lookup(t.plies, root, remote);
  } else if (rte_fib* fib = t.tenants[tenant].fib) {
    uint64_t found = 0;
    rte_fib_lookup_bulk(fib, &remote, &found, 1);
    hop = uint32_t(found);
  }
  const Nexthop& nh = t.nexthops[hop];
  if (nh.kind != NexthopKind::via || t.interfaces[nh.interface].tunnel) return;
  r.out = true;
  r.iface = nh.interface;
  r.mtu = t.interfaces[nh.interface].mtu;
  r.neighbour = nh.gateway ? nh.gateway : remote;
}

}  // namespace

uint16_t esp_route_outer(Worker& w, rte_mbuf** pkts, uint16_t n, Batch& routed) {
  if (w.trace) [[unlikely]]
    return n;  // the lookup traces them
  const Tables& t = *w.tables;
  UnderlayRoute* cache = w.esp_jobs->underlay;
  uint16_t left = 0;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    PacketMeta& pm = meta(m);
    const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv4_hdr*);
    uint32_t remote = rte_be_to_cpu_32(ip->dst_addr);
    UnderlayRoute& r = cache[pm.iface_out];  // the tunnel's slot, or another's in a newer generation
    if (!r.made || r.generation != t.generation || r.remote != remote || r.tenant != pm.tenant) [[unlikely]]
      make_route(t, r, pm.tenant, remote);
    if (!r.out || pm.session || routed.full()) [[unlikely]] {
      pkts[left++] = m;
      continue;
    }
    // Too big for the egress: fragmented by ip_output, or with DF dropped (and counted) by the lookup.
    if (rte_be_to_cpu_16(ip->total_length) > r.mtu) [[unlikely]] {
      if (ip->fragment_offset & rte_cpu_to_be_16(RTE_IPV4_HDR_DF_FLAG)) {
        pkts[left++] = m;
        continue;
      }
      pm.flags |= meta_fragment;
    }
    pm.iface_out = r.iface;
    pm.neighbour = r.neighbour;
    routed.pkts[routed.n++] = m;
  }
  return left;
}

Batch& esp_own_ordered(Worker& w) { return ordered_here[w.queue]; }

uint16_t esp_order(Worker& w, rte_mbuf** pkts, uint16_t n, OrderedSas& sas) {
  const Tables& t = *w.tables;
  uint16_t again = 0;
  for (uint16_t i = 0; i < n; i++) {
    rte_mbuf* m = pkts[i];
    const PacketMeta& pm = meta(m);
    SaState* sa = t.sas && uint16_t(pm.out_uid) < max_sas ? t.sas[uint16_t(pm.out_uid)] : nullptr;
    bool send = pm.out_uid >> 16 == 0;
    const auto* ip = rte_pktmbuf_mtod(m, const rte_ipv4_hdr*);
    uint16_t esp_off = uint16_t(sizeof(rte_ipv4_hdr) + (ip->next_proto_id == IPPROTO_UDP ? sizeof(rte_udp_hdr) : 0));
    // The SA went (deleted, its slot maybe reused) while the packet was on its way.
    if (!sa || !sa->order || sa->owner != w.queue ||
        (send && be32_at(rte_pktmbuf_mtod_offset(m, const uint8_t*, esp_off)) != sa->spi)) {
      drop(w, m, Drop::tunnel_no_sa);
      continue;
    }
    TxOrder& order = *sa->order;
    switch (order.place(m, pm.deadline)) {
      case TxOrder::held_back: sas.add(sa); break;
      case TxOrder::late_one:  // its turn was given up: it goes now
        sas.late_sa[sas.n_late] = sa;
        sas.late[sas.n_late++] = m;
        break;
      case TxOrder::window_full:  // a hole as old as the window: given up, taken, placed again
        order.skip_hole();
        sas.add(sa);
        pkts[again++] = m;
        break;
    }
  }
  return again;
}

namespace {

// A packet leaving the tx point: counted against its SA's lifetimes, or dropped as marked.
bool leaves(Worker& w, SaState& sa, rte_mbuf* m) {
  const PacketMeta& pm = meta(m);
  if (uint32_t reason = pm.out_uid >> 16) {
    sa_drop(w, sa, m, Drop(reason - 1));
    return false;
  }
  account(w, sa, pm.in_uid);
  return true;
}

}  // namespace

uint16_t esp_order_take(Worker& w, OrderedSas& sas, rte_mbuf** out) {
  constexpr uint16_t cap = 2 * burst_size;
  uint16_t n = 0;
  for (; sas.n_late && n < cap; sas.n_late--) {
    rte_mbuf* m = sas.late[sas.n_late - 1];
    if (leaves(w, *sas.late_sa[sas.n_late - 1], m)) out[n++] = m;
  }
  // A lost packet (a full hand-off ring) holds its SA back for at most a millisecond.
  uint64_t patience = w.tsc_hz / 1000;
  while (sas.n && n < cap) {
    SaState& sa = *sas.sas[sas.n - 1];
    rte_mbuf* taken[cap];
    uint16_t k = sa.order->take(taken, uint16_t(cap - n), w.now, patience);
    for (uint16_t i = 0; i < k; i++)
      if (leaves(w, sa, taken[i])) out[n++] = taken[i];
    if (!k) sas.n--;  // nothing more in order: the rest waits for the packets before it
  }
  return n;
}

}  // namespace medix::dp
