#include "qos/commit.h"

#include <algorithm>

#include <rte_cycles.h>

#include "control/build.h"
#include "l2/l2.h"

namespace medix::dp::qos {
namespace {

Action action_of(const v1::PolicerColourAction& a, Colour colour) {
  switch (a.action()) {
    case v1::POLICER_TRANSMIT: return Action::transmit;
    case v1::POLICER_DROP: return Action::drop;
    case v1::POLICER_REMARK: return Action::remark;
    default: return colour == red ? Action::drop : Action::transmit;
  }
}

// Fewer wildcards first: the most specific class a packet is in applies.
int wildcards(const Policer& p) { return (p.interface == any_interface) * 2 + (p.dscp == any_dscp); }

// A colour's WRED profile: an unset yellow is green's, an unset red yellow's.
const v1::WredProfile& wred_profile(const v1::ShaperWred& w, Colour c) {
  if (c == red && w.has_red()) return w.red();
  if (c != green && w.has_yellow()) return w.yellow();
  return w.green();
}

}  // namespace

std::optional<std::string> compile(const v1::Policer& p, uint16_t workers, Policer& out) {
  out.name = p.name();
  out.meter = p.mode() == v1::POLICER_TRTCM           ? Meter::trtcm
              : p.mode() == v1::POLICER_TRTCM_RFC4115 ? Meter::rfc4115
                                                      : Meter::srtcm;
  out.colour_aware = p.colour_aware();
  out.dscp = p.match_dscp() ? int16_t(p.dscp()) : any_dscp;
  const v1::PolicerColourAction* actions[colours] = {&p.green(), &p.yellow(), &p.red()};
  for (unsigned c = 0; c < colours; c++) {
    out.action[c] = action_of(*actions[c], Colour(c));
    out.remark[c] = uint8_t(actions[c]->dscp());
  }
  // Each worker meters the packets RSS gives it: its share of the rates, with whole bursts (so
  // that one packet of the MTU still fits a bucket).
  uint16_t n = std::max<uint16_t>(1, workers);
  auto share = [n](uint64_t rate) { return std::max<uint64_t>(1, rate / n); };
  int rc = 0;
  switch (out.meter) {
    case Meter::trtcm: {
      rte_meter_trtcm_params params{share(p.cir()), share(p.pir()), p.cbs(), p.pbs()};
      rc = rte_meter_trtcm_profile_config(&out.trtcm, &params);
      break;
    }
    case Meter::rfc4115: {
      rte_meter_trtcm_rfc4115_params params{share(p.cir()), share(p.eir()), p.cbs(), p.ebs()};
      rc = rte_meter_trtcm_rfc4115_profile_config(&out.rfc4115, &params);
      break;
    }
    case Meter::srtcm: {
      rte_meter_srtcm_params params{share(p.cir()), p.cbs(), p.ebs()};
      rc = rte_meter_srtcm_profile_config(&out.srtcm, &params);
      break;
    }
  }
  if (rc != 0)
    return "rte_meter refuses the " + v1::PolicerMode_Name(p.mode()) + " parameters (" + std::to_string(rc) + ")";
  // Fresh buckets (full, as the RFCs start them) and counters for every worker.
  out.shares.reset(new Share[n]());
  out.workers = n;
  for (uint16_t w = 0; w < n; w++) switch (out.meter) {
      case Meter::trtcm: rte_meter_trtcm_config(&out.shares[w].trtcm, &out.trtcm); break;
      case Meter::rfc4115: rte_meter_trtcm_rfc4115_config(&out.shares[w].rfc4115, &out.rfc4115); break;
      case Meter::srtcm: rte_meter_srtcm_config(&out.shares[w].srtcm, &out.srtcm); break;
    }
  return std::nullopt;
}

std::optional<Error> build_policers(Committer::Build& b) {
  const auto& changes = b.diff.of(v1::Object::kPolicer);
  // Rules changed: which rule's class has which policer may have too.
  bool rules_changed = !b.diff.of(v1::Object::kPolicyRule).empty();
  if (changes.empty() && !rules_changed) return std::nullopt;
  auto all = b.intent.named.find(v1::Object::kPolicer);
  // Policers the transaction left as they were keep their buckets and counters.
  const Tables& now = b.c.current()->qos;
  std::vector<Policer> next, by_rule;
  if (all != b.intent.named.end())
    for (const auto& [name, o] : all->second) {
      const v1::Policer& p = o.policer();
      bool rules = p.tenant().empty();  // a rule's class
      const std::vector<Policer>& kept = rules ? now.rule_policers : now.policers;
      auto change = changes.find({.kind = v1::Object::kPolicer, .name = name});
      auto old = std::find_if(kept.begin(), kept.end(), [&name = name](const Policer& x) { return x.name == name; });
      Policer e;
      if (change == changes.end() && old != kept.end()) {
        e = *old;
      } else if (auto error = compile(p, b.c.params().queues, e)) {
        return b.fail(Code::invalid_argument, "policer " + name + ": " + *error, v1::Object::kPolicer, name);
      }
      if (rules) {
        by_rule.push_back(std::move(e));
        continue;
      }
      e.tenant = b.tenant_of(p.tenant());
      e.interface = p.interface().empty() ? any_interface : b.interface_slot_of(p.interface());
      next.push_back(std::move(e));
    }
  std::stable_sort(next.begin(), next.end(),
                   [](const Policer& x, const Policer& y) { return wildcards(x) < wildcards(y); });
  // By rule slot (crossing's rules are built by now: Phase::crossing).
  std::vector<uint16_t> of_rule;
  for (const PolicyRuleEntry& r : b.next->rules) {
    const std::string& name = b.intent.policy_rules.at(r.name).policer();
    if (name.empty()) continue;
    auto it = std::find_if(by_rule.begin(), by_rule.end(), [&](const Policer& x) { return x.name == name; });
    if (it == by_rule.end()) continue;  // validation saw to it
    if (of_rule.size() <= r.slot) of_rule.resize(r.slot + 1, no_policer);
    of_rule[r.slot] = uint16_t(it - by_rule.begin());
  }
  b.next->qos.policers = std::move(next);
  b.next->qos.rule_policers = std::move(by_rule);
  b.next->qos.policer_of_rule = std::move(of_rule);
  return std::nullopt;
}

void compile(const v1::Shaper& s, uint16_t workers, uint64_t tsc_hz, Shaper& out) {
  uint16_t n = std::max<uint16_t>(1, workers);
  // Bytes a second to bytes a TSC cycle, each worker's share.
  auto per_cycle = [&](uint64_t rate) { return double(rate) / n / double(tsc_hz); };
  out.name = s.name();
  out.rate = per_cycle(s.rate());
  out.burst = double(s.burst());
  out.frames_per_cycle = out.rate / wred_frame;
  out.classes.clear();
  for (const v1::ShaperClass& c : s.classes()) {
    ShaperClass k;
    k.name = c.name();
    k.priority = c.priority();
    k.rate = per_cycle(c.rate());
    k.burst = double(s.burst());
    k.weight = c.weight();
    for (uint32_t d : c.dscp()) k.dscps |= uint64_t(1) << d;
    if (c.set_dscp()) k.mark = int16_t(c.mark_dscp());
    if (c.has_wred()) {
      const v1::ShaperWred& w = c.wred();
      k.wred = true;
      k.ecn = w.ecn();
      auto weight = uint16_t(w.weight_log2() ? w.weight_log2() : default_wred_weight_log2);
      // check_class (kinds.cpp) holds the values to rte_red's limits, so it accepts them.
      for (unsigned colour = 0; colour < colours; colour++) {
        const v1::WredProfile& p = wred_profile(w, Colour(colour));
        rte_red_config_init(&k.red[colour], weight, uint16_t(p.min_th()), uint16_t(p.max_th()),
                            uint16_t(p.maxp_inv() ? p.maxp_inv() : default_wred_maxp_inv));
      }
    }
    out.classes.push_back(std::move(k));
  }
  out.shares.reset(new ShaperShare[n]);
  out.workers = n;
  for (uint16_t w = 0; w < n; w++) {
    out.shares[w].classes.resize(out.classes.size());
    for (int c = 0; c < s.classes_size(); c++) {
      ClassQueue& q = out.shares[w].classes[c];
      q.limit = s.classes(c).queue_limit() ? s.classes(c).queue_limit() : default_queue_limit;
      q.mask = rte_align32pow2(q.limit) - 1;
      q.ring.reset(new rte_mbuf*[q.mask + 1]);
      rte_red_rt_data_init(&q.red);
    }
  }
}

std::optional<Error> build_shapers(Committer::Build& b) {
  const auto& changes = b.diff.of(v1::Object::kShaper);
  auto all = b.intent.named.find(v1::Object::kShaper);
  bool none = all == b.intent.named.end() || all->second.empty();
  if (changes.empty() && none && b.c.current()->qos.shapers.empty()) return std::nullopt;
  const std::vector<Shaper>& kept = b.c.current()->qos.shapers;
  std::vector<Shaper> next;
  std::vector<uint16_t> shaper_of, tunnel_shapers;
  if (!none)
    for (const auto& [name, o] : all->second) {
      const v1::Shaper& s = o.shaper();
      auto change = changes.find({.kind = v1::Object::kShaper, .name = name});
      auto old = std::find_if(kept.begin(), kept.end(), [&name = name](const Shaper& x) { return x.name == name; });
      Shaper e;
      if (change == changes.end() && old != kept.end())
        e = *old;  // its queues and buckets go on
      else
        compile(s, b.c.params().queues, rte_get_tsc_hz(), e);
      e.interface = b.interface_slot_of(s.interface());
      const InterfaceEntry& f = b.next->interfaces[e.interface];
      e.tunnel = f.tunnel;
      e.port = f.tunnel ? 0 : f.port;
      e.l2_len = f.tunnel ? 0 : l2_len_of(f);  // a tunnel's packets are queued without L2
      for (size_t c = 0; c < e.classes.size(); c++) {
        const v1::ShaperClass& k = s.classes(int(c));
        e.classes[c].tenant = k.tenant().empty() ? any_tenant : b.tenant_of(k.tenant());
        e.classes[c].in_interface = k.in_interface().empty() ? any_interface : b.interface_slot_of(k.in_interface());
      }
      if (shaper_of.size() <= e.interface) shaper_of.resize(e.interface + 1, no_shaper);
      shaper_of[e.interface] = uint16_t(next.size());
      if (e.tunnel) tunnel_shapers.push_back(uint16_t(next.size()));
      next.push_back(std::move(e));
    }
  // Rules that name a class (crossing's rules are built by now): by slot, in every shaper that
  // has a class of that name.
  std::vector<uint8_t> classed;
  for (Shaper& e : next) e.class_of_rule.clear();
  for (const PolicyRuleEntry& r : b.next->rules) {
    const std::string& name = b.intent.policy_rules.at(r.name).shaper_class();
    if (name.empty()) continue;
    for (Shaper& e : next) {
      auto c = std::find_if(e.classes.begin(), e.classes.end(), [&](const ShaperClass& k) { return k.name == name; });
      if (c == e.classes.end()) continue;
      if (e.class_of_rule.size() <= r.slot) e.class_of_rule.resize(r.slot + 1, no_class);
      e.class_of_rule[r.slot] = uint16_t(c - e.classes.begin());
      if (classed.size() <= r.slot) classed.resize(r.slot + 1, 0);
      classed[r.slot] = 1;
    }
  }
  b.next->qos.shapers = std::move(next);
  b.next->qos.shaper_of = std::move(shaper_of);
  b.next->qos.tunnel_shapers = std::move(tunnel_shapers);
  b.next->qos.classed_rules = std::move(classed);
  return std::nullopt;
}

}  // namespace medix::dp::qos
