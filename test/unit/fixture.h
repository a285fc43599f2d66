#pragma once
// The IX most unit tests run on: two tenants with the same plan, a core tenant reached by a
// route leak, and every kind of attachment.
#include <string>

inline const std::string two_tenants = R"({
  "schema_version": 1,
  "ports": [{"name": "p0", "device": "net_null0"}, {"name": "p1", "device": "net_null1"}],
  "tenants": [{"name": "a"}, {"name": "b"}, {"name": "core"}],
  "interfaces": [
    {"name": "a-lan", "tenant": "a", "port": "p0", "vlan": 10, "addresses": ["10.0.0.1/24"], "mac": "02:00:00:00:00:0a"},
    {"name": "b-lan", "tenant": "b", "port": "p0", "vlan": 20, "addresses": ["10.0.0.1/24"], "mac": "02:00:00:00:00:0b"},
    {"name": "q-lan", "tenant": "a", "port": "p0", "vlan": 100, "inner_vlan": 30, "addresses": ["10.2.0.1/24"], "mac": "02:00:00:00:00:0c"},
    {"name": "u-lan", "tenant": "core", "port": "p0", "addresses": ["100.64.0.1/24"], "mac": "02:00:00:00:00:0d"},
    {"name": "a-svc", "tenant": "a", "port": "p1", "vlan": 110, "addresses": ["10.1.0.1/24"], "mac": "02:00:00:00:01:0a", "mtu": 1000},
    {"name": "b-svc", "tenant": "b", "port": "p1", "vlan": 120, "addresses": ["10.1.0.1/24"], "mac": "02:00:00:00:01:0b"}
  ],
  "routes": [
    {"tenant": "a", "prefix": "192.168.0.0/16", "next_tenant": "core"},
    {"tenant": "core", "prefix": "192.168.1.0/24", "via": {"interface": "u-lan", "address": "100.64.0.9"}},
    {"tenant": "a", "prefix": "172.16.0.0/12", "blackhole": {"unreachable": true}},
    {"tenant": "a", "prefix": "172.32.0.0/16", "blackhole": {}},
    {"tenant": "a", "prefix": "10.99.0.0/16", "next_tenant": "b"},
    {"tenant": "b", "prefix": "10.99.0.0/16", "next_tenant": "a"}
  ],
  "neighbours": [
    {"interface": "a-svc", "address": "10.1.0.10", "mac": "02:00:00:00:aa:aa"},
    {"interface": "b-svc", "address": "10.1.0.10", "mac": "02:00:00:00:bb:bb"},
    {"interface": "u-lan", "address": "100.64.0.9", "mac": "02:00:00:00:cc:cc"}
  ],
  "settings": {"icmp_burst": 5, "icmp_rate_per_second": 1}
})";

inline constexpr const char* host_mac = "02:00:00:00:00:99";
