#include "common/log.h"

#include <sys/stat.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <utility>

namespace medix::common {
namespace {

std::atomic<int> threshold{int(LogLevel::info)};
std::mutex write_mutex;  // lines of several threads do not interleave

// Whether stdout is the journal stream systemd gave us ("device:inode" in JOURNAL_STREAM).
bool to_journal() {
  static const bool journal = [] {
    const char* stream = getenv("JOURNAL_STREAM");
    struct stat st {};
    if (!stream || fstat(fileno(stdout), &st) != 0) return false;
    return std::string(stream) == std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  }();
  return journal;
}

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view name) {
  if (name == "error") return LogLevel::error;
  if (name == "warning") return LogLevel::warning;
  if (name == "notice") return LogLevel::notice;
  if (name == "info") return LogLevel::info;
  if (name == "debug") return LogLevel::debug;
  return std::nullopt;
}

void set_log_level(LogLevel level) { threshold = int(level); }

bool log_enabled(LogLevel level) { return int(level) <= threshold; }

void log(LogLevel level, const char* format, ...) {
  if (!log_enabled(level)) return;
  char line[2048];
  va_list args;
  va_start(args, format);
  vsnprintf(line, sizeof line, format, args);
  va_end(args);
  std::lock_guard lock(write_mutex);
  if (to_journal()) fprintf(stdout, "<%d>", int(level));
  fprintf(stdout, "%s\n", line);
  fflush(stdout);
}

std::string held_note(unsigned held) {
  return held ? " (" + std::to_string(held) + " more like it were not logged)" : "";
}

bool LogLimit::allow(unsigned& held) {
  std::lock_guard lock(mutex_);
  auto now = std::chrono::steady_clock::now();
  if (now - second_ >= std::chrono::seconds(1)) second_ = now, written_ = 0;
  if (written_ >= per_second_) {
    held_++;
    return false;
  }
  written_++;
  held = std::exchange(held_, 0);
  return true;
}

}  // namespace medix::common
