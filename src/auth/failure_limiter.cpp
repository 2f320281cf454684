// failure_limiter.cpp — counters of recent authentication failures with delays and
// temporary lockouts (rules in failure_limiter.h).
//
// Invariants: an entry keeps at most its bound of failure times (the most recent), so
// memory per entry is bounded; entries_ never exceeds max_entries (the least recently
// failed entry goes first); exempt clients never create an entry. IPs are keyed by
// base::client_key() (canonical text of the IPv4 address or of the IPv6 prefix), users
// ASCII-lowercased and cut at 256 bytes, so "Alice@X" and "alice@x" share a counter.
#include "auth/failure_limiter.h"

#include <algorithm>
#include <tuple>

namespace auth {
namespace {

constexpr std::size_t kMaxUserKey = 256;

std::string user_key(std::string_view user) {
  std::string key(user.substr(0, kMaxUserKey));
  for (char& c : key) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return key;
}

std::chrono::seconds ceil_seconds(FailureLimiter::Clock::duration duration) {
  return std::chrono::ceil<std::chrono::seconds>(duration);
}

}  // namespace

base::Expected<std::unique_ptr<FailureLimiter>, std::string> FailureLimiter::create(
    FailureLimiterOptions options) {
  if (options.per_user_ip_max_failures == 0 || options.per_ip_max_failures == 0) {
    return base::unexpected(std::string("failure bounds must be at least 1"));
  }
  if (options.window.count() <= 0) return base::unexpected(std::string("window must be > 0"));
  if (options.max_entries == 0) return base::unexpected(std::string("max_entries must be > 0"));
  if (options.ipv6_prefix < base::kMinIpv6ClientPrefix ||
      options.ipv6_prefix > base::kMaxIpv6ClientPrefix) {
    return base::unexpected(std::string("ipv6_prefix must be within 32..128"));
  }
  return std::unique_ptr<FailureLimiter>(new FailureLimiter(std::move(options)));
}

FailureLimiter::FailureLimiter(FailureLimiterOptions options)
    : options_(std::move(options)), exempt_(options_.exempt) {}

std::string FailureLimiter::client_key(std::string_view ip) const {
  return base::client_key(ip, options_.ipv6_prefix);
}

bool FailureLimiter::exempt(std::string_view ip) const {
  if (exempt_.empty()) return false;
  auto parsed = base::parse_ip(ip);
  if (!parsed) return false;
  return std::any_of(exempt_.begin(), exempt_.end(),
                     [&](const base::Network& network) { return network.contains(*parsed); });
}

FailureLimiter::Entry* FailureLimiter::find(const std::string& key) {
  auto it = entries_.find(key);
  return it == entries_.end() ? nullptr : &it->second;
}

FailureLimiter::Entry& FailureLimiter::touch(const std::string& key, std::string_view ip,
                                             std::string_view user) {
  auto it = entries_.find(key);
  if (it != entries_.end()) {
    recency_.splice(recency_.begin(), recency_, it->second.recency);
    return it->second;
  }
  while (entries_.size() >= options_.max_entries && !recency_.empty()) {
    // XXX: evicting may forget a lockout under a flood of distinct addresses; the table
    // bound is what keeps memory fixed, and the pair/IP being evicted failed least recently.
    erase(recency_.back());
  }
  recency_.push_front(key);
  Entry& entry = entries_[key];
  entry.ip = std::string(ip);
  entry.user = std::string(user);
  entry.recency = recency_.begin();
  return entry;
}

void FailureLimiter::erase(const std::string& key) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return;
  recency_.erase(it->second.recency);
  entries_.erase(it);
}

unsigned FailureLimiter::count_recent(Entry& entry, TimePoint now) const {
  auto& times = entry.failures;
  times.erase(std::remove_if(times.begin(), times.end(),
                             [&](TimePoint t) { return t + options_.window <= now; }),
              times.end());
  return static_cast<unsigned>(times.size());
}

FailureLimiter::Check FailureLimiter::check(std::string_view ip, std::string_view user,
                                            TimePoint now) {
  Check result;
  if (exempt(ip)) return result;
  std::string ip_text = client_key(ip);
  std::lock_guard lock(mutex_);
  std::string user_text = user_key(user);
  for (const std::string& key : {ip_text + '\n', ip_text + '\n' + user_text}) {
    // No user name (yet): only the address's own counter applies; the pair key would be
    // the address key again, judged by the much lower per-user bound.
    if (user_text.empty() && key.size() != ip_text.size() + 1) continue;
    Entry* entry = find(key);
    if (entry != nullptr && entry->locked_until > now) {
      result.locked = true;
      result.retry_after = std::max(result.retry_after, ceil_seconds(entry->locked_until - now));
    }
  }
  return result;
}

FailureLimiter::Verdict FailureLimiter::record_failure(std::string_view ip, std::string_view user,
                                                       TimePoint now) {
  Verdict verdict;
  if (exempt(ip)) return verdict;
  std::string ip_text = client_key(ip);
  std::string user_text = user_key(user);
  std::lock_guard lock(mutex_);
  unsigned counts[2] = {0, 0};
  const unsigned bounds[2] = {options_.per_user_ip_max_failures, options_.per_ip_max_failures};
  const std::string keys[2] = {ip_text + '\n' + user_text, ip_text + '\n'};
  for (int i = 0; i < 2; ++i) {
    // A failure without a user name counts for the address only (see check()).
    if (i == 0 && user_text.empty()) continue;
    Entry& entry = touch(keys[i], ip_text, i == 0 ? std::string_view(user_text) : "");
    count_recent(entry, now);
    entry.failures.push_back(now);
    if (entry.failures.size() > bounds[i]) entry.failures.erase(entry.failures.begin());
    entry.last_failure = now;
    counts[i] = static_cast<unsigned>(entry.failures.size());
    if (counts[i] >= bounds[i] && entry.locked_until <= now) {
      entry.locked_until = now + options_.window;
      verdict.now_locked = true;
    }
  }
  // The delay grows with the pair's failures, or with the IP's scaled to the pair's bound
  // (so that spraying many user names from one address is slowed down too).
  unsigned ip_scaled = (counts[1] * bounds[0] + bounds[1] - 1) / bounds[1];
  unsigned steps = std::max(counts[0], ip_scaled);
  if (steps >= 2) {
    unsigned shift = std::min(steps - 2, 20u);
    auto delay = options_.first_delay * (1LL << shift);
    verdict.delay = std::min<std::chrono::milliseconds>(delay, options_.max_delay);
  }
  return verdict;
}

void FailureLimiter::record_success(std::string_view ip, std::string_view user, TimePoint) {
  if (exempt(ip)) return;
  std::string key = client_key(ip) + '\n' + user_key(user);
  std::lock_guard lock(mutex_);
  erase(key);
}

std::vector<Lockout> FailureLimiter::lockouts(TimePoint now) {
  std::lock_guard lock(mutex_);
  std::vector<Lockout> out;
  for (auto& [key, entry] : entries_) {
    if (entry.locked_until <= now) continue;
    out.push_back(Lockout{entry.ip, entry.user, static_cast<unsigned>(entry.failures.size()),
                          ceil_seconds(entry.locked_until - now)});
  }
  std::sort(out.begin(), out.end(), [](const Lockout& a, const Lockout& b) {
    return std::tie(a.ip, a.user) < std::tie(b.ip, b.user);
  });
  return out;
}

bool FailureLimiter::unlock(std::string_view ip_or_user) {
  std::string ip_text = client_key(ip_or_user);
  // The prefix as lockouts() shows it ("2001:db8::/64") names the same key.
  if (auto network = base::parse_network(ip_or_user)) {
    ip_text = client_key(base::format_ip(network.value().address));
  }
  std::string user_text = user_key(ip_or_user);
  std::lock_guard lock(mutex_);
  std::vector<std::string> doomed;
  for (const auto& [key, entry] : entries_) {
    if (entry.ip == ip_text || (!entry.user.empty() && entry.user == user_text)) {
      doomed.push_back(key);
    }
  }
  for (const auto& key : doomed)
    erase(key);
  return !doomed.empty();
}

std::size_t FailureLimiter::entries() const {
  std::lock_guard lock(mutex_);
  return entries_.size();
}

}  // namespace auth
