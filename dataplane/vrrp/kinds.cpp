#include "vrrp/kinds.h"

#include "control/check.h"
#include "vrrp/commit.h"
#include "vrrp/tables.h"

namespace medix::dp {
namespace {

const std::map<std::string, v1::Object> none;

const std::map<std::string, v1::Object>& instances(const Intent& in) {
  auto it = in.named.find(v1::Object::kVrrpInstance);
  return it == in.named.end() ? none : it->second;
}

std::optional<Error> check_instance(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& v = o.vrrp_instance();
  if (v.interface().empty()) return invalid(path + ".interface", "is required");
  if (!in.interfaces.count(v.interface()))
    return invalid(path + ".interface", "no interface named " + quoted(v.interface()));
  if (auto e = range(path + ".vrid", v.vrid(), 1, 255)) return e;
  if (v.priority() == 255)
    return invalid(path + ".priority", "255 is the address owner's, which is not built (use 1..254)");
  if (v.priority() != 0)
    if (auto e = range(path + ".priority", v.priority(), 1, 254)) return e;
  if (v.advert_interval_cs() != 0)
    if (auto e = range(path + ".advert_interval_cs", v.advert_interval_cs(), 1, 4095)) return e;
  if (!v.group().empty())
    if (auto e = name(path + ".group", v.group())) return e;
  if (v.addresses_size() == 0) return invalid(path + ".addresses", "at least one virtual address is required");
  if (v.addresses_size() > int(vrrp::max_addresses))
    return invalid(path + ".addresses", "at most " + std::to_string(vrrp::max_addresses) + " addresses");
  for (int i = 0; i < v.addresses_size(); i++) {
    std::string at = path + ".addresses[" + std::to_string(i) + "]";
    auto a = medix::common::parse_ipv4(v.addresses(i));
    if (!a) return invalid(at, quoted(v.addresses(i)) + " is not an IPv4 address");
    uint8_t first = uint8_t(*a >> 24);
    if (*a == 0 || first == 0 || first == 127 || first >= 224)
      return invalid(at, v.addresses(i) + " is not a unicast host address");
    for (int j = 0; j < i; j++)
      if (v.addresses(j) == v.addresses(i)) return invalid(at, v.addresses(i) + " is listed twice");
  }
  if (v.track_size() > int(vrrp::max_tracks))
    return invalid(path + ".track", "at most " + std::to_string(vrrp::max_tracks) + " tracked interfaces");
  for (int i = 0; i < v.track_size(); i++) {
    std::string at = path + ".track[" + std::to_string(i) + "]";
    const auto& t = v.track(i);
    if (!in.interfaces.count(t.interface()))
      return invalid(at + ".interface", "no interface named " + quoted(t.interface()));
    if (auto e = range(at + ".weight", t.weight(), 0, 253)) return e;
  }
  const std::string& tenant = in.interfaces.at(v.interface()).tenant();
  for (const auto& [other_name, other] : instances(in)) {
    const auto& w = other.vrrp_instance();
    if (w.interface() == v.interface() && w.vrid() == v.vrid())
      return invalid(path + ".vrid", "instance " + quoted(other_name) + " has VRID " + std::to_string(v.vrid()) +
                                         " on interface " + quoted(v.interface()) + " already");
    if (in.interfaces.count(w.interface()) && in.interfaces.at(w.interface()).tenant() == tenant)
      for (const auto& a : v.addresses())
        for (const auto& b : w.addresses())
          if (a == b)
            return invalid(path + ".addresses",
                           a + " is a virtual address of instance " + quoted(other_name) + " in the same tenant");
  }
  return std::nullopt;
}

// Judged once the transaction is in: the interface's addresses may change with it.
std::optional<Error> check_addresses(const Intent& in, const v1::Object& o, const std::string& path) {
  const auto& v = o.vrrp_instance();
  auto f = in.interfaces.find(v.interface());
  if (f == in.interfaces.end()) return std::nullopt;  // refused by its DELETE's users count
  if (f->second.addresses_size() == 0)
    return invalid(path + ".interface",
                   quoted(v.interface()) + " has no address: adverts are sent from its first address");
  for (int i = 0; i < v.addresses_size(); i++) {
    uint32_t a = *medix::common::parse_ipv4(v.addresses(i));
    bool on_link = false;
    for (const auto& s : f->second.addresses()) {
      auto p = *medix::common::parse_prefix(s);
      if (p.address == a)
        return invalid(path + ".addresses[" + std::to_string(i) + "]",
                       v.addresses(i) + " is interface " + quoted(v.interface()) + "'s own address");
      if (overlap(a, 32, p.address, p.length)) on_link = true;
    }
    if (!on_link)
      return invalid(path + ".addresses[" + std::to_string(i) + "]",
                     v.addresses(i) + " is on none of interface " + quoted(v.interface()) + "'s subnets");
  }
  return std::nullopt;
}

void count_users(Intent& in, const v1::VrrpInstance& v, int delta) {
  count(in.interface_users, v.interface(), delta);
  for (const auto& t : v.track()) count(in.interface_users, t.interface(), delta);
}

}  // namespace

const Kind vrrp_instance_kind = {
    .object = v1::Object::kVrrpInstance,
    .list_kind = v1::VRRP_INSTANCE,
    .name = "vrrp_instance",
    .plural = "vrrp_instances",
    .config_size = [](const v1::Config& c) { return c.vrrp_instances_size(); },
    .take = [](v1::Config& c, int i,
               v1::Object& o) { *o.mutable_vrrp_instance() = std::move(*c.mutable_vrrp_instances(i)); },
    .clear_output = nullptr,
    .check_key = [](const v1::Object& o,
                    const std::string& path) { return name(path + ".name", o.vrrp_instance().name()); },
    .key =
        [](const v1::Object& o) {
          return Intent::Key{v1::Object::kVrrpInstance, o.vrrp_instance().name()};
        },
    .find = [](const Intent& in, const Intent::Key& k) -> std::optional<v1::Object> {
      const auto& all = instances(in);
      auto it = all.find(k.name);
      if (it == all.end()) return std::nullopt;
      return it->second;
    },
    .put =
        [](Intent& in, const v1::Object& o) {
          in.named[v1::Object::kVrrpInstance][o.vrrp_instance().name()] = o;
          count_users(in, o.vrrp_instance(), 1);
        },
    .erase =
        [](Intent& in, const v1::Object& o) {
          in.named[v1::Object::kVrrpInstance].erase(o.vrrp_instance().name());
          count_users(in, o.vrrp_instance(), -1);
        },
    .validate = check_instance,
    .check_update = nullptr,
    .check_delete = nullptr,
    .check_final = check_addresses,
    .error_name = [](const v1::Object& o) { return o.vrrp_instance().name(); },
    .build = {{Phase::attachments, vrrp::build_addresses}, {Phase::last, vrrp::build_instances}},
    .reclaim = nullptr,  // a generation's instances go with it; the runner lets go of the state
    .diff = nullptr,
    .get = [](const Intent& in, const Committer&, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      const auto& all = instances(in);
      if (auto it = all.find(key.vrrp_instance().name()); it != all.end()) out = it->second;
      return std::nullopt;
    },
    .list = [](const Intent& in, const Committer&, const v1::ListRequest& request, uint32_t page,
               v1::ListResponse& out) -> std::optional<Error> {
      const std::string& token = request.page_token();
      size_t start = token.empty() ? 0 : std::stoul(token), total = 0;
      for (const auto& [name, o] : instances(in)) {
        if (!request.tenant().empty() && in.interfaces.count(o.vrrp_instance().interface()) &&
            in.interfaces.at(o.vrrp_instance().interface()).tenant() != request.tenant())
          continue;
        if (total++ >= start && uint32_t(out.objects_size()) < page) *out.add_objects() = o;
      }
      if (start + size_t(out.objects_size()) < total)
        out.set_next_page_token(std::to_string(start + out.objects_size()));
      return std::nullopt;
    },
};

}  // namespace medix::dp
