// medix-cp: the control plane. Embeds strongSwan's libcharon for IKEv2 with carriers' gateways
// and pushes the resulting tunnels, SAs and routes into medix-dp over its gRPC API.
//
//   medix-cp --intent FILE (--dp unix:///path/api.sock | -p PREFIX) [--listen unix:///path]
//            [--strongswan-conf FILE] [--plugins "LIST"] [--log-level N] [--metrics-listen HOST:PORT]
//            [--knot SOCKET [--knot-catalog ZONE] [--knot-geoip FILE] [--knot-probe DIR]]
//            [--intent-store etcd://HOST:PORT[/PREFIX] --area NAME]
//            [--bgp HOST:PORT [--bfd SOCKET --bfd-config FILE]]
//            [--etcd-cacert FILE [--etcd-cert FILE --etcd-key FILE]] [--etcd-user-file FILE]
//            [--ha-sync-local HOST:PORT --ha-sync-peer HOST:PORT --ha-sync-key-file FILE
//             [--ike-witness etcd://HOST:PORT[/PREFIX] [--ike-witness-ttl SECONDS]]]
//
// With --knot, the intent's DNS zones are served by Knot DNS, driven over its control socket
// (docs/dns.md).
// The intent is kept in FILE (the default, one site), or with --intent-store in etcd, shared with
// the other areas' medix-cp (docs/areas.md): FILE is then this area's last applied intent, what
// medix-cp starts from while etcd does not answer.
// It serves medix.controlplane.v1.ControlPlane (medixctl peers) on --listen, by default
// unix:///var/run/dpdk/PREFIX/cp.sock with -p PREFIX (beside medix-dp's api.sock), else
// unix:///var/run/medix-cp.sock; mode 0600. With --metrics-listen, Prometheus metrics
// (medix_cp_*) on GET /metrics over plain HTTP, as medix-dp's.
//   medix-cp --abi-check     checks our view of libcharon's structures against the library
//
// IKE reaches charon through medix-dp's exception TAP (settings.exception_interface): run
// medix-cp where that TAP is, with the peers' local addresses on it.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>

#include "bgp/speaker.h"
#include "charon/glue.h"
#include "common/notify.h"
#include "common/version.h"
#include "control_service.h"
#include "dataplane_client.h"
#include "dns/sync.h"
#include "etcd/store.h"
#include "ha/link.h"
#include "ha/witness.h"
#include "intent_file.h"
#include "intent_store.h"
#include "metrics.h"
#include "objects.h"

namespace {

constexpr const char* usage_text =
    "usage: medix-cp --intent FILE (--dp TARGET | -p PREFIX) [--listen unix:///PATH]\n"
    "                [--strongswan-conf FILE] [--plugins LIST] [--log-level -1..3]\n"
    "                [--metrics-listen HOST:PORT] [--knot SOCKET [--knot-catalog ZONE] [--knot-geoip FILE]\n"
    "                [--knot-probe DIR]]\n"
    "                [--intent-store etcd://HOST:PORT[/PREFIX] --area NAME]\n"
    "                [--bgp HOST:PORT [--bfd SOCKET --bfd-config FILE]]\n"
    "                [--etcd-cacert FILE [--etcd-cert FILE --etcd-key FILE]] [--etcd-user-file FILE]\n"
    "                [--ha-sync-local HOST:PORT --ha-sync-peer HOST:PORT --ha-sync-key-file FILE\n"
    "                 [--ike-witness etcd://HOST:PORT[/PREFIX] [--ike-witness-ttl SECONDS]]]\n"
    "       medix-cp --check --intent FILE   validate the intent file and exit\n"
    "       medix-cp --abi-check | --version | --help\n"
    "  --metrics-listen HOST:PORT  serve Prometheus metrics (GET /metrics, plain HTTP, read only):\n"
    "                              medix_cp_peers, medix_cp_peer_up, medix_cp_ike_events_total,\n"
    "                              medix_cp_reconcile_*, medix_cp_dataplane_connected, ... (docs/running.md)\n"
    "  --knot SOCKET               serve the intent's DNS zones with Knot DNS, through its control socket\n"
    "  --knot-catalog ZONE         the catalog zone knot.conf gives medix-cp (default catalog.medix; docs/dns.md)\n"
    "  --knot-geoip FILE           per-tenant answers: the views file of knot.conf's geoip module (subnet mode)\n"
    "  --knot-probe DIR            queries per tenant: the path of knot.conf's probe module (its probe01.sock)\n"
    "  --intent-store etcd://HOST:PORT[,HOST:PORT...][/PREFIX]  keep the intent in etcd under PREFIX (/medix),\n"
    "                              shared by the areas' medix-cp; several members by IPv4 address, failing over;\n"
    "                              --intent FILE is then this area's local copy\n"
    "  --area NAME                 with etcd: apply the global objects and area NAME's (docs/areas.md)\n"
    "  --etcd-cacert FILE [--etcd-cert FILE --etcd-key FILE] [--etcd-server-name NAME]\n"
    "                              TLS to etcd (the intent store's and --ike-witness's): its CA, our client\n"
    "                              certificate; with several members the\n"
    "                              name their certificates share (default: the first member's address)\n"
    "  --etcd-user-file FILE       etcd's password authentication (the store's and the witness's): FILE's\n"
    "                              first line is USER:PASSWORD\n"
    "                              (readable by medix-cp's user only; the password is never logged)\n"
    "  --bgp HOST:PORT             gobgpd's gRPC API: announce this area's core prefixes, install the\n"
    "                              other areas' into the core tenant (the intent's bgp, docs/areas.md)\n"
    "  --bfd SOCKET --bfd-config FILE\n"
    "                              BIRD's control socket, and the file its bird.conf includes: BFD with\n"
    "                              the backbone's neighbours (their sessions shut while it says down)\n"
    "  --ha-sync-local HOST:PORT --ha-sync-peer HOST:PORT --ha-sync-key-file FILE\n"
    "                              a node of a redundant pair: strongSwan's ha plugin syncs the IKE_SAs with\n"
    "                              the peer's medix-cp over this link (AES-256-GCM under the key in FILE);\n"
    "                              they are active while medix-dp's HA role is (docs/ha.md)\n"
    "  --ike-witness etcd://HOST:PORT[,HOST:PORT...][/PREFIX] [--ike-witness-ttl SECONDS]\n"
    "                              with --ha-sync-*: a node without a standby peer sends IKE requests of its\n"
    "                              own (DPD, rekeys) only while it holds a lease on PREFIX/ike-speaker in this\n"
    "                              etcd (TTL 2 s by default); without one it holds them (docs/ha.md)\n";

void usage() {
  fputs(usage_text, stderr);
  exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  std::string intent_path, target, listen, strongswan_conf, plugins, metrics_listen, knot_socket, knot_geoip,
      knot_probe;
  std::string intent_store, area, bgp_daemon, bfd_socket, bfd_config, etcd_cacert, etcd_cert, etcd_key,
      etcd_server_name, etcd_user_file;
  std::string knot_catalog = "catalog.medix";
  medix::cp::ha::LinkConfig ha_link_config;
  medix::cp::ha::WitnessConfig witness_config;
  int log_level = 1;
  bool abi_check = false, check = false;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage();
      return argv[++i];
    };
    if (a == "--intent")
      intent_path = value();
    else if (a == "--dp")
      target = value();
    else if (a == "-p" || a == "--prefix") {
      std::string prefix = value();
      target = "unix:///var/run/dpdk/" + prefix + "/api.sock";
      if (listen.empty()) listen = "unix:///var/run/dpdk/" + prefix + "/cp.sock";
    } else if (a == "--listen")
      listen = value();
    else if (a == "--strongswan-conf")
      strongswan_conf = value();
    else if (a == "--plugins")
      plugins = value();
    else if (a == "--metrics-listen")
      metrics_listen = value();
    else if (a == "--knot")
      knot_socket = value();
    else if (a == "--knot-catalog")
      knot_catalog = value();
    else if (a == "--knot-geoip")
      knot_geoip = value();
    else if (a == "--knot-probe")
      knot_probe = value();
    else if (a == "--intent-store")
      intent_store = value();
    else if (a == "--area")
      area = value();
    else if (a == "--bgp")
      bgp_daemon = value();
    else if (a == "--bfd")
      bfd_socket = value();
    else if (a == "--bfd-config")
      bfd_config = value();
    else if (a == "--etcd-cacert")
      etcd_cacert = value();
    else if (a == "--etcd-cert")
      etcd_cert = value();
    else if (a == "--etcd-key")
      etcd_key = value();
    else if (a == "--etcd-server-name")
      etcd_server_name = value();
    else if (a == "--ha-sync-local")
      ha_link_config.local = value();
    else if (a == "--ha-sync-peer")
      ha_link_config.peer = value();
    else if (a == "--ha-sync-key-file")
      ha_link_config.key_file = value();
    else if (a == "--ike-witness")
      witness_config.url = value();
    else if (a == "--ike-witness-ttl") {
      std::string v = value();
      char* end = nullptr;
      long ttl = strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || ttl < 1 || ttl > 60) {
        fprintf(stderr, "medix-cp: --ike-witness-ttl %s: seconds, 1 to 60\n", v.c_str());
        return 2;
      }
      witness_config.ttl_s = int(ttl);
    } else if (a == "--etcd-user-file")
      etcd_user_file = value();
    else if (a == "--log-level") {
      // charon's levels, but 4: strongSwan's level 4 dumps key material (the PSK, IKE and
      // CHILD_SA keys), and no key or PSK may reach medix-cp's log.
      std::string v = value();
      char* end = nullptr;
      long level = strtol(v.c_str(), &end, 10);
      if (v.empty() || *end || level < -1 || level > 3) {
        fprintf(stderr, "medix-cp: --log-level %s: one of -1..3 (level 4 would log keys and PSKs)\n", v.c_str());
        return 2;
      }
      log_level = int(level);
    } else if (a == "--abi-check")
      abi_check = true;
    else if (a == "--check")
      check = true;
    else if (a == "--version") {
      printf("medix-cp %s, strongSwan %s\n", medix::common::version(), MEDIX_STRONGSWAN_VERSION);
      return 0;
    } else if (a == "--help" || a == "-h") {
      fputs(usage_text, stdout);
      return 0;
    } else
      usage();
  }
  if (witness_config.configured() && !ha_link_config.configured()) {
    fprintf(stderr, "medix-cp: --ike-witness goes with --ha-sync-local, --ha-sync-peer and --ha-sync-key-file\n");
    return 2;
  }

  if (check) {
    if (intent_path.empty()) usage();
    medix::cp::c1::Intent intent;
    if (auto e = medix::cp::load_intent(intent_path, intent)) {
      fprintf(stderr, "medix-cp: %s\n", e->c_str());
      return 2;
    }
    // An intent of several areas (etcd's, docs/areas.md): each area's as its medix-cp applies it.
    if (std::string e = medix::cp::validate_areas(intent); !e.empty()) {
      fprintf(stderr, "medix-cp: %s: %s\n", intent_path.c_str(), e.c_str());
      return 2;
    }
    for (const auto& [name, section] : intent.areas()) {
      medix::cp::c1::Intent area = medix::cp::area_intent(intent, name);
      if (std::string e = medix::cp::validate_intent(area); !e.empty()) {
        fprintf(stderr, "medix-cp: %s: area %s (global objects, then areas[%s]'s): %s\n", intent_path.c_str(),
                name.c_str(), name.c_str(), e.c_str());
        return 2;
      }
    }
    printf("%s: ok (%d peers)\n", intent_path.c_str(), intent.peers_size());
    return 0;
  }
  char err[512];
  if (abi_check) {
    // Only what libcharon needs to start (its IKE sockets on random ports, so that this runs
    // beside any charon).
    if (cp_charon_start(nullptr, "medix-cp {\n port = 0\n port_nat_t = 0\n}\n",
                        "random nonce openssl socket-default kernel-netlink", -1, err, sizeof(err)) != 0 ||
        cp_charon_abi_check(err, sizeof(err)) != 0) {
      fprintf(stderr, "medix-cp: ABI check failed: %s\n", err);
      return 1;
    }
    cp_charon_stop();
    printf("medix-cp: ABI check passed (libcharon's structures match our build)\n");
    return 0;
  }
  if (intent_path.empty() || target.empty()) usage();
  if (listen.empty()) listen = "unix:///var/run/medix-cp.sock";
  if (!listen.starts_with("unix://")) {
    fprintf(stderr, "medix-cp: --listen takes unix:///PATH\n");
    return 2;
  }

  medix::cp::EtcdEndpoint etcd;
  if (!intent_store.empty()) {
    if (auto e = medix::cp::parse_etcd_url(intent_store, etcd)) {
      fprintf(stderr, "medix-cp: --intent-store %s\n", e->c_str());
      return 2;
    }
    if (!medix::cp::is_name(area)) {
      fprintf(stderr, "medix-cp: --intent-store etcd://... needs --area NAME (letters, digits, - _ .)\n");
      return 2;
    }
  } else if (!area.empty()) {
    fprintf(stderr, "medix-cp: --area goes with --intent-store etcd://... (the intent file has no areas)\n");
    return 2;
  }
  if (!intent_store.empty() || witness_config.configured()) {
    // TLS to etcd (the intent store's, the witness's): the CA that signed its members' certificates,
    // and ours (--client-cert-auth).
    if (!etcd_cacert.empty() || !etcd_cert.empty() || !etcd_key.empty()) {
      if (etcd_cacert.empty() || etcd_cert.empty() != etcd_key.empty()) {
        fprintf(stderr,
                "medix-cp: --etcd-cacert is required for TLS to etcd, --etcd-cert and --etcd-key go together\n");
        return 2;
      }
      for (auto [flag, path, out] : {std::tuple{"--etcd-cacert", &etcd_cacert, &etcd.ca_pem},
                                     {"--etcd-cert", &etcd_cert, &etcd.cert_pem},
                                     {"--etcd-key", &etcd_key, &etcd.key_pem}}) {
        if (path->empty()) continue;
        std::ifstream in(*path);
        std::stringstream text;
        if (!in || !(text << in.rdbuf())) {
          fprintf(stderr, "medix-cp: %s %s: cannot read the file\n", flag, path->c_str());
          return 2;
        }
        *out = text.str();
      }
      etcd.server_name = etcd_server_name;
    }
    if (!etcd_user_file.empty()) {
      if (auto e = medix::cp::read_etcd_user(etcd_user_file, etcd)) {
        fprintf(stderr, "medix-cp: --etcd-user-file %s\n", e->c_str());
        return 2;
      }
    }
    witness_config.access = etcd;  // its TLS and user; the witness's own address and prefix
  } else if (!etcd_cacert.empty() || !etcd_cert.empty() || !etcd_key.empty() || !etcd_server_name.empty() ||
             !etcd_user_file.empty()) {
    fprintf(stderr,
            "medix-cp: --etcd-cacert, --etcd-cert, --etcd-key, --etcd-server-name and --etcd-user-file go with "
            "--intent-store etcd://... or --ike-witness etcd://...\n");
    return 2;
  }

  if ((!bfd_socket.empty() || !bfd_config.empty()) &&
      (bgp_daemon.empty() || bfd_socket.empty() || bfd_config.empty())) {
    fprintf(stderr, "medix-cp: --bfd and --bfd-config go together, with --bgp\n");
    return 2;
  }

  medix::cp::c1::Intent intent;
  if (!intent_store.empty() && access(intent_path.c_str(), F_OK) != 0) {
    intent.set_schema_version(1);  // a first start: nothing applied yet, etcd says what to
  } else if (auto error = medix::cp::load_intent(intent_path, intent)) {
    fprintf(stderr, "%s\n", error->c_str());
    return 2;
  }
  if (intent.areas_size()) {  // the local copy never has any: it is one area's
    fprintf(stderr, "medix-cp: %s: areas: only in an intent kept in etcd (--intent-store, docs/areas.md)\n",
            intent_path.c_str());
    return 2;
  }
  // The intent file is always whole and what medix-dp is brought to; the one an interrupted
  // ApplyIntent kept is of no use now.
  medix::cp::forget_previous_intent(intent_path);
  // A full or read-only disk is said now, not after medix-dp is waited for.
  if (std::string error = medix::cp::check_writable(intent_path); !error.empty()) {
    fprintf(stderr, "medix-cp: %s\n", error.c_str());
    return 1;
  }

  // Signals are taken by sigwait below: block them before any thread starts.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  // Order matters: charon is configured first (the peers' proposals, selectors and
  // certificates are checked there: a bad intent changes nothing in medix-dp), then medix-dp is
  // brought to the intent, and only then does charon start handling IKE (so that no SA it
  // installs is taken for a leftover).
  medix::cp::DataplaneClient dataplane(target, intent, intent_path + ".owned");
  medix::cp::set_glue_client(&dataplane);
  // A node of a pair: the ha plugin's link to the peer is up before the plugin sends.
  medix::cp::ha::Witness witness;  // outlives the link, which asks it
  medix::cp::ha::Link ha_link;
  std::string ha_settings;
  if (ha_link_config.configured()) {
    medix::cp::ha::Charon charon;  // what the link's split-brain guard asks of charon (docs/ha.md)
    charon.mids = [] {
      std::vector<cp_ike_mids> raw(4096);
      raw.resize(size_t(cp_charon_ike_mids(raw.data(), int(raw.size()))));
      std::vector<medix::cp::ha::IkeMids> out;
      for (const auto& m : raw) out.push_back({m.spi_i, m.spi_r, m.initiating, m.responding});
      return out;
    };
    charon.raise_mids = [](std::vector<medix::cp::ha::IkeMids>& mids) {
      std::vector<cp_ike_mids> raw;
      for (const auto& m : mids) raw.push_back({m.spi_i, m.spi_r, m.initiating, m.responding, false});
      int raised = cp_charon_raise_mids(raw.data(), int(raw.size()));
      mids.clear();
      for (const auto& m : raw)
        if (m.busy) mids.push_back({m.spi_i, m.spi_r, m.initiating, m.responding});
      return raised;
    };
    charon.raise_responding = [](const std::vector<medix::cp::ha::IkeAnswer>& answers) {
      std::vector<cp_ike_answer> raw;
      for (const auto& a : answers)
        raw.push_back({{a.mids.spi_i, a.mids.spi_r, a.mids.initiating, a.mids.responding, false},
                       reinterpret_cast<const uint8_t*>(a.response.data()),
                       a.response.size()});
      return cp_charon_raise_responding(raw.data(), int(raw.size()));
    };
    // Passive first: the plugin's segment drop (the FIFO) may not have run yet, and an active
    // IKE_SA destroyed would have the plugin tell the peer to delete its own.
    charon.drop_passive = [] {
      cp_charon_make_passive();
      return cp_charon_drop_passive();
    };
    charon.hold_dpd = [] { cp_charon_hold_dpd(); };
    charon.hold = [](bool hold) { return cp_charon_hold(hold); };
    charon.children = [] {
      std::vector<cp_ike_child> raw(4096);
      raw.resize(size_t(cp_charon_children(raw.data(), int(raw.size()))));
      std::vector<medix::cp::ha::IkeChild> out;
      for (const auto& c : raw) out.push_back({c.spi_i, c.spi_r, c.spi});
      return out;
    };
    charon.delete_leftovers = [](const std::vector<medix::cp::ha::IkeChild>& children) {
      std::vector<cp_ike_child> raw;
      for (const auto& c : children) raw.push_back({c.spi_i, c.spi_r, c.spi});
      cp_charon_delete_leftovers(raw.data(), int(raw.size()));
    };
    charon.resend_requests = [](const std::vector<std::pair<medix::cp::ha::IkeMids, std::string>>& requests) {
      std::vector<cp_ike_request> raw;
      for (const auto& [m, bytes] : requests)
        raw.push_back({m.spi_i, m.spi_r, reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()});
      return cp_charon_resend_recorded(raw.data(), int(raw.size()));
    };
    charon.resends_pending = [] { return cp_charon_resends_pending(); };
    charon.resends_stop = [] { cp_charon_resends_stop(); };
    if (witness_config.configured()) {
      if (std::string e = witness.start(witness_config, ha_link_config.local); !e.empty()) {
        fprintf(stderr, "medix-cp: %s\n", e.c_str());
        return 2;
      }
    }
    if (std::string e = ha_link.start(
            ha_link_config, [&dataplane] { return dataplane.ha_role(); }, charon,
            witness_config.configured() ? &witness : nullptr);
        !e.empty()) {
      fprintf(stderr, "medix-cp: %s\n", e.c_str());
      return 2;
    }
    {  // the standby's acknowledgement before each IKE message, and with a witness its records
      static medix::cp::ha::Link* checked = &ha_link;  // outlives charon (stopped before the link)
      cp_charon_send_check([](const cp_ike_mids* m, const uint32_t* children, int n_children, bool request,
                              const uint8_t* bytes, size_t len) -> int {
        using Send = medix::cp::ha::Link::Send;
        Send s = checked->check_send(
            {m->spi_i, m->spi_r, m->initiating, m->responding}, std::vector<uint32_t>(children, children + n_children),
            request, bytes ? std::string_view(reinterpret_cast<const char*>(bytes), len) : std::string_view());
        return s == Send::ok ? CP_SEND_OK : s == Send::unrecorded ? CP_SEND_UNRECORDED : CP_SEND_UNCONFIRMED;
      });
    }
    ha_settings = medix::cp::ha::Link::plugin_settings();
    plugins = (plugins.empty() ? std::string(cp_charon_default_plugins()) : plugins) + " ha";
  }
  if (cp_charon_start(strongswan_conf.empty() ? nullptr : strongswan_conf.c_str(),
                      ha_settings.empty() ? nullptr : ha_settings.c_str(), plugins.empty() ? nullptr : plugins.c_str(),
                      log_level, err, sizeof(err)) != 0) {
    fprintf(stderr, "medix-cp: %s\n", err);
    return 1;
  }
  for (const auto& p : intent.peers()) {
    medix::cp::GluePeer peer(p);
    if (cp_charon_add_peer(&peer.c, false, err, sizeof(err)) != 0) {
      fprintf(stderr, "%s: peers[%d] (%s): %s\n", intent_path.c_str(), static_cast<int>(&p - &intent.peers()[0]),
              p.name().c_str(), err);
      cp_charon_stop();
      return 2;
    }
  }

  // medix-dp may still be starting: try for a while, as long as it does not answer.
  std::string error;
  for (int attempt = 0; attempt < 60; attempt++) {
    error = dataplane.prepare();
    if (error.empty() || !medix::cp::unreachable(error)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  if (!error.empty()) {
    fprintf(stderr, "medix-cp: cannot bring medix-dp (%s) to the intent: %s\n", target.c_str(), error.c_str());
    cp_charon_stop();
    return 1;
  }
  uint32_t removed = 0;
  if (std::string e = dataplane.prune(removed); !e.empty()) fprintf(stderr, "medix-cp: %s\n", e.c_str());
  dataplane.start();
  cp_charon_run();

  // Knot's zones brought to the intent now, then kept there (a knotd restarted empty is refilled).
  std::unique_ptr<medix::cp::dns::Sync> dns;
  if (!knot_socket.empty()) {
    if (medix::cp::dns::absolute_name(knot_catalog).empty()) {
      fprintf(stderr, "medix-cp: --knot-catalog %s: not a zone name\n", knot_catalog.c_str());
      cp_charon_stop();
      dataplane.stop();
      return 2;
    }
    dns = std::make_unique<medix::cp::dns::Sync>(knot_socket, knot_catalog, knot_geoip);
    if (!knot_probe.empty()) {
      auto probe = std::make_unique<medix::cp::dns::Probe>(knot_probe);
      if (std::string e = probe->start(); !e.empty()) {
        fprintf(stderr, "medix-cp: --knot-probe %s\n", e.c_str());
        cp_charon_stop();
        dataplane.stop();
        return 2;
      }
      dns->set_probe(std::move(probe));
    }
    if (std::string e = dns->apply(intent); !e.empty()) fprintf(stderr, "medix-cp: dns: %s (trying on)\n", e.c_str());
    dns->start();
  } else if (intent.dns().zones_size() > 0) {
    fprintf(stderr, "medix-cp: the intent has DNS zones but no --knot: nobody serves them\n");
  }

  // The ControlPlane service; the socket is ours alone (0600), as medix-dp's.
  const std::string socket_path = listen.substr(strlen("unix://"));
  unlink(socket_path.c_str());
  medix::cp::ControlService service(intent, intent_path, dataplane, dns.get());
  auto apply_local = [&service](const medix::cp::c1::Intent& next, medix::cp::c1::ApplyIntentResponse* response) {
    return service.apply_local(next, response);
  };
  auto running = [&service] { return service.intent(); };
  std::unique_ptr<medix::cp::IntentStore> store;
  medix::cp::EtcdStore* etcd_store = nullptr;
  if (intent_store.empty()) {
    store = std::make_unique<medix::cp::FileStore>(intent_path, apply_local, running);
  } else {
    auto check = [&service](const medix::cp::c1::Intent& next) { return service.check(next); };
    auto s = std::make_unique<medix::cp::EtcdStore>(etcd, area, apply_local, check, running, target);
    etcd_store = s.get();
    store = std::move(s);
  }
  service.set_store(store.get());
  if (ha_link_config.configured()) service.set_paired();
  if (witness_config.configured())
    service.set_witness([&witness, &ha_link] {
      medix::cp::ha::Witness::View v = witness.view();
      const medix::cp::ha::Witness::Stats& st = witness.stats();
      medix::cp::c1::HaWitness w;
      w.set_configured(true);
      w.set_endpoint(v.endpoint);
      w.set_key(v.key);
      w.set_tls(v.tls);
      w.set_user(v.user);
      w.set_ttl_s(uint32_t(v.ttl_s));
      w.set_wanted(v.wanted);
      w.set_holder(v.holder);
      w.set_last_renewal_ms(v.last_renewal_ms);
      w.set_held_exchanges(uint64_t(cp_charon_held()));
      w.set_obtained(st.obtained.load());
      w.set_lost(st.lost.load());
      w.set_renewals(st.renewals.load());
      w.set_renew_failures(st.failures.load());
      w.set_holds(ha_link.stats().holds.load());
      w.set_last_refusal(v.last_refusal);
      return w;
    });
  // Routes between areas: the BGP speaker reads the intent as applied (docs/areas.md).
  std::unique_ptr<medix::cp::bgp::Speaker> bgp;
  if (!bgp_daemon.empty()) {
    bgp = std::make_unique<medix::cp::bgp::Speaker>(
        bgp_daemon, target, running,
        [etcd_store] {
          if (etcd_store) etcd_store->publish();
        },
        bfd_socket.empty() ? nullptr : std::make_unique<medix::cp::bgp::Bird>(bfd_socket, bfd_config));
    store->set_bgp([&bgp] { return bgp->status(); });
  }
  // Beside it grpc.health.v1.Health and server reflection (for the same peers: the socket's).
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials());
  builder.RegisterService(&service);
  mode_t old_umask = umask(0077);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  umask(old_umask);
  if (!server) {
    fprintf(stderr, "medix-cp: cannot serve on %s\n", listen.c_str());
    cp_charon_stop();
    dataplane.stop();
    return 1;
  }

  medix::cp::MetricsServer metrics;
  if (!metrics_listen.empty()) {
    if (auto e = metrics.start(service, dataplane, metrics_listen, ha_link_config.configured() ? &ha_link : nullptr)) {
      fprintf(stderr, "medix-cp: --metrics-listen %s\n", e->c_str());
      server->Shutdown();
      unlink(socket_path.c_str());
      cp_charon_stop();
      dataplane.stop();
      return 1;
    }
  }

  server->GetHealthCheckService()->SetServingStatus(medix::cp::c1::ControlPlane::service_full_name(), true);
  // The peers with `initiate`: alone, now; in a pair, by the node once its role is known active
  // (docs/ha.md, "Who initiates").
  if (ha_link_config.configured())
    ha_link.on_role([&service](int role) { service.role(role); });
  else
    for (const auto& p : intent.peers())
      if (p.initiate()) cp_charon_initiate(p.name().c_str());
  // etcd is not waited for: medix-dp runs the local copy until it answers (docs/areas.md).
  if (etcd_store) etcd_store->start();
  if (bgp) bgp->start();
  fprintf(stderr, "medix-cp: ready (%d peers)\n", intent.peers_size());
  medix::common::notify_ready(std::to_string(intent.peers_size()) + " peers");
  int sig = 0;
  // SIGHUP asks daemons to reload: medix-cp's intent changes only through ApplyIntent, so there
  // is nothing to reread; it is said, not fatal.
  while (sigwait(&signals, &sig) == 0 && sig == SIGHUP)
    fprintf(stderr, "medix-cp: SIGHUP: nothing to reload (the intent changes through ApplyIntent)\n");
  fprintf(stderr, "medix-cp: signal %d, stopping\n", sig);
  ha_link.on_role(nullptr);  // nothing initiated from here on
  service.stop_paired();
  medix::common::notify_stopping();
  metrics.stop();                               // before charon: a scrape reads its IKE_SAs
  if (bgp) bgp->stop();                         // its routes stay in medix-dp, its paths in gobgpd
  if (etcd_store) etcd_store->stop();           // no intent applied from here on
  server->GetHealthCheckService()->Shutdown();  // NOT_SERVING, told to every Watch
  server->Shutdown();
  unlink(socket_path.c_str());
  if (dns) dns->stop();  // Knot keeps serving the zones as they are
  // A node of a pair that is not the one active (standby, after a switchover, or its medix-dp
  // gone): its IKE_SAs are the peer's. Made passive, charon's shutdown sends no DELETE for them
  // (which would end the gateway's IKE_SA the peer now serves) and the ha plugin no delete to
  // the peer. The role watcher is stopped first so that it cannot make them active again.
  if (ha_link_config.configured()) {
    int peer_active = -1;
    int role = dataplane.ha_role(&peer_active);
    if (!medix::cp::ha::owns_ike_sas_at_stop(role, peer_active)) {
      ha_link.stop();
      int n = cp_charon_make_passive();
      const char* why = "the peer is active too";
      if (role < 0) why = "medix-dp does not answer";
      if (role == 0) why = "standby";
      fprintf(stderr, "medix-cp: ha: stopping while %s: %d IKE_SA(s) made passive, closed without a DELETE\n", why, n);
    }
  }
  cp_charon_stop();  // deletes the IKE_SAs, and so their SAs and routes in medix-dp
  dataplane.stop();
  return 0;
}
