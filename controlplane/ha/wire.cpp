// The IKE sync link's datagrams: AES-256-GCM (OpenSSL), keys per direction, replay check.
#include "wire.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>

namespace medix::cp::ha {

namespace {

using Ctx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

void nonce_of(uint64_t counter, uint8_t nonce[12]) {
  std::memset(nonce, 0, 12);
  std::memcpy(nonce + 4, &counter, 8);
}

}  // namespace

Key direction_key(const std::vector<uint8_t>& secret, const std::string& from, const std::string& to) {
  std::string label = "medix-cp ha link " + from + ">" + to;
  Key key{};
  unsigned len = 0;
  HMAC(EVP_sha256(), secret.data(), int(secret.size()), reinterpret_cast<const uint8_t*>(label.data()), label.size(),
       key.data(), &len);
  return key;
}

std::string read_secret(const std::string& file, std::vector<uint8_t>& secret) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return file + ": cannot read the sync key";
  secret.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.size() < 32) {
    secret.clear();
    return file + ": the sync key must be at least 32 bytes";
  }
  return "";
}

void seal(const Key& key, uint64_t counter, const uint8_t* payload, size_t len, std::vector<uint8_t>& out) {
  Header h{link_magic, link_version, {0, 0, 0}, counter};
  out.resize(sizeof h + len + tag_size);
  std::memcpy(out.data(), &h, sizeof h);
  uint8_t nonce[12];
  nonce_of(counter, nonce);
  Ctx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int n = 0;
  EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce);
  EVP_EncryptUpdate(ctx.get(), nullptr, &n, out.data(), sizeof h);  // the header: authenticated
  EVP_EncryptUpdate(ctx.get(), out.data() + sizeof h, &n, payload, int(len));
  EVP_EncryptFinal_ex(ctx.get(), out.data() + sizeof h + n, &n);
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, tag_size, out.data() + sizeof h + len);
}

const char* reject_name(Reject r) {
  switch (r) {
    case Reject::none: return "none";
    case Reject::malformed: return "malformed";
    case Reject::bad_tag: return "bad_tag";
    case Reject::replay: return "replay";
  }
  return "?";
}

Reject open(const Key& key, const uint8_t* data, size_t len, uint64_t& last_counter, std::vector<uint8_t>& payload) {
  Header h;
  if (len < sizeof h + tag_size || len > sizeof h + max_payload + tag_size) return Reject::malformed;
  std::memcpy(&h, data, sizeof h);
  if (h.magic != link_magic || h.version != link_version) return Reject::malformed;
  size_t n = len - sizeof h - tag_size;
  payload.resize(n);
  uint8_t nonce[12];
  nonce_of(h.counter, nonce);
  Ctx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int out = 0;
  EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key.data(), nonce);
  EVP_DecryptUpdate(ctx.get(), nullptr, &out, data, sizeof h);
  EVP_DecryptUpdate(ctx.get(), payload.data(), &out, data + sizeof h, int(n));
  EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, tag_size, const_cast<uint8_t*>(data + len - tag_size));
  if (EVP_DecryptFinal_ex(ctx.get(), payload.data() + out, &out) != 1) {
    payload.clear();
    return Reject::bad_tag;
  }
  // After the tag: a forged counter cannot push the real peer out.
  if (h.counter <= last_counter) {
    payload.clear();
    return Reject::replay;
  }
  last_counter = h.counter;
  return Reject::none;
}

namespace {
void put(std::vector<uint8_t>& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--) out.push_back(uint8_t(v >> (8 * i)));
}
uint64_t get(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v = v << 8 | p[i];
  return v;
}
constexpr size_t mids_entry = 24;
constexpr size_t child_entry = 20;
}  // namespace

std::vector<uint8_t> encode_heartbeat(int role) {
  return {link_own, uint8_t(Own::heartbeat), uint8_t(role == 0 || role == 1 ? role : 2)};
}

std::vector<uint8_t> encode_ack(uint64_t counter) {
  std::vector<uint8_t> out{link_own, uint8_t(Own::ack)};
  put(out, counter, 8);
  return out;
}

bool decode_ack(const std::vector<uint8_t>& payload, uint64_t& counter) {
  if (payload.size() != 10 || payload[0] != link_own || payload[1] != uint8_t(Own::ack)) return false;
  counter = get(payload.data() + 2, 8);
  return true;
}

std::vector<uint8_t> encode_mids(const std::vector<IkeMids>& mids) {
  std::vector<uint8_t> out{link_own, uint8_t(Own::mids)};
  for (size_t i = 0; i < mids.size() && out.size() + mids_entry <= max_payload; i++) {
    put(out, mids[i].spi_i, 8);
    put(out, mids[i].spi_r, 8);
    put(out, mids[i].initiating, 4);
    put(out, mids[i].responding, 4);
  }
  return out;
}

bool decode_mids(const std::vector<uint8_t>& payload, std::vector<IkeMids>& mids) {
  mids.clear();
  if (payload.size() < 2 || payload[0] != link_own || payload[1] != uint8_t(Own::mids) ||
      (payload.size() - 2) % mids_entry != 0)
    return false;
  for (size_t at = 2; at < payload.size(); at += mids_entry) {
    const uint8_t* p = payload.data() + at;
    mids.push_back({get(p, 8), get(p + 8, 8), uint32_t(get(p + 16, 4)), uint32_t(get(p + 20, 4))});
  }
  return true;
}

std::vector<uint8_t> encode_children(const std::vector<IkeChild>& children) {
  std::vector<uint8_t> out{link_own, uint8_t(Own::children)};
  for (size_t i = 0; i < children.size() && out.size() + child_entry <= max_payload; i++) {
    put(out, children[i].spi_i, 8);
    put(out, children[i].spi_r, 8);
    put(out, children[i].spi, 4);
  }
  return out;
}

bool decode_children(const std::vector<uint8_t>& payload, std::vector<IkeChild>& children) {
  children.clear();
  if (payload.size() < 2 || payload[0] != link_own || payload[1] != uint8_t(Own::children) ||
      (payload.size() - 2) % child_entry != 0)
    return false;
  for (size_t at = 2; at < payload.size(); at += child_entry) {
    const uint8_t* p = payload.data() + at;
    children.push_back({get(p, 8), get(p + 8, 8), uint32_t(get(p + 16, 4))});
  }
  return true;
}

std::string mids_record_name(const IkeMids& m) {
  char name[40];
  snprintf(name, sizeof name, "%016" PRIx64 ".%016" PRIx64, m.spi_i, m.spi_r);
  return name;
}

std::vector<uint32_t> record_children(std::vector<uint32_t> children) {
  if (children.size() > max_record_children)
    children.erase(children.begin(), children.end() - long(max_record_children));
  return children;
}

std::string mids_record_value(const IkeMids& m, const std::vector<uint32_t>& children) {
  std::string value = std::to_string(m.initiating) + " " + std::to_string(m.responding);
  for (uint32_t child : record_children(children)) {
    char spi[10];
    snprintf(spi, sizeof spi, " %08" PRIx32, child);
    value += spi;
  }
  return value;
}

bool parse_mids_record(const std::string& name, const std::string& value, IkeMids& m, std::vector<uint32_t>* children) {
  if (name.size() != 33 || name[16] != '.' || name.find_first_not_of("0123456789abcdef.") != std::string::npos ||
      name.find('.', 17) != std::string::npos)
    return false;
  unsigned long long i = 0, r = 0;
  int ids_end = 0;
  if (sscanf(value.c_str(), "%llu %llu%n", &i, &r, &ids_end) != 2 || i > UINT32_MAX || r > UINT32_MAX) return false;
  std::vector<uint32_t> spis;
  const std::string rest = value.substr(size_t(ids_end));  // " SPI" each, 9 characters
  if (rest.size() % 9 != 0 || rest.size() / 9 > max_record_children) return false;
  for (size_t at = 0; at < rest.size(); at += 9) {
    std::string spi = rest.substr(at + 1, 8);
    if (rest[at] != ' ' || spi.find_first_not_of("0123456789abcdef") != std::string::npos) return false;
    spis.push_back(uint32_t(std::stoul(spi, nullptr, 16)));
  }
  IkeMids parsed{0, 0, uint32_t(i), uint32_t(r)};
  if (value != mids_record_value(parsed, spis)) return false;  // only as written: no sign, space or rest
  m.spi_i = std::stoull(name.substr(0, 16), nullptr, 16);
  m.spi_r = std::stoull(name.substr(17), nullptr, 16);
  m.initiating = uint32_t(i);
  m.responding = uint32_t(r);
  if (children) *children = std::move(spis);
  return true;
}

}  // namespace medix::cp::ha
