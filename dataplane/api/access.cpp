#include "api/access.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/struct.pb.h>
#include <grpc/grpc_security_constants.h>
#include <pwd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <regex>
#include <sstream>

#include "common/json.h"
#include "medix/dataplane/v1/dataplane.grpc.pb.h"

namespace medix::dp {

namespace {

// Every RPC of medix.dataplane.v1.Dataplane and the least role that may call it: reading is
// for monitors, clearing what traffic built (sessions) for operators, changing the intent for
// controllers. A method missing here cannot be served (ApiServer::start refuses).
struct Rule {
  const char* method;
  Role least;
};
constexpr Rule rules[] = {
    {"Get", Role::monitor},              // reads
    {"List", Role::monitor},             //
    {"GetCounters", Role::monitor},      //
    {"GetRuntime", Role::monitor},       //
    {"WatchCounters", Role::monitor},    //
    {"WatchSaEvents", Role::monitor},    //
    {"ListSessions", Role::monitor},     //
    {"GetVersion", Role::monitor},       //
    {"GetFib", Role::monitor},           //
    {"Lookup", Role::monitor},           //
    {"GetHaSync", Role::monitor},        //
    {"ClearSessions", Role::operator_},  // ends flows: traffic's state, not the intent
    {"ClearCounters", Role::operator_},  // starts counters anew for every reader
    {"Capture", Role::operator_},        // packets carry patient data
    {"StartTrace", Role::operator_},     // traces name flows (addresses, ports)
    {"GetTrace", Role::operator_},       //
    {"ClearTrace", Role::operator_},     //
    {"Apply", Role::controller},         // changes the intent
    {"SetHaRole", Role::controller},     // decides which node forwards (VRRP drives it)
};

std::optional<Role> role_from(const std::string& name) {
  for (Role r : {Role::none, Role::monitor, Role::operator_, Role::controller})
    if (name == role_name(r)) return r;
  return std::nullopt;
}

std::string user_name(uid_t uid) {
  passwd pw, *found = nullptr;
  char buffer[1024];
  if (getpwuid_r(uid, &pw, buffer, sizeof buffer, &found) == 0 && found) return found->pw_name;
  return "";
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return char(std::tolower(c)); });
  return s;
}

}  // namespace

const char* role_name(Role role) {
  switch (role) {
    case Role::none: return "none";
    case Role::monitor: return "monitor";
    case Role::operator_: return "operator";
    case Role::controller: return "controller";
  }
  return "none";
}

std::optional<Role> Access::needs(const std::string& method) {
  for (const auto& r : rules)
    if (method == r.method) return r.least;
  return std::nullopt;
}

std::string Access::missing_methods() {
  const auto* service = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(
      medix::dataplane::v1::Dataplane::service_full_name());
  if (!service) return "the service's descriptor";
  std::string out;
  for (int i = 0; i < service->method_count(); i++)
    if (!needs(service->method(i)->name())) out += (out.empty() ? "" : ", ") + service->method(i)->name();
  return out;
}

std::optional<std::string> Access::load(const std::string& path) {
  if (path.empty()) return std::nullopt;
  std::ifstream in(path);
  if (!in) return path + ": cannot open the file";
  std::stringstream text;
  text << in.rdbuf();
  google::protobuf::Struct file;
  if (auto e = medix::common::parse_json(text.str(), file)) {
    // protobuf finds a key given twice in a Struct itself, and names it by Struct's insides.
    static const std::regex twice(R"(Repeated map key: '(.*)' is already set)");
    std::smatch m;
    if (std::regex_search(*e, m, twice)) return path + ": identities[\"" + m[1].str() + "\"]: given twice";
    return path + ": " + *e;
  }
  for (const auto& [key, value] : file.fields())
    if (key != "identities") return path + ": " + key + ": no such field (the file holds \"identities\")";
  auto top = file.fields().find("identities");
  if (top == file.fields().end() || !top->second.has_struct_value())
    return path + ": identities: is required, an object of identity: role";
  // Sorted, so that the first error is the same every time.
  std::map<std::string, google::protobuf::Value> entries(top->second.struct_value().fields().begin(),
                                                         top->second.struct_value().fields().end());
  for (const auto& [identity, value] : entries) {
    std::string at = path + ": identities[\"" + identity + "\"]";
    auto role = value.has_string_value() ? role_from(value.string_value()) : std::nullopt;
    if (!role) return at + ": the role is one of \"monitor\", \"operator\", \"controller\", \"none\"";
    // (A copy: clang 14 cannot capture a structured binding.)
    auto prefixed = [&name = identity](const char* p) { return name.rfind(p, 0) == 0 && name.size() > strlen(p); };
    if (prefixed("CN=") || prefixed("URI:")) {
      names_[identity] = *role;
    } else if (prefixed("DNS:")) {
      names_["DNS:" + lower(identity.substr(4))] = *role;
    } else if (prefixed("uid:")) {
      std::string digits = identity.substr(4);
      if (digits.size() > 10 || digits.find_first_not_of("0123456789") != std::string::npos)
        return at + ": a uid is a number";
      uids_[uid_t(std::stoul(digits))] = *role;
    } else if (prefixed("user:")) {
      passwd pw, *found = nullptr;
      char buffer[1024];
      if (getpwnam_r(identity.c_str() + 5, &pw, buffer, sizeof buffer, &found) != 0 || !found)
        return at + ": no such user on this machine";
      uids_[found->pw_uid] = *role;
    } else {
      return at +
             ": an identity is \"CN=name\", \"DNS:name\" or \"URI:uri\" (a client certificate's) or "
             "\"uid:N\" or \"user:name\" (the unix socket's peer)";
    }
  }
  return std::nullopt;
}

Role Access::unix_role(uid_t uid) const {
  if (auto it = uids_.find(uid); it != uids_.end()) return it->second;
  return uid == 0 || uid == owner_ ? Role::controller : Role::none;
}

void Access::add_connection(int fd, uid_t uid) {
  std::string user = user_name(uid);
  std::lock_guard lock(mutex_);
  connections_[fd] = {uid, "uid " + std::to_string(uid) + (user.empty() ? "" : " (" + user + ")")};
}

Identity Access::identify(const grpc::ServerContextBase& context) const {
  auto auth = context.auth_context();
  auto secured =
      auth ? auth->FindPropertyValues(GRPC_TRANSPORT_SECURITY_TYPE_PROPERTY_NAME) : std::vector<grpc::string_ref>{};
  if (!secured.empty() && secured.front() == GRPC_SSL_TRANSPORT_SECURITY_TYPE) {
    // A client certificate the client CA signed (the TLS handshake checked it): its names, each
    // of which may be given a role; the highest applies.
    Identity who;
    std::string names;
    auto add = [&](const std::string& name) {
      names += (names.empty() ? "" : ", ") + name;
      if (auto it = names_.find(name); it != names_.end()) who.role = std::max(who.role, it->second);
    };
    for (const auto& v : auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME))
      add("CN=" + std::string(v.data(), v.size()));
    for (const auto& v : auth->FindPropertyValues(GRPC_PEER_DNS_PROPERTY_NAME))
      add("DNS:" + lower(std::string(v.data(), v.size())));
    for (const auto& v : auth->FindPropertyValues(GRPC_PEER_URI_PROPERTY_NAME))
      add("URI:" + std::string(v.data(), v.size()));
    who.name = names.empty() ? "a certificate without a name" : names;
    return who;
  }
  // The unix socket: connections the listener accepted are "fd:N". The number is not reused
  // while a call of its connection may still ask (api/listener.cpp).
  std::string peer = context.peer();
  if (peer.rfind("fd:", 0) == 0) {
    int fd = std::atoi(peer.c_str() + 3);
    std::lock_guard lock(mutex_);
    if (auto it = connections_.find(fd); it != connections_.end()) return {it->second.name, unix_role(it->second.uid)};
  }
  return {"an unknown peer (" + peer + ")", Role::none};
}

grpc::Status Access::check(const Identity& who, const char* method) const {
  auto least = needs(method);
  if (least && who.role >= *least) return grpc::Status::OK;
  std::string why = std::string(method) + ": " + who.name + " (role " + role_name(who.role) + ") may not call it" +
                    (least ? std::string("; it needs ") + role_name(*least) : std::string("; nobody may"));
  // One line a refusal, at most 20 a second, so that a refused client cannot flood the log.
  if (unsigned held = 0; refusals_.allow(held))
    medix::common::log(medix::common::LogLevel::warning, "medix-dp: API: refused %s%s", why.c_str(),
                       medix::common::held_note(held).c_str());
  return {grpc::StatusCode::PERMISSION_DENIED, why};
}

}  // namespace medix::dp
