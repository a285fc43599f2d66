#pragma once
// A digest of the intent that the two nodes of an HA pair compare (docs/ha.md, "Config
// mismatch"): the sum, lane by lane modulo 2^64, of a hash of each object, so that it follows
// each change in O(the change) and does not depend on the order objects came in (a node
// started from a file and its peer built up by API calls agree). What is the node's own is
// left out: a port's device (each node's NIC), a VRRP instance's priority (the pair's two
// differ by design), and SAs (IKE installs and rekeys them on each node at its own moments).
// Not a defence against a forger (the sync link is authenticated): a check for operators.
#include <cstdint>
#include <string>

#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::dp {

struct ConfigDigest {
  uint64_t lanes[2] = {0, 0};
  uint64_t objects = 0;

  void add(const medix::dataplane::v1::Object& o) { change(o, true); }
  void remove(const medix::dataplane::v1::Object& o) { change(o, false); }
  std::string hex() const;  // 32 hex digits
  bool operator==(const ConfigDigest&) const = default;

 private:
  void change(const medix::dataplane::v1::Object& o, bool add);
};

}  // namespace medix::dp
