#pragma once
// Tenants and their routes: their entries in the table of object kinds (control/kinds.cpp).
#include "control/kinds.h"

namespace medix::dp {

extern const Kind tenant_kind, route_kind;

}  // namespace medix::dp
