// recent_keys.cpp — see recent_keys.h.
#include "base/recent_keys.h"

#include <algorithm>

namespace base {

RecentKeys::RecentKeys(std::size_t capacity, Clock::duration window)
    : capacity_(std::max<std::size_t>(capacity, 1)), window_(window) {}

bool RecentKeys::first_in_window(std::string_view key, Clock::time_point now) {
  std::lock_guard lock(mutex_);
  std::string owned(key);
  if (auto found = seen_.find(owned); found != seen_.end()) {
    if (now - found->second < window_) return false;
    found->second = now;
    return true;
  }
  if (seen_.size() >= capacity_) {
    std::erase_if(seen_, [&](const auto& entry) { return now - entry.second >= window_; });
    if (seen_.size() >= capacity_) seen_.clear();
  }
  seen_.emplace(std::move(owned), now);
  return true;
}

std::size_t RecentKeys::size() const {
  std::lock_guard lock(mutex_);
  return seen_.size();
}

}  // namespace base
