// poll_waiter.cpp — see poll_waiter.h.
#include "tls/poll_waiter.h"

#include <openssl/ssl.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>

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
  const short events = wanted == Status::kWantWrite ? POLLOUT : POLLIN;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return false;
    pollfd entry{fd, events, 0};
    // poll() takes an int of milliseconds: a far deadline is waited for in slices.
    int ready = ::poll(&entry, 1, static_cast<int>(std::min<long long>(left.count(), 60000)));
    if (ready > 0) return true;
    if (ready < 0 && errno != EINTR) return true;
  }
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
