#include <catch2/catch.hpp>

#include "common/address.h"
#include "common/json.h"
#include "common/keys.h"
#include "common/metrics_http.h"
#include "common/notify.h"

#include <google/protobuf/util/json_util.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

using namespace medix::common;
namespace v1 = medix::dataplane::v1;

TEST_CASE("addresses, prefixes and MACs parse strictly") {
  CHECK(parse_ipv4("10.0.0.1") == 0x0a000001u);
  CHECK(!parse_ipv4("10.0.0"));
  CHECK(!parse_ipv4("10.0.0.256"));
  CHECK(parse_prefix("10.1.0.0/16")->length == 16);
  CHECK(!parse_prefix("10.1.0.0/33"));
  CHECK(!parse_prefix("10.1.0.0/"));
  CHECK(!parse_prefix("10.1.0.0/1x"));
  CHECK(parse_mac("02:00:00:00:00:0a") == 0x02000000000aull);
  CHECK(!parse_mac("02:00:00:00:00"));
  CHECK(!parse_mac("02-00-00-00-00-0a"));
}

TEST_CASE("IPv4 addresses parse exactly as inet_pton reads them") {
  auto pton = [](const std::string& s) -> std::optional<uint32_t> {
    in_addr a{};
    if (inet_pton(AF_INET, s.c_str(), &a) != 1) return std::nullopt;
    return ntohl(a.s_addr);
  };
  std::mt19937 rng(13);
  const std::string alphabet = "0123456789.0125.x /";
  std::vector<std::string> texts = {"0.0.0.0",   "255.255.255.255", "1.2.3.04", "1.2.3.4.",  ".1.2.3.4",   "1..2.3",
                                    "256.1.1.1", "1.2.3",           "1.2.3.4 ", "001.2.3.4", "1.2.3.2555", "10.0.0.1x"};
  for (int i = 0; i < 200000; i++) {
    std::string s;
    for (size_t n = rng() % 17; n > 0; n--) s += alphabet[rng() % alphabet.size()];
    texts.push_back(s);
    // Mostly well formed: four parts of up to four digits.
    std::string d;
    for (int part = 0; part < 4; part++) d += (part ? "." : "") + std::to_string(rng() % (rng() % 2 ? 300 : 10000));
    texts.push_back(rng() % 8 ? d : "0" + d);
  }
  for (const auto& s : texts) {
    INFO(s);
    REQUIRE(parse_ipv4(s) == pton(s));
  }
}

TEST_CASE("HA sync endpoints: an IPv4 address and a port 1..65535, as medix-dp and medix-cp take them") {
  sockaddr_in a{};
  REQUIRE(parse_endpoint("192.0.2.1:4500", a));
  CHECK(a.sin_family == AF_INET);
  CHECK(ntohl(a.sin_addr.s_addr) == 0xc0000201u);
  CHECK(ntohs(a.sin_port) == 4500);
  REQUIRE(parse_endpoint("10.0.0.1:65535", a));
  CHECK(ntohs(a.sin_port) == 65535);
  for (const char* bad : {"192.0.2.1", "192.0.2.1:", "192.0.2.1:0", "192.0.2.1:65536", "192.0.2.1:-1", "192.0.2.1:80x",
                          "192.0.2:80", "192.0.2.01:80", "host:80", ":80", ""}) {
    INFO(bad);
    CHECK(!parse_endpoint(bad, a));
  }
}

TEST_CASE("addresses and networks format back to one text") {
  CHECK(format_ipv4(0x0a000001u) == "10.0.0.1");
  CHECK(format_ipv4(*parse_ipv4("192.168.1.255")) == "192.168.1.255");
  CHECK(parse_prefix("10.1.2.3/16")->address == 0x0a010203u);  // host bits kept (an interface address)
  CHECK(format_network(*parse_prefix("10.1.2.3/16")) == "10.1.0.0/16");
  CHECK(format_network(*parse_prefix("10.1.2.3/32")) == "10.1.2.3/32");
  CHECK(format_network(*parse_prefix("10.1.2.3/0")) == "0.0.0.0/0");
}

TEST_CASE("object keys come from the v1 messages, addresses as numbers") {
  v1::Route r;
  r.set_tenant("a");
  r.set_prefix("10.1.0.0/16");
  auto k = route_key(r);
  REQUIRE(k);
  CHECK(*k == RouteKey{"a", 0x0a010000u, 16});
  r.set_prefix("10.1.0.0/016");
  CHECK(route_key(r) == k);
  r.set_prefix("10.1.0.0");
  CHECK(!route_key(r));

  v1::Neighbour n;
  n.set_interface("a-lan");
  n.set_address("10.0.0.7");
  CHECK(neighbour_key(n) == NeighbourKey{"a-lan", 0x0a000007u});
  n.set_address("bogus");
  CHECK(!neighbour_key(n));

  v1::StaticMapping m;
  m.set_tenant("a");
  m.set_tenant_prefix("10.0.1.0/24");
  CHECK(mapping_key(m) == MappingKey{"a", 0x0a000100u, 24});

  v1::SecurityAssociation sa;
  sa.set_tunnel("t");
  sa.set_spi(0x1000);
  sa.set_inbound(true);
  CHECK(sa_key(sa) == SaKey{"t", 0x1000, true});
  CHECK(sa_key(sa) != SaKey{"t", 0x1000, false});
}

TEST_CASE(
    "a JSON file that does not parse is refused by field and reason (a typo with a guess), never quoting its text") {
  v1::Config config;
  // A key that is not base64, one that is a number, and a syntax error beside a key: the
  // field and the reason are said, the bytes are not.
  auto bad_key = parse_json(R"({"sas": [{"spi": 1000, "cipher_key": "SECRET!!not-base64"}]})", config);
  REQUIRE(bad_key);
  CHECK(*bad_key == "sas[0].cipher_key: is not base64 (the value is not shown)");
  auto number = parse_json(R"({"sas": [{"spi": 1000, "integrity_key": 123456789}]})", config);
  REQUIRE(number);
  CHECK(*number == "sas[0].integrity_key: is not base64 (the value is not shown)");
  auto syntax = parse_json("{\"schema_version\": 1,\n \"sas\": [{\"cipher_key\": SECRETRAW}]}", config);
  REQUIRE(syntax);
  CHECK(syntax->find("SECRET") == std::string::npos);
  CHECK(*syntax == "Unexpected token at line 2, column 25 (the text around it is not shown)");
  // Other errors keep what they said (no value in them).
  auto unknown = parse_json(R"({"tunnelz": []})", config);
  REQUIRE(unknown);
  CHECK(*unknown == "tunnelz: no such field (did you mean \"tunnels\"?)");
  // A misspelt field anywhere is named by its path, with the closest field of its message.
  unknown = parse_json(R"({"interfaces": [{"name": "a", "vlna": 3}]})", config);
  REQUIRE(unknown);
  CHECK(*unknown == "interfaces[0].vlna: no such field (did you mean \"vlan\"?)");
  unknown = parse_json(R"({"routes": [{"via": {"interfaec": "x"}}]})", config);
  REQUIRE(unknown);
  CHECK(*unknown == "routes[0].via.interfaec: no such field (did you mean \"interface\"?)");
  unknown = parse_json(R"({"hospitals": []})", config);  // no field is close: no guess
  REQUIRE(unknown);
  CHECK(*unknown == "hospitals: no such field");
  CHECK(!parse_json(R"({"schema_version": 1, "sas": [{"cipher_key": "aGVsbG8="}]})", config));
  CHECK(config.sas(0).cipher_key() == "hello");
  // What protobuf lets pass: a key given twice (the last would win) and a trailing comma.
  auto twice = parse_json("{\"tenants\": [{\"name\": \"a\",\n  \"name\": \"b\"}]}", config);
  REQUIRE(twice);
  CHECK(*twice == "tenants[0].name: given twice (line 2, column 3)");
  auto comma = parse_json("{\"tenants\": [{\"name\": \"a\"},\n]}", config);
  REQUIRE(comma);
  CHECK(*comma == "tenants: a trailing comma (line 1, column 27)");
  // Commas, braces and escaped quotes inside strings are text, not structure.
  CHECK(!parse_json(R"({"tenants": [{"name": "a\",}", "description": "x,]"}]})", config));
  // What protobuf says, and what is left of it.
  CHECK(json_error("(sas[0].spi): invalid value \"abc\" for type TYPE_UINT32") ==
        "sas[0].spi: is not a valid UINT32 (the value is not shown)");
  // A key with a line end in it (a JSON "\r" or "\n"): still not shown, not a character of it
  // (found by the config fuzzer).
  CHECK(json_error("(sas[4].cipher_key): invalid value \"3DsehY7SzPv3k\rxsrdrVdYwdRE=\" for type TYPE_BYTES") ==
        "sas[4].cipher_key: is not base64 (the value is not shown)");
  CHECK(json_error("(sas[5].cipher_key): invalid value \"xNDqt11CGBONpeY2\nKjI4Q9URlG3U\" for type TYPE_BYTES") ==
        "sas[5].cipher_key: is not base64 (the value is not shown)");
  CHECK(json_error("(sas[5].cipher_key): invalid value \"xNDqt11CGBONpeY2\n") ==
        "sas[5].cipher_key: has a value that does not parse (the value is not shown)");
  CHECK(json_error("Unexpected token.\nkey\": SECRET,\n        ^") ==
        "Unexpected token. (the text around it is not shown)");
}

// What protobuf's parser makes of the text (and parse_json's strict checks), or nullopt.
std::optional<std::string> protobuf_parse(const std::string& text) {
  v1::Config c;
  google::protobuf::util::JsonParseOptions options;
  if (!google::protobuf::util::JsonStringToMessage(text, &c, options).ok()) return std::nullopt;
  return c.SerializeAsString();
}

TEST_CASE("the fast JSON path parses as protobuf's parser does, or leaves the text to it") {
  // Taken: what configs are made of, each as protobuf's parser reads it.
  for (
      std::string text : {
          R"({})",
          R"({"schema_version": 1, "tenants": [{"name": "t1", "core": true, "max_routes": 100, "fib": "FIB_COMPACT"}]})",
          R"( {"routes": [{"tenant": "t", "prefix": "10.0.0.0/8", "via": {"interface": "i", "address": "1.2.3.4"}},
                          {"tenant": "t", "prefix": "0.0.0.0/0", "blackhole": {}}], "ports": []} )",
          R"({"interfaces": [{"name": "a", "vlan": 0, "inner_vlan": 4094, "addresses": ["10.0.0.1/24", "10.0.1.1/24"]}]})",
          R"({"settings": {"fib_memory_mb": 4294967295}})",
      }) {
    v1::Config fast;
    INFO(text);
    REQUIRE(parse_json_fast(text, fast));
    CHECK(protobuf_parse(text) == fast.SerializeAsString());
  }
  // Left to protobuf's parser: escapes, non-ASCII, bytes, numbers as strings or out of range,
  // negative unsigned, fractions, null, camelCase names, a key twice, a trailing comma,
  // unknown fields and enum values, two of a oneof, anything after the object.
  for (std::string text : {
           R"({"tenants": [{"name": "a\"b"}]})",
           "{\"tenants\": [{\"description\": \"\xe7\x97\x85\xe9\x99\xa2\"}]}",
           R"({"sas": [{"spi": 1000, "cipher_key": "aGVsbG8="}]})",
           R"({"schema_version": "1"})",
           R"({"schema_version": 4294967296})",
           R"({"interfaces": [{"vlan": -1}]})",
           R"({"schema_version": 1.0})",
           R"({"schema_version": 1e0})",
           R"({"schema_version": 01})",
           R"({"schema_version": null})",
           R"({"schemaVersion": 1})",
           R"({"tenants": [{"name": "a", "name": "b"}]})",
           R"({"tenants": [{"name": "a"},]})",
           R"({"tenants": [{"nmae": "a"}]})",
           R"({"tenants": [{"fib": "FIB_SMALL"}]})",
           R"({"routes": [{"local": {}, "blackhole": {}}]})",
           R"({} {})",
           R"([])",
           "",
       }) {
    v1::Config fast;
    INFO(text);
    CHECK(!parse_json_fast(text, fast));
  }
}

// The exposition text of one family, and the HTTP server that both daemons' endpoints use,
// asked over a real socket.
namespace {

std::string http_get(unsigned port, const std::string& request) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(uint16_t(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  std::string answer;
  if (connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      send(fd, request.data(), request.size(), 0) == ssize_t(request.size())) {
    char buffer[4096];
    for (ssize_t n; (n = recv(fd, buffer, sizeof buffer, 0)) > 0;) answer.append(buffer, size_t(n));
  }
  close(fd);
  return answer;
}

}  // namespace

TEST_CASE("metrics: a family's HELP, TYPE and samples, label values escaped") {
  std::ostringstream out;
  MetricFamily(out, "medix_x_total", "counter", "Things.")
      .sample({}, uint64_t(3))
      .sample({{"peer", "a\"b\\c\nd"}, {"state", "up"}}, 0.5);
  CHECK(out.str() ==
        "# HELP medix_x_total Things.\n# TYPE medix_x_total counter\nmedix_x_total 3\n"
        "medix_x_total{peer=\"a\\\"b\\\\c\\nd\",state=\"up\"} 0.5\n");
}

TEST_CASE("metrics: the HTTP server answers GET /metrics with render(), anything else 404") {
  MetricsHttpServer server;
  CHECK(server.start(
            "bad", [] { return ""; }, "x") == "bad: expected HOST:PORT (e.g. 127.0.0.1:9464)");
  MetricsHttpServer good;
  REQUIRE(!good.start(
      "127.0.0.1:0", [] { return std::string("medix_up 1\n"); }, "medix-test"));
  REQUIRE(good.port() != 0);
  std::string ok = http_get(good.port(), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(ok.starts_with("HTTP/1.1 200 OK\r\n"));
  CHECK(ok.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(ok.ends_with("\r\n\r\nmedix_up 1\n"));
  std::string other = http_get(good.port(), "GET / HTTP/1.1\r\n\r\n");
  CHECK(other.starts_with("HTTP/1.1 404 Not Found\r\n"));
  CHECK(other.ends_with("medix-test serves GET /metrics only\n"));
  CHECK(http_get(good.port(), "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
  good.stop();
}

TEST_CASE("systemd hears READY=1 and STOPPING=1 on the socket NOTIFY_SOCKET names") {
  std::string path = "/tmp/medix-notify-test-" + std::to_string(getpid());
  int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(s >= 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  unlink(path.c_str());
  REQUIRE(bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  setenv("NOTIFY_SOCKET", path.c_str(), 1);
  auto receive = [&] {
    char buf[256] = {};
    timeval timeout{2, 0};
    setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    ssize_t n = recv(s, buf, sizeof buf - 1, 0);
    return n > 0 ? std::string(buf, size_t(n)) : std::string();
  };
  notify_ready("2 ports, 1 workers");
  CHECK(receive() == "READY=1\nSTATUS=2 ports, 1 workers");
  notify_stopping();
  CHECK(receive() == "STOPPING=1");
  unsetenv("NOTIFY_SOCKET");
  notify_ready("nobody listens");  // outside systemd: nothing, no error
  close(s);
  unlink(path.c_str());
}
