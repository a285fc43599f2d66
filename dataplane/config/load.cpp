#include "config/load.h"

#include <fstream>
#include <sstream>

#include "common/json.h"
#include "config/settings.h"

namespace medix::dp {

std::variant<medix::dataplane::v1::Config, std::string> load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return path + ": cannot open the file";
  std::stringstream text;
  text << in.rdbuf();
  return load_text(text.str(), path);
}

std::variant<medix::dataplane::v1::Config, std::string> load_text(const std::string& text, const std::string& name) {
  medix::dataplane::v1::Config config;
  if (auto error = common::parse_json(text, config)) return name + ": " + *error;
  if (config.schema_version() != 1)
    return name + ": schema_version: " + std::to_string(config.schema_version()) + " is not supported (expected 1)";
  if (auto error = check_settings(config.settings())) return name + ": " + *error;
  return config;
}

}  // namespace medix::dp
