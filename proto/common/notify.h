#pragma once
// systemd's readiness protocol for the daemons (Type=notify units): READY=1 once they serve,
// STOPPING=1 when they begin to stop. Nothing happens outside systemd (no NOTIFY_SOCKET).
#include <string>

namespace medix::common {

void notify_ready(const std::string& status);
void notify_stopping();

}  // namespace medix::common
