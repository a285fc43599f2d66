#include "nat/show.h"

#include <rte_cycles.h>

#include "common/address.h"
#include "nat/nat.h"
#include "runtime/dataplane.h"

namespace medix::dp {

using medix::common::format_ipv4;
using medix::common::parse_ipv4;

std::optional<Error> list_sessions(Dataplane& dp, const v1::ListSessionsRequest& request,
                                   v1::ListSessionsResponse& response) {
  std::optional<uint32_t> address;
  if (!request.address().empty()) {
    address = parse_ipv4(request.address());
    if (!address) return Error{Code::invalid_argument, "address: \"" + request.address() + "\" is not an IPv4 address"};
  }
  if (request.port() > 65535)
    return Error{Code::invalid_argument, "port: " + std::to_string(request.port()) + " is out of range 0..65535"};
  if (request.protocol() > 255)
    return Error{Code::invalid_argument, "protocol: " + std::to_string(request.protocol()) + " is out of range 0..255"};
  if (request.limit() > 1000000) return Error{Code::invalid_argument, "limit: at most 1000000"};
  uint32_t limit = request.limit() ? request.limit() : 1000;
  const uint64_t* timeouts = dp.workers.front()->timeouts;
  uint64_t now = rte_rdtsc(), hz = dp.tsc_hz;
  return dp.controller.read([&](const Intent& in, const Committer& c, uint64_t) -> std::optional<Error> {
    const Tables& t = *c.current();
    std::optional<uint16_t> tenant;
    if (!request.tenant().empty()) {
      if (!in.tenants.count(request.tenant()))
        return Error{Code::not_found, "tenant: no tenant named \"" + request.tenant() + "\""};
      for (uint16_t i = 0; i < t.tenants.size(); i++)
        if (t.tenants[i].live && t.tenants[i].name == request.tenant()) tenant = i;
    }
    auto endpoint = [](uint32_t a, uint16_t p) { return format_ipv4(a) + ":" + std::to_string(p); };
    uint64_t total = 0;
    for_each_session(t.nat, t.workers, [&](uint16_t q, const SessionView& v) {
      for (int d = 0; d < 2; d++) {  // ended lazily (tenant cleared or translation changed)
        uint16_t slot = v.key[d].tenant;
        if (slot >= t.tenants.size() || !t.tenants[slot].live || t.tenants[slot].nat.epoch > v.made) return;
      }
      const FlowKey &a = v.key[0], &b = v.key[1];
      uint64_t idle = now > v.last_seen ? now - v.last_seen : 0;
      uint64_t timeout = session_timeout(timeouts, a.protocol, v.tcp);
      if (idle_past(idle, timeout)) return;
      if (tenant && a.tenant != *tenant && b.tenant != *tenant) return;
      if (request.protocol() && a.protocol != request.protocol()) return;
      if (address && a.src != *address && a.dst != *address && b.src != *address && b.dst != *address) return;
      uint16_t port = uint16_t(request.port());
      if (port && a.sport != port && a.dport != port && b.sport != port && b.dport != port) return;
      if (total++ >= limit) return;
      auto* s = response.add_sessions();
      s->set_protocol(a.protocol);
      s->set_tenant(t.tenants[a.tenant].name);
      s->set_source(endpoint(a.src, a.sport));
      s->set_destination(endpoint(a.dst, a.dport));
      s->set_peer_tenant(t.tenants[b.tenant].name);
      s->set_translated_source(endpoint(b.dst, b.dport));
      s->set_translated_destination(endpoint(b.src, b.sport));
      if (a.protocol == 6) {
        bool closing = (v.tcp & tcp_rst) || ((v.tcp & tcp_fin_forward) && (v.tcp & tcp_fin_reverse));
        bool established = (v.tcp & tcp_syn_forward) ? (v.tcp & tcp_syn_reverse) : (v.tcp & tcp_seen_reverse);
        s->set_state(closing ? "closing" : established ? "established" : "syn");
      } else {
        s->set_state("active");
      }
      s->set_idle_ms(idle * 1000 / hz);
      s->set_expires_in_ms((timeout - idle) * 1000 / hz);
      s->set_lcore(dp.workers[q]->lcore);
      for (const auto& r : t.rules)
        if (r.slot == v.rule) s->set_rule(r.name);
    });
    response.set_total(total);
    return std::nullopt;
  });
}

}  // namespace medix::dp
