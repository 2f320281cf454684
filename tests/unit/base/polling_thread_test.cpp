// polling_thread_test.cpp — base::PollingThread: polls at its interval on its own thread,
// starts once, and never polls after its destructor has returned.
#include "base/polling_thread.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace {

using namespace std::chrono_literals;

TEST(PollingThread, PollsRepeatedlyOnAnotherThreadAndStopsWhenDestroyed) {
  std::atomic<int> polls{0};
  std::atomic<bool> on_caller{false};
  const auto caller = std::this_thread::get_id();
  {
    base::PollingThread poller;
    poller.start(5ms, [&] {
      if (std::this_thread::get_id() == caller) on_caller = true;
      ++polls;
    });
    poller.start(5ms, [&] { polls += 1000; });  // a second start does nothing
    for (int i = 0; i < 400 && polls < 3; ++i)
      std::this_thread::sleep_for(5ms);
  }
  const int at_destruction = polls;
  EXPECT_GE(at_destruction, 3);
  EXPECT_LT(at_destruction, 1000);
  EXPECT_FALSE(on_caller);
  std::this_thread::sleep_for(30ms);
  EXPECT_EQ(polls, at_destruction);
}

TEST(PollingThread, DestroyedBeforeTheFirstIntervalNeverPolls) {
  std::atomic<int> polls{0};
  {
    base::PollingThread poller;
    poller.start(std::chrono::hours(1), [&] { ++polls; });
  }
  EXPECT_EQ(polls, 0);
}

}  // namespace
