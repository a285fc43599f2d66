#include "probe.h"

#include <arpa/inet.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace medix::cp::dns {

namespace {

// Where knot_probe_data_t keeps what is read here (libknot/probe/data.h, Knot 3.2): the IP
// version (4 or 6), the query's source address, the reply's final RCODE (host order).
constexpr size_t off_ip = 0, off_remote = 20, off_rcode = 52, min_size = 88;
constexpr uint16_t rcode_nxdomain = 3, rcode_refused = 5;

// "100.64.1.0/24" as (network, mask); false if not a prefix or an address.
bool parse_net(const std::string& text, uint32_t& network, uint32_t& mask) {
  std::string address = text;
  int length = 32;
  if (auto slash = text.find('/'); slash != std::string::npos) {
    address = text.substr(0, slash);
    try {
      length = std::stoi(text.substr(slash + 1));
    } catch (...) {
      return false;
    }
    if (length < 0 || length > 32) return false;
  }
  in_addr a{};
  if (inet_pton(AF_INET, address.c_str(), &a) != 1) return false;
  mask = length ? ~uint32_t(0) << (32 - length) : 0;
  network = ntohl(a.s_addr) & mask;
  return true;
}

}  // namespace

bool probe_source(const uint8_t* data, size_t size, uint32_t& source, uint16_t& rcode) {
  if (size < min_size || data[off_ip] != 4) return false;
  source = uint32_t(data[off_remote]) << 24 | uint32_t(data[off_remote + 1]) << 16 |
           uint32_t(data[off_remote + 2]) << 8 | data[off_remote + 3];
  memcpy(&rcode, data + off_rcode, sizeof(rcode));
  return true;
}

std::string Probe::start() {
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd_ < 0) return std::string("socket: ") + strerror(errno);
  sockaddr_un path{};
  path.sun_family = AF_UNIX;
  std::string name = dir_ + "/probe01.sock";  // mod-probe's channel 1
  if (name.size() >= sizeof(path.sun_path)) return name + ": too long for a unix socket";
  memcpy(path.sun_path, name.c_str(), name.size() + 1);
  unlink(name.c_str());
  if (bind(fd_, reinterpret_cast<sockaddr*>(&path), sizeof(path)) != 0) return name + ": " + strerror(errno);
  // knotd (another user, usually) connects to it.
  chmod(name.c_str(), 0666);
  thread_ = std::thread([this] { run(); });
  return "";
}

void Probe::stop() {
  stopping_ = true;
  if (thread_.joinable()) thread_.join();
  if (fd_ >= 0) {
    close(fd_);
    unlink((dir_ + "/probe01.sock").c_str());
    fd_ = -1;
  }
}

void Probe::set_owners(const c1::Intent& intent) {
  std::vector<Owner> owners;
  for (const auto& m : intent.static_mappings()) {
    Owner o{0, 0, m.tenant()};
    if (parse_net(m.core_prefix(), o.network, o.mask)) owners.push_back(o);
  }
  for (const auto& p : intent.napt_pools())
    for (const auto& a : p.addresses()) {
      Owner o{0, 0, p.tenant()};
      if (parse_net(a, o.network, o.mask)) owners.push_back(o);
    }
  std::stable_sort(owners.begin(), owners.end(), [](const Owner& a, const Owner& b) { return a.mask > b.mask; });
  std::lock_guard lock(mu_);
  owners_ = std::move(owners);
}

std::string Probe::tenant_of(uint32_t address) const {
  for (const auto& o : owners_)
    if ((address & o.mask) == o.network) return o.tenant;
  return "";
}

std::map<std::string, TenantQueries> Probe::counts() const {
  std::lock_guard lock(mu_);
  return counts_;
}

void Probe::run() {
  uint8_t buf[512];
  while (!stopping_) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 200) <= 0) continue;
    // Everything queued, then the counts under one lock.
    for (int i = 0; i < 256; i++) {
      ssize_t n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
      if (n <= 0) break;
      uint32_t source = 0;
      uint16_t rcode = 0;
      if (!probe_source(buf, size_t(n), source, rcode)) continue;
      std::lock_guard lock(mu_);
      TenantQueries& c = counts_[tenant_of(source)];
      c.queries++;
      if (rcode == rcode_nxdomain) c.nxdomain++;
      if (rcode == rcode_refused) c.refused++;
    }
  }
}

}  // namespace medix::cp::dns
