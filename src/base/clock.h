// clock.h — wall-clock time as the spool, logs, Received headers and DSNs store it.
#pragma once

#include <chrono>
#include <cstdint>
#include <ctime>
#include <string>

namespace base {

// What is left of a steady-clock deadline, never negative.
inline std::chrono::milliseconds time_left(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? left : std::chrono::milliseconds(0);
}

// Seconds since the Unix epoch (UTC).
inline std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// unix_seconds as strftime(3) formats it in UTC ("%Y-%m-%dT%H:%M:%SZ", "%Y%m"); at most 63
// characters.
inline std::string utc_text(std::int64_t unix_seconds, const char* format) {
  const std::time_t time = static_cast<std::time_t>(unix_seconds);
  std::tm utc{};
  ::gmtime_r(&time, &utc);
  char text[64];
  const std::size_t length = std::strftime(text, sizeof text, format, &utc);
  return std::string(text, length);
}

}  // namespace base
