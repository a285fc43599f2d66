#pragma once
// Knot DNS's control socket, in knotc's protocol spoken by medix-cp itself: one connection carries
// a whole zone transaction (zone-begin, zone-unset/zone-set for each record, zone-commit, or
// zone-abort at the first error), with no process per command as knotc would need (knotc fed a
// script goes on past a failed command and commits), and answers come as fields, not text.

#include <optional>
#include <string>
#include <vector>

#include "zones.h"

namespace medix::cp::dns {

class Knot {
 public:
  explicit Knot(std::string socket) : socket_(std::move(socket)) {}

  // The zone's records as Knot serves them (SOA without its serial, as zones_of makes them; the
  // records of Knot's signing, DNSKEY, RRSIG, NSEC..., left out).
  // Nothing when Knot has no such zone; "" in `error`, or why (Knot down: "connection refused").
  std::optional<Zone> read(const std::string& zone, std::string& error);

  // One transaction: `remove` unset, `add` set, committed (Knot counts the SOA serial up); on any
  // error aborted, nothing changed; "" or the error. An SOA in `add` is set with the clock's time
  // as its serial; Knot counts on from there.
  std::string update(const std::string& zone, const Zone& remove, const Zone& add);

  // knotd rereads its configuration and modules (the geoip module's views), online: zones keep
  // their content and queries meanwhile get the old or the new answer. "" or the error.
  std::string reload();

 private:
  struct Session;
  std::string socket_;
};

}  // namespace medix::cp::dns
