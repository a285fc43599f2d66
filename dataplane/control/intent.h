#pragma once
// The intent: every object medix-dp has been told about, indexed for validation, and the
// validation of a transaction's operations against it. No DPDK here, so `--check` and unit
// tests use the very same rules as the API.
//
// A transaction's operations are applied to the intent one by one, each validated against the
// state the previous ones left (create a tenant, then an interface in it); every change is
// recorded in an undo log, so a failed transaction is rolled back whole.
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "common/address.h"
#include "common/keys.h"
#include "control/digest.h"
#include "infra/limits.h"
#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::dp {
namespace v1 = medix::dataplane::v1;

enum class Code {
  ok,
  invalid_argument,
  not_found,
  already_exists,
  failed_precondition,
  resource_exhausted,
  unimplemented
};

struct Error {
  Error() = default;
  Error(Code c, std::string m, int k = 0, std::string n = {})
      : code(c), message(std::move(m)), kind(k), name(std::move(n)) {}
  Code code = Code::ok;
  std::string message;  // "operations[3].interface.vlan: 5000 is out of range 0..4094"
  // For errors found when committing (no path yet): the object they are about, by kind and
  // name (a route's: its tenant; an SA's: its SPI), so the caller can name the operation.
  int kind = 0;
  std::string name;
};

struct Operation {
  v1::Operation::Op op;
  v1::Object object;
  std::string path;  // where the object is in the request: "operations[3].interface", "interfaces[2]"
};

// The most operations one API request may carry (the startup file has no such limit).
inline constexpr size_t max_operations = 1'000'000;

// Keys and address parsing shared with medix-cp and medixctl (proto/common).
using RouteKey = medix::common::RouteKey;
using NeighbourKey = medix::common::NeighbourKey;
using SaKey = medix::common::SaKey;
using MappingKey = medix::common::MappingKey;
using medix::common::format_ipv4;
using medix::common::parse_ipv4;
using medix::common::parse_mac;
using medix::common::parse_prefix;
using medix::common::Prefix;

// An object's identity: its kind and key fields (only its kind's are set).
struct ObjectKey {
  int kind;  // v1::Object::KindCase
  std::string name;
  RouteKey route{};
  NeighbourKey neighbour{};
  SaKey sa{};
  MappingKey mapping{};
  auto operator<=>(const ObjectKey&) const = default;
};

// One object's change over a transaction: what it was before, what it is now.
struct Change {
  std::optional<v1::Object> before, after;
};

// Every changed object of a transaction, by kind, in key order (for deterministic plans): the
// committer's steps read their kinds' changes here. Routes are only keys: there may be
// millions, and the committer reads them from the intent.
struct Diff {
  using Changes = std::map<ObjectKey, Change>;
  std::map<int, Changes> objects;  // kind -> its changes
  std::set<RouteKey> routes;

  // The changes of one kind (empty if none).
  const Changes& of(v1::Object::KindCase kind) const;
  size_t size() const;
  // Drops the changes that left an object as it was (created and deleted, or changed back).
  void prune();
};

class Intent {
 public:
  // Optional: tells whether EAL has a device of that name (not set for `--check`).
  std::function<bool(const std::string&)> device_exists;

  // Applies the operations; on error the intent is as before. On success returns the changes
  // (identical re-sends and changes undone within the batch do not appear).
  std::optional<Error> apply(const std::vector<Operation>& ops, Diff& diff);
  // Undoes the last successful apply (when the dataplane could not follow it), or forgets
  // how to (once the dataplane has it).
  void rollback_last();
  void forget_last() { std::vector<Undo>().swap(last_); }

  // The digest the HA pair compares (control/digest.h), kept while `track_digest` is set:
  // set it before the first transaction (medix-dp does with HA sync; others pay nothing).
  bool track_digest = false;
  const ConfigDigest& digest() const { return digest_; }

  using Key = ObjectKey;

  // The objects, entered and left only through their kinds' put and erase (control/kinds.h).
  std::map<std::string, v1::Port> ports;
  std::map<std::string, v1::Tenant> tenants;
  std::map<std::string, v1::Interface> interfaces;
  std::map<RouteKey, v1::Route> routes;
  std::map<NeighbourKey, v1::Neighbour> neighbours;
  std::map<std::string, v1::Tunnel> tunnels;
  std::map<SaKey, v1::SecurityAssociation> sas;
  std::map<SaKey, uint64_t> sa_serial;  // creation order: a tunnel's newest outbound SA is used
  std::map<MappingKey, v1::StaticMapping> static_mappings;
  std::map<std::string, v1::NaptPool> napt_pools;
  std::map<std::string, v1::PolicyRule> policy_rules;
  // Kinds keyed by a name alone keep their objects here, by kind (named[v1::Object::kPolicer]),
  // so that a new kind needs no member of its own.
  std::map<int, std::map<std::string, v1::Object>> named;
  v1::Settings settings;

  // Indexes, kept by the kinds' put and erase.
  std::map<std::tuple<std::string, uint32_t, uint32_t>, std::string> attachments;  // (port, vlan, inner) -> interface
  std::map<std::pair<std::string, uint32_t>, std::string> tenant_addresses;        // (tenant, address) -> interface
  // Objects referring to each tenant, interface (or tunnel), port by name.
  std::unordered_map<std::string, size_t> tenant_users, interface_users, port_users;
  std::map<std::string, size_t> tenant_routes;  // routes per tenant
  std::set<uint32_t> inbound_spis;              // inbound SAs are found by SPI alone
  // Each interface address's subnet: (tenant, network, length, interface); one tenant's
  // subnets may not overlap across interfaces.
  std::set<std::tuple<std::string, uint32_t, uint8_t, std::string>> tenant_subnets;
  // Routes' next hops: (interface or tunnel, address) -> routes through it.
  std::map<std::pair<std::string, uint32_t>, size_t> next_hops;
  uint64_t sa_serials = 0;

  size_t routes_in(const std::string& tenant) const;

 private:
  struct Undo {
    Key key;
    std::optional<v1::Object> before;
    size_t op;  // the operation that made the change
  };

  std::optional<Error> apply_one(const Operation& op, size_t index);
  std::optional<v1::Object> find(const Key& key) const;
  void record(const Key& key, const std::optional<v1::Object>& before, size_t op);
  void undo(std::vector<Undo>& log);

  std::vector<Undo> log_;
  std::vector<Undo> last_;  // the last successful transaction's log
  ConfigDigest digest_, digest_before_last_;
};

// The object's kind name as the API and config spell it ("interface").
const char* kind_name(v1::Object::KindCase kind);
// Turns a config file's objects into CREATE operations whose paths are "interfaces[2]".
std::vector<Operation> operations_from(v1::Config config);
// What the operations ask, per kind in table order, for the log: "tenant +1, route +300 -2 ~1"
// (creates, deletes, updates).
std::string operations_summary(const std::vector<Operation>& ops);
// An API request's operations, with paths "operations[3].interface"; an error if there are too
// many or one lacks its op or object.
std::optional<Error> operations_from(const v1::ApplyRequest& request, std::vector<Operation>& ops);
using medix::common::mapping_key;
using medix::common::neighbour_key;
using medix::common::route_key;
using medix::common::sa_key;

}  // namespace medix::dp
