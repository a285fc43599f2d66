#pragma once
// Control side: turns an SA object into the key schedules workers use.
#include <optional>
#include <string>

#include "ipsec/sa.h"
#include "medix/dataplane/v1/objects.pb.h"

void sa_setup(SaState& sa, const medix::dataplane::v1::SecurityAssociation& o, IMB_MGR* mgr);
