#include "etcd/store.h"

#include <google/protobuf/util/json_util.h>
#include <google/protobuf/util/message_differencer.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <set>
#include <thread>

#include "common/json.h"
#include "intent_file.h"

namespace medix::cp {

namespace pb = etcdserverpb;

namespace {

// etcd's range end for "every key starting with `prefix`".
std::string prefix_end(std::string prefix) {
  prefix.back()++;  // our prefixes end in '/', never in 0xff
  return prefix;
}

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string status_json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string text;
  (void)google::protobuf::util::MessageToJsonString(m, &text, options);
  return text;
}

}  // namespace

EtcdStore::EtcdStore(const EtcdEndpoint& endpoint, const std::string& area, ApplyLocal apply, CheckIntent check,
                     std::function<c1::Intent()> running, const std::string& dataplane_target)
    : endpoint_(endpoint),
      area_(area),
      intent_prefix_(endpoint.prefix + "/intent/"),
      status_key_(endpoint.prefix + "/status/" + area),
      apply_(std::move(apply)),
      check_(std::move(check)),
      running_(std::move(running)) {
  grpc::ChannelArguments args;
  // gRPC's reconnect backoff grows to 2 minutes: an etcd that is back must be seen in a second.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 200);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  // A watch on a link that died without a word ends after 10 + 5 s (etcd allows pings every 5 s).
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 10000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 5000);
  args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  args.SetMaxReceiveMessageSize(64 << 20);  // a Range of every area's key (gRPC's default: 4 MiB)
  channel_ = etcd_channel(endpoint, args);
  kv_ = pb::KV::NewStub(channel_);
  watch_ = pb::Watch::NewStub(channel_);
  token_ = std::make_unique<EtcdToken>(channel_, endpoint.user, endpoint.password);
  dataplane_ = medix::dataplane::v1::Dataplane::NewStub(
      grpc::CreateChannel(dataplane_target, grpc::InsecureChannelCredentials()));
}

void EtcdStore::start() {
  thread_ = std::thread([this] { run(); });
  publisher_ = std::thread([this] {
    std::unique_lock lock(mu_);
    while (true) {
      changed_.wait(lock, [this] { return stopping_ || publish_; });
      if (stopping_) return;
      publish_ = false;
      lock.unlock();
      write_status();  // several publish() meanwhile: one write
      lock.lock();
    }
  });
}

void EtcdStore::publish() {
  {
    std::lock_guard lock(mu_);
    publish_ = true;
  }
  changed_.notify_all();
}

void EtcdStore::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    if (watching_) watching_->TryCancel();
  }
  changed_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (publisher_.joinable()) publisher_.join();
}

std::unique_ptr<grpc::ClientContext> EtcdStore::context(int seconds) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return ctx;
}

template <typename Call>
grpc::Status EtcdStore::call(int seconds, Call&& call) {
  auto ctx = context(seconds);
  if (grpc::Status s = token_->add(*ctx, std::chrono::seconds(3)); !s.ok()) return s;
  grpc::Status s = call(ctx.get());
  token_->forget(s);
  return s;
}

grpc::Status EtcdStore::read(Snapshot& out) {
  pb::RangeRequest request;
  request.set_key(intent_prefix_);
  request.set_range_end(prefix_end(intent_prefix_));
  pb::RangeResponse response;
  grpc::Status status = call(3, [&](grpc::ClientContext* c) { return kv_->Range(c, request, &response); });
  if (!status.ok()) return status;
  out.revision = response.header().revision();
  c1::Intent global;
  google::protobuf::Map<std::string, c1::Intent> areas;
  for (const auto& kv : response.kvs()) {
    out.keys[kv.key()] = Value{kv.mod_revision(), kv.value()};
    out.version = std::max(out.version, uint64_t(kv.mod_revision()));
    const std::string name = kv.key().substr(intent_prefix_.size());
    // Another area's bad key is that area's to say: ours is applied all the same.
    const bool ours = name == "global" || name == "areas/" + area_;
    std::string error;
    c1::Intent section;
    if (auto e = common::parse_json(kv.value(), section))
      error = *e;
    else if (section.areas_size())
      error = "areas: each area is a key of its own (" + intent_prefix_ + "areas/NAME)";
    else if (name == "global")
      global = std::move(section);
    else if (name.starts_with("areas/"))
      areas[name.substr(strlen("areas/"))] = std::move(section);
    else
      error = "not an intent key (global, areas/NAME)";
    if (!error.empty() && ours && out.error.empty()) out.error = "etcd key " + kv.key() + ": " + error;
  }
  out.whole = std::move(global);
  *out.whole.mutable_areas() = std::move(areas);
  if (out.whole.schema_version() == 0) out.whole.set_schema_version(1);
  if (std::string e = validate_areas(out.whole); !e.empty() && out.error.empty()) out.error = e;
  return grpc::Status::OK;
}

grpc::Status EtcdStore::write(const c1::Intent& whole, uint64_t expected, int64_t& written, int& operations) {
  Snapshot current;
  grpc::Status s = read(current);
  if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
    // A member that has just died fails the call at once; the channel tries the next member
    // meanwhile. Once more, before anything is written: losing one member changes nothing.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    s = read(current);
  }
  if (!s.ok())
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "etcd " + endpoint_.address + ": " + s.error_message() + "; nothing changed");
  if (expected && expected != current.version)
    return grpc::Status(grpc::StatusCode::ABORTED,
                        "conflict: the intent is at version " + std::to_string(current.version) + ", not " +
                            std::to_string(expected) + "; nothing changed (read it again and retry)");
  // The new keys; unchanged ones are not rewritten (their watchers are not woken for nothing).
  std::map<std::string, std::string> wanted;
  std::string error;
  c1::Intent global = whole;
  global.clear_areas();
  wanted[intent_prefix_ + "global"] = intent_json(global, error);
  for (const auto& [name, section] : whole.areas()) wanted[area_key(name)] = intent_json(section, error);
  if (!error.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, error);

  pb::TxnRequest txn;
  // Held to the keys as read: each unchanged (a deleted one compares as 0), and none newer.
  for (const auto& [key, value] : current.keys) {
    pb::Compare* c = txn.add_compare();
    c->set_key(key);
    c->set_target(pb::Compare::MOD);
    c->set_result(pb::Compare::EQUAL);
    c->set_mod_revision(value.mod_revision);
  }
  pb::Compare* none_newer = txn.add_compare();
  none_newer->set_key(intent_prefix_);
  none_newer->set_range_end(prefix_end(intent_prefix_));
  none_newer->set_target(pb::Compare::MOD);
  none_newer->set_result(pb::Compare::LESS);
  none_newer->set_mod_revision(int64_t(current.version) + 1);
  for (const auto& [key, text] : wanted) {
    auto old = current.keys.find(key);
    if (old != current.keys.end() && old->second.text == text) continue;
    pb::PutRequest* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(text);
  }
  for (const auto& [key, value] : current.keys)
    if (!wanted.count(key)) txn.add_success()->mutable_request_delete_range()->set_key(key);
  if (txn.success_size() == 0) {  // the same intent: nothing to write
    written = int64_t(current.version);
    return grpc::Status::OK;
  }
  pb::TxnResponse result;
  if (grpc::Status s = call(3, [&](grpc::ClientContext* c) { return kv_->Txn(c, txn, &result); }); !s.ok())
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "etcd " + endpoint_.address + ": " + s.error_message() +
                                                           " (the change may or may not have been written: read "
                                                           "the intent again)");
  if (!result.succeeded())
    return grpc::Status(grpc::StatusCode::ABORTED, "conflict: another change to the intent came first (after version " +
                                                       std::to_string(current.version) +
                                                       "); nothing changed (read it again and retry)");
  written = result.header().revision();
  operations = txn.success_size();
  return grpc::Status::OK;
}

grpc::Status EtcdStore::apply(const c1::Intent& next, uint64_t expected, c1::ApplyIntentResponse* response) {
  std::lock_guard serial(apply_mu_);
  c1::Intent whole = next;
  if (whole.schema_version() == 0) whole.set_schema_version(1);
  if (std::string e = validate_areas(whole); !e.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, e);
  // Every area's intent checked as its medix-cp will apply it; the global objects alone too.
  if (grpc::Status s = check_(area_intent(whole, "")); !s.ok()) return s;
  for (const auto& [name, section] : whole.areas())
    if (grpc::Status s = check_(area_intent(whole, name)); !s.ok())
      return grpc::Status(s.error_code(), "area " + name + " (global objects, then areas[" + name +
                                              "]'s, in one list per kind): " + s.error_message());

  // Without an expected version, a writer that came between our read and our Txn is no conflict:
  // read again and write (twice at most).
  int64_t written = 0;
  int operations = 0;
  for (int attempt = 0;; attempt++) {
    grpc::Status s = write(whole, expected, written, operations);
    if (s.ok()) break;
    if (s.error_code() != grpc::StatusCode::ABORTED || expected || attempt == 2) return s;
  }
  response->set_version(uint64_t(written));
  if (operations == 0) return grpc::Status::OK;  // the same intent: nothing written
  fprintf(stderr, "medix-cp: intent version %lld written to etcd (%d keys written or deleted)\n", (long long)written,
          operations);
  // This area's medix-cp is us: the answer says what our watch made of it.
  std::unique_lock lock(mu_);
  if (!changed_.wait_for(lock, std::chrono::seconds(10), [&] { return revision_ >= written || stopping_; }))
    return grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                        "intent version " + std::to_string(written) + " written to etcd, not yet applied here");
  if (applied_version_ < uint64_t(written))
    return grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "intent version " + std::to_string(written) +
                                                                   " written to etcd, but area " + area_ +
                                                                   " did not apply it: " + last_error_);
  const uint64_t version = response->version();
  *response = last_result_;
  response->set_version(version);
  return grpc::Status::OK;
}

c1::Intent EtcdStore::whole() {
  std::lock_guard lock(mu_);
  if (!read_once_) return running_();
  return whole_;
}

c1::IntentStatus EtcdStore::status() {
  c1::IntentStatus s;
  {
    std::lock_guard lock(mu_);
    s.set_store("etcd " + endpoint_.address + " " + endpoint_.prefix);
    s.set_area(area_);
    s.set_version(version_);
    s.set_applied_version(applied_version_);
    s.set_connected(connected_);
    s.set_last_error(last_error_);
  }
  if (bgp_) *s.mutable_bgp() = bgp_();  // its own lock, not under ours
  return s;
}

grpc::Status EtcdStore::areas(c1::ListAreasResponse* response) {
  // The other areas as their status keys say (as last written: written_unix_ns gives the age),
  // this one as it is now.
  const std::string prefix = endpoint_.prefix + "/status/";
  pb::RangeRequest range;
  range.set_key(prefix);
  range.set_range_end(prefix_end(prefix));
  pb::RangeResponse got;
  std::map<std::string, c1::IntentStatus> by_area;
  by_area[area_] = status();
  if (grpc::Status st = call(2, [&](grpc::ClientContext* c) { return kv_->Range(c, range, &got); }); !st.ok()) {
    *response->add_areas() = by_area[area_];
    return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                        "etcd " + endpoint_.address + ": " + st.error_message() + " (only this area is known)");
  }
  for (const auto& kv : got.kvs()) {
    std::string name = kv.key().substr(prefix.size());
    if (name == area_) continue;
    c1::IntentStatus s;
    if (common::parse_json(kv.value(), s)) {
      s.Clear();
      s.set_area(name);
      s.set_last_error("status key " + kv.key() + ": not a status");
    }
    by_area[name] = s;
  }
  for (auto& [name, s] : by_area) *response->add_areas() = std::move(s);
  return grpc::Status::OK;
}

void EtcdStore::set_connected(bool connected, const std::string& why) {
  uint64_t applied;
  {
    std::lock_guard lock(mu_);
    connected_ = connected;
    if (!connected) last_error_ = "etcd " + endpoint_.address + ": " + why;
    applied = applied_version_;
  }
  // Said once per change, not per retry.
  if (connected == said_connected_) return;
  said_connected_ = connected;
  // etcd answered but refused our user (EtcdToken's errors) is not "unreachable".
  const char* what = why.starts_with("authentication: ") ? "refused us" : "unreachable";
  if (connected)
    fprintf(stderr, "medix-cp: etcd %s: connected (area %s)\n", endpoint_.address.c_str(), area_.c_str());
  else if (applied)
    fprintf(stderr,
            "medix-cp: etcd %s: %s (%s): medix-dp keeps the last applied intent (version %llu); "
            "retrying\n",
            endpoint_.address.c_str(), what, why.c_str(), (unsigned long long)applied);
  else  // not read since medix-cp started: medix-dp has this area's local copy (--intent FILE)
    fprintf(stderr, "medix-cp: etcd %s: %s (%s): medix-dp keeps the intent of the local copy; retrying\n",
            endpoint_.address.c_str(), what, why.c_str());
}

void EtcdStore::bring(const Snapshot& snapshot) {
  {
    std::lock_guard lock(mu_);
    whole_ = snapshot.whole;
    version_ = snapshot.version;
    read_once_ = true;
  }
  std::string error = snapshot.error;
  c1::Intent mine = area_intent(snapshot.whole, area_);
  c1::ApplyIntentResponse result;
  bool done = false;
  if (error.empty()) {
    std::lock_guard lock(mu_);
    done = google::protobuf::util::MessageDifferencer::Equals(mine, applied_);  // not ours that changed
  }
  retry_ = false;
  if (error.empty() && !done) {
    grpc::Status s = apply_(mine, &result);
    if (s.ok())
      fprintf(stderr, "medix-cp: intent version %llu applied (area %s)\n", (unsigned long long)snapshot.version,
              area_.c_str());
    else
      error = s.error_message();
    // Refused is final until the intent changes; medix-dp not answering, or the local copy not
    // written, may pass: tried again (run()).
    retry_ = !s.ok() && s.error_code() != grpc::StatusCode::INVALID_ARGUMENT;
  }
  {
    std::lock_guard lock(mu_);
    if (error.empty()) {
      applied_version_ = snapshot.version;
      if (!done) {
        applied_ = mine;
        last_result_ = result;
      }
      last_error_.clear();
    } else {
      const std::string e = "intent version " + std::to_string(snapshot.version) + " not applied: " + error;
      if (e != last_error_) fprintf(stderr, "medix-cp: %s%s\n", e.c_str(), retry_ ? " (trying again)" : "");
      last_error_ = e;
    }
    revision_ = std::max(revision_, snapshot.revision);
  }
  changed_.notify_all();
  write_status();
}

void EtcdStore::write_status() {
  c1::IntentStatus s = status();
  medix::dataplane::v1::Version dp;
  if (dataplane_->GetVersion(context(1).get(), {}, &dp).ok()) s.set_dataplane_intent_version(dp.intent_version());
  s.set_written_unix_ns(now_ns());
  pb::PutRequest put;
  put.set_key(status_key_);
  put.set_value(status_json(s));
  pb::PutResponse response;
  if (grpc::Status st = call(2, [&](grpc::ClientContext* c) { return kv_->Put(c, put, &response); }); !st.ok())
    fprintf(stderr, "medix-cp: etcd %s: writing %s: %s\n", endpoint_.address.c_str(), status_key_.c_str(),
            st.error_message().c_str());
}

bool EtcdStore::watch(int64_t from) {
  grpc::ClientContext ctx;
  if (grpc::Status s = token_->add(ctx, std::chrono::seconds(3)); !s.ok()) {
    set_connected(false, s.error_message());
    return false;
  }
  {
    std::lock_guard lock(mu_);
    if (stopping_) return false;
    watching_ = &ctx;
  }
  auto stream = watch_->Watch(&ctx);
  pb::WatchRequest request;
  pb::WatchCreateRequest* create = request.mutable_create_request();
  create->set_key(intent_prefix_);
  create->set_range_end(prefix_end(intent_prefix_));
  create->set_start_revision(from);
  bool resync = false;
  std::string why;  // set when we end the stream on an error (else Finish says why it ended)
  pb::WatchResponse response;
  if (stream->Write(request)) {
    while (stream->Read(&response)) {
      if (response.created()) {
        set_connected(true, "");
        if (response.header().revision() < from - 1) {  // a new etcd, its revisions started over
          fprintf(stderr, "medix-cp: etcd %s: its revision went back (%lld < %lld): reading the intent again\n",
                  endpoint_.address.c_str(), (long long)response.header().revision(), (long long)(from - 1));
          resync = true;
          break;
        }
        write_status();  // connected again
      }
      if (response.compact_revision() || response.canceled()) {
        fprintf(stderr,
                "medix-cp: etcd %s: watch from revision %lld ended (compacted to %lld): reading the "
                "intent again\n",
                endpoint_.address.c_str(), (long long)from, (long long)response.compact_revision());
        resync = true;
        break;
      }
      if (response.events_size() == 0) continue;
      int64_t last = 0;
      for (const auto& e : response.events()) last = std::max(last, e.kv().mod_revision());
      {
        std::lock_guard lock(mu_);
        if (last <= revision_) continue;  // read already
      }
      // The whole intent read again: a change may span keys (one Txn), and a read is one revision.
      Snapshot snapshot;
      if (grpc::Status s = read(snapshot); !s.ok()) {
        why = s.error_message();
        break;
      }
      bring(snapshot);
      if (retry_) {  // run() reads and applies again
        resync = true;
        break;
      }
    }
  }
  if (resync || !why.empty()) ctx.TryCancel();
  grpc::Status status = stream->Finish();
  token_->forget(status);
  {
    std::lock_guard lock(mu_);
    watching_ = nullptr;
    if (stopping_) return false;
  }
  if (!resync) set_connected(false, !why.empty() ? why : status.ok() ? "the watch ended" : status.error_message());
  return resync;
}

void EtcdStore::run() {
  bool resync = true;
  for (;;) {
    {
      std::lock_guard lock(mu_);
      if (stopping_) return;
    }
    int64_t from;
    if (resync) {
      Snapshot snapshot;
      if (grpc::Status s = read(snapshot); !s.ok()) {
        set_connected(false, s.error_message());
        std::unique_lock lock(mu_);
        changed_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping_; });
        continue;
      }
      set_connected(true, "");
      bring(snapshot);
      if (retry_) {  // this area's intent not applied yet: again in a second, from a new read
        std::unique_lock lock(mu_);
        changed_.wait_for(lock, std::chrono::seconds(1), [&] { return stopping_; });
        continue;
      }
      from = snapshot.revision + 1;
    } else {
      // Back where the watch stopped: etcd replays what changed meanwhile (no change missed).
      std::lock_guard lock(mu_);
      from = revision_ + 1;
    }
    resync = watch(from);
    if (!resync) {
      std::unique_lock lock(mu_);
      changed_.wait_for(lock, std::chrono::milliseconds(500), [&] { return stopping_; });
    }
  }
}

}  // namespace medix::cp
