#include "common/json.h"

#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

namespace medix::common {

std::string json_error(std::string_view protobuf_message) {
  // "(sas[0].cipher_key): ..." -> "sas[0].cipher_key: ...", as medix's own errors name fields.
  static const std::regex field(R"(^\(([^()]*)\): )");
  auto named = [](std::string text) {
    return std::regex_replace(text, field, "$1: ", std::regex_constants::format_first_only);
  };
  // "invalid value "..." for type TYPE_BYTES": a key is a bytes field. The value may hold any
  // character, line ends too (a JSON "\r" or "\n"), so it is cut out by its two ends, and
  // whatever follows the opening quote is dropped even when the end is not found.
  const std::string all(protobuf_message);
  if (size_t at = all.find("invalid value "); at != std::string::npos && all.find('\n') > at) {
    std::string why = "has a value that does not parse";
    size_t type_at = all.rfind(" for type TYPE_");
    if (type_at != std::string::npos && type_at > at) {
      std::string type = all.substr(type_at + 10);
      type = type.substr(0, type.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"));
      why = type == "TYPE_BYTES" ? "is not base64" : "is not a valid " + type.substr(5);
    }
    return named(all.substr(0, at)) + why + " (the value is not shown)";
  }
  // A syntax error quotes the text around it on the lines after the first.
  std::string first = named(all.substr(0, all.find('\n')));
  bool quoted_text = first.size() < all.size();
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
  if (parse_json_fast(text, out)) return std::nullopt;
  out.Clear();
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

namespace medix::common {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// A recursive-descent reader of the subset parse_json_fast takes; every method returns false
// on anything outside it.
class FastJson {
 public:
  explicit FastJson(std::string_view text) : p_(text.data()), end_(text.data() + text.size()) {}

  bool document(Message& out) {
    skip();
    if (!object(out, 0)) return false;
    skip();
    return p_ == end_;
  }

 private:
  static constexpr int max_depth = 32;

  void skip() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\t' || *p_ == '\r')) p_++;
  }
  bool eat(char c) {
    skip();
    if (p_ == end_ || *p_ != c) return false;
    p_++;
    return true;
  }
  bool peek(char c) {
    skip();
    return p_ < end_ && *p_ == c;
  }

  // A string of printable ASCII without escapes.
  bool string(std::string_view& out) {
    if (!eat('"')) return false;
    const char* start = p_;
    while (p_ < end_ && *p_ != '"') {
      unsigned char c = static_cast<unsigned char>(*p_);
      if (c < 0x20 || c >= 0x7f || c == '\\') return false;
      p_++;
    }
    if (p_ == end_) return false;
    out = std::string_view(start, size_t(p_ - start));
    p_++;
    return true;
  }

  // An integer in [min, max] written as JSON writes one (no sign but '-', no leading zero).
  bool integer(int64_t min, uint64_t max, bool& negative, uint64_t& magnitude) {
    skip();
    negative = p_ < end_ && *p_ == '-';
    if (negative) p_++;
    const char* start = p_;
    magnitude = 0;
    while (p_ < end_ && *p_ >= '0' && *p_ <= '9') {
      if (magnitude > (UINT64_MAX - 9) / 10) return false;
      magnitude = magnitude * 10 + uint64_t(*p_ - '0');
      p_++;
    }
    size_t digits = size_t(p_ - start);
    if (digits == 0 || (digits > 1 && *start == '0')) return false;
    if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
    if (negative) return magnitude != 0 && min < 0 && magnitude <= uint64_t(-(min + 1)) + 1;
    return magnitude <= max;
  }

  bool literal(std::string_view word) {
    skip();
    if (size_t(end_ - p_) < word.size() || std::string_view(p_, word.size()) != word) return false;
    p_ += word.size();
    return true;
  }

  bool object(Message& m, int depth) {
    if (depth > max_depth || !eat('{')) return false;
    const auto* descriptor = m.GetDescriptor();
    if (descriptor->file()->package() == "google.protobuf") return false;  // well-known types: their own JSON
    const Reflection* r = m.GetReflection();
    std::vector<const FieldDescriptor*> seen;
    if (eat('}')) return true;
    do {
      std::string_view key;
      if (!string(key) || !eat(':')) return false;
      const FieldDescriptor* f = descriptor->FindFieldByName(std::string(key));
      if (!f || f->is_map()) return false;
      for (const auto* s : seen)
        if (s == f || (f->containing_oneof() && s->containing_oneof() == f->containing_oneof())) return false;
      seen.push_back(f);
      if (f->is_repeated()) {
        if (!eat('[')) return false;
        if (eat(']')) continue;
        do {
          if (!value(m, r, f, depth)) return false;
        } while (eat(','));
        if (!eat(']')) return false;
      } else if (!value(m, r, f, depth)) {
        return false;
      }
    } while (eat(','));
    return eat('}');
  }

  // One value of field f (an element, if it is repeated).
  bool value(Message& m, const Reflection* r, const FieldDescriptor* f, int depth) {
    bool repeated = f->is_repeated(), negative = false;
    uint64_t n = 0;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string_view s;
        if (f->type() == FieldDescriptor::TYPE_BYTES || !string(s)) return false;
        repeated ? r->AddString(&m, f, std::string(s)) : r->SetString(&m, f, std::string(s));
        return true;
      }
      case FieldDescriptor::CPPTYPE_INT32:
        if (!integer(INT32_MIN, INT32_MAX, negative, n)) return false;
        {
          auto v = negative ? int32_t(-int64_t(n)) : int32_t(n);
          repeated ? r->AddInt32(&m, f, v) : r->SetInt32(&m, f, v);
        }
        return true;
      case FieldDescriptor::CPPTYPE_UINT32:
        if (!integer(0, UINT32_MAX, negative, n)) return false;
        repeated ? r->AddUInt32(&m, f, uint32_t(n)) : r->SetUInt32(&m, f, uint32_t(n));
        return true;
      case FieldDescriptor::CPPTYPE_INT64:
        // protobuf reads a JSON number through a double: exact only up to 2^53.
        if (!integer(-(int64_t(1) << 53), uint64_t(1) << 53, negative, n)) return false;
        {
          auto v = negative ? -int64_t(n) : int64_t(n);
          repeated ? r->AddInt64(&m, f, v) : r->SetInt64(&m, f, v);
        }
        return true;
      case FieldDescriptor::CPPTYPE_UINT64:
        if (!integer(0, uint64_t(1) << 53, negative, n)) return false;
        repeated ? r->AddUInt64(&m, f, n) : r->SetUInt64(&m, f, n);
        return true;
      case FieldDescriptor::CPPTYPE_BOOL: {
        bool v;
        if (literal("true"))
          v = true;
        else if (literal("false"))
          v = false;
        else
          return false;
        repeated ? r->AddBool(&m, f, v) : r->SetBool(&m, f, v);
        return true;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        std::string_view s;
        if (!string(s)) return false;
        const auto* v = f->enum_type()->FindValueByName(std::string(s));
        if (!v) return false;
        repeated ? r->AddEnum(&m, f, v) : r->SetEnum(&m, f, v);
        return true;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        if (!peek('{')) return false;
        return object(repeated ? *r->AddMessage(&m, f) : *r->MutableMessage(&m, f), depth + 1);
      default: return false;  // float, double: protobuf's own rules for them
    }
  }

  const char* p_;
  const char* end_;
};

}  // namespace

bool parse_json_fast(std::string_view text, google::protobuf::Message& out) { return FastJson(text).document(out); }

}  // namespace medix::common
