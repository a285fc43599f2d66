#pragma once
// medix's version, as the three binaries' --version print it: the project version and the
// git commit it was built from ("0.1.0 (git 2e266cc)"; "+" after the commit: local changes).
namespace medix::common {

const char* version();
// When the process started (Unix time, ns): for uptimes.
unsigned long long started_unix_ns();

}  // namespace medix::common
