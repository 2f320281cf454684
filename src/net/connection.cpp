// connection.cpp — see connection.h.
#include "net/connection.h"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <span>

#include "net/tls_waiter.h"

namespace net {
namespace {

using asio::awaitable;
using asio::ip::tcp;

// What a TLS read or write that ended without success means to the session loop: eof when
// the client closed (close_notify or TCP EOF), else an abort.
std::error_code stream_error(const tls::Result& result) {
  return result.status == tls::Status::kClosed ? std::error_code(asio::error::eof)
                                               : std::error_code(asio::error::connection_aborted);
}

}  // namespace

std::string endpoint_address(const tcp::endpoint& endpoint) {
  asio::ip::address address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) {
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  }
  return address.to_string();
}

void Connection::limit_send_buffer() {
  int bytes = kSendBufferBytes;
  ::setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

void Connection::arm(std::chrono::milliseconds bound) {
  if (timed_out) return;  // the watchdog's grace period for the 421 must stay short
  Clock::time_point next = Clock::now() + bound;
  bool sooner = next < timer.expiry();
  deadline = next;
  if (sooner) timer.cancel();
}

awaitable<bool> Connection::handshake(SSL_CTX* context, std::string& reason) {
  auto opened = tls::Stream::open(context, static_cast<int>(socket.native_handle()),
                                  tls::Stream::Side::kServer);
  if (!opened) {
    reason = "cannot create TLS session: " + opened.error();
    co_return false;
  }
  ssl = std::move(opened.value());
  std::error_code wait_error;
  tls::Result result = co_await complete(
      socket, [this] { return ssl.handshake(); }, wait_error);
  if (result.done()) co_return true;
  if (timed_out) {
    reason = "handshake timeout";
  } else if (result.status == tls::Status::kClosed) {
    reason = "client closed the connection during the handshake";
  } else {
    reason = std::move(result.reason);  // "wrong version number", "no shared cipher"
  }
  co_return false;
}

awaitable<std::size_t> Connection::read_some(std::error_code& error, std::size_t at_most) {
  const std::span<char> into(read_buffer.data(), std::min(at_most, read_buffer.size()));
  if (!tls) {
    auto [ec, n] =
        co_await socket.async_read_some(asio::buffer(into.data(), into.size()), use_nothrow);
    error = ec;
    co_return n;
  }
  for (;;) {
    tls::Result result = ssl.read(into);
    if (result.done()) co_return result.bytes;
    if (!result.wants_io()) {
      error = stream_error(result);
      co_return 0;
    }
    auto [ec] = co_await async_wait_for(socket, result.status);
    if (ec) {
      error = ec;
      co_return 0;
    }
  }
}

awaitable<std::error_code> Connection::write_all(std::string_view data) {
  if (!tls) {
    auto [ec, n] =
        co_await asio::async_write(socket, asio::buffer(data.data(), data.size()), use_nothrow);
    co_return ec;
  }
  for (;;) {
    tls::Result result = ssl.write(data);
    if (result.done()) co_return std::error_code{};
    if (!result.wants_io()) co_return stream_error(result);
    auto [ec] = co_await async_wait_for(socket, result.status);
    if (ec) co_return ec;
  }
}

void Connection::write_now(std::string_view data) {
  std::error_code ignored;
  socket.write_some(asio::buffer(data.data(), data.size()), ignored);
}

void Connection::send_close_notify() {
  if (tls) ssl.shutdown();
}

void Connection::close() {
  std::error_code ignored;
  socket.shutdown(Socket::shutdown_both, ignored);
  socket.close(ignored);
}

awaitable<void> watchdog(std::shared_ptr<Connection> connection) {
  while (!connection->finished) {
    connection->timer.expires_at(connection->deadline);
    co_await connection->timer.async_wait(use_nothrow);
    if (connection->finished) co_return;
    if (connection->deadline <= Clock::now()) {
      if (connection->timed_out) {  // the 421 could not be written in time either
        connection->close();
        co_return;
      }
      connection->timed_out = true;
      connection->deadline = Clock::now() + kShutdownGrace;
      std::error_code ignored;
      connection->socket.cancel(ignored);
    }
  }
}

// Each round peeks at what has arrived; bytes that only extend a header still incomplete
// are consumed, and at the end exactly the rest of the header is.
awaitable<base::Expected<proxy_protocol::Header, ProxyHeaderError>> read_proxy_header(
    Connection& connection) {
  using Result = base::Expected<proxy_protocol::Header, ProxyHeaderError>;
  auto failure = [&](std::string reason, bool nothing = false) {
    return Result(base::unexpected(ProxyHeaderError{std::move(reason), nothing}));
  };
  static_assert(proxy_protocol::kMaxLength <= sizeof connection.read_buffer);
  char* buffer = connection.read_buffer.data();
  std::size_t have = 0;
  const int fd = connection.socket.native_handle();
  for (;;) {
    auto [ec] = co_await connection.socket.async_wait(Socket::wait_read, use_nothrow);
    if (ec) co_return failure(connection.timed_out ? std::string("timeout") : ec.message());
    ssize_t n = ::recv(fd, buffer + have, proxy_protocol::kMaxLength - have, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
    if (n < 0) co_return failure(std::strerror(errno), have == 0 && errno == ECONNRESET);
    if (n == 0) co_return failure("closed before the header", have == 0);
    proxy_protocol::Result parsed =
        proxy_protocol::parse(std::string_view(buffer, have + static_cast<std::size_t>(n)));
    if (parsed.status == proxy_protocol::Status::kInvalid) {
      co_return failure(std::string(parsed.error));
    }
    std::size_t take = parsed.status == proxy_protocol::Status::kDone ? parsed.length - have
                                                                      : static_cast<std::size_t>(n);
    if (::recv(fd, buffer + have, take, 0) != static_cast<ssize_t>(take)) {
      co_return failure("short read of a peeked header");
    }
    have += take;
    if (parsed.status == proxy_protocol::Status::kDone) co_return Result(parsed.header);
  }
}

}  // namespace net
