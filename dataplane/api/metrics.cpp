#include "api/metrics.h"

#include <rte_version.h>

#include <sstream>

#include "common/version.h"
#include "runtime/snapshot.h"

namespace medix::dp {

using Family = common::MetricFamily;

std::string render_metrics(Dataplane& dp) {
  CounterSnapshot s = take_snapshot(dp);
  std::ostringstream out;
  out.precision(17);
  Family(out, "medix_build_info", "gauge", "Always 1; medix-dp's version and the DPDK it runs on as labels.")
      .sample({{"version", common::version()}, {"dpdk", rte_version()}}, 1);
  Family(out, "medix_config_version", "gauge", "The version of the running configuration (transactions applied).")
      .sample({}, s.version);
  Family(out, "medix_counters_since_seconds", "gauge",
         "Unix time counters count from: the last ClearCounters, or the start.")
      .sample({}, double(s.since_ns) / 1e9);

  struct PortField {
    const char* name;
    const char* help;
    uint64_t Counters::Port::*field;
  };
  static const PortField port_fields[] = {
      {"medix_port_rx_packets_total", "Frames the workers received from the port.", &Counters::Port::rx_packets},
      {"medix_port_rx_bytes_total", "Bytes the workers received from the port.", &Counters::Port::rx_bytes},
      {"medix_port_tx_packets_total", "Frames the port's tx queues accepted.", &Counters::Port::tx_packets},
      {"medix_port_tx_bytes_total", "Bytes the port's tx queues accepted.", &Counters::Port::tx_bytes},
      {"medix_port_tx_dropped_total", "Frames the port's tx queues refused.", &Counters::Port::tx_dropped},
  };
  for (const auto& f : port_fields) {
    Family family(out, f.name, "counter", f.help);
    for (const auto& [name, p] : s.ports) family.sample({{"port", name}}, p.*f.field);
  }
  {
    Family up(out, "medix_port_link_up", "gauge", "1 if the port's link is up (rte_eth_link).");
    for (size_t i = 0; i < s.ports.size(); i++) up.sample({{"port", s.ports[i].first}}, uint64_t(s.nics[i].link_up));
    Family speed(out, "medix_port_link_speed_mbps", "gauge", "The port's link speed in Mbit/s (0: unknown).");
    for (size_t i = 0; i < s.ports.size(); i++)
      speed.sample({{"port", s.ports[i].first}}, uint64_t(s.nics[i].speed_mbps));
  }
  struct NicField {
    const char* name;
    const char* help;
    uint64_t NicStats::*field;
  };
  static const NicField nic_fields[] = {
      {"medix_port_nic_rx_packets_total", "Frames the NIC received (rte_eth_stats ipackets).", &NicStats::rx_packets},
      {"medix_port_nic_tx_packets_total", "Frames the NIC sent (opackets).", &NicStats::tx_packets},
      {"medix_port_nic_rx_bytes_total", "Bytes the NIC received (ibytes).", &NicStats::rx_bytes},
      {"medix_port_nic_tx_bytes_total", "Bytes the NIC sent (obytes).", &NicStats::tx_bytes},
  };
  for (const auto& f : nic_fields) {
    Family family(out, f.name, "counter", f.help);
    for (size_t i = 0; i < s.ports.size(); i++) family.sample({{"port", s.ports[i].first}}, s.nics[i].*f.field);
  }
  {
    Family drops(out, "medix_port_nic_drops_total", "counter",
                 "Frames the NIC dropped before a worker saw them, or failed to send, by reason.");
    for (size_t i = 0; i < s.ports.size(); i++)
      for (const auto& d : nic_drops)
        drops.sample({{"port", s.ports[i].first}, {"reason", d.name}}, s.nics[i].*d.field);
  }

  struct InterfaceField {
    const char* name;
    const char* help;
    uint64_t Counters::Interface::*field;
  };
  static const InterfaceField interface_fields[] = {
      {"medix_interface_rx_packets_total", "Frames classified to the interface.", &Counters::Interface::rx_packets},
      {"medix_interface_rx_bytes_total", "Bytes classified to the interface.", &Counters::Interface::rx_bytes},
      {"medix_interface_tx_packets_total", "Frames sent out of the interface.", &Counters::Interface::tx_packets},
      {"medix_interface_tx_bytes_total", "Bytes sent out of the interface.", &Counters::Interface::tx_bytes},
  };
  for (const auto& f : interface_fields) {
    Family family(out, f.name, "counter", f.help);
    for (size_t i = 0; i < s.interfaces.size(); i++)
      family.sample({{"interface", s.interfaces[i].first}, {"tenant", s.interface_tenants[i]}},
                    s.interfaces[i].second.*f.field);
  }
  {
    Family rx(out, "medix_tenant_rx_packets_total", "counter", "Frames received on the tenant's interfaces.");
    for (const auto& [name, t] : s.tenants) rx.sample({{"tenant", name}}, t.rx_packets);
    Family tx(out, "medix_tenant_tx_packets_total", "counter", "Packets forwarded out of the tenant's interfaces.");
    for (const auto& [name, t] : s.tenants) tx.sample({{"tenant", name}}, t.tx_packets);
    Family drops(out, "medix_tenant_drops_total", "counter", "Packets dropped while in the tenant.");
    for (const auto& [name, t] : s.tenants) drops.sample({{"tenant", name}}, t.drops);
    Family refused(out, "medix_tenant_share_refused_total", "counter",
                   "What the tenant was refused of a shared budget (docs/fair-shares.md), by budget.");
    for (const auto& [name, t] : s.tenants) {
      refused.sample({{"tenant", name}, {"budget", "icmp"}}, t.icmp_rate_limited);
      refused.sample({{"tenant", name}, {"budget", "arp_pending"}}, t.arp_pending_limited);
      refused.sample({{"tenant", name}, {"budget", "punt"}}, t.punt_policed);
      refused.sample({{"tenant", name}, {"budget", "nat_fragments"}}, t.fragments_limited);
      refused.sample({{"tenant", name}, {"budget", "packet_buffers"}}, t.buffer_guarded);
    }
  }
  {
    Family drops(out, "medix_drops_total", "counter", "Packets the workers dropped, by reason (all workers).");
    for (unsigned r = 0; r < drop_reason_count; r++)
      drops.sample({{"reason", drop_reasons[r].name}}, s.totals.drops[r]);
  }
  {
    Family tunnel_rx(out, "medix_tunnel_rx_packets_total", "counter", "Packets decrypted from the tunnel.");
    for (const auto& t : s.tunnels) tunnel_rx.sample({{"tunnel", t.name}}, t.counters.rx_packets);
    Family tunnel_tx(out, "medix_tunnel_tx_packets_total", "counter", "Packets encrypted into the tunnel.");
    for (const auto& t : s.tunnels) tunnel_tx.sample({{"tunnel", t.name}}, t.counters.tx_packets);
    Family packets(out, "medix_sa_packets_total", "counter", "Packets through the SA.");
    for (const auto& sa : s.sas)
      packets.sample({{"tunnel", sa.tunnel}, {"spi", std::to_string(sa.spi)}, {"direction", sa.inbound ? "in" : "out"}},
                     sa.packets);
    Family bytes(out, "medix_sa_bytes_total", "counter", "Bytes through the SA.");
    for (const auto& sa : s.sas)
      bytes.sample({{"tunnel", sa.tunnel}, {"spi", std::to_string(sa.spi)}, {"direction", sa.inbound ? "in" : "out"}},
                   sa.bytes);
    Family drops(out, "medix_sa_drops_total", "counter", "Packets of the SA dropped, by reason.");
    for (const auto& sa : s.sas)
      for (unsigned r = 0; r < sa_drop_count; r++)
        drops.sample({{"tunnel", sa.tunnel},
                      {"spi", std::to_string(sa.spi)},
                      {"direction", sa.inbound ? "in" : "out"},
                      {"reason", drop_reasons[unsigned(first_sa_drop) + r].name}},
                     sa.drops[r]);
  }
  {
    Family sessions(out, "medix_nat_sessions", "gauge", "Sessions crossing the core now, by origin tenant.");
    for (const auto& n : s.nat) sessions.sample({{"tenant", n.tenant}}, n.sessions);
    Family created(out, "medix_nat_sessions_created_total", "counter", "Sessions created, by origin tenant.");
    for (const auto& n : s.nat) created.sample({{"tenant", n.tenant}}, n.counters.sessions_created);
    Family translated(out, "medix_nat_translated_packets_total", "counter",
                      "Packets from the tenant that crossed the core.");
    for (const auto& n : s.nat) translated.sample({{"tenant", n.tenant}}, n.counters.translated);
    Family mappings(out, "medix_nat_napt_mappings", "gauge", "NAPT address and port pairs in use now.");
    for (const auto& n : s.nat) mappings.sample({{"tenant", n.tenant}}, n.mappings);
    Family refused(out, "medix_nat_refused_total", "counter", "New flows refused, by origin tenant and reason.");
    for (const auto& n : s.nat) {
      refused.sample({{"tenant", n.tenant}, {"reason", "pool_exhausted"}}, n.counters.pool_exhausted);
      refused.sample({{"tenant", n.tenant}, {"reason", "session_limit"}}, n.counters.session_limit);
      refused.sample({{"tenant", n.tenant}, {"reason", "no_mapping"}}, n.counters.no_mapping);
      refused.sample({{"tenant", n.tenant}, {"reason", "policy_denied"}}, n.counters.policy_denied);
    }
  }
  for (const auto& [kind, rows] : s.kinds)  // medix_policer_green_packets_total{policer="..."}
    for (size_t i = 0; i < kind->counters->columns.size(); i++) {
      const CounterColumn& column = kind->counters->columns[i];
      std::string name = std::string("medix_") + kind->name + "_" + column.field + (column.gauge ? "" : "_total");
      Family family(out, name.c_str(), column.gauge ? "gauge" : "counter", column.help);
      for (const auto& row : rows) {
        if (kind->counters->part)  // medix_shaper_sent_bytes_total{shaper="...",class="..."}
          family.sample({{kind->name, row.name}, {kind->counters->part, row.part}}, row.values[i]);
        else
          family.sample({{kind->name, row.name}}, row.values[i]);
      }
    }
  {
    Family calls(out, "medix_stage_calls_total", "counter", "Calls of the pipeline stage, by worker lcore.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      for (unsigned st = 0; st < unsigned(Stage::count); st++)
        calls.sample({{"stage", stage_names[st]}, {"lcore", std::to_string(dp.workers[q]->lcore)}},
                     s.lcores[q].stages[st].calls);
    Family packets(out, "medix_stage_packets_total", "counter", "Packets through the pipeline stage.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      for (unsigned st = 0; st < unsigned(Stage::count); st++)
        packets.sample({{"stage", stage_names[st]}, {"lcore", std::to_string(dp.workers[q]->lcore)}},
                       s.lcores[q].stages[st].packets);
    Family cycles(out, "medix_stage_cycles_total", "counter", "TSC cycles spent in the pipeline stage.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      for (unsigned st = 0; st < unsigned(Stage::count); st++)
        cycles.sample({{"stage", stage_names[st]}, {"lcore", std::to_string(dp.workers[q]->lcore)}},
                      s.lcores[q].stages[st].cycles);
  }
  {
    Family hz(out, "medix_tsc_hz", "gauge", "TSC cycles per second.");
    hz.sample({}, dp.tsc_hz);
    Family loops(out, "medix_worker_loops_total", "counter", "Iterations of the worker's loop.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      loops.sample({{"lcore", std::to_string(dp.workers[q]->lcore)}}, s.lcores[q].loops);
    Family empty(out, "medix_worker_empty_polls_total", "counter", "Iterations that found no work.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      empty.sample({{"lcore", std::to_string(dp.workers[q]->lcore)}}, s.lcores[q].empty_polls);
    Family busy(out, "medix_worker_busy_cycles_total", "counter", "TSC cycles of the iterations that had work.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      busy.sample({{"lcore", std::to_string(dp.workers[q]->lcore)}}, s.lcores[q].busy_cycles);
    Family cycles(out, "medix_worker_cycles_total", "counter", "TSC cycles of all iterations.");
    for (size_t q = 0; q < s.lcores.size(); q++)
      cycles.sample({{"lcore", std::to_string(dp.workers[q]->lcore)}}, s.lcores[q].loop_cycles);
    Family share(out, "medix_worker_busy_ratio", "gauge",
                 "Busy cycles / all cycles since the counters' start (0..1; 1 - headroom).");
    for (size_t q = 0; q < s.lcores.size(); q++) {
      const LcoreStats& l = s.lcores[q];
      share.sample({{"lcore", std::to_string(dp.workers[q]->lcore)}},
                   l.loop_cycles ? double(l.busy_cycles) / double(l.loop_cycles) : 0.0);
    }
  }
  return out.str();
}

}  // namespace medix::dp
