// recent_keys.h — "once per key per window": a bounded, thread-safe set of keys, each
// remembered for a time window after it was first let through. Used for warnings that are
// worth saying once per destination (a domain), not once per message.
//
// Invariants: at most `capacity` keys are held. When a new key finds the set full, the keys
// whose window has passed go first; if that frees nothing, every key is forgotten (each may
// then be let through once more: the memory bound wins over the promise of "once").
#pragma once

#include <chrono>
#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace base {

class RecentKeys {
 public:
  using Clock = std::chrono::steady_clock;

  RecentKeys(std::size_t capacity, Clock::duration window);

  // True when key was not let through within the window before now, and it is remembered
  // from now; false (nothing changes) while its window lasts.
  bool first_in_window(std::string_view key, Clock::time_point now = Clock::now());
  std::size_t size() const;

 private:
  const std::size_t capacity_;
  const Clock::duration window_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Clock::time_point> seen_;  // mutex_: key → when let through
};

}  // namespace base
