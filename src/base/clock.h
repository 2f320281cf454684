// clock.h — wall-clock time as the spool, logs, Received headers and DSNs store it.
#pragma once

#include <chrono>
#include <cstdint>

namespace base {

// Seconds since the Unix epoch (UTC).
inline std::int64_t unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace base
