// duration_text.h — a duration as the configuration writes it, for log lines and summaries.
#pragma once

#include <chrono>
#include <string>

namespace base {

// Whole seconds as "10s", anything else in milliseconds: "300ms", "1500ms".
inline std::string duration_text(std::chrono::milliseconds duration) {
  if (duration.count() % 1000 == 0) return std::to_string(duration.count() / 1000) + "s";
  return std::to_string(duration.count()) + "ms";
}

}  // namespace base
