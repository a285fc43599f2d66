#include "config/load.h"

#include <fstream>
#include <sstream>

#include "common/json.h"

namespace medix::dp {

std::variant<medix::dataplane::v1::Config, std::string> load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return path + ": cannot open the file";
  std::stringstream text;
  text << in.rdbuf();

  medix::dataplane::v1::Config config;
  if (auto error = common::parse_json(text.str(), config)) return path + ": " + *error;
  if (config.schema_version() != 1)
    return path + ": schema_version: " + std::to_string(config.schema_version()) + " is not supported (expected 1)";
  return config;
}

}  // namespace medix::dp
