#pragma once
#include <string>

// What is wrong with a config (or an API request): where, as a field path like
// "interfaces[2].vlan", and why.
struct ConfigError {
  std::string path;
  std::string reason;
  std::string to_string() const { return path.empty() ? reason : path + ": " + reason; }
};
