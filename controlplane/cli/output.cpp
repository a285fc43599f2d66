#include "output.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <map>
#include <set>

namespace medix::ctl {

namespace {

using Objects = google::protobuf::RepeatedPtrField<v1::Object>;

std::string num(uint64_t value) { return std::to_string(value); }

std::string fixed(double value, int digits) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

// 950, 1.23k, 45.6M, 1.00G: three significant digits for rates.
std::string si(double value) {
  static const char* const units[] = {"", "k", "M", "G", "T"};
  int unit = 0;
  while (std::fabs(value) >= 999.5 && unit < 4) {
    value /= 1000;
    unit++;
  }
  if (unit == 0) return fixed(value, value == std::floor(value) ? 0 : 1);
  return fixed(value, std::fabs(value) < 9.995 ? 2 : std::fabs(value) < 99.95 ? 1 : 0) + units[unit];
}

std::string join(const google::protobuf::RepeatedPtrField<std::string>& items, const char* separator = ",") {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

std::string route_target(const v1::Route& route) {
  switch (route.target_case()) {
    case v1::Route::kVia:
      return "via " + route.via().interface() + (route.via().address().empty() ? "" : " " + route.via().address());
    case v1::Route::kNextTenant: return "tenant " + route.next_tenant();
    case v1::Route::kLocal: return "local";
    case v1::Route::kBlackhole: return route.blackhole().unreachable() ? "blackhole unreachable" : "blackhole";
    case v1::Route::TARGET_NOT_SET: break;
  }
  return "";
}

void print_ports(std::ostream& out, const Objects& objects) {
  Table table({{"NAME"}, {"DEVICE"}, {"MTU", true}, {"STATE"}, {"PROMISCUOUS"}, {"MAC"}});
  for (const auto& object : objects) {
    const auto& p = object.port();
    table.row({p.name(), p.device(), p.mtu() ? num(p.mtu()) : "1500", p.admin_down() ? "down" : "up",
               p.promiscuous() ? "on" : "off", p.mac()});
  }
  table.print(out);
}

// "1.2.3 Gbps"-style speed of a link, as NICs report it in Mbps.
std::string speed(uint32_t mbps) {
  if (!mbps) return "-";
  if (mbps % 1000 == 0) return num(mbps / 1000) + "G";
  return num(mbps) + "M";
}

void print_tenants(std::ostream& out, const Objects& objects) {
  Table table({{"NAME"}, {"MAX-ROUTES", true}, {"SESSION-LIMIT", true}, {"DESCRIPTION"}});
  for (const auto& object : objects) {
    const auto& t = object.tenant();
    table.row({t.name(), t.max_routes() ? num(t.max_routes()) : "65536",
               t.session_limit() ? num(t.session_limit()) : "", t.description()});
  }
  table.print(out);
}

void print_interfaces(std::ostream& out, const Objects& objects) {
  Table table({{"NAME"}, {"TENANT"}, {"PORT"}, {"VLAN", true}, {"INNER", true}, {"MTU"}, {"MAC"}, {"ADDRESSES"}});
  for (const auto& object : objects) {
    const auto& f = object.interface();
    table.row({f.name(), f.tenant(), f.port(), f.vlan() ? num(f.vlan()) : "", f.inner_vlan() ? num(f.inner_vlan()) : "",
               f.mtu() ? num(f.mtu()) : "port", f.mac().empty() ? "port" : f.mac(), join(f.addresses())});
  }
  table.print(out);
}

void print_routes(std::ostream& out, const Objects& objects) {
  Table table({{"TENANT"}, {"PREFIX"}, {"TARGET"}});
  for (const auto& object : objects) {
    const auto& r = object.route();
    table.row({r.tenant(), r.prefix(), route_target(r)});
  }
  table.print(out);
}

void print_neighbours(std::ostream& out, const Objects& objects) {
  Table table({{"INTERFACE"}, {"ADDRESS"}, {"MAC"}, {"TYPE"}});
  for (const auto& object : objects) {
    const auto& n = object.neighbour();
    table.row({n.interface(), n.address(), n.mac(), n.learned() ? "learned" : "static"});
  }
  table.print(out);
}

void print_tunnels(std::ostream& out, const Objects& objects) {
  Table table({{"NAME"},
               {"TENANT"},
               {"UNDERLAY"},
               {"LOCAL"},
               {"REMOTE"},
               {"ENCAP"},
               {"MTU", true},
               {"MSS-CLAMP", true},
               {"SPREAD"},
               {"SELECTORS"}});
  for (const auto& object : objects) {
    const auto& t = object.tunnel();
    table.row({t.name(), t.tenant(), t.underlay_tenant(), t.local_address(), t.remote_address(),
               t.encap_udp_port() ? "udp/" + num(t.encap_udp_port()) : "esp", t.mtu() ? num(t.mtu()) : "",
               t.tcp_mss_clamp() ? num(t.tcp_mss_clamp()) : "", t.spread() ? "yes" : "no",
               join(t.local_selectors()) + " <-> " + join(t.remote_selectors())});
  }
  table.print(out);
}

void print_sas(std::ostream& out, const Objects& objects) {
  // Keys are never printed in a table.
  Table table({{"SPI"}, {"TUNNEL"}, {"DIRECTION"}, {"CIPHER"}, {"INTEGRITY"}, {"ESN"}, {"REPLAY-WINDOW", true}});
  for (const auto& object : objects) {
    const auto& s = object.sa();
    char spi[16];
    std::snprintf(spi, sizeof spi, "0x%08x", s.spi());
    // Unset: medix-dp's default window (objects.proto); 0: replay protection off.
    std::string window = !s.inbound()             ? "-"
                         : !s.has_replay_window() ? "default"
                         : s.replay_window() == 0 ? "off"
                                                  : num(s.replay_window());
    table.row({spi, s.tunnel(), s.inbound() ? "in" : "out", v1::Cipher_Name(s.cipher()),
               v1::Integrity_Name(s.integrity()), s.esn() ? "on" : "off", window});
  }
  table.print(out);
}

void print_static_mappings(std::ostream& out, const Objects& objects) {
  Table table({{"TENANT"}, {"TENANT-PREFIX"}, {"CORE-PREFIX"}});
  for (const auto& object : objects) {
    const auto& m = object.static_mapping();
    table.row({m.tenant(), m.tenant_prefix(), m.core_prefix()});
  }
  table.print(out);
}

void print_napt_pools(std::ostream& out, const Objects& objects) {
  Table table({{"TENANT"}, {"SESSION-LIMIT", true}, {"ADDRESSES"}});
  for (const auto& object : objects) {
    const auto& p = object.napt_pool();
    table.row({p.tenant(), p.session_limit() ? num(p.session_limit()) : "", join(p.addresses())});
  }
  table.print(out);
}

void print_policy_rules(std::ostream& out, const Objects& objects) {
  Table table({{"PRIORITY", true}, {"NAME"}, {"FROM"}, {"TO"}, {"DESTINATION"}, {"PROTOCOL"}, {"PORTS"}, {"ACTION"}});
  for (const auto& object : objects) {
    const auto& r = object.policy_rule();
    std::string ports;
    if (r.port_low() || r.port_high())
      ports = r.port_high() && r.port_high() != r.port_low() ? num(r.port_low()) + "-" + num(r.port_high())
                                                             : num(r.port_low());
    table.row({num(r.priority()), r.name(), r.from_tenant(), r.to_tenant(), r.destination_prefix(),
               r.protocol() ? num(r.protocol()) : "any", ports,
               std::string(r.permit() ? "permit" : "deny") + (r.policer().empty() ? "" : ", policer " + r.policer()) +
                   (r.shaper_class().empty() ? "" : ", shaper class " + r.shaper_class())});
  }
  table.print(out);
}

// A policer's rates and bursts, and what each colour does: "cir 1250000 cbs 3000 ebs 3000".
std::string policer_action(const v1::PolicerColourAction& a, const char* otherwise) {
  switch (a.action()) {
    case v1::POLICER_TRANSMIT: return "transmit";
    case v1::POLICER_DROP: return "drop";
    case v1::POLICER_REMARK: return "dscp " + num(a.dscp());
    default: return otherwise;
  }
}

void print_policers(std::ostream& out, const Objects& objects) {
  Table table(
      {{"NAME"}, {"TENANT"}, {"INTERFACE"}, {"DSCP"}, {"MODE"}, {"RATES (B/s, B)"}, {"GREEN"}, {"YELLOW"}, {"RED"}});
  for (const auto& object : objects) {
    const auto& p = object.policer();
    std::string rates = "cir " + num(p.cir()) + " cbs " + num(p.cbs()), mode = "srtcm";
    if (p.mode() == v1::POLICER_TRTCM) {
      rates += " pir " + num(p.pir()) + " pbs " + num(p.pbs());
      mode = "trtcm";
    } else if (p.mode() == v1::POLICER_TRTCM_RFC4115) {
      rates += " eir " + num(p.eir()) + " ebs " + num(p.ebs());
      mode = "rfc4115";
    } else {
      rates += " ebs " + num(p.ebs());
    }
    if (p.colour_aware()) mode += " aware";
    table.row({p.name(), p.tenant(), p.interface(), p.match_dscp() ? num(p.dscp()) : "", mode, rates,
               policer_action(p.green(), "transmit"), policer_action(p.yellow(), "transmit"),
               policer_action(p.red(), "drop")});
  }
  table.print(out);
}

void print_vrrp_instances(std::ostream& out, const Objects& objects) {
  Table table({{"NAME"},
               {"INTERFACE"},
               {"VRID", true},
               {"PRIORITY", true},
               {"INTERVAL (cs)", true},
               {"PREEMPT"},
               {"GROUP"},
               {"ADDRESSES"},
               {"TRACK"}});
  for (const auto& object : objects) {
    const auto& v = object.vrrp_instance();
    std::string addresses, track;
    for (const auto& a : v.addresses()) addresses += (addresses.empty() ? "" : ",") + a;
    for (const auto& t : v.track())
      track += (track.empty() ? "" : ",") + t.interface() + (t.weight() ? "-" + num(t.weight()) : ":fault");
    table.row({v.name(), v.interface(), num(v.vrid()), num(v.priority() ? v.priority() : 100),
               num(v.advert_interval_cs() ? v.advert_interval_cs() : 100), v.preempt() ? "yes" : "no", v.group(),
               addresses, track});
  }
  table.print(out);
}

// A class's WRED as `green 20-60/10 yellow 10-40/10 red 5-20/10 w9 ecn`: each colour's
// thresholds (packets) and inverse probability, the average's weight (log2), ECN marking.
std::string wred_text(const v1::ShaperWred& w) {
  std::string text;
  auto profile = [&](const char* colour, const v1::WredProfile& p) {
    text += std::string(text.empty() ? "" : " ") + colour + " " + num(p.min_th()) + "-" + num(p.max_th()) + "/" +
            num(p.maxp_inv() ? p.maxp_inv() : 10);
  };
  profile("green", w.green());
  if (w.has_yellow()) profile("yellow", w.yellow());
  if (w.has_red()) profile("red", w.red());
  text += " w" + num(w.weight_log2() ? w.weight_log2() : 9);
  if (w.ecn()) text += " ecn";
  return text;
}

void print_shapers(std::ostream& out, const Objects& objects) {
  Table table({{"NAME"},
               {"INTERFACE"},
               {"RATE (B/s)", true},
               {"BURST (B)", true},
               {"CLASS"},
               {"PRIO"},
               {"GUARANTEED (B/s)", true},
               {"WEIGHT", true},
               {"MATCH"},
               {"MARK"},
               {"WRED"}});
  for (const auto& object : objects) {
    const auto& s = object.shaper();
    bool first = true;
    for (const auto& c : s.classes()) {
      std::string match;
      auto add = [&](const std::string& m) { match += (match.empty() ? "" : " ") + m; };
      if (!c.tenant().empty()) add("tenant " + c.tenant());
      if (!c.in_interface().empty()) add("in " + c.in_interface());
      if (c.dscp_size()) {
        std::string d;
        for (uint32_t x : c.dscp()) d += (d.empty() ? "" : ",") + num(x);
        add("dscp " + d);
      }
      table.row({first ? s.name() : "", first ? s.interface() : "", first ? num(s.rate()) : "",
                 first ? num(s.burst()) : "", c.name(), c.priority() ? "yes" : "", c.rate() ? num(c.rate()) : "",
                 c.weight() ? num(c.weight()) : "", match.empty() ? "any" : match,
                 c.set_dscp() ? num(c.mark_dscp()) : "", c.has_wred() ? wred_text(c.wred()) : ""});
      first = false;
    }
  }
  table.print(out);
}

// Counters of objects that went away or were recreated (and so restarted) give no rate.
double rate(uint64_t before, uint64_t after, double seconds) {
  return after >= before ? static_cast<double>(after - before) / seconds : 0.0;
}

template <typename T>
std::map<std::string, const T*> by_name(const google::protobuf::RepeatedPtrField<T>& items) {
  std::map<std::string, const T*> out;
  for (const auto& item : items) out[item.name()] = &item;
  return out;
}

// A kind's counters table title: "PolicerCounters" -> "POLICER", "VrrpGroupCounters" -> "VRRP-GROUP".
std::string kind_title(const std::string& message) {
  std::string title, suffix = "Counters";
  bool ends =
      message.size() > suffix.size() && message.compare(message.size() - suffix.size(), suffix.size(), suffix) == 0;
  for (char c : ends ? message.substr(0, message.size() - suffix.size()) : message) {
    if (std::isupper(static_cast<unsigned char>(c)) && !title.empty()) title += '-';
    title += char(std::toupper(static_cast<unsigned char>(c)));
  }
  return title;
}

// A column's title: "green_packets" -> "GREEN-PKTS".
std::string column_title(std::string field) {
  for (auto at = field.find("packets"); at != std::string::npos; at = field.find("packets"))
    field.replace(at, 7, "pkts");
  for (char& c : field) c = c == '_' ? '-' : char(std::toupper(static_cast<unsigned char>(c)));
  return field;
}

// The lists of the snapshot that print_counters shows in tables of its own (or elsewhere).
const std::set<std::string> hand_printed = {"ports",   "interfaces", "tenants", "drops",        "lcores",
                                            "tunnels", "sas",        "nat",     "policy_rules", "nic_drops"};

// Every other list is a kind's counters (medix-dp's Kind::counters: a message of its objects'
// `name`, perhaps the part of it a row counts, and uint64 columns): a table each, titled from
// the proto, so that a new kind's counters need no code here.
void print_kind_counters(std::ostream& out, const v1::CountersSnapshot& snapshot) {
  using google::protobuf::FieldDescriptor;
  const auto* descriptor = snapshot.GetDescriptor();
  const auto* reflection = snapshot.GetReflection();
  for (int i = 0; i < descriptor->field_count(); i++) {
    const FieldDescriptor* list = descriptor->field(i);
    if (!list->is_repeated() || list->type() != FieldDescriptor::TYPE_MESSAGE || hand_printed.count(list->name()))
      continue;
    const auto* message = list->message_type();
    const FieldDescriptor* name = message->FindFieldByName("name");
    // A string field besides `name` is the part of the object a row counts (a shaper's class).
    std::vector<const FieldDescriptor*> parts, columns;
    for (int f = 0; f < message->field_count(); f++) {
      const FieldDescriptor* field = message->field(f);
      if (field == name) continue;
      (field->type() == FieldDescriptor::TYPE_STRING ? parts : columns).push_back(field);
    }
    bool counters = name && name->type() == FieldDescriptor::TYPE_STRING && parts.size() <= 1 &&
                    std::all_of(columns.begin(), columns.end(), [](const FieldDescriptor* f) {
                      return !f->is_repeated() && f->type() == FieldDescriptor::TYPE_UINT64;
                    });
    if (!counters || !reflection->FieldSize(snapshot, list)) continue;
    std::vector<Table::Column> titles{{kind_title(message->name())}};
    for (const auto* f : parts) titles.push_back({column_title(f->name())});
    for (const auto* f : columns) titles.push_back({column_title(f->name()), true});
    Table table(titles);
    for (int r = 0; r < reflection->FieldSize(snapshot, list); r++) {
      const auto& x = reflection->GetRepeatedMessage(snapshot, list, r);
      std::vector<std::string> cells{x.GetReflection()->GetString(x, name)};
      for (const auto* f : parts) cells.push_back(x.GetReflection()->GetString(x, f));
      for (const auto* f : columns) cells.push_back(num(x.GetReflection()->GetUInt64(x, f)));
      table.row(cells);
    }
    table.print(out);
    out << '\n';
  }
}

}  // namespace

void Table::row(std::vector<std::string> cells) {
  cells.resize(columns_.size());
  for (auto& cell : cells)
    if (cell.empty()) cell = "-";
  rows_.push_back(std::move(cells));
}

void Table::print(std::ostream& out) const {
  std::vector<size_t> widths;
  for (const auto& column : columns_) widths.push_back(column.title.size());
  for (const auto& row : rows_)
    for (size_t i = 0; i < row.size(); i++) widths[i] = std::max(widths[i], row[i].size());
  auto line = [&](const std::vector<std::string>& cells) {
    std::string text;
    for (size_t i = 0; i < cells.size(); i++) {
      std::string pad(widths[i] - cells[i].size(), ' ');
      if (i > 0) text += "  ";
      text += columns_[i].right ? pad + cells[i] : cells[i] + pad;
    }
    text.erase(text.find_last_not_of(' ') + 1);
    out << text << '\n';
  };
  std::vector<std::string> titles;
  for (const auto& column : columns_) titles.push_back(column.title);
  line(titles);
  for (const auto& row : rows_) line(row);
}

std::string to_json(const google::protobuf::Message& message, bool pretty) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = pretty;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string text;
  auto status = google::protobuf::util::MessageToJsonString(message, &text, options);
  if (!status.ok()) throw Failure("cannot print JSON: " + std::string(status.message()));
  if (!pretty) text += '\n';  // add_whitespace ends with a newline, a single line does not
  return text;
}

void print_objects(std::ostream& out, const KindInfo& kind, const Objects& objects) {
  switch (kind.oneof) {
    case v1::Object::kPort: return print_ports(out, objects);
    case v1::Object::kTenant: return print_tenants(out, objects);
    case v1::Object::kInterface: return print_interfaces(out, objects);
    case v1::Object::kRoute: return print_routes(out, objects);
    case v1::Object::kNeighbour: return print_neighbours(out, objects);
    case v1::Object::kTunnel: return print_tunnels(out, objects);
    case v1::Object::kSa: return print_sas(out, objects);
    case v1::Object::kStaticMapping: return print_static_mappings(out, objects);
    case v1::Object::kNaptPool: return print_napt_pools(out, objects);
    case v1::Object::kPolicyRule: return print_policy_rules(out, objects);
    case v1::Object::kPolicer: return print_policers(out, objects);
    case v1::Object::kVrrpInstance: return print_vrrp_instances(out, objects);
    case v1::Object::kShaper: return print_shapers(out, objects);
    case v1::Object::KIND_NOT_SET: break;
    default: return print_any_objects(out, objects);  // a kind with no table of its own (yet)
  }
}

void print_any_objects(std::ostream& out, const Objects& objects) {
  using google::protobuf::FieldDescriptor;
  if (objects.empty()) return;
  const auto& first = objects[0];
  const FieldDescriptor* kind =
      first.GetReflection()->GetOneofFieldDescriptor(first, first.GetDescriptor()->oneof_decl(0));
  if (!kind) return;
  // Its scalar fields and lists of text, in the proto's order; nested messages only in -o json.
  std::vector<const FieldDescriptor*> fields;
  const auto* message = kind->message_type();
  for (int i = 0; i < message->field_count(); i++) {
    const FieldDescriptor* f = message->field(i);
    if (f->type() == FieldDescriptor::TYPE_MESSAGE || (f->is_repeated() && f->type() != FieldDescriptor::TYPE_STRING))
      continue;
    fields.push_back(f);
  }
  std::vector<Table::Column> titles;
  for (const auto* f : fields) {
    bool number = f->cpp_type() != FieldDescriptor::CPPTYPE_STRING && f->cpp_type() != FieldDescriptor::CPPTYPE_ENUM &&
                  f->cpp_type() != FieldDescriptor::CPPTYPE_BOOL;
    std::string title = f->name();
    for (char& c : title) c = c == '_' ? '-' : char(std::toupper(static_cast<unsigned char>(c)));
    titles.push_back({title, number});
  }
  Table table(titles);
  for (const auto& object : objects) {
    const auto& x = object.GetReflection()->GetMessage(object, kind);
    const auto* r = x.GetReflection();
    std::vector<std::string> cells;
    for (const auto* f : fields) {
      if (f->is_repeated()) {
        std::string text;
        for (int i = 0; i < r->FieldSize(x, f); i++) text += (i ? "," : "") + r->GetRepeatedString(x, f, i);
        cells.push_back(text);
        continue;
      }
      switch (f->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING: cells.push_back(r->GetString(x, f)); break;
        case FieldDescriptor::CPPTYPE_BOOL: cells.push_back(r->GetBool(x, f) ? "yes" : "no"); break;
        case FieldDescriptor::CPPTYPE_ENUM: cells.push_back(r->GetEnum(x, f)->name()); break;
        case FieldDescriptor::CPPTYPE_INT32: cells.push_back(std::to_string(r->GetInt32(x, f))); break;
        case FieldDescriptor::CPPTYPE_INT64: cells.push_back(std::to_string(r->GetInt64(x, f))); break;
        case FieldDescriptor::CPPTYPE_UINT32: cells.push_back(num(r->GetUInt32(x, f))); break;
        case FieldDescriptor::CPPTYPE_UINT64: cells.push_back(num(r->GetUInt64(x, f))); break;
        case FieldDescriptor::CPPTYPE_FLOAT: cells.push_back(fixed(r->GetFloat(x, f), 2)); break;
        default: cells.push_back(fixed(r->GetDouble(x, f), 2)); break;
      }
    }
    table.row(cells);
  }
  table.print(out);
}

void print_vrrp(std::ostream& out, const v1::GetVrrpResponse& r) {
  Table table({{"NAME"},
               {"INTERFACE"},
               {"VRID", true},
               {"STATE"},
               {"PRIORITY", true},
               {"MASTER"},
               {"ADVERTS RX", true},
               {"ADVERTS TX", true},
               {"GARP", true},
               {"TRANSITIONS", true},
               {"GROUP"}});
  for (const auto& i : r.instances()) {
    std::string priority = num(i.priority());
    if (i.effective_priority() != i.priority()) priority += " (" + num(i.effective_priority()) + ")";
    std::string master = i.master_address().empty() ? "-"
                                                    : i.master_address() + " prio " + num(i.master_priority()) +
                                                          " every " + num(i.master_interval_cs()) + " cs";
    table.row({i.name(), i.interface(), num(i.vrid()), i.state(), priority, master, num(i.adverts_received()),
               num(i.adverts_sent()), num(i.gratuitous_arps_sent()), num(i.transitions()), i.group()});
  }
  table.print(out);
  for (const auto& i : r.instances()) {
    out << "\n" << i.name() << ": last transitions\n";
    for (const auto& t : i.last_transitions())
      out << "  " << format_time(t.timestamp_ns()) << "  " << t.from() << " -> " << t.to() << "  (" << t.reason()
          << ")\n";
  }
  const auto& e = r.rx_errors();
  out << "\nadverts refused: ttl " << e.ttl() << ", version " << e.version() << ", type " << e.type() << ", length "
      << e.length() << ", checksum " << e.checksum() << ", unknown vrid " << e.unknown_vrid() << ", ring full "
      << e.ring_full() << "; own looped back " << e.own() << "; address list differs " << e.address_list() << "\n";
}

std::string format_time(uint64_t ns) {
  time_t at = time_t(ns / 1000000000);
  tm utc;
  char text[64] = "-";
  if (ns && gmtime_r(&at, &utc)) std::strftime(text, sizeof text, "%Y-%m-%d %H:%M:%S UTC", &utc);
  return text;
}

void print_ports(std::ostream& out, const Objects& objects, const v1::CountersSnapshot& counters) {
  auto nics = by_name(counters.ports());
  Table table({{"NAME"},
               {"DEVICE"},
               {"MTU", true},
               {"STATE"},
               {"LINK"},
               {"SPEED", true},
               {"DUPLEX"},
               {"PROMISCUOUS"},
               {"MAC"}});
  for (const auto& object : objects) {
    const auto& p = object.port();
    auto found = nics.find(p.name());
    std::string link, rate, duplex;
    if (found != nics.end()) {
      const auto& nic = found->second->nic();
      link = nic.link_up() ? "up" : "down";
      rate = speed(nic.speed_mbps());
      duplex = nic.link_up() ? (nic.full_duplex() ? "full" : "half") : "";
    }
    table.row({p.name(), p.device(), p.mtu() ? num(p.mtu()) : "1500", p.admin_down() ? "down" : "up", link, rate,
               duplex, p.promiscuous() ? "on" : "off", p.mac()});
  }
  table.print(out);
}

void print_counters(std::ostream& out, const v1::CountersSnapshot& snapshot) {
  out << "since " << format_time(snapshot.since_ns()) << "\n\n";
  Table ports({{"PORT"},
               {"RX-PACKETS", true},
               {"RX-BYTES", true},
               {"TX-PACKETS", true},
               {"TX-BYTES", true},
               {"TX-DROPPED", true}});
  for (const auto& p : snapshot.ports())
    ports.row({p.name(), num(p.rx_packets()), num(p.rx_bytes()), num(p.tx_packets()), num(p.tx_bytes()),
               num(p.tx_dropped())});
  ports.print(out);
  out << '\n';
  Table nics({{"PORT"},
              {"LINK"},
              {"SPEED", true},
              {"NIC-RX-PACKETS", true},
              {"NIC-TX-PACKETS", true},
              {"RX-MISSED", true},
              {"RX-ERRORS", true},
              {"RX-NOMBUF", true},
              {"TX-ERRORS", true}});
  for (const auto& p : snapshot.ports()) {
    const auto& n = p.nic();
    nics.row({p.name(), n.link_up() ? "up" : "down", speed(n.speed_mbps()), num(n.rx_packets()), num(n.tx_packets()),
              num(n.rx_missed()), num(n.rx_errors()), num(n.rx_nombuf()), num(n.tx_errors())});
  }
  nics.print(out);
  out << '\n';
  Table xstats({{"PORT"}, {"XSTAT"}, {"VALUE", true}});
  bool any = false;
  for (const auto& p : snapshot.ports())
    for (const auto& x : p.nic().xstats())
      if (x.value()) {
        xstats.row({p.name(), x.name(), num(x.value())});
        any = true;
      }
  if (any) {
    xstats.print(out);
    out << '\n';
  }
  Table interfaces({{"INTERFACE"}, {"RX-PACKETS", true}, {"RX-BYTES", true}, {"TX-PACKETS", true}, {"TX-BYTES", true}});
  for (const auto& f : snapshot.interfaces())
    interfaces.row({f.name(), num(f.rx_packets()), num(f.rx_bytes()), num(f.tx_packets()), num(f.tx_bytes())});
  interfaces.print(out);
  out << '\n';
  Table tenants({{"TENANT"},
                 {"RX-PACKETS", true},
                 {"TX-PACKETS", true},
                 {"DROPS", true},
                 {"ICMP-SENT", true},
                 {"ICMP-LIMITED", true},
                 {"ARP-LIMITED", true},
                 {"PUNT-POLICED", true},
                 {"FRAG-LIMITED", true},
                 {"BUF-GUARDED", true}});
  for (const auto& t : snapshot.tenants())
    tenants.row({t.name(), num(t.rx_packets()), num(t.tx_packets()), num(t.drops()), num(t.icmp_sent()),
                 num(t.icmp_rate_limited()), num(t.arp_pending_limited()), num(t.punt_policed()),
                 num(t.fragments_limited()), num(t.buffer_guarded())});
  tenants.print(out);
  out << '\n';
  if (snapshot.tunnels_size()) {
    Table tunnels({{"TUNNEL"}, {"RX-PACKETS", true}, {"RX-BYTES", true}, {"TX-PACKETS", true}, {"TX-BYTES", true}});
    for (const auto& t : snapshot.tunnels())
      tunnels.row({t.name(), num(t.rx_packets()), num(t.rx_bytes()), num(t.tx_packets()), num(t.tx_bytes())});
    tunnels.print(out);
    out << '\n';
  }
  if (snapshot.sas_size()) {
    Table sas({{"SPI", true},
               {"TUNNEL"},
               {"DIR"},
               {"STATE"},
               {"PACKETS", true},
               {"BYTES", true},
               {"SEQUENCE", true},
               {"DROPS", true}});
    for (const auto& s : snapshot.sas()) {
      uint64_t drops = 0;
      for (const auto& d : s.drops()) drops += d.packets();
      std::string state = v1::SaState_Name(s.state());
      sas.row({num(s.spi()), s.tunnel(), s.inbound() ? "in" : "out", state.substr(state.find('_') + 1),
               num(s.packets()), num(s.bytes()), num(s.sequence()), num(drops)});
    }
    sas.print(out);
    out << '\n';
  }
  if (snapshot.nat_size()) {
    Table nat({{"TENANT"},
               {"SESSIONS", true},
               {"CREATED", true},
               {"TRANSLATED", true},
               {"NAPT-MAPPINGS", true},
               {"POOL-EXHAUSTED", true},
               {"LIMIT-HITS", true},
               {"NO-MAPPING", true},
               {"DENIED", true}});
    for (const auto& n : snapshot.nat())
      nat.row({n.tenant(), num(n.sessions()), num(n.sessions_created()), num(n.translated()), num(n.napt_mappings()),
               num(n.pool_exhausted()), num(n.session_limit()), num(n.no_mapping()), num(n.policy_denied())});
    nat.print(out);
    out << '\n';
  }
  if (snapshot.policy_rules_size()) {
    Table rules({{"RULE"}, {"ACTION"}, {"MATCHED", true}});
    for (const auto& r : snapshot.policy_rules())
      rules.row({r.name(), r.permit() ? "permit" : "deny", num(r.matched())});
    rules.print(out);
    out << '\n';
  }
  print_kind_counters(out, snapshot);
  const auto& e = snapshot.events();
  Table events({{"EVENT"}, {"COUNT", true}});
  events.row({"icmp_sent", num(e.icmp_sent())});
  events.row({"icmp_rate_limited", num(e.icmp_rate_limited())});
  events.row({"arp_requests_sent", num(e.arp_requests_sent())});
  events.row({"arp_replies_sent", num(e.arp_replies_sent())});
  events.row({"arp_replies_received", num(e.arp_replies_received())});
  events.print(out);
}

namespace {

std::string megabytes(uint64_t bytes) {
  char text[32];
  if (bytes < 1000000)
    snprintf(text, sizeof(text), "%.1f KB", double(bytes) / 1e3);
  else
    snprintf(text, sizeof(text), "%.1f MB", double(bytes) / 1e6);
  return text;
}

const char* source_name(v1::FibSource s) {
  switch (s) {
    case v1::FIB_SOURCE_CONFIGURED: return "configured";
    case v1::FIB_SOURCE_CONNECTED: return "connected";
    case v1::FIB_SOURCE_LOCAL: return "local";
    default: return "";
  }
}

// What a FIB entry does: its kind ("via", "tunnel", "leak", ...) and its next hop.
std::pair<std::string, std::string> target_of(const v1::FibEntry& e) {
  if (!e.next_tenant().empty()) return {"leak", "tenant " + e.next_tenant()};
  if (e.local()) return {"local", ""};
  if (e.blackhole()) return {e.unreachable() ? "unreachable" : "blackhole", ""};
  std::string hop = e.interface() + (e.gateway().empty() ? "" : " " + e.gateway());
  return {e.tunnel() ? "tunnel" : "via", hop};
}

}  // namespace

void print_fib(std::ostream& out, const v1::GetFibResponse& fib) {
  const v1::FibMemory& m = fib.memory();
  if (fib.tenant().empty()) {
    out << "tenants " << m.tenants() << " (" << m.compact_tenants() << " compact, " << m.dir24_8_tenants()
        << " DIR24_8), " << m.entries() << " prefixes\n";
    out << "compact FIBs: " << m.compact_plies() << " plies in use of " << m.limit_plies() << ", "
        << megabytes(m.compact_bytes()) << " with the routes the writer keeps\n";
    out << "DIR24_8 FIBs: " << megabytes(m.dir24_8_bytes()) << " (both copies of each)\n";
    return;
  }
  bool compact = fib.fib() == v1::FIB_COMPACT;
  out << "tenant " << fib.tenant() << ": " << (compact ? "compact" : "DIR24_8") << " FIB, " << m.entries()
      << " prefixes, "
      << (compact ? std::to_string(m.compact_plies()) + " plies, " + megabytes(m.compact_bytes())
                  : megabytes(m.dir24_8_bytes()))
      << "\n";
  Table table({{"PREFIX"}, {"SOURCE"}, {"TARGET"}, {"NEXT-HOP"}, {"ORIGIN"}});
  for (const auto& e : fib.entries()) {
    auto [kind, hop] = target_of(e);
    table.row({e.prefix(), source_name(e.source()), kind, hop,
               e.source() == v1::FIB_SOURCE_CONFIGURED ? "route" : e.origin()});
  }
  table.print(out);
}

void print_lookup(std::ostream& out, const v1::LookupResponse& lookup) {
  Table table(
      {{"STEP", true}, {"TENANT"}, {"ADDRESS"}, {"ROUTE"}, {"SOURCE"}, {"TARGET"}, {"NEXT-HOP"}, {"TRANSLATED"}});
  int n = 0;
  for (const auto& s : lookup.steps()) {
    auto [kind, hop] = s.has_route() ? target_of(s.route()) : std::pair<std::string, std::string>{"", ""};
    table.row({num(++n), s.tenant(), s.address(), s.has_route() ? s.route().prefix() : "(none)",
               s.has_route() ? source_name(s.route().source()) : "", kind, hop, s.translated()});
  }
  table.print(out);
  std::string crossing = lookup.crosses_core() ? "; crosses the IX core (policy and a session decide per flow)" : "";
  switch (lookup.result()) {
    case v1::LOOKUP_FORWARD:
      out << "forward: out of " << lookup.interface() << " to " << lookup.next_hop() << " in tenant "
          << lookup.tenant();
      break;
    case v1::LOOKUP_LOCAL: out << "local: to medix-dp itself, in tenant " << lookup.tenant(); break;
    case v1::LOOKUP_NO_ROUTE: out << "dropped: no route in tenant " << lookup.tenant() << " (no_route)"; break;
    case v1::LOOKUP_BLACKHOLE: out << "dropped: blackhole in tenant " << lookup.tenant(); break;
    case v1::LOOKUP_LEAK_LOOP: out << "dropped: more route leaks than medix-dp follows (leak_loop)"; break;
    case v1::LOOKUP_NO_MAPPING:
      out << "dropped: tenant " << lookup.tenant()
          << " translates, but has no mapping for the address (nat_no_mapping)";
      break;
    case v1::LOOKUP_NAPT:
      out << "to a NAPT pool address of tenant " << lookup.tenant() << ": its session decides where";
      break;
    default: out << "?";
  }
  out << crossing << "\n";
}

void print_sessions(std::ostream& out, const v1::ListSessionsResponse& sessions) {
  Table table({{"PROTO", true},
               {"TENANT"},
               {"SOURCE"},
               {"DESTINATION"},
               {"PEER-TENANT"},
               {"AS-SOURCE"},
               {"AS-DESTINATION"},
               {"STATE"},
               {"IDLE-MS", true},
               {"EXPIRES-MS", true},
               {"LCORE", true},
               {"RULE"}});
  for (const auto& s : sessions.sessions())
    table.row({num(s.protocol()), s.tenant(), s.source(), s.destination(), s.peer_tenant(), s.translated_source(),
               s.translated_destination(), s.state(), num(s.idle_ms()), num(s.expires_in_ms()), num(s.lcore()),
               s.rule()});
  table.print(out);
  if (uint64_t(sessions.sessions_size()) < sessions.total())
    out << sessions.sessions_size() << " of " << sessions.total() << " sessions shown (--limit N for more)\n";
}

v1::CountersSnapshot select_drops(const v1::CountersSnapshot& snapshot, bool by_lcore, bool all) {
  v1::CountersSnapshot selected;
  selected.set_version(snapshot.version());
  selected.set_timestamp_ns(snapshot.timestamp_ns());
  std::map<std::string, std::string> descriptions;
  for (const auto& drop : snapshot.drops()) {
    descriptions[drop.reason()] = drop.description();
    if (!by_lcore && (all || drop.packets())) *selected.add_drops() = drop;
  }
  for (const auto& drop : snapshot.nic_drops())
    if (all || drop.packets()) *selected.add_nic_drops() = drop;
  if (!by_lcore) return selected;
  for (const auto& lcore : snapshot.lcores()) {
    auto* kept = selected.add_lcores();
    kept->set_lcore(lcore.lcore());
    for (const auto& drop : lcore.drops()) {
      if (!all && !drop.packets()) continue;
      auto* copy = kept->add_drops();
      *copy = drop;
      if (copy->description().empty()) copy->set_description(descriptions[drop.reason()]);
    }
  }
  return selected;
}

void print_qos(std::ostream& out, const v1::CountersSnapshot& before, const v1::CountersSnapshot& after) {
  double seconds = double(after.timestamp_ns() - before.timestamp_ns()) / 1e9;
  if (seconds <= 0) seconds = 1;
  auto mbit = [&](uint64_t b, uint64_t a) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", rate(b, a, seconds) * 8 / 1e6);
    return std::string(text);
  };
  std::map<std::pair<std::string, std::string>, const v1::ShaperCounters*> earlier;
  for (const auto& k : before.shaper_classes()) earlier[{k.name(), k.class_()}] = &k;
  Table classes({{"SHAPER"},
                 {"CLASS"},
                 {"SENT-MBIT/S", true},
                 {"SENT-PKTS/S", true},
                 {"DROPS/S", true},
                 {"DROPPED", true},
                 {"WRED-DROPPED", true},
                 {"ECN-MARKED", true},
                 {"DEPTH", true}});
  for (const auto& k : after.shaper_classes()) {
    auto b = earlier.find({k.name(), k.class_()});
    v1::ShaperCounters zero;
    const auto& p = b != earlier.end() ? *b->second : zero;
    char pps[32], dps[32];
    std::snprintf(pps, sizeof pps, "%.0f", rate(p.sent_packets(), k.sent_packets(), seconds));
    // Drops a second: the queue's and WRED's.
    std::snprintf(dps, sizeof dps, "%.0f",
                  rate(p.dropped() + p.wred_dropped(), k.dropped() + k.wred_dropped(), seconds));
    classes.row({k.name(), k.class_(), mbit(p.sent_bytes(), k.sent_bytes()), pps, dps, num(k.dropped()),
                 num(k.wred_dropped()), num(k.ecn_marked()), num(k.depth())});
  }
  classes.print(out);
  auto policers_before = by_name(before.policers());
  Table policers(
      {{"POLICER"}, {"GREEN-MBIT/S", true}, {"YELLOW-MBIT/S", true}, {"RED-MBIT/S", true}, {"DROPPED", true}});
  for (const auto& x : after.policers()) {
    v1::PolicerCounters zero;
    auto b = policers_before.find(x.name());
    const auto& p = b != policers_before.end() ? *b->second : zero;
    policers.row({x.name(), mbit(p.green_bytes(), x.green_bytes()), mbit(p.yellow_bytes(), x.yellow_bytes()),
                  mbit(p.red_bytes(), x.red_bytes()), num(x.dropped())});
  }
  if (after.policers_size()) {
    out << '\n';
    policers.print(out);
  }
}

void print_drops(std::ostream& out, const v1::CountersSnapshot& selected, bool by_lcore) {
  // The NICs' own drops: before any worker saw the packet (or after it was sent).
  auto nic_drops = [&] {
    if (!selected.nic_drops_size()) return;
    out << '\n';
    Table table({{"PORT"}, {"REASON"}, {"PACKETS", true}, {"DESCRIPTION"}});
    for (const auto& drop : selected.nic_drops())
      table.row({drop.port(), drop.reason(), num(drop.packets()), drop.description()});
    table.print(out);
  };
  if (!by_lcore) {
    Table table({{"REASON"}, {"PACKETS", true}, {"DESCRIPTION"}});
    for (const auto& drop : selected.drops()) table.row({drop.reason(), num(drop.packets()), drop.description()});
    table.print(out);
    nic_drops();
    return;
  }
  Table table({{"LCORE", true}, {"REASON"}, {"PACKETS", true}, {"DESCRIPTION"}});
  for (const auto& lcore : selected.lcores())
    for (const auto& drop : lcore.drops())
      table.row({num(lcore.lcore()), drop.reason(), num(drop.packets()), drop.description()});
  table.print(out);
}

void print_runtime(std::ostream& out, const v1::Runtime& runtime, bool by_lcore) {
  out << "TSC " << fixed(static_cast<double>(runtime.tsc_hz()) / 1e9, 3) << " GHz, since "
      << format_time(runtime.since_ns()) << "\n\n";
  Table workers({{"LCORE", true}, {"LOOPS", true}, {"EMPTY-POLLS", true}, {"BUSY", true}});
  for (const auto& l : runtime.lcores())
    workers.row({num(l.lcore()), num(l.loops()), num(l.empty_polls()), fixed(100 * l.busy_share(), 1) + "%"});
  workers.print(out);
  out << '\n';
  if (runtime.budgets_size()) {
    Table budgets({{"SHARED-BUDGET"}, {"A-WORKER"}, {"SHARE"}, {"REFUSED-AS"}});
    for (const auto& b : runtime.budgets()) budgets.row({b.resource(), b.budget(), b.share(), b.refused()});
    budgets.print(out);
    out << '\n';
  }
  auto row = [](const v1::StageRuntime& s) {
    return std::vector<std::string>{
        s.stage(),
        num(s.calls()),
        num(s.packets()),
        num(s.cycles()),
        fixed(s.cycles_per_packet(), 1),
        s.calls() ? fixed(static_cast<double>(s.packets()) / static_cast<double>(s.calls()), 1) : "0.0"};
  };
  std::vector<Table::Column> columns = {{"STAGE"},        {"CALLS", true},         {"PACKETS", true},
                                        {"CYCLES", true}, {"CYCLES/PACKET", true}, {"PACKETS/CALL", true}};
  if (!by_lcore) {
    Table table(columns);
    for (const auto& stage : runtime.stages()) table.row(row(stage));
    table.print(out);
    return;
  }
  columns.insert(columns.begin(), {"LCORE", true});
  Table table(columns);
  for (const auto& lcore : runtime.lcores())
    for (const auto& stage : lcore.stages()) {
      auto cells = row(stage);
      cells.insert(cells.begin(), num(lcore.lcore()));
      table.row(cells);
    }
  table.print(out);
}

void print_rates(std::ostream& out, const v1::CountersSnapshot& before, const v1::CountersSnapshot& after,
                 uint32_t interval_ms) {
  double seconds = after.timestamp_ns() > before.timestamp_ns()
                       ? static_cast<double>(after.timestamp_ns() - before.timestamp_ns()) / 1e9
                       : interval_ms / 1000.0;
  char when[32] = "";
  std::time_t at = static_cast<std::time_t>(after.timestamp_ns() / 1'000'000'000);
  std::tm local{};
  if (after.timestamp_ns() && localtime_r(&at, &local)) std::strftime(when, sizeof when, "%H:%M:%S  ", &local);
  out << when << "per second over " << fixed(seconds, 2) << " s  (version " << after.version() << ")\n";

  auto old_ports = by_name(before.ports());
  Table ports(
      {{"PORT"}, {"RX-PKT/S", true}, {"RX-BIT/S", true}, {"TX-PKT/S", true}, {"TX-BIT/S", true}, {"TX-DROP/S", true}});
  for (const auto& p : after.ports()) {
    auto found = old_ports.find(p.name());
    if (found == old_ports.end()) continue;
    const auto& o = *found->second;
    ports.row({p.name(), si(rate(o.rx_packets(), p.rx_packets(), seconds)),
               si(8 * rate(o.rx_bytes(), p.rx_bytes(), seconds)), si(rate(o.tx_packets(), p.tx_packets(), seconds)),
               si(8 * rate(o.tx_bytes(), p.tx_bytes(), seconds)), si(rate(o.tx_dropped(), p.tx_dropped(), seconds))});
  }
  ports.print(out);
  out << '\n';

  auto old_interfaces = by_name(before.interfaces());
  Table interfaces({{"INTERFACE"}, {"RX-PKT/S", true}, {"RX-BIT/S", true}, {"TX-PKT/S", true}, {"TX-BIT/S", true}});
  for (const auto& f : after.interfaces()) {
    auto found = old_interfaces.find(f.name());
    if (found == old_interfaces.end()) continue;
    const auto& o = *found->second;
    interfaces.row(
        {f.name(), si(rate(o.rx_packets(), f.rx_packets(), seconds)), si(8 * rate(o.rx_bytes(), f.rx_bytes(), seconds)),
         si(rate(o.tx_packets(), f.tx_packets(), seconds)), si(8 * rate(o.tx_bytes(), f.tx_bytes(), seconds))});
  }
  interfaces.print(out);
  out << '\n';

  auto old_tenants = by_name(before.tenants());
  Table tenants({{"TENANT"}, {"RX-PKT/S", true}, {"TX-PKT/S", true}, {"DROP/S", true}});
  for (const auto& t : after.tenants()) {
    auto found = old_tenants.find(t.name());
    if (found == old_tenants.end()) continue;
    const auto& o = *found->second;
    tenants.row({t.name(), si(rate(o.rx_packets(), t.rx_packets(), seconds)),
                 si(rate(o.tx_packets(), t.tx_packets(), seconds)), si(rate(o.drops(), t.drops(), seconds))});
  }
  tenants.print(out);
  out << '\n';

  std::map<std::string, uint64_t> old_drops;
  for (const auto& d : before.drops()) old_drops[d.reason()] = d.packets();
  Table drops({{"DROP-REASON"}, {"PKT/S", true}});
  for (const auto& d : after.drops()) {
    auto found = old_drops.find(d.reason());
    if (found == old_drops.end() || d.packets() <= found->second) continue;  // only the reasons that rose
    drops.row({d.reason(), si(rate(found->second, d.packets(), seconds))});
  }
  drops.print(out);
  out << '\n';
}

}  // namespace medix::ctl
