// medixctl: the engineer's CLI of medix-dp, over its gRPC API (medix.dataplane.v1.Dataplane), and
// of medix-cp's IKE peers (medix.controlplane.v1.ControlPlane).
// Exit status 0: done; 1: the server refused or the call failed; 2: a wrong command line.
#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <cctype>
#include <chrono>
#include <fstream>
#include <iostream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "args.h"
#include "capture.h"
#include "client.h"
#include "common/json.h"
#include "common/version.h"
#include "dns.h"
#include "ha_sync.h"
#include "objects.h"
#include "output.h"
#include "peers.h"
#include "trace.h"

namespace medix::ctl {
namespace {

constexpr const char* usage_text =
    R"(usage: medixctl [--dp TARGET | -p FILE_PREFIX] [--cp TARGET] [--tls-cert FILE --tls-key FILE]
                [--tls-ca FILE] [-o table|json] COMMAND ...
       medixctl --version | --help

  show KIND [--tenant T]              every object of a kind
  show KIND KEY...                    one object
  names KIND [--tenant T]             each object's key, a line each (for scripts, completion)
  names kinds                         the object kinds, a line each (from the proto; no daemon asked)
  show fib [TENANT]                   a tenant's effective FIB: every prefix (connected, local,
                                      configured), what it resolves to and where it came from;
                                      without TENANT, what every FIB costs
  lookup TENANT ADDRESS               where a packet to ADDRESS goes: the route it matches in
                                      each FIB, across route leaks and the IX core (with its
                                      translation), to the interface and next hop it leaves by
  show ports                          ports with link state, speed and duplex (from the NIC)
  counters                            ports (and their NICs), interfaces, tenants and events
  drops [--lcore] [--all]             drop reasons that counted something (--all: every reason),
                                      the NICs' own drops (imissed, ierrors, ...) per port
  qos [--interval MS]                 each shaper class's sent rate, drops and queue depth, each
                                      policer's rates by colour, over MS (1000)
  runtime [--lcore]                   each worker's loops, empty polls and busy share; calls,
                                      packets and cycles per packet of every stage
  clear counters                      every counter starts from zero (reads say since when)
  vrrp                                each VRRP instance: state, priority, the master heard,
                                      adverts in and out, last transitions with time and reason
  ha                                  the pair: role, peer, sync, medix-cp's IKE witness, config
                                      check against the peer's, failovers (the role's changes:
                                      when, why), VRRP
  capture [--port P] [--interface I] [--tenant T] [--vlan N] [--sa SPI] [--rx] [--tx]
          [--drops [REASON]] [--filter 'BPF'] [-c COUNT] [--duration S] [--snaplen N]
          [--rate PPS] [-w FILE.pcapng | -w -]
                                      packets as the workers see them (received, sent, dropped
                                      with the reason), into pcapng: one interface per medix
                                      interface (tenant), "rx"/"tx"/"drop: REASON" as comments;
                                      without -w one line a packet. Ctrl-C ends it. Packets
                                      may carry patient data (role operator)
  trace add N [--port P] [--interface I] [--tenant T] [--vlan N] [--sa SPI] [--filter 'BPF']
                                      trace the next N packets that match (capture's filter, at
                                      rx): each stage's decision, in order (role operator)
  trace show                          the traced packets, a block each: interface and tenant,
                                      ESP SA and sequence, FIB route, leak, NAT rewrite,
                                      neighbour, tx port and queue or the drop reason
  trace clear                         ends the trace and forgets its packets
  ha-sync [show]                      HA state sync: role, peer, sessions and SAs synced, lag,
                                      datagrams sent and received, rejected (bad MAC, replay,
                                      malformed), resyncs (docs/ha.md)
  ha-sync role active|standby [--reason TEXT]
                                      this node's HA role (VRRP drives it; role controller)
  ha-sync switchover [--group G] [--priority N] [--wait S]
                                      planned switchover, on the standby: its VRRP instances (of
                                      group G) to priority N (254) with preemption; waits until
                                      it is active (S: 10 s). The old active drains: 0 loss
  version                             medixctl's, medix-dp's and medix-cp's versions, uptimes
  sessions [TENANT] [--address A] [--port P] [--protocol N] [--limit N]
                                      flows crossing the IX core, as they entered and left it
  sessions clear TENANT               end every session the tenant takes part in
  watch counters [--interval MS] [--count N]
                                      rates over each interval (default 1000 ms), N intervals
  apply FILE                          a config file (JSON of medix.dataplane.v1.Config) as one
                                      transaction: each object created, or updated if it exists
  set port NAME [mtu M] [up|down] [promiscuous on|off] [device D]
  set tenant NAME [description D] [max-routes N] [session-limit N] [fib compact|dir24_8]
  set interface NAME [tenant T] [port P] [vlan V] [inner-vlan V] [address A/L]... [mtu M] [mac M]
  set route TENANT PREFIX (via INTERFACE [GATEWAY] | tenant T | local | blackhole [unreachable])
  set neighbour INTERFACE ADDRESS MAC
  delete KIND KEY...

  peers                               medix-cp's IKE peers: IKE/CHILD SA state, last error
  peer NAME                           one peer: its IKE and CHILD SAs, counters, last errors
  peer NAME errors                    why IKE with it failed (charon's alert and reason)
  peer NAME initiate|terminate|rekey|rekey-ike
  intent show                         medix-cp's intent: peers, tenants, ports, interfaces, routes,
                                      neighbours, static mappings, NAPT pools, policy rules (PSKs
                                      left out)
  intent apply FILE                   replace it (JSON of medix.controlplane.v1.Intent): validated
                                      whole, kept in medix-cp's intent file, applied to IKE and
                                      medix-dp (what left the intent deleted there); refused,
                                      nothing changes
  intent apply FILE --expected-version N
                                      only if the intent is still at version N (else refused: a
                                      conflict, nothing changes)
  intent status                       where the intent is kept (file, etcd), its version, the version
                                      applied here, the store's connection and last error
  areas                               every area (etcd): intent version applied, BGP sessions,
                                      prefixes announced and learned (installed in the core)
  dns [zones]                         the IX's DNS zones medix-cp keeps Knot DNS serving
  dns records [ZONE]                  their records (SOA, NS, the intent's, reverse PTRs)
  dns resolve TENANT NAME             the answer a host of TENANT gets (CNAMEs followed)
  dns queries                         queries Knot answered, by the tenant that asked (medix-cp --knot-probe)

)";

// After the kinds, which come from the proto (objects.h).
constexpr const char* usage_tail =
    R"(set creates the object or changes only the fields given (addresses given replace the old ones).

TARGET: unix:///PATH or HOST:PORT (TLS with --tls-*: client certificate and key for mTLS, and
  the CA to check the server). Default unix:///var/run/dpdk/rte/api.sock; -p PREFIX is
  unix:///var/run/dpdk/PREFIX/api.sock, the socket of medix-dp started with --file-prefix PREFIX.
  medix-cp (peers, peer, intent, areas, dns): --cp TARGET, or with -p PREFIX unix:///var/run/dpdk/PREFIX/cp.sock,
  else unix:///var/run/medix-cp.sock.
-o json prints the protobuf JSON mapping of the reply (proto field names, zeros included);
  watch prints one snapshot per line.
)";

// KIND and KEY as the proto defines them, wrapped like the rest.
void print_usage() {
  std::string line = "KIND and KEY:", text;
  for (const auto& k : kinds()) {
    std::string item = " " + k.singular + " " + k.key_usage + (&k == &kinds().back() ? "" : ",");
    if (line.size() + item.size() > 100) {
      text += line + "\n";
      line = " ";
    }
    line += item;
  }
  std::cout << usage_text << text << line << " (the plural is accepted too: show routes).\n" << usage_tail;
}

// "3d 4h", "2h 5m", "40s": how long since `started_unix_ns`.
std::string uptime(uint64_t started_unix_ns) {
  auto now = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch());
  int64_t s = now.count() - int64_t(started_unix_ns / 1000000000);
  if (s < 0) s = 0;
  if (s >= 86400) return std::to_string(s / 86400) + "d " + std::to_string(s % 86400 / 3600) + "h";
  if (s >= 3600) return std::to_string(s / 3600) + "h " + std::to_string(s % 3600 / 60) + "m";
  if (s >= 60) return std::to_string(s / 60) + "m " + std::to_string(s % 60) + "s";
  return std::to_string(s) + "s";
}

// medixctl's version and both daemons': what runs, since when. A daemon that does not answer
// is said, not fatal (medix-cp is optional).
int version(Client& client, const std::string& cp_target, bool json) {
  std::string dp_error, cp_error;
  v1::Version dp;
  medix::controlplane::v1::Version cp;
  try {
    dp = client.version();
  } catch (const ServerError& e) {
    dp_error = code_name(e.code) + ": " + e.message + (e.note.empty() ? "" : " (" + e.note + ")");
  }
  try {
    cp = cp_version(cp_target);
  } catch (const ServerError& e) {
    cp_error = code_name(e.code) + ": " + e.message;
  }
  if (json) {
    std::cout << "{\"medixctl\": {\"version\": \"" << common::version()
              << "\"},\n \"medix_dp\": " << (dp_error.empty() ? to_json(dp, false) : "null")
              << ",\n \"medix_cp\": " << (cp_error.empty() ? to_json(cp, false) : "null") << "}\n";
  } else {
    std::cout << "medixctl  " << common::version() << "\n";
    if (dp_error.empty())
      std::cout << "medix-dp  " << dp.version() << ", " << dp.dpdk() << ", Intel IPsec-MB " << dp.ipsec_mb() << "; up "
                << uptime(dp.started_unix_ns()) << ", intent version " << dp.intent_version() << "\n";
    else
      std::cout << "medix-dp  not reachable: " << dp_error << "\n";
    if (cp_error.empty())
      std::cout << "medix-cp  " << cp.version() << ", strongSwan " << cp.strongswan() << "; up "
                << uptime(cp.started_unix_ns()) << "\n";
    else
      std::cout << "medix-cp  not reachable: " << cp_error << "\n";
  }
  return dp_error.empty() ? 0 : 1;
}

struct Context {
  Client& client;
  bool json;
};

void print_applied(const Context& c, const v1::ApplyResponse& response) {
  if (c.json)
    std::cout << to_json(response, true);
  else
    std::cout << "version " << response.version() << " (" << response.changed() << " changed)\n";
}

// The running version (the answer of the smallest List).
uint64_t running_version(Client& client) { return client.list(v1::TENANT, "").version(); }

// nullopt if the object does not exist (a learned neighbour does not: only static ones can be set).
// A key the server finds invalid cannot exist either: the CREATE then gets the error, with the
// path of the field in the transaction ("operations[0].route.prefix").
std::optional<v1::GetResponse> find(Client& client, const v1::Object& key) {
  try {
    auto found = client.get(key);
    if (found.object().has_neighbour() && found.object().neighbour().learned()) return std::nullopt;
    return found;
  } catch (const ServerError& e) {
    if (e.code == grpc::StatusCode::NOT_FOUND || e.code == grpc::StatusCode::INVALID_ARGUMENT) return std::nullopt;
    throw;
  }
}

const KindInfo& kind_word(Args& args) {
  auto word = args.next("a kind (ports, tenants, interfaces, routes, ...)");
  const auto* kind = find_kind(word);
  if (!kind) throw UsageError("\"" + word + "\" is not a kind of object");
  return *kind;
}

int show_fib(const Context& c, Args& args) {
  std::string tenant = args.done() ? "" : args.next("a tenant name");
  args.expect_done();
  auto response = c.client.fib(tenant);
  if (c.json)
    std::cout << to_json(response, true);
  else
    print_fib(std::cout, response);
  return 0;
}

int lookup(const Context& c, Args& args) {
  std::string tenant = args.next("a tenant name");
  std::string address = args.next("an address");
  args.expect_done();
  auto response = c.client.lookup(tenant, address);
  if (c.json)
    std::cout << to_json(response, true);
  else
    print_lookup(std::cout, response);
  return 0;
}

int show(const Context& c, Args& args) {
  if (args.take("fib")) return show_fib(c, args);
  const auto& kind = kind_word(args);
  if (args.done() || args.peek().starts_with("--")) {
    std::string tenant;
    while (!args.done()) {
      if (args.take("--tenant"))
        tenant = args.next("a tenant name after --tenant");
      else
        throw UsageError("show " + kind.plural + ": unknown option " + args.peek());
    }
    auto response = c.client.list(kind.kind, tenant);
    if (c.json)
      std::cout << to_json(response, true);
    else if (kind.oneof == v1::Object::kPort)
      print_ports(std::cout, response.objects(), c.client.counters());
    else
      print_objects(std::cout, kind, response.objects());
    return 0;
  }
  auto key = key_object(kind, args);
  args.expect_done();
  auto response = c.client.get(key);
  if (c.json) {
    std::cout << to_json(response, true);
  } else {
    google::protobuf::RepeatedPtrField<v1::Object> one;
    *one.Add() = response.object();
    print_objects(std::cout, kind, one);
  }
  return 0;
}

// One object's key a line, as `show KIND KEY...` takes it: for scripts and shell completion.
int names(const Context& c, Args& args) {
  if (args.take("kinds")) {  // the kinds themselves, from the proto: completion asks no daemon
    args.expect_done();
    for (const auto& k : kinds()) std::cout << k.singular << "\n";
    return 0;
  }
  const auto& kind = kind_word(args);
  std::string tenant;
  if (args.take("--tenant")) tenant = args.next("a tenant name after --tenant");
  args.expect_done();
  auto response = c.client.list(kind.kind, tenant);
  for (const auto& o : response.objects()) std::cout << key_words(o) << "\n";
  return 0;
}

int counters(const Context& c, Args& args) {
  args.expect_done();
  auto snapshot = c.client.counters();
  if (c.json)
    std::cout << to_json(snapshot, true);
  else
    print_counters(std::cout, snapshot);
  return 0;
}

int drops(const Context& c, Args& args) {
  bool by_lcore = false, all = false;
  while (!args.done()) {
    if (args.take("--lcore"))
      by_lcore = true;
    else if (args.take("--all"))
      all = true;
    else
      throw UsageError("drops: unknown option " + args.peek());
  }
  auto selected = select_drops(c.client.counters(), by_lcore, all);
  if (c.json)
    std::cout << to_json(selected, true);
  else
    print_drops(std::cout, selected, by_lcore);
  return 0;
}

int sessions(const Context& c, Args& args) {
  if (args.take("clear")) {
    std::string tenant = args.next("a tenant name");
    args.expect_done();
    c.client.clear_sessions(tenant);
    if (!c.json) std::cout << "sessions of " << tenant << " cleared\n";
    return 0;
  }
  v1::ListSessionsRequest request;
  while (!args.done()) {
    if (args.take("--address"))
      request.set_address(args.next("an address"));
    else if (args.take("--port"))
      request.set_port(args.next_u32("port"));
    else if (args.take("--protocol"))
      request.set_protocol(args.next_u32("protocol"));
    else if (args.take("--limit"))
      request.set_limit(args.next_u32("limit"));
    else if (request.tenant().empty() && !args.peek().starts_with("-"))
      request.set_tenant(args.next("a tenant name"));
    else
      throw UsageError("sessions: unknown option " + args.peek());
  }
  auto response = c.client.sessions(request);
  if (c.json)
    std::cout << to_json(response, true);
  else
    print_sessions(std::cout, response);
  return 0;
}

int clear(const Context& c, Args& args) {
  if (!args.take("counters")) throw UsageError("clear: only \"clear counters\" is known");
  args.expect_done();
  uint64_t since = c.client.clear_counters();
  if (c.json)
    std::cout << "{\"since_ns\": \"" << since << "\"}\n";
  else
    std::cout << "counters cleared at " << format_time(since) << "\n";
  return 0;
}

int qos(const Context& c, Args& args) {
  uint32_t interval_ms = 1000;
  while (!args.done()) {
    if (args.take("--interval"))
      interval_ms = args.next_u32("--interval");
    else
      throw UsageError("qos: unknown option " + args.peek());
  }
  // Rates over one interval: two snapshots, interval_ms apart.
  std::optional<v1::CountersSnapshot> before;
  c.client.watch_counters(interval_ms, [&](const v1::CountersSnapshot& snapshot) {
    if (!before) {
      before = snapshot;
      return true;
    }
    if (c.json)
      std::cout << to_json(snapshot, true);
    else
      print_qos(std::cout, *before, snapshot);
    return false;
  });
  return 0;
}

int runtime(const Context& c, Args& args) {
  bool by_lcore = args.take("--lcore");
  args.expect_done();
  auto runtime = c.client.runtime();
  if (c.json)
    std::cout << to_json(runtime, true);
  else
    print_runtime(std::cout, runtime, by_lcore);
  return 0;
}

int vrrp(const Context& c, Args& args) {
  args.expect_done();
  auto response = c.client.vrrp();
  if (c.json)
    std::cout << to_json(response, true);
  else
    print_vrrp(std::cout, response);
  return 0;
}

int watch(const Context& c, Args& args) {
  if (!args.take("counters")) throw UsageError("watch: only \"watch counters\" is known");
  uint32_t interval_ms = 1000, count = 0;
  while (!args.done()) {
    if (args.take("--interval"))
      interval_ms = args.next_u32("--interval");
    else if (args.take("--count"))
      count = args.next_u32("--count");
    else
      throw UsageError("watch counters: unknown option " + args.peek());
  }
  // The first snapshot is the baseline; each next one ends an interval.
  std::optional<v1::CountersSnapshot> before;
  uint32_t intervals = 0;
  c.client.watch_counters(interval_ms, [&](const v1::CountersSnapshot& snapshot) {
    if (c.json)
      std::cout << to_json(snapshot, false);
    else if (before)
      print_rates(std::cout, *before, snapshot, interval_ms);
    std::cout.flush();
    if (before) intervals++;
    before = snapshot;
    return count == 0 || intervals < count;
  });
  return 0;
}

// One object of a config file and where it is there ("interfaces[2]").
struct Entry {
  v1::Object object;
  std::string where;
};

v1::Config read_config(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) throw Failure(path + ": cannot read the file");
  v1::Config config;
  if (auto error = common::parse_json(text.str(), config)) throw Failure(path + ": " + *error);
  if (config.schema_version() != 1)
    throw Failure(path + ": schema_version: " + std::to_string(config.schema_version()) +
                  " is not supported (expected 1)");
  return config;
}

// "operations[7].interface.vlan: ..." names the file entry the operation came from.
std::string where_in_file(const std::string& message, const std::vector<Entry>& entries, const std::string& path) {
  const std::string prefix = "operations[";
  if (!message.starts_with(prefix)) return {};
  size_t index = 0, i = prefix.size();
  for (; i < message.size() && std::isdigit(static_cast<unsigned char>(message[i])); i++)
    index = index * 10 + (message[i] - '0');
  if (i == prefix.size() || i >= message.size() || message[i] != ']' || index >= entries.size()) return {};
  return message.substr(0, i + 1) + " is " + entries[index].where + " in " + path;
}

// The config as one transaction: objects whose key exists are UPDATEd, the others CREATEd (both
// are no-ops for identical objects), in the file's order, at the version the keys were read at;
// if that version has moved on by the time it applies, it is read and sent again.
int apply(const Context& c, Args& args) {
  auto path = args.next("a config file");
  args.expect_done();
  auto config = read_config(path);
  if (config.has_settings() && !google::protobuf::util::MessageDifferencer::Equals(config.settings(), v1::Settings()))
    std::cerr << "medixctl: " << path << ": settings are read at start-up only; they are not applied\n";

  std::vector<Entry> entries;
  // Every kind's list, in the proto's order (kinds(), objects.h): a new kind needs nothing here.
  const auto* reflection = config.GetReflection();
  for (const auto& kind : kinds()) {
    const auto* list = v1::Config::descriptor()->FindFieldByName(kind.config_field);
    const auto* field = v1::Object::descriptor()->FindFieldByNumber(kind.oneof);
    if (!list || !field) continue;
    for (int i = 0; i < reflection->FieldSize(config, list); i++) {
      Entry entry;
      entry.object.GetReflection()
          ->MutableMessage(&entry.object, field)
          ->CopyFrom(reflection->GetRepeatedMessage(config, list, i));
      entry.where = kind.config_field + "[" + std::to_string(i) + "]";
      entries.push_back(std::move(entry));
    }
  }
  std::set<v1::Kind> kinds_in_file;
  for (const auto& entry : entries) kinds_in_file.insert(kind_of(entry.object).kind);

  constexpr int attempts = 3;
  for (int attempt = 1;; attempt++) {
    // The keys that exist, all read at one version.
    std::set<std::string> existing;
    std::optional<uint64_t> version;
    bool consistent = true;
    for (auto kind : kinds_in_file) {
      v1::ListResponse listed;
      try {
        listed = c.client.list(kind, "");
      } catch (const ServerError& e) {
        if (e.code == grpc::StatusCode::UNIMPLEMENTED) continue;  // its CREATEs get the server's answer
        throw;
      }
      if (version && *version != listed.version()) consistent = false;
      version = listed.version();
      for (const auto& object : listed.objects())
        if (!(object.has_neighbour() && object.neighbour().learned())) existing.insert(key_string(object));
    }
    if (!consistent) {
      if (attempt == attempts) throw Failure("the configuration kept changing while it was read");
      continue;
    }

    v1::ApplyRequest request;
    if (version) request.set_expected_version(*version);
    for (const auto& entry : entries) {
      auto* operation = request.add_operations();
      operation->set_op(existing.contains(key_string(entry.object)) ? v1::Operation::UPDATE : v1::Operation::CREATE);
      *operation->mutable_object() = entry.object;
    }
    try {
      print_applied(c, c.client.apply(request));
      return 0;
    } catch (const ServerError& e) {
      bool moved_on = e.code == grpc::StatusCode::FAILED_PRECONDITION && version && attempt < attempts &&
                      running_version(c.client) != *version;
      if (moved_on) continue;
      throw Failure(e.what(), where_in_file(e.message, entries, path));
    }
  }
}

// CREATE if absent, else UPDATE of the fields named, at the version read (read again if it moved).
int set(const Context& c, Args& args) {
  const auto& kind = kind_word(args);
  auto key = key_object(kind, args);
  {
    auto scratch = key;  // the words are checked before anything is asked
    Args words = args;
    apply_set_words(scratch, words);
  }
  constexpr int attempts = 3;
  for (int attempt = 1;; attempt++) {
    auto found = find(c.client, key);
    auto object = found ? found->object() : key;
    clear_output_only(object);
    Args words = args;
    apply_set_words(object, words);
    v1::ApplyRequest request;
    if (found) request.set_expected_version(found->version());
    auto* operation = request.add_operations();
    operation->set_op(found ? v1::Operation::UPDATE : v1::Operation::CREATE);
    *operation->mutable_object() = object;
    try {
      print_applied(c, c.client.apply(request));
      return 0;
    } catch (const ServerError& e) {
      bool moved_on = e.code == grpc::StatusCode::FAILED_PRECONDITION && found && attempt < attempts &&
                      running_version(c.client) != found->version();
      if (!moved_on) throw;
    }
  }
}

int remove(const Context& c, Args& args) {
  const auto& kind = kind_word(args);
  v1::ApplyRequest request;
  auto* operation = request.add_operations();
  operation->set_op(v1::Operation::DELETE);
  *operation->mutable_object() = key_object(kind, args);
  args.expect_done();
  print_applied(c, c.client.apply(request));
  return 0;
}

int run(int argc, char** argv) {
  std::string target, prefix, cp_target, output = "table";
  Tls tls;
  int i = 1;
  // "--dp X" and "--dp=X"
  auto value = [&](const std::string& option, std::string& into) {
    std::string word = argv[i];
    if (word == option) {
      if (i + 1 >= argc) throw UsageError(option + " needs a value");
      into = argv[++i];
      return true;
    }
    if (option.starts_with("--") && word.starts_with(option + "=")) {
      into = word.substr(option.size() + 1);
      return true;
    }
    return false;
  };
  for (; i < argc && argv[i][0] == '-'; i++) {
    std::string word = argv[i];
    if (word == "--version") {
      std::cout << "medixctl " << common::version() << "\n";
      return 0;
    }
    if (word == "-h" || word == "--help") {
      print_usage();
      return 0;
    }
    if (!value("--dp", target) && !value("-p", prefix) && !value("--cp", cp_target) && !value("-o", output) &&
        !value("--output", output) && !value("--tls-cert", tls.cert) && !value("--tls-key", tls.key) &&
        !value("--tls-ca", tls.ca))
      throw UsageError("unknown option " + word);
  }
  if (!target.empty() && !prefix.empty()) throw UsageError("--dp and -p both name the server: give one");
  if (output != "table" && output != "json") throw UsageError("-o: \"" + output + "\" is neither table nor json");
  if (tls.cert.empty() != tls.key.empty()) throw UsageError("--tls-cert and --tls-key go together");
  if (!prefix.empty()) target = "unix:///var/run/dpdk/" + prefix + "/api.sock";
  if (cp_target.empty())
    cp_target = prefix.empty() ? "unix:///var/run/medix-cp.sock" : "unix:///var/run/dpdk/" + prefix + "/cp.sock";
  if (target.empty()) target = "unix:///var/run/dpdk/rte/api.sock";
  if (i == argc) throw UsageError("missing a command");

  std::string command = argv[i++];
  Args args(std::vector<std::string>(argv + i, argv + argc));
  if (command == "help") {
    print_usage();
    return 0;
  }
  if (command == "peers" || command == "peer" || command == "intent" || command == "areas")
    return peers_command(cp_target, output == "json", command, args);
  if (command == "dns") return dns_command(cp_target, output == "json", args);
  if (command == "capture") {
    Client client(target, tls);
    return capture_command(client, args, output == "json");
  }
  if (command == "trace") {
    Client client(target, tls);
    return trace_command(client, args, output == "json");
  }
  if (command == "ha-sync") {
    Client client(target, tls);
    return ha_sync_command(client, args, output == "json");
  }
  if (command == "ha") {
    Client client(target, tls);
    return ha_command(client, cp_target, args, output == "json");
  }
  if (command == "version") {
    args.expect_done();
    Client client(target, tls);
    return version(client, cp_target, output == "json");
  }
  using Command = int (*)(const Context&, Args&);
  const std::vector<std::pair<std::string, Command>> commands = {
      {"show", show},         {"counters", counters}, {"drops", drops}, {"runtime", runtime}, {"qos", qos},
      {"sessions", sessions}, {"watch", watch},       {"apply", apply}, {"set", set},         {"delete", remove},
      {"clear", clear},       {"lookup", lookup},     {"names", names}, {"vrrp", vrrp},
  };
  for (const auto& [name, function] : commands) {
    if (name != command) continue;
    Client client(target, tls);
    Context context{client, output == "json"};
    return function(context, args);
  }
  throw UsageError("unknown command \"" + command + "\"");
}

}  // namespace
}  // namespace medix::ctl

int main(int argc, char** argv) {
  try {
    return medix::ctl::run(argc, argv);
  } catch (const medix::ctl::UsageError& e) {
    std::cerr << "medixctl: " << e.what() << "\n(medixctl --help shows the commands)\n";
    return 2;
  } catch (const medix::ctl::Failure& e) {
    std::cerr << "medixctl: " << e.what() << '\n';
    if (!e.note.empty()) std::cerr << "medixctl: " << e.note << '\n';
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "medixctl: " << e.what() << '\n';
    return 1;
  }
}
