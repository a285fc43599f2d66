#include "api/listener.h"

#include <fcntl.h>
#include <grpcpp/server_posix.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace medix::dp {

namespace {

// A call knows its connection only as "fd:N", looked up when the call starts. gRPC may close
// a connection's fd while a call of it is still queued for a thread; were N given to the next
// connection at once, that call would be judged as the next peer. So a number given to gRPC
// is not given again for this long, far beyond any wait for a thread.
constexpr auto reuse_after = std::chrono::seconds(30);

}  // namespace

std::optional<std::string> UnixListener::listen(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return path + ": longer than a unix socket path may be";
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return path + ": " + strerror(errno);
  // Created 0600 (only its owner may connect), not chmod-ed later.
  mode_t old_mask = umask(0177);
  int bound = bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  umask(old_mask);
  if (bound != 0 || ::listen(listen_fd_, 128) != 0) {
    std::string e = path + ": " + strerror(errno);
    close(listen_fd_);
    listen_fd_ = -1;
    return e;
  }
  path_ = path;
  if (pipe2(wake_, O_CLOEXEC) != 0) return std::string("pipe: ") + strerror(errno);
  // Room to rotate connection numbers: the soft limit of open files raised to the hard one.
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) == 0) {
    if (files.rlim_cur < files.rlim_max) {
      files.rlim_cur = std::min<rlim_t>(files.rlim_max, 1 << 20);
      setrlimit(RLIMIT_NOFILE, &files);
      getrlimit(RLIMIT_NOFILE, &files);
    }
    limit_ = int(std::min<rlim_t>(files.rlim_cur, 1 << 20));
  }
  return std::nullopt;
}

void UnixListener::serve(grpc::Server* server, Access* access) {
  server_ = server;
  access_ = access;
  thread_ = std::thread([this] { run(); });
}

// The number to give gRPC for a new connection's `fd`: `fd` itself unless it was given out
// lately; then another, going round the free numbers up to the limit. -1: none is free.
int UnixListener::number_for(int fd) {
  auto now = std::chrono::steady_clock::now();
  auto fresh = [&](int n) {
    auto it = given_.find(n);
    return it == given_.end() || now - it->second >= reuse_after;
  };
  if (fresh(fd)) return fd;
  for (int tries = 0; tries < 2 && limit_ > 0; tries++) {
    if (next_ <= fd || next_ >= limit_) next_ = fd + 1;
    while (next_ < limit_) {
      int n = fcntl(fd, F_DUPFD_CLOEXEC, next_);
      if (n < 0) break;
      next_ = n + 1;
      if (fresh(n)) {
        close(fd);
        return n;
      }
      close(n);
    }
    next_ = 0;  // round again from the bottom
  }
  return -1;
}

void UnixListener::run() {
  for (;;) {
    pollfd fds[2] = {{listen_fd_, POLLIN, 0}, {wake_[0], POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents) break;
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EMFILE || errno == ENFILE) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    ucred peer{};
    socklen_t len = sizeof peer;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &len) != 0) {
      close(fd);
      continue;
    }
    int n = number_for(fd);
    if (n < 0) {
      fprintf(stderr, "medix-dp: API: refused a connection of uid %u: too many connections in the last %lld s\n",
              unsigned(peer.uid), static_cast<long long>(reuse_after.count()));
      close(fd);
      continue;
    }
    given_[n] = std::chrono::steady_clock::now();
    access_->add_connection(n, peer.uid);
    grpc::AddInsecureChannelFromFd(server_, n);
  }
}

void UnixListener::stop() {
  if (thread_.joinable()) {
    char c = 0;
    if (write(wake_[1], &c, 1) < 0) perror("medix-dp: API listener");
    thread_.join();
  }
  if (listen_fd_ >= 0) {
    close(listen_fd_);
    listen_fd_ = -1;
    unlink(path_.c_str());
  }
  for (int& fd : wake_)
    if (fd >= 0) close(fd), fd = -1;
}

}  // namespace medix::dp
