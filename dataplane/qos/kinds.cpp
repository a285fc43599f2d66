#include "qos/kinds.h"

#include <algorithm>

#include "control/check.h"
#include "qos/commit.h"

namespace medix::dp {
namespace {

const std::map<std::string, v1::Object> none;
// Bytes a second; rte_meter keeps rates in 64 bits, buckets in 32-bit sizes.
constexpr uint64_t max_rate = 1'250'000'000'000;  // 10 Tbit/s

const std::map<std::string, v1::Object>& policers(const Intent& in) {
  auto it = in.named.find(v1::Object::kPolicer);
  return it == in.named.end() ? none : it->second;
}

// The largest L3 MTU a packet of the class may have: the interface's, or the largest of the
// tenant's interfaces, or of all for a rule's class (a burst smaller than one packet would
// never let it be green).
uint32_t class_mtu(const Intent& in, const v1::Policer& p) {
  auto mtu_of = [&](const v1::Interface& f) -> uint32_t {
    if (f.mtu()) return f.mtu();
    auto port = in.ports.find(f.port());
    return port != in.ports.end() && port->second.mtu() ? port->second.mtu() : 1500;
  };
  if (!p.interface().empty()) return mtu_of(in.interfaces.at(p.interface()));
  uint32_t mtu = 1500;
  for (const auto& [name, f] : in.interfaces)
    if (p.tenant().empty() || f.tenant() == p.tenant()) mtu = std::max(mtu, mtu_of(f));
  return mtu;
}

std::optional<Error> check_action(const std::string& path, const v1::PolicerColourAction& a) {
  if (!v1::PolicerAction_IsValid(a.action())) return invalid(path + ".action", "is not a policer action");
  if (a.action() == v1::POLICER_REMARK) return range(path + ".dscp", a.dscp(), 0, 63);
  if (a.dscp()) return invalid(path + ".dscp", "is for POLICER_REMARK only");
  return std::nullopt;
}

// The meter: its mode, rates and bursts (each mode's own fields).
std::optional<Error> check_meter(const v1::Policer& p, uint64_t mtu, const std::string& path) {
  if (p.mode() != v1::POLICER_SRTCM && p.mode() != v1::POLICER_TRTCM && p.mode() != v1::POLICER_TRTCM_RFC4115)
    return invalid(path + ".mode", "is required: POLICER_SRTCM, POLICER_TRTCM or POLICER_TRTCM_RFC4115");
  auto rate = [&](const char* field, uint64_t v) -> std::optional<Error> {
    if (v == 0) return invalid(path + "." + field, "must be above 0 (bytes per second)");
    return range(path + "." + field, v, 1, max_rate);
  };
  auto burst = [&](const char* field, uint64_t v) -> std::optional<Error> {
    if (v < mtu)
      return invalid(path + "." + field,
                     std::to_string(v) + " bytes is below one packet of the class's MTU (" + std::to_string(mtu) + ")");
    return range(path + "." + field, v, mtu, UINT32_MAX);
  };
  if (auto e = rate("cir", p.cir())) return e;
  if (auto e = burst("cbs", p.cbs())) return e;
  // Each mode's own fields; the others' must be unset (a mistaken mode shows).
  auto unset = [&](const char* field, uint64_t v) -> std::optional<Error> {
    if (v) return invalid(path + "." + field, "is not a field of " + v1::PolicerMode_Name(p.mode()));
    return std::nullopt;
  };
  switch (p.mode()) {
    case v1::POLICER_TRTCM:
      if (auto e = unset("ebs", p.ebs())) return e;
      if (auto e = unset("eir", p.eir())) return e;
      if (auto e = rate("pir", p.pir())) return e;
      if (p.pir() < p.cir()) return invalid(path + ".pir", "must be at least cir (RFC 2698)");
      return burst("pbs", p.pbs());
    case v1::POLICER_TRTCM_RFC4115:
      if (auto e = unset("pir", p.pir())) return e;
      if (auto e = unset("pbs", p.pbs())) return e;
      if (auto e = rate("eir", p.eir())) return e;
      return burst("ebs", p.ebs());
    default:
      if (auto e = unset("pir", p.pir())) return e;
      if (auto e = unset("pbs", p.pbs())) return e;
      if (auto e = unset("eir", p.eir())) return e;
      return burst("ebs", p.ebs());
  }
}

std::optional<Error> check_policer(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& p = o.policer();
  if (p.tenant().empty()) {
    // A rule's class: the flows of the policy rules that name it (they cross the core).
    if (!p.interface().empty()) return invalid(path + ".interface", "needs a tenant (a rule's policer has none)");
    if (p.match_dscp()) return invalid(path + ".match_dscp", "needs a tenant (a rule's policer has none)");
  } else if (!in.tenants.count(p.tenant()))
    return invalid(path + ".tenant", "no tenant named " + quoted(p.tenant()));
  if (!p.interface().empty()) {
    auto f = in.interfaces.find(p.interface());
    if (f == in.interfaces.end()) return invalid(path + ".interface", "no interface named " + quoted(p.interface()));
    if (f->second.tenant() != p.tenant())
      return invalid(path + ".interface", quoted(p.interface()) + " is in tenant " + quoted(f->second.tenant()) +
                                              ", not " + quoted(p.tenant()));
  }
  if (p.match_dscp()) {
    if (auto e = range(path + ".dscp", p.dscp(), 0, 63)) return e;
  } else if (p.dscp()) {
    return invalid(path + ".dscp", "needs match_dscp");
  }
  if (auto e = check_meter(p, class_mtu(in, p), path)) return e;
  if (auto e = check_action(path + ".green", p.green())) return e;
  if (auto e = check_action(path + ".yellow", p.yellow())) return e;
  if (auto e = check_action(path + ".red", p.red())) return e;
  // One policer per class: a packet meets one (a rule's class is the rules').
  if (!p.tenant().empty())
    for (const auto& [name, other] : policers(in)) {
      const auto& q = other.policer();
      if (q.tenant() == p.tenant() && q.interface() == p.interface() && q.match_dscp() == p.match_dscp() &&
          q.dscp() == p.dscp())
        return invalid(path, "policer " + quoted(name) + " has the same class (tenant, interface, dscp)");
    }
  return std::nullopt;
}

// The rules whose class a policer is.
size_t rules_naming(const Intent& in, const std::string& policer) {
  size_t n = 0;
  for (const auto& [name, r] : in.policy_rules) n += r.policer() == policer;
  return n;
}

void count_users(Intent& in, const v1::Policer& p, int delta) {
  if (!p.tenant().empty()) count(in.tenant_users, p.tenant(), delta);
  if (!p.interface().empty()) count(in.interface_users, p.interface(), delta);
}

const std::map<std::string, v1::Object>& shapers(const Intent& in) {
  auto it = in.named.find(v1::Object::kShaper);
  return it == in.named.end() ? none : it->second;
}

constexpr int max_shaper_classes = 64;

// A class's WRED: rte_red's limits, and thresholds the class's queue can reach.
std::optional<Error> check_wred(const v1::ShaperWred& w, uint32_t queue_limit, const std::string& path) {
  if (!w.has_green()) return invalid(path + ".green", "is required (the profile of green packets)");
  uint32_t limit = std::min<uint32_t>(RTE_RED_MAX_TH_MAX, queue_limit);
  std::pair<const char*, const v1::WredProfile*> profiles[] = {{"green", &w.green()},
                                                               {"yellow", w.has_yellow() ? &w.yellow() : nullptr},
                                                               {"red", w.has_red() ? &w.red() : nullptr}};
  for (const auto& [colour, p] : profiles) {
    if (!p) continue;
    std::string at = path + "." + colour;
    if (p->max_th() == 0) return invalid(at + ".max_th", "must be above 0 (packets)");
    if (p->max_th() > limit)
      return invalid(at + ".max_th", std::to_string(p->max_th()) + " packets is beyond " +
                                         (limit == queue_limit ? "the class's queue_limit (" : "rte_red's limit (") +
                                         std::to_string(limit) + ")");
    if (p->min_th() >= p->max_th())
      return invalid(at + ".min_th",
                     std::to_string(p->min_th()) + " is not below max_th (" + std::to_string(p->max_th()) + ")");
    if (auto e = range(at + ".maxp_inv", p->maxp_inv(), 0, RTE_RED_MAXP_INV_MAX)) return e;
  }
  if (w.weight_log2())
    if (auto e = range(path + ".weight_log2", w.weight_log2(), RTE_RED_WQ_LOG2_MIN, RTE_RED_WQ_LOG2_MAX)) return e;
  return std::nullopt;
}

std::optional<Error> check_class(Intent& in, const v1::ShaperClass& c, const std::string& path) {
  if (auto e = name(path + ".name", c.name())) return e;
  if (c.rate()) {
    if (auto e = range(path + ".rate", c.rate(), 1, max_rate)) return e;
  }
  if (c.priority() && !c.rate())
    return invalid(path + ".rate", "a priority class needs a rate (its cap, so that it cannot starve the others)");
  if (c.priority() && c.weight()) return invalid(path + ".weight", "a priority class is served before any share");
  if (!c.priority() && !c.rate() && !c.weight())
    return invalid(path, "neither a guaranteed rate nor a weight: the class would never be sent");
  if (auto e = range(path + ".weight", c.weight(), 0, 1000)) return e;
  if (auto e = range(path + ".queue_limit", c.queue_limit(), 0, 65536)) return e;
  if (!c.tenant().empty() && !in.tenants.count(c.tenant()))
    return invalid(path + ".tenant", "no tenant named " + quoted(c.tenant()));
  // A tunnel too: what was decrypted from it (a per-purpose VPN) is received on it.
  if (!c.in_interface().empty() && !in.interfaces.count(c.in_interface()) && !in.tunnels.count(c.in_interface()))
    return invalid(path + ".in_interface", "no interface or tunnel named " + quoted(c.in_interface()));
  for (int i = 0; i < c.dscp_size(); i++)
    if (auto e = range(path + ".dscp[" + std::to_string(i) + "]", c.dscp(i), 0, 63)) return e;
  if (c.set_dscp()) {
    if (auto e = range(path + ".mark_dscp", c.mark_dscp(), 0, 63)) return e;
  } else if (c.mark_dscp()) {
    return invalid(path + ".mark_dscp", "needs set_dscp");
  }
  if (c.has_wred())
    return check_wred(c.wred(), c.queue_limit() ? c.queue_limit() : qos::default_queue_limit, path + ".wred");
  return std::nullopt;
}

std::optional<Error> check_shaper(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& s = o.shaper();
  if (s.interface().empty()) return invalid(path + ".interface", "is required");
  // What must fit the buckets, or it would never be sent: a frame of the interface's MTU (with
  // Ethernet and two VLAN tags), or a tunnel's inner packet of its MTU (queued before ESP).
  uint64_t frame = 0;
  const char* what = "one frame of the interface's MTU";
  if (auto f = in.interfaces.find(s.interface()); f != in.interfaces.end()) {
    const v1::Interface& i = f->second;
    uint64_t mtu = i.mtu() ? i.mtu() : 1500;
    if (!i.mtu())
      if (auto port = in.ports.find(i.port()); port != in.ports.end() && port->second.mtu()) mtu = port->second.mtu();
    frame = mtu + 22;
  } else if (auto t = in.tunnels.find(s.interface()); t != in.tunnels.end()) {
    frame = t->second.mtu() ? t->second.mtu() : 1400;
    what = "one packet of the tunnel's MTU";
  } else {
    return invalid(path + ".interface", "no interface or tunnel named " + quoted(s.interface()));
  }
  if (s.rate() == 0) return invalid(path + ".rate", "must be above 0 (bytes per second)");
  if (auto e = range(path + ".rate", s.rate(), 1, max_rate)) return e;
  if (s.burst() < frame)
    return invalid(path + ".burst",
                   std::to_string(s.burst()) + " bytes is below " + what + " (" + std::to_string(frame) + ")");
  if (auto e = range(path + ".burst", s.burst(), frame, UINT32_MAX)) return e;
  if (s.classes_size() == 0) return invalid(path + ".classes", "at least one class is required");
  if (s.classes_size() > max_shaper_classes)
    return invalid(path + ".classes", "at most " + std::to_string(max_shaper_classes) + " classes");
  uint64_t committed = 0;
  for (int c = 0; c < s.classes_size(); c++) {
    std::string at = path + ".classes[" + std::to_string(c) + "]";
    if (auto e = check_class(in, s.classes(c), at)) return e;
    for (int d = 0; d < c; d++)
      if (s.classes(d).name() == s.classes(c).name())
        return invalid(at + ".name",
                       "class " + quoted(s.classes(c).name()) + " is already classes[" + std::to_string(d) + "]");
    committed += s.classes(c).rate();
  }
  if (committed > s.rate())
    return invalid(path + ".classes", "the classes' rates add up to " + std::to_string(committed) +
                                          " bytes/s, more than the shaper's rate " + std::to_string(s.rate()));
  for (const auto& [other, x] : shapers(in))
    if (x.shaper().interface() == s.interface())
      return invalid(path + ".interface", "shaper " + quoted(other) + " already shapes " + quoted(s.interface()));
  return std::nullopt;
}

void count_users(Intent& in, const v1::Shaper& s, int delta) {
  count(in.interface_users, s.interface(), delta);
  for (const auto& c : s.classes()) {
    if (!c.tenant().empty()) count(in.tenant_users, c.tenant(), delta);
    if (!c.in_interface().empty()) count(in.interface_users, c.in_interface(), delta);
  }
}

// The first policy rule that names a class `existing` has and `replacement` (nullptr: a
// deletion) has not, when no other shaper has it either: that class cannot go while the rule
// names it (docs/qos.md "Classes by policy rule").
std::optional<Error> check_rule_classes(const Intent& in, const v1::Shaper& existing, const v1::Shaper* replacement,
                                        const std::string& path) {
  auto has = [](const v1::Shaper& s, const std::string& name) {
    for (const auto& c : s.classes())
      if (c.name() == name) return true;
    return false;
  };
  for (const auto& [rule, r] : in.policy_rules) {
    const std::string& name = r.shaper_class();
    if (name.empty() || !has(existing, name) || (replacement && has(*replacement, name))) continue;
    bool elsewhere = false;
    for (const auto& [other, o] : shapers(in)) elsewhere |= other != existing.name() && has(o.shaper(), name);
    if (!elsewhere)
      return Error{Code::failed_precondition, (replacement ? path + ".classes" : path) + ": policy rule " +
                                                  quoted(rule) + " names class " + quoted(name) +
                                                  ", which no other shaper has"};
  }
  return std::nullopt;
}

// By colour, every worker's share summed, since the policer was created or changed (or the
// counters cleared).
const CounterColumn policer_columns[] = {
    {"green_packets", "Packets the policer coloured green."},
    {"green_bytes", "Bytes the policer coloured green."},
    {"yellow_packets", "Packets the policer coloured yellow."},
    {"yellow_bytes", "Bytes the policer coloured yellow."},
    {"red_packets", "Packets the policer coloured red."},
    {"red_bytes", "Bytes the policer coloured red."},
    {"dropped", "Packets the policer dropped (its colour's action)."},
};

const KindCounters policer_counters = {
    .list = "policers",
    .columns = policer_columns,
    .read =
        [](const CounterSource& s, std::vector<CounterRow>& rows) {
          const Tables& t = s.tables;
          for (const auto* list : {&t.qos.policers, &t.qos.rule_policers})
            for (const qos::Policer& p : *list) {
              uint64_t packets[qos::colours] = {}, bytes[qos::colours] = {}, dropped = 0;
              for (uint16_t i = 0; i < p.workers; i++) {
                const qos::Share& share = p.shares[i];
                for (unsigned c = 0; c < qos::colours; c++) {
                  packets[c] += load_counter(share.packets[c]);
                  bytes[c] += load_counter(share.bytes[c]);
                }
                dropped += load_counter(share.dropped);
              }
              rows.push_back({p.name,
                              {packets[qos::green], bytes[qos::green], packets[qos::yellow], bytes[qos::yellow],
                               packets[qos::red], bytes[qos::red], dropped},
                              {},
                              p.shares.get()});
            }
        },
};

// A row per class, every worker's queue summed, since the shaper was created or changed (or
// the counters cleared); depth is now.
const CounterColumn shaper_columns[] = {
    {"queued_packets", "Packets a shaper class took into its queues."},
    {"queued_bytes", "Bytes of frame a shaper class took into its queues."},
    {"sent_packets", "Packets a shaper class sent."},
    {"sent_bytes", "Bytes of frame a shaper class sent."},
    {"dropped", "Packets dropped: the shaper class's queue was full."},
    {"depth", "Packets in the shaper class's queues now.", true},
    {"wred_dropped", "Packets the shaper class's WRED dropped early."},
    {"ecn_marked", "Packets the shaper class's WRED marked CE instead of dropping."},
};

const KindCounters shaper_counters = {
    .list = "shaper_classes",
    .columns = shaper_columns,
    .read =
        [](const CounterSource& s, std::vector<CounterRow>& rows) {
          const Tables& t = s.tables;
          for (const qos::Shaper& sh : t.qos.shapers)
            for (size_t c = 0; c < sh.classes.size(); c++) {
              std::vector<uint64_t> v(std::size(shaper_columns));
              for (uint16_t i = 0; i < sh.workers; i++) {
                const qos::ClassQueue& q = sh.shares[i].classes[c];
                v[0] += load_counter(q.queued_packets);
                v[1] += load_counter(q.queued_bytes);
                v[2] += load_counter(q.sent_packets);
                v[3] += load_counter(q.sent_bytes);
                v[4] += load_counter(q.dropped);
                v[5] +=
                    uint32_t(__atomic_load_n(&q.tail, __ATOMIC_RELAXED) - __atomic_load_n(&q.head, __ATOMIC_RELAXED));
                v[6] += load_counter(q.wred_dropped);
                v[7] += load_counter(q.ecn_marked);
              }
              rows.push_back({sh.name, std::move(v), sh.classes[c].name, sh.shares.get()});
            }
        },
    .part = "class",
};

}  // namespace

const Kind policer_kind = {
    .object = v1::Object::kPolicer,
    .list_kind = v1::POLICER,
    .name = "policer",
    .plural = "policers",
    .config_size = [](const v1::Config& c) { return c.policers_size(); },
    .take = [](v1::Config& c, int i, v1::Object& o) { *o.mutable_policer() = std::move(*c.mutable_policers(i)); },
    .clear_output = nullptr,
    .check_key = [](const v1::Object& o, const std::string& path) { return name(path + ".name", o.policer().name()); },
    .key =
        [](const v1::Object& o) {
          return Intent::Key{v1::Object::kPolicer, o.policer().name()};
        },
    .find = [](const Intent& in, const Intent::Key& k) -> std::optional<v1::Object> {
      const auto& all = policers(in);
      auto it = all.find(k.name);
      if (it == all.end()) return std::nullopt;
      return it->second;
    },
    .put =
        [](Intent& in, const v1::Object& o) {
          in.named[v1::Object::kPolicer][o.policer().name()] = o;
          count_users(in, o.policer(), 1);
        },
    .erase =
        [](Intent& in, const v1::Object& o) {
          in.named[v1::Object::kPolicer].erase(o.policer().name());
          count_users(in, o.policer(), -1);
        },
    .validate = check_policer,
    .check_update = [](const Intent& in, const v1::Object&, const v1::Object& o,
                       const std::string& path) -> std::optional<Error> {
      if (!o.policer().tenant().empty() && rules_naming(in, o.policer().name()))
        return invalid(path + ".tenant", "policy rules name this policer: their class has no tenant");
      return std::nullopt;
    },
    .check_delete =
        [](const Intent& in, const v1::Object& o, const std::string& path) {
          return in_use(path, "policer", o.policer().name(), rules_naming(in, o.policer().name()));
        },
    .check_final = nullptr,
    .error_name = [](const v1::Object& o) { return o.policer().name(); },
    .build = {{Phase::last, qos::build_policers}},
    .reclaim = nullptr,  // what a generation holds goes with it, after the grace period
    .diff = nullptr,
    .get = [](const Intent& in, const Committer&, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      const auto& all = policers(in);
      if (auto it = all.find(key.policer().name()); it != all.end()) out = it->second;
      return std::nullopt;
    },
    .list = [](const Intent& in, const Committer&, const v1::ListRequest& request, uint32_t page,
               v1::ListResponse& out) -> std::optional<Error> {
      const std::string& token = request.page_token();
      size_t start = token.empty() ? 0 : std::stoul(token), total = 0;
      for (const auto& [name, o] : policers(in)) {
        if (!request.tenant().empty() && o.policer().tenant() != request.tenant()) continue;
        if (total++ >= start && uint32_t(out.objects_size()) < page) *out.add_objects() = o;
      }
      if (start + size_t(out.objects_size()) < total)
        out.set_next_page_token(std::to_string(start + out.objects_size()));
      return std::nullopt;
    },
    .counters = &policer_counters,
};

const Kind shaper_kind = {
    .object = v1::Object::kShaper,
    .list_kind = v1::SHAPER,
    .name = "shaper",
    .plural = "shapers",
    .config_size = [](const v1::Config& c) { return c.shapers_size(); },
    .take = [](v1::Config& c, int i, v1::Object& o) { *o.mutable_shaper() = std::move(*c.mutable_shapers(i)); },
    .clear_output = nullptr,
    .check_key = [](const v1::Object& o, const std::string& path) { return name(path + ".name", o.shaper().name()); },
    .key =
        [](const v1::Object& o) {
          return Intent::Key{v1::Object::kShaper, o.shaper().name()};
        },
    .find = [](const Intent& in, const Intent::Key& k) -> std::optional<v1::Object> {
      const auto& all = shapers(in);
      auto it = all.find(k.name);
      if (it == all.end()) return std::nullopt;
      return it->second;
    },
    .put =
        [](Intent& in, const v1::Object& o) {
          in.named[v1::Object::kShaper][o.shaper().name()] = o;
          count_users(in, o.shaper(), 1);
        },
    .erase =
        [](Intent& in, const v1::Object& o) {
          in.named[v1::Object::kShaper].erase(o.shaper().name());
          count_users(in, o.shaper(), -1);
        },
    .validate = check_shaper,
    .check_update =
        [](const Intent& in, const v1::Object& existing, const v1::Object& o, const std::string& path) {
          return check_rule_classes(in, existing.shaper(), &o.shaper(), path);
        },
    .check_delete = [](const Intent& in, const v1::Object& existing,
                       const std::string& path) { return check_rule_classes(in, existing.shaper(), nullptr, path); },
    .check_final = nullptr,
    .error_name = [](const v1::Object& o) { return o.shaper().name(); },
    .build = {{Phase::last, qos::build_shapers}},
    .reclaim = nullptr,  // queues go with the last generation that names them, after the grace period
    .diff = nullptr,
    .get = [](const Intent& in, const Committer&, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      const auto& all = shapers(in);
      if (auto it = all.find(key.shaper().name()); it != all.end()) out = it->second;
      return std::nullopt;
    },
    .list = [](const Intent& in, const Committer&, const v1::ListRequest& request, uint32_t page,
               v1::ListResponse& out) -> std::optional<Error> {
      const std::string& token = request.page_token();
      size_t start = token.empty() ? 0 : std::stoul(token), total = 0;
      for (const auto& [name, o] : shapers(in)) {
        if (total++ >= start && uint32_t(out.objects_size()) < page) *out.add_objects() = o;
      }
      if (start + size_t(out.objects_size()) < total)
        out.set_next_page_token(std::to_string(start + out.objects_size()));
      return std::nullopt;
    },
    .counters = &shaper_counters,
};

}  // namespace medix::dp
