#include "peers.h"
#include "common/json.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <ctime>
#include <fstream>
#include <iostream>
#include <sstream>

#include "client.h"
#include "medix/controlplane/v1/controlplane.grpc.pb.h"
#include "output.h"

namespace medix::ctl {

namespace {

namespace c1 = medix::controlplane::v1;

void check(const grpc::Status& status) {
  if (!status.ok()) throw ServerError(status.error_code(), status.error_message());
}

std::unique_ptr<grpc::ClientContext> context() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  return c;
}

std::string join(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

std::string hex(uint32_t spi) {
  char buf[16];
  snprintf(buf, sizeof(buf), "%08x", spi);
  return buf;
}

std::string seconds(int64_t s) { return s < 0 ? "-" : std::to_string(s) + "s"; }

std::string when(int64_t unix_seconds) {
  time_t t = unix_seconds;
  tm local;
  localtime_r(&t, &local);
  char buf[32];
  strftime(buf, sizeof(buf), "%F %T", &local);
  return buf;
}

void print_list(const c1::ListPeersResponse& response) {
  Table table({{"PEER"},
               {"REMOTE"},
               {"TUNNEL"},
               {"IKE"},
               {"CHILD"},
               {"SPI-IN"},
               {"SPI-OUT"},
               {"BYTES-IN", true},
               {"BYTES-OUT", true},
               {"LAST-ERROR"}});
  for (const auto& s : response.peers()) {
    std::string ike, child, spi_in, spi_out, in, out, error;
    if (!s.ike_sas().empty()) {
      const auto& sa = s.ike_sas(s.ike_sas_size() - 1);
      ike = sa.state();
      for (const auto& c : sa.child_sas()) {
        if (c.state() != "INSTALLED") continue;  // the current one (others are rekeyed ones)
        child = c.state();
        spi_in = hex(c.spi_in());
        spi_out = hex(c.spi_out());
        in = std::to_string(c.bytes_in());
        out = std::to_string(c.bytes_out());
      }
    }
    if (!s.errors().empty()) error = s.errors(s.errors_size() - 1).what();
    table.row(
        {s.peer().name(), s.peer().remote_address(), s.peer().tunnel(), ike, child, spi_in, spi_out, in, out, error});
  }
  table.print(std::cout);
}

void print_peer(const c1::PeerStatus& s) {
  const auto& p = s.peer();
  std::cout << "peer " << p.name() << ": " << p.local_address() << " (" << p.local_id() << ") <-> "
            << p.remote_address() << " (" << p.remote_id() << "), " << (p.certificate().empty() ? "PSK" : "X.509")
            << "\n"
            << "  tunnel " << p.tunnel() << " of tenant " << p.tenant() << ", underlay " << p.underlay_tenant()
            << "; selectors " << join(p.local_selectors()) << " === " << join(p.remote_selectors()) << "\n";
  if (s.ike_sas().empty()) std::cout << "  no IKE_SA\n";
  for (const auto& sa : s.ike_sas()) {
    std::cout << "  IKE_SA #" << sa.unique_id() << " " << sa.state() << " " << sa.local() << " <-> " << sa.remote()
              << (sa.initiator() ? " (we initiated)" : "") << "\n"
              << "    " << sa.proposal() << "; established " << seconds(sa.established_seconds()) << " ago, rekey in "
              << seconds(sa.rekey_in_seconds()) << "\n";
    for (const auto& c : sa.child_sas()) {
      std::cout << "    CHILD_SA " << c.name() << " #" << c.unique_id() << " " << c.state() << " SPIs "
                << hex(c.spi_in()) << " in, " << hex(c.spi_out()) << " out; " << c.proposal() << "\n"
                << "      " << join(c.local_selectors()) << " === " << join(c.remote_selectors()) << "\n"
                << "      in " << c.bytes_in() << " bytes " << c.packets_in() << " packets, out " << c.bytes_out()
                << " bytes " << c.packets_out() << " packets; installed " << seconds(c.installed_seconds())
                << " ago, rekey in " << seconds(c.rekey_in_seconds()) << "\n";
    }
  }
  if (!s.errors().empty()) std::cout << "  last errors:\n";
  for (const auto& e : s.errors())
    std::cout << "    " << when(e.time_unix()) << " " << e.what() << (e.reason().empty() ? "" : ": " + e.reason())
              << "\n";
}

}  // namespace

c1::Version cp_version(const std::string& target) {
  auto stub = c1::ControlPlane::NewStub(grpc::CreateChannel(target, grpc::InsecureChannelCredentials()));
  c1::Version version;
  check(stub->GetVersion(context().get(), c1::GetVersionRequest(), &version));
  return version;
}

int peers_command(const std::string& target, bool json, const std::string& command, Args& args) {
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);
  auto stub =
      c1::ControlPlane::NewStub(grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), arguments));
  if (command == "peers") {
    args.expect_done();
    c1::ListPeersResponse response;
    check(stub->ListPeers(context().get(), c1::ListPeersRequest(), &response));
    if (json)
      std::cout << to_json(response, true);
    else
      print_list(response);
    return 0;
  }
  if (command == "areas") {
    args.expect_done();
    c1::ListAreasResponse response;
    check(stub->ListAreas(context().get(), c1::ListAreasRequest(), &response));
    if (json) {
      std::cout << to_json(response, true);
      return 0;
    }
    const int64_t now =
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
            .count();
    for (const auto& a : response.areas()) {
      std::cout << "area " << (a.area().empty() ? "-" : a.area()) << ": intent version " << a.version() << ", applied "
                << a.applied_version() << ", store " << (a.connected() ? "connected" : "disconnected");
      if (a.written_unix_ns()) std::cout << ", status written " << (now - a.written_unix_ns()) / 1000000 << " ms ago";
      std::cout << "\n";
      if (!a.last_error().empty()) std::cout << "  last error: " << a.last_error() << "\n";
      if (!a.has_bgp()) {
        std::cout << "  bgp: none\n";
        continue;
      }
      const auto& b = a.bgp();
      std::cout << "  bgp " << b.daemon() << ": " << (b.connected() ? "connected" : "not answering") << "\n";
      if (!b.last_error().empty()) std::cout << "  bgp last error: " << b.last_error() << "\n";
      if (!b.bfd_daemon().empty())
        std::cout << "  bfd " << b.bfd_daemon() << ": " << (b.bfd_connected() ? "connected" : "not answering") << "\n";
      if (!b.backbone_port().empty())
        std::cout << "  backbone port " << b.backbone_port() << ": link " << (b.backbone_link_up() ? "up" : "down")
                  << ", seen going down " << b.backbone_cuts() << " times\n";
      for (const auto& s : b.sessions()) {
        std::cout << "  session " << s.neighbor() << " " << s.state();
        if (s.hold_time()) std::cout << " hold " << s.hold_time() << " s";
        if (s.up_unix_ns()) std::cout << " up " << (now - s.up_unix_ns()) / 1000000000 << " s";
        if (!s.bfd_state().empty()) std::cout << " bfd " << s.bfd_state() << " (down " << s.bfd_downs() << " times)";
        std::cout << "\n";
      }
      for (const auto& p : b.announced())
        std::cout << "  announced " << p.prefix() << " tenant " << p.tenant() << " next-hop " << p.next_hop()
                  << " local-pref " << p.local_pref() << "\n";
      for (const auto& p : b.learned())
        std::cout << "  learned " << p.prefix() << " next-hop " << p.next_hop() << " local-pref " << p.local_pref()
                  << " from " << p.from() << (p.installed() ? " installed" : " not-installed")
                  << (p.reason().empty() ? "" : " (" + p.reason() + ")") << "\n";
    }
    return 0;
  }
  if (command == "intent") {
    std::string action = args.next("show, apply or status");
    if (action == "status") {
      args.expect_done();
      c1::IntentStatus status;
      check(stub->GetIntentStatus(context().get(), c1::GetIntentStatusRequest(), &status));
      if (json) {
        std::cout << to_json(status, true);
      } else {
        std::cout << "store " << status.store() << (status.area().empty() ? "" : ", area " + status.area()) << ": "
                  << (status.connected() ? "connected" : "disconnected") << "\nintent version " << status.version()
                  << ", applied " << status.applied_version() << "\n";
        if (!status.last_error().empty()) std::cout << "last error: " << status.last_error() << "\n";
      }
      return 0;
    }
    if (action == "show") {
      args.expect_done();
      c1::Intent intent;
      check(stub->GetIntent(context().get(), c1::GetIntentRequest(), &intent));
      std::cout << to_json(intent, true);
      return 0;
    }
    if (action != "apply") throw UsageError("intent: \"" + action + "\" is none of show, apply, status");
    std::string path = args.next("an intent file");
    c1::ApplyIntentRequest request;
    if (args.take("--expected-version")) {
      const std::string v = args.next("a version (medixctl intent status)");
      char* end = nullptr;
      request.set_expected_version(strtoull(v.c_str(), &end, 10));
      if (v.empty() || *end || v[0] == '-') throw UsageError("--expected-version: '" + v + "' is not a version");
    }
    args.expect_done();
    std::ifstream in(path);
    std::stringstream text;
    if (!in || !(text << in.rdbuf())) throw Failure(path + ": cannot read the file");
    if (auto error = common::parse_json(text.str(), *request.mutable_intent())) throw Failure(path + ": " + *error);
    c1::ApplyIntentResponse response;
    check(stub->ApplyIntent(context().get(), request, &response));
    if (json) {
      std::cout << to_json(response, true);
    } else {
      auto names = [](const google::protobuf::RepeatedPtrField<std::string>& n) { return n.empty() ? "-" : join(n); };
      std::cout << "intent applied: added " << names(response.added()) << "; changed " << names(response.changed())
                << "; removed " << names(response.removed()) << "; medix-dp objects: " << response.objects_changed()
                << " created or updated, " << response.objects_removed() << " deleted; intent version "
                << response.version() << "\n";
    }
    return 0;
  }
  // peer NAME [errors | initiate | terminate | rekey | rekey-ike]
  c1::PeerRequest peer;
  peer.set_name(args.next("a peer name"));
  std::string action = args.done() ? "show" : args.next("an action");
  args.expect_done();
  if (action == "show" || action == "errors") {
    c1::ListPeersRequest request;
    request.set_name(peer.name());
    c1::ListPeersResponse response;
    check(stub->ListPeers(context().get(), request, &response));
    if (json) {
      std::cout << to_json(response, true);
    } else if (action == "show") {
      for (const auto& s : response.peers()) print_peer(s);
    } else {
      Table table({{"TIME"}, {"FROM"}, {"WHAT"}, {"REASON"}});
      for (const auto& s : response.peers())
        for (const auto& e : s.errors()) table.row({when(e.time_unix()), e.remote(), e.what(), e.reason()});
      table.print(std::cout);
    }
    return 0;
  }
  c1::PeerActionResponse response;
  if (action == "initiate")
    check(stub->Initiate(context().get(), peer, &response));
  else if (action == "terminate")
    check(stub->Terminate(context().get(), peer, &response));
  else if (action == "rekey")
    check(stub->Rekey(context().get(), peer, &response));
  else if (action == "rekey-ike") {
    peer.set_ike(true);
    check(stub->Rekey(context().get(), peer, &response));
  } else
    throw UsageError("peer " + peer.name() + ": unknown action \"" + action +
                     "\" (errors, initiate, terminate, rekey or rekey-ike)");
  if (json)
    std::cout << to_json(response, true);
  else
    std::cout << action << " " << peer.name() << ": " << response.count()
              << (action == "rekey"                                ? " CHILD_SAs"
                  : action == "terminate" || action == "rekey-ike" ? " IKE_SAs"
                                                                   : "")
              << "\n";
  return 0;
}

}  // namespace medix::ctl
