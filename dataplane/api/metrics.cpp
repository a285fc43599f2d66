#include "api/metrics.h"

#include <rte_version.h>

#include <sstream>

#include "common/version.h"
#include "ha/reserve.h"
#include "ha/sync.h"
#include "runtime/snapshot.h"

namespace medix::dp {

using Family = common::MetricFamily;

void render_ha_metrics(Dataplane& dp, std::ostringstream& out);

namespace {

// A column's family: its own, or medix_<prefix>_<field>, "_total" for a counter; "": none.
std::string family_name(const Kind& kind, const CounterColumn& column) {
  if (column.metric) return column.metric;
  return std::string("medix_") + kind.counters->metric_prefix(kind.name) + "_" + column.field +
         (column.gauge ? "" : "_total");
}

// Every kind's counters (Kind::counters): a family per column, or per run of columns that
// name the same family (told apart by the column's label), a sample per row, labelled
// <label>="name" (medix_policer_green_packets_total{policer="..."}), then its part's
// (medix_shaper_sent_bytes_total{shaper="...",class="..."}) and the row's own labels.
void render_kind_metrics(const CounterSnapshot& s, std::ostringstream& out) {
  for (const auto& [kind, rows] : s.kinds) {
    const KindCounters& c = *kind->counters;
    const std::span<const CounterColumn> columns = c.columns;
    for (size_t i = 0, end; i < columns.size(); i = end) {
      std::string name = family_name(*kind, columns[i]);
      for (end = i + 1; end < columns.size() && family_name(*kind, columns[end]) == name;) end++;
      if (name.empty()) continue;
      Family family(out, name.c_str(), columns[i].gauge ? "gauge" : "counter", columns[i].help);
      for (const CounterRow& row : rows)
        for (size_t k = i; k < end; k++) {
          std::vector<std::pair<std::string, std::string>> labels{{c.metric_label(kind->name), row.name}};
          if (c.part) labels.emplace_back(c.part, row.part);
          labels.insert(labels.end(), row.labels.begin(), row.labels.end());
          if (columns[k].label) labels.emplace_back(columns[k].label, columns[k].value);
          family.sample(labels, row.values[k]);
        }
    }
  }
}

}  // namespace

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

  render_kind_metrics(s, out);
  {
    Family up(out, "medix_port_link_up", "gauge", "1 if the port's link is up (rte_eth_link).");
    for (const auto& nic : s.nics) up.sample({{"port", nic.port}}, uint64_t(nic.stats.link_up));
    Family speed(out, "medix_port_link_speed_mbps", "gauge", "The port's link speed in Mbit/s (0: unknown).");
    for (const auto& nic : s.nics) speed.sample({{"port", nic.port}}, uint64_t(nic.stats.speed_mbps));
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
    for (const auto& nic : s.nics) family.sample({{"port", nic.port}}, nic.stats.*f.field);
  }
  {
    Family drops(out, "medix_port_nic_drops_total", "counter",
                 "Frames the NIC dropped before a worker saw them, or failed to send, by reason.");
    for (const auto& nic : s.nics)
      for (const auto& d : nic_drops) drops.sample({{"port", nic.port}, {"reason", d.name}}, nic.stats.*d.field);
  }
  {
    Family drops(out, "medix_drops_total", "counter", "Packets the workers dropped, by reason (all workers).");
    for (unsigned r = 0; r < drop_reason_count; r++)
      drops.sample({{"reason", drop_reasons[r].name}}, s.totals.drops[r]);
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
  render_ha_metrics(dp, out);
  return out.str();
}

// HA (docs/ha.md): the role and its changes, each VRRP instance's state, and with state sync
// its peer, lag, what it synced and refused, and the pair's config check.
void render_ha_metrics(Dataplane& dp, std::ostringstream& out) {
  bool standby = dp.ha_standby.load();
  Family(out, "medix_ha_role", "gauge", "1 for the node's HA role now (active or standby), 0 for the other.")
      .sample({{"role", "active"}}, uint64_t(!standby))
      .sample({{"role", "standby"}}, uint64_t(standby));
  Family(out, "medix_ha_role_changes_total", "counter", "Changes of the node's HA role since the start.")
      .sample({}, dp.ha_roles.changes());
  Family(out, "medix_ha_failovers_total", "counter", "Changes from standby to active (takeovers) since the start.")
      .sample({}, dp.ha_roles.failovers());
  {
    std::vector<vrrp::Status> instances = dp.vrrp.status();
    Family state(out, "medix_vrrp_state", "gauge",
                 "1 for the VRRP instance's state now (initialize, backup, master), 0 for the others.");
    for (const auto& i : instances)
      for (auto st : {vrrp::State::initialize, vrrp::State::backup, vrrp::State::master})
        state.sample({{"instance", i.name},
                      {"interface", i.interface},
                      {"vrid", std::to_string(i.vrid)},
                      {"state", vrrp::name(st)}},
                     uint64_t(i.state == st));
    Family priority(out, "medix_vrrp_effective_priority", "gauge",
                    "The instance's priority after its tracked links (0: forced to backup).");
    for (const auto& i : instances) priority.sample({{"instance", i.name}}, uint64_t(i.effective_priority));
    Family transitions(out, "medix_vrrp_transitions_total", "counter", "The instance's state changes.");
    for (const auto& i : instances) transitions.sample({{"instance", i.name}}, i.transitions);
  }
  if (!dp.ha) return;
  ha::Status s = dp.ha->status();
  Family(out, "medix_ha_sync_peer_up", "gauge", "1 if the sync peer was heard in the last 3 s.")
      .sample({}, uint64_t(s.peer_last_heard_ms >= 0 && s.peer_last_heard_ms < 3000));
  Family(out, "medix_ha_sync_lag_seconds", "gauge",
         "Session records from the active's worker to the standby's install queue: the last, p99 over the last "
         "4096 datagrams, and the largest (standby).")
      .sample({{"stat", "last"}}, s.lag_ms_last / 1e3)
      .sample({{"stat", "p99"}}, s.lag_ms_p99 / 1e3)
      .sample({{"stat", "max"}}, s.lag_ms_max / 1e3);
  Family(out, "medix_ha_sync_sessions", "gauge", "Sessions live on this node.").sample({}, s.sessions);
  Family(out, "medix_ha_sync_sessions_synced_total", "counter",
         "Session records this standby applied to its workers' tables, by what they did.")
      .sample({{"action", "installed"}}, s.installed)
      .sample({{"action", "refreshed"}}, s.refreshed)
      .sample({{"action", "removed"}}, s.removed)
      .sample({{"action", "failed"}}, s.install_failed);
  Family(out, "medix_ha_sync_sas", "gauge", "SAs whose state the standby holds, or the active sends.")
      .sample({}, s.sas_synced);
  Family(out, "medix_ha_sync_sas_advanced_total", "counter", "SAs advanced past the active's use at takeovers.")
      .sample({}, s.sas_advanced);
  Family(out, "medix_ha_sync_sas_stopped_total", "counter",
         "Outbound SAs a takeover fenced where they were: the peer's use of them could not be bounded.")
      .sample({}, s.sas_stopped);
  if (dp.sa_reserve) {
    ha::ReserveStatus r = dp.sa_reserve->status();
    Family(out, "medix_ha_sync_peer_file_sas", "gauge",
           "Outbound SAs of the peer file (--state-dir DIR/ha-peer): found at the start, of those in force now and "
           "started from it at a takeover, and named on disk now.")
        .sample({{"state", "found"}}, r.peer_found_sas)
        .sample({{"state", "in_force"}}, s.peer_file_in_force)
        .sample({{"state", "used"}}, s.peer_file_used)
        .sample({{"state", "on_disk"}}, r.peer_sas);
  }
  Family(out, "medix_ha_sync_sas_fenced", "gauge",
         "Active: outbound SAs with an HA fence, and those at it (dropping as ha_sa_fenced).")
      .sample({{"state", "fenced"}}, s.sas_fenced)
      .sample({{"state", "at_fence"}}, s.sas_at_fence);
  Family(out, "medix_ha_sync_sa_acks_total", "counter",
         "Rounds of SA datagrams acknowledged: sent and withheld (standby), received (active).")
      .sample({{"action", "sent"}}, s.sa_acks_sent)
      .sample({{"action", "withheld"}}, s.sa_acks_withheld)
      .sample({{"action", "received"}}, s.sa_acks_received);
  Family(out, "medix_ha_sync_datagrams_total", "counter", "Sync datagrams sent, and received and accepted.")
      .sample({{"direction", "sent"}}, s.datagrams_sent)
      .sample({{"direction", "received"}}, s.datagrams_received);
  Family(out, "medix_ha_sync_rejected_total", "counter",
         "Sync datagrams refused, by reason: bad_mac (forged, or another key), replay, malformed.")
      .sample({{"reason", "bad_mac"}}, s.rejected_bad_mac)
      .sample({{"reason", "replay"}}, s.rejected_replay)
      .sample({{"reason", "malformed"}}, s.rejected_malformed);
  Family(out, "medix_ha_sync_lost_total", "counter",
         "Sync records or datagrams lost, by where: ring_full (active's workers), install_ring_full and "
         "unknown_worker, tenant_unknown and tenant_table_unknown (standby), datagrams (gaps in the peer's "
         "counter).")
      .sample({{"reason", "ring_full"}}, s.ring_full)
      .sample({{"reason", "install_ring_full"}}, s.install_ring_full)
      .sample({{"reason", "unknown_worker"}}, s.unknown_worker)
      .sample({{"reason", "tenant_unknown"}}, s.tenant_unknown)
      .sample({{"reason", "tenant_table_unknown"}}, s.tenant_table_unknown)
      .sample({{"reason", "datagrams"}}, s.datagrams_lost);
  Family(out, "medix_ha_sync_resyncs_total", "counter", "Bulk resyncs this standby asked for, and completed.")
      .sample({{"state", "requested"}}, s.resyncs_requested)
      .sample({{"state", "completed"}}, s.resyncs_completed);
  Family(out, "medix_ha_config_mismatch", "gauge",
         "1 while the peer is heard and its intent digest differs from this node's.")
      .sample({}, uint64_t(s.config_mismatch));
  Family(out, "medix_ha_config_mismatches_total", "counter", "Times a config mismatch with the peer began.")
      .sample({}, s.config_mismatches);
}

}  // namespace medix::dp
