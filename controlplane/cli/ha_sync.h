#pragma once
// medixctl ha-sync and ha: the node's HA role (SetHaRole) and the state sync's status (GetHaSync).
#include <string>

#include "args.h"
#include "client.h"

namespace medix::ctl {

int ha_sync_command(Client& client, Args& args, bool json);
// medixctl ha: the pair at a glance: role, peer, sync, medix-cp's IKE witness (at cp_target),
// config check, failovers, then VRRP.
int ha_command(Client& client, const std::string& cp_target, Args& args, bool json);

}  // namespace medix::ctl
