#pragma once
// The daemons' log: one line an event, on stdout, flushed as written. Under systemd (stdout is
// the journal stream JOURNAL_STREAM names) each line starts with its syslog priority, "<6>",
// which journald takes as the line's level and strips; on a terminal or in a file the line is
// plain. Lines below the level set (--log-level) are not written. Never give it a key.
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace medix::common {

enum class LogLevel { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

// "error", "warning", "notice", "info" or "debug".
std::optional<LogLevel> parse_log_level(std::string_view name);
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);
// printf-style; the line's end is added.
void log(LogLevel level, const char* format, ...) __attribute__((format(printf, 2, 3)));

// At most `per_second` lines a second of one kind, so that a client or a flood cannot fill the
// log: allow() says whether to write one now, and how many were held back since the last.
class LogLimit {
 public:
  explicit LogLimit(unsigned per_second) : per_second_(per_second) {}
  bool allow(unsigned& held);

 private:
  std::mutex mutex_;
  unsigned per_second_, written_ = 0, held_ = 0;
  std::chrono::steady_clock::time_point second_{};
};

// " (N more like it were not logged)" for a line LogLimit let through after holding N; "" for 0.
std::string held_note(unsigned held);

}  // namespace medix::common
