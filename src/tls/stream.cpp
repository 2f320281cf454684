// stream.cpp — see stream.h.
#include "tls/stream.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstring>

#include "tls/openssl_error.h"

namespace tls {
namespace {

bool is_ip_literal(const std::string& name) {
  unsigned char address[16];
  return ::inet_pton(AF_INET, name.c_str(), address) == 1 ||
         ::inet_pton(AF_INET6, name.c_str(), address) == 1;
}

Result error_result(std::string reason) {
  return Result{Status::kError, 0, std::move(reason)};
}

}  // namespace

base::Expected<Stream, std::string> Stream::open(SSL_CTX* context, int fd, Side side) {
  ERR_clear_error();
  Stream stream;
  stream.ssl_.reset(SSL_new(context));
  if (!stream.ssl_ || SSL_set_fd(stream.ssl_.get(), fd) != 1) {
    return base::unexpected(last_error_reason());
  }
  if (side == Side::kServer) {
    SSL_set_mode(stream.ssl_.get(), SSL_MODE_RELEASE_BUFFERS);
    // A record's header and body in one read(2), with what follows it: a pipelining client's
    // records cost one system call, not two each. Still OpenSSL's own buffer (read() drains
    // it before it asks for the socket again), so nothing read ahead is ever plaintext.
    SSL_set_read_ahead(stream.ssl_.get(), 1);
    SSL_set_accept_state(stream.ssl_.get());
  } else {
    SSL_set_connect_state(stream.ssl_.get());
  }
  return stream;
}

bool Stream::set_server_name(const std::string& name) {
  if (name.empty() || is_ip_literal(name)) return true;
  ERR_clear_error();
  bool set = SSL_set_tlsext_host_name(ssl_.get(), name.c_str()) == 1;
  ERR_clear_error();
  return set;
}

bool Stream::expect_peer_name(const std::string& name) {
  ERR_clear_error();
  bool set = is_ip_literal(name)
                 ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_.get()), name.c_str()) == 1
                 : SSL_set1_host(ssl_.get(), name.c_str()) == 1;
  ERR_clear_error();
  return set;
}

Result Stream::handshake() {
  ERR_clear_error();
  errno = 0;
  int result = SSL_do_handshake(ssl_.get());
  if (result == 1) return Result{};
  return failure(result, errno);
}

Result Stream::read(std::span<char> buffer) {
  ERR_clear_error();
  errno = 0;
  std::size_t n = 0;
  if (SSL_read_ex(ssl_.get(), buffer.data(), buffer.size(), &n) == 1) {
    return Result{Status::kDone, n, {}};
  }
  return failure(0, errno);
}

Result Stream::write(std::string_view data) {
  ERR_clear_error();
  errno = 0;
  std::size_t n = 0;
  if (SSL_write_ex(ssl_.get(), data.data(), data.size(), &n) == 1) {
    return Result{Status::kDone, n, {}};
  }
  return failure(0, errno);
}

Result Stream::shutdown() {
  if (!ssl_ || broken_ || SSL_is_init_finished(ssl_.get()) != 1) return Result{};
  ERR_clear_error();
  errno = 0;
  // 0: our close_notify is sent (the peer's is not awaited); 1: both were.
  int result = SSL_shutdown(ssl_.get());
  if (result >= 0) return Result{};
  Result failed = failure(result, errno);
  if (failed.status == Status::kClosed) return Result{};  // the peer is gone: nothing to say
  return failed;
}

Result Stream::failure(int return_code, int saved_errno) {
  switch (SSL_get_error(ssl_.get(), return_code)) {
    case SSL_ERROR_WANT_READ:
      return Result{Status::kWantRead, 0, {}};
    case SSL_ERROR_WANT_WRITE:
      return Result{Status::kWantWrite, 0, {}};
    case SSL_ERROR_ZERO_RETURN:  // close_notify (RFC 8446 §6.1)
      return Result{Status::kClosed, 0, {}};
    case SSL_ERROR_SYSCALL:
      broken_ = true;
      if (ERR_peek_error() != 0) return error_result(last_error_reason());
      if (saved_errno != 0) return error_result(std::strerror(saved_errno));
      return Result{Status::kClosed, 0, {}};  // EOF where OpenSSL saw no TLS failure
    case SSL_ERROR_SSL:
      broken_ = true;
      // OpenSSL 3 reports TCP EOF without close_notify as a failure; for the caller it is
      // the peer going away, the same as a close.
      if (unsigned long first = ERR_peek_error();
          ERR_GET_LIB(first) == ERR_LIB_SSL &&
          ERR_GET_REASON(first) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        ERR_clear_error();
        return Result{Status::kClosed, 0, {}};
      }
      return error_result(last_error_reason());
    default:  // WANT_X509_LOOKUP, WANT_ASYNC…: callbacks none of our contexts install
      broken_ = true;
      return error_result(last_error_reason());
  }
}

}  // namespace tls
