// recent_keys_test.cpp — base/recent_keys.h: once per key per window, and never more than
// its capacity of keys.
#include "base/recent_keys.h"

#include <gtest/gtest.h>

#include <string>

namespace {

using namespace std::chrono_literals;
using Clock = base::RecentKeys::Clock;

TEST(RecentKeysTest, AKeyIsLetThroughOncePerWindow) {
  base::RecentKeys keys(8, 1h);
  const Clock::time_point start{};
  EXPECT_TRUE(keys.first_in_window("example.org", start));
  EXPECT_FALSE(keys.first_in_window("example.org", start + 1s));
  EXPECT_FALSE(keys.first_in_window("example.org", start + 59min));
  EXPECT_TRUE(keys.first_in_window("example.net", start + 59min));
  // The window is counted from the time it was let through, not from the last ask.
  EXPECT_TRUE(keys.first_in_window("example.org", start + 1h));
  EXPECT_FALSE(keys.first_in_window("example.org", start + 1h + 30min));
  EXPECT_EQ(keys.size(), 2u);
}

TEST(RecentKeysTest, TheSetNeverHoldsMoreThanItsCapacity) {
  base::RecentKeys keys(4, 1h);
  const Clock::time_point start{};
  for (int i = 0; i < 4; ++i)
    EXPECT_TRUE(keys.first_in_window("d" + std::to_string(i), start + std::chrono::minutes(i)));
  EXPECT_EQ(keys.size(), 4u);
  // Full, nothing expired: all are forgotten to make room.
  EXPECT_TRUE(keys.first_in_window("d4", start + 10min));
  EXPECT_EQ(keys.size(), 1u);
  EXPECT_TRUE(keys.first_in_window("d0", start + 11min));
  for (int i = 5; i < 7; ++i)
    EXPECT_TRUE(keys.first_in_window("d" + std::to_string(i), start + 12min));
  // Full again; d4 and d0 are past their window by now: only they go.
  EXPECT_TRUE(keys.first_in_window("d7", start + 11min + 1h));
  EXPECT_EQ(keys.size(), 3u);
  EXPECT_FALSE(keys.first_in_window("d5", start + 11min + 1h));
  EXPECT_FALSE(keys.first_in_window("d6", start + 11min + 1h));
}

}  // namespace
