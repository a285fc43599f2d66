#include "metrics.h"

#include <map>
#include <sstream>

#include "charon/glue.h"
#include "common/version.h"
#include "ha/witness.h"

namespace medix::cp {

namespace {

using Family = common::MetricFamily;

struct PeerState {
  bool up = false;         // an IKE_SA established (or being rekeyed: still usable)
  uint64_t ike_sas = 0;    // in any state
  uint64_t child_sas = 0;  // installed
};

// The IKE_SAs by state, and each peer's (strings copied: valid only during the callback).
struct IkeStates {
  std::map<std::string, uint64_t> by_state;
  std::map<std::string, PeerState> peers;
};

void add_ike_state(void* ctx, const char* peer, const char* state, uint32_t children_installed) {
  auto* states = static_cast<IkeStates*>(ctx);
  states->by_state[state]++;
  PeerState& p = states->peers[peer];
  p.ike_sas++;
  p.child_sas += children_installed;
  std::string s = state;
  if (s == "ESTABLISHED" || s == "REKEYING" || s == "REKEYED") p.up = true;
}

}  // namespace

std::string render_metrics(ControlService& service, DataplaneClient& dataplane, const ha::Link* ha_link) {
  const c1::Intent intent = service.intent();
  IkeStates states;
  cp_charon_list_ike_states(add_ike_state, &states);
  cp_ike_events events;
  cp_charon_events(&events);

  std::ostringstream out;
  out.precision(17);
  Family(out, "medix_cp_build_info", "gauge", "Always 1; medix-cp's version and the strongSwan it links as labels.")
      .sample({{"version", common::version()}, {"strongswan", MEDIX_STRONGSWAN_VERSION}}, 1);
  Family(out, "medix_cp_start_time_seconds", "gauge", "Unix time medix-cp started.")
      .sample({}, double(common::started_unix_ns()) / 1e9);

  // Peers: those of the intent, each up or not; IKE_SAs of no configured peer (a half-open one
  // before its config is chosen) count only in medix_cp_ike_sas.
  uint64_t up = 0;
  for (const auto& p : intent.peers()) up += states.peers[p.name()].up;
  Family(out, "medix_cp_peers", "gauge", "Peers of the intent: configured, and up (an IKE_SA established).")
      .sample({{"state", "configured"}}, intent.peers_size())
      .sample({{"state", "up"}}, up);
  {
    Family peer_up(out, "medix_cp_peer_up", "gauge", "1 if the peer has an established IKE_SA, else 0.");
    for (const auto& p : intent.peers()) peer_up.sample({{"peer", p.name()}}, uint64_t(states.peers[p.name()].up));
    Family peer_ike(out, "medix_cp_peer_ike_sas", "gauge", "The peer's IKE_SAs, in any state.");
    for (const auto& p : intent.peers()) peer_ike.sample({{"peer", p.name()}}, states.peers[p.name()].ike_sas);
    Family peer_child(out, "medix_cp_peer_child_sas", "gauge", "The peer's installed CHILD_SAs.");
    for (const auto& p : intent.peers()) peer_child.sample({{"peer", p.name()}}, states.peers[p.name()].child_sas);
  }
  {
    Family ike(out, "medix_cp_ike_sas", "gauge", "IKE_SAs by charon's state (ESTABLISHED, CONNECTING, ...).");
    for (const auto& [state, n] : states.by_state) ike.sample({{"state", state}}, n);
  }
  Family(out, "medix_cp_ike_events_total", "counter",
         "IKE and CHILD_SA events since the start (charon's bus): ike_up, ike_down, ike_rekey, child_up "
         "(installed), child_down (deleted), child_rekey (a new CHILD_SA replaced one), alert (an error).")
      .sample({{"event", "ike_up"}}, events.ike_up)
      .sample({{"event", "ike_down"}}, events.ike_down)
      .sample({{"event", "ike_rekey"}}, events.ike_rekey)
      .sample({{"event", "child_up"}}, events.child_up)
      .sample({{"event", "child_down"}}, events.child_down)
      .sample({{"event", "child_rekey"}}, events.child_rekey)
      .sample({{"event", "alert"}}, events.alerts);

  DataplaneClient::ReconcileStats stats[DataplaneClient::trigger_count];
  for (int t = 0; t < DataplaneClient::trigger_count; t++)
    stats[t] = dataplane.reconcile_stats(DataplaneClient::Trigger(t));
  const char* const* names = DataplaneClient::trigger_names;
  {
    Family runs(out, "medix_cp_reconcile_runs_total", "counter",
                "Runs bringing medix-dp to the intent, by trigger (start, apply: ApplyIntent, replay: medix-dp "
                "restarted).");
    for (int t = 0; t < DataplaneClient::trigger_count; t++) runs.sample({{"trigger", names[t]}}, stats[t].runs);
    Family failures(out, "medix_cp_reconcile_failures_total", "counter",
                    "Reconcile runs that failed (medix-dp refused or did not answer), by trigger.");
    for (int t = 0; t < DataplaneClient::trigger_count; t++)
      failures.sample({{"trigger", names[t]}}, stats[t].failures);
    Family seconds(out, "medix_cp_reconcile_seconds", "gauge", "The duration of the last reconcile run, by trigger.");
    for (int t = 0; t < DataplaneClient::trigger_count; t++)
      seconds.sample({{"trigger", names[t]}}, stats[t].last_seconds);
    Family success(out, "medix_cp_reconcile_last_success_timestamp_seconds", "gauge",
                   "Unix time of the last successful reconcile run, by trigger (0: none yet).");
    for (int t = 0; t < DataplaneClient::trigger_count; t++)
      success.sample({{"trigger", names[t]}}, double(stats[t].last_success_unix_ns) / 1e9);
  }
  Family(out, "medix_cp_dataplane_connected", "gauge", "1 if medix-cp's channel to medix-dp is up (gRPC READY).")
      .sample({}, uint64_t(dataplane.connected()));
  // Where the intent is kept (docs/areas.md): with etcd, whether it answers and what was applied.
  const c1::IntentStatus store = service.intent_status();
  const std::string kind = store.store().substr(0, store.store().find(' '));
  Family(out, "medix_cp_intent_store_connected", "gauge",
         "1 if the intent's store answers (the intent file always does; etcd while its watch runs).")
      .sample({{"store", kind}, {"area", store.area()}}, uint64_t(store.connected()));
  Family(out, "medix_cp_intent_version", "gauge", "The intent's version as last read (ApplyIntent's expected_version).")
      .sample({}, store.version());
  Family(out, "medix_cp_intent_applied_version", "gauge", "The intent version this medix-cp applied.")
      .sample({}, store.applied_version());
  if (store.has_bgp()) {  // --bgp: the area's daemon, its sessions, its prefixes (docs/areas.md)
    const c1::BgpStatus& bgp = store.bgp();
    Family(out, "medix_cp_bgp_daemon_connected", "gauge", "1 if the area's BGP daemon (gobgpd) answers medix-cp.")
        .sample({}, uint64_t(bgp.connected()));
    std::map<std::string, uint64_t> states{{"ESTABLISHED", 0}};
    for (const auto& s : bgp.sessions()) states[s.state()]++;
    Family sessions(out, "medix_cp_bgp_sessions", "gauge", "The BGP daemon's sessions, by state.");
    for (const auto& [state, count] : states) sessions.sample({{"state", state}}, count);
    if (!bgp.bfd_daemon().empty()) {  // --bfd: the area's BIRD
      Family(out, "medix_cp_bgp_bfd_connected", "gauge", "1 if the area's BFD daemon (BIRD) answers medix-cp.")
          .sample({}, uint64_t(bgp.bfd_connected()));
      Family bfd(out, "medix_cp_bgp_bfd_up", "gauge", "1 if BFD to the neighbour is up, else 0.");
      Family downs(out, "medix_cp_bgp_bfd_downs_total", "counter",
                   "Times BFD to the neighbour went down from up (its BGP session then shut at once).");
      for (const auto& s : bgp.sessions()) {
        if (s.bfd_state().empty()) continue;
        bfd.sample({{"neighbor", s.neighbor()}}, uint64_t(s.bfd_state() == "Up"));
        downs.sample({{"neighbor", s.neighbor()}}, s.bfd_downs());
      }
    }
    uint64_t installed = 0;
    for (const auto& l : bgp.learned()) installed += l.installed();
    Family(out, "medix_cp_bgp_prefixes", "gauge",
           "Prefixes this area announces, learned from the others, and installed in medix-dp's core tenant.")
        .sample({{"kind", "announced"}}, uint64_t(bgp.announced_size()))
        .sample({{"kind", "learned"}}, uint64_t(bgp.learned_size()))
        .sample({{"kind", "installed"}}, installed);
  }
  Family(out, "medix_cp_dataplane_owned_objects", "gauge",
         "Objects medix-cp created and keeps in medix-dp for the intent (tunnels included; FILE.owned).")
      .sample({}, uint64_t(dataplane.owned_objects()));
  Family(out, "medix_cp_intent_objects", "gauge", "Objects of the running intent, by kind.")
      .sample({{"kind", "peer"}}, intent.peers_size())
      .sample({{"kind", "port"}}, intent.ports_size())
      .sample({{"kind", "tenant"}}, intent.tenants_size())
      .sample({{"kind", "interface"}}, intent.interfaces_size())
      .sample({{"kind", "route"}}, intent.routes_size())
      .sample({{"kind", "neighbour"}}, intent.neighbours_size())
      .sample({{"kind", "static_mapping"}}, intent.static_mappings_size())
      .sample({{"kind", "napt_pool"}}, intent.napt_pools_size())
      .sample({{"kind", "policy_rule"}}, intent.policy_rules_size());
  if (dns::Sync* dns = service.dns()) {
    Family(out, "medix_cp_dns_transactions_total", "counter",
           "Knot DNS zone transactions (and view reloads) medix-cp committed to bring Knot to the intent.")
        .sample({}, dns->transactions());
    Family(out, "medix_cp_dns_in_sync", "gauge", "1 if Knot's zones equalled the intent at the last pass, else 0.")
        .sample({}, uint64_t(dns->in_sync()));
    if (const dns::Probe* probe = dns->probe()) {
      const auto counts = probe->counts();
      Family queries(out, "medix_cp_dns_queries_total", "counter",
                     "DNS queries Knot answered, by the tenant that asked (knotd's probe module; tenant \"\": no "
                     "tenant owns the source), and by answer (all, nxdomain, refused).");
      for (const auto& [tenant, c] : counts) {
        queries.sample({{"tenant", tenant}, {"answer", "all"}}, c.queries);
        queries.sample({{"tenant", tenant}, {"answer", "nxdomain"}}, c.nxdomain);
        queries.sample({{"tenant", tenant}, {"answer", "refused"}}, c.refused);
      }
    }
  }
  if (ha_link) {  // a node of a pair (docs/ha.md, "IKE state")
    const ha::Link::Stats& st = ha_link->stats();
    Family(out, "medix_cp_ha_link_datagrams_total", "counter",
           "The ha plugin's datagrams carried on the IKE sync link: sent to the peer, received from it (opened), "
           "withheld (not sent: medix-dp did not answer), unpaired (not sent: the node active and its peer not "
           "heard standby), ignored (the peer's, not applied: active here and the peer not standby).")
        .sample({{"direction", "sent"}}, st.sent.load())
        .sample({{"direction", "received"}}, st.received.load())
        .sample({{"direction", "withheld"}}, st.withheld.load())
        .sample({{"direction", "unpaired"}}, st.unpaired.load())
        .sample({{"direction", "ignored"}}, st.peer_ignored.load());
    Family(out, "medix_cp_ha_ike_confirm_total", "counter",
           "IKE messages of ours that waited for the standby to acknowledge the sync they depend on (docs/ha.md, "
           "\"IKE state\" item 6): confirmed (sent), unconfirmed (not sent); the standby's acks received.")
        .sample({{"event", "confirmed"}}, st.confirmed.load())
        .sample({{"event", "unconfirmed"}}, st.unconfirmed.load())
        .sample({{"event", "ack"}}, st.acks.load());
    Family(out, "medix_cp_ha_ike_confirm_wait_microseconds_total", "counter",
           "The confirmed IKE messages' waits for the standby's acknowledgement, summed.")
        .sample({}, st.confirm_wait_us.load());
    Family(out, "medix_cp_ha_ike_confirm_wait_max_microseconds", "gauge",
           "The longest wait of a confirmed IKE message for the standby's acknowledgement.")
        .sample({}, st.confirm_wait_max_us.load());
    Family(out, "medix_cp_ha_rejoins_total", "counter",
           "Resyncs this node asked of its active peer after a split brain or an active's withheld datagrams "
           "(docs/ha.md, \"IKE in a split brain\"); IKE_SAs whose message IDs were raised to the other node's.")
        .sample({{"event", "rejoin"}}, st.rejoins.load())
        .sample({{"event", "mids_raised"}}, st.mids_raised.load());
    Family rejected(out, "medix_cp_ha_link_rejected_total", "counter",
                    "Datagrams of the IKE sync link refused, by reason (malformed, bad_tag, replay).");
    for (auto r : {ha::Reject::malformed, ha::Reject::bad_tag, ha::Reject::replay})
      rejected.sample({{"reason", ha::reject_name(r)}}, st.rejected[size_t(r)].load());
    Family(out, "medix_cp_ha_segment_changes_total", "counter",
           "The node's IKE_SAs made active (medix-dp became active) or passive (standby).")
        .sample({{"to", "active"}}, st.activations.load())
        .sample({{"to", "passive"}}, st.deactivations.load());
    if (const ha::Witness* w = ha_link->witness()) {  // --ike-witness (docs/ha.md, "IKE state" item 6)
      const ha::Witness::Stats& ws = w->stats();
      Family(out, "medix_cp_ha_witness_holds", "gauge",
             "1 while this node holds the IKE speaker's lease in etcd (its renew deadline not passed).")
          .sample({}, uint64_t(w->holds()));
      Family(out, "medix_cp_ha_witness_lease_total", "counter",
             "The IKE speaker's lease: obtained, lost (expired at etcd or the renew deadline passed), renewals "
             "etcd answered, renewals it did not.")
          .sample({{"event", "obtained"}}, ws.obtained.load())
          .sample({{"event", "lost"}}, ws.lost.load())
          .sample({{"event", "renewed"}}, ws.renewals.load())
          .sample({{"event", "renew_failed"}}, ws.failures.load());
      Family(out, "medix_cp_ha_ike_holds_total", "counter",
             "With a witness: times this node's own IKE requests were held (active without a standby peer or the "
             "lease), and held CHILD_SA expiries run when a hold ended.")
          .sample({{"event", "held"}}, st.holds.load())
          .sample({{"event", "expiries_released"}}, st.released.load());
      Family(out, "medix_cp_ha_witness_mids_total", "counter",
             "IKE_SA message ID records with the witness: written while speaking by the lease, writes refused or "
             "unanswered, read when the lease was obtained; IKE requests not sent for want of one; CHILD_SAs "
             "left out of records past the 16 newest; answers without the lease written, the other's read.")
          .sample({{"event", "recorded"}}, ws.recorded.load())
          .sample({{"event", "record_failed"}}, ws.record_failures.load())
          .sample({{"event", "read"}}, ws.records_read.load())
          .sample({{"event", "request_dropped"}}, st.unrecorded.load())
          .sample({{"event", "child_left_out"}}, ws.children_left_out.load())
          .sample({{"event", "answered"}}, ws.answered.load())
          .sample({{"event", "answer_read"}}, ws.answers_read.load());
    }
  }
  return out.str();
}

}  // namespace medix::cp
