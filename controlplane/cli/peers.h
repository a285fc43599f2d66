#pragma once
// medixctl's IKE views, from medix-cp's ControlPlane service (proto/medix/controlplane/v1):
//   peers                                   every peer: IKE and CHILD SA state, last error
//   peer NAME                               one peer in full: its SAs, selectors, counters, errors
//   peer NAME errors                        why IKE with it failed, oldest first
//   peer NAME initiate|terminate|rekey
//   intent show | intent apply FILE [--expected-version N] | intent status
//                                           medix-cp's intent, read, replaced whole, where it is kept
//   areas                                   every area's status: intent applied, BGP (docs/areas.md)
#include <string>

#include "args.h"
#include "medix/controlplane/v1/controlplane.pb.h"

namespace medix::ctl {

int peers_command(const std::string& target, bool json, const std::string& command, Args& args);
// medix-cp's version (throws ServerError if it does not answer).
medix::controlplane::v1::Version cp_version(const std::string& target);

}  // namespace medix::ctl
