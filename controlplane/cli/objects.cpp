#include "objects.h"

#include <cctype>
#include <stdexcept>

#include "common/address.h"

namespace medix::ctl {

namespace {

using Case = v1::Object::KindCase;

// "10.1.2.3/16" as "10.1.0.0/16"; anything that is not a prefix stays as written (the server
// names the error).
std::string canonical_prefix(const std::string& text) {
  auto prefix = common::parse_prefix(text);
  return prefix ? common::format_network(*prefix) : text;
}

std::string canonical_address(const std::string& text) {
  auto address = common::parse_ipv4(text);
  return address ? common::format_ipv4(*address) : text;
}

bool on_off(Args& args, const std::string& what) {
  auto word = args.next(what + " (on or off)");
  if (word == "on") return true;
  if (word == "off") return false;
  throw UsageError(what + ": \"" + word + "\" is neither on nor off");
}

void set_port(v1::Port& port, Args& args) {
  while (!args.done()) {
    if (args.take("mtu")) {
      port.set_mtu(args.next_u32("mtu"));
    } else if (args.take("up")) {
      port.set_admin_down(false);
    } else if (args.take("down")) {
      port.set_admin_down(true);
    } else if (args.take("promiscuous")) {
      port.set_promiscuous(on_off(args, "promiscuous"));
    } else if (args.take("device")) {
      port.set_device(args.next("a device name"));
    } else {
      throw UsageError("set port: unknown \"" + args.peek() + "\" (mtu, up, down, promiscuous, device)");
    }
  }
}

void set_tenant(v1::Tenant& tenant, Args& args) {
  while (!args.done()) {
    if (args.take("description")) {
      tenant.set_description(args.next("a description"));
    } else if (args.take("max-routes")) {
      tenant.set_max_routes(args.next_u32("max-routes"));
    } else if (args.take("session-limit")) {
      tenant.set_session_limit(args.next_u32("session-limit"));
    } else if (args.take("fib")) {
      std::string kind = args.next("compact or dir24_8");
      if (kind == "compact")
        tenant.set_fib(v1::FIB_COMPACT);
      else if (kind == "dir24_8")
        tenant.set_fib(v1::FIB_DIR24_8);
      else
        throw UsageError("set tenant: fib \"" + kind + "\" is neither compact nor dir24_8");
    } else {
      throw UsageError("set tenant: unknown \"" + args.peek() + "\" (description, max-routes, session-limit, fib)");
    }
  }
}

void set_interface(v1::Interface& interface, Args& args) {
  bool addresses_given = false;
  while (!args.done()) {
    if (args.take("tenant")) {
      interface.set_tenant(args.next("a tenant name"));
    } else if (args.take("port")) {
      interface.set_port(args.next("a port name"));
    } else if (args.take("vlan")) {
      interface.set_vlan(args.next_u32("vlan"));
    } else if (args.take("inner-vlan")) {
      interface.set_inner_vlan(args.next_u32("inner-vlan"));
    } else if (args.take("address")) {
      if (!addresses_given) interface.clear_addresses();  // the addresses given replace the old ones
      addresses_given = true;
      interface.add_addresses(args.next("an address (A.B.C.D/LEN)"));
    } else if (args.take("mtu")) {
      interface.set_mtu(args.next_u32("mtu"));
    } else if (args.take("mac")) {
      interface.set_mac(args.next("a MAC address"));
    } else {
      throw UsageError("set interface: unknown \"" + args.peek() +
                       "\" (tenant, port, vlan, inner-vlan, address, mtu, mac)");
    }
  }
}

void set_route(v1::Route& route, Args& args) {
  if (args.take("via")) {
    auto* via = route.mutable_via();
    via->set_interface(args.next("an interface name"));
    via->set_address(args.done() ? "" : args.next("a gateway"));
  } else if (args.take("tenant")) {
    route.set_next_tenant(args.next("a tenant name"));
  } else if (args.take("local")) {
    route.mutable_local();
  } else if (args.take("blackhole")) {
    route.mutable_blackhole()->set_unreachable(args.take("unreachable"));
  } else {
    throw UsageError(args.done() ? "set route: missing the target (via, tenant, local, blackhole)"
                                 : "set route: unknown \"" + args.peek() + "\" (via, tenant, local, blackhole)");
  }
  args.expect_done();
}

namespace pb = google::protobuf;

// "static_mapping" -> "static-mapping": medixctl's words.
std::string word_of(const std::string& proto_name) {
  std::string w = proto_name;
  for (char& c : w)
    if (c == '_') c = '-';
  return w;
}

// The key fields of a kind's message, in field order (marked [(key) = ...] in objects.proto).
std::vector<const pb::FieldDescriptor*> key_fields(const pb::Descriptor* message) {
  std::vector<const pb::FieldDescriptor*> out;
  for (int i = 0; i < message->field_count(); i++)
    if (message->field(i)->options().GetExtension(v1::key) != v1::KEY_FIELD_UNSPECIFIED)
      out.push_back(message->field(i));
  return out;
}

const pb::FieldDescriptor* field_of(const KindInfo& kind) {
  return v1::Object::descriptor()->FindFieldByNumber(kind.oneof);
}

}  // namespace

// Every kind the API has, from the proto: Object's oneof names them (in its order), Config
// holds their lists, the Kind enum lists them, and the key fields are marked. A new kind in
// the proto is a kind here, with nothing to add.
const std::vector<KindInfo>& kinds() {
  static const std::vector<KindInfo> all = [] {
    std::vector<KindInfo> out;
    const auto* oneof = v1::Object::descriptor()->FindOneofByName("kind");
    for (int i = 0; i < oneof->field_count(); i++) {
      const auto* field = oneof->field(i);
      KindInfo k;
      k.singular = word_of(field->name());
      for (int j = 0; j < v1::Config::descriptor()->field_count(); j++) {
        const auto* list = v1::Config::descriptor()->field(j);
        if (list->is_repeated() && list->message_type() == field->message_type()) k.config_field = list->name();
      }
      k.plural = word_of(k.config_field);
      std::string upper = field->name();
      for (char& c : upper) c = char(toupper(c));
      v1::Kind_Parse(upper, &k.kind);
      k.oneof = v1::Object::KindCase(field->number());
      for (const auto* key : key_fields(field->message_type())) {
        std::string usage = word_of(key->name());
        for (char& c : usage) c = char(toupper(c));
        k.key_usage += (k.key_usage.empty() ? "" : " ") + usage;
      }
      out.push_back(std::move(k));
    }
    return out;
  }();
  return all;
}

const KindInfo* find_kind(const std::string& word) {
  for (const auto& kind : kinds())
    if (word == kind.singular || word == kind.plural) return &kind;
  return nullptr;
}

const KindInfo& kind_of(const v1::Object& object) {
  for (const auto& kind : kinds())
    if (kind.oneof == object.kind_case()) return kind;
  throw Failure("the server sent an object of no known kind");
}

v1::Object key_object(const KindInfo& kind, Args& args) {
  v1::Object object;
  const auto* field = field_of(kind);
  pb::Message* message = object.GetReflection()->MutableMessage(&object, field);
  for (const auto* key : key_fields(field->message_type())) {
    std::string what = "the " + kind.singular + "'s " + word_of(key->name());
    if (key->cpp_type() == pb::FieldDescriptor::CPPTYPE_UINT32)
      message->GetReflection()->SetUInt32(message, key, args.next_u32(what));
    else
      message->GetReflection()->SetString(message, key, args.next(what));
  }
  return object;
}

std::string key_string(const v1::Object& object) {
  const KindInfo& kind = kind_of(object);
  const auto* field = field_of(kind);
  const pb::Message& message = object.GetReflection()->GetMessage(object, field);
  std::string out = kind.singular;
  for (const auto* key : key_fields(field->message_type())) {
    const auto* r = message.GetReflection();
    switch (key->options().GetExtension(v1::key)) {
      case v1::KEY_NUMBER: out += "/" + std::to_string(r->GetUInt32(message, key)); break;
      case v1::KEY_PREFIX: out += "/" + canonical_prefix(r->GetString(message, key)); break;
      case v1::KEY_ADDRESS: out += "/" + canonical_address(r->GetString(message, key)); break;
      default: out += "/" + r->GetString(message, key); break;
    }
  }
  return out;
}

std::string key_words(const v1::Object& object) {
  const auto* field = field_of(kind_of(object));
  const pb::Message& message = object.GetReflection()->GetMessage(object, field);
  std::string out;
  for (const auto* key : key_fields(field->message_type())) {
    const auto* r = message.GetReflection();
    out += out.empty() ? "" : " ";
    out += key->cpp_type() == pb::FieldDescriptor::CPPTYPE_UINT32 ? std::to_string(r->GetUInt32(message, key))
                                                                  : r->GetString(message, key);
  }
  return out;
}

void clear_output_only(v1::Object& object) {
  if (object.has_port()) object.mutable_port()->clear_mac();
  if (object.has_neighbour()) object.mutable_neighbour()->clear_learned();
}

void apply_set_words(v1::Object& object, Args& args) {
  switch (object.kind_case()) {
    case Case::kPort: set_port(*object.mutable_port(), args); break;
    case Case::kTenant: set_tenant(*object.mutable_tenant(), args); break;
    case Case::kInterface: set_interface(*object.mutable_interface(), args); break;
    case Case::kRoute: set_route(*object.mutable_route(), args); break;
    case Case::kNeighbour:
      object.mutable_neighbour()->set_mac(args.next("a MAC address"));
      args.expect_done();
      break;
    default:
      throw UsageError(
          "set " + kind_of(object).singular +
          ": not supported; set takes port, tenant, interface, route, neighbour (apply a file for the rest)");
  }
}

}  // namespace medix::ctl
