// poll_waiter.h — blocking use of a tls::Stream for callers off any event loop (outbound
// delivery threads, smtpsctl probe): each function carries one Stream operation to its end,
// waiting with poll(2) for the readiness the Stream asks for, never past a deadline.
// Invariants: every wait is bounded by the deadline (RFC 5321 §4.5.3.2: each step of a
// session has a timeout); a deadline that passes gives Status::kTimeout, never a hang; the
// functions allocate nothing beyond what the Stream does.
#pragma once

#include <chrono>
#include <span>
#include <string_view>

#include "tls/stream.h"

namespace tls {

using Deadline = std::chrono::steady_clock::time_point;

// Waits until `fd` is readable (Status::kWantRead) or writable (Status::kWantWrite) or the
// deadline passes: false only on timeout. A failed poll(2) counts as ready, so that the
// next call on the socket reports the error; EINTR is retried.
bool poll_until_ready(int fd, Status wanted, Deadline deadline);

Result poll_handshake(Stream& stream, Deadline deadline);
// One read: kDone with the bytes that arrived (at most buffer.size()).
Result poll_read(Stream& stream, std::span<char> buffer, Deadline deadline);
// All of data; kDone has bytes == data.size().
Result poll_write_all(Stream& stream, std::string_view data, Deadline deadline);

}  // namespace tls
