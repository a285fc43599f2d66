#pragma once
// Ports and the interfaces on them: their entries in the table of object kinds (control/kinds.cpp).
#include "control/kinds.h"

namespace medix::dp {

extern const Kind port_kind, interface_kind;

// Whether `address` is on a subnet of one of the interface's addresses.
bool on_subnet(const v1::Interface& interface, uint32_t address);
// The interface's addresses as text ("10.1.0.1/24, 10.2.0.1/24"; "no address").
std::string subnets_of(const v1::Interface& interface);

}  // namespace medix::dp
