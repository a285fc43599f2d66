#include "ha_sync.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include <google/protobuf/struct.pb.h>
#include <grpcpp/grpcpp.h>

#include "medix/controlplane/v1/controlplane.grpc.pb.h"
#include "output.h"

namespace medix::ctl {

namespace {

const char* role_name(v1::HaRole role) {
  switch (role) {
    case v1::HA_ROLE_ACTIVE: return "active";
    case v1::HA_ROLE_STANDBY: return "standby";
    default: return "-";
  }
}

// medix-dp counts the peer lost after 3 s of silence (ha/sync.cpp): no sync, a resync when it
// is heard again (the sync link down, or the peer gone).
const char* peer_down(const v1::HaSyncStatus& s) {
  return s.peer_last_heard_ms() >= 3000 ? ": DOWN (no sync; a resync when it is heard again)" : "";
}

// The pair's config check: our digest, the peer's, and whether they differ.
void print_config(const v1::HaSyncStatus& s) {
  if (!s.configured()) return;
  if (s.config_mismatch())
    std::printf("config     MISMATCH for %ld ms: ours %s (%lu objects), the peer's %s (%lu objects); %lu times\n",
                (long)s.config_mismatch_since_ms(), s.config_digest().c_str(), (unsigned long)s.config_objects(),
                s.peer_config_digest().c_str(), (unsigned long)s.peer_config_objects(),
                (unsigned long)s.config_mismatches());
  else if (s.peer_config_digest().empty())
    std::printf("config     %s (%lu objects); the peer's not heard yet\n", s.config_digest().c_str(),
                (unsigned long)s.config_objects());
  else
    std::printf("config     the same as the peer's: %s (%lu objects); mismatches before %lu\n",
                s.config_digest().c_str(), (unsigned long)s.config_objects(), (unsigned long)s.config_mismatches());
}

// The role's last changes, the oldest first: when, from what to what, and why.
void print_history(const v1::HaSyncStatus& s) {
  std::printf("failovers  %lu (standby to active); role changes %lu\n", (unsigned long)s.failovers(),
              (unsigned long)s.role_changes());
  for (const auto& c : s.role_history())
    std::printf("  %s  %-7s -> %-7s  %s: %s\n", format_time(c.timestamp_ns()).c_str(), role_name(c.from()),
                role_name(c.to()), c.cause().c_str(), c.detail().c_str());
}

// Outbound sequence numbers reserved on disk (medix-dp --state-dir): a file that cannot be
// written is said, with how long and why (its SAs stop at their reserved number).
void print_seq(const v1::HaSyncStatus& s) {
  if (s.seq_file().empty()) {
    std::printf("seq file   none (medix-dp --state-dir): a restart starts outbound SAs at 0\n");
    return;
  }
  std::printf("seq file   %s: %lu outbound SAs, %lu waiting for a write; block %lu; %lu writes, %lu failed\n",
              s.seq_file().c_str(), (unsigned long)s.seq_sas(), (unsigned long)s.seq_sas_waiting(),
              (unsigned long)s.seq_block(), (unsigned long)s.seq_writes(), (unsigned long)s.seq_write_failures());
  if (!s.seq_error().empty())
    std::printf("           NOT WRITTEN for %ld ms: %s\n", (long)s.seq_failing_ms(), s.seq_error().c_str());
}

// The peer file beside it (docs/ha.md, "A restart that keeps the bound"): now, and as found at
// the start, what a start may still take from it and what a takeover did. Only with HA sync or
// a file: nothing else writes or reads one.
void print_peer_file(const v1::HaSyncStatus& s) {
  if (s.seq_file().empty() || !(s.configured() || s.peer_file_found() || s.peer_file_on_disk())) return;
  std::string file = s.seq_file().substr(0, s.seq_file().rfind('/') + 1) + "ha-peer";
  std::string now = "not on disk";
  if (s.peer_file_on_disk())
    now = "on disk naming " + std::to_string(s.peer_file_sas()) + " SAs, " +
          (s.peer_file_written_ms() < 0 ? "not written since the start"
                                        : "written " + std::to_string(s.peer_file_written_ms()) + " ms ago");
  std::string start = "none at the start";
  if (s.peer_file_found())
    start = "found at the start naming " + std::to_string(s.peer_file_found_sas()) + ", in force for " +
            std::to_string(s.peer_file_in_force_sas()) + ", " + std::to_string(s.peer_file_used_sas()) +
            " started from it at a takeover";
  std::printf("peer file  %s: %s; %s\n", file.c_str(), now.c_str(), start.c_str());
}

namespace c1 = medix::controlplane::v1;

const std::string no_cp_prefix = "no medix-cp runs on this node (no socket at ";

// medix-cp's IKE witness (docs/ha.md, "IKE state" item 6); "" and `out` set, or why medix-cp
// did not answer (medixctl ha goes on without it: medix-dp's part is the pair's state). No socket
// at a unix:// target is no medix-cp on this node (a pair without IKE, the demo's), said so
// rather than as a medix-cp that does not answer.
std::string get_witness(const std::string& cp_target, c1::HaWitness& out) {
  const std::string unix_scheme = "unix://";
  if (cp_target.rfind(unix_scheme, 0) == 0) {
    const std::string path = cp_target.substr(unix_scheme.size());
    struct stat st;
    if (stat(path.c_str(), &st) != 0 && errno == ENOENT) return no_cp_prefix + path + ")";
  }
  auto stub = c1::ControlPlane::NewStub(grpc::CreateChannel(cp_target, grpc::InsecureChannelCredentials()));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Status status = stub->GetHaWitness(&context, c1::GetHaWitnessRequest(), &out);
  return status.ok() ? "" : "medix-cp at " + cp_target + " did not answer: " + status.error_message();
}

void print_witness(const std::string& error, const c1::HaWitness& w) {
  if (error.rfind(no_cp_prefix, 0) == 0) {
    std::printf("witness    none: %s\n", error.c_str());
    return;
  }
  if (!error.empty()) {
    std::printf("witness    unknown (%s)\n", error.c_str());
    return;
  }
  if (!w.configured()) {
    std::printf("witness    not configured (medix-cp --ike-witness)\n");
    return;
  }
  std::printf("witness    etcd %s, key %s, %s%s%s, TTL %u s\n", w.endpoint().c_str(), w.key().c_str(),
              w.tls() ? "TLS" : "plain gRPC", w.user().empty() ? "" : ", user ", w.user().c_str(), w.ttl_s());
  std::string renewal =
      w.last_renewal_ms() < 0 ? "never renewed" : "last renewal " + std::to_string(w.last_renewal_ms()) + " ms ago";
  std::printf("           holder %s (%s); %s\n", w.holder() ? "yes" : "no",
              w.wanted() ? "wanted: active without a standby peer" : "not wanted", renewal.c_str());
  std::printf(
      "           %lu IKE exchanges held now (held %lu times); leases obtained %lu, lost %lu; renewals %lu, "
      "failed %lu\n",
      (unsigned long)w.held_exchanges(), (unsigned long)w.holds(), (unsigned long)w.obtained(), (unsigned long)w.lost(),
      (unsigned long)w.renewals(), (unsigned long)w.renew_failures());
  if (!w.holder() && !w.last_refusal().empty()) std::printf("           not obtained: %s\n", w.last_refusal().c_str());
}

void print_status(const v1::HaSyncStatus& s) {
  std::printf("role       %s\n", role_name(s.role()));
  if (!s.configured()) {
    std::printf("sync       not configured (medix-dp --ha-sync-local/--ha-sync-peer/--ha-sync-key-file)\n");
    std::printf("sessions   %lu\n", (unsigned long)s.sessions());
    print_seq(s);
    print_peer_file(s);
    print_history(s);
    return;
  }
  std::printf("sync       %s -> %s\n", s.local().c_str(), s.peer().c_str());
  if (s.peer_last_heard_ms() < 0)
    std::printf("peer       never heard\n");
  else
    std::printf("peer       %s, heard %ld ms ago%s\n", role_name(s.peer_role()), (long)s.peer_last_heard_ms(),
                peer_down(s));
  std::printf("sessions   %lu live here; installed %lu, refreshed %lu, removed %lu, failed %lu\n",
              (unsigned long)s.sessions(), (unsigned long)s.installed(), (unsigned long)s.refreshed(),
              (unsigned long)s.removed(), (unsigned long)s.install_failed());
  std::printf("SAs        %lu synced, %lu advanced at takeovers (outbound by %lu), %lu fenced where they were\n",
              (unsigned long)s.sas_synced(), (unsigned long)s.sas_advanced(), (unsigned long)s.sa_margin(),
              (unsigned long)s.sas_stopped());
  std::printf(
      "fence      %lu outbound SAs fenced, %lu at the fence; acks %lu taken, %lu sent, %lu withheld; %lu SAs raised "
      "past the standby's\n",
      (unsigned long)s.sas_fenced(), (unsigned long)s.sas_at_fence(), (unsigned long)s.sa_acks_received(),
      (unsigned long)s.sa_acks_sent(), (unsigned long)s.sa_acks_withheld(), (unsigned long)s.sas_raised());
  print_seq(s);
  print_peer_file(s);
  std::printf("lag        last %.3f ms, p99 %.3f ms, max %.3f ms (%lu samples)\n", s.lag_ms_last(), s.lag_ms_p99(),
              s.lag_ms_max(), (unsigned long)s.lag_samples());
  std::printf("sent       %lu datagrams, %lu records, %lu bytes; %lu bulk passes\n", (unsigned long)s.datagrams_sent(),
              (unsigned long)s.records_sent(), (unsigned long)s.bytes_sent(), (unsigned long)s.bulk_passes_sent());
  std::printf("received   %lu datagrams, %lu records; %lu ignored while active, %lu from a draining peer\n",
              (unsigned long)s.datagrams_received(), (unsigned long)s.records_received(),
              (unsigned long)s.ignored_not_standby(), (unsigned long)s.overlap_received());
  std::printf("rejected   bad_mac %lu, replay %lu, malformed %lu\n", (unsigned long)s.rejected_bad_mac(),
              (unsigned long)s.rejected_replay(), (unsigned long)s.rejected_malformed());
  std::printf(
      "lost       ring_full %lu, install_ring_full %lu, unknown_worker %lu, tenant_unknown %lu, "
      "tenant_table_unknown %lu, datagrams %lu\n",
      (unsigned long)s.ring_full(), (unsigned long)s.install_ring_full(), (unsigned long)s.unknown_worker(),
      (unsigned long)s.tenant_unknown(), (unsigned long)s.tenant_table_unknown(), (unsigned long)s.datagrams_lost());
  std::printf("resyncs    %lu requested, %lu completed, %lu incomplete, last %lu ms; role changes %lu\n",
              (unsigned long)s.resyncs_requested(), (unsigned long)s.resyncs_completed(),
              (unsigned long)s.resyncs_incomplete(), (unsigned long)s.last_resync_ms(),
              (unsigned long)s.role_changes());
  print_config(s);
  print_history(s);
}

// A planned switchover, run against the node that is to become active (docs/ha.md): its VRRP
// instances (of one group, or all) get a priority above the active's, with preemption, in one
// transaction; it takes the addresses over when their master down timers run out, active
// before its gratuitous ARP, while the old master drains what its segments still send it.
int switchover(Client& client, Args& args, bool json) {
  std::string group;
  unsigned priority = 254, wait_s = 10;
  bool group_given = false;
  while (!args.done()) {
    if (args.take("--group")) {
      group = args.next("a VRRP group");
      group_given = true;
    } else if (args.take("--priority")) {
      std::string text = args.next("a priority (1..254)");
      char* end = nullptr;
      unsigned long n = std::strtoul(text.c_str(), &end, 10);
      if (end == text.c_str() || *end || n < 1 || n > 254) throw UsageError("ha-sync switchover --priority: 1..254");
      priority = unsigned(n);
    } else if (args.take("--wait")) {
      std::string text = args.next("seconds");
      char* end = nullptr;
      unsigned long n = std::strtoul(text.c_str(), &end, 10);
      if (end == text.c_str() || *end || n < 1 || n > 600) throw UsageError("ha-sync switchover --wait: 1..600 s");
      wait_s = unsigned(n);
    } else {
      throw UsageError("ha-sync switchover: unknown option " + args.peek());
    }
  }
  v1::ListResponse instances = client.list(v1::VRRP_INSTANCE, "");
  v1::ApplyRequest request;
  request.set_expected_version(instances.version());
  for (const auto& o : instances.objects()) {
    if (group_given && o.vrrp_instance().group() != group) continue;
    auto* op = request.add_operations();
    op->set_op(v1::Operation::UPDATE);
    *op->mutable_object() = o;
    op->mutable_object()->mutable_vrrp_instance()->set_priority(priority);
    op->mutable_object()->mutable_vrrp_instance()->set_preempt(true);
  }
  if (request.operations().empty())
    throw Failure(group_given ? "ha-sync switchover: no VRRP instance of group \"" + group + "\" on this node"
                              : "ha-sync switchover: no VRRP instance on this node");
  auto start = std::chrono::steady_clock::now();
  v1::ApplyResponse applied = client.apply(request);
  bool active = false;
  while (std::chrono::steady_clock::now() - start < std::chrono::seconds(wait_s)) {
    if (client.get_ha_sync().role() == v1::HA_ROLE_ACTIVE) {
      active = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  if (json)
    std::printf("{\"instances\": %d, \"priority\": %u, \"version\": %lu, \"active\": %s, \"ms\": %ld}\n",
                request.operations_size(), priority, (unsigned long)applied.version(), active ? "true" : "false",
                long(ms));
  else if (active)
    std::printf("active after %ld ms (%d VRRP instances at priority %u, preempting)\n", long(ms),
                request.operations_size(), priority);
  if (!active)
    throw Failure("ha-sync switchover: not active after " + std::to_string(wait_s) +
                  " s (is this node the standby, and VRRP driving its role: --ha-vrrp-group?)");
  return 0;
}

}  // namespace

int ha_command(Client& client, const std::string& cp_target, Args& args, bool json) {
  args.expect_done();
  v1::HaSyncStatus status = client.get_ha_sync();
  v1::GetVrrpResponse vrrp = client.vrrp();
  c1::HaWitness witness;
  std::string witness_error = get_witness(cp_target, witness);
  if (json) {  // {"sync": GetHaSync, "vrrp": GetVrrp, "ike_witness": GetHaWitness or {"error": why}}
    google::protobuf::Struct unknown;
    (*unknown.mutable_fields())["error"].set_string_value(witness_error);
    std::cout << "{\"sync\": " << to_json(status, true) << ",\n\"vrrp\": " << to_json(vrrp, true)
              << ",\n\"ike_witness\": " << (witness_error.empty() ? to_json(witness, true) : to_json(unknown, true))
              << "}\n";
    return 0;
  }
  std::printf("role       %s\n", role_name(status.role()));
  if (status.configured()) {
    if (status.peer_last_heard_ms() < 0)
      std::printf("peer       %s, never heard\n", status.peer().c_str());
    else
      std::printf("peer       %s %s, heard %ld ms ago%s\n", status.peer().c_str(), role_name(status.peer_role()),
                  (long)status.peer_last_heard_ms(), peer_down(status));
    std::printf(
        "sync       %lu sessions live here, %lu SAs synced; lag p99 %.3f ms (max %.3f); rejected: bad_mac "
        "%lu, replay %lu, malformed %lu\n",
        (unsigned long)status.sessions(), (unsigned long)status.sas_synced(), status.lag_ms_p99(), status.lag_ms_max(),
        (unsigned long)status.rejected_bad_mac(), (unsigned long)status.rejected_replay(),
        (unsigned long)status.rejected_malformed());
    print_config(status);
  } else {
    std::printf("sync       not configured\n");
  }
  print_witness(witness_error, witness);
  print_seq(status);
  print_peer_file(status);
  print_history(status);
  std::cout << "\n";
  print_vrrp(std::cout, vrrp);
  return 0;
}

int ha_sync_command(Client& client, Args& args, bool json) {
  if (args.take("switchover")) return switchover(client, args, json);
  if (args.take("role")) {
    std::string role = args.next("a role (active or standby)");
    v1::SetHaRoleRequest request;
    if (role == "active")
      request.set_role(v1::HA_ROLE_ACTIVE);
    else if (role == "standby")
      request.set_role(v1::HA_ROLE_STANDBY);
    else
      throw UsageError("ha-sync role: active or standby, not \"" + role + "\"");
    if (args.take("--reason")) request.set_reason(args.next("a reason"));
    args.expect_done();
    v1::SetHaRoleResponse response = client.set_ha_role(request);
    if (json)
      std::cout << to_json(response, true) << "\n";
    else
      std::cout << role << " (was " << role_name(response.previous()) << ")\n";
    return 0;
  }
  args.take("show");
  args.expect_done();
  v1::HaSyncStatus status = client.get_ha_sync();
  if (json)
    std::cout << to_json(status, true) << "\n";
  else
    print_status(status);
  return 0;
}

}  // namespace medix::ctl
