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
constexpr const char* peer_header = "medix-dp ha-peer 1";
// What a failed write stops, for its warning.
constexpr const char* unreserved =
    "outbound sequence numbers cannot be reserved: SAs at their reserved number send nothing (sa_seq_unreserved) "
    "until the file is written";
constexpr const char* unacked = "the peer's bound cannot be written: this standby acks no round until it is";
constexpr const char* unsent = "the peer's bound cannot be removed: this active sends no SA round until it is";

uint64_t realtime_ns() {
  return uint64_t(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count());
}

std::string system_error(const std::string& path, const char* what) {
  return path + ": " + what + ": " + strerror(errno);
}

}  // namespace

namespace {

// A file of "TUNNEL SPI NUMBER" lines under a header line (sa-seq, ha-peer); `fields` names the
// columns in errors.
std::optional<std::string> read_marks(const std::string& path, const char* head, const char* fields, SeqMarks& out) {
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
      if (strcmp(line, head) != 0)
        error =
            path + ":1: not a " + std::string(head).substr(0, strlen(head) - 2) + " file (\"" + head + "\" expected)";
      continue;
    }
    uint64_t tunnel = 0, mark = 0;
    uint32_t spi = 0;
    int used = 0;
    if (sscanf(line, "%" SCNx64 " %" SCNu32 " %" SCNu64 "%n", &tunnel, &spi, &mark, &used) != 3 || size_t(used) != len)
      error = path + ":" + std::to_string(n) + ": not \"" + fields + "\"";
    else
      out[{tunnel, spi}] = mark;
  }
  if (!error && ferror(f)) error = system_error(path, "cannot read it");
  if (!error && n == 0) error = path + ": empty (a file this node wrote is never empty)";
  fclose(f);
  if (error) out.clear();
  return error;
}

std::optional<std::string> sync_folder(const std::string& path) {
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

// Written whole to PATH.tmp, synced, renamed over PATH, the folder synced.
std::optional<std::string> write_marks(const std::string& path, const char* head, const SeqMarks& marks) {
  std::string text = std::string(head) + "\n";
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
  return sync_folder(path);
}

}  // namespace

std::optional<std::string> read_seq_file(const std::string& path, SeqMarks& out) {
  return read_marks(path, header, "TUNNEL SPI MARK", out);
}

std::optional<std::string> write_seq_file(const std::string& path, const SeqMarks& marks) {
  return write_marks(path, header, marks);
}

std::optional<std::string> read_peer_file(const std::string& path, SeqMarks& out) {
  return read_marks(path, peer_header, "TUNNEL SPI START", out);
}

std::optional<std::string> write_peer_file(const std::string& path, const SeqMarks& starts) {
  return write_marks(path, peer_header, starts);
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
  SeqMarks peer;
  std::string peer_path = dir + "/ha-peer";
  if (auto e = read_peer_file(peer_path, peer)) {
    path_.clear();
    return "--state-dir " + *e;
  }
  std::lock_guard lock(mutex_);
  marks_ = std::move(marks);
  peer_path_ = peer_path;
  peer_on_disk_ = peer_found_ = access(peer_path.c_str(), F_OK) == 0;
  proven_at_start_ = peer;
  peer_ = std::move(peer);
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
    failed(*error, unreserved, now_ns);
    return false;
  }
  succeeded(now_ns);
  marks_ = std::move(next);
  return true;
}

void Reserve::failed(const std::string& error, const char* effect, uint64_t now_ns) {
  s_.write_failures++;
  retry_ns_ = now_ns + retry_ns;
  if (!failing_since_ns_) {
    failing_since_ns_ = now_ns;
    medix::common::log(medix::common::LogLevel::warning, "medix-dp: %s: %s", error.c_str(), effect);
  }
  s_.error = error;
}

void Reserve::succeeded(uint64_t now_ns) {
  if (failing_since_ns_)
    medix::common::log(medix::common::LogLevel::notice, "medix-dp: %s written again after %lu ms", path_.c_str(),
                       (unsigned long)((now_ns - failing_since_ns_) / ms));
  failing_since_ns_ = 0;
  s_.error.clear();
  s_.writes++;
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

bool Reserve::start_sync(bool standby, PeerSas& peer) {
  if (!standby) return unprove();
  std::lock_guard lock(mutex_);
  for (const auto& [key, start] : proven_at_start_) peer.proven[{key.tunnel, key.spi, false}] = start;
  return true;
}

bool Reserve::prove(const std::vector<std::pair<SeqKey, uint64_t>>& starts, bool fenced, uint64_t now_ns) {
  if (!fenced) return unprove();
  std::lock_guard write_lock(write_mutex_);
  SeqMarks next;
  bool write;
  {
    std::lock_guard lock(mutex_);
    write = !peer_on_disk_;
    for (const auto& [key, start] : starts) {
      auto it = peer_.find(key);
      if (it == peer_.end() || it->second < start) write = true;
    }
    if (!write) return true;
    if (now_ns < retry_ns_) return false;
    // The round's SAs only: one the peer no longer has was not in this round, and an SA it makes
    // again gets its fence from a later ack, which writes it first.
    for (const auto& [key, start] : starts) {
      auto it = peer_.find(key);
      next[key] = std::max(it == peer_.end() ? 0 : it->second, start + block_);
    }
  }
  auto error = write_peer_file(peer_path_, next);
  std::lock_guard lock(mutex_);
  if (error) {
    failed(*error, unacked, now_ns);
    return false;
  }
  succeeded(now_ns);
  peer_ = std::move(next);
  peer_on_disk_ = true;
  peer_written_ns_ = now_ns;
  return true;
}

bool Reserve::unprove() {
  std::lock_guard write_lock(write_mutex_);
  uint64_t now_ns = realtime_ns();
  {
    std::lock_guard lock(mutex_);
    if (!peer_on_disk_) return true;
    if (now_ns < retry_ns_) return false;  // it failed a moment ago: not at every call
  }
  std::optional<std::string> error;
  if (unlink(peer_path_.c_str()) != 0 && errno != ENOENT)
    error = system_error(peer_path_, "cannot remove it");
  else
    error = sync_folder(peer_path_);
  std::lock_guard lock(mutex_);
  if (error) {
    failed(*error, unsent, now_ns);
    return false;
  }
  succeeded(now_ns);
  peer_.clear();
  peer_on_disk_ = false;
  return true;
}

ReserveStatus Reserve::status(uint64_t now_ns) const {
  if (!now_ns) now_ns = realtime_ns();
  std::lock_guard lock(mutex_);
  ReserveStatus out = s_;
  if (failing_since_ns_ && !s_.error.empty()) out.failing_ms = int64_t((now_ns - failing_since_ns_) / ms);
  out.peer_file = peer_path_;
  out.peer_found = peer_found_;
  out.peer_found_sas = proven_at_start_.size();
  out.peer_on_disk = peer_on_disk_;
  out.peer_sas = peer_on_disk_ ? peer_.size() : 0;
  if (peer_written_ns_) out.peer_written_ms = int64_t((now_ns - std::min(now_ns, peer_written_ns_)) / ms);
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
