// published_test.cpp — base/published.h: what a thread loads is what was stored last, per
// object, across threads, and never what an object destroyed before held.
#include "base/published.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>

namespace {

using base::Published;

std::shared_ptr<const std::string> text(std::string value) {
  return std::make_shared<const std::string>(std::move(value));
}

TEST(PublishedTest, ALoadAfterAStoreOnTheSameThreadSeesTheNewValueAndAHolderKeepsTheOld) {
  Published<std::string> published(text("users 1"));
  const auto held = published.load();
  EXPECT_EQ(*held, "users 1");
  EXPECT_EQ(*published.load(), "users 1");  // this thread's copy
  published.store(text("users 2"));
  EXPECT_EQ(*published.load(), "users 2");
  EXPECT_EQ(*held, "users 1");
}

TEST(PublishedTest, TwoObjectsReadInTurnOnOneThreadEachGiveTheirOwn) {
  Published<std::string> users(text("users"));
  Published<std::string> aliases(text("aliases"));
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(*users.load(), "users");
    EXPECT_EQ(*aliases.load(), "aliases");
  }
  aliases.store(text("aliases 2"));
  EXPECT_EQ(*users.load(), "users");
  EXPECT_EQ(*aliases.load(), "aliases 2");
}

TEST(PublishedTest, AnObjectMadeWhereAnotherWasDestroyedGivesItsOwnValue) {
  // The thread's copy names the store() it came from, not the object: an object made in the
  // same memory as one just destroyed (as std::optional does here) is read afresh.
  std::optional<Published<std::string>> slot;
  slot.emplace(text("before the reload"));
  EXPECT_EQ(*slot->load(), "before the reload");
  slot.reset();
  slot.emplace(text("after the reload"));
  EXPECT_EQ(*slot->load(), "after the reload");
}

TEST(PublishedTest, AReaderThreadSeesWhatAnotherThreadStores) {
  Published<std::string> published(text("0"));
  std::atomic<bool> stop{false};
  std::atomic<int> last_seen{0};
  std::thread reader([&] {
    // Each value read is one that was stored, and they only go forward.
    while (!stop.load()) {
      const int seen = std::stoi(*published.load());
      EXPECT_GE(seen, last_seen.load());
      last_seen.store(seen);
    }
  });
  for (int i = 1; i <= 1000; ++i)
    published.store(text(std::to_string(i)));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (last_seen.load() != 1000 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::yield();
  stop.store(true);
  reader.join();
  EXPECT_EQ(last_seen.load(), 1000);
}

}  // namespace
