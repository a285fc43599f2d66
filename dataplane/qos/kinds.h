#pragma once
// QoS: its object kinds' entries in the table of kinds (control/kinds.cpp).
#include "control/kinds.h"

namespace medix::dp {

extern const Kind policer_kind;
extern const Kind shaper_kind;

}  // namespace medix::dp
