#pragma once
// medixctl trace: the StartTrace, GetTrace and ClearTrace RPCs — each stage's decision about
// the next N packets that match capture's filter, printed a block a packet (VPP's `show trace`).
#include <ostream>

#include "args.h"
#include "client.h"

namespace medix::ctl {

// "Packet 3 (lcore 1, TIME)" then a line a stage: its name, then what it decided.
void print_trace(std::ostream& out, const v1::GetTraceResponse& trace);

int trace_command(Client& client, Args& args, bool json);

}  // namespace medix::ctl
