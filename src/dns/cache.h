// cache.h — the answers of dns::Resolver kept for their time to live, so that the checks of
// one message (SPF, DKIM, DMARC) and the next messages from the same domains ask once.
//
// Invariants:
// - Keyed by (name lower-cased without the trailing dot, type): DNS names compare without
//   regard to case (RFC 4343 §3).
// - An answer is kept for its TTL, clamped to [min_ttl, max_ttl] (RFC 2181 §8 lets a
//   resolver bound it): positive answers, and NXDOMAIN / NODATA for the TTL of the negative
//   answer (RFC 2308 §5). kTemporary is never kept (the next lookup asks again); kBogus is
//   kept for min_ttl only (RFC 4035 §4.7: do not ask again for every message of an attack).
// - At most max_entries entries: a store into a full cache first drops the entry that
//   expires soonest (an expired one if any).
// - Thread-safe (one mutex); time comes from the clock given at construction.
// See docs/architecture.md "DNS".
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include "dns/resolver.h"

namespace dns {

struct CacheLimits {
  std::size_t max_entries = 10000;
  std::chrono::seconds min_ttl{5};
  std::chrono::seconds max_ttl{86400};
};

class Cache {
 public:
  using Limits = CacheLimits;
  using Clock = std::chrono::steady_clock;
  using Now = std::function<Clock::time_point()>;

  explicit Cache(Limits limits = {}, Now now = &Clock::now);

  // The answer kept for (name, type), or nullptr when none or expired.
  AnswerPtr find(std::string_view name, Type type);
  // Keeps the answer per the rules above (a kTemporary answer is not kept).
  void store(std::string_view name, Type type, AnswerPtr answer);

  std::size_t size() const;

  // The key of (name, type): "example.com/16".
  static std::string key(std::string_view name, Type type);

 private:
  struct Entry {
    AnswerPtr answer;
    Clock::time_point expires;
    std::multimap<Clock::time_point, std::string>::iterator by_expiry;
  };
  void erase(std::unordered_map<std::string, Entry>::iterator where);

  Limits limits_;
  Now now_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::multimap<Clock::time_point, std::string> by_expiry_;  // soonest first
};

}  // namespace dns
