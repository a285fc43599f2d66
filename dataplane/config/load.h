#pragma once
#include <string>
#include <variant>

#include "medix/dataplane/v1/objects.pb.h"

namespace medix::dp {

// Reads a config file: the JSON mapping of medix.dataplane.v1.Config. The syntax is checked
// here (an unknown field is an error), and the settings (check_settings, config/settings.h:
// they come only from the file); the objects are validated as the first transaction
// (control/intent.cpp), like any API request. Errors read "FILE: reason".
std::variant<medix::dataplane::v1::Config, std::string> load_file(const std::string& path);

// The same on a file's text (`name` heads the errors): what load_file does once it has read
// the file, and what the config fuzzer (test/fuzz/config.cpp) feeds.
std::variant<medix::dataplane::v1::Config, std::string> load_text(const std::string& text, const std::string& name);

}  // namespace medix::dp
