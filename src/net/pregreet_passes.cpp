// pregreet_passes.cpp — see pregreet_passes.h.
#include "net/pregreet_passes.h"

namespace net {

bool PregreetPasses::passed_recently(std::string_view client, RateClock::time_point now) {
  if (ttl_ <= RateClock::duration::zero()) return false;
  const AddressKey key = address_key(client, 128);
  std::lock_guard lock(mutex_);
  auto it = passed_.find(key);
  if (it == passed_.end()) return false;
  if (now - it->second < ttl_) return true;
  passed_.erase(it);
  return false;
}

void PregreetPasses::remember(std::string_view client, RateClock::time_point now) {
  if (ttl_ <= RateClock::duration::zero()) return;
  const AddressKey key = address_key(client, 128);
  std::lock_guard lock(mutex_);
  if (passed_.size() >= max_entries_ && passed_.find(key) == passed_.end()) {
    if (now - last_sweep_ < std::chrono::seconds(1)) return;
    last_sweep_ = now;
    std::erase_if(passed_, [&](const auto& item) { return now - item.second >= ttl_; });
    if (passed_.size() >= max_entries_) return;
  }
  passed_[key] = now;
}

std::size_t PregreetPasses::size() const {
  std::lock_guard lock(mutex_);
  return passed_.size();
}

}  // namespace net
