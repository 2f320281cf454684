// failure_limiter_test.cpp — auth::FailureLimiter with a driven clock: growing delays,
// lockout after N failures and its expiry after the window, per-(IP, user) versus the
// higher per-IP bound (one stale device behind a NAT), exempt networks, success clearing
// the pair, unlock, and the bounded table.
#include "auth/failure_limiter.h"

#include <gtest/gtest.h>

namespace auth {
namespace {

using namespace std::chrono_literals;
using TimePoint = FailureLimiter::TimePoint;

std::unique_ptr<FailureLimiter> limiter(FailureLimiterOptions options = {}) {
  auto created = FailureLimiter::create(std::move(options));
  EXPECT_TRUE(created) << created.error();
  return std::move(created.value());
}

const TimePoint kStart = TimePoint() + 1000h;

TEST(FailureLimiterTest, DelaysGrowAndAreCapped) {
  FailureLimiterOptions options;
  options.per_user_ip_max_failures = 10;
  auto l = limiter(options);
  std::vector<long long> delays;
  for (int i = 0; i < 6; ++i) {
    delays.push_back(l->record_failure("192.0.2.1", "alice", kStart + i * 1s).delay.count());
  }
  EXPECT_EQ(delays, (std::vector<long long>{0, 1000, 2000, 4000, 4000, 4000}));
}

TEST(FailureLimiterTest, DelaysAndWindowsMayBeShorterThanASecond) {
  FailureLimiterOptions options;
  options.per_user_ip_max_failures = 3;
  options.window = 250ms;
  options.first_delay = 20ms;
  options.max_delay = 80ms;
  auto l = limiter(options);
  EXPECT_EQ(l->record_failure("192.0.2.1", "alice", kStart).delay, 0ms);
  EXPECT_EQ(l->record_failure("192.0.2.1", "alice", kStart + 1ms).delay, 20ms);
  auto third = l->record_failure("192.0.2.1", "alice", kStart + 2ms);
  EXPECT_EQ(third.delay, 40ms);
  EXPECT_TRUE(third.now_locked);
  EXPECT_TRUE(l->check("192.0.2.1", "alice", kStart + 251ms).locked);
  EXPECT_FALSE(l->check("192.0.2.1", "alice", kStart + 252ms).locked);
  EXPECT_TRUE(l->lockouts(kStart + 252ms).empty());
}

TEST(FailureLimiterTest, LockoutAfterNFailuresLastsTheWindow) {
  auto l = limiter();
  TimePoint now = kStart;
  for (int i = 0; i < 4; ++i) {
    EXPECT_FALSE(l->check("192.0.2.1", "alice", now).locked);
    EXPECT_FALSE(l->record_failure("192.0.2.1", "alice", now).now_locked);
    now += 10s;
  }
  EXPECT_TRUE(l->record_failure("192.0.2.1", "alice", now).now_locked);
  TimePoint locked_at = now;
  auto check = l->check("192.0.2.1", "Alice", now + 1s);  // user compared case-insensitively
  EXPECT_TRUE(check.locked);
  EXPECT_EQ(check.retry_after, 15min - 1s);
  // The right password does not help while locked: the host does not even verify it.
  EXPECT_TRUE(l->check("192.0.2.1", "alice", locked_at + 15min - 1s).locked);
  EXPECT_FALSE(l->check("192.0.2.1", "alice", locked_at + 15min).locked);
  // After the window, the old failures no longer count.
  EXPECT_EQ(l->record_failure("192.0.2.1", "alice", locked_at + 15min).delay, 0ms);
  EXPECT_FALSE(l->check("192.0.2.1", "alice", locked_at + 15min).locked);
}

TEST(FailureLimiterTest, FailuresOutsideTheSlidingWindowDoNotCount) {
  auto l = limiter();
  for (int i = 0; i < 20; ++i) {
    // One failure every 4 minutes: never 5 within 15 minutes.
    auto verdict = l->record_failure("192.0.2.1", "alice", kStart + i * 4min);
    EXPECT_FALSE(verdict.now_locked) << i;
  }
  EXPECT_FALSE(l->check("192.0.2.1", "alice", kStart + 80min).locked);
}

TEST(FailureLimiterTest, OneStaleDeviceDoesNotLockOutTheOffice) {
  auto l = limiter();
  for (int i = 0; i < 5; ++i)
    l->record_failure("198.51.100.7", "printer@example.org", kStart + i * 1s);
  EXPECT_TRUE(l->check("198.51.100.7", "printer@example.org", kStart + 10s).locked);
  // Same NAT address, other users: fine.
  EXPECT_FALSE(l->check("198.51.100.7", "alice@example.org", kStart + 10s).locked);
  EXPECT_EQ(l->record_failure("198.51.100.7", "alice@example.org", kStart + 10s).delay, 0ms);
}

TEST(FailureLimiterTest, FailuresWithoutAUserNameCountForTheAddressOnly) {
  // A failure before the client named a user (or a mechanism that did not say) must not
  // be judged by the per-user bound: that would lock the whole NAT address out after 5.
  auto l = limiter();
  for (int i = 0; i < 10; ++i)
    l->record_failure("198.51.100.7", "", kStart + i * 1s);
  EXPECT_FALSE(l->check("198.51.100.7", "", kStart + 11s).locked);
  EXPECT_FALSE(l->check("198.51.100.7", "alice@example.org", kStart + 11s).locked);
  for (int i = 10; i < 30; ++i)
    l->record_failure("198.51.100.7", "", kStart + i * 1s);
  EXPECT_TRUE(l->check("198.51.100.7", "", kStart + 31s).locked);  // the per-IP bound (30)
}

TEST(FailureLimiterTest, PerIpBoundCatchesSprayingManyUsers) {
  auto l = limiter();
  bool locked = false;
  for (int i = 0; i < 30; ++i) {
    EXPECT_FALSE(l->check("203.0.113.9", "user" + std::to_string(i), kStart).locked);
    locked = l->record_failure("203.0.113.9", "user" + std::to_string(i), kStart).now_locked;
  }
  EXPECT_TRUE(locked);
  EXPECT_TRUE(l->check("203.0.113.9", "someone-new", kStart + 1s).locked);
  EXPECT_FALSE(l->check("203.0.113.10", "someone-new", kStart + 1s).locked);
}

TEST(FailureLimiterTest, SprayingIsDelayedToo) {
  auto l = limiter();
  std::chrono::milliseconds last{0};
  for (int i = 0; i < 29; ++i)
    last = l->record_failure("203.0.113.9", "user" + std::to_string(i), kStart).delay;
  EXPECT_EQ(last, 4s);  // 29/30 of the IP bound scales to 5/5 of the pair bound
}

TEST(FailureLimiterTest, SuccessClearsThePairOnly) {
  auto l = limiter();
  for (int i = 0; i < 4; ++i)
    l->record_failure("192.0.2.1", "alice", kStart);
  l->record_success("192.0.2.1", "ALICE", kStart);
  EXPECT_EQ(l->record_failure("192.0.2.1", "alice", kStart).delay, 0ms);
  EXPECT_FALSE(l->record_failure("192.0.2.1", "alice", kStart).now_locked);
}

TEST(FailureLimiterTest, ExemptNetworksAreNeverCountedV4AndV6) {
  FailureLimiterOptions options;
  for (const char* network : {"10.0.0.0/8", "2001:db8:1::/48", "192.0.2.55"})
    options.exempt.push_back(*base::parse_network(network));
  auto l = limiter(options);
  for (const char* ip : {"10.1.2.3", "::ffff:10.9.9.9", "2001:db8:1:ffff::1", "192.0.2.55"}) {
    for (int i = 0; i < 50; ++i) {
      auto verdict = l->record_failure(ip, "alice", kStart);
      EXPECT_EQ(verdict.delay, 0ms) << ip;
      EXPECT_FALSE(verdict.now_locked) << ip;
    }
    EXPECT_FALSE(l->check(ip, "alice", kStart).locked) << ip;
  }
  EXPECT_EQ(l->entries(), 0u);
  for (int i = 0; i < 5; ++i)
    l->record_failure("2001:db8:2::1", "alice", kStart);
  EXPECT_TRUE(l->check("2001:db8:2::1", "alice", kStart).locked);
  for (int i = 0; i < 5; ++i)
    l->record_failure("192.0.2.56", "alice", kStart);
  EXPECT_TRUE(l->check("192.0.2.56", "alice", kStart).locked);
}

// Exempt networks arrive parsed (bad ones: config_test.cpp ConfigAuthTest.BadNetworksAreNamed).
TEST(FailureLimiterTest, ZeroBoundsAreRefused) {
  FailureLimiterOptions zero;
  zero.per_user_ip_max_failures = 0;
  EXPECT_FALSE(FailureLimiter::create(zero));
}

TEST(FailureLimiterTest, NetworkContains) {
  auto network = base::parse_network("192.168.16.0/20");
  ASSERT_TRUE(network);
  EXPECT_TRUE(network->contains(*base::parse_ip("192.168.31.255")));
  EXPECT_FALSE(network->contains(*base::parse_ip("192.168.32.0")));
  auto all_v6 = base::parse_network("::/0");
  ASSERT_TRUE(all_v6);
  EXPECT_TRUE(all_v6->contains(*base::parse_ip("2001:db8::1")));
  EXPECT_FALSE(base::parse_ip("2001:db8::1/64").has_value());
}

TEST(FailureLimiterTest, ListAndUnlockByIpOrUser) {
  auto l = limiter();
  for (int i = 0; i < 5; ++i) {
    l->record_failure("192.0.2.1", "alice@example.org", kStart);
    l->record_failure("2001:DB8::1", "bob@example.org", kStart);
  }
  auto lockouts = l->lockouts(kStart + 1min);
  ASSERT_EQ(lockouts.size(), 2u);
  EXPECT_EQ(lockouts[0].ip, "192.0.2.1");
  EXPECT_EQ(lockouts[0].user, "alice@example.org");
  EXPECT_EQ(lockouts[0].failures, 5u);
  EXPECT_EQ(lockouts[0].remaining, 14min);
  EXPECT_EQ(lockouts[1].ip, "2001:db8::/64");  // canonical form of the /64

  EXPECT_TRUE(l->unlock("Alice@Example.org"));
  EXPECT_FALSE(l->check("192.0.2.1", "alice@example.org", kStart + 1min).locked);
  EXPECT_TRUE(l->unlock("2001:db8:0::1"));
  EXPECT_FALSE(l->check("2001:db8::1", "bob@example.org", kStart + 1min).locked);
  EXPECT_TRUE(l->lockouts(kStart + 1min).empty());
  EXPECT_FALSE(l->unlock("nobody"));
  EXPECT_TRUE(l->lockouts(kStart + 16min).empty());
}

// One host may use any address of its /64: the (IP, user) and the IP counters are those
// of the prefix, so a second address in the same /64 is locked out too, another is not.
TEST(FailureLimiterTest, Ipv6ClientsAreCountedPerPrefix) {
  FailureLimiterOptions options;
  options.per_user_ip_max_failures = 3;
  options.per_ip_max_failures = 5;
  auto l = limiter(options);
  for (int i = 1; i <= 3; ++i)
    l->record_failure("2001:db8:1:2::" + std::to_string(i), "alice", kStart);
  EXPECT_TRUE(l->check("2001:db8:1:2::b", "alice", kStart).locked);
  EXPECT_TRUE(l->check("2001:db8:1:2:ffff::1", "Alice", kStart).locked);
  EXPECT_FALSE(l->check("2001:db8:1:3::1", "alice", kStart).locked);
  // The per-IP bound too: user names sprayed from changing addresses of one /64.
  l->record_failure("2001:db8:1:2::4", "bob", kStart);
  EXPECT_FALSE(l->check("2001:db8:1:2::5", "", kStart).locked);
  l->record_failure("2001:db8:1:2::5", "carol", kStart);
  EXPECT_TRUE(l->check("2001:db8:1:2::6", "", kStart).locked);
  EXPECT_FALSE(l->check("2001:db8:1:3::6", "", kStart).locked);
  auto lockouts = l->lockouts(kStart);
  ASSERT_EQ(lockouts.size(), 2u);
  EXPECT_EQ(lockouts[0].ip, "2001:db8:1:2::/64");
  // unlock by any address of the prefix, or by the prefix as listed
  EXPECT_TRUE(l->unlock("2001:db8:1:2::/64"));
  EXPECT_FALSE(l->check("2001:db8:1:2::1", "alice", kStart).locked);
  for (int i = 1; i <= 3; ++i)
    l->record_failure("2001:db8:1:2::" + std::to_string(i), "alice", kStart);
  EXPECT_TRUE(l->unlock("2001:db8:1:2::77"));
  EXPECT_TRUE(l->lockouts(kStart).empty());
}

TEST(FailureLimiterTest, Ipv4MappedAddressesAreTheirIpv4Client) {
  FailureLimiterOptions options;
  options.per_user_ip_max_failures = 2;
  auto l = limiter(options);
  l->record_failure("192.0.2.7", "alice", kStart);
  l->record_failure("::ffff:192.0.2.7", "alice", kStart);
  EXPECT_TRUE(l->check("192.0.2.7", "alice", kStart).locked);
  EXPECT_EQ(l->lockouts(kStart)[0].ip, "192.0.2.7");
  EXPECT_FALSE(l->check("192.0.2.8", "alice", kStart).locked);
}

TEST(FailureLimiterTest, TheIpv6PrefixIsConfigurableWithinBounds) {
  FailureLimiterOptions options;
  options.per_user_ip_max_failures = 2;
  options.ipv6_prefix = 128;
  auto l = limiter(options);
  l->record_failure("2001:db8::1", "alice", kStart);
  l->record_failure("2001:db8::2", "alice", kStart);
  EXPECT_FALSE(l->check("2001:db8::2", "alice", kStart).locked);
  options.ipv6_prefix = 48;
  auto wide = limiter(options);
  wide->record_failure("2001:db8:0:1::1", "alice", kStart);
  wide->record_failure("2001:db8:0:2::1", "alice", kStart);
  EXPECT_TRUE(wide->check("2001:db8:0:3::1", "alice", kStart).locked);
  for (unsigned bad : {0u, 31u, 129u}) {
    options.ipv6_prefix = bad;
    EXPECT_FALSE(FailureLimiter::create(options)) << bad;
  }
}

TEST(FailureLimiterTest, PerIpLockoutIsListedWithoutUser) {
  auto l = limiter();
  for (int i = 0; i < 30; ++i)
    l->record_failure("203.0.113.9", "u" + std::to_string(i), kStart);
  auto lockouts = l->lockouts(kStart);
  ASSERT_EQ(lockouts.size(), 1u);
  EXPECT_EQ(lockouts[0].user, "");
  EXPECT_TRUE(l->unlock("203.0.113.9"));
  EXPECT_EQ(l->entries(), 0u);
}

TEST(FailureLimiterTest, TableIsBoundedAndEvictsTheOldest) {
  FailureLimiterOptions options;
  options.max_entries = 10;
  auto l = limiter(options);
  for (int i = 0; i < 5; ++i)
    l->record_failure("192.0.2.1", "alice", kStart);
  for (int i = 0; i < 100; ++i) {
    l->record_failure("198.51.100." + std::to_string(i), "x", kStart + 1s);
    EXPECT_LE(l->entries(), 10u);
  }
  EXPECT_FALSE(l->check("192.0.2.1", "alice", kStart + 2s).locked);  // evicted
}

TEST(FailureLimiterTest, LongUserNamesShareABoundedKey) {
  auto l = limiter();
  std::string long_user(5000, 'a');
  for (int i = 0; i < 5; ++i)
    l->record_failure("192.0.2.1", long_user + std::to_string(i), kStart);
  EXPECT_TRUE(l->check("192.0.2.1", long_user, kStart).locked);
  EXPECT_LE(l->lockouts(kStart)[0].user.size(), 256u);
}

}  // namespace
}  // namespace auth
