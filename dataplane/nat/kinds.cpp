#include "nat/kinds.h"

#include "control/check.h"
#include "nat/commit.h"

namespace medix::dp {

std::optional<std::vector<Prefix>> pool_prefixes(const v1::NaptPool& pool) {
  std::vector<Prefix> out;
  for (const auto& a : pool.addresses()) {
    if (auto ip = parse_ipv4(a)) {
      out.push_back({*ip, 32});
    } else if (auto p = parse_prefix(a)) {
      out.push_back(*p);
    } else {
      return std::nullopt;
    }
  }
  return out;
}

namespace {

// Whether a core prefix clashes with another mapping's or pool's; names the other.
std::optional<std::string> core_clash(const Intent& in, uint32_t address, uint8_t length,
                                      const std::string& except_tenant) {
  for (const auto& [key, m] : in.static_mappings) {
    auto c = parse_prefix(m.core_prefix());
    if (overlap(address, length, c->address, c->length))
      return "static mapping " + quoted(m.tenant()) + " " + m.tenant_prefix() + " -> " + m.core_prefix();
  }
  for (const auto& [tenant, pool] : in.napt_pools) {
    if (tenant == except_tenant) continue;
    auto prefixes = pool_prefixes(pool);
    for (const auto& p : *prefixes)
      if (overlap(address, length, p.address, p.length)) return "the NAPT pool of " + quoted(tenant);
  }
  return std::nullopt;
}

// These kinds are few: a page token is how many objects earlier pages held, in key order.
// `of` names the tenant an object is listed under (the request's tenant filters on it).
template <typename Map, typename Of, typename Set>
void list_few(const Map& map, const v1::ListRequest& request, uint32_t page, v1::ListResponse& out, Of of, Set set) {
  const std::string& token = request.page_token();
  size_t start = token.empty() ? 0 : std::stoul(token), total = 0;
  for (const auto& [k, v] : map) {
    if (!request.tenant().empty() && of(k, v) != request.tenant()) continue;
    if (total++ >= start && uint32_t(out.objects_size()) < page) set(*out.add_objects(), v);
  }
  if (start + size_t(out.objects_size()) < total) out.set_next_page_token(std::to_string(start + out.objects_size()));
}

// --- Static mapping -------------------------------------------------------------------------

std::optional<v1::Object> find_static_mapping(const Intent& in, const Intent::Key& k) {
  return find_in(in.static_mappings, k.mapping,
                 [](v1::Object& x, const v1::StaticMapping& v) { *x.mutable_static_mapping() = v; });
}

std::optional<Error> check_static_mapping(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& m = o.static_mapping();
  if (m.tenant().empty()) return invalid(path + ".tenant", "is required");
  auto t = in.tenants.find(m.tenant());
  if (t == in.tenants.end()) return invalid(path + ".tenant", "no tenant named " + quoted(m.tenant()));
  if (t->second.core()) return invalid(path + ".tenant", quoted(m.tenant()) + " is the core: it is not translated");
  Prefix inside, core;
  if (auto e = network(path + ".tenant_prefix", m.tenant_prefix(), inside)) return e;
  if (auto e = network(path + ".core_prefix", m.core_prefix(), core)) return e;
  if (inside.length != core.length)
    return invalid(path + ".core_prefix", "is a /" + std::to_string(core.length) + "; tenant_prefix is a /" +
                                              std::to_string(inside.length) + " (a 1:1 mapping needs the same length)");
  for (const auto& [key, other] : in.static_mappings)
    if (key.tenant == m.tenant() && overlap(inside.address, inside.length, key.address, key.length))
      return invalid(path + ".tenant_prefix", "overlaps the tenant's mapping of " + other.tenant_prefix());
  if (auto clash = core_clash(in, core.address, core.length, ""))
    return invalid(path + ".core_prefix", "overlaps " + *clash + " (core addresses must be unique)");
  return std::nullopt;
}

// --- NAPT pool ------------------------------------------------------------------------------

std::optional<v1::Object> find_napt_pool(const Intent& in, const Intent::Key& k) {
  return find_in(in.napt_pools, k.name, [](v1::Object& x, const v1::NaptPool& v) { *x.mutable_napt_pool() = v; });
}

std::optional<Error> check_napt_pool(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& p = o.napt_pool();
  auto t = in.tenants.find(p.tenant());
  if (t == in.tenants.end()) return invalid(path + ".tenant", "no tenant named " + quoted(p.tenant()));
  if (t->second.core()) return invalid(path + ".tenant", quoted(p.tenant()) + " is the core: it is not translated");
  if (p.addresses().empty()) return invalid(path + ".addresses", "at least one core address is required");
  uint64_t count = 0;
  std::vector<Prefix> seen;
  for (int i = 0; i < p.addresses_size(); i++) {
    std::string at = path + ".addresses[" + std::to_string(i) + "]";
    Prefix prefix{};
    if (auto ip = parse_ipv4(p.addresses(i))) {
      prefix = {*ip, 32};
    } else if (auto e = network(at, p.addresses(i), prefix)) {
      return invalid(at, quoted(p.addresses(i)) + " is not an address or a prefix like 100.64.9.0/30");
    }
    if (prefix.length < 20) return invalid(at, "is larger than a /20");
    for (const auto& s : seen)
      if (overlap(prefix.address, prefix.length, s.address, s.length))
        return invalid(at, "overlaps another address of the pool");
    if (auto clash = core_clash(in, prefix.address, prefix.length, p.tenant()))
      return invalid(at, "overlaps " + *clash + " (core addresses must be unique)");
    seen.push_back(prefix);
    count += uint64_t(1) << (32 - prefix.length);
  }
  if (count > max_pool_addresses)
    return invalid(path + ".addresses",
                   std::to_string(count) + " addresses; at most " + std::to_string(max_pool_addresses));
  if (auto e = range(path + ".port_low", p.port_low(), 0, 65535)) return e;
  if (auto e = range(path + ".port_high", p.port_high(), 0, 65535)) return e;
  uint32_t low = p.port_low() ? p.port_low() : 1024, high = p.port_high() ? p.port_high() : 65535;
  if (low > high)
    return invalid(path + ".port_low", std::to_string(low) + " is above port_high " + std::to_string(high));
  return std::nullopt;
}

// --- Policy rule ----------------------------------------------------------------------------

std::optional<v1::Object> find_policy_rule(const Intent& in, const Intent::Key& k) {
  return find_in(in.policy_rules, k.name, [](v1::Object& x, const v1::PolicyRule& v) { *x.mutable_policy_rule() = v; });
}

void count_rule_tenants(Intent& in, const v1::PolicyRule& r, int delta) {
  if (!r.from_tenant().empty()) count(in.tenant_users, r.from_tenant(), delta);
  if (!r.to_tenant().empty()) count(in.tenant_users, r.to_tenant(), delta);
}

std::optional<Error> check_policy_rule(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& r = o.policy_rule();
  if (!r.from_tenant().empty() && !in.tenants.count(r.from_tenant()))
    return invalid(path + ".from_tenant", "no tenant named " + quoted(r.from_tenant()));
  if (!r.to_tenant().empty() && !in.tenants.count(r.to_tenant()))
    return invalid(path + ".to_tenant", "no tenant named " + quoted(r.to_tenant()));
  if (!r.destination_prefix().empty()) {
    Prefix p;
    if (auto e = network(path + ".destination_prefix", r.destination_prefix(), p)) return e;
  }
  if (auto e = range(path + ".protocol", r.protocol(), 0, 255)) return e;
  if (auto e = range(path + ".port_low", r.port_low(), 0, 65535)) return e;
  if (auto e = range(path + ".port_high", r.port_high(), 0, 65535)) return e;
  if (r.port_low() || r.port_high()) {
    if (r.protocol() != 6 && r.protocol() != 17)
      return invalid(path + ".port_low", "ports need protocol 6 (TCP) or 17 (UDP)");
    if (r.port_low() > r.port_high())
      return invalid(path + ".port_low",
                     std::to_string(r.port_low()) + " is above port_high " + std::to_string(r.port_high()));
  }
  if (!r.policer().empty()) {
    // The flows it permits are the policer's class: a policer of no tenant's ingress.
    const v1::Policer* p = nullptr;
    if (auto all = in.named.find(v1::Object::kPolicer); all != in.named.end())
      if (auto it = all->second.find(r.policer()); it != all->second.end()) p = &it->second.policer();
    if (!p) return invalid(path + ".policer", "no policer named " + quoted(r.policer()));
    if (!p->tenant().empty())
      return invalid(path + ".policer", quoted(r.policer()) + " polices tenant " + quoted(p->tenant()) +
                                            "'s ingress; a rule's policer has no tenant");
    if (!r.permit()) return invalid(path + ".policer", "a deny rule's flows never cross");
  }
  if (!r.shaper_class().empty()) {
    // Queued in that class on whichever shaped interface the flows leave by: one must have it.
    bool found = false;
    if (auto all = in.named.find(v1::Object::kShaper); all != in.named.end())
      for (const auto& shaper : all->second)
        for (const auto& c : shaper.second.shaper().classes()) found |= c.name() == r.shaper_class();
    if (!found) return invalid(path + ".shaper_class", "no shaper has a class named " + quoted(r.shaper_class()));
    if (!r.permit()) return invalid(path + ".shaper_class", "a deny rule's flows never cross");
  }
  if (in.policy_rules.size() >= max_policy_rules)
    return Error{Code::resource_exhausted, path + ": more than " + std::to_string(max_policy_rules) + " policy rules"};
  return std::nullopt;
}

// --- Counters ---------------------------------------------------------------------------

// Crossing the core, by origin tenant (the workers' Counters::Nat), while a core tenant exists:
// the static mapping kind's, the first of the feature's. Counts since the clear; how many
// sessions and mappings exist now is no count: a clear keeps it, a slot's base does not.
constexpr const char* refused = "New flows refused, by origin tenant and reason.";
const CounterColumn nat_columns[] = {
    {.field = "sessions",
     .help = "Sessions crossing the core now, by origin tenant.",
     .gauge = true,
     .metric = "medix_nat_sessions"},
    {"sessions_created", "Sessions created, by origin tenant."},
    {.field = "translated",
     .help = "Packets from the tenant that crossed the core.",
     .metric = "medix_nat_translated_packets_total"},
    {.field = "napt_mappings", .help = "NAPT address and port pairs in use now.", .gauge = true},
    {.field = "pool_exhausted",
     .help = refused,
     .metric = "medix_nat_refused_total",
     .label = "reason",
     .value = "pool_exhausted"},
    {.field = "session_limit",
     .help = refused,
     .metric = "medix_nat_refused_total",
     .label = "reason",
     .value = "session_limit"},
    {.field = "no_mapping",
     .help = refused,
     .metric = "medix_nat_refused_total",
     .label = "reason",
     .value = "no_mapping"},
    {.field = "policy_denied",
     .help = refused,
     .metric = "medix_nat_refused_total",
     .label = "reason",
     .value = "policy_denied"},
};

const KindCounters nat_counters = {
    .list = "nat",
    .columns = nat_columns,
    .read =
        [](const CounterSource& s, std::vector<CounterRow>& rows) {
          const Tables& t = s.tables;
          if (!t.nat) return;
          auto gauge = [](uint64_t up, uint64_t down) { return up > down ? up - down : 0; };
          for (size_t i = 0; i < t.tenants.size(); i++) {
            if (!t.tenants[i].live) continue;
            const Counters::Nat& n = s.since->nat[i];
            const Counters::Nat &raw = s.raw->nat[i], &base = s.bases->nat[i];
            rows.push_back(
                {t.tenants[i].name,
                 {gauge(raw.sessions_created - base.sessions_created, raw.sessions_ended - base.sessions_ended),
                  n.sessions_created, n.translated,
                  gauge(raw.mappings_created - base.mappings_created, raw.mappings_ended - base.mappings_ended),
                  n.pool_exhausted, n.session_limit, n.no_mapping, n.policy_denied}});
          }
        },
    .clear = KindCounters::Clear::in_source,
    .prefix = "nat",
    .label = "tenant",
    .name_field = "tenant",
};

// A rule's new flows (sessions) it decided, and its action; neither is a Prometheus family.
const CounterColumn policy_rule_columns[] = {
    {.field = "matched", .help = "", .metric = ""},
    {.field = "permit", .help = "", .gauge = true, .metric = "", .by_fill = true},
};

const KindCounters policy_rule_counters = {
    .list = "policy_rules",
    .columns = policy_rule_columns,
    .read =
        [](const CounterSource& s, std::vector<CounterRow>& rows) {
          for (const auto& r : s.tables.rules) rows.push_back({r.name, {s.since->rule_matched[r.slot], r.permit}});
        },
    .clear = KindCounters::Clear::in_source,
    .fill = [](const CounterRow& row,
               google::protobuf::Message& out) { static_cast<v1::PolicyRuleCounters&>(out).set_permit(row.values[1]); },
};

}  // namespace

const Kind static_mapping_kind = {
    .object = v1::Object::kStaticMapping,
    .list_kind = v1::STATIC_MAPPING,
    .name = "static_mapping",
    .plural = "static_mappings",
    .config_size = [](const v1::Config& c) { return c.static_mappings_size(); },
    .take = [](v1::Config& c, int i,
               v1::Object& o) { *o.mutable_static_mapping() = std::move(*c.mutable_static_mappings(i)); },
    .clear_output = nullptr,
    .check_key = [](const v1::Object& o, const std::string& path) -> std::optional<Error> {
      if (o.static_mapping().tenant().empty()) return invalid(path + ".tenant", "is required");
      if (!mapping_key(o.static_mapping()))
        return invalid(path + ".tenant_prefix",
                       quoted(o.static_mapping().tenant_prefix()) + " is not a prefix like 10.1.0.0/16");
      return std::nullopt;
    },
    .key =
        [](const v1::Object& o) {
          Intent::Key k{v1::Object::kStaticMapping, {}};
          k.mapping = *mapping_key(o.static_mapping());
          return k;
        },
    .find = find_static_mapping,
    .put =
        [](Intent& in, const v1::Object& o) {
          in.static_mappings[*mapping_key(o.static_mapping())] = o.static_mapping();
          count(in.tenant_users, o.static_mapping().tenant(), 1);
        },
    .erase =
        [](Intent& in, const v1::Object& o) {
          in.static_mappings.erase(*mapping_key(o.static_mapping()));
          count(in.tenant_users, o.static_mapping().tenant(), -1);
        },
    .validate = check_static_mapping,
    .check_update = nullptr,
    .check_delete = nullptr,
    .check_final = nullptr,
    .error_name = nullptr,
    // The core's translations and policy, rebuilt whole when tenants, mappings, pools or rules change.
    .build = {{Phase::crossing, nat::build_translations}},
    .reclaim = nullptr,
    .diff = nullptr,
    .get = [](const Intent& in, const Committer&, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      auto k = mapping_key(key.static_mapping());
      if (!k)
        return Error{Code::invalid_argument, "key.static_mapping.tenant_prefix: \"" +
                                                 key.static_mapping().tenant_prefix() + "\" is not a prefix"};
      if (auto it = in.static_mappings.find(*k); it != in.static_mappings.end())
        *out.mutable_static_mapping() = it->second;
      return std::nullopt;
    },
    .list = [](const Intent& in, const Committer&, const v1::ListRequest& request, uint32_t page,
               v1::ListResponse& out) -> std::optional<Error> {
      list_few(
          in.static_mappings, request, page, out, [](const MappingKey& k, const auto&) { return k.tenant; },
          [](v1::Object& o, const v1::StaticMapping& m) { *o.mutable_static_mapping() = m; });
      return std::nullopt;
    },
    .counters = &nat_counters,
};

const Kind napt_pool_kind = {
    .object = v1::Object::kNaptPool,
    .list_kind = v1::NAPT_POOL,
    .name = "napt_pool",
    .plural = "napt_pools",
    .config_size = [](const v1::Config& c) { return c.napt_pools_size(); },
    .take = [](v1::Config& c, int i, v1::Object& o) { *o.mutable_napt_pool() = std::move(*c.mutable_napt_pools(i)); },
    .clear_output = nullptr,
    .check_key = [](const v1::Object& o,
                    const std::string& path) { return name(path + ".tenant", o.napt_pool().tenant()); },
    .key =
        [](const v1::Object& o) {
          return Intent::Key{v1::Object::kNaptPool, o.napt_pool().tenant()};
        },
    .find = find_napt_pool,
    .put =
        [](Intent& in, const v1::Object& o) {
          in.napt_pools[o.napt_pool().tenant()] = o.napt_pool();
          count(in.tenant_users, o.napt_pool().tenant(), 1);
        },
    .erase =
        [](Intent& in, const v1::Object& o) {
          in.napt_pools.erase(o.napt_pool().tenant());
          count(in.tenant_users, o.napt_pool().tenant(), -1);
        },
    .validate = check_napt_pool,
    .check_update = nullptr,
    .check_delete = nullptr,
    .check_final = nullptr,
    .error_name = nullptr,
    .build = {},
    .reclaim = nullptr,
    .diff = nullptr,
    .get = [](const Intent& in, const Committer&, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      if (auto it = in.napt_pools.find(key.napt_pool().tenant()); it != in.napt_pools.end())
        *out.mutable_napt_pool() = it->second;
      return std::nullopt;
    },
    .list = [](const Intent& in, const Committer&, const v1::ListRequest& request, uint32_t page,
               v1::ListResponse& out) -> std::optional<Error> {
      list_few(
          in.napt_pools, request, page, out, [](const std::string& k, const auto&) { return k; },
          [](v1::Object& o, const v1::NaptPool& p) { *o.mutable_napt_pool() = p; });
      return std::nullopt;
    },
};

const Kind policy_rule_kind = {
    .object = v1::Object::kPolicyRule,
    .list_kind = v1::POLICY_RULE,
    .name = "policy_rule",
    .plural = "policy_rules",
    .config_size = [](const v1::Config& c) { return c.policy_rules_size(); },
    .take = [](v1::Config& c, int i,
               v1::Object& o) { *o.mutable_policy_rule() = std::move(*c.mutable_policy_rules(i)); },
    .clear_output = nullptr,
    .check_key = [](const v1::Object& o,
                    const std::string& path) { return name(path + ".name", o.policy_rule().name()); },
    .key =
        [](const v1::Object& o) {
          return Intent::Key{v1::Object::kPolicyRule, o.policy_rule().name()};
        },
    .find = find_policy_rule,
    .put =
        [](Intent& in, const v1::Object& o) {
          in.policy_rules[o.policy_rule().name()] = o.policy_rule();
          count_rule_tenants(in, o.policy_rule(), 1);
        },
    .erase =
        [](Intent& in, const v1::Object& o) {
          in.policy_rules.erase(o.policy_rule().name());
          count_rule_tenants(in, o.policy_rule(), -1);
        },
    .validate = check_policy_rule,
    .check_update = nullptr,
    .check_delete = nullptr,
    .check_final = nullptr,
    .error_name = nullptr,
    .build = {},
    .reclaim = nullptr,
    .diff = nullptr,
    .get = [](const Intent& in, const Committer&, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      if (auto it = in.policy_rules.find(key.policy_rule().name()); it != in.policy_rules.end())
        *out.mutable_policy_rule() = it->second;
      return std::nullopt;
    },
    // A rule is listed under its from_tenant, or its to_tenant when the other is not the one asked for.
    .list = [](const Intent& in, const Committer&, const v1::ListRequest& request, uint32_t page,
               v1::ListResponse& out) -> std::optional<Error> {
      const std::string& tenant = request.tenant();
      list_few(
          in.policy_rules, request, page, out,
          [&](const std::string&, const v1::PolicyRule& r) {
            return tenant.empty() || r.from_tenant() == tenant ? tenant : r.to_tenant();
          },
          [](v1::Object& o, const v1::PolicyRule& r) { *o.mutable_policy_rule() = r; });
      return std::nullopt;
    },
    .counters = &policy_rule_counters,
};

}  // namespace medix::dp
