#pragma once
// The words of a command line after the command, consumed left to right, and the two ways
// medixctl fails: a wrong command line (exit status 2) and a refusal or error (exit status 1).
#include <cctype>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace medix::ctl {

// Exit status 2: the command line is wrong.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Exit status 1: the server refused, or a file or the connection failed. `note` is printed on a
// line of its own after the message.
struct Failure : std::runtime_error {
  explicit Failure(const std::string& message, std::string note_ = {})
      : std::runtime_error(message), note(std::move(note_)) {}
  std::string note;
};

class Args {
 public:
  explicit Args(std::vector<std::string> words) : words_(std::move(words)) {}

  bool done() const { return next_ == words_.size(); }
  const std::string& peek() const { return words_.at(next_); }
  // True (and consumed) when the next word is `word`.
  bool take(const std::string& word) {
    if (done() || peek() != word) return false;
    next_++;
    return true;
  }
  // The next word; `what` names it in the error when there is none ("a tenant name").
  std::string next(const std::string& what) {
    if (done()) throw UsageError("missing " + what);
    return words_[next_++];
  }
  uint32_t next_u32(const std::string& what) { return to_u32(next(what), what); }
  void expect_done() const {
    if (!done()) throw UsageError("unexpected \"" + peek() + "\"");
  }

  // Decimal, or hexadecimal with 0x (a leading 0 is not octal: "010" is 10).
  static uint32_t to_u32(const std::string& text, const std::string& what) {
    bool hex = text.starts_with("0x") || text.starts_with("0X");
    std::string digits = hex ? text.substr(2) : text;
    size_t end = 0;
    unsigned long long value = 0;
    bool ok = !digits.empty() && std::isxdigit(static_cast<unsigned char>(digits[0]));
    if (ok) {
      try {
        value = std::stoull(digits, &end, hex ? 16 : 10);
      } catch (const std::exception&) {
        ok = false;
      }
    }
    if (!ok || end != digits.size() || value > UINT32_MAX)
      throw UsageError(what + ": \"" + text + "\" is not a number 0.." + std::to_string(UINT32_MAX));
    return static_cast<uint32_t>(value);
  }

 private:
  std::vector<std::string> words_;
  size_t next_ = 0;
};

}  // namespace medix::ctl
