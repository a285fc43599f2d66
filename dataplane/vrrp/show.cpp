#include "vrrp/show.h"

#include "common/address.h"

namespace medix::dp::vrrp {

void show(const Runner& runner, const dp::Tables& t, uint64_t ring_full, medix::dataplane::v1::GetVrrpResponse& out) {
  for (const auto& s : runner.status()) {
    auto* x = out.add_instances();
    x->set_name(s.name);
    for (const auto& i : t.vrrp.instances)
      if (i.name == s.name) {
        if (i.interface < t.interfaces.size()) x->set_interface(t.interfaces[i.interface].name);
        x->set_group(i.group);
      }
    x->set_vrid(s.vrid);
    x->set_state(s.fault ? "fault" : name(s.state));  // keepalived's FAULT: backup for a link down
    x->set_priority(s.priority);
    x->set_effective_priority(s.effective_priority);
    if (s.master_address) x->set_master_address(medix::common::format_ipv4(s.master_address));
    x->set_master_priority(s.master_priority);
    x->set_master_interval_cs(s.master_interval_cs);
    x->set_adverts_received(s.adverts_received);
    x->set_adverts_sent(s.adverts_sent);
    x->set_gratuitous_arps_sent(s.garps_sent);
    x->set_transitions(s.transitions);
    for (const auto& tr : s.last) {
      auto* y = x->add_last_transitions();
      y->set_timestamp_ns(tr.realtime_ns);
      y->set_from(name(tr.from));
      y->set_to(name(tr.to));
      y->set_reason(name(tr.reason));
    }
  }
  RxErrors e = runner.rx_errors();
  auto* r = out.mutable_rx_errors();
  r->set_ttl(e.ttl);
  r->set_version(e.version);
  r->set_type(e.type);
  r->set_length(e.length);
  r->set_checksum(e.checksum);
  r->set_unknown_vrid(e.unknown_vrid);
  r->set_address_list(e.address_list);
  r->set_own(e.own);
  r->set_ring_full(ring_full);
  out.set_version(t.version);
}

}  // namespace medix::dp::vrrp
