// The IKE speaker's witness: an etcd lease on PREFIX/ike-speaker (witness.h).
#include "witness.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <cstdio>

#include "intent_store.h"

namespace medix::cp::ha {

namespace pb = etcdserverpb;

namespace {

constexpr auto renew_every = std::chrono::milliseconds(250);
constexpr auto call_deadline = std::chrono::milliseconds(400);  // below the renew deadline (ttl/2 >= 500 ms)

int64_t steady_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::unique_ptr<grpc::ClientContext> context() {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() + call_deadline);
  return ctx;
}

// The end of the range of the keys under `prefix` (its last byte + 1, as etcdctl --prefix).
std::string prefix_end(std::string prefix) {
  prefix.back()++;
  return prefix;
}

// Adds to the success branch of `txn` a read of the keys under `prefix`, then their deletion.
void read_and_delete(pb::TxnRequest& txn, const std::string& prefix) {
  auto* read = txn.add_success()->mutable_request_range();
  read->set_key(prefix);
  read->set_range_end(prefix_end(prefix));
  auto* clear = txn.add_success()->mutable_request_delete_range();
  clear->set_key(prefix);
  clear->set_range_end(prefix_end(prefix));
}

// etcd's default limit of operations in one Txn is 128.
constexpr size_t records_per_txn = 100;

// An answered record's value: fixed width, so that etcd's compare of values (as bytes) is the
// numbers' order.
std::string answered_value(uint32_t responding) {
  char v[12];
  snprintf(v, sizeof v, "%08" PRIx32, responding);
  return v;
}
bool parse_answered(const std::string& value, uint32_t& responding) {
  if (value.size() != 8 || value.find_first_not_of("0123456789abcdef") != std::string::npos) return false;
  responding = uint32_t(std::stoul(value, nullptr, 16));
  return true;
}

}  // namespace

std::string Witness::start(const WitnessConfig& config, const std::string& name) {
  EtcdEndpoint endpoint;
  if (auto e = parse_etcd_url(config.url, endpoint)) return "--ike-witness " + config.url + ": " + *e;
  const EtcdEndpoint& a = config.access;
  endpoint.ca_pem = a.ca_pem, endpoint.cert_pem = a.cert_pem, endpoint.key_pem = a.key_pem;
  endpoint.server_name = a.server_name, endpoint.user = a.user, endpoint.password = a.password;
  if (config.ttl_s < 1 || config.ttl_s > 60) return "--ike-witness-ttl: 1 to 60 seconds";
  endpoint_ = endpoint;
  key_ = endpoint.prefix + "/ike-speaker";
  records_ = endpoint.prefix + "/ike-mids/";
  answers_ = endpoint.prefix + "/ike-answered/";
  requests_ = endpoint.prefix + "/ike-requests/";
  name_ = name;
  ttl_s_ = config.ttl_s;
  connect();
  thread_ = std::thread([this] { run(); });
  return "";
}

void Witness::connect() {
  grpc::ChannelArguments args;
  // An etcd that is back must be seen within a renewal or two (gRPC's backoff grows to 2 minutes).
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 500);
  // A connection of its own, not one shared with an earlier channel (reconnect() needs a new one).
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto channel = etcd_channel(endpoint_, args);
  kv_ = pb::KV::NewStub(channel);
  lease_ = pb::Lease::NewStub(channel);
  token_ = std::make_unique<EtcdToken>(channel, endpoint_.user, endpoint_.password);
}

void Witness::unanswered(const grpc::Status& status) {
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      status.error_code() == grpc::StatusCode::UNAVAILABLE)
    reconnect_ = true;
}

void Witness::reconnect() {
  // A TCP connection whose packets were lost (etcd cut off, not refused) stays open with its
  // retransmits (or its SYN's) backing off (seconds, then tens of seconds): calls on it time out
  // long after etcd is back. Found by netns-ike-witness with TLS (a node cut from etcd while it
  // used the lease obtained it again only 10 to 20 s after etcd was back). A new connection, with
  // its first packets at once, after each call that got no answer.
  std::lock_guard lock(record_mu_);  // put_records uses the stubs under it
  connect();
}

bool Witness::add_token(grpc::ClientContext& ctx) {
  // etcd checks the password with bcrypt: longer than a lease call on a loaded machine.
  if (grpc::Status s = token_->add(ctx, std::chrono::seconds(2)); !s.ok()) {
    unanswered(s);
    return refused(etcd_error(s));
  }
  return true;
}

Witness::View Witness::view() const {
  View v;
  v.endpoint = endpoint_.address;
  v.key = key_;
  v.user = endpoint_.user;
  v.tls = !endpoint_.ca_pem.empty();
  v.ttl_s = ttl_s_;
  v.wanted = wanted_.load();
  v.holder = holds();
  if (int64_t at = answered_ns_.load()) v.last_renewal_ms = (steady_ns() - at) / 1'000'000;
  std::lock_guard lock(refused_mu_);
  v.last_refusal = last_refusal_;
  return v;
}

void Witness::stop() {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  // A node that stops lets the key go at once (a peer alone then speaks without waiting the TTL).
  if (lease_id_) revoke();
}

void Witness::want(bool wanted) {
  if (wanted_.exchange(wanted) != wanted && !wanted) valid_until_ns_ = 0;  // silent from now
  cv_.notify_all();
}

bool Witness::holds() const {
  int64_t until = valid_until_ns_.load();
  return until != 0 && steady_ns() < until;
}

bool Witness::obtain() {
  int64_t sent = steady_ns();
  pb::LeaseGrantRequest grant;
  grant.set_ttl(ttl_s_);
  pb::LeaseGrantResponse granted;
  auto ctx = context();
  if (!add_token(*ctx)) return false;
  grpc::Status status = lease_->LeaseGrant(ctx.get(), grant, &granted);
  token_->forget(status);
  if (!status.ok() || granted.id() == 0) {
    unanswered(status);
    return refused(status.ok() ? "etcd: " + granted.error() : etcd_error(status));
  }
  lease_id_ = granted.id();
  answered_ns_ = steady_ns();
  pb::TxnRequest txn;
  auto* absent = txn.add_compare();
  absent->set_key(key_);
  absent->set_target(pb::Compare::CREATE);
  absent->set_result(pb::Compare::EQUAL);
  absent->set_create_revision(0);
  auto* put = txn.add_success()->mutable_request_put();
  put->set_key(key_);
  put->set_value(name_);
  put->set_lease(lease_id_);
  // The message IDs the last holder recorded: read, and deleted (this node records its own, which
  // it raises to these, before it speaks; records of IKE_SAs gone go with them).
  read_and_delete(txn, records_);
  // The other node's answers without the lease: raised to as the holder's renewals do, and
  // deleted (records of IKE_SAs gone go with them; a late write that puts one back lower is
  // harmless: only ever raised to).
  read_and_delete(txn, answers_);
  // The last request each IKE_SA's holder recorded (its bytes): sent again before this node speaks.
  read_and_delete(txn, requests_);
  txn.add_failure()->mutable_request_range()->set_key(key_);
  pb::TxnResponse result;
  ctx = context();
  if (add_token(*ctx)) {
    status = kv_->Txn(ctx.get(), txn, &result);
    token_->forget(status);
    unanswered(status);
  } else {
    status = grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no token");
  }
  if (!status.ok() || !result.succeeded()) {
    // Another node holds it (or etcd went): this lease is not needed.
    revoke();
    if (!status.ok()) return refused(etcd_error(status));
    std::string holder = "another node";
    if (result.responses_size() > 0 && result.responses(0).response_range().kvs_size() > 0)
      holder = result.responses(0).response_range().kvs(0).value();
    return refused("held by " + holder);
  }
  Records records;
  {
    std::lock_guard lock(record_mu_);
    recorded_.clear();
    key_revision_ = result.header().revision();
    if (result.responses_size() > 1)
      for (const auto& kv : result.responses(1).response_range().kvs()) {
        Record r{};
        if (kv.key().size() <= records_.size() ||
            !parse_mids_record(kv.key().substr(records_.size()), kv.value(), r.mids, &r.children))
          continue;
        records.mids.push_back(r.mids);  // r.revision 0: deleted by this Txn
        for (uint32_t spi : r.children) records.children.push_back({r.mids.spi_i, r.mids.spi_r, spi});
        recorded_[{r.mids.spi_i, r.mids.spi_r}] = std::move(r);
      }
    // A request counts if its record's initiating ID is one past it: the last one of the holder's.
    if (result.responses_size() > 5)
      for (const auto& kv : result.responses(5).response_range().kvs()) {
        IkeMids m{};
        const std::string& b = kv.value();
        if (kv.key().size() <= requests_.size() || b.size() < 28 ||
            !parse_mids_record(kv.key().substr(requests_.size()), "0 0", m))
          continue;
        uint32_t mid = uint32_t(uint8_t(b[20])) << 24 | uint32_t(uint8_t(b[21])) << 16 | uint32_t(uint8_t(b[22])) << 8 |
                       uint32_t(uint8_t(b[23]));
        auto it = recorded_.find({m.spi_i, m.spi_r});
        if (it != recorded_.end() && it->second.mids.initiating == mid + 1)
          records.requests.push_back({m.spi_i, m.spi_r, b});
      }
    stats_.records_read += records.mids.size();
    fresh_ = std::move(records);
    answers_written_.clear();  // deleted with this Txn
  }
  {
    std::lock_guard lock(answers_mu_);
    answers_seen_.clear();
  }
  if (result.responses_size() > 3) take_answers(result.responses(3).response_range().kvs());
  valid_until_ns_ = sent + int64_t(ttl_s_) * 500'000'000;
  stats_.obtained++;
  said_lost_ = false;
  said_refused_.clear();
  {
    std::lock_guard lock(refused_mu_);
    last_refusal_.clear();
  }
  fprintf(stderr, "medix-cp: ha witness: the IKE speaker's lease obtained (%s, TTL %lld s): IKE requests allowed\n",
          key_.c_str(), static_cast<long long>(granted.ttl()));
  return true;
}

std::string Witness::etcd_error(const grpc::Status& status) const {
  std::string why = "etcd: " + status.error_message();
  // A plain channel to an etcd that serves TLS only fails as no connection: say what may be missing.
  if (endpoint_.ca_pem.empty() && (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                                   status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED))
    why += " (plain gRPC, no --etcd-cacert: an etcd that serves TLS only is not reached this way)";
  return why;
}

bool Witness::refused(const std::string& why) {
  // Once per kind (etcd's errors vary from call to call: "etcd", "held by NAME"), not every 250 ms.
  std::string kind = why.substr(0, why.find(':'));
  {
    std::lock_guard lock(refused_mu_);
    last_refusal_ = why;
  }
  if (kind != said_refused_)
    fprintf(stderr, "medix-cp: ha witness: the IKE speaker's lease not obtained (%s): no IKE requests of ours\n",
            why.c_str());
  said_refused_ = kind;
  return false;
}

bool Witness::renew() {
  int64_t sent = steady_ns();
  auto ctx = context();
  if (!add_token(*ctx)) {
    stats_.failures++;
    return false;
  }
  auto stream = lease_->LeaseKeepAlive(ctx.get());
  pb::LeaseKeepAliveRequest request;
  request.set_id(lease_id_.load());
  pb::LeaseKeepAliveResponse response;
  bool answered = stream->Write(request) && stream->Read(&response);
  stream->WritesDone();
  ctx->TryCancel();
  token_->forget(stream->Finish());
  if (!answered) {
    stats_.failures++;
    reconnect_ = true;  // no answer within the call's deadline: the connection may be stuck
    return false;
  }
  if (response.ttl() <= 0) {  // expired at etcd: the key is gone with it
    lease_id_ = 0;
    valid_until_ns_ = 0;
    stats_.lost++;
    fprintf(stderr, "medix-cp: ha witness: the IKE speaker's lease expired at etcd: no IKE requests of ours\n");
    return false;
  }
  answered_ns_ = steady_ns();
  // Only ever later: an answer to an older renewal must not shorten a newer one's deadline.
  if (wanted_.load()) valid_until_ns_ = sent + int64_t(ttl_s_) * 500'000'000;
  stats_.renewals++;
  said_lost_ = false;
  return true;
}

std::optional<Witness::Records> Witness::take_records() {
  std::lock_guard lock(record_mu_);
  return std::exchange(fresh_, std::nullopt);
}

bool Witness::merge(Record& r) {
  auto it = recorded_.find({r.mids.spi_i, r.mids.spi_r});
  if (it == recorded_.end()) return true;
  const Record& had = it->second;
  r.mids.initiating = std::max(r.mids.initiating, had.mids.initiating);
  r.mids.responding = std::max(r.mids.responding, had.mids.responding);
  return r.mids.initiating != had.mids.initiating || r.mids.responding != had.mids.responding ||
         r.children != had.children;
}

bool Witness::record(const IkeMids& m, const std::vector<uint32_t>& children, std::string_view request) {
  std::lock_guard lock(record_mu_);
  Record r{m, record_children(children), std::string(request)};
  if (children.size() > max_record_children) {
    stats_.children_left_out += children.size() - max_record_children;
    if (!said_children_)
      fprintf(stderr,
              "medix-cp: ha witness: an IKE_SA with %zu CHILD_SAs: its record carries the newest %zu (said once)\n",
              children.size(), max_record_children);
    said_children_ = true;
  }
  return !merge(r) || put_records({r});
}

bool Witness::record_all(const std::vector<IkeMids>& mids) {
  std::lock_guard lock(record_mu_);
  std::vector<Record> merged;
  for (const auto& m : mids) {
    // The CHILD_SAs as recorded or read (the last holder's, until this node's next message of
    // that IKE_SA records its own): a node after this one still deletes them.
    auto it = recorded_.find({m.spi_i, m.spi_r});
    Record r{m, it != recorded_.end() ? it->second.children : std::vector<uint32_t>{}, {}};
    if (merge(r)) merged.push_back(std::move(r));
  }
  for (size_t i = 0; i < merged.size(); i += records_per_txn)
    if (!put_records({merged.begin() + long(i), merged.begin() + long(std::min(merged.size(), i + records_per_txn))}))
      return false;
  return true;
}

bool Witness::put_records(std::vector<Record> records) {
  // A write refused for a record changed behind this node (a late Txn of its own) is raised to
  // etcd's and tried again: three tries in all.
  for (int tries = 0; tries < 3 && !records.empty(); tries++) {
    int64_t lease = lease_id_.load();
    if (!holds() || !lease) break;
    pb::TxnRequest txn;
    // The speaker's key still the one this lease made (it exists only with a lease of ours): etcd
    // refuses a holder whose lease expired, whatever its own deadline says. By its revision, not
    // its value (this node's name): a Txn of an earlier lease of this node's that etcd takes late
    // (its call timed out in an etcd cut; TCP delivered it on the old connection seconds after the
    // heal) must not lower what this lease recorded (seen: netns-ike-witness, lease_twice).
    auto* held = txn.add_compare();
    held->set_key(key_);
    held->set_target(pb::Compare::MOD);
    held->set_result(pb::Compare::EQUAL);
    held->set_mod_revision(key_revision_);
    txn.add_failure()->mutable_request_range()->set_key(key_);
    for (const auto& r : records) {
      std::string key = records_ + mids_record_name(r.mids);
      // The record as this node last wrote or read it: a late Txn of this lease (its call gave up,
      // its connection too, and a later record went out) then finds it changed and is refused.
      auto it = recorded_.find({r.mids.spi_i, r.mids.spi_r});
      auto* same = txn.add_compare();
      same->set_key(key);
      same->set_target(pb::Compare::MOD);
      same->set_result(pb::Compare::EQUAL);
      same->set_mod_revision(it != recorded_.end() ? it->second.revision : 0);
      auto* put = txn.add_success()->mutable_request_put();
      put->set_key(key);
      put->set_value(mids_record_value(r.mids, r.children));
      if (!r.request.empty()) {  // with its record: the request a next speaker sends again
        auto* bytes = txn.add_success()->mutable_request_put();
        bytes->set_key(requests_ + mids_record_name(r.mids));
        bytes->set_value(r.request);
      }
      txn.add_failure()->mutable_request_range()->set_key(key);
    }
    pb::TxnResponse result;
    grpc::Status status;
    if (before_record && !before_record(txn)) {
      status = grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "held by a test");
    } else {
      auto ctx = context();
      if (!add_token(*ctx)) break;
      status = kv_->Txn(ctx.get(), txn, &result);
      token_->forget(status);
    }
    // No answer: etcd may take it later; the revisions above then no longer match, and the next
    // write reads what it did.
    if (!status.ok()) break;
    if (result.succeeded()) {
      for (auto& r : records) {
        r.revision = result.header().revision();
        r.request.clear();  // written: not kept
        recorded_[{r.mids.spi_i, r.mids.spi_r}] = r;
      }
      stats_.recorded += records.size();
      return true;
    }
    // Refused: the lease gone (nothing to read), or a record changed since this node last wrote
    // or read it (a late Txn of its own, taken by etcd). Those are read, raised to, written again.
    if (result.responses_size() != int(records.size()) + 1) break;
    const auto& speaker = result.responses(0).response_range().kvs();
    if (speaker.empty() || speaker[0].mod_revision() != key_revision_) break;
    std::vector<Record> left;
    for (size_t i = 0; i < records.size(); i++) {
      std::pair<uint64_t, uint64_t> spis{records[i].mids.spi_i, records[i].mids.spi_r};
      Record had{{spis.first, spis.second, 0, 0}, {}, {}, 0};
      for (const auto& kv : result.responses(int(i) + 1).response_range().kvs()) {
        had.revision = kv.mod_revision();
        parse_mids_record(kv.key().substr(records_.size()), kv.value(), had.mids, &had.children);
      }
      // Only one that changed is taken from etcd: an unchanged one may carry what this node read
      // with the lease (its key deleted since, revision 0).
      auto it = recorded_.find(spis);
      if (had.revision != (it != recorded_.end() ? it->second.revision : 0)) recorded_[spis] = had;
      if (merge(records[i])) left.push_back(std::move(records[i]));
    }
    records = std::move(left);
  }
  if (records.empty()) return true;  // etcd had them all
  stats_.record_failures++;
  return false;
}

bool Witness::recorded(const IkeMids& m) {
  std::lock_guard lock(record_mu_);
  auto it = recorded_.find({m.spi_i, m.spi_r});
  return it != recorded_.end() && m.initiating <= it->second.mids.initiating;
}

bool Witness::answered(const IkeMids& m, std::string_view response) {
  // etcd not heard from in the last second (the node cut from it: its grants get no answer): the
  // response is not delayed by a call that cannot succeed.
  if (steady_ns() - answered_ns_.load() > 1'000'000'000) return false;
  std::lock_guard lock(record_mu_);
  std::pair<uint64_t, uint64_t> sa{m.spi_i, m.spi_r};
  if (auto it = answers_written_.find(sa); it != answers_written_.end() && it->second >= m.responding) return true;
  if (answers_written_.size() > 4096) answers_written_.clear();  // IKE_SAs gone: only costs a write again
  const std::string key = answers_ + name_ + "/" + mids_record_name(m), value = answered_value(m.responding);
  // The response's bytes (an encrypted IKE message, never logged) beside it, under the same
  // compare: they go up with the ID or not at all.
  const bool keep = !response.empty() && response.size() <= max_response_bytes;
  // Put over a lower value; absent: created. A value as high or higher stays (a late Txn of ours
  // taken after a later one is refused by the same compare).
  for (int tries = 0; tries < 2; tries++) {
    pb::TxnRequest txn;
    auto* c = txn.add_compare();
    c->set_key(key);
    if (tries == 0) {
      c->set_target(pb::Compare::VALUE);
      c->set_result(pb::Compare::LESS);
      c->set_value(value);
    } else {
      c->set_target(pb::Compare::CREATE);
      c->set_result(pb::Compare::EQUAL);
      c->set_create_revision(0);
    }
    auto* put = txn.add_success()->mutable_request_put();
    put->set_key(key);
    put->set_value(value);
    if (keep) {
      auto* bytes = txn.add_success()->mutable_request_put();
      bytes->set_key(key + "/response");
      bytes->set_value(value + std::string(response));
    }
    txn.add_failure()->mutable_request_range()->set_key(key);
    pb::TxnResponse result;
    auto ctx = context();
    if (!add_token(*ctx)) return false;
    grpc::Status status = kv_->Txn(ctx.get(), txn, &result);
    token_->forget(status);
    if (!status.ok()) {
      unanswered(status);
      return false;
    }
    uint32_t had = 0;
    bool present = result.responses_size() > 0 && result.responses(0).response_range().kvs_size() > 0;
    if (result.succeeded() ||
        (present && parse_answered(result.responses(0).response_range().kvs(0).value(), had) && had >= m.responding)) {
      answers_written_[sa] = result.succeeded() ? m.responding : had;
      stats_.answered++;
      return true;
    }
    if (present) return false;  // a value not ours to read: left alone
  }
  return false;
}

void Witness::read_answered() {
  pb::RangeRequest range;
  range.set_key(answers_);
  range.set_range_end(prefix_end(answers_));
  pb::RangeResponse result;
  // A short deadline: the renewals on this thread must stay within the renew deadline (400 ms for
  // a renewal, this, 250 ms between them: below ttl/2, 1 s). One not answered is read next time
  // (a connection stuck shows in the renewals, which reconnect).
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(150));
  if (!add_token(ctx)) return;
  grpc::Status status = kv_->Range(&ctx, range, &result);  // run()'s thread, as reconnect()
  token_->forget(status);
  if (status.ok()) take_answers(result.kvs());
}

void Witness::take_answers(const google::protobuf::RepeatedPtrField<etcdserverpb::KeyValue>& kvs) {
  std::lock_guard lock(answers_mu_);
  // PREFIX/ike-answered/NAME/SPI_I.SPI_R (the ID) and .../SPI_I.SPI_R/response (the ID, then the
  // packet): the other node's only (ours are in our charon). The responses first, by their key.
  std::map<std::string, const std::string*> responses;
  for (const auto& kv : kvs) {
    constexpr std::string_view suffix = "/response";
    if (kv.key().size() > answers_.size() + suffix.size() && kv.key().ends_with(suffix))
      responses[kv.key().substr(0, kv.key().size() - suffix.size())] = &kv.value();
  }
  for (const auto& kv : kvs) {
    std::string rest = kv.key().substr(std::min(kv.key().size(), answers_.size()));
    size_t slash = rest.rfind('/');
    IkeMids m{};
    uint32_t responding = 0;
    if (slash == std::string::npos || rest.substr(0, slash) == name_ ||
        !parse_mids_record(rest.substr(slash + 1), "0 0", m) || !parse_answered(kv.value(), responding))
      continue;
    uint32_t& seen = answers_seen_[{m.spi_i, m.spi_r}];
    if (responding <= seen) continue;
    seen = responding;
    m.responding = responding;
    IkeAnswer a{m, {}};
    // Only the response written with this ID (the same Txn): one of an older ID is not its.
    if (auto it = responses.find(kv.key());
        it != responses.end() && it->second->size() > 8 && it->second->compare(0, 8, kv.value()) == 0)
      a.response = it->second->substr(8);
    answers_fresh_.push_back(std::move(a));
    stats_.answers_read++;
  }
}

std::vector<IkeAnswer> Witness::take_answered() {
  std::lock_guard lock(answers_mu_);
  return std::exchange(answers_fresh_, {});
}

void Witness::revoke() {
  pb::LeaseRevokeRequest request;
  request.set_id(lease_id_.load());
  pb::LeaseRevokeResponse response;
  auto ctx = context();
  if (add_token(*ctx)) lease_->LeaseRevoke(ctx.get(), request, &response);  // if lost, it expires after the TTL
  lease_id_ = 0;
}

void Witness::run() {
  if (!endpoint_.user.empty()) {  // the token at start: a takeover then waits for no Authenticate
    grpc::ClientContext ctx;
    add_token(ctx);
  }
  std::unique_lock lock(mu_);
  while (!stopping_) {
    bool wanted = wanted_.load();
    lock.unlock();
    if (!wanted && lease_id_) {
      valid_until_ns_ = 0;
      revoke();
      fprintf(stderr, "medix-cp: ha witness: the IKE speaker's lease let go (a standby peer, or not active)\n");
    } else if (wanted && !lease_id_) {
      obtain();
    } else if (wanted) {
      if (renew() && holds()) read_answered();
      if (lease_id_ && !holds() && !said_lost_) {
        said_lost_ = true;
        stats_.lost++;
        fprintf(stderr,
                "medix-cp: ha witness: etcd did not answer within the renew deadline: no IKE requests of ours\n");
      }
    }
    if (reconnect_.exchange(false)) reconnect();
    lock.lock();
    cv_.wait_for(lock, renew_every, [this, wanted] { return stopping_ || wanted_.load() != wanted; });
  }
}

}  // namespace medix::cp::ha
