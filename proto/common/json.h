#pragma once
// Config and intent files are JSON of the v1 messages, and they hold keys and PSKs: a file that
// does not parse is refused with the field and the reason, never with the text it holds.
#include <google/protobuf/message.h>

#include <optional>
#include <string>
#include <string_view>

namespace medix::common {

// Parses JSON text into `out` (a misspelt field is an error): nullopt, or the reason, which
// quotes none of the text.
std::optional<std::string> parse_json(const std::string& text, google::protobuf::Message& out);

// The common case of parse_json, fast (a million routes are 100 MB of JSON, which protobuf's
// parser reads at ~25 MB/s): JSON of plain ASCII strings, integers, booleans, enum names,
// messages and lists, each field once, by its proto name. True if it parsed all of `text`
// into `out`, which protobuf's parser would then have done identically; false for anything
// else (`out` is then partly set), which is left to protobuf's parser and its errors.
bool parse_json_fast(std::string_view text, google::protobuf::Message& out);

// protobuf's JSON parse error without what it quotes: the value of a field that does not parse
// (a bytes field is said not to be base64) and the lines of text around a syntax error.
std::string json_error(std::string_view protobuf_message);

}  // namespace medix::common
