#pragma once
#include <string>
#include <variant>

#include "medix/dataplane/v1/objects.pb.h"

namespace medix::dp {

// Reads a config file: the JSON mapping of medix.dataplane.v1.Config. Only the syntax is
// checked here (an unknown field is an error); the objects are validated as the first
// transaction (control/intent.cpp), like any API request. Errors read "FILE: reason".
std::variant<medix::dataplane::v1::Config, std::string> load_file(const std::string& path);

}  // namespace medix::dp
