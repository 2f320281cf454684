// stream.h — tls::Stream, the one TLS-over-socket driver: OpenSSL on a connected,
// non-blocking socket (OpenSSL reads and writes the descriptor itself, SSL_set_fd), client
// or server side, for every user (the server's connections, outbound delivery, probe, bench).
// It never waits: each operation returns at once with a typed Result, and a waiter (the
// poll(2) one in tls/poll_waiter.h, the Asio one in net/tls_waiter.h) waits for the
// readiness a want-read or want-write asks for, then the caller repeats the same call.
//
// Invariants:
// - No operation blocks, sleeps or loops on the socket.
// - After every operation the thread's OpenSSL error queue is empty: it is cleared before,
//   and an error drains it into Result::reason (tls::last_error_reason), so a stale entry
//   never explains another connection's failure on the same thread.
// - Handshake, read and write allocate nothing on success or want-read/want-write; only an
//   error's reason text does.
// - Server side: SSL_MODE_RELEASE_BUFFERS, so OpenSSL frees its record buffers while a
//   connection is idle (the per-connection memory budget of an open TLS connection), and
//   read-ahead, so OpenSSL may hold records already read: a caller waits for the socket only
//   after a want-read, never before a read().
// - Nothing is buffered outside OpenSSL, which reads the socket itself from the handshake
//   on: after STARTTLS, plaintext still in flight is read as (broken) TLS records and can
//   never become a command inside TLS (RFC 3207 §4.2).
// - shutdown() sends close_notify once and never waits for the peer's (RFC 8446 §6.1
//   allows closing without reading it); nothing is sent after an error.
#pragma once

#include <openssl/ssl.h>

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/expected.h"

namespace tls {

enum class Status {
  kDone,       // the operation completed; Result::bytes says how many for read and write
  kWantRead,   // wait until the socket is readable, then make the same call again
  kWantWrite,  // wait until the socket is writable, then make the same call again
  kClosed,     // the peer ended the stream: close_notify, or TCP EOF (without close_notify)
  kError,      // a TLS alert, a protocol or certificate failure, or a socket error: see reason
  kTimeout,    // only from a waiter: its deadline passed before the operation completed
};

struct Result {
  Status status = Status::kDone;
  std::size_t bytes = 0;  // kDone from read() or write(): the bytes read or written
  std::string reason;     // kError and kTimeout: why, in words for a log line

  bool done() const { return status == Status::kDone; }
  bool wants_io() const { return status == Status::kWantRead || status == Status::kWantWrite; }
};

class Stream {
 public:
  enum class Side { kClient, kServer };

  // No session: a connection that has not (yet) started TLS.
  Stream() = default;
  Stream(Stream&&) noexcept = default;
  Stream& operator=(Stream&&) noexcept = default;
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // A session of `context` over `fd`: a connected socket in non-blocking mode, which the
  // caller keeps owning (and closes after the Stream is done with it). The error is
  // OpenSSL's reason.
  static base::Expected<Stream, std::string> open(SSL_CTX* context, int fd, Side side);

  // Client side, before handshake(). The name sent as SNI: host names only, never an IP
  // literal (RFC 6066 §3). False when OpenSSL refuses it.
  bool set_server_name(const std::string& name);
  // The name the server's certificate must carry (RFC 6125; an IP literal is matched
  // against its IP addresses): the outcome is in SSL_get_verify_result, and fails the
  // handshake only under SSL_VERIFY_PEER. False when OpenSSL refuses it.
  bool expect_peer_name(const std::string& name);

  Result handshake();
  // At most buffer.size() bytes; kDone has bytes > 0.
  Result read(std::span<char> buffer);
  // All of data or nothing (kDone has bytes == data.size()); after a want, call again with
  // the same data.
  Result write(std::string_view data);
  // Sends close_notify (kDone once sent, or a want while the socket is full); nothing when
  // the handshake never completed or an error ended the session.
  Result shutdown();

  // A session exists (open() succeeded), whether or not its handshake is done.
  explicit operator bool() const { return ssl_ != nullptr; }
  // The OpenSSL session (null without one), like a smart pointer's get(): for what the
  // Stream does not wrap — tls::describe(), the RFC 9266 exporter, the client identity,
  // the peer certificate, session resumption.
  SSL* get() const { return ssl_.get(); }

 private:
  struct SslDeleter {
    void operator()(SSL* ssl) const { SSL_free(ssl); }
  };

  // The Result of an operation that returned `return_code` (not success).
  Result failure(int return_code, int saved_errno);

  std::unique_ptr<SSL, SslDeleter> ssl_;
  bool broken_ = false;  // an error or an unclean EOF ended the session: send nothing more
};

}  // namespace tls
