#include "arp/kinds.h"

#include <rte_ether.h>

#include "arp/commit.h"
#include "control/check.h"
#include "control/commit.h"

namespace medix::dp {
namespace {

std::optional<v1::Object> find_neighbour(const Intent& in, const Intent::Key& k) {
  return find_in(in.neighbours, k.neighbour, [](v1::Object& x, const v1::Neighbour& v) { *x.mutable_neighbour() = v; });
}

std::optional<Error> check_neighbour(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& n = o.neighbour();
  if (n.interface().empty()) return invalid(path + ".interface", "is required");
  if (!in.interfaces.count(n.interface()))
    return invalid(path + ".interface", "no interface named " + quoted(n.interface()));
  return mac(path + ".mac", n.mac());
}

// Static neighbours from the intent and learned ones from the table, in key order.
std::vector<v1::Neighbour> neighbours(const Intent& in, const Committer& c) {
  std::map<std::pair<std::string, uint32_t>, v1::Neighbour> all;
  for (const auto& [k, n] : in.neighbours) all[{k.interface, k.address}] = n;
  const Tables& t = *c.current();
  t.neighbours->for_each([&](const NeighbourSlotKey& k, const rte_ether_addr& mac, bool is_static) {
    if (is_static || k.interface >= t.interfaces.size()) return;
    v1::Neighbour n;
    n.set_interface(t.interfaces[k.interface].name);
    n.set_address(format_ipv4(k.address));
    char text[RTE_ETHER_ADDR_FMT_SIZE];
    rte_ether_format_addr(text, sizeof text, &mac);
    n.set_mac(text);
    n.set_learned(true);
    all.try_emplace({n.interface(), k.address}, n);
  });
  std::vector<v1::Neighbour> out;
  for (auto& [k, n] : all) out.push_back(std::move(n));
  return out;
}

std::optional<Error> get_neighbour(const Intent& in, const Committer& c, const v1::Object& key, v1::Object& out) {
  auto k = neighbour_key(key.neighbour());
  if (!k) return Error{Code::invalid_argument, "key.neighbour.address: is not an IPv4 address"};
  for (const auto& n : neighbours(in, c))
    if (n.interface() == key.neighbour().interface() && parse_ipv4(n.address()) == k->address) {
      *out.mutable_neighbour() = n;
      break;
    }
  return std::nullopt;
}

std::optional<Error> list_neighbours(const Intent& in, const Committer& c, const v1::ListRequest& request,
                                     uint32_t page, v1::ListResponse& out) {
  auto all = neighbours(in, c);
  const std::string& token = request.page_token();
  size_t start = token.empty() ? 0 : std::stoul(token);
  size_t i = start;
  for (; i < all.size() && uint32_t(out.objects_size()) < page; i++) *out.add_objects()->mutable_neighbour() = all[i];
  if (i < all.size()) out.set_next_page_token(std::to_string(i));
  return std::nullopt;
}

}  // namespace

const Kind neighbour_kind = {
    .object = v1::Object::kNeighbour,
    .list_kind = v1::NEIGHBOUR,
    .name = "neighbour",
    .plural = "neighbours",
    .config_size = [](const v1::Config& c) { return c.neighbours_size(); },
    .take = [](v1::Config& c, int i, v1::Object& o) { *o.mutable_neighbour() = std::move(*c.mutable_neighbours(i)); },
    .clear_output = [](v1::Object& o) { o.mutable_neighbour()->clear_learned(); },
    .check_key = [](const v1::Object& o, const std::string& path) -> std::optional<Error> {
      if (!neighbour_key(o.neighbour()))
        return invalid(path + ".address", quoted(o.neighbour().address()) + " is not an IPv4 address");
      return std::nullopt;
    },
    .key =
        [](const v1::Object& o) {
          Intent::Key k{v1::Object::kNeighbour, {}};
          k.neighbour = *neighbour_key(o.neighbour());
          return k;
        },
    .find = find_neighbour,
    .put =
        [](Intent& in, const v1::Object& o) {
          in.neighbours[*neighbour_key(o.neighbour())] = o.neighbour();
          count(in.interface_users, o.neighbour().interface(), 1);
        },
    .erase =
        [](Intent& in, const v1::Object& o) {
          in.neighbours.erase(*neighbour_key(o.neighbour()));
          count(in.interface_users, o.neighbour().interface(), -1);
        },
    .validate = check_neighbour,
    .check_update = nullptr,
    .check_delete = nullptr,
    .check_final = nullptr,
    .error_name = nullptr,
    .build = {{Phase::removals, arp::build_neighbours}, {Phase::last, arp::build_static_neighbours}},
    .reclaim = arp::reclaim_neighbours,
    .diff = nullptr,
    .get = get_neighbour,
    .list = list_neighbours,
};

}  // namespace medix::dp
