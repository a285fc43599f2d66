#pragma once
// What the API reads of VRRP: each instance's state from the runner (GetVrrp).
#include "medix/dataplane/v1/dataplane.pb.h"
#include "tables/tables.h"
#include "vrrp/runner.h"

namespace medix::dp::vrrp {

// `t` names the instances' interfaces and groups (the caller holds the controller's lock).
void show(const Runner& runner, const dp::Tables& t, uint64_t ring_full, medix::dataplane::v1::GetVrrpResponse& out);

}  // namespace medix::dp::vrrp
