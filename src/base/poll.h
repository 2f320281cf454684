// poll.h — waiting for one descriptor until a steady-clock deadline, for the blocking sockets
// some layers drive themselves (a milter conversation, TLS over a plain socket, the control
// socket); net/ waits with Asio instead.
#pragma once

#include <chrono>

namespace base {

// Waits until fd is ready for `events` (POLLIN, POLLOUT) or the deadline passes. True when it
// is ready, or when poll(2) failed other than by EINTR (the caller's next read or write then
// reports the error); false at the deadline. A far deadline is waited for in slices (poll
// takes an int of milliseconds).
bool poll_until(int fd, short events, std::chrono::steady_clock::time_point deadline);

}  // namespace base
