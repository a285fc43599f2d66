#include "control/intent.h"

#include <array>
#include <map>

#include "control/check.h"
#include "control/kinds.h"

namespace medix::dp {

const char* kind_name(v1::Object::KindCase kind) {
  const Kind* k = kind_of(kind);
  return k ? k->name : "object";
}

std::vector<Operation> operations_from(v1::Config config) {
  std::vector<Operation> ops;
  size_t total = 0;
  for (const Kind* k : kinds()) total += size_t(k->config_size(config));
  ops.reserve(total);
  for (const Kind* k : kinds()) {
    size_t first = ops.size();
    for (int i = 0, n = k->config_size(config); i < n; i++) {
      Operation op{v1::Operation::CREATE, {}, std::string(k->plural) + "[" + std::to_string(i) + "]"};
      k->take(config, i, op.object);
      ops.push_back(std::move(op));
    }
    if (k->order_config) k->order_config(std::span(ops).subspan(first));
  }
  return ops;
}

std::string operations_summary(const std::vector<Operation>& ops) {
  std::map<int, std::array<size_t, 3>> counts;  // kind -> creates, deletes, updates
  for (const auto& op : ops) {
    auto& c = counts[op.object.kind_case()];
    c[op.op == v1::Operation::CREATE ? 0 : op.op == v1::Operation::DELETE ? 1 : 2]++;
  }
  std::string out;
  for (const Kind* k : kinds()) {
    auto it = counts.find(k->object);
    if (it == counts.end()) continue;
    out += (out.empty() ? "" : ", ") + std::string(k->name);
    const char* signs[] = {" +", " -", " ~"};
    for (int i = 0; i < 3; i++)
      if (it->second[i]) out += signs[i] + std::to_string(it->second[i]);
  }
  return out.empty() ? "nothing" : out;
}

std::optional<Error> operations_from(const v1::ApplyRequest& request, std::vector<Operation>& ops) {
  if (size_t(request.operations_size()) > max_operations)
    return Error{Code::invalid_argument, "operations: " + std::to_string(request.operations_size()) +
                                             " operations, more than " + std::to_string(max_operations) +
                                             " in one transaction"};
  ops.reserve(size_t(request.operations_size()));
  for (int i = 0; i < request.operations_size(); i++) {
    const auto& op = request.operations(i);
    std::string at = "operations[" + std::to_string(i) + "]";
    if (op.op() == v1::Operation::OP_UNSPECIFIED)
      return Error{Code::invalid_argument, at + ".op: is required (CREATE, UPDATE or DELETE)"};
    if (op.object().kind_case() == v1::Object::KIND_NOT_SET)
      return Error{Code::invalid_argument,
                   at + ".object: is required (one of port, tenant, interface, route, neighbour, ...)"};
    ops.push_back({op.op(), op.object(), at + "." + kind_name(op.object().kind_case())});
  }
  return std::nullopt;
}

size_t Intent::routes_in(const std::string& tenant) const {
  auto it = tenant_routes.find(tenant);
  return it == tenant_routes.end() ? 0 : it->second;
}

// The current object with that key.
std::optional<v1::Object> Intent::find(const Key& key) const {
  const Kind* k = kind_of(v1::Object::KindCase(key.kind));
  return k ? k->find(*this, key) : std::nullopt;
}

void Intent::record(const Key& key, const std::optional<v1::Object>& before, size_t op) {
  log_.push_back({key, before, op});
}

void Intent::undo(std::vector<Undo>& log) {
  for (auto it = log.rbegin(); it != log.rend(); ++it) {
    const Kind& k = *kind_of(v1::Object::KindCase(it->key.kind));
    if (auto now = k.find(*this, it->key)) k.erase(*this, *now);
    if (it->before) k.put(*this, *it->before);
  }
  log.clear();
}

void Intent::rollback_last() {
  undo(last_);
  digest_ = digest_before_last_;
}

std::optional<Error> Intent::apply_one(const Operation& op, size_t index) {
  const std::string& path = op.path;
  const Kind* kind = kind_of(op.object.kind_case());
  if (!kind) return invalid(path, "an object is required (port, tenant, interface, route, neighbour, ...)");
  // Output-only fields are ignored, so that what Get returns can be sent back (a copy only
  // where there are some: a million routes are not copied for nothing).
  std::optional<v1::Object> cleared;
  if (kind->clear_output) kind->clear_output(cleared.emplace(op.object));
  const v1::Object& object = cleared ? *cleared : op.object;
  // Key fields first: without them nothing can be looked up.
  if (auto e = kind->check_key(object, path)) return e;

  Key key = kind->key(object);
  auto existing = kind->find(*this, key);
  std::string what = kind->name;
  switch (op.op) {
    case v1::Operation::CREATE:
      if (existing) {
        if (same(*existing, object)) return std::nullopt;  // idempotent replay
        return Error{Code::already_exists, path + ": the " + what + " already exists and differs (use UPDATE)"};
      }
      break;
    case v1::Operation::UPDATE:
      if (!existing) return Error{Code::not_found, path + ": no such " + what};
      if (same(*existing, object)) return std::nullopt;
      if (kind->check_update)
        if (auto e = kind->check_update(*this, *existing, object, path)) return e;
      break;
    case v1::Operation::DELETE:
      if (!existing) return Error{Code::not_found, path + ": no such " + what};
      if (kind->check_delete)
        if (auto e = kind->check_delete(*this, *existing, path)) return e;
      record(key, existing, index);
      kind->erase(*this, *existing);
      if (track_digest) digest_.remove(*existing);
      return std::nullopt;
    default: return invalid(path, "op is required: CREATE, UPDATE or DELETE");
  }

  record(key, existing, index);
  if (existing) kind->erase(*this, *existing);                 // so that it does not conflict with itself
  if (auto e = kind->validate(*this, object, path)) return e;  // the caller's undo puts `existing` back
  kind->put(*this, object);
  if (track_digest) {
    if (existing) digest_.remove(*existing);
    digest_.add(object);
  }
  return std::nullopt;
}

const Diff::Changes& Diff::of(v1::Object::KindCase kind) const {
  static const Changes none;
  auto it = objects.find(kind);
  return it == objects.end() ? none : it->second;
}

size_t Diff::size() const {
  size_t n = routes.size();
  for (const auto& [kind, changes] : objects) n += changes.size();
  return n;
}

void Diff::prune() {
  for (auto& [kind, changes] : objects)
    for (auto it = changes.begin(); it != changes.end();) {
      const Change& c = it->second;
      bool unchanged = (!c.before && !c.after) || (c.before && c.after && same(*c.before, *c.after));
      it = unchanged ? changes.erase(it) : std::next(it);
    }
  std::erase_if(objects, [](const auto& entry) { return entry.second.empty(); });
}

std::optional<Error> Intent::apply(const std::vector<Operation>& ops, Diff& diff) {
  log_.clear();
  log_.reserve(ops.size());  // a million routes' undo entries are not moved as it grows
  const ConfigDigest digest_before = digest_;
  for (size_t i = 0; i < ops.size(); i++) {
    if (auto e = apply_one(ops[i], i)) {
      undo(log_);
      digest_ = digest_before;
      return e;
    }
  }
  // Checks between objects, on the state the whole transaction left (the last change of an
  // object names its operation).
  for (auto it = log_.rbegin(); it != log_.rend(); ++it) {
    const Kind* k = kind_of(v1::Object::KindCase(it->key.kind));
    if (!k->check_final) continue;
    auto now = k->find(*this, it->key);
    if (!now) continue;
    if (auto e = k->check_final(*this, *now, ops[it->op].path)) {
      undo(log_);
      digest_ = digest_before;
      return e;
    }
  }
  // The diff: each key's state before its first change, and now.
  diff = Diff{};
  for (const auto& u : log_) {
    const Kind& k = *kind_of(v1::Object::KindCase(u.key.kind));
    if (k.diff)
      k.diff(diff, u.key);
    else if (auto& changes = diff.objects[u.key.kind]; !changes.count(u.key))  // the first holds "before"
      changes.emplace(u.key, Change{u.before, k.find(*this, u.key)});
  }
  diff.prune();
  last_ = std::move(log_);
  log_.clear();
  digest_before_last_ = digest_before;
  return std::nullopt;
}

}  // namespace medix::dp
