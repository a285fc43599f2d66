#include "common/version.h"

#include "common/git_version.h"  // written at build time (meson's vcs_tag)

#include <chrono>

namespace medix::common {
namespace {

// Set as the program loads, before main.
const unsigned long long started = static_cast<unsigned long long>(
    std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());

}  // namespace

const char* version() { return MEDIX_VERSION; }

unsigned long long started_unix_ns() { return started; }

}  // namespace medix::common
