#include "ipsec/commit.h"

#include <rte_hash.h>
#include <rte_malloc.h>
#include <sys/random.h>

#include <cstring>

#include "control/build.h"
#include "ipsec/sa.h"

namespace medix::dp::ipsec {

namespace {

// An SA object as workers use it: key schedules, HMAC pads and the CBC IV key.
void sa_setup(SaState& sa, const v1::SecurityAssociation& o, IMB_MGR* mgr) {
  const auto* key = reinterpret_cast<const uint8_t*>(o.cipher_key().data());
  sa.spi = o.spi();
  sa.inbound = o.inbound();
  sa.esn = o.esn();
  sa.soft_bytes = o.soft_bytes();
  sa.hard_bytes = o.hard_bytes();
  sa.soft_packets = o.soft_packets();
  sa.hard_packets = o.hard_packets();
  sa.replay.size = o.has_replay_window() ? o.replay_window() : default_replay_window;
  sa.life = SaLife::active;
  if (o.cipher() == v1::AES_GCM_128 || o.cipher() == v1::AES_GCM_256) {
    sa.cipher = CipherKind::aes_gcm;
    sa.auth = AuthKind::none;
    sa.key_len = uint8_t(o.cipher_key().size() - 4);
    memcpy(sa.salt, key + sa.key_len, 4);
    if (sa.key_len == 16)
      IMB_AES128_GCM_PRE(mgr, key, &sa.gcm);
    else
      IMB_AES256_GCM_PRE(mgr, key, &sa.gcm);
    sa.iv_len = 8;
    sa.icv_len = 16;
    sa.block = 4;
    return;
  }
  sa.cipher = CipherKind::aes_cbc;
  sa.key_len = uint8_t(o.cipher_key().size());
  if (sa.key_len == 16)
    IMB_AES_KEYEXP_128(mgr, key, sa.enc_keys, sa.dec_keys);
  else
    IMB_AES_KEYEXP_256(mgr, key, sa.enc_keys, sa.dec_keys);
  sa.iv_len = 16;
  sa.block = 16;
  sa.auth = o.integrity() == v1::HMAC_SHA256_128 ? AuthKind::hmac_sha256_128 : AuthKind::hmac_sha1_96;
  sa.icv_len = sa.auth == AuthKind::hmac_sha256_128 ? 16 : 12;
  // HMAC (RFC 2104): the inner and outer keyed blocks are hashed once here.
  alignas(16) uint8_t ipad[64], opad[64];
  memset(ipad, 0x36, sizeof ipad);
  memset(opad, 0x5c, sizeof opad);
  const auto* auth = reinterpret_cast<const uint8_t*>(o.integrity_key().data());
  for (size_t i = 0; i < o.integrity_key().size() && i < 64; i++) {
    ipad[i] ^= auth[i];
    opad[i] ^= auth[i];
  }
  if (sa.auth == AuthKind::hmac_sha256_128) {
    IMB_SHA256_ONE_BLOCK(mgr, ipad, sa.ipad);
    IMB_SHA256_ONE_BLOCK(mgr, opad, sa.opad);
  } else {
    IMB_SHA1_ONE_BLOCK(mgr, ipad, sa.ipad);
    IMB_SHA1_ONE_BLOCK(mgr, opad, sa.opad);
  }
  alignas(16) uint8_t iv_key[16], unused[16 * 15];
  if (getrandom(iv_key, sizeof iv_key, 0) != sizeof iv_key)
    for (auto& b : iv_key) b = uint8_t(rand());  // getrandom does not fail for 16 bytes once booted
  IMB_AES_KEYEXP_128(mgr, iv_key, sa.iv_keys, unused);
  // Outbound encrypts then hashes; inbound hashes the ciphertext, then decrypts it in place.
  IMB_JOB& job = sa.cbc_job;
  job.chain_order = sa.inbound ? IMB_ORDER_HASH_CIPHER : IMB_ORDER_CIPHER_HASH;
  job.cipher_direction = sa.inbound ? IMB_DIR_DECRYPT : IMB_DIR_ENCRYPT;
  job.cipher_mode = IMB_CIPHER_CBC;
  job.enc_keys = sa.enc_keys;
  job.dec_keys = sa.dec_keys;
  job.key_len_in_bytes = sa.key_len;
  job.cipher_start_src_offset_in_bytes = 8 + 16;  // after the SPI, sequence number and IV
  job.iv_len_in_bytes = 16;
  job.hash_alg = sa.auth == AuthKind::hmac_sha256_128 ? IMB_AUTH_HMAC_SHA_256 : IMB_AUTH_HMAC_SHA_1;
  job.hash_start_src_offset_in_bytes = 0;
  job.u.HMAC._hashed_auth_key_xor_ipad = sa.ipad;
  job.u.HMAC._hashed_auth_key_xor_opad = sa.opad;
  job.auth_tag_output_len_in_bytes = sa.icv_len;
}

// An SA and, spread outbound, its tx point with the packets still waiting there.
void free_sa(SaState* sa) {
  if (sa && sa->order) {
    sa->order->release();
    rte_free(sa->order);
  }
  rte_free(sa);
}

}  // namespace

// Tunnels: interfaces without a port, in the same name space and slots.
std::optional<Error> build_tunnels(Committer::Build& b) {
  Kept& kept = b.ipsec_kept();
  for (const auto& [k, change] : b.diff.of(v1::Object::kTunnel)) {
    const std::string& name = k.name;
    if (!change.after) {
      uint16_t slot = b.interface_slots().at(name);
      b.next->interfaces[slot] = InterfaceEntry{};
      b.dead_interfaces.push_back(slot);
      kept.outbound.erase(name);
      continue;
    }
    uint16_t keep_sa = change.before ? b.next->interfaces[b.interface_slots().at(name)].outbound_sa : 0;
    InterfaceEntry* entry = b.claim_interface(name, change.before.has_value());
    if (!entry)
      return b.fail(Code::resource_exhausted, "tunnel " + name + ": no free interface slot",
                    v1::Object::KindCase::kTunnel, name);
    const v1::Tunnel& tu = change.after->tunnel();
    InterfaceEntry& e = *entry;
    e.tunnel = true;
    e.tenant = b.tenant_of(tu.tenant());
    e.underlay = b.tenant_of(tu.underlay_tenant());
    e.local = *parse_ipv4(tu.local_address());
    e.remote = *parse_ipv4(tu.remote_address());
    e.remote_port = uint16_t(tu.encap_udp_port());
    e.mtu = uint16_t(tu.mtu() ? tu.mtu() : 1400);
    e.ttl = uint8_t(tu.ttl() ? tu.ttl() : 64);
    e.df_mode = uint8_t(tu.df());
    e.outer_dscp = tu.dscp() == v1::DSCP_SET ? int16_t(tu.outer_dscp()) : int16_t(-1);
    e.decap_copy_dscp = tu.decap_copy_dscp();
    e.mss_clamp = uint16_t(tu.tcp_mss_clamp());
    e.outbound_sa = keep_sa;
    for (const auto& sel : tu.local_selectors()) {
      auto p = *parse_prefix(sel);
      e.local_selectors[e.n_local_selectors++] = Subnet{p.address, p.length};
    }
    for (const auto& sel : tu.remote_selectors()) {
      auto p = *parse_prefix(sel);
      e.remote_selectors[e.n_remote_selectors++] = Subnet{p.address, p.length};
    }
  }
  return std::nullopt;
}

// SAs: new ones are complete before anything can find them; the old go after the grace
// period.
std::optional<Error> build_sas(Committer::Build& b) {
  Kept& kept = b.ipsec_kept();
  std::set<std::string> sa_tunnels;
  for (const auto& [k, change] : b.diff.of(v1::Object::kSa)) {
    const SaKey& key = k.sa;
    sa_tunnels.insert(key.tunnel);
    if (!change.after) {
      uint16_t slot = kept.sa_slot.at(key);
      if (key.inbound) {
        int32_t pos = rte_hash_del_key(kept.sa_index, &key.spi);
        if (pos >= 0) b.sa_release.push_back(pos);
      } else {
        auto& list = kept.outbound[key.tunnel];
        list.erase(std::remove(list.begin(), list.end(), slot), list.end());
      }
      b.dead_sas.push_back(slot);
      continue;
    }
    const v1::SecurityAssociation& o = change.after->sa();
    auto* sa =
        static_cast<SaState*>(rte_zmalloc_socket("sa", sizeof(SaState), RTE_CACHE_LINE_SIZE, int(b.c.params().socket)));
    bool ok = sa && !kept.free_sas.empty();
    uint16_t slot = 0;
    if (ok) {
      new (sa) SaState();
      sa_setup(*sa, o, kept.mgr);
      sa->tunnel = b.interface_slot_of(key.tunnel);
      sa->tunnel_id = sa_tunnel_id(key.tunnel);
      sa->owner = uint16_t(key.spi % b.c.params().queues);
      // Numbers on disk (ha/reserve.h): it starts past what this node (or a peer it acked) may
      // have sent, and sends nothing until its first block is written.
      if (!key.inbound && b.c.params().sa_start)
        sa->seq = sa->reserved = sa->started_at_mark = b.c.params().sa_start(sa->tunnel_id, key.spi);
      // The pair's other node negotiated it and may have sent on it (docs/ha.md, "An SA the peer
      // negotiated"): it starts past that, as an SA held at a takeover, whatever the moment.
      if (!key.inbound && o.origin() == v1::SA_ORIGIN_PEER && b.c.params().sa_peer_start) {
        if (auto start = b.c.params().sa_peer_start(sa->tunnel_id, key.spi))
          sa->seq = std::max(sa->seq, *start);
        else
          sa->fence = sa->seq;
      }
      // The tunnel goes in this transaction or came before it (check_sa).
      auto tunnel = b.intent.tunnels.find(key.tunnel);
      sa->spread = !key.inbound && tunnel != b.intent.tunnels.end() && tunnel->second.spread();
      if (sa->spread) {
        sa->order = static_cast<TxOrder*>(
            rte_zmalloc_socket("sa_order", sizeof(TxOrder), RTE_CACHE_LINE_SIZE, int(b.c.params().socket)));
        if (sa->order) {
          new (sa->order) TxOrder();
          sa->order->next = sa->seq + 1;  // a start on disk: the first number it may send
        }
        ok = sa->order != nullptr;
      }
    }
    if (ok) {
      slot = kept.free_sas.back();
      kept.free_sas.pop_back();
      kept.sas[slot] = sa;
      if (key.inbound)
        ok = rte_hash_add_key_data(kept.sa_index, &key.spi, reinterpret_cast<void*>(uintptr_t(slot))) == 0;
    }
    if (!ok) {
      for (auto [k, s] : b.new_sas) {
        if (k.inbound) rte_hash_del_key(kept.sa_index, &k.spi);
        free_sa(kept.sas[s]);
        kept.sas[s] = nullptr;
        kept.free_sas.push_back(s);
      }
      if (slot) {
        kept.sas[slot] = nullptr;
        kept.free_sas.push_back(slot);
      }
      free_sa(sa);
      b.revert_routes(b.ops.size());
      b.neighbours().release(b.release);
      return b.fail(Code::resource_exhausted, "SA " + std::to_string(key.spi) + ": cannot allocate it: " + more_memory,
                    v1::Object::KindCase::kSa, std::to_string(key.spi));
    }
    b.new_sas.push_back({key, slot});
  }
  // New outbound SAs join their tunnel in the order they were created: the newest is used.
  std::vector<std::tuple<uint64_t, std::string, uint16_t>> outbound_order;
  for (auto [key, slot] : b.new_sas)
    if (!key.inbound) outbound_order.push_back({b.intent.sa_serial.at(key), key.tunnel, slot});
  std::sort(outbound_order.begin(), outbound_order.end());
  for (const auto& [serial, tunnel, slot] : outbound_order) kept.outbound[tunnel].push_back(slot);
  for (const auto& name : sa_tunnels) {
    auto it = b.interface_of.find(name);
    uint16_t slot =
        it != b.interface_of.end() ? it->second : (b.interface_slots().count(name) ? b.interface_slots().at(name) : 0);
    if (!slot && !b.interface_slots().count(name)) continue;  // the tunnel goes in this transaction
    const auto& list = kept.outbound[name];
    b.next->interfaces[slot].outbound_sa = list.empty() ? 0 : list.back();
  }
  return std::nullopt;
}

// A tunnel's inner MTU leaves room for ESP's worst case in its underlay: packets that would
// not fit get ICMP "fragmentation needed" (DF) or are fragmented before encryption, instead
// of outer packets dropped for being too large. Redone whenever interfaces or ports change.
std::optional<Error> build_tunnel_mtus(Committer::Build& b) {
  if (!b.diff.of(v1::Object::kTunnel).empty() || !b.diff.of(v1::Object::kInterface).empty() ||
      !b.diff.of(v1::Object::kPort).empty()) {
    for (auto& e : b.next->interfaces) {
      if (!e.uid || !e.tunnel) continue;
      auto it = b.intent.tunnels.find(e.name);
      if (it == b.intent.tunnels.end()) continue;
      uint32_t mtu = it->second.mtu() ? it->second.mtu() : 1400;
      // outer IPv4 20, UDP 8 (NAT-T), ESP 8, IV 16, padding and trailer 17, ICV 16
      uint32_t overhead = 20 + (e.remote_port ? 8 : 0) + 8 + 16 + 17 + 16;
      for (const auto& u : b.next->interfaces)
        if (u.uid && !u.tunnel && u.tenant == e.underlay && u.mtu > overhead + 576)
          mtu = std::min<uint32_t>(mtu, u.mtu - overhead);
      e.mtu = uint16_t(mtu);
    }
  }
  return std::nullopt;
}

void reclaim_sas(Committer::Build& b) {
  Kept& kept = b.ipsec_kept();
  for (int32_t pos : b.sa_release) rte_hash_free_key_with_position(kept.sa_index, pos);
  for (uint16_t slot : b.dead_sas) {
    free_sa(kept.sas[slot]);
    kept.sas[slot] = nullptr;
    kept.free_sas.push_back(slot);
  }
  for (const auto& [key, change] : b.diff.of(v1::Object::kSa))
    if (!change.after) kept.sa_slot.erase(key.sa);
  for (auto [key, slot] : b.new_sas) kept.sa_slot[key] = slot;
}

}  // namespace medix::dp::ipsec
