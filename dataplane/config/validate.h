#pragma once
#include <optional>

#include "config/error.h"
#include "medix/dataplane/v1/objects.pb.h"

namespace medix::config {
using Config = medix::dataplane::v1::Config;

// Everything that can be checked without the ports: names, references, ranges, formats,
// duplicates. Returns the first problem found.
std::optional<ConfigError> validate(const Config& config);
}  // namespace medix::config
