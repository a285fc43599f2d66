#include "dns.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <iostream>
#include <set>

#include "client.h"
#include "dns/zones.h"
#include "medix/controlplane/v1/controlplane.grpc.pb.h"
#include "output.h"

namespace medix::ctl {

namespace {

namespace c1 = medix::controlplane::v1;
namespace dns = medix::cp::dns;

c1::Intent get_intent(const std::string& target) {
  auto stub = c1::ControlPlane::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  c1::Intent intent;
  grpc::Status status = stub->GetIntent(&context, c1::GetIntentRequest(), &intent);
  if (!status.ok()) throw ServerError(status.error_code(), status.error_message());
  return intent;
}

std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) out += (c == '"' || c == '\\') ? std::string("\\") + c : std::string(1, c);
  return out + "\"";
}

std::string record_json(const std::string& zone, const dns::Record& r) {
  return "{\"zone\": " + quoted(zone) + ", \"name\": " + quoted(r.owner) + ", \"ttl\": " + std::to_string(r.ttl) +
         ", \"type\": " + quoted(r.type) + ", \"data\": " + quoted(r.data) + "}";
}

}  // namespace

int dns_command(const std::string& cp_target, bool json, Args& args) {
  const std::string action = args.done() ? "zones" : args.next("zones, records, queries or resolve");
  const c1::Intent intent = get_intent(cp_target);
  const dns::Zones zones = dns::zones_of(intent);
  if (action == "zones") {
    args.expect_done();
    Table table({{"ZONE"}, {"KIND"}, {"RECORDS", true}});
    std::string out;
    for (const auto& [name, zone] : zones) {
      const char* kind = name.ends_with(".in-addr.arpa.") ? "reverse" : "forward";
      table.row({name, kind, std::to_string(zone.size())});
      out += std::string(out.empty() ? "" : ",\n ") + "{\"zone\": " + quoted(name) + ", \"kind\": \"" + kind +
             "\", \"records\": " + std::to_string(zone.size()) + "}";
    }
    if (json)
      std::cout << "[" << out << "]\n";
    else
      table.print(std::cout);
    return 0;
  }
  if (action == "records") {
    std::string only;
    if (!args.done()) {
      only = dns::absolute_name(args.next("a zone"));
      if (only.empty() || !zones.count(only)) throw Failure("no zone named " + only + " in the intent");
    }
    args.expect_done();
    Table table({{"NAME"}, {"TTL", true}, {"TYPE"}, {"DATA"}});
    std::string out;
    for (const auto& [name, zone] : zones) {
      if (!only.empty() && name != only) continue;
      for (const auto& r : zone) {
        table.row({r.owner, std::to_string(r.ttl), r.type, r.data});
        out += std::string(out.empty() ? "" : ",\n ") + record_json(name, r);
      }
    }
    if (json)
      std::cout << "[" << out << "]\n";
    else
      table.print(std::cout);
    return 0;
  }
  if (action == "queries") {
    args.expect_done();
    auto stub = c1::ControlPlane::NewStub(grpc::CreateChannel(cp_target, grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    c1::DnsQueries queries;
    grpc::Status status = stub->GetDnsQueries(&context, c1::GetDnsQueriesRequest(), &queries);
    if (!status.ok()) throw ServerError(status.error_code(), status.error_message());
    Table table({{"TENANT"}, {"QUERIES", true}, {"NXDOMAIN", true}, {"REFUSED", true}});
    std::string out;
    for (const auto& t : queries.tenants()) {
      table.row({t.tenant().empty() ? "(no tenant)" : t.tenant(), std::to_string(t.queries()),
                 std::to_string(t.nxdomain()), std::to_string(t.refused())});
      out += std::string(out.empty() ? "" : ",\n ") + "{\"tenant\": " + quoted(t.tenant()) +
             ", \"queries\": " + std::to_string(t.queries()) + ", \"nxdomain\": " + std::to_string(t.nxdomain()) +
             ", \"refused\": " + std::to_string(t.refused()) + "}";
    }
    if (json)
      std::cout << "[" << out << "]\n";
    else
      table.print(std::cout);
    return 0;
  }
  if (action != "resolve") throw UsageError("dns: \"" + action + "\" is none of zones, records, queries, resolve");
  const std::string tenant = args.next("a tenant");
  const std::string asked = args.next("a name");
  args.expect_done();
  bool known = false;
  for (const auto& t : intent.tenants()) known = known || t.name() == tenant;
  if (!known) throw Failure("no tenant named '" + tenant + "' in the intent");
  std::string name = dns::absolute_name(asked);
  if (name.empty()) throw Failure("'" + asked + "' is not a name");
  // The records of a name, from the most specific zone that holds it; CNAMEs followed (the
  // intent has no loop: medix-cp refuses them).
  auto lookup = [&](const std::string& n) {
    std::vector<dns::Record> found;
    std::string best;
    for (const auto& [zone, records] : zones)
      if ((n == zone || n.ends_with("." + zone)) && zone.size() > best.size()) best = zone;
    if (!best.empty())
      for (const auto& r : zones.at(best))
        if (r.owner == n && r.type != "SOA" && r.type != "NS") found.push_back(r);
    return found;
  };
  std::vector<dns::Record> answer;
  for (int hops = 0; hops < 16; hops++) {
    auto found = lookup(name);
    answer.insert(answer.end(), found.begin(), found.end());
    if (found.size() == 1 && found[0].type == "CNAME")
      name = found[0].data;
    else
      break;
  }
  // The tenant's own hosts: their tenant address, asked from the tenant's core prefixes (Knot's
  // geoip module answers by the query's source, on the name asked).
  std::set<std::string> nets;
  for (const auto& m : intent.static_mappings())
    if (m.tenant() == tenant) nets.insert(dns::network_of(m.core_prefix()));
  bool own = false;
  for (const auto& v : dns::views_of(intent))
    for (auto& r : answer)
      if (r.type == "A" && r.owner == dns::absolute_name(asked) && v.owner == r.owner && nets.count(v.net)) {
        r.data = v.address;
        own = true;
      }
  Table table({{"NAME"}, {"TTL", true}, {"TYPE"}, {"DATA"}});
  std::string out;
  for (const auto& r : answer) {
    table.row({r.owner, std::to_string(r.ttl), r.type, r.data});
    out += std::string(out.empty() ? "" : ",\n ") + record_json("", r);
  }
  if (json) {
    std::cout << "{\"tenant\": " << quoted(tenant) << ", \"answer\": [" << out << "]}\n";
    return 0;
  }
  if (answer.empty()) {
    std::cout << asked << ": no such name in the IX's zones (NXDOMAIN or no data)\n";
    return 1;
  }
  std::cout << "tenant " << tenant << " asks " << dns::absolute_name(asked)
            << (own ? ": a host of its own, its tenant address (medix-cp --knot-geoip)\n" : ": the core address\n");
  table.print(std::cout);
  return 0;
}

}  // namespace medix::ctl
