// verification_queue_test.cpp — auth::VerificationQueue: at most its capacity of tickets at
// once, and a place comes back when its ticket goes (destroyed, moved over, or reset).
#include "auth/verification_queue.h"

#include <gtest/gtest.h>

#include <atomic>
#include <optional>
#include <thread>
#include <vector>

namespace auth {
namespace {

TEST(VerificationQueueTest, RefusesPastItsCapacityAndTakesAgainWhenATicketGoes) {
  VerificationQueue queue(2);
  auto a = queue.try_enter();
  auto b = queue.try_enter();
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(queue.try_enter());
  EXPECT_EQ(queue.in_use(), 2u);
  a.reset();
  EXPECT_EQ(queue.in_use(), 1u);
  auto c = queue.try_enter();
  ASSERT_TRUE(c);
  // A move carries the place; assigning over a ticket gives its own place back.
  VerificationQueue::Ticket moved = std::move(*c);
  c.reset();
  EXPECT_EQ(queue.in_use(), 2u);
  moved = std::move(*b);
  EXPECT_EQ(queue.in_use(), 1u);
  b.reset();
  EXPECT_EQ(queue.in_use(), 1u);
}

TEST(VerificationQueueTest, NeverMoreThanItsCapacityFromManyThreads) {
  VerificationQueue queue(8);
  std::atomic<std::size_t> peak{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5000; ++i) {
        std::vector<VerificationQueue::Ticket> held;
        while (auto ticket = queue.try_enter()) {
          held.push_back(std::move(*ticket));
          std::size_t now = queue.in_use();
          std::size_t seen = peak.load();
          while (now > seen && !peak.compare_exchange_weak(seen, now)) {
          }
          if (held.size() == 3) break;
        }
      }
    });
  }
  for (auto& thread : threads)
    thread.join();
  EXPECT_LE(peak.load(), 8u);
  EXPECT_EQ(queue.in_use(), 0u);
}

}  // namespace
}  // namespace auth
