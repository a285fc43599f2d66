#include "intent_file.h"
#include "common/json.h"

#include <fcntl.h>
#include <google/protobuf/util/json_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include "common/address.h"
#include "dns/zones.h"
#include "objects.h"

namespace medix::cp {

using common::parse_ipv4;
using common::parse_prefix;

std::string validate_intent(c1::Intent& intent) {
  if (intent.schema_version() != 1) return "schema_version: must be 1";
  std::set<std::string> names, tunnels, endpoints;
  for (int i = 0; i < intent.peers_size(); i++) {
    c1::Peer& p = *intent.mutable_peers(i);
    const std::string at = "peers[" + std::to_string(i) + "].";
    if (!is_name(p.name())) return at + "name: '" + p.name() + "' is not a name (letters, digits, - _ .)";
    if (!names.insert(p.name()).second) return at + "name: another peer is named '" + p.name() + "'";
    if (p.tunnel().empty()) p.set_tunnel(p.name());
    if (!is_name(p.tunnel())) return at + "tunnel: '" + p.tunnel() + "' is not a name";
    if (!tunnels.insert(p.tunnel()).second) return at + "tunnel: another peer uses tunnel '" + p.tunnel() + "'";
    if (p.tenant().empty()) return at + "tenant: is required";
    if (p.underlay_tenant().empty()) return at + "underlay_tenant: is required";
    if (!parse_ipv4(p.local_address())) return at + "local_address: '" + p.local_address() + "' is not an IPv4 address";
    if (!parse_ipv4(p.remote_address()))
      return at + "remote_address: '" + p.remote_address() + "' is not an IPv4 address";
    // SAs are matched to their peer by their endpoints.
    if (!endpoints.insert(p.local_address() + " " + p.remote_address()).second)
      return at + "remote_address: another peer has the same local and remote addresses";
    if (p.local_id().empty()) p.set_local_id(p.local_address());
    if (p.remote_id().empty()) p.set_remote_id(p.remote_address());
    const bool x509 = !p.certificate().empty() || !p.private_key().empty() || !p.ca_certificate().empty();
    if (x509 && !p.psk().empty()) return at + "psk: either a PSK or certificates, not both";
    if (x509) {
      for (auto [field, path] : {std::pair{"certificate", &p.certificate()},
                                 {"private_key", &p.private_key()},
                                 {"ca_certificate", &p.ca_certificate()}}) {
        if (path->empty()) return at + field + ": is required with X.509 authentication";
        if (access(path->c_str(), R_OK) != 0) return at + field + ": cannot read " + *path;
      }
    } else {
      if (p.psk().empty()) return at + "psk: is required (or certificate, private_key and ca_certificate)";
      if (p.psk().size() < 8) return at + "psk: at least 8 characters";
    }
    if (p.ike_proposals().empty()) return at + "ike_proposals: at least one is required";
    if (p.esp_proposals().empty()) return at + "esp_proposals: at least one is required";
    if (p.local_selectors().empty()) return at + "local_selectors: at least one prefix is required";
    if (p.remote_selectors().empty()) return at + "remote_selectors: at least one prefix is required";
    for (int j = 0; j < p.local_selectors_size(); j++)
      if (!parse_prefix(p.local_selectors(j)))
        return at + "local_selectors[" + std::to_string(j) + "]: '" + p.local_selectors(j) + "' is not a prefix";
    for (int j = 0; j < p.remote_selectors_size(); j++)
      if (!parse_prefix(p.remote_selectors(j)))
        return at + "remote_selectors[" + std::to_string(j) + "]: '" + p.remote_selectors(j) + "' is not a prefix";
    if (p.child_life_seconds() && p.child_rekey_seconds() && p.child_life_seconds() <= p.child_rekey_seconds())
      return at + "child_life_seconds: must be above child_rekey_seconds";
    if (p.child_life_bytes() && p.child_life_bytes() <= p.child_rekey_bytes())
      return at + "child_life_bytes: must be above child_rekey_bytes";
    if (p.child_life_packets() && p.child_life_packets() <= p.child_rekey_packets())
      return at + "child_life_packets: must be above child_rekey_packets";
  }
  if (std::string e = validate_static(intent); !e.empty()) return e;
  if (std::string e = validate_bgp(intent); !e.empty()) return e;
  return dns::validate(intent);
}

std::string validate_bgp(const c1::Intent& intent) {
  const c1::Bgp& bgp = intent.bgp();
  if (bgp.backbone_interface().empty()) {
    if (!bgp.next_hop().empty() || bgp.local_pref() || !bgp.tenant_local_pref().empty() || bgp.bfd_interval_ms() ||
        bgp.bfd_multiplier())
      return "bgp.backbone_interface: is required with the other bgp fields";
    return "";
  }
  std::set<std::string> tenants, core;
  for (const auto& t : intent.tenants()) {
    tenants.insert(t.name());
    if (t.core()) core.insert(t.name());
  }
  const medix::dataplane::v1::Interface* backbone = nullptr;
  for (const auto& i : intent.interfaces())
    if (i.name() == bgp.backbone_interface()) backbone = &i;
  // Or an ESP tunnel over a carrier: a peer's tunnel (its name when `tunnel` is left out).
  const c1::Peer* tunnel = nullptr;
  for (const auto& p : intent.peers())
    if ((p.tunnel().empty() ? p.name() : p.tunnel()) == bgp.backbone_interface()) tunnel = &p;
  if (!backbone && !tunnel)
    return "bgp.backbone_interface: '" + bgp.backbone_interface() +
           "' is not an interface of the intent (nor a peer's tunnel)";
  const std::string& tenant = backbone ? backbone->tenant() : tunnel->tenant();
  if (!core.count(tenant))
    return "bgp.backbone_interface: '" + bgp.backbone_interface() + "' is in tenant '" + tenant +
           "', not a core tenant";
  if (bgp.next_hop().empty() && (!backbone || backbone->addresses().empty()))
    return std::string("bgp.next_hop: is required when the backbone ") +
           (backbone ? "interface has no address" : "is a tunnel (it has no address: give the area's BGP address)");
  if (!bgp.next_hop().empty() && !parse_ipv4(bgp.next_hop()))
    return "bgp.next_hop: '" + bgp.next_hop() + "' is not an IPv4 address";
  for (const auto& [tenant, pref] : bgp.tenant_local_pref())
    if (!tenants.count(tenant)) return "bgp.tenant_local_pref[" + tenant + "]: no such tenant in the intent";
  if (bgp.bfd_interval_ms() && (bgp.bfd_interval_ms() < 10 || bgp.bfd_interval_ms() > 10000))
    return "bgp.bfd_interval_ms: " + std::to_string(bgp.bfd_interval_ms()) + " is not 10 to 10000 (0: 100)";
  if (bgp.bfd_multiplier() > 255)
    return "bgp.bfd_multiplier: " + std::to_string(bgp.bfd_multiplier()) + " is not 1 to 255 (0: 3)";
  return "";
}

std::string intent_json(const c1::Intent& intent, std::string& error) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.preserve_proto_field_names = true;
  std::string text;
  auto status = google::protobuf::util::MessageToJsonString(intent, &text, options);
  if (!status.ok()) error = std::string(status.message());
  return text;
}

std::string save_intent(const std::string& path, const c1::Intent& intent, int* error) {
  std::string reason;
  std::string text = intent_json(intent, reason);
  if (!reason.empty()) {
    if (error) *error = EINVAL;
    return reason;
  }
  return write_atomically(path, text, 0600, error);  // PSKs inside
}

namespace {

// Every byte: write() may write less than asked (a disk filling up) and then sets no errno; only
// the next call, writing nothing, says why.
bool write_all(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

// A rename is durable once the directory that holds both names is synced.
bool sync_directory_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = fsync(fd) == 0;
  int saved = errno;
  close(fd);
  errno = saved;
  return ok;
}

std::string failed(const std::string& path, int* error) {
  const int saved = errno;
  if (error) *error = saved;
  return path + ": " + strerror(saved);
}

}  // namespace

std::string write_atomically(const std::string& path, const std::string& text, mode_t mode, int* error) {
  const std::string tmp = path + ".tmp";
  unlink(tmp.c_str());  // one a crash left, perhaps with another mode
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) return failed(tmp, error);
  if (!write_all(fd, text) || fsync(fd) != 0) {
    std::string e = failed(path, error);
    close(fd);
    unlink(tmp.c_str());
    return e;
  }
  if (close(fd) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    std::string e = failed(path, error);
    unlink(tmp.c_str());
    return e;
  }
  if (!sync_directory_of(path)) return failed(path, error);
  return "";
}

std::string replace_intent(const std::string& path, const c1::Intent& intent, int* error) {
  const std::string previous = path + ".prev";
  unlink(previous.c_str());  // one a crash left
  if (link(path.c_str(), previous.c_str()) != 0 && errno != ENOENT) return failed(previous, error);
  std::string e = save_intent(path, intent, error);
  if (!e.empty()) {
    // Renamed in before the directory's fsync failed: the old file back. Not renamed: both names
    // are the old file, the rename does nothing and only PATH.prev goes.
    rename(previous.c_str(), path.c_str());
    unlink(previous.c_str());
  }
  return e;
}

std::string restore_intent(const std::string& path) {
  const std::string previous = path + ".prev";
  if (rename(previous.c_str(), path.c_str()) != 0) {
    if (errno != ENOENT) return failed(path, nullptr);
    unlink(path.c_str());  // there was none before
  }
  if (!sync_directory_of(path)) return failed(path, nullptr);
  return "";
}

void forget_previous_intent(const std::string& path) { unlink((path + ".prev").c_str()); }

std::string check_writable(const std::string& path) {
  struct stat st;
  off_t size = 4096;
  for (const std::string& file : {path, path + ".owned"})
    if (stat(file.c_str(), &st) == 0) size += st.st_size;
  const std::string probe = path + ".probe";
  std::string e = write_atomically(probe, std::string(static_cast<size_t>(size), '\n'), 0600);
  unlink(probe.c_str());
  if (!e.empty())
    return "cannot write beside the intent file (" + std::to_string(size) + " bytes, to rewrite it and " + path +
           ".owned): " + e;
  return "";
}

namespace {

std::string join(const google::protobuf::RepeatedPtrField<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ",") + s;
  return out;
}

}  // namespace

bool only_lifetimes_differ(const c1::Peer& a, const c1::Peer& b) {
  auto rest = [](c1::Peer p) {
    p.clear_ike_rekey_seconds();
    p.clear_child_rekey_seconds();
    p.clear_child_life_seconds();
    p.clear_child_rekey_bytes();
    p.clear_child_life_bytes();
    p.clear_child_rekey_packets();
    p.clear_child_life_packets();
    return p.SerializeAsString();
  };
  return a.SerializeAsString() != b.SerializeAsString() && rest(a) == rest(b);
}

GluePeer::GluePeer(const c1::Peer& p)
    : ike(join(p.ike_proposals())),
      esp(join(p.esp_proposals())),
      local_ts(join(p.local_selectors())),
      remote_ts(join(p.remote_selectors())) {
  c = cp_peer{
      .name = p.name().c_str(),
      .local_address = p.local_address().c_str(),
      .remote_address = p.remote_address().c_str(),
      .local_id = p.local_id().c_str(),
      .remote_id = p.remote_id().c_str(),
      .psk = p.psk().c_str(),
      .certificate = p.certificate().c_str(),
      .private_key = p.private_key().c_str(),
      .ca_certificate = p.ca_certificate().c_str(),
      .ike_proposals = ike.c_str(),
      .esp_proposals = esp.c_str(),
      .local_ts = local_ts.c_str(),
      .remote_ts = remote_ts.c_str(),
      .ike_rekey_s = p.ike_rekey_seconds(),
      .child_rekey_s = p.child_rekey_seconds(),
      .child_life_s = p.child_life_seconds(),
      .child_rekey_bytes = p.child_rekey_bytes(),
      .child_life_bytes = p.child_life_bytes(),
      .child_rekey_packets = p.child_rekey_packets(),
      .child_life_packets = p.child_life_packets(),
      .dpd_s = p.dpd_seconds(),
  };
}

std::optional<std::string> load_intent(const std::string& path, c1::Intent& intent) {
  std::ifstream in(path);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) return path + ": cannot read the file";
  return parse_intent(text.str(), path, intent);
}

std::optional<std::string> parse_intent(const std::string& text, const std::string& name, c1::Intent& intent) {
  if (auto error = common::parse_json(text, intent)) return name + ": " + *error;
  std::string error = validate_intent(intent);
  if (!error.empty()) return name + ": " + error;
  return std::nullopt;
}

}  // namespace medix::cp
