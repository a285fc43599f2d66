#include "ip/kinds.h"

#include <algorithm>

#include "control/check.h"
#include "ip/commit.h"
#include "l2/kinds.h"

namespace medix::dp {
namespace {

// --- Tenant ---------------------------------------------------------------------------------

std::optional<v1::Object> find_tenant(const Intent& in, const Intent::Key& k) {
  return find_in(in.tenants, k.name, [](v1::Object& x, const v1::Tenant& v) { *x.mutable_tenant() = v; });
}

std::optional<Error> check_tenant(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& t = o.tenant();
  if (auto e = range(path + ".max_routes", t.max_routes(), 0, 1u << 24)) return e;
  if (!v1::FibKind_IsValid(t.fib())) return invalid(path + ".fib", "is not a FIB kind");
  if (auto e = range(path + ".session_limit", t.session_limit(), 0, max_session_limit)) return e;
  if (t.core()) {
    for (const auto& [other, x] : in.tenants)
      if (x.core() && other != t.name())
        return invalid(path + ".core", "tenant " + quoted(other) + " is already the core (there is one)");
    if (in.napt_pools.count(t.name())) return invalid(path + ".core", "the tenant has a NAPT pool; the core has none");
    for (const auto& [key, m] : in.static_mappings)
      if (key.tenant == t.name()) return invalid(path + ".core", "the tenant has static mappings; the core has none");
  }
  if (in.tenants.size() >= max_tenants)
    return Error{Code::resource_exhausted, path + ": more than " + std::to_string(max_tenants) + " tenants"};
  return std::nullopt;
}

std::optional<Error> list_tenants(const Intent& in, const Committer&, const v1::ListRequest& request, uint32_t page,
                                  v1::ListResponse& out) {
  std::string last;
  for (auto it = in.tenants.upper_bound(request.page_token());
       it != in.tenants.end() && uint32_t(out.objects_size()) < page; ++it) {
    *out.add_objects()->mutable_tenant() = it->second;
    last = it->first;
  }
  if (!last.empty() && in.tenants.upper_bound(last) != in.tenants.end()) out.set_next_page_token(last);
  return std::nullopt;
}

// --- Route ----------------------------------------------------------------------------------

std::optional<v1::Object> find_route(const Intent& in, const Intent::Key& k) {
  return find_in(in.routes, k.route, [](v1::Object& x, const v1::Route& v) { *x.mutable_route() = v; });
}

// The route's (interface, next hop address), if it has a next hop.
std::optional<std::pair<std::string, uint32_t>> next_hop(const v1::Route& r) {
  if (!r.has_via() || r.via().address().empty()) return std::nullopt;
  auto a = parse_ipv4(r.via().address());
  if (!a) return std::nullopt;
  return std::pair{r.via().interface(), *a};
}

void put_route(Intent& in, const v1::Object& o) {
  const auto& r = o.route();
  in.routes[*route_key(r)] = r;
  in.tenant_routes[r.tenant()]++;
  count(in.tenant_users, r.tenant(), 1);
  if (r.has_via()) count(in.interface_users, r.via().interface(), 1);
  if (auto hop = next_hop(r)) in.next_hops[*hop]++;
  if (!r.next_tenant().empty()) count(in.tenant_users, r.next_tenant(), 1);
}

void erase_route(Intent& in, const v1::Object& o) {
  const auto& r = o.route();
  in.routes.erase(*route_key(r));
  if (--in.tenant_routes[r.tenant()] == 0) in.tenant_routes.erase(r.tenant());  // as count() does
  count(in.tenant_users, r.tenant(), -1);
  if (r.has_via()) count(in.interface_users, r.via().interface(), -1);
  if (auto hop = next_hop(r); hop && !--in.next_hops[*hop]) in.next_hops.erase(*hop);
  if (!r.next_tenant().empty()) count(in.tenant_users, r.next_tenant(), -1);
}

std::optional<Error> check_route(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& r = o.route();
  if (r.tenant().empty()) return invalid(path + ".tenant", "is required");
  auto tenant = in.tenants.find(r.tenant());
  if (tenant == in.tenants.end()) return invalid(path + ".tenant", "no tenant named " + quoted(r.tenant()));
  auto key = *route_key(r);
  uint32_t mask = key.length == 0 ? 0 : ~uint32_t(0) << (32 - key.length);
  if (key.address & ~mask)
    return invalid(path + ".prefix", quoted(r.prefix()) + " has host bits set (did you mean " +
                                         format_ipv4(key.address & mask) + "/" + std::to_string(key.length) + "?)");
  switch (r.target_case()) {
    case v1::Route::kVia: {
      const auto& via = r.via();
      if (via.interface().empty()) return invalid(path + ".via.interface", "is required");
      auto f = in.interfaces.find(via.interface());
      auto t = in.tunnels.find(via.interface());
      if (f == in.interfaces.end() && t == in.tunnels.end())
        return invalid(path + ".via.interface", "no interface or tunnel named " + quoted(via.interface()));
      const std::string& its = f != in.interfaces.end() ? f->second.tenant() : t->second.tenant();
      if (its != r.tenant())
        return invalid(path + ".via.interface", "interface " + quoted(via.interface()) + " is in tenant " +
                                                    quoted(its) + ", not " + quoted(r.tenant()) +
                                                    " (use next_tenant to leak)");
      if (!via.address().empty() && !parse_ipv4(via.address()))
        return invalid(path + ".via.address", quoted(via.address()) + " is not an IPv4 address");
      break;
    }
    case v1::Route::kNextTenant:
      if (!in.tenants.count(r.next_tenant()))
        return invalid(path + ".next_tenant", "no tenant named " + quoted(r.next_tenant()));
      if (r.next_tenant() == r.tenant()) return invalid(path + ".next_tenant", "is the route's own tenant");
      break;
    case v1::Route::kLocal:
    case v1::Route::kBlackhole: break;
    default: return invalid(path + ".target", "is required: one of via, next_tenant, local, blackhole");
  }
  uint32_t max_routes = max_routes_of(tenant->second);
  if (in.routes_in(r.tenant()) >= max_routes)
    return Error{Code::resource_exhausted, path + ": tenant " + quoted(r.tenant()) + " already has its max_routes (" +
                                               std::to_string(max_routes) + ") routes"};
  if (in.routes.size() >= max_routes_total)
    return Error{Code::resource_exhausted, path + ": medix-dp holds at most " + std::to_string(max_routes_total) +
                                               " routes, every tenant's together"};
  return std::nullopt;
}

// A next hop off the interface's subnets is refused, as a kernel refuses a gateway off-link:
// its ARP answer would never be learnt (arp_input learns only on-link senders). Judged on the
// whole transaction, so an interface's new subnet and its routes' new next hops may come in
// any order. A tunnel is point to point: any next hop.
std::optional<Error> check_next_hop(const Intent& in, const v1::Object& o, const std::string& path) {
  auto hop = next_hop(o.route());
  if (!hop) return std::nullopt;
  auto f = in.interfaces.find(hop->first);
  if (f == in.interfaces.end() || on_subnet(f->second, hop->second)) return std::nullopt;
  return invalid(path + ".via.address", format_ipv4(hop->second) + " is on no subnet of interface " +
                                            quoted(hop->first) + " (" + subnets_of(f->second) + ")");
}

// A config's routes in key order, those without a valid key first (their errors as the file
// orders them); stable, so a key given twice keeps its order.
void order_routes(std::span<Operation> ops) {
  struct Entry {
    std::optional<RouteKey> key;
    size_t index;
  };
  std::vector<Entry> order;
  order.reserve(ops.size());
  for (size_t i = 0; i < ops.size(); i++) order.push_back({route_key(ops[i].object.route()), i});
  std::stable_sort(order.begin(), order.end(), [](const Entry& a, const Entry& b) { return a.key < b.key; });
  std::vector<Operation> sorted;
  sorted.reserve(ops.size());
  for (const Entry& e : order) sorted.push_back(std::move(ops[e.index]));
  std::move(sorted.begin(), sorted.end(), ops.begin());
}

// Listing order and page tokens: the route's key as text, "tenant|address|length".
std::string route_token(const RouteKey& k) {
  return k.tenant + "|" + std::to_string(k.address) + "|" + std::to_string(k.length);
}

std::optional<Error> list_routes(const Intent& in, const Committer&, const v1::ListRequest& request, uint32_t page,
                                 v1::ListResponse& out) {
  const std::string& token = request.page_token();
  const std::string& tenant = request.tenant();
  std::string last;
  auto it = in.routes.begin();
  if (!token.empty()) {
    // token: "tenant|address|length" of the last route sent.
    auto a = token.find('|'), b = token.rfind('|');
    if (a == std::string::npos || a == b) return Error{Code::invalid_argument, "page_token: not one of ours"};
    RouteKey k{token.substr(0, a), uint32_t(std::stoul(token.substr(a + 1, b - a - 1))),
               uint8_t(std::stoul(token.substr(b + 1)))};
    it = in.routes.upper_bound(k);
  } else if (!tenant.empty()) {
    it = in.routes.lower_bound({tenant, 0, 0});
  }
  for (; it != in.routes.end() && uint32_t(out.objects_size()) < page; ++it) {
    if (!tenant.empty() && it->first.tenant != tenant) break;
    *out.add_objects()->mutable_route() = it->second;
    last = route_token(it->first);
  }
  if (uint32_t(out.objects_size()) >= page && it != in.routes.end() && (tenant.empty() || it->first.tenant == tenant))
    out.set_next_page_token(last);
  return std::nullopt;
}

// The workers' counters by tenant (Counters::Tenant), since the slot was taken or the
// counters cleared. What it was refused of the shared budgets is one family, by budget.
constexpr const char* refused = "What the tenant was refused of a shared budget (docs/fair-shares.md), by budget.";
constexpr const char* share_refused = "medix_tenant_share_refused_total";
const CounterColumn tenant_columns[] = {
    {"rx_packets", "Frames received on the tenant's interfaces."},
    {"tx_packets", "Packets forwarded out of the tenant's interfaces."},
    {"drops", "Packets dropped while in the tenant."},
    {.field = "icmp_sent", .help = "", .metric = ""},
    {.field = "icmp_rate_limited", .help = refused, .metric = share_refused, .label = "budget", .value = "icmp"},
    {.field = "arp_pending_limited",
     .help = refused,
     .metric = share_refused,
     .label = "budget",
     .value = "arp_pending"},
    {.field = "punt_policed", .help = refused, .metric = share_refused, .label = "budget", .value = "punt"},
    {.field = "fragments_limited",
     .help = refused,
     .metric = share_refused,
     .label = "budget",
     .value = "nat_fragments"},
    {.field = "buffer_guarded", .help = refused, .metric = share_refused, .label = "budget", .value = "packet_buffers"},
    {.field = "arp_requests_sent", .help = "", .metric = ""},
    {.field = "arp_replies_sent", .help = "", .metric = ""},
    {.field = "arp_replies_received", .help = "", .metric = ""},
};

const KindCounters tenant_counters = {
    .list = "tenants",
    .columns = tenant_columns,
    .read =
        [](const CounterSource& s, std::vector<CounterRow>& rows) {
          for (size_t i = 0; i < s.tables.tenants.size(); i++) {
            if (!s.tables.tenants[i].live) continue;
            const Counters::Tenant& x = s.since->tenants[i];
            rows.push_back({s.tables.tenants[i].name,
                            {x.rx_packets, x.tx_packets, x.drops, x.icmp_sent, x.icmp_rate_limited,
                             x.arp_pending_limited, x.punt_policed, x.fragments_limited, x.buffer_guarded,
                             x.arp_requests_sent, x.arp_replies_sent, x.arp_replies_received}});
          }
        },
    .clear = KindCounters::Clear::in_source,
};

}  // namespace

const Kind tenant_kind = {
    .object = v1::Object::kTenant,
    .list_kind = v1::TENANT,
    .name = "tenant",
    .plural = "tenants",
    .config_size = [](const v1::Config& c) { return c.tenants_size(); },
    .take = [](v1::Config& c, int i, v1::Object& o) { *o.mutable_tenant() = std::move(*c.mutable_tenants(i)); },
    .clear_output = nullptr,
    .check_key = [](const v1::Object& o, const std::string& path) { return name(path + ".name", o.tenant().name()); },
    .key =
        [](const v1::Object& o) {
          return Intent::Key{v1::Object::kTenant, o.tenant().name()};
        },
    .find = find_tenant,
    .put = [](Intent& in, const v1::Object& o) { in.tenants[o.tenant().name()] = o.tenant(); },
    .erase = [](Intent& in, const v1::Object& o) { in.tenants.erase(o.tenant().name()); },
    .validate = check_tenant,
    .check_update = [](const Intent&, const v1::Object& existing, const v1::Object& o,
                       const std::string& path) -> std::optional<Error> {
      if (o.tenant().max_routes() != existing.tenant().max_routes())
        return invalid(path + ".max_routes", "cannot change (its FIB is sized at creation)");
      if (o.tenant().fib() != existing.tenant().fib())
        return invalid(path + ".fib", "cannot change (its FIB is made at creation)");
      return std::nullopt;
    },
    .check_delete =
        [](const Intent& in, const v1::Object& o, const std::string& path) {
          return in_use(path, "tenant", o.tenant().name(), users(in.tenant_users, o.tenant().name()));
        },
    .check_final = nullptr,
    .error_name = [](const v1::Object& o) { return o.tenant().name(); },
    .build = {{Phase::slots, ip::build_tenants}},
    .reclaim = ip::reclaim_tenants,
    .diff = nullptr,
    .get = [](const Intent& in, const Committer&, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      if (auto it = in.tenants.find(key.tenant().name()); it != in.tenants.end()) *out.mutable_tenant() = it->second;
      return std::nullopt;
    },
    .list = list_tenants,
    .counters = &tenant_counters,
};

const Kind route_kind = {
    .object = v1::Object::kRoute,
    .list_kind = v1::ROUTE,
    .name = "route",
    .plural = "routes",
    .config_size = [](const v1::Config& c) { return c.routes_size(); },
    .take = [](v1::Config& c, int i, v1::Object& o) { *o.mutable_route() = std::move(*c.mutable_routes(i)); },
    .order_config = order_routes,
    .clear_output = nullptr,
    .check_key = [](const v1::Object& o, const std::string& path) -> std::optional<Error> {
      if (!route_key(o.route()))
        return invalid(path + ".prefix", quoted(o.route().prefix()) + " is not a prefix like 10.1.0.0/16");
      return std::nullopt;
    },
    .key =
        [](const v1::Object& o) {
          Intent::Key k{v1::Object::kRoute, {}};
          k.route = *route_key(o.route());
          return k;
        },
    .find = find_route,
    .put = put_route,
    .erase = erase_route,
    .validate = check_route,
    .check_update = nullptr,
    .check_delete = nullptr,
    .check_final = check_next_hop,
    .error_name = [](const v1::Object& o) { return o.route().tenant(); },
    // Only the key: there may be millions, and the committer reads them from the intent.
    .build = {{Phase::routes, ip::build_routes}},
    .reclaim = ip::reclaim_routes,
    .diff = [](Diff& d, const Intent::Key& k) { d.routes.insert(k.route); },
    .get = [](const Intent& in, const Committer&, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      auto k = route_key(key.route());
      if (!k)
        return Error{Code::invalid_argument, "key.route.prefix: \"" + key.route().prefix() + "\" is not a prefix"};
      if (auto it = in.routes.find(*k); it != in.routes.end()) *out.mutable_route() = it->second;
      return std::nullopt;
    },
    .list = list_routes,
};

}  // namespace medix::dp
