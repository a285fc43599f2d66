// SPDX-License-Identifier: BSD-3-Clause
// What IPsec-MB 1.3 costs a packet for AES-CBC-128 + HMAC-SHA-256-128 (docs/ipsec.md, "Speed",
// issue 19), bursts of 32 packets, by way of calling it:
//   jobs            one chained job a packet, IMB_SUBMIT_JOB (checked: medix-dp's way)
//   jobs-nocheck    the same through IMB_SUBMIT_JOB_NOCHECK (DPDK's aesni_mb PMD outside debug)
//   jobs-flushed    checked jobs, the lanes flushed at the end of each burst (medix-dp before
//                   its jobs stayed in flight)
//   bursts          IMB_SUBMIT_CIPHER_BURST and IMB_SUBMIT_HASH_BURST over the 32 (checked,
//                   synchronous: nothing stays in the lanes; 1.3 has them for CBC/CTR and HMAC,
//                   no AEAD burst)
//   bursts-nocheck  the same, unchecked
// The variants alternate within each rep; a rep in which this thread lost its CPU (CPU time
// under 97% of wall time) is left out. TSC cycles per packet, best rep. `imix`: the burst's
// packets of mixed sizes (7:4:1 of 80, 592 and 1424 bytes, IMIX's shares), where the bursts
// end half-empty in the lanes and jobs left in flight do not.
//   imb-micro [bytes|imix ...]   (ESP payload bytes, whole AES blocks; default 80 576 1424 imix)
#include <intel-ipsec-mb.h>
#include <x86intrin.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>

namespace {

constexpr int burst = 32;
constexpr int iv_at = 24;  // ESP header and IV, hashed, not encrypted
alignas(64) uint8_t bufs[burst][4096];
alignas(16) uint8_t enc_keys[16 * 15], dec_keys[16 * 15], iv[16], ipad[32], opad[32], tags[burst][32];
IMB_MGR* mgr;
unsigned failed, disturbed;
unsigned lens[burst];  // this measurement's payload bytes, by packet

double now(clockid_t clock) {
  timespec t;
  clock_gettime(clock, &t);
  return double(t.tv_sec) + double(t.tv_nsec) * 1e-9;
}

void fill(IMB_JOB* j, int i, bool encrypt, unsigned len, bool cipher, bool hash) {
  j->src = bufs[i];
  j->dst = bufs[i] + iv_at;
  j->enc_keys = enc_keys;
  j->dec_keys = dec_keys;
  j->key_len_in_bytes = 16;
  j->cipher_start_src_offset_in_bytes = iv_at;
  j->msg_len_to_cipher_in_bytes = cipher ? len : 0;
  j->iv = iv;
  j->iv_len_in_bytes = 16;
  j->cipher_mode = cipher ? IMB_CIPHER_CBC : IMB_CIPHER_NULL;
  j->cipher_direction = encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
  j->chain_order = encrypt ? IMB_ORDER_CIPHER_HASH : IMB_ORDER_HASH_CIPHER;
  j->hash_alg = hash ? IMB_AUTH_HMAC_SHA_256 : IMB_AUTH_NULL;
  j->hash_start_src_offset_in_bytes = 0;
  j->msg_len_to_hash_in_bytes = len + iv_at;
  j->u.HMAC._hashed_auth_key_xor_ipad = ipad;
  j->u.HMAC._hashed_auth_key_xor_opad = opad;
  j->auth_tag_output = tags[i];
  j->auth_tag_output_len_in_bytes = 16;
}

void check(const IMB_JOB* j) {
  if (j && j->status != IMB_STATUS_COMPLETED) failed++;
}

// A burst of chained jobs; they stay in the lanes across bursts, as in medix-dp.
void jobs(bool encrypt, bool nocheck, bool flush = false) {
  for (int i = 0; i < burst; i++) {
    fill(IMB_GET_NEXT_JOB(mgr), i, encrypt, lens[i], true, true);
    for (IMB_JOB* j = nocheck ? IMB_SUBMIT_JOB_NOCHECK(mgr) : IMB_SUBMIT_JOB(mgr); j; j = IMB_GET_COMPLETED_JOB(mgr))
      check(j);
  }
  if (flush)
    while (IMB_JOB* j = IMB_FLUSH_JOB(mgr)) check(j);
}

// The burst's cipher and hash as two synchronous bursts (inbound: hash first).
void bursts(bool encrypt, bool nocheck) {
  static IMB_JOB cipher[burst], hash[burst];
  for (int i = 0; i < burst; i++) {
    fill(&cipher[i], i, encrypt, lens[i], true, false);
    fill(&hash[i], i, encrypt, lens[i], false, true);
  }
  auto dir = encrypt ? IMB_DIR_ENCRYPT : IMB_DIR_DECRYPT;
  auto run_cipher = [&] {
    return nocheck ? IMB_SUBMIT_CIPHER_BURST_NOCHECK(mgr, cipher, burst, IMB_CIPHER_CBC, dir, IMB_KEY_128_BYTES)
                   : IMB_SUBMIT_CIPHER_BURST(mgr, cipher, burst, IMB_CIPHER_CBC, dir, IMB_KEY_128_BYTES);
  };
  auto run_hash = [&] {
    return nocheck ? IMB_SUBMIT_HASH_BURST_NOCHECK(mgr, hash, burst, IMB_AUTH_HMAC_SHA_256)
                   : IMB_SUBMIT_HASH_BURST(mgr, hash, burst, IMB_AUTH_HMAC_SHA_256);
  };
  unsigned done = encrypt ? run_cipher() + run_hash() : run_hash() + run_cipher();
  if (done != 2 * burst) failed++;
}

}  // namespace

int main(int argc, char** argv) {
  mgr = alloc_mb_mgr(0);
  if (!mgr) return 1;
  IMB_ARCH arch = IMB_ARCH_NONE;
  init_mb_mgr_auto(mgr, &arch);
  if (arch == IMB_ARCH_NONE) return 1;
  uint8_t key[16] = {1, 2, 3};
  IMB_AES_KEYEXP_128(mgr, key, enc_keys, dec_keys);
  for (auto& b : bufs)
    for (unsigned k = 0; k < sizeof b; k++) b[k] = uint8_t(k * 7);
  static const char* names[] = {"jobs", "jobs-nocheck", "bursts", "bursts-nocheck", "jobs-flushed"};
  std::printf("{\"imb_version\": \"%s\", \"burst\": %d, \"cycles_per_packet\": {", imb_get_version_str(), burst);
  const char* default_lens[] = {"80", "576", "1424", "imix"};
  int n_lens = argc > 1 ? argc - 1 : 4;
  for (int l = 0; l < n_lens; l++) {
    const char* name = argc > 1 ? argv[l + 1] : default_lens[l];
    bool imix = std::strcmp(name, "imix") == 0;
    unsigned len = unsigned(std::strtoul(name, nullptr, 10));
    if (!imix && (len == 0 || len % 16 || len + iv_at > sizeof bufs[0])) return 2;
    for (int i = 0; i < burst; i++) lens[i] = !imix ? len : i % 12 < 7 ? 80 : i % 12 < 11 ? 592 : 1424;
    for (int encrypt = 0; encrypt < 2; encrypt++) {
      double best[5] = {1e30, 1e30, 1e30, 1e30, 1e30};
      for (int rep = 0; rep < 250; rep++) {
        for (int v = 0; v < 5; v++) {
          double w0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_THREAD_CPUTIME_ID);
          uint64_t t0 = __rdtsc();
          for (int k = 0; k < 60; k++)
            v == 4 ? jobs(encrypt, false, true) : v < 2 ? jobs(encrypt, v == 1) : bursts(encrypt, v == 3);
          double c = double(__rdtsc() - t0) / (60.0 * burst);
          if ((now(CLOCK_THREAD_CPUTIME_ID) - c0) / (now(CLOCK_MONOTONIC) - w0) < 0.97) {
            disturbed++;
            continue;
          }
          if (c < best[v]) best[v] = c;
        }
      }
      while (IMB_JOB* j = IMB_FLUSH_JOB(mgr)) check(j);
      std::printf("%s\"%s %s\": {", l || encrypt ? ", " : "", encrypt ? "enc" : "dec", name);
      for (int v = 0; v < 5; v++)
        std::printf("%s\"%s\": %.0f", v ? ", " : "", names[v], best[v] < 1e30 ? best[v] : -1.0);
      std::printf("}");
      std::fflush(stdout);
    }
  }
  std::printf("}, \"failed\": %u, \"disturbed_reps\": %u}\n", failed, disturbed);
  return failed ? 3 : 0;
}
