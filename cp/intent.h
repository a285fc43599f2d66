#pragma once
// medix-cp's intent (proto/medix/controller/v1/intent.proto): loading, defaults, validation.

#include <optional>
#include <string>

#include "medix/controller/v1/intent.pb.h"

namespace medixcp {

namespace c1 = medix::controller::v1;

// Reads a JSON intent file; fills defaults (tunnel name, identities) and validates it.
// Returns an error "FILE: field.path: reason", or nothing with `intent` filled.
std::optional<std::string> load_intent(const std::string& path, c1::Intent& intent);

// Defaults filled and every field checked; "" if valid, else "peers[2].psk: is required".
std::string validate_intent(c1::Intent& intent);

}  // namespace medixcp
