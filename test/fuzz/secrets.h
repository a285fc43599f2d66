#pragma once
// What the config, apply and intent fuzzers check of every error: it does not quote a key or a
// PSK of the input. The message holding the value's text is not enough (the fuzzer learns the
// messages' words and puts them in keys): the value is changed in the input, keeping its
// length and alphabet, and the message quotes it if the message for that input no longer
// holds it.
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace fuzz {

// Another value of the same length and alphabet: letters and digits rotate (a->b, z->a, 9->0),
// so base64 stays base64; other bytes stay (flipping them could make a quote or a backslash,
// or break a UTF-8 sequence, and so another error: a false finding).
inline void disguise(std::string& text, size_t at, size_t len) {
  for (size_t i = at; i < at + len && i < text.size(); i++) {
    char& c = text[i];
    if (c >= 'a' && c <= 'z')
      c = c == 'z' ? 'a' : char(c + 1);
    else if (c >= 'A' && c <= 'Z')
      c = c == 'Z' ? 'A' : char(c + 1);
    else if (c >= '0' && c <= '9')
      c = c == '9' ? '0' : char(c + 1);
  }
}

// Aborts (a finding) if `message`, the error for `input`, quotes the bytes [at, at + len) of
// it. `message_of` gives the error for another input.
template <typename F>
void check_not_quoted(const std::string& message, const std::string& input, size_t at, size_t len, F&& message_of,
                      const char* what) {
  if (len < 8 || at + len > input.size()) return;
  std::string secret = input.substr(at, len);
  if (message.find(secret) == std::string::npos) return;
  std::string changed = input;
  disguise(changed, at, len);
  if (message_of(changed).find(secret) != std::string::npos) return;  // the message's own words
  fprintf(stderr, "fuzz: the error quotes a %s of the input: %s\n", what, message.c_str());
  abort();
}

// Where the string values of JSON keys ending in `suffix` ("_key", "psk") are in the text, as
// written (no unescaping: what a careless error would quote): f(offset, length).
template <typename F>
void each_json_value(std::string_view text, std::string_view suffix, F&& f) {
  std::string pattern = std::string(suffix) + "\"";
  auto space = [&](size_t i) { return text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'; };
  for (size_t at = text.find(pattern); at != std::string_view::npos; at = text.find(pattern, at + 1)) {
    size_t i = at + pattern.size();
    while (i < text.size() && space(i)) i++;
    if (i >= text.size() || text[i] != ':') continue;
    for (i++; i < text.size() && space(i);) i++;
    if (i >= text.size() || text[i] != '"') continue;
    size_t end = text.find('"', i + 1);
    if (end == std::string_view::npos) end = text.size();
    f(i + 1, end - i - 1);
  }
}

}  // namespace fuzz
