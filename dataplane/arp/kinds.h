#pragma once
// Static neighbours (learned ones are the ARP stage's): their entries in the table of object kinds (control/kinds.cpp).
#include "control/kinds.h"

namespace medix::dp {

extern const Kind neighbour_kind;

}  // namespace medix::dp
