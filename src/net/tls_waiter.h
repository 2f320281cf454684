// tls_waiter.h — tls::Stream on an Asio event loop: the Stream never waits, and these wait
// for the readiness it asks for (want-read, want-write) with socket.async_wait, so the
// coroutine that owns the connection yields instead of blocking its thread. OpenSSL does
// the reading and writing itself; Asio only reports readiness (which is what lets
// SSL_MODE_RELEASE_BUFFERS free an idle connection's buffers).
// Invariants: a wait ends early only when the socket is cancelled or closed (a watchdog's
// deadline, a shutdown): the wait's error then ends the operation, and the caller decides
// what it means. Nothing here allocates beyond Asio's own recycled wait.
#pragma once

#include <asio.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <system_error>
#include <tuple>

#include "tls/stream.h"

namespace net {

// Waits until `socket` is ready for what a Stream result asked (Status::kWantRead or
// kWantWrite): co_await yields a std::tuple<std::error_code>, empty when ready.
// Any Asio socket (TCP, or the generic stream socket of net::Connection).
template <typename Socket>
auto async_wait_for(Socket& socket, tls::Status wanted) {
  return socket.async_wait(wanted == tls::Status::kWantWrite ? asio::socket_base::wait_write
                                                             : asio::socket_base::wait_read,
                           asio::experimental::as_tuple(asio::use_awaitable));
}

// Carries one Stream operation (a callable returning tls::Result: a handshake, a read, a
// write) to its end, waiting for readiness between attempts. A failed wait ends it with
// Status::kError, the wait's error in `wait_error` and its message as the reason.
template <typename Socket, typename Operation>
asio::awaitable<tls::Result> complete(Socket& socket, Operation operation,
                                      std::error_code& wait_error) {
  for (;;) {
    tls::Result result = operation();
    if (!result.wants_io()) co_return result;
    auto [error] = co_await async_wait_for(socket, result.status);
    if (error) {
      wait_error = error;
      co_return tls::Result{tls::Status::kError, 0, error.message()};
    }
  }
}

}  // namespace net
