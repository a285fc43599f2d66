#pragma once
// The IX's zones as the intent wants them (intent.proto's Dns): validation, and every record of
// every zone Knot DNS must serve (SOA and NS, the intent's records, reverse zones with their PTRs),
// in Knot's text form, so that they compare with what Knot's zone-read lists.

#include <map>
#include <set>
#include <string>
#include <tuple>

#include "medix/controlplane/v1/intent.pb.h"

namespace medix::cp::dns {

namespace c1 = medix::controlplane::v1;

// One resource record as Knot's control protocol carries it: owner absolute ("archive.ix.example."),
// type ("A"), data in presentation form ("100.100.1.10"). The SOA's data is kept without its
// serial: Knot counts the serial, medix-cp never compares it.
struct Record {
  std::string owner;
  uint32_t ttl = 0;
  std::string type;
  std::string data;
  auto operator<=>(const Record&) const = default;
};

using Zone = std::set<Record>;
using Zones = std::map<std::string, Zone>;  // by absolute name ("ix.example.")

// The dns part of the intent checked with the rest of it (names, zones within the IX's domains,
// addresses a tenant or mapping owns, (tenant, tenant address) pairs a static mapping holds,
// CNAMEs: no loop, no other data beside them). "" or "dns.zones[0].records[2].address: reason".
std::string validate(const c1::Intent& intent);

// Every zone of a valid intent with all its records. Reverse zones: in-addr.arpa, by whole octets
// of each static mapping's core prefix (a /20 gets its /16's zone), one zone for prefixes nested.
Zones zones_of(const c1::Intent& intent);

// A per-tenant answer: queries from `net` (a core prefix of the host's own tenant: queries arrive
// translated, each tenant's from its own core prefixes) get `address`, the host's tenant address,
// instead of its core address. One for each host named by (tenant, tenant address) and each static
// mapping of its tenant.
struct View {
  std::string owner;
  std::string net;
  std::string address;
  auto operator<=>(const View&) const = default;
};
std::set<View> views_of(const c1::Intent& intent);
// "100.64.1.7/24" as "100.64.1.0/24", as views name their nets; "" if not a prefix.
std::string network_of(const std::string& prefix);
// The views as the file of Knot's geoip module in subnet mode reads them (docs/dns.md).
std::string geoip_text(const std::set<View>& views);

// The core address a host (tenant, address in the tenant) has, from the tenant's static mapping;
// "" when no mapping of that tenant holds it.
std::string core_address(const c1::Intent& intent, const std::string& tenant, const std::string& address);

// "Archive.IX.example" as "archive.ix.example." (lower case, one final dot); "" when not a host
// name (labels of letters, digits and '-', 1 to 63 characters, 253 in all).
std::string absolute_name(const std::string& name);

// The SOA data Knot shows, with its serial taken out ("ns. host. 3600 900 604800 300").
std::string soa_without_serial(const std::string& data);

}  // namespace medix::cp::dns
