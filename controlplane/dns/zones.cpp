#include "zones.h"

#include <cctype>
#include <vector>

#include "common/address.h"

namespace medix::cp::dns {

namespace {

using common::parse_ipv4;
using common::parse_prefix;

constexpr uint32_t default_ttl = 300;

uint32_t mask_of(uint8_t length) { return length == 0 ? 0 : ~uint32_t(0) << (32 - length); }

bool within(uint32_t address, common::Prefix p) {
  return (address & mask_of(p.length)) == (p.address & mask_of(p.length));
}

// "a.b.c." is "b.c." or below it.
bool in_domain(const std::string& name, const std::string& domain) {
  return name == domain || (name.size() > domain.size() && name.ends_with("." + domain));
}

std::string at(int z, int r = -1) {
  std::string s = "dns.zones[" + std::to_string(z) + "].";
  if (r >= 0) s += "records[" + std::to_string(r) + "].";
  return s;
}

// The record's owner: "@" the zone, else the name within it.
std::string owner_of(const std::string& name, const std::string& zone) {
  if (name == "@") return zone;
  std::string n = absolute_name(name);
  return n.empty() ? "" : n + zone;
}

std::string type_of(const c1::DnsRecord& r) { return r.type().empty() ? "A" : r.type(); }

// The reverse zone of a core prefix: its whole octets, reversed.
std::string reverse_zone(common::Prefix p) {
  int octets = std::max(1, p.length / 8);
  std::string z;
  for (int i = 0; i < octets; i++) z = std::to_string((p.address >> (24 - 8 * i)) & 0xff) + "." + z;
  return z + "in-addr.arpa.";
}

std::string reverse_name(uint32_t a) {
  return std::to_string(a & 0xff) + "." + std::to_string((a >> 8) & 0xff) + "." + std::to_string((a >> 16) & 0xff) +
         "." + std::to_string(a >> 24) + ".in-addr.arpa.";
}

// Who owns an address: a mapping's core prefix, a NAPT pool, a tenant's interface subnet. "" if
// nobody.
bool owned(const c1::Intent& in, uint32_t a) {
  for (const auto& m : in.static_mappings())
    if (auto p = parse_prefix(m.core_prefix()); p && within(a, *p)) return true;
  for (const auto& pool : in.napt_pools())
    for (const auto& s : pool.addresses()) {
      if (auto one = parse_ipv4(s); one && *one == a) return true;
      if (auto p = parse_prefix(s); p && within(a, *p)) return true;
    }
  for (const auto& f : in.interfaces())
    for (const auto& s : f.addresses())
      if (auto p = parse_prefix(s); p && within(a, *p)) return true;
  return false;
}

}  // namespace

std::string absolute_name(const std::string& name) {
  std::string n;
  for (char c : name) n += char(std::tolower(static_cast<unsigned char>(c)));
  if (!n.empty() && n.back() == '.') n.pop_back();
  if (n.empty() || n.size() > 253) return "";
  size_t start = 0;
  while (start <= n.size()) {
    size_t end = n.find('.', start);
    if (end == std::string::npos) end = n.size();
    const std::string label = n.substr(start, end - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return "";
    for (char c : label)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return "";
    start = end + 1;
  }
  return n + ".";
}

std::string soa_without_serial(const std::string& data) {
  // mname rname serial refresh retry expire minimum
  size_t first = data.find(' ');
  size_t second = first == std::string::npos ? first : data.find(' ', first + 1);
  size_t third = second == std::string::npos ? second : data.find(' ', second + 1);
  if (third == std::string::npos) return data;
  return data.substr(0, second) + data.substr(third);
}

std::string core_address(const c1::Intent& in, const std::string& tenant, const std::string& address) {
  auto a = parse_ipv4(address);
  if (!a) return "";
  for (const auto& m : in.static_mappings()) {
    if (m.tenant() != tenant) continue;
    auto t = parse_prefix(m.tenant_prefix()), c = parse_prefix(m.core_prefix());
    if (!t || !c || t->length != c->length || !within(*a, *t)) continue;
    const uint32_t host = *a & ~mask_of(t->length);
    return common::format_ipv4((c->address & mask_of(c->length)) | host);
  }
  return "";
}

std::set<View> views_of(const c1::Intent& in) {
  std::set<View> out;
  if (!in.has_dns()) return out;
  for (const auto& zone : in.dns().zones()) {
    const std::string name = absolute_name(zone.name());
    for (const auto& rec : zone.records()) {
      if (rec.tenant().empty() || type_of(rec) != "A") continue;
      auto a = parse_ipv4(rec.tenant_address());
      if (!a) continue;
      for (const auto& m : in.static_mappings())
        if (auto c = parse_prefix(m.core_prefix()); c && m.tenant() == rec.tenant())
          out.insert({owner_of(rec.name(), name), common::format_prefix({c->address & mask_of(c->length), c->length}),
                      common::format_ipv4(*a)});
    }
  }
  return out;
}

std::string network_of(const std::string& prefix) {
  auto p = parse_prefix(prefix);
  return p ? common::format_prefix({p->address & mask_of(p->length), p->length}) : "";
}

std::string geoip_text(const std::set<View>& views) {
  std::string text = "# Written by medix-cp from its intent (docs/dns.md): per-tenant answers.\n";
  std::string owner;
  for (const auto& v : views) {
    if (v.owner != owner) text += v.owner + ":\n";
    owner = v.owner;
    text += "  - net: " + v.net + "\n    A: " + v.address + "\n";
  }
  return text;
}

std::string validate(const c1::Intent& in) {
  if (!in.has_dns()) return "";
  const c1::Dns& d = in.dns();
  std::vector<std::string> domains;
  for (int i = 0; i < d.domains_size(); i++) {
    std::string n = absolute_name(d.domains(i));
    if (n.empty()) return "dns.domains[" + std::to_string(i) + "]: '" + d.domains(i) + "' is not a domain name";
    domains.push_back(n);
  }
  if (domains.empty() && d.zones_size() > 0) return "dns.domains: the IX's domain is required with zones";
  if (!d.nameserver().empty() && absolute_name(d.nameserver()).empty())
    return "dns.nameserver: '" + d.nameserver() + "' is not a host name";
  if (!d.hostmaster().empty() && absolute_name(d.hostmaster()).empty())
    return "dns.hostmaster: '" + d.hostmaster() + "' is not a name (hostmaster.ix.example)";
  std::set<std::string> tenants;
  for (const auto& t : in.tenants()) tenants.insert(t.name());
  if (!d.service_tenant().empty() || !d.service_address().empty()) {
    if (!tenants.count(d.service_tenant())) return "dns.service_tenant: no tenant named '" + d.service_tenant() + "'";
    auto a = parse_ipv4(d.service_address());
    if (!a) return "dns.service_address: '" + d.service_address() + "' is not an IPv4 address";
    bool mapped = false;
    for (const auto& m : in.static_mappings())
      if (auto p = parse_prefix(m.core_prefix()); p && m.tenant() == d.service_tenant() && within(*a, *p))
        mapped = true;
    if (!mapped)
      return "dns.service_address: " + d.service_address() + " is in no core prefix of tenant '" + d.service_tenant() +
             "' (its static mappings)";
    for (int i = 0; i < in.policy_rules_size(); i++)
      if (in.policy_rules(i).name() == "dns-udp" || in.policy_rules(i).name() == "dns-tcp")
        return "policy_rules[" + std::to_string(i) + "].name: '" + in.policy_rules(i).name() +
               "' is the DNS service's rule, made by medix-cp (dns.service_tenant)";
  }

  std::set<std::string> zone_names;
  std::map<std::string, std::string> cnames;    // owner -> target, for loops
  std::map<std::string, std::string> cname_at;  // owner -> its field
  std::map<std::string, std::string> other_at;  // owner with other data -> its field
  std::set<std::string> seen;                   // owner type data
  for (int z = 0; z < d.zones_size(); z++) {
    const c1::DnsZone& zone = d.zones(z);
    const std::string name = absolute_name(zone.name());
    if (name.empty()) return at(z) + "name: '" + zone.name() + "' is not a domain name";
    bool inside = false;
    for (const auto& dom : domains) inside = inside || in_domain(name, dom);
    if (!inside) return at(z) + "name: '" + zone.name() + "' is outside the IX's domains (dns.domains)";
    if (!zone_names.insert(name).second) return at(z) + "name: another zone is named '" + zone.name() + "'";
    for (int r = 0; r < zone.records_size(); r++) {
      const c1::DnsRecord& rec = zone.records(r);
      const std::string owner = owner_of(rec.name(), name);
      if (owner.empty()) return at(z, r) + "name: '" + rec.name() + "' is not a name within the zone (or '@')";
      if (owner.size() > 254) return at(z, r) + "name: '" + rec.name() + "' makes a name over 253 characters";
      const std::string type = type_of(rec);
      std::string data;
      if (type == "A") {
        if (!rec.target().empty() || !rec.text().empty()) return at(z, r) + "type: an A record has no target or text";
        if (!rec.address().empty() == !rec.tenant().empty())
          return at(z, r) + "address: an A record has either an address or a tenant and tenant_address";
        if (!rec.address().empty()) {
          auto a = parse_ipv4(rec.address());
          if (!a) return at(z, r) + "address: '" + rec.address() + "' is not an IPv4 address";
          if (!owned(in, *a))
            return at(z, r) + "address: " + rec.address() +
                   " is owned by no tenant or mapping (no static mapping's core prefix, NAPT pool or interface "
                   "holds it)";
          data = common::format_ipv4(*a);
        } else {
          if (!tenants.count(rec.tenant())) return at(z, r) + "tenant: no tenant named '" + rec.tenant() + "'";
          if (!parse_ipv4(rec.tenant_address()))
            return at(z, r) + "tenant_address: '" + rec.tenant_address() + "' is not an IPv4 address";
          data = core_address(in, rec.tenant(), rec.tenant_address());
          if (data.empty())
            return at(z, r) + "tenant_address: no static mapping of tenant '" + rec.tenant() + "' holds " +
                   rec.tenant_address();
        }
        other_at.emplace(owner, at(z, r));
      } else if (type == "CNAME") {
        if (!rec.address().empty() || !rec.tenant().empty() || !rec.tenant_address().empty() || !rec.text().empty())
          return at(z, r) + "type: a CNAME has a target only";
        if (owner == name) return at(z, r) + "name: a CNAME cannot be at the zone's apex (its SOA and NS are there)";
        std::string target = rec.target().ends_with(".") ? absolute_name(rec.target()) : owner_of(rec.target(), name);
        if (target.empty()) return at(z, r) + "target: '" + rec.target() + "' is not a name";
        if (cname_at.count(owner)) return at(z, r) + "name: " + owner + " has another CNAME (" + cname_at[owner] + ")";
        cnames[owner] = target;
        cname_at[owner] = at(z, r);
        data = target;
      } else if (type == "TXT") {
        if (!rec.address().empty() || !rec.tenant().empty() || !rec.target().empty())
          return at(z, r) + "type: a TXT record has a text only";
        if (rec.text().size() > 255) return at(z, r) + "text: at most 255 characters";
        for (char c : rec.text())
          if (c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) > 0x7e)
            return at(z, r) + "text: printable ASCII without quotes or backslashes";
        other_at.emplace(owner, at(z, r));
        data = rec.text();
      } else {
        return at(z, r) + "type: '" + rec.type() + "' is not one of A, CNAME, TXT";
      }
      if (!seen.insert(owner + " " + type + " " + data).second)
        return at(z, r) + "name: the same " + type + " record is already there (" + owner + ")";
    }
  }
  for (const auto& [owner, field] : cname_at)
    if (other_at.count(owner))
      return field + "name: " + owner + " has a CNAME and other records (" + other_at[owner] + "type)";
  // A CNAME chain within the intent must end: follow each, at most as many steps as there are.
  for (const auto& [start, field] : cname_at) {
    std::string path = start, name = start;
    std::set<std::string> visited{start};
    while (cnames.count(name)) {
      name = cnames[name];
      path += " -> " + name;
      if (!visited.insert(name).second) return field + "target: a CNAME loop: " + path;
    }
  }
  // Every reverse zone is within one mapping's octets: a core prefix under /8 is refused.
  for (int i = 0; i < in.static_mappings_size(); i++)
    if (auto p = parse_prefix(in.static_mappings(i).core_prefix()); p && p->length < 8 && d.zones_size() > 0)
      return "static_mappings[" + std::to_string(i) + "].core_prefix: reverse zones need a core prefix of /8 or longer";
  return "";
}

Zones zones_of(const c1::Intent& in) {
  Zones out;
  if (!in.has_dns() || in.dns().zones_size() == 0) return out;
  const c1::Dns& d = in.dns();
  const std::string first = absolute_name(d.domains(0));
  const std::string ns = d.nameserver().empty() ? "ns." + first : absolute_name(d.nameserver());
  const std::string mbox = d.hostmaster().empty() ? "hostmaster." + first : absolute_name(d.hostmaster());
  auto apex = [&](const std::string& zone, uint32_t ttl) {
    Zone& z = out[zone];
    z.insert({zone, ttl, "SOA", ns + " " + mbox + " 3600 900 604800 " + std::to_string(ttl)});
    z.insert({zone, ttl, "NS", ns});
  };
  // Reverse zones: each core prefix's whole octets; one nested in another is left to the outer.
  std::set<std::string> reverse;
  for (const auto& m : in.static_mappings())
    if (auto p = parse_prefix(m.core_prefix())) reverse.insert(reverse_zone(*p));
  for (auto it = reverse.begin(); it != reverse.end();) {
    bool nested = false;
    for (const auto& other : reverse) nested = nested || (other != *it && in_domain(*it, other));
    it = nested ? reverse.erase(it) : std::next(it);
  }
  for (const auto& r : reverse) apex(r, default_ttl);

  for (const auto& zone : d.zones()) {
    const std::string name = absolute_name(zone.name());
    const uint32_t zone_ttl = zone.ttl() ? zone.ttl() : default_ttl;
    apex(name, zone_ttl);
    for (const auto& rec : zone.records()) {
      const std::string owner = owner_of(rec.name(), name);
      const std::string type = type_of(rec);
      const uint32_t ttl = rec.ttl() ? rec.ttl() : zone_ttl;
      if (type == "A") {
        std::string address = !rec.address().empty() ? common::format_ipv4(*parse_ipv4(rec.address()))
                                                     : core_address(in, rec.tenant(), rec.tenant_address());
        out[name].insert({owner, ttl, "A", address});
        const std::string ptr = reverse_name(*parse_ipv4(address));
        for (const auto& r : reverse)
          if (in_domain(ptr, r)) out[r].insert({ptr, ttl, "PTR", owner});
      } else if (type == "CNAME") {
        out[name].insert({owner, ttl, "CNAME",
                          rec.target().ends_with(".") ? absolute_name(rec.target()) : owner_of(rec.target(), name)});
      } else if (type == "TXT") {
        out[name].insert({owner, ttl, "TXT", "\"" + rec.text() + "\""});
      }
    }
  }
  return out;
}

}  // namespace medix::cp::dns
