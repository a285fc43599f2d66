#pragma once
// Tunnels and their security associations: their entries in the table of object kinds (control/kinds.cpp).
#include "control/kinds.h"

namespace medix::dp {

extern const Kind tunnel_kind, sa_kind;

}  // namespace medix::dp
