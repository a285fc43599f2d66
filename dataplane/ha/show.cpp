#include "ha/show.h"

#include "ha/reserve.h"
#include "ha/sync.h"
#include "runtime/dataplane.h"

namespace medix::dp {

namespace v1 = medix::dataplane::v1;

void fill_ha_sync(Dataplane& dp, v1::HaSyncStatus& out) {
  bool standby = dp.ha_standby.load();
  out.set_role(standby ? v1::HA_ROLE_STANDBY : v1::HA_ROLE_ACTIVE);
  auto role = [](bool is_standby) { return is_standby ? v1::HA_ROLE_STANDBY : v1::HA_ROLE_ACTIVE; };
  for (const auto& c : dp.ha_roles.last()) {
    auto* h = out.add_role_history();
    h->set_timestamp_ns(c.realtime_ns);
    h->set_from(role(c.from_standby));
    h->set_to(role(c.to_standby));
    h->set_cause(ha::cause_name(c.cause));
    h->set_detail(c.detail);
  }
  out.set_failovers(dp.ha_roles.failovers());
  out.set_config_mismatch_since_ms(-1);
  out.set_seq_failing_ms(-1);
  out.set_peer_file_written_ms(-1);
  if (dp.sa_reserve) {
    ha::ReserveStatus r = dp.sa_reserve->status();
    out.set_seq_file(r.file);
    out.set_seq_block(r.block);
    out.set_seq_sas(r.sas);
    out.set_seq_sas_waiting(r.sas_waiting);
    out.set_seq_writes(r.writes);
    out.set_seq_write_failures(r.write_failures);
    out.set_seq_error(r.error);
    out.set_seq_failing_ms(r.failing_ms);
    out.set_peer_file_found(r.peer_found);
    out.set_peer_file_found_sas(r.peer_found_sas);
    out.set_peer_file_on_disk(r.peer_on_disk);
    out.set_peer_file_sas(r.peer_sas);
    out.set_peer_file_written_ms(r.peer_written_ms);
  }
  if (!dp.ha) {
    out.set_peer_last_heard_ms(-1);
    out.set_sessions(ha::live_sessions(dp));
    return;
  }
  ha::Status s = dp.ha->status();
  out.set_configured(s.configured);
  out.set_local(s.local);
  out.set_peer(s.peer);
  out.set_peer_role(s.peer_role == int(ha::WireRole::active)    ? v1::HA_ROLE_ACTIVE
                    : s.peer_role == int(ha::WireRole::standby) ? v1::HA_ROLE_STANDBY
                                                                : v1::HA_ROLE_UNSPECIFIED);
  out.set_peer_last_heard_ms(s.peer_last_heard_ms);
  out.set_datagrams_sent(s.datagrams_sent);
  out.set_datagrams_received(s.datagrams_received);
  out.set_records_sent(s.records_sent);
  out.set_records_received(s.records_received);
  out.set_bytes_sent(s.bytes_sent);
  out.set_rejected_bad_mac(s.rejected_bad_mac);
  out.set_rejected_replay(s.rejected_replay);
  out.set_rejected_malformed(s.rejected_malformed);
  out.set_ring_full(s.ring_full);
  out.set_install_ring_full(s.install_ring_full);
  out.set_ignored_not_standby(s.ignored_not_standby);
  out.set_overlap_received(s.overlap_received);
  out.set_sa_acks_sent(s.sa_acks_sent);
  out.set_sa_acks_withheld(s.sa_acks_withheld);
  out.set_sa_acks_received(s.sa_acks_received);
  out.set_sas_fenced(s.sas_fenced);
  out.set_sas_at_fence(s.sas_at_fence);
  out.set_sas_raised(s.sas_raised);
  out.set_sas_stopped(s.sas_stopped);
  out.set_peer_file_in_force_sas(s.peer_file_in_force);
  out.set_peer_file_used_sas(s.peer_file_used);
  out.set_installed(s.installed);
  out.set_refreshed(s.refreshed);
  out.set_removed(s.removed);
  out.set_install_failed(s.install_failed);
  out.set_bulk_passes_sent(s.bulk_passes_sent);
  out.set_resyncs_requested(s.resyncs_requested);
  out.set_resyncs_completed(s.resyncs_completed);
  out.set_last_resync_ms(s.last_resync_ms);
  out.set_sessions(s.sessions);
  out.set_sas_synced(s.sas_synced);
  out.set_sas_advanced(s.sas_advanced);
  out.set_role_changes(dp.ha_roles.changes());  // every change, not only those the sync thread saw
  out.set_sa_margin(s.sa_margin);
  out.set_lag_ms_last(s.lag_ms_last);
  out.set_lag_ms_p99(s.lag_ms_p99);
  out.set_lag_ms_max(s.lag_ms_max);
  out.set_lag_samples(s.lag_samples);
  out.set_datagrams_lost(s.datagrams_lost);
  out.set_resyncs_incomplete(s.resyncs_incomplete);
  out.set_unknown_worker(s.unknown_worker);
  out.set_tenant_unknown(s.tenant_unknown);
  out.set_tenant_table_unknown(s.tenant_table_unknown);
  out.set_config_digest(s.config.hex());
  out.set_config_objects(s.config.objects);
  if (s.peer_config_known) {
    out.set_peer_config_digest(s.peer_config.hex());
    out.set_peer_config_objects(s.peer_config.objects);
  }
  out.set_config_mismatch(s.config_mismatch);
  out.set_config_mismatches(s.config_mismatches);
  out.set_config_mismatch_since_ms(s.config_mismatch ? s.config_mismatch_ms : -1);
}

}  // namespace medix::dp
