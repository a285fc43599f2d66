#include "client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "tls_probe.h"

namespace medix::ctl {

namespace {

// Reads answer within this; an Apply of a large config may take much longer to validate.
constexpr auto read_deadline = std::chrono::seconds(60);
constexpr auto apply_deadline = std::chrono::seconds(600);
constexpr int list_attempts = 3;

std::string read_pem(const std::string& path) {
  if (path.empty()) return {};
  std::ifstream in(path);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) throw Failure(path + ": cannot read the file");
  return text.str();
}

void set_deadline(grpc::ClientContext& context, std::chrono::seconds after) {
  context.set_deadline(std::chrono::system_clock::now() + after);
}

}  // namespace

std::string code_name(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "CODE_" + std::to_string(static_cast<int>(code));
  }
}

ServerError::ServerError(grpc::StatusCode code_, const std::string& message_, std::string note_)
    : Failure(code_name(code_) + ": " + message_, std::move(note_)), code(code_), message(message_) {}

// gRPC tells no more of a failed TLS connection than UNAVAILABLE: a handshake of our own says
// why (tls_probe.h), once.
void Client::check(const grpc::Status& status) {
  if (status.ok()) return;
  std::string note;
  if (status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    if (!probed_) tls_reason_ = tls_failure_reason(target_, tls_), probed_ = true;
    if (!tls_reason_.empty()) note = "TLS: " + tls_reason_;
  }
  throw ServerError(status.error_code(), status.error_message(), note);
}

Client::Client(const std::string& target, const Tls& tls) : target_(target), tls_(tls) {
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  if (tls.enabled()) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = read_pem(tls.ca);
    options.pem_private_key = read_pem(tls.key);
    options.pem_cert_chain = read_pem(tls.cert);
    credentials = grpc::SslCredentials(options);
  } else {
    credentials = grpc::InsecureChannelCredentials();
  }
  grpc::ChannelArguments arguments;
  arguments.SetMaxReceiveMessageSize(-1);  // a counters snapshot of a large IX exceeds 4 MB
  arguments.SetMaxSendMessageSize(-1);
  stub_ = v1::Dataplane::NewStub(grpc::CreateCustomChannel(target, credentials, arguments));
}

v1::ListResponse Client::list(v1::Kind kind, const std::string& tenant) {
  for (int attempt = 1;; attempt++) {
    v1::ListResponse all;
    v1::ListRequest request;
    request.set_kind(kind);
    request.set_tenant(tenant);
    bool consistent = true;
    for (bool first = true; first || !request.page_token().empty(); first = false) {
      grpc::ClientContext context;
      set_deadline(context, read_deadline);
      v1::ListResponse page;
      check(stub_->List(&context, request, &page));
      if (!first && page.version() != all.version()) {
        consistent = false;
        break;
      }
      if (!page.next_page_token().empty() && page.next_page_token() == request.page_token())
        throw Failure("List: the server returned the same page token twice");
      all.set_version(page.version());
      for (auto& object : *page.mutable_objects()) all.add_objects()->Swap(&object);
      request.set_page_token(page.next_page_token());
    }
    if (consistent) return all;
    if (attempt == list_attempts) throw Failure("List: the configuration kept changing while it was read");
  }
}

v1::GetResponse Client::get(const v1::Object& key) {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::GetRequest request;
  *request.mutable_key() = key;
  v1::GetResponse response;
  check(stub_->Get(&context, request, &response));
  return response;
}

v1::ApplyResponse Client::apply(const v1::ApplyRequest& request) {
  grpc::ClientContext context;
  set_deadline(context, apply_deadline);
  v1::ApplyResponse response;
  check(stub_->Apply(&context, request, &response));
  return response;
}

v1::CountersSnapshot Client::counters() {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::CountersSnapshot response;
  check(stub_->GetCounters(&context, v1::GetCountersRequest(), &response));
  return response;
}

v1::ListSessionsResponse Client::sessions(const v1::ListSessionsRequest& request) {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::ListSessionsResponse response;
  check(stub_->ListSessions(&context, request, &response));
  return response;
}

v1::GetFibResponse Client::fib(const std::string& tenant) {
  v1::GetFibResponse all;
  v1::GetFibRequest request;
  request.set_tenant(tenant);
  request.set_page_size(100000);
  // Pages of one version: a commit between two pages starts over (a few times).
  for (int attempt = 0;; attempt++) {
    all.Clear();
    request.clear_page_token();
    bool changed = false;
    do {
      grpc::ClientContext context;
      set_deadline(context, read_deadline);
      v1::GetFibResponse page;
      check(stub_->GetFib(&context, request, &page));
      if (all.entries_size() && page.version() != all.version()) changed = true;
      auto entries = std::move(*page.mutable_entries());
      page.clear_entries();
      all.MergeFrom(page);
      for (auto& e : entries) *all.add_entries() = std::move(e);
      request.set_page_token(page.next_page_token());
    } while (!request.page_token().empty() && !changed);
    all.clear_next_page_token();
    if (!changed || attempt == 3) return all;
  }
}

v1::LookupResponse Client::lookup(const std::string& tenant, const std::string& address) {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::LookupRequest request;
  request.set_tenant(tenant);
  request.set_address(address);
  v1::LookupResponse response;
  check(stub_->Lookup(&context, request, &response));
  return response;
}

void Client::clear_sessions(const std::string& tenant) {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::ClearSessionsRequest request;
  request.set_tenant(tenant);
  v1::ClearSessionsResponse response;
  check(stub_->ClearSessions(&context, request, &response));
}

v1::Version Client::version() {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::Version response;
  check(stub_->GetVersion(&context, v1::GetVersionRequest(), &response));
  return response;
}

uint64_t Client::clear_counters() {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::ClearCountersResponse response;
  check(stub_->ClearCounters(&context, v1::ClearCountersRequest(), &response));
  return response.since_ns();
}

v1::Runtime Client::runtime() {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::Runtime response;
  check(stub_->GetRuntime(&context, v1::GetRuntimeRequest(), &response));
  return response;
}

void Client::watch_counters(uint32_t interval_ms, const std::function<bool(const v1::CountersSnapshot&)>& each) {
  grpc::ClientContext context;  // no deadline: it runs until `each` says stop
  v1::WatchCountersRequest request;
  request.set_interval_ms(interval_ms);
  auto reader = stub_->WatchCounters(&context, request);
  v1::CountersSnapshot snapshot;
  bool stopped = false;
  while (reader->Read(&snapshot)) {
    if (!each(snapshot)) {
      stopped = true;
      context.TryCancel();
      break;
    }
  }
  auto status = reader->Finish();
  if (stopped) return;
  check(status);
  throw Failure("WatchCounters: the server ended the stream");
}

uint64_t Client::capture(const v1::CaptureRequest& request, const std::function<void(const v1::CapturedPacket&)>& each,
                         const std::atomic<bool>& cancel) {
  grpc::ClientContext context;  // no deadline: the request's count and duration end it
  auto reader = stub_->Capture(&context, request);
  // Ctrl-C: the reader is blocked in Read; cancelling the call ends it.
  std::atomic<bool> finished{false};
  std::thread watcher([&] {
    while (!finished.load()) {
      if (cancel.load()) {
        context.TryCancel();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  v1::CapturedPacket packet;
  uint64_t lost = 0;
  while (reader->Read(&packet)) {
    lost = packet.lost();
    each(packet);
  }
  finished.store(true);
  watcher.join();
  auto status = reader->Finish();
  auto trailer = context.GetServerTrailingMetadata().find("medix-capture-lost");
  if (trailer != context.GetServerTrailingMetadata().end())
    lost = std::stoull(std::string(trailer->second.data(), trailer->second.size()));
  if (cancel.load() && status.error_code() == grpc::StatusCode::CANCELLED) return lost;
  check(status);
  return lost;
}

void Client::start_trace(const v1::StartTraceRequest& request) {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::StartTraceResponse response;
  check(stub_->StartTrace(&context, request, &response));
}

v1::SetHaRoleResponse Client::set_ha_role(const v1::SetHaRoleRequest& request) {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::SetHaRoleResponse response;
  check(stub_->SetHaRole(&context, request, &response));
  return response;
}

v1::HaSyncStatus Client::get_ha_sync() {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::HaSyncStatus response;
  check(stub_->GetHaSync(&context, v1::GetHaSyncRequest(), &response));
  return response;
}

v1::GetTraceResponse Client::get_trace() {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::GetTraceResponse response;
  check(stub_->GetTrace(&context, v1::GetTraceRequest(), &response));
  return response;
}

void Client::clear_trace() {
  grpc::ClientContext context;
  set_deadline(context, read_deadline);
  v1::ClearTraceResponse response;
  check(stub_->ClearTrace(&context, v1::ClearTraceRequest(), &response));
}

}  // namespace medix::ctl
