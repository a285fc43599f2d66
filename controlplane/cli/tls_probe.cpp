#include "tls_probe.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace medix::ctl {

namespace {

constexpr int timeout_ms = 3000;

// HOST and PORT of "HOST:PORT", "[V6]:PORT", "dns:///HOST:PORT", "ipv4:HOST:PORT"; false for
// unix: and anything else.
bool split_target(std::string target, std::string& host, std::string& port) {
  for (const char* scheme : {"dns:///", "dns:", "ipv4:", "ipv6:"})
    if (target.starts_with(scheme)) target = target.substr(strlen(scheme));
  if (target.starts_with("unix:")) return false;
  size_t colon = target.rfind(':');
  if (colon == std::string::npos || colon + 1 == target.size()) return false;
  host = target.substr(0, colon), port = target.substr(colon + 1);
  if (host.starts_with('[') && host.ends_with(']')) host = host.substr(1, host.size() - 2);
  return !host.empty();
}

// A connected TCP socket, or -1 with `error` set (strerror of the last address tried).
int connect_to(const std::string& host, const std::string& port, std::string& error) {
  addrinfo hints{}, *found = nullptr;
  hints.ai_socktype = SOCK_STREAM;
  if (int e = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); e != 0) {
    error = gai_strerror(e);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = found; a && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
    if (fd < 0) continue;
    int rc = connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      int soerr = ETIMEDOUT;
      socklen_t len = sizeof soerr;
      if (poll(&p, 1, timeout_ms) == 1) getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len);
      errno = soerr;
      rc = soerr == 0 ? 0 : -1;
    }
    if (rc != 0) {
      error = strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  if (fd >= 0) {  // blocking from here, each read or write at most timeout_ms
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    timeval tv{timeout_ms / 1000, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  return fd;
}

// The first error found in the server's certificate (the handshake itself goes on: the probe
// wants to learn more than the first problem).
thread_local long first_verify_error = X509_V_OK;

int note_verify_error(int ok, X509_STORE_CTX* store) {
  if (!ok && first_verify_error == X509_V_OK) first_verify_error = X509_STORE_CTX_get_error(store);
  return 1;
}

bool is_ip(const std::string& host) {
  unsigned char buffer[16];
  return inet_pton(AF_INET, host.c_str(), buffer) == 1 || inet_pton(AF_INET6, host.c_str(), buffer) == 1;
}

// An alert that says the server did not take our certificate (or that we sent none).
bool refused_certificate(int reason) {
  switch (reason) {
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_EXPIRED:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_REVOKED:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV1_ALERT_DECRYPT_ERROR:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED: return true;
    default: return false;
  }
}

std::string refused(const Tls& tls) {
  if (tls.cert.empty())
    return "the server requires a client certificate signed by its client CA (give --tls-cert FILE and --tls-key "
           "FILE)";
  return "the server refused our certificate --tls-cert " + tls.cert + " (it requires one signed by its client CA)";
}

std::string server_certificate(long error, const std::string& host, const Tls& tls) {
  switch (error) {
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_IP_ADDRESS_MISMATCH:
      return "the server's certificate is not for " + host +
             " (name mismatch: connect by a name or address its certificate holds)";
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
      return tls.ca.empty() ? "the server's certificate is not signed by a CA this machine trusts (give --tls-ca FILE)"
                            : "the server's certificate is not signed by --tls-ca " + tls.ca;
    default: return std::string("the server's certificate does not verify: ") + X509_verify_cert_error_string(error);
  }
}

struct Free {
  void operator()(SSL_CTX* x) const { SSL_CTX_free(x); }
  void operator()(SSL* x) const { SSL_free(x); }
};

}  // namespace

std::string tls_failure_reason(const std::string& target, const Tls& tls) {
  std::string host, port, error;
  if (!split_target(target, host, port)) return "";
  std::string where = host + ":" + port;
  int fd = connect_to(host, port, error);
  if (fd < 0) return "cannot connect to " + where + ": " + error;

  std::unique_ptr<SSL_CTX, Free> ctx(SSL_CTX_new(TLS_client_method()));
  if (!ctx) {
    close(fd);
    return "";
  }
  SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_NONE, note_verify_error);
  // The files' errors name the file; OpenSSL's reason strings carry none of their contents.
  std::string file_error;
  if (!tls.ca.empty() && SSL_CTX_load_verify_locations(ctx.get(), tls.ca.c_str(), nullptr) != 1)
    file_error = "--tls-ca " + tls.ca + ": holds no PEM certificate";
  else if (tls.ca.empty())
    SSL_CTX_set_default_verify_paths(ctx.get());
  if (file_error.empty() && !tls.cert.empty() && SSL_CTX_use_certificate_chain_file(ctx.get(), tls.cert.c_str()) != 1)
    file_error = "--tls-cert " + tls.cert + ": holds no PEM certificate";
  if (file_error.empty() && !tls.key.empty() &&
      SSL_CTX_use_PrivateKey_file(ctx.get(), tls.key.c_str(), SSL_FILETYPE_PEM) != 1)
    file_error = "--tls-key " + tls.key + ": holds no PEM private key";
  if (file_error.empty() && !tls.key.empty() && SSL_CTX_check_private_key(ctx.get()) != 1)
    file_error = "--tls-key " + tls.key + " is not the key of --tls-cert " + tls.cert;
  if (!file_error.empty()) {
    ERR_clear_error();
    close(fd);
    return file_error;
  }
  static const unsigned char h2[] = {2, 'h', '2'};
  SSL_CTX_set_alpn_protos(ctx.get(), h2, sizeof h2);

  std::unique_ptr<SSL, Free> ssl(SSL_new(ctx.get()));
  SSL_set_fd(ssl.get(), fd);
  if (is_ip(host)) {
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl.get()), host.c_str());
  } else {
    SSL_set_tlsext_host_name(ssl.get(), host.c_str());
    SSL_set1_host(ssl.get(), host.c_str());
  }
  first_verify_error = X509_V_OK;
  ERR_clear_error();
  int connected = SSL_connect(ssl.get());
  unsigned long failure = connected == 1 ? 0 : ERR_peek_last_error();
  std::string reason;
  bool speaks_tls = connected == 1 || refused_certificate(ERR_GET_REASON(failure));
  if (!tls.enabled()) {
    // medixctl spoke plaintext to a TLS server (which then closes the connection at once).
    if (speaks_tls) reason = where + " serves TLS: give --tls-ca FILE, --tls-cert FILE and --tls-key FILE";
  } else if (first_verify_error != X509_V_OK) {
    reason = server_certificate(first_verify_error, host, tls);  // gRPC gives up on this first
  } else if (connected != 1) {
    int r = ERR_GET_REASON(failure);
    if (refused_certificate(r))
      reason = refused(tls);
    else if (r == SSL_R_WRONG_VERSION_NUMBER || r == SSL_R_PACKET_LENGTH_TOO_LONG)
      reason = where + " does not speak TLS (a plaintext server?)";
    else if (failure)
      reason = "the TLS handshake with " + where + " failed: " + ERR_reason_error_string(failure);
    else
      reason = "the server closed the connection during the TLS handshake";
  } else {
    // TLS 1.3: the server judges our certificate after our side of the handshake is done. A
    // gRPC server that took it sends its HTTP/2 settings; one that did not closes the
    // connection (gRPC with OpenSSL sends no alert), or alerts.
    ERR_clear_error();
    char byte;
    int n = SSL_read(ssl.get(), &byte, 1);
    if (n <= 0) {
      int kind = SSL_get_error(ssl.get(), n);
      int r = ERR_GET_REASON(ERR_peek_last_error());
      bool closed = kind == SSL_ERROR_ZERO_RETURN || (kind == SSL_ERROR_SYSCALL && errno != EAGAIN) ||
                    (kind == SSL_ERROR_SSL && r == SSL_R_UNEXPECTED_EOF_WHILE_READING);
      if (closed || (kind == SSL_ERROR_SSL && refused_certificate(r))) reason = refused(tls);
    }
  }
  ERR_clear_error();
  ssl.reset();
  close(fd);
  return reason;
}

}  // namespace medix::ctl
