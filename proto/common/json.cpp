#include "common/json.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

namespace medix::common {

std::string json_error(std::string_view protobuf_message) {
  // A syntax error quotes the text around it on the lines after the first.
  std::string first(protobuf_message.substr(0, protobuf_message.find('\n')));
  bool quoted_text = first.size() < protobuf_message.size();
  // "(sas[0].cipher_key): ..." -> "sas[0].cipher_key: ...", as medix's own errors name fields.
  static const std::regex field(R"(^\(([^()]*)\): )");
  first = std::regex_replace(first, field, "$1: ", std::regex_constants::format_first_only);
  // "invalid value "..." for type TYPE_BYTES": a key is a bytes field.
  static const std::regex value(R"(invalid value .* for type (TYPE_[A-Z0-9]+))");
  std::smatch m;
  if (std::regex_search(first, m, value)) {
    std::string type = m[1].str();
    std::string why = type == "TYPE_BYTES" ? "is not base64" : "is not a valid " + type.substr(5);
    return m.prefix().str() + why + " (the value is not shown)";
  }
  return quoted_text ? first + " (the text around it is not shown)" : first;
}

namespace {

// Where a syntax error is, from the excerpt protobuf quotes ("message\nexcerpt\n   ^"):
// " at line L, column C", or nothing if the excerpt is not found in the text.
std::string position(const std::string& text, std::string_view message) {
  size_t first = message.find('\n');
  size_t second = first == std::string_view::npos ? first : message.find('\n', first + 1);
  if (second == std::string_view::npos) return "";
  std::string excerpt(message.substr(first + 1, second - first - 1));
  size_t caret = message.find('^', second + 1);
  size_t at = text.find(excerpt);
  if (excerpt.empty() || caret == std::string_view::npos || at == std::string::npos) return "";
  size_t offset = at + (caret - second - 1);
  size_t line = 1 + size_t(std::count(text.begin(), text.begin() + long(std::min(offset, text.size())), '\n'));
  size_t line_start = text.rfind('\n', offset == 0 ? 0 : offset - 1);
  size_t column = line_start == std::string::npos ? offset + 1 : offset - line_start;
  return " at line " + std::to_string(line) + ", column " + std::to_string(column);
}

// Edit distance between two field names (insertions, deletions, substitutions).
size_t distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); j++) row[j] = j;
  for (size_t i = 1; i <= a.size(); i++) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); j++) {
      size_t next = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1])});
      diagonal = row[j];
      row[j] = next;
    }
  }
  return row[b.size()];
}

// "(interfaces[0]) vlna: Cannot find field." -> "interfaces[0].vlna: no such field (did you
// mean "vlan"?)": the message at the path is walked to from `root`, and its closest field
// name is suggested when it is close enough to be a typo.
std::optional<std::string> unknown_field(const std::string& reason, const google::protobuf::Descriptor* root) {
  static const std::regex unknown(R"(^(?:\(([^()]*)\) )?([^ :]+): Cannot find field\.$)");
  std::smatch m;
  if (!std::regex_match(reason, m, unknown)) return std::nullopt;
  std::string path = m[1].str(), name = m[2].str();
  const google::protobuf::Descriptor* at = root;
  std::stringstream segments(path);
  for (std::string segment; at && std::getline(segments, segment, '.');) {
    const auto* f = at->FindFieldByName(segment.substr(0, segment.find('[')));
    at = f ? f->message_type() : nullptr;
  }
  std::string out = (path.empty() ? "" : path + ".") + name + ": no such field";
  if (!at) return out;
  std::string best;
  size_t best_distance = 3;  // a typo, not another word
  for (int i = 0; i < at->field_count(); i++) {
    size_t d = distance(name, at->field(i)->name());
    if (d < best_distance) best_distance = d, best = at->field(i)->name();
  }
  return best.empty() ? out : out + " (did you mean \"" + best + "\"?)";
}

// What protobuf's parser lets pass in text it accepted: a key given twice in one object (the
// last would silently win) and a trailing comma. The reason names the path and the position.
std::optional<std::string> strict(const std::string& text) {
  struct Frame {
    bool object;
    std::string path;
    std::set<std::string> keys;
    int index = 0;
  };
  std::vector<Frame> stack;
  std::string key;                        // the last key read in the innermost object
  bool expect_key = false;                // the next string of an object is a key
  size_t last_comma = std::string::npos;  // a comma with nothing significant after it yet
  auto where = [&](size_t at) {
    size_t line = 1 + size_t(std::count(text.begin(), text.begin() + long(at), '\n'));
    size_t start = text.rfind('\n', at == 0 ? 0 : at - 1);
    size_t column = start == std::string::npos ? at + 1 : at - start;
    return " (line " + std::to_string(line) + ", column " + std::to_string(column) + ")";
  };
  auto child = [&]() -> std::string {
    if (stack.empty()) return "";
    const Frame& f = stack.back();
    if (f.object) return f.path.empty() ? key : f.path + "." + key;
    return f.path + "[" + std::to_string(f.index) + "]";
  };
  for (size_t i = 0; i < text.size(); i++) {
    char c = text[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
    if ((c == '}' || c == ']') && last_comma != std::string::npos)
      return (stack.empty() || stack.back().path.empty() ? std::string("the top level") : stack.back().path) +
             ": a trailing comma" + where(last_comma);
    if (c != ',') last_comma = std::string::npos;
    if (c == '"') {
      size_t start = i;
      std::string value;
      for (i++; i < text.size() && text[i] != '"'; i++) {
        if (text[i] == '\\')
          i++;  // an escape: its next character is not the end
        else
          value += text[i];
      }
      if (expect_key && !stack.empty() && stack.back().object) {
        key = value;
        if (!stack.back().keys.insert(key).second) return child() + ": given twice" + where(start);
        expect_key = false;
      }
    } else if (c == '{' || c == '[') {
      std::string path = child();
      stack.push_back({c == '{', path, {}, 0});
      expect_key = c == '{';
    } else if (c == '}' || c == ']') {
      if (stack.empty()) return std::nullopt;  // protobuf took it: nothing more to say
      stack.pop_back();
      expect_key = false;
    } else if (c == ',') {
      last_comma = i;
      if (!stack.empty()) {
        stack.back().index++;
        expect_key = stack.back().object;
      }
    }
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> parse_json(const std::string& text, google::protobuf::Message& out) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field is an error, not a silent default
  auto status = google::protobuf::util::JsonStringToMessage(text, &out, options);
  if (status.ok()) return strict(text);
  std::string message(status.message());
  if (auto unknown = unknown_field(message, out.GetDescriptor())) return unknown;
  std::string reason = json_error(message);
  std::string where = position(text, message);
  if (where.empty()) return reason;
  // "Unexpected token. (the text around it is not shown)" -> "Unexpected token at line 3, ..."
  size_t cut = reason.find(" (the text around it is not shown)");
  std::string what = reason.substr(0, cut);
  if (!what.empty() && what.back() == '.') what.pop_back();
  return what + where + (cut == std::string::npos ? "" : reason.substr(cut));
}

}  // namespace medix::common
