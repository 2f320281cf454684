// poll_waiter.cpp — see poll_waiter.h.
#include "tls/poll_waiter.h"

#include <openssl/ssl.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>

#include "base/poll.h"

namespace tls {
namespace {

using Clock = std::chrono::steady_clock;

Result timed_out() {
  return Result{Status::kTimeout, 0, "timed out"};
}

// Repeats `operation` until it no longer wants the socket.
template <typename Operation>
Result complete(Stream& stream, Deadline deadline, Operation operation) {
  const int fd = SSL_get_fd(stream.get());
  for (;;) {
    Result result = operation();
    if (!result.wants_io()) return result;
    if (!poll_until_ready(fd, result.status, deadline)) return timed_out();
  }
}

}  // namespace

bool poll_until_ready(int fd, Status wanted, Deadline deadline) {
  if (deadline <= Clock::now()) return false;
  return base::poll_until(fd, wanted == Status::kWantWrite ? POLLOUT : POLLIN, deadline);
}

Result poll_handshake(Stream& stream, Deadline deadline) {
  return complete(stream, deadline, [&] { return stream.handshake(); });
}

Result poll_read(Stream& stream, std::span<char> buffer, Deadline deadline) {
  return complete(stream, deadline, [&] { return stream.read(buffer); });
}

Result poll_write_all(Stream& stream, std::string_view data, Deadline deadline) {
  return complete(stream, deadline, [&] { return stream.write(data); });
}

}  // namespace tls
