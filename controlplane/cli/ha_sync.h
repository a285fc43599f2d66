#pragma once
// medixctl ha-sync: the node's HA role (SetHaRole) and the state sync's status (GetHaSync).
#include "args.h"
#include "client.h"

namespace medix::ctl {

int ha_sync_command(Client& client, Args& args, bool json);

}  // namespace medix::ctl
