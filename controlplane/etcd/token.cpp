#include "etcd/token.h"

namespace medix::cp {

EtcdToken::EtcdToken(const std::shared_ptr<grpc::Channel>& channel, std::string user, std::string password)
    : auth_(etcdserverpb::Auth::NewStub(channel)), user_(std::move(user)), password_(std::move(password)) {}

grpc::Status EtcdToken::add(grpc::ClientContext& ctx, std::chrono::milliseconds wait) {
  if (user_.empty()) return grpc::Status::OK;
  std::lock_guard lock(mu_);
  if (token_.empty()) {
    etcdserverpb::AuthenticateRequest request;
    request.set_name(user_);
    request.set_password(password_);
    etcdserverpb::AuthenticateResponse response;
    grpc::ClientContext auth_ctx;
    auth_ctx.set_deadline(std::chrono::system_clock::now() + wait);
    if (grpc::Status s = auth_->Authenticate(&auth_ctx, request, &response); !s.ok())
      return grpc::Status(s.error_code(), "authentication: user " + user_ + ": " + s.error_message());
    token_ = response.token();
  }
  ctx.AddMetadata("token", token_);
  return grpc::Status::OK;
}

void EtcdToken::forget(const grpc::Status& status) {
  if (status.error_code() != grpc::StatusCode::UNAUTHENTICATED || user_.empty()) return;
  std::lock_guard lock(mu_);
  token_.clear();
}

}  // namespace medix::cp
