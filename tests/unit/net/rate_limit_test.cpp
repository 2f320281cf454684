// rate_limit_test.cpp — the sliding-window tables behind the connection-rate and
// message-rate limits (src/net/rate_limit.h): limit, window slide, bound on memory, keys.
#include "net/rate_limit.h"

#include <gtest/gtest.h>

namespace net {
namespace {

using std::chrono::minutes;
using std::chrono::seconds;

TEST(RateLimitTest, AdmitsUpToTheLimitThenRefuses) {
  ConnectionRateTable table(3, minutes(1), 100);
  RateClock::time_point t0{};
  AddressKey a = address_key("192.0.2.7", 64);
  AddressKey b = address_key("192.0.2.8", 64);
  EXPECT_TRUE(table.admit(a, t0));
  EXPECT_TRUE(table.admit(a, t0 + seconds(1)));
  EXPECT_TRUE(table.admit(a, t0 + seconds(2)));
  EXPECT_FALSE(table.admit(a, t0 + seconds(3)));
  EXPECT_TRUE(table.admit(b, t0 + seconds(3)));  // another client has its own count
  // Refusals are not counted: a full minute later all of the previous window has slid out.
  EXPECT_FALSE(table.admit(a, t0 + seconds(59)));
  EXPECT_TRUE(table.admit(a, t0 + seconds(120)));
}

TEST(RateLimitTest, WindowSlidesInsteadOfResettingAtItsEdge) {
  ConnectionRateTable table(10, minutes(1), 100);
  RateClock::time_point t0{};
  AddressKey a = address_key("192.0.2.7", 64);
  for (int i = 0; i < 10; ++i)
    ASSERT_TRUE(table.admit(a, t0));
  auto admitted_of_ten = [&](RateClock::time_point now) {
    int admitted = 0;
    for (int i = 0; i < 10; ++i)
      admitted += table.admit(a, now) ? 1 : 0;
    return admitted;
  };
  EXPECT_EQ(admitted_of_ten(t0 + seconds(59)), 0);
  // Just past the fixed window's edge nearly all of the previous 10 still count (a fixed
  // window would admit 10 more here: 20 within two seconds).
  EXPECT_EQ(admitted_of_ten(t0 + seconds(61)), 1);
  // Half-way through the next window half of them do: 10 * 0.5 + 1 leaves room for 4.
  EXPECT_EQ(admitted_of_ten(t0 + seconds(90)), 4);
}

TEST(RateLimitTest, ZeroTurnsTheLimitOff) {
  ConnectionRateTable table(0, minutes(1), 1);
  for (int i = 0; i < 1000; ++i)
    ASSERT_TRUE(table.admit(address_key("192.0.2.7", 64), RateClock::time_point{}));
  EXPECT_EQ(table.size(), 0u);
}

TEST(RateLimitTest, Ipv6IsCountedPerSlash64) {
  EXPECT_EQ(address_key("2001:db8:1:2::1", 64), address_key("2001:db8:1:2:ffff::9", 64));
  EXPECT_NE(address_key("2001:db8:1:2::1", 64), address_key("2001:db8:1:3::1", 64));
  EXPECT_NE(address_key("192.0.2.7", 64), address_key("192.0.2.8", 64));
  EXPECT_EQ(address_key("192.0.2.7", 64), address_key("::ffff:192.0.2.7", 64));
  ConnectionRateTable table(1, minutes(1), 100);
  EXPECT_TRUE(table.admit(address_key("2001:db8:1:2::1", 64), RateClock::time_point{}));
  EXPECT_FALSE(table.admit(address_key("2001:db8:1:2::2", 64), RateClock::time_point{}));
}

TEST(RateLimitTest, TheIpv6PrefixIsConfigurable) {
  EXPECT_EQ(address_key("2001:db8:1:2::1", 48), address_key("2001:db8:1:ff::1", 48));
  EXPECT_NE(address_key("2001:db8:1:2::1", 48), address_key("2001:db8:2:2::1", 48));
  EXPECT_NE(address_key("2001:db8:1:2::1", 128), address_key("2001:db8:1:2::2", 128));
  EXPECT_EQ(address_key("::ffff:192.0.2.7", 48), address_key("192.0.2.7", 128));
}

TEST(RateLimitTest, MemoryIsBoundedAndIdleEntriesAreSweptWhenFull) {
  ConnectionRateTable table(5, minutes(1), 1000);
  RateClock::time_point t0{};
  for (unsigned i = 0; i < 5000; ++i) {
    std::string address = "10." + std::to_string(i / 65536) + "." + std::to_string(i / 256 % 256) +
                          "." + std::to_string(i % 256);
    ASSERT_TRUE(table.admit(address_key(address, 64), t0));
  }
  EXPECT_EQ(table.size(), 1000u);
  EXPECT_EQ(table.untracked(), 4000u);
  // Two windows later the old entries go as soon as a new client needs the room.
  EXPECT_TRUE(table.admit(address_key("192.0.2.7", 64), t0 + minutes(2)));
  EXPECT_EQ(table.size(), 1u);
}

}  // namespace
}  // namespace net
