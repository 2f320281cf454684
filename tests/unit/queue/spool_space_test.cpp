// spool_space_test.cpp — queue::SpoolSpace: the room check against the reserve, the free
// space measured at most once per max_age (not at every MAIL), re-measured after it, and
// measured again before a refusal.
#include "queue/spool_space.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace queue {
namespace {

using namespace std::chrono_literals;

TEST(SpoolSpaceTest, RoomIsTheDeclaredSizeAboveTheReserve) {
  SpoolSpace space([] { return std::uint64_t{1000}; }, "/spool", 1h);
  EXPECT_TRUE(space.has_room(100, 900));
  EXPECT_FALSE(space.has_room(100, 901));
  EXPECT_FALSE(space.has_room(1001, 0));  // below the reserve already
}

TEST(SpoolSpaceTest, MeasuredOnceWithinMaxAge) {
  std::atomic<int> measures{0};
  SpoolSpace space(
      [&measures] {
        ++measures;
        return std::uint64_t{1} << 30;
      },
      "/spool", 1h);
  for (int i = 0; i < 1000; ++i)
    EXPECT_TRUE(space.has_room(0, 1));
  EXPECT_EQ(measures, 1);  // the one at construction
}

TEST(SpoolSpaceTest, MeasuredAgainOnceMaxAgeHasPassed) {
  std::atomic<std::uint64_t> free{1000};
  SpoolSpace space([&free] { return free.load(); }, "/spool", 20ms);
  EXPECT_TRUE(space.has_room(0, 1000));
  free = 10;                             // the disk fills up
  EXPECT_TRUE(space.has_room(0, 1000));  // still the last measure
  std::this_thread::sleep_for(30ms);
  EXPECT_FALSE(space.has_room(0, 1000));
}

TEST(SpoolSpaceTest, SpaceThatReturnsIsSeenAtOnce) {
  std::atomic<std::uint64_t> free{10};
  SpoolSpace space([&free] { return free.load(); }, "/spool", 1h);
  EXPECT_FALSE(space.has_room(0, 1000));
  free = 1000;  // a file removed
  EXPECT_TRUE(space.has_room(0, 1000));
}

}  // namespace
}  // namespace queue
