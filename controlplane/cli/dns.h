#pragma once
// medixctl's view of the IX's names, from medix-cp's intent (which medix-cp keeps Knot DNS equal
// to; docs/dns.md):
//   dns [zones]                  each zone: forward (the intent's) or reverse (the core's), records
//   dns records [ZONE]           every record Knot serves, SOA and NS and PTRs included
//   dns resolve TENANT NAME      the answer a host of TENANT gets for NAME (CNAMEs followed)
#include <string>

#include "args.h"

namespace medix::ctl {

int dns_command(const std::string& cp_target, bool json, Args& args);

}  // namespace medix::ctl
