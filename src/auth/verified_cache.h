// verified_cache.h — remembers, for a while, that a user's password checked out, so a
// client that logs in again and again (one submission per connection) does not pay
// argon2id (~100 ms, 64 MiB) every time. Dovecot's auth cache does the same job.
//
// What is kept per user: HMAC-SHA-256(per-process random key, stored hash ‖ 0 ‖ password)
// and an expiry — never the password. The stored hash is part of the MAC, so a changed
// password (a new hash in the users file) misses at once. Only successes are cached: a
// wrong password always costs the full argon2id verification. A cache hit reveals nothing
// a 235 would not. Thread-safe; bounded (the oldest entry goes when full).
#pragma once

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "auth/crypto_primitives.h"

namespace auth {

class VerifiedCache {
 public:
  using Clock = std::chrono::steady_clock;

  // ttl 0 disables the cache (every login verifies with argon2id).
  VerifiedCache(std::chrono::seconds ttl, std::size_t capacity = 4096);

  // True when this (user, stored hash, password) verified within the ttl.
  bool hit(std::string_view user, std::string_view stored_hash, std::string_view password,
           Clock::time_point now);
  // After a successful argon2id verification.
  void remember(std::string_view user, std::string_view stored_hash, std::string_view password,
                Clock::time_point now);
  // Forget one user (or everyone with an empty name).
  void forget(std::string_view user);
  std::size_t size() const;

 private:
  Digest mac(std::string_view stored_hash, std::string_view password) const;

  struct Entry {
    Digest mac;
    Clock::time_point expires;
    std::list<std::string>::iterator age;
  };
  const std::chrono::seconds ttl_;
  const std::size_t capacity_;
  std::string key_;  // random, per process
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;  // guarded by mutex_
  std::list<std::string> order_;                    // oldest first; guarded by mutex_
};

}  // namespace auth
