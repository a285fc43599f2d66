#pragma once
// Ports and the interfaces on them: their entries in the table of object kinds (control/kinds.cpp).
#include "control/kinds.h"

namespace medix::dp {

extern const Kind port_kind, interface_kind;

}  // namespace medix::dp
