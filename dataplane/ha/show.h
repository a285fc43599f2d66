#pragma once
// What the API reads of HA: GetHaSync.
#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::dp {

struct Dataplane;

void fill_ha_sync(Dataplane& dp, medix::dataplane::v1::HaSyncStatus& out);

}  // namespace medix::dp
