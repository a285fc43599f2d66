// Outbound sequence numbers reserved on disk: the state file and the thread that writes it.
#include "ha/reserve.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <set>
#include <system_error>

#include "common/log.h"
#include "runtime/dataplane.h"

namespace medix::dp::ha {

namespace {

constexpr uint64_t ms = 1000000;
constexpr uint64_t retry_ns = 100 * ms;  // after a failed write
constexpr size_t kept_absent = 4096;     // marks of SAs no longer live kept in the file
constexpr const char* header = "medix-dp sa-seq 1";

uint64_t realtime_ns() {
  return uint64_t(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

std::string system_error(const std::string& path, const char* what) {
  return path + ": " + what + ": " + strerror(errno);
}

}  // namespace

std::optional<std::string> read_seq_file(const std::string& path, SeqMarks& out) {
  out.clear();
  FILE* f = fopen(path.c_str(), "re");
  if (!f) {
    if (errno == ENOENT) return std::nullopt;
    return system_error(path, "cannot read it");
  }
  char line[256];
  unsigned n = 0;
  std::optional<std::string> error;
  while (!error && fgets(line, sizeof line, f)) {
    n++;
    size_t len = strlen(line);
    if (len && line[len - 1] == '\n') line[--len] = 0;
    if (n == 1) {
      if (strcmp(line, header) != 0) error = path + ":1: not a medix-dp sa-seq file (\"" + header + "\" expected)";
      continue;
    }
    uint64_t tunnel = 0, mark = 0;
    uint32_t spi = 0;
    int used = 0;
    if (sscanf(line, "%" SCNx64 " %" SCNu32 " %" SCNu64 "%n", &tunnel, &spi, &mark, &used) != 3 || size_t(used) != len)
      error = path + ":" + std::to_string(n) + ": not \"TUNNEL SPI MARK\"";
    else
      out[{tunnel, spi}] = mark;
  }
  if (!error && ferror(f)) error = system_error(path, "cannot read it");
  if (!error && n == 0) error = path + ": empty (a file this node wrote is never empty)";
  fclose(f);
  if (error) out.clear();
  return error;
}

std::optional<std::string> write_seq_file(const std::string& path, const SeqMarks& marks) {
  std::string text = std::string(header) + "\n";
  char line[96];
  for (const auto& [key, mark] : marks) {
    snprintf(line, sizeof line, "%" PRIx64 " %" PRIu32 " %" PRIu64 "\n", key.tunnel, key.spi, mark);
    text += line;
  }
  std::string tmp = path + ".tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return system_error(tmp, "cannot create it");
  size_t at = 0;
  while (at < text.size()) {
    ssize_t n = ::write(fd, text.data() + at, text.size() - at);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      std::string e = system_error(tmp, "cannot write it");
      close(fd);
      unlink(tmp.c_str());
      return e;
    }
    at += size_t(n);
  }
  if (fsync(fd) != 0) {
    std::string e = system_error(tmp, "cannot sync it");
    close(fd);
    unlink(tmp.c_str());
    return e;
  }
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    std::string e = system_error(path, "cannot replace it");
    unlink(tmp.c_str());
    return e;
  }
  std::string dir = path.substr(0, path.rfind('/') == std::string::npos ? 0 : path.rfind('/'));
  int dfd = open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0 || fsync(dfd) != 0) {
    std::string e = system_error(dir, "cannot sync the folder");
    if (dfd >= 0) close(dfd);
    return e;
  }
  close(dfd);
  return std::nullopt;
}

std::optional<std::string> Reserve::open(const std::string& dir, uint64_t block) {
  if (dir.empty()) return std::string("--state-dir: a folder is required");
  path_ = dir + "/sa-seq";
  block_ = block;
  SeqMarks marks;
  if (auto e = read_seq_file(path_, marks)) {
    path_.clear();
    return "--state-dir " + *e;
  }
  std::lock_guard lock(mutex_);
  marks_ = std::move(marks);
  s_.configured = true;
  s_.file = path_;
  s_.block = block_;
  return std::nullopt;
}

uint64_t Reserve::start_of(uint64_t tunnel, uint32_t spi) const {
  std::lock_guard lock(mutex_);
  auto it = marks_.find({tunnel, spi});
  return it == marks_.end() ? 0 : it->second;
}

SeqMarks Reserve::plan(SaState* const* sas, uint32_t slots, std::vector<SeqKey>& live) {
  SeqMarks wants;
  uint64_t n = 0, waiting = 0;
  std::lock_guard lock(mutex_);
  for (uint32_t slot = 1; slot < slots; slot++) {
    const SaState* sa = sas[slot];
    if (!sa || sa->inbound) continue;
    uint64_t reserved = __atomic_load_n(&sa->reserved, __ATOMIC_RELAXED);
    if (reserved == UINT64_MAX) continue;  // made before the reservation was on (never: a test's)
    uint64_t seq = __atomic_load_n(&sa->seq, __ATOMIC_RELAXED);
    SeqKey key{sa->tunnel_id, sa->spi};
    live.push_back(key);
    n++;
    if (seq >= reserved) waiting++;
    // Less than half a block left: the next block, from where the SA is (a takeover may have
    // moved it past its reservation).
    if (seq + block_ / 2 > reserved) {
      uint64_t want = std::max(seq, reserved) + block_;
      auto it = marks_.find(key);
      if (it == marks_.end() || it->second < want) {
        uint64_t& w = wants[key];
        w = std::max(w, want);
      }
    }
  }
  s_.sas = n;
  s_.sas_waiting = waiting;
  return wants;
}

bool Reserve::raise(const SeqMarks& wants, const std::vector<SeqKey>* live, uint64_t now_ns) {
  std::lock_guard write_lock(write_mutex_);
  SeqMarks next;
  {
    std::lock_guard lock(mutex_);
    if (now_ns < retry_ns_) return false;  // it failed a moment ago: not at every pass
    next = marks_;
  }
  bool more = false;
  for (const auto& [key, want] : wants) {
    uint64_t& m = next[key];
    if (want > m) {
      m = want;
      more = true;
    }
  }
  if (!more) return true;
  if (live && next.size() > live->size() + kept_absent) {
    // The marks of SAs gone (rekeyed CHILD_SAs): the oldest first, in the map's order.
    std::set<SeqKey> alive(live->begin(), live->end());
    for (auto it = next.begin(); it != next.end() && next.size() > live->size() + kept_absent;)
      it = alive.count(it->first) ? std::next(it) : next.erase(it);
  }
  auto error = write_seq_file(path_, next);
  std::lock_guard lock(mutex_);
  if (error) {
    s_.write_failures++;
    retry_ns_ = now_ns + retry_ns;
    if (!failing_since_ns_) {
      failing_since_ns_ = now_ns;
      medix::common::log(medix::common::LogLevel::warning,
                         "medix-dp: outbound sequence numbers cannot be reserved: %s: SAs at their reserved "
                         "number send nothing (sa_seq_unreserved) until the file is written",
                         error->c_str());
    }
    s_.error = *error;
    return false;
  }
  if (failing_since_ns_)
    medix::common::log(medix::common::LogLevel::notice, "medix-dp: %s written again after %lu ms", path_.c_str(),
                       (unsigned long)((now_ns - failing_since_ns_) / ms));
  failing_since_ns_ = 0;
  s_.error.clear();
  s_.writes++;
  marks_ = std::move(next);
  return true;
}

void Reserve::publish(SaState* const* sas, uint32_t slots) const {
  std::lock_guard lock(mutex_);
  for (uint32_t slot = 1; slot < slots; slot++) {
    SaState* sa = sas[slot];
    if (!sa || sa->inbound) continue;
    uint64_t reserved = __atomic_load_n(&sa->reserved, __ATOMIC_RELAXED);
    if (reserved == UINT64_MAX) continue;
    auto it = marks_.find({sa->tunnel_id, sa->spi});
    // What the file holds is durable: the SA may send up to it.
    if (it != marks_.end() && it->second > reserved) __atomic_store_n(&sa->reserved, it->second, __ATOMIC_RELAXED);
  }
}

void Reserve::pass(SaState* const* sas, uint32_t slots, uint64_t now_ns) {
  std::vector<SeqKey> live;
  SeqMarks wants = plan(sas, slots, live);
  if (!wants.empty()) raise(wants, &live, now_ns);
  publish(sas, slots);
}

bool Reserve::cover(SaState* const* sas, uint32_t slots, const std::vector<std::pair<SeqKey, uint64_t>>& floors,
                    uint64_t now_ns) {
  SeqMarks wants;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [key, floor] : floors) {
      auto it = marks_.find(key);
      if (it == marks_.end() || it->second < floor) wants[key] = floor + block_;
    }
  }
  if (!wants.empty() && !raise(wants, nullptr, now_ns)) return false;
  if (sas) publish(sas, slots);
  return true;
}

ReserveStatus Reserve::status(uint64_t now_ns) const {
  if (!now_ns) now_ns = realtime_ns();
  std::lock_guard lock(mutex_);
  ReserveStatus out = s_;
  if (failing_since_ns_ && !s_.error.empty()) out.failing_ms = int64_t((now_ns - failing_since_ns_) / ms);
  return out;
}

std::optional<std::string> Reserve::start(Dataplane& dp) {
  auto once = [this, &dp] {
    std::vector<SeqKey> live;
    uint64_t now = realtime_ns();
    // The table is read under the controller's lock, the file written outside it.
    SeqMarks wants = dp.controller.read([&](auto&, auto& c, uint64_t) {
      const Tables& t = *c.current();
      return t.sas ? plan(t.sas, max_sas, live) : SeqMarks{};
    });
    if (!wants.empty()) raise(wants, &live, now);
    dp.controller.read([&](auto&, auto& c, uint64_t) {
      const Tables& t = *c.current();
      if (t.sas) publish(t.sas, max_sas);
    });
  };
  once();
  try {
    thread_ = std::thread([this, once] {
      while (!stopping_.load()) {
        once();
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
    });
  } catch (const std::system_error& e) {
    return std::string("--state-dir: cannot start the thread that writes ") + path_ + ": " + e.what();
  }
  return std::nullopt;
}

void Reserve::stop() {
  if (thread_.joinable()) {
    stopping_.store(true);
    thread_.join();
  }
}

}  // namespace medix::dp::ha
