#include "common/notify.h"

#include <systemd/sd-daemon.h>

namespace medix::common {

void notify_ready(const std::string& status) { sd_notifyf(0, "READY=1\nSTATUS=%s", status.c_str()); }

void notify_stopping() { sd_notify(0, "STOPPING=1"); }

}  // namespace medix::common
