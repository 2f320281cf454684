// pregreet_passes.h — the clients that recently waited out the pre-greet wait of the `smtp`
// role (docs/architecture.md "Screening"), so that they skip it for a while, as postscreen's
// cache does: a real MTA pays the wait once a TTL, not on every connection.
//
// Keyed by the client's whole address (IPv4, also IPv4-mapped, or IPv6: one host passed,
// not its network). Bounded: at most max_entries; when full, expired entries are swept (at
// most once a second) and, if it is still full, a new pass is not remembered (that client
// waits again next time: a cost in latency, never a wrong verdict). Thread-safe: one mutex
// held for a hash lookup.
#pragma once

#include <cstddef>
#include <mutex>
#include <string_view>
#include <unordered_map>

#include "net/rate_limit.h"

namespace net {

class PregreetPasses {
 public:
  PregreetPasses(RateClock::duration ttl, std::size_t max_entries)
      : ttl_(ttl), max_entries_(max_entries) {}

  // Whether the client passed within the TTL.
  bool passed_recently(std::string_view client, RateClock::time_point now);
  // The client waited out the wait at `now`.
  void remember(std::string_view client, RateClock::time_point now);
  std::size_t size() const;

 private:
  const RateClock::duration ttl_;
  const std::size_t max_entries_;
  mutable std::mutex mutex_;
  std::unordered_map<AddressKey, RateClock::time_point, AddressKeyHash> passed_;  // guarded
  RateClock::time_point last_sweep_{};                                            // guarded
};

}  // namespace net
