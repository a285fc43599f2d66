#include "config/load.h"

#include <google/protobuf/util/json_util.h>

#include <fstream>
#include <sstream>

namespace medix::dp {

std::variant<medix::dataplane::v1::Config, std::string> load_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return path + ": cannot open the file";
  std::stringstream text;
  text << in.rdbuf();

  medix::dataplane::v1::Config config;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;  // a misspelt field is an error, not a silent default
  auto status = google::protobuf::util::JsonStringToMessage(text.str(), &config, options);
  if (!status.ok()) return path + ": " + std::string(status.message());
  if (config.schema_version() != 1)
    return path + ": schema_version: " + std::to_string(config.schema_version()) + " is not supported (expected 1)";
  return config;
}

}  // namespace medix::dp
