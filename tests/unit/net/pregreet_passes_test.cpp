// pregreet_passes_test.cpp — net::PregreetPasses: a client that passed skips the wait until
// the TTL, per whole address (IPv4-mapped is the IPv4 client), TTL 0 remembers nobody, and the
// table is bounded (expired entries make room; a full table forgets new passes).
#include "net/pregreet_passes.h"

#include <gtest/gtest.h>

namespace net {
namespace {

using namespace std::chrono_literals;

TEST(PregreetPasses, RememberedUntilTheTtl) {
  PregreetPasses passes(10s, 100);
  const RateClock::time_point t0 = RateClock::now();
  EXPECT_FALSE(passes.passed_recently("192.0.2.1", t0));
  passes.remember("192.0.2.1", t0);
  EXPECT_TRUE(passes.passed_recently("192.0.2.1", t0 + 9s));
  EXPECT_TRUE(passes.passed_recently("::ffff:192.0.2.1", t0 + 9s));
  EXPECT_FALSE(passes.passed_recently("192.0.2.2", t0 + 9s));
  EXPECT_FALSE(passes.passed_recently("192.0.2.1", t0 + 10s));
  EXPECT_EQ(passes.size(), 0u);  // the expired entry went
}

TEST(PregreetPasses, Ipv6IsPerAddressNotPerPrefix) {
  PregreetPasses passes(10s, 100);
  const RateClock::time_point t0 = RateClock::now();
  passes.remember("2001:db8::1", t0);
  EXPECT_TRUE(passes.passed_recently("2001:db8::1", t0));
  EXPECT_FALSE(passes.passed_recently("2001:db8::2", t0));
}

TEST(PregreetPasses, ZeroTtlRemembersNobody) {
  PregreetPasses passes(0s, 100);
  const RateClock::time_point t0 = RateClock::now();
  passes.remember("192.0.2.1", t0);
  EXPECT_FALSE(passes.passed_recently("192.0.2.1", t0));
  EXPECT_EQ(passes.size(), 0u);
}

TEST(PregreetPasses, Bounded) {
  PregreetPasses passes(10s, 2);
  const RateClock::time_point t0 = RateClock::now();
  passes.remember("192.0.2.1", t0);
  passes.remember("192.0.2.2", t0);
  passes.remember("192.0.2.3", t0 + 1s);  // full, nothing expired: not remembered
  EXPECT_FALSE(passes.passed_recently("192.0.2.3", t0 + 1s));
  EXPECT_EQ(passes.size(), 2u);
  passes.remember("192.0.2.3", t0 + 11s);  // the old ones expired: room made
  EXPECT_TRUE(passes.passed_recently("192.0.2.3", t0 + 11s));
  EXPECT_EQ(passes.size(), 1u);
}

}  // namespace
}  // namespace net
