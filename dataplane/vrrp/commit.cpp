#include "vrrp/commit.h"

#include <algorithm>

#include "control/build.h"
#include "ip/commit.h"

namespace medix::dp {

// The local route a virtual address makes: the same entry an interface's own address adds.
void Committer::Build::contribute_local(uint16_t tenant, uint32_t address, bool add) {
  auto& automatic = ip_kept().tenants[tenant].automatic;
  auto& list = automatic[{address, 32}];
  std::pair<int, uint16_t> local{0, uint16_t(UINT16_MAX)};
  if (add) {
    list.push_back(local);
    std::stable_sort(list.begin(), list.end(), [](auto& x, auto& y) { return x.first < y.first; });
  } else if (auto it = std::find(list.begin(), list.end(), local); it != list.end()) {
    list.erase(it);
  }
  if (list.empty()) automatic.erase({address, 32});
  affected.insert({tenant, address, 32});
}

}  // namespace medix::dp

namespace medix::dp::vrrp {

std::optional<Error> build_addresses(Committer::Build& b) {
  const auto& changes = b.diff.of(v1::Object::kVrrpInstance);
  if (changes.empty()) return std::nullopt;
  std::vector<std::tuple<uint16_t, uint32_t, bool>> done;
  for (const auto& [key, change] : changes) {
    if (change.before) {
      const auto& before = b.c.current()->vrrp.instances;
      auto it =
          std::find_if(before.begin(), before.end(), [&name = key.name](const Instance& i) { return i.name == name; });
      if (it != before.end())
        for (unsigned k = 0; k < it->n_addresses; k++) done.push_back({it->tenant, it->addresses[k], false});
    }
    if (change.after) {
      const v1::VrrpInstance& v = change.after->vrrp_instance();
      uint16_t tenant = b.tenant_of(b.intent.interfaces.at(v.interface()).tenant());
      for (const auto& a : v.addresses()) done.push_back({tenant, *parse_ipv4(a), true});
    }
  }
  for (auto [tenant, address, add] : done) b.contribute_local(tenant, address, add);
  b.undo.push_back([&b, done] {
    for (auto it = done.rbegin(); it != done.rend(); ++it)
      b.contribute_local(std::get<0>(*it), std::get<1>(*it), !std::get<2>(*it));
  });
  return std::nullopt;
}

std::optional<Error> build_instances(Committer::Build& b) {
  if (b.diff.of(v1::Object::kVrrpInstance).empty() && b.diff.of(v1::Object::kInterface).empty() &&
      b.diff.of(v1::Object::kTunnel).empty())
    return std::nullopt;
  const auto& before = b.c.current()->vrrp.instances;
  std::vector<Instance> next;
  auto all = b.intent.named.find(v1::Object::kVrrpInstance);
  if (all != b.intent.named.end())
    for (const auto& [name, o] : all->second) {
      const v1::VrrpInstance& v = o.vrrp_instance();
      Instance i;
      i.name = name;
      i.interface = b.interface_slot_of(v.interface());
      i.interface_uid = b.next->interfaces[i.interface].uid;
      i.tenant = b.next->interfaces[i.interface].tenant;
      i.vrid = uint8_t(v.vrid());
      i.priority = uint8_t(v.priority() ? v.priority() : 100);
      i.interval_cs = uint16_t(v.advert_interval_cs() ? v.advert_interval_cs() : 100);
      i.preempt = v.preempt();
      i.group = v.group();
      for (const auto& a : v.addresses()) i.addresses[i.n_addresses++] = *parse_ipv4(a);
      for (const auto& t : v.track())
        i.tracks[i.n_tracks++] = {b.interface_slot_of(t.interface()), uint8_t(t.weight())};
      auto old =
          std::find_if(before.begin(), before.end(), [&name = name](const Instance& x) { return x.name == name; });
      if (old != before.end() && old->interface_uid == i.interface_uid && old->vrid == i.vrid)
        i.live = old->live;
      else
        i.live = std::make_shared<Live>();
      next.push_back(std::move(i));
    }
  b.next->vrrp.instances = std::move(next);
  // Each interface's first instance gives forwarded frames their source while it is master.
  for (auto& f : b.next->interfaces) {
    f.vrrp_live = nullptr;
    f.vrrp_vrid = 0;
  }
  for (const auto& i : b.next->vrrp.instances) {
    InterfaceEntry& f = b.next->interfaces[i.interface];
    if (f.vrrp_live) continue;
    f.vrrp_live = i.live.get();
    f.vrrp_vrid = i.vrid;
  }
  return std::nullopt;
}

}  // namespace medix::dp::vrrp
