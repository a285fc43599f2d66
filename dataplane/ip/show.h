#pragma once
// What the API reads of the IP feature's tables: a tenant's effective FIB with the source of
// each prefix (GetFib), and a lookup followed across route leaks and the IX core (Lookup).
#include "control/commit.h"
#include "medix/dataplane/v1/dataplane.pb.h"

namespace medix::dp {

std::optional<Error> get_fib(const Intent& in, const Committer& c, const v1::GetFibRequest& request, uint32_t page,
                             v1::GetFibResponse& out);
std::optional<Error> lookup(const Intent& in, const Committer& c, const v1::LookupRequest& request,
                            v1::LookupResponse& out);

}  // namespace medix::dp
