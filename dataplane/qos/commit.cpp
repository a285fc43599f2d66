#include "qos/commit.h"

#include <algorithm>

#include "control/build.h"

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

}  // namespace

std::optional<std::string> compile(const v1::Policer& p, uint16_t workers, Policer& out) {
  out.name = p.name();
  out.two_rate = p.mode() == v1::POLICER_TRTCM;
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
  if (out.two_rate) {
    rte_meter_trtcm_params params{share(p.cir()), share(p.pir()), p.cbs(), p.pbs()};
    if (int rc = rte_meter_trtcm_profile_config(&out.trtcm, &params); rc != 0)
      return "rte_meter refuses the trTCM parameters (" + std::to_string(rc) + ")";
  } else {
    rte_meter_srtcm_params params{share(p.cir()), p.cbs(), p.ebs()};
    if (int rc = rte_meter_srtcm_profile_config(&out.srtcm, &params); rc != 0)
      return "rte_meter refuses the srTCM parameters (" + std::to_string(rc) + ")";
  }
  // Fresh buckets (full, as the RFCs start them) and counters for every worker.
  out.shares.reset(new Share[n]());
  out.workers = n;
  for (uint16_t w = 0; w < n; w++) {
    if (out.two_rate)
      rte_meter_trtcm_config(&out.shares[w].trtcm, &out.trtcm);
    else
      rte_meter_srtcm_config(&out.shares[w].srtcm, &out.srtcm);
  }
  return std::nullopt;
}

std::optional<Error> build_policers(Committer::Build& b) {
  const auto& changes = b.diff.of(v1::Object::kPolicer);
  if (changes.empty()) return std::nullopt;
  auto all = b.intent.named.find(v1::Object::kPolicer);
  // Policers the transaction left as they were keep their buckets and counters.
  std::vector<Policer> kept = b.c.current()->qos.policers, next;
  if (all != b.intent.named.end())
    for (const auto& [name, o] : all->second) {
      const v1::Policer& p = o.policer();
      auto change = changes.find({.kind = v1::Object::kPolicer, .name = name});
      auto old = std::find_if(kept.begin(), kept.end(), [&name = name](const Policer& x) { return x.name == name; });
      Policer e;
      if (change == changes.end() && old != kept.end()) {
        e = *old;
      } else if (auto error = compile(p, b.c.params().queues, e)) {
        return b.fail(Code::invalid_argument, "policer " + name + ": " + *error, v1::Object::kPolicer, name);
      }
      e.tenant = b.tenant_of(p.tenant());
      e.interface = p.interface().empty() ? any_interface : b.interface_slot_of(p.interface());
      next.push_back(std::move(e));
    }
  std::stable_sort(next.begin(), next.end(),
                   [](const Policer& x, const Policer& y) { return wildcards(x) < wildcards(y); });
  b.next->qos.policers = std::move(next);
  return std::nullopt;
}

}  // namespace medix::dp::qos
