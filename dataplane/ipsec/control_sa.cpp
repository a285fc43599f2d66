#include "ipsec/control_sa.h"

#include <sys/random.h>

#include <cstring>

namespace v1 = medix::dataplane::v1;

void sa_setup(SaState& sa, const v1::SecurityAssociation& o, IMB_MGR* mgr) {
  const auto* key = reinterpret_cast<const uint8_t*>(o.cipher_key().data());
  sa.spi = o.spi();
  sa.inbound = o.inbound();
  sa.esn = o.esn();
  sa.soft_bytes = o.soft_bytes();
  sa.hard_bytes = o.hard_bytes();
  sa.soft_packets = o.soft_packets();
  sa.hard_packets = o.hard_packets();
  sa.replay.size = o.replay_window();
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
}
