// HA sync messages: encoding, HMAC-SHA-256 (OpenSSL), the receiver's checks.
#include "ha/wire.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "infra/limits.h"

namespace medix::dp::ha {

namespace {

void mac_of(const uint8_t* data, size_t len, const Key& key, uint8_t* mac) {
  unsigned out = 0;
  HMAC(EVP_sha256(), key.bytes.data(), int(key.bytes.size()), data, len, mac, &out);
}

bool valid_record(const SyncRecord& r) {
  switch (SyncKind(r.kind)) {
    case SyncKind::session:
    case SyncKind::session_end:
      return r.s.key[0].kind == flow_session && r.s.key[1].kind == flow_session &&
             r.s.key[0].protocol == r.s.key[1].protocol;
    case SyncKind::sa_outbound:
    case SyncKind::sa_inbound: return r.sa.spi != 0;
    case SyncKind::config: return true;
    case SyncKind::sa_ack: return r.sa.value != 0;
    case SyncKind::tenants: {
      const auto& t = r.tenants;
      if (t.total > max_tenants || t.count > tenant_entries_per_record || t.first + t.count > t.total ||
          (t.count == 0 && t.total != 0))
        return false;
      for (unsigned i = 0; i < t.count; i++)
        if (t.slot[i] >= max_tenants || t.name[i] == 0) return false;
      return true;
    }
    default: return false;  // sa_takeover, session_overlap and forget are never sent
  }
}

}  // namespace

std::string read_key(const std::string& file, Key& key) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return file + ": cannot read the sync key";
  key.bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  while (!key.bytes.empty() && (key.bytes.back() == '\n' || key.bytes.back() == '\r')) key.bytes.pop_back();
  if (key.bytes.size() < min_key_size) {
    key.bytes.clear();
    return file + ": the sync key must be at least " + std::to_string(min_key_size) + " bytes";
  }
  return "";
}

size_t encode(const WireHeader& header, const SyncRecord* records, const Key& key, uint8_t* out) {
  size_t len = sizeof header + size_t(header.count) * sizeof(SyncRecord);
  std::memcpy(out, &header, sizeof header);
  if (header.count) std::memcpy(out + sizeof header, records, size_t(header.count) * sizeof(SyncRecord));
  mac_of(out, len, key, out + len);
  return len + mac_size;
}

const char* reject_name(Reject r) {
  switch (r) {
    case Reject::none: return "none";
    case Reject::malformed: return "malformed";
    case Reject::bad_mac: return "bad_mac";
    case Reject::replay: return "replay";
  }
  return "?";
}

Reject decode(const uint8_t* data, size_t len, const Key& key, uint64_t& last_counter, Decoded& out) {
  if (len < sizeof(WireHeader) + mac_size || len > max_datagram) return Reject::malformed;
  WireHeader h;
  std::memcpy(&h, data, sizeof h);
  if (h.magic != wire_magic || h.version != wire_version || h.count > records_per_datagram ||
      len != sizeof h + size_t(h.count) * sizeof(SyncRecord) + mac_size)
    return Reject::malformed;
  uint8_t mac[mac_size];
  mac_of(data, len - mac_size, key, mac);
  if (CRYPTO_memcmp(mac, data + len - mac_size, mac_size) != 0) return Reject::bad_mac;
  if (h.counter <= last_counter) return Reject::replay;
  if (h.type < uint8_t(MessageType::records) || h.type > uint8_t(MessageType::tenants) ||
      (h.role != uint8_t(WireRole::active) && h.role != uint8_t(WireRole::standby)))
    return Reject::malformed;
  const auto* records = reinterpret_cast<const SyncRecord*>(data + sizeof h);
  for (unsigned i = 0; i < h.count; i++)
    if (!valid_record(records[i])) return Reject::malformed;
  last_counter = h.counter;
  out = Decoded{h, records};
  return Reject::none;
}

}  // namespace medix::dp::ha
