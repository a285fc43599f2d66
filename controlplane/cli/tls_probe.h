#pragma once
// Why a TLS connection to medix-dp failed: gRPC says only "UNAVAILABLE: Socket closed" or the
// like. On such a failure medixctl makes one TLS handshake of its own (OpenSSL) with the same
// files and tells what went wrong: nothing listens, the server's certificate is not signed by
// --tls-ca or is for another name, or the server refused our certificate (or its absence).
#include <string>

#include "client.h"

namespace medix::ctl {

// One line, or "" when the handshake succeeds (the failure is not TLS's) or `target` is not
// HOST:PORT. Names files and hosts, never what they hold.
std::string tls_failure_reason(const std::string& target, const Tls& tls);

}  // namespace medix::ctl
