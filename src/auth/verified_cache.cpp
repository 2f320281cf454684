// verified_cache.cpp — see verified_cache.h.
#include "auth/verified_cache.h"

#include <sodium.h>

namespace auth {

VerifiedCache::VerifiedCache(std::chrono::seconds ttl, std::size_t capacity)
    : ttl_(ttl), capacity_(capacity == 0 ? 1 : capacity), key_(32, '\0') {
  ensure_sodium();
  randombytes_buf(key_.data(), key_.size());
}

Digest VerifiedCache::mac(std::string_view stored_hash, std::string_view password) const {
  return hmac_sha256(key_, {stored_hash, std::string_view("\0", 1), password});
}

bool VerifiedCache::hit(std::string_view user, std::string_view stored_hash,
                        std::string_view password, Clock::time_point now) {
  if (ttl_.count() == 0) return false;
  Digest candidate = mac(stored_hash, password);
  std::lock_guard lock(mutex_);
  auto it = entries_.find(std::string(user));
  if (it == entries_.end()) return false;
  if (it->second.expires <= now) {
    order_.erase(it->second.age);
    entries_.erase(it);
    return false;
  }
  return sodium_memcmp(candidate.data(), it->second.mac.data(), candidate.size()) == 0;
}

void VerifiedCache::remember(std::string_view user, std::string_view stored_hash,
                             std::string_view password, Clock::time_point now) {
  if (ttl_.count() == 0) return;
  Digest value = mac(stored_hash, password);
  std::lock_guard lock(mutex_);
  std::string name(user);
  if (auto it = entries_.find(name); it != entries_.end()) {
    order_.erase(it->second.age);
    entries_.erase(it);
  }
  while (entries_.size() >= capacity_ && !order_.empty()) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
  order_.push_back(name);
  entries_.emplace(name, Entry{value, now + ttl_, std::prev(order_.end())});
}

void VerifiedCache::forget(std::string_view user) {
  std::lock_guard lock(mutex_);
  if (user.empty()) {
    entries_.clear();
    order_.clear();
    return;
  }
  if (auto it = entries_.find(std::string(user)); it != entries_.end()) {
    order_.erase(it->second.age);
    entries_.erase(it);
  }
}

std::size_t VerifiedCache::size() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace auth
