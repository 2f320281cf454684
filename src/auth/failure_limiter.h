// failure_limiter.h — slows down and then temporarily locks out password guessing, per
// (client IP, user) and per client IP (docs/architecture.md "Security rules").
//
// Pure: the caller passes the time (steady_clock), so tests drive the clock. Thread-safe
// (one mutex) so the I/O threads can share one limiter. Bounded: at most max_entries
// counters; when full, the least recently failed one is evicted.
//
// Rules, within a sliding window (default 15 min):
// - each failure counts for the pair (IP, user) and for the IP alone;
// - after a failure the host waits delay() before answering 535: nothing after the first,
//   first_delay after the second, doubling after each further one up to max_delay (by
//   default 0, 1, 2, 4 s);
// - when a pair reaches per_user_ip_max_failures, or an IP reaches per_ip_max_failures,
//   that pair or IP is locked out for one window: attempts get 454 4.7.0 without a
//   password check. The per-IP bound is higher so that one device with a stale password
//   does not lock out a whole office behind one NAT address;
// - a success clears the pair's counter (not the IP's);
// - clients in exempt networks (CIDR, IPv4 or IPv6) are never counted, delayed or locked;
// - "IP" is the client as base::client_key() names it: an IPv4 address, or the IPv6 prefix
//   of ipv6_prefix bits (/64 by default) — one host may use every address of its /64, so
//   counting single IPv6 addresses would give it 2^64 fresh starts.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/expected.h"
#include "base/network.h"

namespace auth {

struct FailureLimiterOptions {
  unsigned per_user_ip_max_failures = 5;
  unsigned per_ip_max_failures = 30;
  std::chrono::milliseconds window{15 * 60 * 1000};
  std::chrono::milliseconds first_delay{1000};
  std::chrono::milliseconds max_delay{4000};
  std::vector<base::Network> exempt;
  std::size_t max_entries = 65536;
  unsigned ipv6_prefix = base::kDefaultIpv6ClientPrefix;  // base::kMinIpv6ClientPrefix..128
};

struct Lockout {
  std::string ip;    // base::client_key(): "192.0.2.7", "2001:db8:1:2::/64
  std::string user;  // empty: the whole IP is locked out
  unsigned failures = 0;
  std::chrono::seconds remaining{0};
};

class FailureLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  using TimePoint = Clock::time_point;

  // Refuses a zero bound.
  static base::Expected<std::unique_ptr<FailureLimiter>, std::string> create(
      FailureLimiterOptions options);

  struct Check {
    bool locked = false;  // answer 454 4.7.0 and do not verify
    std::chrono::seconds retry_after{0};
  };
  // Before checking credentials for (ip, user as given).
  Check check(std::string_view ip, std::string_view user, TimePoint now);

  struct Verdict {
    std::chrono::milliseconds delay{0};  // wait this long before answering 535
    bool now_locked = false;             // this failure started a lockout
  };
  Verdict record_failure(std::string_view ip, std::string_view user, TimePoint now);
  void record_success(std::string_view ip, std::string_view user, TimePoint now);

  std::vector<Lockout> lockouts(TimePoint now);
  // Lifts every lockout and counter of that IP (or IPv6 prefix: any address in it, or the
  // prefix as lockouts() shows it), or of that user (on any IP).
  bool unlock(std::string_view ip_or_user);

  std::size_t entries() const;

 private:
  explicit FailureLimiter(FailureLimiterOptions options);

  struct Entry {
    std::string ip;
    std::string user;                 // empty for the per-IP counter
    std::vector<TimePoint> failures;  // the most recent ones, at most the bound
    TimePoint locked_until{};
    TimePoint last_failure{};
    std::list<std::string>::iterator recency;
  };

  bool exempt(std::string_view ip) const;
  std::string client_key(std::string_view ip) const;
  Entry* find(const std::string& key);
  Entry& touch(const std::string& key, std::string_view ip, std::string_view user);
  void erase(const std::string& key);
  unsigned count_recent(Entry& entry, TimePoint now) const;

  const FailureLimiterOptions options_;
  const std::vector<base::Network> exempt_;
  mutable std::mutex mutex_;
  std::unordered_map<std::string, Entry> entries_;
  std::list<std::string> recency_;  // front: most recently failed
};

}  // namespace auth
