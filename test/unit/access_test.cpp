// The API's roles: the per-RPC table and the roles file (dataplane/api/access.*).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "api/access.h"

using namespace medix::dp;

namespace {
// Loads `json` as a roles file: "" or the error without the file's name.
std::string load_error(const std::string& json, Access* out = nullptr) {
  char path[] = "/tmp/medix-roles-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  std::ofstream(path) << json;
  Access access;
  auto e = (out ? *out : access).load(path);
  unlink(path);
  if (!e) return "";
  REQUIRE(e->rfind(std::string(path) + ": ", 0) == 0);
  return e->substr(strlen(path) + 2);
}
}  // namespace

TEST_CASE("every RPC of the service has a role; reads are a monitor's, Apply a controller's") {
  CHECK(Access::missing_methods().empty());
  CHECK(Access::needs("Get") == Role::monitor);
  CHECK(Access::needs("WatchCounters") == Role::monitor);
  CHECK(Access::needs("ClearSessions") == Role::operator_);
  CHECK(Access::needs("ClearCounters") == Role::operator_);
  CHECK(Access::needs("Apply") == Role::controller);
  CHECK(!Access::needs("Unheard"));
}

TEST_CASE("a roles file: identities of both kinds, each with a known role") {
  CHECK(load_error(R"({"identities": {"CN=nms": "monitor", "DNS:Nms.Example": "operator",
                     "URI:spiffe://ix/cp": "controller", "uid:1001": "none", "user:root": "monitor"}})") == "");
  CHECK(load_error(R"({"identities": {}})") == "");
  CHECK(load_error(R"({"identities": {"CN=nms": "admin"}})") ==
        "identities[\"CN=nms\"]: the role is one of \"monitor\", \"operator\", \"controller\", \"none\"");
  CHECK(load_error(R"({"identities": {"CN=nms": 3}})").find("the role is one of") != std::string::npos);
  CHECK(load_error(R"({"identities": {"nms": "monitor"}})").find("an identity is \"CN=name\"") != std::string::npos);
  CHECK(load_error(R"({"identities": {"CN=": "monitor"}})").find("an identity is") != std::string::npos);
  CHECK(load_error(R"({"identities": {"uid:x1": "monitor"}})") == "identities[\"uid:x1\"]: a uid is a number");
  CHECK(load_error(R"({"identities": {"user:no-such-user-here": "monitor"}})") ==
        "identities[\"user:no-such-user-here\"]: no such user on this machine");
  CHECK(load_error(R"({"identitys": {}})") == "identitys: no such field (the file holds \"identities\")");
  CHECK(load_error(R"({})") == "identities: is required, an object of identity: role");
  // What JSON parsers let pass: a key given twice (the last would win) and a trailing comma.
  CHECK(load_error(R"({"identities": {"CN=a": "monitor", "CN=a": "controller"}})") ==
        "identities[\"CN=a\"]: given twice");
  CHECK(load_error(R"({"identities": {"CN=a": "monitor",}})").find("trailing comma") != std::string::npos);
}

TEST_CASE("a refusal names the RPC, the identity and its role") {
  Access access;
  auto s = access.check({"CN=nms", Role::monitor}, "Apply");
  CHECK(s.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(s.error_message() == "Apply: CN=nms (role monitor) may not call it; it needs controller");
  CHECK(access.check({"CN=nms", Role::monitor}, "List").ok());
  CHECK(access.check({"uid 0 (root)", Role::controller}, "Apply").ok());
  CHECK(access.check({"uid 0 (root)", Role::controller}, "Unheard").error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
}
