// connection.h — one client connection: the socket, TLS on it, and its deadlines.
//
// TLS is a tls::Stream: OpenSSL over the non-blocking socket (a socket BIO), with Asio only
// waiting for readiness (net/tls_waiter.h). Unlike asio::ssl::stream, which keeps two 17 KiB
// buffers per connection for life, this lets SSL_MODE_RELEASE_BUFFERS free OpenSSL's record
// buffers while a connection is idle (≤ 64 KiB per open TLS connection).
//
// Deadlines: arm() sets the bound of the next step (handshake, command, data block, PROXY
// header) and watchdog() enforces it by cancelling the socket; a connection that timed out
// gets kShutdownGrace more to take its 421 before it is closed. Everything here runs on the
// connection's own I/O thread except `shutting_down`, which a drain may set from any.
#pragma once

#include <array>
#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include "base/expected.h"
#include "net/peer_credentials.h"
#include "net/proxy_protocol.h"
#include "tls/stream.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace net {

// A completion token for coroutines that returns (error_code, results...) instead of throwing.
inline constexpr auto use_nothrow = asio::experimental::as_tuple(asio::use_awaitable);

using Clock = std::chrono::steady_clock;

// The socket send buffer of a client connection (SO_SNDBUF; Linux doubles it for its own
// bookkeeping). Without a cap the kernel grows it up to net.ipv4.tcp_wmem's maximum (4 MiB)
// for a client that pipelines and never reads; replies are small, and 64 KiB still holds
// many pipelined groups in flight.
constexpr int kSendBufferBytes = 64 * 1024;

// Bound on writing a reply to a client that does not read (same as a command wait), and
// on the last 421 after a timeout.
constexpr std::chrono::seconds kShutdownGrace{10};

// The client address as logs, limits and Received name it (IPv4-mapped IPv6 as IPv4).
std::string endpoint_address(const asio::ip::tcp::endpoint& endpoint);

// Why read_proxy_header() failed.
struct ProxyHeaderError {
  std::string reason;
  bool nothing_received = false;  // gone without one byte: a port probe or health check
};

// A stream socket of any family: TCP for the network roles, AF_UNIX for local submission.
using Socket = asio::generic::stream_protocol::socket;

// Owned by its session coroutine and by the watchdog (through shared_ptr).
struct Connection {
  explicit Connection(Socket s) : socket(std::move(s)), timer(socket.get_executor()) {}

  Socket socket;
  std::uint16_t client_port = 0;                    // TCP: the peer's port, for logs
  std::optional<PeerCredentials> peer_credentials;  // a unix socket: who connected
  tls::Stream ssl;  // set once the handshake starts; ssl.get() is the SSL* (AUTH needs it)
  asio::steady_timer timer;
  Clock::time_point deadline = Clock::time_point::max();
  bool tls = false;
  bool timed_out = false;
  bool finished = false;
  std::atomic<bool> shutting_down{false};
  // Waiting for a command outside a mail transaction: a shutdown may interrupt this read
  // at once; any other wait is left to finish (set and read on the connection's thread).
  bool idle_read = false;
  std::array<char, 8 * 1024> read_buffer;

  // Caps the socket's send buffer at kSendBufferBytes (best effort: a failure leaves the
  // kernel's default).
  void limit_send_buffer();

  // Sets the deadline of the next step. A later deadline is picked up when the watchdog's
  // timer fires; an earlier one (data after a command, a command after the handshake) must
  // wake the watchdog now so that it re-arms for it.
  void arm(std::chrono::milliseconds bound);

  // Server side handshake on the socket; on failure `reason` says why, for the log.
  asio::awaitable<bool> handshake(SSL_CTX* context, std::string& reason);
  // Some bytes, at most `at_most`, into read_buffer (0 with `error` set at the end: eof when
  // the client closed, operation_aborted when the watchdog or a drain cancelled the wait).
  asio::awaitable<std::size_t> read_some(std::error_code& error,
                                         std::size_t at_most = sizeof read_buffer);
  asio::awaitable<std::error_code> write_all(std::string_view data);
  // Best effort and non-blocking: a refusal written before the connection is closed.
  void write_now(std::string_view data);

  // RFC 8446 §6.1: send close_notify before closing. The peer's own close_notify is not
  // waited for (the connection is done either way), so this never blocks.
  void send_close_notify();
  void close();
};

// Enforces connection->deadline until the connection is finished (co_spawn it once).
asio::awaitable<void> watchdog(std::shared_ptr<Connection> connection);

// Reads the PROXY protocol header without taking one byte past it: what follows is the
// client's own stream (its ClientHello, read by OpenSSL straight from the socket, or its
// first command).
asio::awaitable<base::Expected<proxy_protocol::Header, ProxyHeaderError>> read_proxy_header(
    Connection& connection);

}  // namespace net
