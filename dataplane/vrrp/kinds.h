#pragma once
// VRRP: its object kind's entry in the table of kinds (control/kinds.cpp).
#include "control/kinds.h"

namespace medix::dp {

extern const Kind vrrp_instance_kind;

}  // namespace medix::dp
