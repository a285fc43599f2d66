// Counters for engineers: DPDK telemetry commands while running, a table at exit.
#include <rte_lcore.h>
#include <rte_telemetry.h>

#include <cinttypes>
#include <cstdio>
#include <set>

#include "runtime/snapshot.h"

namespace medix::dp {

namespace {

Dataplane* telemetry_dp = nullptr;

rte_tel_data* dict() {
  rte_tel_data* d = rte_tel_data_alloc();
  rte_tel_data_start_dict(d);
  return d;
}

// DPDK 22.11 accepts only [A-Za-z0-9_/] in dictionary keys (and no dictionaries inside
// arrays), while object names are free text ("hospital-a"). So each object is keyed by its
// name with other characters turned into '_', and carries its exact name inside.
std::string telemetry_key(const std::string& name, std::set<std::string>& used) {
  std::string key = name;
  for (char& ch : key)
    if (!isalnum(static_cast<unsigned char>(ch)) && ch != '_' && ch != '/') ch = '_';
  for (unsigned n = 2; !used.insert(key).second; n++) key = key.substr(0, key.find('~')) + "~" + std::to_string(n);
  return key;
}

void add_entry(rte_tel_data* d, std::set<std::string>& used, const std::string& name, rte_tel_data* entry) {
  if (rte_tel_data_add_dict_container(d, telemetry_key(name, used).c_str(), entry, 0) != 0)
    rte_tel_data_free(entry);  // not taken (e.g. past 256 entries): ours to free
}

// A row's columns, by field.
void add_columns(rte_tel_data* e, const KindCounters& counters, const CounterRow& row) {
  for (size_t i = 0; i < counters.columns.size() && i < row.values.size(); i++)
    rte_tel_data_add_dict_u64(e, counters.columns[i].field, row.values[i]);
}

// A kind's counters by its list ("tenants"), an entry per row with "name" and its columns;
// `filter` (the command's parameter) selects one name.
int rows_cmd(rte_tel_data* d, const char* filter, const char* list) {
  rte_tel_data_start_dict(d);
  std::set<std::string> used;
  CounterSnapshot s = take_snapshot(*telemetry_dp);
  const CounterSnapshot::KindRows* k = s.of(list);
  if (!k) return 0;
  for (const CounterRow& row : k->rows) {
    if (filter && *filter && row.name != filter) continue;
    rte_tel_data* e = dict();
    rte_tel_data_add_dict_string(e, "name", row.name.c_str());
    add_columns(e, *k->kind->counters, row);
    add_entry(d, used, row.name, e);
  }
  return 0;
}

// The ports' rows with their NICs' link and drops.
int ports_cmd(const char*, const char* params, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  std::set<std::string> used;
  CounterSnapshot s = take_snapshot(*telemetry_dp);
  const CounterSnapshot::KindRows* ports = s.of("ports");
  for (size_t i = 0; ports && i < ports->rows.size() && i < s.nics.size(); i++) {
    const CounterRow& row = ports->rows[i];
    if (params && *params && row.name != params) continue;
    const NicStats& nic = s.nics[i].stats;
    rte_tel_data* e = dict();
    rte_tel_data_add_dict_string(e, "name", row.name.c_str());
    add_columns(e, *ports->kind->counters, row);
    rte_tel_data_add_dict_int(e, "link_up", nic.link_up);
    rte_tel_data_add_dict_u64(e, "speed_mbps", nic.speed_mbps);
    for (const auto& drop : nic_drops) rte_tel_data_add_dict_u64(e, drop.name, nic.*drop.field);
    add_entry(d, used, row.name, e);
  }
  return 0;
}

int interfaces_cmd(const char*, const char* params, rte_tel_data* d) { return rows_cmd(d, params, "interfaces"); }
int tenants_cmd(const char*, const char* params, rte_tel_data* d) { return rows_cmd(d, params, "tenants"); }
int nat_cmd(const char*, const char* params, rte_tel_data* d) { return rows_cmd(d, params, "nat"); }

void add_drops(rte_tel_data* d, const uint64_t* drops) {
  for (unsigned r = 0; r < drop_reason_count; r++) rte_tel_data_add_dict_u64(d, drop_reasons[r].name, drops[r]);
}

int drops_cmd(const char*, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  add_drops(d, take_snapshot(*telemetry_dp).totals.drops);  // since the last clear
  return 0;
}

int drops_by_lcore_cmd(const char*, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  for (size_t q = 0; q < telemetry_dp->workers.size(); q++) {
    rte_tel_data* e = dict();
    add_drops(e, telemetry_dp->lcore_stats(q).drops);
    rte_tel_data_add_dict_container(d, std::to_string(telemetry_dp->workers[q]->lcore).c_str(), e, 0);
  }
  return 0;
}

int drop_reasons_cmd(const char*, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  for (const auto& r : drop_reasons) rte_tel_data_add_dict_string(d, r.name, r.description);
  return 0;
}

// A parameter "on" or "off" switches per-stage timing first (calls and packets are counted
// either way; cycles only while on).
int runtime_cmd(const char*, const char* params, rte_tel_data* d) {
  if (params && *params) {
    std::string p(params);
    if (p != "on" && p != "off") return -EINVAL;
    telemetry_dp->stage_timing.store(p == "on", std::memory_order_relaxed);
  }
  rte_tel_data_start_dict(d);
  rte_tel_data_add_dict_u64(d, "timing", telemetry_dp->stage_timing.load(std::memory_order_relaxed) ? 1 : 0);
  StageStats stages[unsigned(Stage::count)] = {};  // since the last clear
  for (size_t q = 0; q < telemetry_dp->workers.size(); q++) {
    LcoreStats l = telemetry_dp->lcore_stats(q);
    for (unsigned s = 0; s < unsigned(Stage::count); s++) {
      stages[s].calls += l.stages[s].calls;
      stages[s].packets += l.stages[s].packets;
      stages[s].cycles += l.stages[s].cycles;
    }
  }
  rte_tel_data_add_dict_u64(d, "tsc_hz", telemetry_dp->tsc_hz);
  for (unsigned s = 0; s < unsigned(Stage::count); s++) {
    rte_tel_data* e = dict();
    const StageStats& st = stages[s];
    rte_tel_data_add_dict_u64(e, "calls", st.calls);
    rte_tel_data_add_dict_u64(e, "packets", st.packets);
    rte_tel_data_add_dict_u64(e, "cycles", st.cycles);
    rte_tel_data_add_dict_u64(e, "cycles_per_packet", st.packets ? st.cycles / st.packets : 0);
    rte_tel_data_add_dict_container(d, stage_names[s], e, 0);
  }
  return 0;
}

int neighbours_cmd(const char*, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  std::set<std::string> used;
  for (const auto& n : take_snapshot(*telemetry_dp, true).neighbours) {
    rte_tel_data* e = dict();
    rte_tel_data_add_dict_string(e, "interface", n.interface.c_str());
    rte_tel_data_add_dict_string(e, "address", n.address.c_str());
    rte_tel_data_add_dict_string(e, "mac", n.mac.c_str());
    rte_tel_data_add_dict_int(e, "static", n.is_static);
    add_entry(d, used, n.interface + "/" + n.address, e);
  }
  return 0;
}

int events_cmd(const char*, const char*, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  Counters c = telemetry_dp->totals();
  rte_tel_data_add_dict_u64(d, "icmp_sent", c.icmp_sent);
  rte_tel_data_add_dict_u64(d, "icmp_rate_limited", c.icmp_rate_limited);
  rte_tel_data_add_dict_u64(d, "arp_requests_sent", c.arp_requests_sent);
  rte_tel_data_add_dict_u64(d, "arp_replies_sent", c.arp_replies_sent);
  rte_tel_data_add_dict_u64(d, "arp_replies_received", c.arp_replies_received);
  rte_tel_data_add_dict_u64(d, "ike_punted", c.ike_punted);
  rte_tel_data_add_dict_u64(d, "bgp_punted", c.bgp_punted);
  rte_tel_data_add_dict_u64(d, "bfd_punted", c.bfd_punted);
  return 0;
}

// A kind's counters (Kind::counters) by its list's name, the parameter ("policers",
// "shaper_classes"): an entry per row, keyed by "name" or "name/part" (its exact text in
// "row"), with its columns.
int kind_counters_cmd(const char*, const char* params, rte_tel_data* d) {
  rte_tel_data_start_dict(d);
  if (!params || !*params) return -1;
  std::set<std::string> used;
  CounterSnapshot s = take_snapshot(*telemetry_dp);
  for (const auto& [kind, rows] : s.kinds) {
    if (std::string(kind->counters->list) != params) continue;
    for (const CounterRow& row : rows) {
      std::string id = row.part.empty() ? row.name : row.name + "/" + row.part;
      rte_tel_data* e = dict();
      rte_tel_data_add_dict_string(e, "name", row.name.c_str());
      if (kind->counters->part) rte_tel_data_add_dict_string(e, kind->counters->part, row.part.c_str());
      rte_tel_data_add_dict_string(e, "row", id.c_str());  // exact, where the key is not
      add_columns(e, *kind->counters, row);
      add_entry(d, used, id, e);
    }
  }
  return 0;
}

}  // namespace

void register_telemetry(Dataplane& dp) {
  telemetry_dp = &dp;
  rte_telemetry_register_cmd("/medix/ports", ports_cmd, "Port counters. Parameter: a port name");
  rte_telemetry_register_cmd("/medix/interfaces", interfaces_cmd, "Interface counters. Parameter: a name");
  rte_telemetry_register_cmd("/medix/tenants", tenants_cmd, "Tenant counters. Parameter: a tenant name");
  rte_telemetry_register_cmd("/medix/drops", drops_cmd, "Dropped packets by reason, all workers");
  rte_telemetry_register_cmd("/medix/nat", nat_cmd, "Crossing the core, by origin tenant. Parameter: a tenant name");
  rte_telemetry_register_cmd("/medix/drops_by_lcore", drops_by_lcore_cmd, "Dropped packets by lcore and reason");
  rte_telemetry_register_cmd("/medix/drop_reasons", drop_reasons_cmd, "What each drop reason means");
  rte_telemetry_register_cmd("/medix/runtime", runtime_cmd,
                             "TSC cycles per packet per pipeline stage. Parameter: on|off switches the stage timing");
  rte_telemetry_register_cmd("/medix/neighbours", neighbours_cmd, "ARP table: interface, address, MAC");
  rte_telemetry_register_cmd("/medix/events", events_cmd, "ICMP and ARP messages medix-dp sent and took");
  rte_telemetry_register_cmd("/medix/kind_counters", kind_counters_cmd,
                             "A kind's counters. Parameter: its list (policers, shaper_classes)");
}

namespace {

// The columns `fields` of a kind's rows (its list: "tenants"), by row.
std::vector<std::pair<std::string, std::vector<uint64_t>>> columns_of(const CounterSnapshot& s, const char* list,
                                                                      std::initializer_list<const char*> fields) {
  std::vector<std::pair<std::string, std::vector<uint64_t>>> out;
  const CounterSnapshot::KindRows* k = s.of(list);
  if (!k) return out;
  for (const CounterRow& row : k->rows) {
    std::vector<uint64_t> v;
    for (const char* f : fields) {
      size_t i = column_of(*k->kind->counters, f);
      v.push_back(i < row.values.size() ? row.values[i] : 0);
    }
    out.push_back({row.name, std::move(v)});
  }
  return out;
}

}  // namespace

void print_counters(Dataplane& dp, FILE* out) {
  CounterSnapshot s = take_snapshot(dp);
  const Counters& c = s.totals;
  fprintf(out, "%-24s %14s %16s %14s %16s %10s\n", "port", "rx packets", "rx bytes", "tx packets", "tx bytes",
          "tx drop");
  for (const auto& [name, p] :
       columns_of(s, "ports", {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes", "tx_dropped"}))
    fprintf(out, "%-24s %14" PRIu64 " %16" PRIu64 " %14" PRIu64 " %16" PRIu64 " %10" PRIu64 "\n", name.c_str(), p[0],
            p[1], p[2], p[3], p[4]);
  fprintf(out, "\n%-24s %14s %16s %14s %16s\n", "interface", "rx packets", "rx bytes", "tx packets", "tx bytes");
  for (const auto& [name, f] : columns_of(s, "interfaces", {"rx_packets", "rx_bytes", "tx_packets", "tx_bytes"}))
    fprintf(out, "%-24s %14" PRIu64 " %16" PRIu64 " %14" PRIu64 " %16" PRIu64 "\n", name.c_str(), f[0], f[1], f[2],
            f[3]);
  fprintf(out, "\n%-24s %14s %14s %14s\n", "tenant", "rx packets", "tx packets", "drops");
  for (const auto& [name, x] : columns_of(s, "tenants", {"rx_packets", "tx_packets", "drops"}))
    fprintf(out, "%-24s %14" PRIu64 " %14" PRIu64 " %14" PRIu64 "\n", name.c_str(), x[0], x[1], x[2]);
  fprintf(out, "\n%-24s %14s  %s\n", "drop reason", "packets", "meaning");
  for (unsigned r = 0; r < drop_reason_count; r++)
    if (c.drops[r])
      fprintf(out, "%-24s %14" PRIu64 "  %s\n", drop_reasons[r].name, c.drops[r], drop_reasons[r].description);
  fprintf(out,
          "\nicmp sent %" PRIu64 ", icmp rate-limited %" PRIu64 ", arp requests sent %" PRIu64
          ", arp replies sent %" PRIu64 ", arp replies received %" PRIu64 "\n",
          c.icmp_sent, c.icmp_rate_limited, c.arp_requests_sent, c.arp_replies_sent, c.arp_replies_received);
  fprintf(out, "\n%-12s %12s %14s %12s\n", "stage", "calls", "packets", "cycles/pkt");
  for (unsigned st = 0; st < unsigned(Stage::count); st++) {
    const StageStats& x = c.stages[st];
    if (x.calls)
      fprintf(out, "%-12s %12" PRIu64 " %14" PRIu64 " %12" PRIu64 "\n", stage_names[st], x.calls, x.packets,
              x.packets ? x.cycles / x.packets : 0);
  }
  fflush(out);
}

}  // namespace medix::dp
