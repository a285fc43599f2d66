#pragma once
#include <string>
#include <variant>

#include "config/error.h"
#include "medix/dataplane/v1/objects.pb.h"

namespace medix::config {

// Reads a config file (the JSON mapping of medix.dataplane.v1.Config) and validates it.
// On failure the error's text reads "FILE: field.path: reason".
std::variant<medix::dataplane::v1::Config, std::string> load_file(const std::string& path);

}  // namespace medix::config
