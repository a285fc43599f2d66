#include "intent_store.h"

#include <sys/stat.h>

#include <cstdio>
#include <fstream>

#include "common/address.h"
#include "objects.h"

namespace medix::cp {

grpc::Status FileStore::apply(const c1::Intent& next, uint64_t expected, c1::ApplyIntentResponse* response) {
  std::lock_guard lock(mu_);
  if (next.areas_size())
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "areas: only with the etcd intent store (medix-cp --intent-store etcd://...)");
  if (expected && expected != version_)
    return grpc::Status(grpc::StatusCode::ABORTED, "conflict: the intent is at version " + std::to_string(version_) +
                                                       ", not " + std::to_string(expected) +
                                                       "; nothing changed (read it again and retry)");
  grpc::Status status = apply_(next, response);
  if (status.ok()) {
    version_++;
    last_error_.clear();
  } else if (status.error_code() != grpc::StatusCode::INVALID_ARGUMENT) {
    last_error_ = status.error_message();  // a refused intent is its sender's error, not the store's
  }
  response->set_version(version_);
  return status;
}

c1::IntentStatus FileStore::status() {
  std::lock_guard lock(mu_);
  c1::IntentStatus s;
  s.set_store("file " + path_);
  s.set_version(version_);
  s.set_applied_version(version_);
  s.set_connected(true);
  s.set_last_error(last_error_);
  if (bgp_) *s.mutable_bgp() = bgp_();
  return s;
}

std::optional<std::string> parse_etcd_url(const std::string& url, EtcdEndpoint& out) {
  const std::string scheme = "etcd://";
  if (!url.starts_with(scheme)) return "'" + url + "': etcd://HOST:PORT[/PREFIX]";
  std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  out.address = rest.substr(0, slash);
  if (slash != std::string::npos) {
    out.prefix = rest.substr(slash);
    while (out.prefix.size() > 1 && out.prefix.back() == '/') out.prefix.pop_back();
    if (out.prefix == "/") return "'" + url + "': the key prefix is empty";
  }
  size_t members = 0;
  for (size_t start = 0; start <= out.address.size();) {
    size_t comma = out.address.find(',', start);
    if (comma == std::string::npos) comma = out.address.size();
    const std::string member = out.address.substr(start, comma - start);
    const size_t colon = member.rfind(':');
    if (member.empty() || colon == std::string::npos || colon + 1 == member.size())
      return "'" + url + "': HOST:PORT is required (etcd://127.0.0.1:2379)";
    if (out.address.find(',') != std::string::npos && !common::parse_ipv4(member.substr(0, colon)))
      return "'" + url + "': '" + member + "': several members are given by IPv4 address (A.B.C.D:PORT,...)";
    members++;
    start = comma + 1;
  }
  out.target = members > 1 ? "ipv4:" + out.address : out.address;
  return std::nullopt;
}

std::shared_ptr<grpc::Channel> etcd_channel(const EtcdEndpoint& endpoint, grpc::ChannelArguments args) {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!endpoint.ca_pem.empty()) {
    grpc::SslCredentialsOptions tls;
    tls.pem_root_certs = endpoint.ca_pem;
    tls.pem_cert_chain = endpoint.cert_pem;
    tls.pem_private_key = endpoint.key_pem;
    credentials = grpc::SslCredentials(tls);
    if (endpoint.address.find(',') != std::string::npos) {
      std::string name = endpoint.server_name;
      if (name.empty()) name = endpoint.address.substr(0, endpoint.address.find(':'));
      args.SetSslTargetNameOverride(name);
    }
  }
  return grpc::CreateCustomChannel(endpoint.target.empty() ? endpoint.address : endpoint.target, credentials, args);
}

std::optional<std::string> read_etcd_user(const std::string& path, EtcdEndpoint& out) {
  std::ifstream in(path);
  std::string line;
  if (!in) return path + ": cannot read the file";
  std::getline(in, line);
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const size_t colon = line.find(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == line.size())
    return path + ": its first line must be USER:PASSWORD (neither empty)";
  out.user = line.substr(0, colon);
  out.password = line.substr(colon + 1);
  struct stat st {};
  if (stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)))
    fprintf(stderr, "medix-cp: --etcd-user-file %s: others than its owner may read it (chmod 600)\n", path.c_str());
  return std::nullopt;
}

c1::Intent area_intent(const c1::Intent& whole, const std::string& area) {
  c1::Intent out = whole;
  out.clear_areas();
  auto section = whole.areas().find(area);
  // MergeFrom appends every repeated field: the area's objects after the global ones, of every
  // kind the intent has now or gets later.
  if (!area.empty() && section != whole.areas().end()) out.MergeFrom(section->second);
  out.clear_areas();
  if (out.schema_version() == 0) out.set_schema_version(1);
  return out;
}

std::string validate_areas(const c1::Intent& whole) {
  for (const auto& [name, section] : whole.areas()) {
    const std::string at = "areas[" + name + "]";
    if (!is_name(name)) return at + ": '" + name + "' is not a name (letters, digits, - _ .)";
    if (section.areas_size()) return at + ".areas: a section holds no areas";
    if (section.schema_version() > 1) return at + ".schema_version: must be 1 (or left out)";
  }
  return "";
}

void clear_secrets(c1::Intent& intent) {
  for (auto& p : *intent.mutable_peers()) p.clear_psk();
  for (auto& [name, section] : *intent.mutable_areas()) clear_secrets(section);
}

}  // namespace medix::cp
