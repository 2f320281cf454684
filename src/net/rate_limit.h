// rate_limit.h — counting windows for the overload limits: connections per client address
// per minute (README "Replies and limits"). What a user may send is auth::SendingLimiter's.
//
// Each key has a sliding-window counter (two fixed windows, the previous one weighted by
// how much of it still overlaps the last `window`), so a client cannot double its rate at a
// window edge and each key costs a few words. Only what was admitted is counted: a client
// that is refused gets in again as soon as its own rate falls below the limit.
//
// Memory is bounded: at most `max_entries` keys. When the table is full, keys idle for two
// windows are swept out (at most once a second); if it is still full the new key is let
// through uncounted (counted in untracked()), as a flood from that many addresses is the
// total connection limit's job. A client is counted as base::client_network() names it:
// IPv4 per address, IPv6 per prefix ([limits] ipv6_prefix, default /64).
//
// Thread-safe: one small mutex per table, held for a hash lookup; never waits on I/O.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

namespace net {

using RateClock = std::chrono::steady_clock;

// The key of a client address: base::client_network()'s masked 16 bytes (IPv4 mapped).
using AddressKey = std::array<unsigned char, 16>;
AddressKey address_key(std::string_view address, unsigned ipv6_prefix);

template <typename Key, typename Hash = std::hash<Key>>
class SlidingWindowTable {
 public:
  SlidingWindowTable(std::uint64_t limit, RateClock::duration window, std::size_t max_entries)
      : limit_(limit), window_(window), max_entries_(max_entries) {}

  // Whether one more event from `key` at `now` stays within the limit; if so it is counted.
  // A limit of 0 admits everything and counts nothing.
  bool admit(const Key& key, RateClock::time_point now) {
    if (limit_ == 0) return true;
    std::lock_guard lock(mutex_);
    Entry* entry = find_or_add(key, now);
    if (entry == nullptr) {
      ++untracked_;
      return true;
    }
    roll(*entry, now);
    if (estimate(*entry, now) >= static_cast<double>(limit_)) return false;
    ++entry->current;
    return true;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }
  std::uint64_t untracked() const {
    std::lock_guard lock(mutex_);
    return untracked_;
  }
  std::uint64_t limit() const { return limit_; }

 private:
  struct Entry {
    RateClock::time_point window_start;
    std::uint64_t current = 0;
    std::uint64_t previous = 0;
  };

  // Moves the entry's windows forward to the one holding `now`.
  void roll(Entry& entry, RateClock::time_point now) const {
    if (now < entry.window_start + window_) return;
    auto windows = (now - entry.window_start) / window_;
    entry.previous = windows == 1 ? entry.current : 0;
    entry.current = 0;
    entry.window_start += windows * window_;
  }

  double estimate(const Entry& entry, RateClock::time_point now) const {
    double into = std::chrono::duration<double>(now - entry.window_start).count() /
                  std::chrono::duration<double>(window_).count();
    return static_cast<double>(entry.previous) * (1.0 - into) + static_cast<double>(entry.current);
  }

  Entry* find_or_add(const Key& key, RateClock::time_point now) {
    auto it = entries_.find(key);
    if (it != entries_.end()) return &it->second;
    if (entries_.size() >= max_entries_) {
      if (now - last_sweep_ >= std::chrono::seconds(1)) {
        last_sweep_ = now;
        std::erase_if(entries_, [&](const auto& item) {
          return now - item.second.window_start >= 2 * window_;
        });
      }
      if (entries_.size() >= max_entries_) return nullptr;
    }
    return &entries_.emplace(key, Entry{now, 0, 0}).first->second;
  }

  const std::uint64_t limit_;
  const RateClock::duration window_;
  const std::size_t max_entries_;
  mutable std::mutex mutex_;
  std::unordered_map<Key, Entry, Hash> entries_;  // guarded by mutex_
  RateClock::time_point last_sweep_{};            // guarded by mutex_
  std::uint64_t untracked_ = 0;                   // guarded by mutex_
};

struct AddressKeyHash {
  std::size_t operator()(const AddressKey& key) const;
};

// Connections per client (IPv4 address or IPv6 prefix) per minute.
using ConnectionRateTable = SlidingWindowTable<AddressKey, AddressKeyHash>;

}  // namespace net
