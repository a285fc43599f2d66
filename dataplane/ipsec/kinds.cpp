#include "ipsec/kinds.h"

#include <array>

#include "control/check.h"
#include "ipsec/commit.h"
#include "ipsec/sa.h"

namespace medix::dp {
namespace {

// --- Tunnel ---------------------------------------------------------------------------------

std::optional<v1::Object> find_tunnel(const Intent& in, const Intent::Key& k) {
  return find_in(in.tunnels, k.name, [](v1::Object& x, const v1::Tunnel& v) { *x.mutable_tunnel() = v; });
}

std::optional<Error> selectors(const std::string& path, const google::protobuf::RepeatedPtrField<std::string>& list) {
  if (list.size() > 8) return invalid(path, "more than 8 selectors");
  for (int i = 0; i < list.size(); i++) {
    auto p = parse_prefix(list.Get(i));
    std::string at = path + "[" + std::to_string(i) + "]";
    if (!p) return invalid(at, quoted(list.Get(i)) + " is not a prefix like 10.1.0.0/16");
    uint32_t mask = p->length == 0 ? 0 : ~uint32_t(0) << (32 - p->length);
    if (p->address & ~mask) return invalid(at, quoted(list.Get(i)) + " has host bits set");
  }
  return std::nullopt;
}

std::optional<Error> check_tunnel(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& t = o.tunnel();
  if (in.interfaces.count(t.name())) return invalid(path + ".name", "an interface is named " + quoted(t.name()));
  if (t.tenant().empty()) return invalid(path + ".tenant", "is required");
  if (!in.tenants.count(t.tenant())) return invalid(path + ".tenant", "no tenant named " + quoted(t.tenant()));
  if (t.underlay_tenant().empty()) return invalid(path + ".underlay_tenant", "is required");
  if (!in.tenants.count(t.underlay_tenant()))
    return invalid(path + ".underlay_tenant", "no tenant named " + quoted(t.underlay_tenant()));
  if (!parse_ipv4(t.local_address()))
    return invalid(path + ".local_address", quoted(t.local_address()) + " is not an IPv4 address");
  if (!parse_ipv4(t.remote_address()))
    return invalid(path + ".remote_address", quoted(t.remote_address()) + " is not an IPv4 address");
  if (auto e = range(path + ".encap_udp_port", t.encap_udp_port(), 0, 65535)) return e;
  if (t.mtu())
    if (auto e = range(path + ".mtu", t.mtu(), 576, 9000)) return e;
  if (t.tcp_mss_clamp())
    if (auto e = range(path + ".tcp_mss_clamp", t.tcp_mss_clamp(), 536, 9000)) return e;
  if (auto e = range(path + ".ttl", t.ttl(), 0, 255)) return e;
  if (!v1::DscpMode_IsValid(t.dscp())) return invalid(path + ".dscp", "is not a DSCP mode");
  if (t.dscp() == v1::DSCP_SET) {
    if (auto e = range(path + ".outer_dscp", t.outer_dscp(), 0, 63)) return e;
  } else if (t.outer_dscp()) {
    return invalid(path + ".outer_dscp", "is for DSCP_SET");
  }
  if (auto e = selectors(path + ".local_selectors", t.local_selectors())) return e;
  if (auto e = selectors(path + ".remote_selectors", t.remote_selectors())) return e;
  for (const auto& [name, other] : in.tunnels)
    if (other.local_address() == t.local_address() && other.remote_address() == t.remote_address() &&
        other.underlay_tenant() == t.underlay_tenant() && other.encap_udp_port() == t.encap_udp_port())
      return invalid(path + ".remote_address", "tunnel " + quoted(name) + " has the same endpoints");
  if (in.interfaces.size() + in.tunnels.size() >= max_interfaces)
    return Error{Code::resource_exhausted,
                 path + ": more than " + std::to_string(max_interfaces) + " interfaces and tunnels"};
  return std::nullopt;
}

std::optional<Error> list_tunnels(const Intent& in, const Committer&, const v1::ListRequest& request, uint32_t page,
                                  v1::ListResponse& out) {
  const std::string& tenant = request.tenant();
  std::string last;
  auto it = in.tunnels.upper_bound(request.page_token());
  for (; it != in.tunnels.end() && uint32_t(out.objects_size()) < page; ++it) {
    if (!tenant.empty() && it->second.tenant() != tenant && it->second.underlay_tenant() != tenant) continue;
    *out.add_objects()->mutable_tunnel() = it->second;
    last = it->first;
  }
  if (uint32_t(out.objects_size()) >= page && it != in.tunnels.end()) out.set_next_page_token(last);
  return std::nullopt;
}

// --- Security association -------------------------------------------------------------------

std::optional<v1::Object> find_sa(const Intent& in, const Intent::Key& k) {
  return find_in(in.sas, k.sa, [](v1::Object& x, const v1::SecurityAssociation& v) { *x.mutable_sa() = v; });
}

std::optional<Error> check_sa(Intent& in, const v1::Object& o, const std::string& path) {
  const auto& sa = o.sa();
  if (!in.tunnels.count(sa.tunnel())) return invalid(path + ".tunnel", "no tunnel named " + quoted(sa.tunnel()));
  if (sa.inbound() && in.inbound_spis.count(sa.spi()))
    return invalid(path + ".spi",
                   "inbound SPI " + std::to_string(sa.spi()) + " is already used (inbound SAs are found by SPI)");
  size_t key_len = 0, auth_len = 0;
  switch (sa.cipher()) {
    case v1::AES_GCM_128: key_len = 16 + 4; break;
    case v1::AES_GCM_256: key_len = 32 + 4; break;
    case v1::AES_CBC_128: key_len = 16; break;
    case v1::AES_CBC_256: key_len = 32; break;
    default: return invalid(path + ".cipher", "is required: AES_GCM_128, AES_GCM_256, AES_CBC_128 or AES_CBC_256");
  }
  bool gcm = sa.cipher() == v1::AES_GCM_128 || sa.cipher() == v1::AES_GCM_256;
  if (sa.cipher_key().size() != key_len)
    return invalid(path + ".cipher_key", std::to_string(sa.cipher_key().size()) + " bytes; " +
                                             v1::Cipher_Name(sa.cipher()) + " takes " + std::to_string(key_len) +
                                             (gcm ? " (key and 4-byte salt)" : ""));
  switch (sa.integrity()) {
    case v1::INTEGRITY_UNSPECIFIED:
      if (!gcm) return invalid(path + ".integrity", "is required with AES-CBC: HMAC_SHA256_128 or HMAC_SHA1_96");
      break;
    case v1::HMAC_SHA256_128: auth_len = 32; break;
    case v1::HMAC_SHA1_96: auth_len = 20; break;
    default: return invalid(path + ".integrity", "is not known");
  }
  if (gcm && sa.integrity() != v1::INTEGRITY_UNSPECIFIED)
    return invalid(path + ".integrity", "must be unset with AES-GCM (it authenticates itself)");
  if (!gcm && sa.integrity_key().size() != auth_len)
    return invalid(path + ".integrity_key", std::to_string(sa.integrity_key().size()) + " bytes; " +
                                                v1::Integrity_Name(sa.integrity()) + " takes " +
                                                std::to_string(auth_len));
  if (auto e = range(path + ".replay_window", sa.replay_window(), 0, 4096)) return e;
  if (!v1::SaOrigin_IsValid(sa.origin()))
    return invalid(path + ".origin", "is not known: SA_ORIGIN_LOCAL or SA_ORIGIN_PEER");
  if (sa.soft_bytes() && sa.hard_bytes() && sa.soft_bytes() > sa.hard_bytes())
    return invalid(path + ".soft_bytes", "is above hard_bytes");
  if (sa.soft_packets() && sa.hard_packets() && sa.soft_packets() > sa.hard_packets())
    return invalid(path + ".soft_packets", "is above hard_packets");
  if (in.sas.size() >= 8192) return Error{Code::resource_exhausted, path + ": more than 8192 SAs"};
  return std::nullopt;
}

// Keys are write-only: nothing that reads the API learns them.
v1::SecurityAssociation without_keys(v1::SecurityAssociation sa) {
  sa.clear_cipher_key();
  sa.clear_integrity_key();
  return sa;
}

std::optional<Error> list_sas(const Intent& in, const Committer&, const v1::ListRequest& request, uint32_t page,
                              v1::ListResponse& out) {
  // token: how many SAs earlier pages held (SAs are few; their order is the key's).
  const std::string& token = request.page_token();
  size_t start = token.empty() ? 0 : std::stoul(token), i = 0;
  for (auto it = in.sas.begin(); it != in.sas.end() && uint32_t(out.objects_size()) < page; ++it, ++i)
    if (i >= start) *out.add_objects()->mutable_sa() = without_keys(it->second);
  if (start + size_t(out.objects_size()) < in.sas.size())
    out.set_next_page_token(std::to_string(start + out.objects_size()));
  return std::nullopt;
}

// --- Counters ---------------------------------------------------------------------------

// A tunnel's counters are its interface slot's (Counters::Interface): decrypted from it (rx)
// and encrypted into it (tx).
const CounterColumn tunnel_columns[] = {
    {"rx_packets", "Packets decrypted from the tunnel."},
    {.field = "rx_bytes", .help = "", .metric = ""},
    {"tx_packets", "Packets encrypted into the tunnel."},
    {.field = "tx_bytes", .help = "", .metric = ""},
};

const KindCounters tunnel_counters = {
    .list = "tunnels",
    .columns = tunnel_columns,
    .read =
        [](const CounterSource& s, std::vector<CounterRow>& rows) {
          for (size_t i = 0; i < s.tables.interfaces.size(); i++) {
            if (!s.tables.interfaces[i].uid || !s.tables.interfaces[i].tunnel) continue;
            const Counters::Interface& f = s.since->interfaces[i];
            rows.push_back({s.tables.interfaces[i].name, {f.rx_packets, f.rx_bytes, f.tx_packets, f.tx_bytes}});
          }
        },
    .clear = KindCounters::Clear::in_source,
};

// An SA's row: its counters (SaState, owned by its worker), what it is (filled into
// SaCounters' other fields), then its drops by reason (SaCounters::drops).
enum SaColumn : unsigned { sa_spi = 4, sa_inbound, sa_state, sa_first_drop };
constexpr auto sa_columns = [] {
  std::array<CounterColumn, sa_first_drop + sa_drop_count> c{};
  c[0] = {"packets", "Packets through the SA."};
  c[1] = {"bytes", "Bytes through the SA."};
  c[2] = {.field = "last_used_ns", .help = "", .gauge = true, .metric = ""};  // a time, no count
  c[3] = {.field = "sequence", .help = "", .gauge = true, .metric = ""};
  c[sa_spi] = {.field = "spi", .help = "", .gauge = true, .metric = "", .by_fill = true};
  c[sa_inbound] = {.field = "inbound", .help = "", .gauge = true, .metric = "", .by_fill = true};
  c[sa_state] = {.field = "state", .help = "", .gauge = true, .metric = "", .by_fill = true};
  for (unsigned r = 0; r < sa_drop_count; r++)
    c[sa_first_drop + r] = {.field = drop_reasons[unsigned(first_sa_drop) + r].name,
                            .help = "Packets of the SA dropped, by reason.",
                            .metric = "medix_sa_drops_total",
                            .label = "reason",
                            .value = drop_reasons[unsigned(first_sa_drop) + r].name,
                            .by_fill = true};
  return c;
}();

const char* const sa_others[] = {"drops"};

const KindCounters sa_counters = {
    .list = "sas",
    .columns = sa_columns,
    .read =
        [](const CounterSource& s, std::vector<CounterRow>& rows) {
          s.committer.for_each_sa([&](const SaKey& key, const SaState& sa) {
            std::vector<uint64_t> v(sa_columns.size());
            v[0] = load_counter(sa.packets);
            v[1] = load_counter(sa.bytes);
            if (uint64_t used = sa.last_used_tsc)
              v[2] = s.now_ns - (s.now_tsc > used ? (s.now_tsc - used) * 1000000000 / s.tsc_hz : 0);
            v[3] = sa.inbound ? sa.replay.top : sa.seq;
            v[sa_spi] = key.spi;
            v[sa_inbound] = key.inbound;
            v[sa_state] = uint64_t(sa.life);
            for (unsigned r = 0; r < sa_drop_count; r++) v[sa_first_drop + r] = load_counter(sa.drops[r]);
            const char* direction = key.inbound ? "in" : "out";
            // Keyed at a clear by tunnel, SPI and direction (the part), as the SA is.
            rows.push_back({key.tunnel,
                            std::move(v),
                            std::to_string(key.spi) + "/" + direction,
                            nullptr,
                            {{"spi", std::to_string(key.spi)}, {"direction", direction}}});
          });
        },
    .below_base_is_new = true,
    .label = "tunnel",
    .name_field = "tunnel",
    .fill =
        [](const CounterRow& row, google::protobuf::Message& out) {
          auto& x = static_cast<v1::SaCounters&>(out);
          x.set_spi(uint32_t(row.values[sa_spi]));
          x.set_inbound(row.values[sa_inbound] != 0);
          x.set_state(v1::SaState(row.values[sa_state]));
          for (unsigned r = 0; r < sa_drop_count; r++) {
            auto* d = x.add_drops();
            d->set_reason(drop_reasons[unsigned(first_sa_drop) + r].name);
            d->set_packets(row.values[sa_first_drop + r]);
          }
        },
    .others = sa_others,
};

}  // namespace

const Kind tunnel_kind = {
    .object = v1::Object::kTunnel,
    .list_kind = v1::TUNNEL,
    .name = "tunnel",
    .plural = "tunnels",
    .config_size = [](const v1::Config& c) { return c.tunnels_size(); },
    .take = [](v1::Config& c, int i, v1::Object& o) { *o.mutable_tunnel() = std::move(*c.mutable_tunnels(i)); },
    .clear_output = nullptr,
    .check_key = [](const v1::Object& o, const std::string& path) { return name(path + ".name", o.tunnel().name()); },
    .key =
        [](const v1::Object& o) {
          return Intent::Key{v1::Object::kTunnel, o.tunnel().name()};
        },
    .find = find_tunnel,
    .put =
        [](Intent& in, const v1::Object& o) {
          in.tunnels[o.tunnel().name()] = o.tunnel();
          count(in.tenant_users, o.tunnel().tenant(), 1);
          count(in.tenant_users, o.tunnel().underlay_tenant(), 1);
        },
    .erase =
        [](Intent& in, const v1::Object& o) {
          in.tunnels.erase(o.tunnel().name());
          count(in.tenant_users, o.tunnel().tenant(), -1);
          count(in.tenant_users, o.tunnel().underlay_tenant(), -1);
        },
    .validate = check_tunnel,
    .check_update = [](const Intent& in, const v1::Object& existing, const v1::Object& o,
                       const std::string& path) -> std::optional<Error> {
      if ((o.tunnel().tenant() != existing.tunnel().tenant() ||
           o.tunnel().underlay_tenant() != existing.tunnel().underlay_tenant()) &&
          users(in.interface_users, o.tunnel().name()))
        return Error{Code::failed_precondition,
                     path + ": tenants cannot change while routes, SAs or a shaper use the tunnel"};
      return std::nullopt;
    },
    // Routes and SAs use a tunnel by name, as they would an interface.
    .check_delete =
        [](const Intent& in, const v1::Object& o, const std::string& path) {
          return in_use(path, "tunnel", o.tunnel().name(), users(in.interface_users, o.tunnel().name()));
        },
    .check_final = nullptr,
    .error_name = [](const v1::Object& o) { return o.tunnel().name(); },
    .build = {{Phase::attachments, ipsec::build_tunnels}, {Phase::derived, ipsec::build_tunnel_mtus}},
    .reclaim = nullptr,
    .diff = nullptr,
    .get = [](const Intent& in, const Committer&, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      if (auto it = in.tunnels.find(key.tunnel().name()); it != in.tunnels.end()) *out.mutable_tunnel() = it->second;
      return std::nullopt;
    },
    .list = list_tunnels,
    .counters = &tunnel_counters,
};

const Kind sa_kind = {
    .object = v1::Object::kSa,
    .list_kind = v1::SA,
    .name = "sa",
    .plural = "sas",
    .config_size = [](const v1::Config& c) { return c.sas_size(); },
    .take = [](v1::Config& c, int i, v1::Object& o) { *o.mutable_sa() = std::move(*c.mutable_sas(i)); },
    .clear_output = nullptr,
    .check_key = [](const v1::Object& o, const std::string& path) -> std::optional<Error> {
      if (o.sa().spi() < 256) return invalid(path + ".spi", std::to_string(o.sa().spi()) + " is reserved (0..255)");
      if (o.sa().tunnel().empty()) return invalid(path + ".tunnel", "is required");
      return std::nullopt;
    },
    .key =
        [](const v1::Object& o) {
          Intent::Key k{v1::Object::kSa, {}};
          k.sa = sa_key(o.sa());
          return k;
        },
    .find = find_sa,
    // Creation order picks a tunnel's outbound SA: each SA is stamped when it enters the
    // intent and its stamp goes with it. (It was stamped in check_sa, before the checks, and
    // never erased: every refused SA and every SA deleted left its stamp behind, so a rejected
    // transaction changed the intent and rekeys grew sa_serial for ever. Found by fuzz-apply.)
    .put =
        [](Intent& in, const v1::Object& o) {
          in.sas[sa_key(o.sa())] = o.sa();
          in.sa_serial[sa_key(o.sa())] = ++in.sa_serials;
          count(in.interface_users, o.sa().tunnel(), 1);
          if (o.sa().inbound()) in.inbound_spis.insert(o.sa().spi());
        },
    .erase =
        [](Intent& in, const v1::Object& o) {
          in.sas.erase(sa_key(o.sa()));
          in.sa_serial.erase(sa_key(o.sa()));
          count(in.interface_users, o.sa().tunnel(), -1);
          if (o.sa().inbound()) in.inbound_spis.erase(o.sa().spi());
        },
    .validate = check_sa,
    .check_update = [](const Intent&, const v1::Object&, const v1::Object&,
                       const std::string& path) -> std::optional<Error> {
      return invalid(path, "an SA cannot change: create the new one (a rekey) and delete the old");
    },
    .check_delete = nullptr,
    .check_final = nullptr,
    .error_name = [](const v1::Object& o) { return std::to_string(o.sa().spi()); },
    .build = {{Phase::security, ipsec::build_sas}},
    .reclaim = ipsec::reclaim_sas,
    .diff = nullptr,
    .get = [](const Intent& in, const Committer&, const v1::Object& key, v1::Object& out) -> std::optional<Error> {
      if (auto it = in.sas.find(sa_key(key.sa())); it != in.sas.end()) *out.mutable_sa() = without_keys(it->second);
      return std::nullopt;
    },
    .list = list_sas,
    .counters = &sa_counters,
};

}  // namespace medix::dp
