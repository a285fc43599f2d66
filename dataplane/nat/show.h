#pragma once
// What the API reads of the NAT feature's tables: the sessions crossing the core on every
// worker (ListSessions), filtered as the request asks.
#include <optional>

#include "control/intent.h"
#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::dp {

struct Dataplane;

// Checks the request's filters, then lists under the controller's lock (the generation it
// holds names the tenants and rules) what every worker's session table holds and has not
// timed out.
std::optional<Error> list_sessions(Dataplane& dp, const v1::ListSessionsRequest& request,
                                   v1::ListSessionsResponse& response);

}  // namespace medix::dp
