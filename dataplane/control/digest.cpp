#include "control/digest.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstdio>
#include <optional>

#include "common/address.h"

namespace medix::dp {

namespace v1 = medix::dataplane::v1;

namespace {

// FNV-1a over the bytes, then splitmix64's finaliser so that nearby inputs spread over the
// whole word (the lanes are summed, not xored: an object twice is not nothing).
uint64_t hash(const std::string& bytes, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return h;
}

// Deterministic: the same object gives the same bytes on both nodes (map fields sorted). Into
// a buffer kept between calls: a million routes at start-up allocate nothing each.
const std::string& serialize(const v1::Object& o) {
  thread_local std::string out;
  out.clear();
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    o.SerializeToCodedStream(&coded);
  }  // the streams give back what they did not use
  return out;
}

}  // namespace

void ConfigDigest::change(const v1::Object& o, bool add) {
  if (o.kind_case() == v1::Object::kSa) return;
  std::optional<v1::Object> own;  // a copy only for the kinds that have fields of the node's own
  if (o.kind_case() == v1::Object::kPort) {
    own.emplace(o);
    own->mutable_port()->clear_device();
    own->mutable_port()->clear_mac();
  } else if (o.kind_case() == v1::Object::kInterface) {
    // Each node has its own address on a segment (VRRP's virtual one is shared) and may have its
    // own MAC: the subnets must agree, the hosts not.
    own.emplace(o);
    auto& f = *own->mutable_interface();
    f.clear_mac();
    for (auto& a : *f.mutable_addresses())
      if (auto p = medix::common::parse_prefix(a)) a = medix::common::format_network(*p);
  } else if (o.kind_case() == v1::Object::kVrrpInstance) {
    // Priority and preemption are the node's (a planned switchover raises one node's).
    own.emplace(o);
    own->mutable_vrrp_instance()->clear_priority();
    own->mutable_vrrp_instance()->clear_preempt();
  }
  const std::string& bytes = serialize(own ? *own : o);
  for (unsigned lane = 0; lane < 2; lane++) {
    uint64_t h = hash(bytes, lane ? 0x9e3779b97f4a7c15ULL : 0);
    lanes[lane] = add ? lanes[lane] + h : lanes[lane] - h;
  }
  objects = add ? objects + 1 : objects - 1;
}

std::string ConfigDigest::hex() const {
  char text[33];
  snprintf(text, sizeof text, "%016llx%016llx", (unsigned long long)lanes[0], (unsigned long long)lanes[1]);
  return text;
}

}  // namespace medix::dp
