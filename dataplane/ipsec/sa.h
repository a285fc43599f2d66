#pragma once
// A security association as workers use it. Created and destroyed by the control side; its
// mutable part (sequence number, replay window, counters, lifetime state) is written only by
// the worker that owns the SA (packets of an SA that arrive elsewhere are handed to it, as
// VPP does), so none of it needs atomics or locks. A spread outbound SA (its tunnel's
// `spread`) is the exception, kept small: any worker reserves its sequence numbers with one
// atomic add a burst and may drop its packets (drop counters added, life and fenced swapped
// atomically); the owner keeps the rest, the tx order included (ipsec/order.h).
// Without the pre-0.53 names (CBC, SHA1, ENCRYPT...) that would clash with ours.
#define NO_COMPAT_IMB_API_053
#include <intel-ipsec-mb.h>
#include <rte_common.h>

#include <cstdint>
#include <string_view>

#include "infra/drop.h"
#include "ipsec/order.h"
#include "ipsec/replay.h"

namespace medix::dp {

enum class CipherKind : uint8_t { aes_gcm, aes_cbc };
enum class AuthKind : uint8_t { none, hmac_sha256_128, hmac_sha1_96 };
enum class SaLife : uint8_t { active = 1, soft_expired = 2, hard_expired = 3 };

struct alignas(64) SaState {
  // --- Set by the control side before the SA is published; read-only afterwards.
  uint32_t spi = 0;
  uint16_t tunnel = 0;  // interface slot of the tunnel
  // The tunnel's name as HA sync names the SA on both nodes (sa_tunnel_id): slots differ between
  // nodes, and an outbound SPI is the remote peer's choice, so two tunnels may share one.
  uint64_t tunnel_id = 0;
  uint16_t owner = 0;  // the worker (queue index) that processes it
  bool inbound = false;
  // Outbound, its tunnel's `spread` when the SA was made: any worker encrypts its packets, the
  // owner sends them in sequence order (order, below).
  bool spread = false;
  bool esn = false;
  CipherKind cipher = CipherKind::aes_gcm;
  AuthKind auth = AuthKind::none;
  uint8_t key_len = 16;  // AES key bytes
  uint8_t iv_len = 8;    // explicit IV on the wire
  uint8_t icv_len = 16;
  uint8_t block = 4;                                                            // payload + trailer align to this
  uint8_t salt[4] = {};                                                         // GCM nonce = salt || explicit IV
  uint64_t soft_bytes = 0, hard_bytes = 0, soft_packets = 0, hard_packets = 0;  // 0: none
  alignas(16) gcm_key_data gcm;                                                 // AES-GCM
  alignas(16) uint8_t enc_keys[16 * 15] = {};                                   // AES-CBC, expanded
  alignas(16) uint8_t dec_keys[16 * 15] = {};
  alignas(16) uint8_t iv_keys[16 * 15] = {};         // CBC IVs: AES of the sequence number under a key of its own
  alignas(16) uint8_t ipad[32] = {}, opad[32] = {};  // HMAC, hashed once
  // AES-CBC + HMAC: the SA's IPsec-MB job, made once, every field set but the packet's own
  // (source, destination, lengths, IV, ICV output), which each job's copy of it gets. It points
  // at the keys and pads above: an SA is not moved once made.
  alignas(64) IMB_JOB cbc_job = {};

  // --- Owned by the owner worker.
  // Outbound: the last sent; spread, the last reserved (any worker: __atomic_fetch_add).
  alignas(64) uint64_t seq = 0;
  // Outbound, HA active (docs/ha.md, "The fence"): the last sequence number this node may send,
  // published by the sync thread from the standby's acks (relaxed store, read as seq is); past
  // it the packet is dropped (ha_sa_fenced). No HA sync, or a standby: never reached.
  uint64_t fence = UINT64_MAX;
  // Outbound, with a state dir (ha/reserve.h): the last sequence number written to disk, a block
  // ahead (relaxed store by the reserving thread); past it the packet is dropped
  // (sa_seq_unreserved) until the next block is written. None: never reached.
  uint64_t reserved = UINT64_MAX;
  // Outbound, started from a mark on disk: that mark (0: none). The node's previous run may have
  // sent up to it, so a standby reports it to an active below it, as numbers it sent (ha/fence.h).
  uint64_t started_at_mark = 0;
  bool fenced = false;       // the owner told the control side it reached the fence (once, until it moves)
  TxOrder* order = nullptr;  // spread outbound: the owner's tx point (ipsec/order.h)
  uint64_t packets = 0, bytes = 0;
  uint64_t last_used_tsc = 0;
  SaLife life = SaLife::active;
  uint64_t drops[sa_drop_count] = {};  // by reason - first_sa_drop (infra/drop.h)
  uint64_t& drops_of(Drop reason) { return drops[unsigned(reason) - unsigned(first_sa_drop)]; }
  uint64_t drops_of(Drop reason) const { return drops[unsigned(reason) - unsigned(first_sa_drop)]; }
  ReplayWindow replay;  // inbound
  // Inbound: packets whose AES-CBC jobs are in flight, and the highest sequence number among
  // them, which ESN inference takes as the top while there are any (as if they were accepted).
  uint32_t checking = 0;
  uint64_t checking_top = 0;
};

// A tunnel's name as a 64-bit id (FNV-1a; never 0, which HA sync reads as "not named"): the
// same on both nodes of a pair, whatever slots their tunnels have.
inline uint64_t sa_tunnel_id(std::string_view name) {
  uint64_t h = 0xcbf29ce484222325;
  for (char c : name) h = (h ^ uint8_t(c)) * 0x100000001b3;
  return h ? h : 1;
}

}  // namespace medix::dp
