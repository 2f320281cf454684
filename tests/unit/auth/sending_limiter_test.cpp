// sending_limiter_test.cpp — the one per-user limiter: message rate at MAIL, bounds on
// distinct external recipients per hour and per day, the hold and its lifting, and what
// survives a restart. Time is a fake steady clock: the tests never wait.
#include "auth/sending_limiter.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace auth {
namespace {

using std::chrono::hours;
using std::chrono::minutes;
using Clock = SendingLimiter::Clock;

std::vector<std::string> addresses(int first, int count) {
  std::vector<std::string> out;
  for (int i = first; i < first + count; ++i)
    out.push_back("r" + std::to_string(i) + "@example.net");
  return out;
}

std::vector<std::string> list(std::initializer_list<const char*> items) {
  return std::vector<std::string>(items.begin(), items.end());
}

SendingLimits bounds(std::uint64_t messages, std::uint64_t hour, std::uint64_t day) {
  SendingLimits limits;
  limits.messages_per_hour = messages;
  limits.external_recipients_per_hour = hour;
  limits.external_recipients_per_day = day;
  return limits;
}

TEST(SendingLimiterTest, MessageRateIsAskedWithoutCountingAndCountsAdmittedMessages) {
  SendingLimiter limiter(bounds(2, 0, 0));
  const Clock::time_point t0{};
  EXPECT_TRUE(limiter.may_start_message("alice@example.org", t0));
  EXPECT_FALSE(limiter.admit_message("alice@example.org", {}, t0, 0).hold);
  EXPECT_TRUE(limiter.may_start_message("alice@example.org", t0));
  limiter.admit_message("alice@example.org", {}, t0, 0);
  EXPECT_FALSE(limiter.may_start_message("alice@example.org", t0 + minutes(30)));
  EXPECT_TRUE(limiter.may_start_message("bob@example.org", t0));
  EXPECT_TRUE(limiter.may_start_message("alice@example.org", t0 + hours(2)));
}

TEST(SendingLimiterTest, NoMessageRateWhenZero) {
  SendingLimiter limiter(bounds(0, 0, 0));
  const Clock::time_point t0{};
  for (int i = 0; i < 100; ++i)
    EXPECT_FALSE(limiter.admit_message("alice", addresses(i, 1), t0, 0).hold);
  EXPECT_TRUE(limiter.may_start_message("alice", t0));
}

TEST(SendingLimiterTest, CrossingTheHourBoundHoldsThatMessageAndEveryLaterOne) {
  SendingLimiter limiter(bounds(0, 3, 100));
  const Clock::time_point t0{};
  EXPECT_FALSE(limiter.admit_message("alice", addresses(0, 2), t0, 1000).hold);
  EXPECT_FALSE(limiter.admit_message("alice", addresses(2, 1), t0 + minutes(1), 1060).hold);
  // The fourth distinct recipient in the hour crosses the bound of 3.
  MessageDecision crossing = limiter.admit_message("alice", addresses(3, 1), t0 + minutes(2), 1120);
  EXPECT_TRUE(crossing.hold);
  ASSERT_TRUE(crossing.crossed);
  EXPECT_EQ(crossing.crossed->user, "alice");
  EXPECT_EQ(crossing.crossed->window, SendingWindow::kHour);
  EXPECT_EQ(crossing.crossed->count, 4u);
  EXPECT_EQ(crossing.crossed->bound, 3u);
  EXPECT_EQ(crossing.crossed->since_unix, 1120);
  // Held from now on, even with no external recipient and after the window: reported once.
  MessageDecision later = limiter.admit_message("alice", {}, t0 + hours(30), 0);
  EXPECT_TRUE(later.hold);
  EXPECT_FALSE(later.crossed);
  ASSERT_TRUE(limiter.containment("alice"));
  // Another user is not affected.
  EXPECT_FALSE(limiter.admit_message("bob", addresses(0, 3), t0, 0).hold);
  EXPECT_FALSE(limiter.containment("bob"));
}

TEST(SendingLimiterTest, RecipientsAreCountedOnceEachWithoutRegardToCase) {
  SendingLimiter limiter(bounds(0, 2, 10));
  const Clock::time_point t0{};
  for (int i = 0; i < 20; ++i) {
    EXPECT_FALSE(limiter
                     .admit_message("alice", list({"Bob@Example.NET", "carol@example.net"}),
                                    t0 + minutes(i), 0)
                     .hold);
    EXPECT_FALSE(
        limiter.admit_message("alice", list({"bob@example.net"}), t0 + minutes(i), 0).hold);
  }
  EXPECT_TRUE(limiter.admit_message("alice", list({"dave@example.net"}), t0 + minutes(30), 0).hold);
}

TEST(SendingLimiterTest, TheHourSlidesWhileTheDayKeepsCounting) {
  SendingLimiter limiter(bounds(0, 5, 12));
  const Clock::time_point t0{};
  // Five new recipients every 61 minutes: never more than five in an hour...
  EXPECT_FALSE(limiter.admit_message("alice", addresses(0, 5), t0, 0).hold);
  EXPECT_FALSE(limiter.admit_message("alice", addresses(5, 5), t0 + minutes(61), 0).hold);
  // ... but the day's thirteenth distinct recipient crosses the day's bound.
  MessageDecision crossing = limiter.admit_message("alice", addresses(10, 3), t0 + minutes(122), 0);
  EXPECT_TRUE(crossing.hold);
  ASSERT_TRUE(crossing.crossed);
  EXPECT_EQ(crossing.crossed->window, SendingWindow::kDay);
  EXPECT_EQ(crossing.crossed->count, 13u);
  EXPECT_EQ(crossing.crossed->bound, 12u);
}

TEST(SendingLimiterTest, RecipientsOlderThanADayNoLongerCount) {
  SendingLimiter limiter(bounds(0, 0, 4));
  const Clock::time_point t0{};
  EXPECT_FALSE(limiter.admit_message("alice", addresses(0, 4), t0, 0).hold);
  EXPECT_FALSE(limiter.admit_message("alice", addresses(4, 4), t0 + hours(24), 0).hold);
  EXPECT_TRUE(limiter.admit_message("alice", addresses(8, 1), t0 + hours(25), 0).hold);
}

TEST(SendingLimiterTest, LiftEndsTheHoldAndStartsTheCountsAgain) {
  SendingLimiter limiter(bounds(0, 2, 100));
  const Clock::time_point t0{};
  EXPECT_TRUE(limiter.admit_message("alice", addresses(0, 3), t0, 0).hold);
  EXPECT_FALSE(limiter.lift("bob"));
  EXPECT_TRUE(limiter.lift("alice"));
  EXPECT_FALSE(limiter.lift("alice"));
  EXPECT_FALSE(limiter.containment("alice"));
  EXPECT_FALSE(limiter.admit_message("alice", addresses(3, 2), t0 + minutes(1), 0).hold);
  EXPECT_TRUE(limiter.admit_message("alice", addresses(5, 1), t0 + minutes(2), 0).hold);
}

// Queue selection (smtpsctl queue release --user) and the FailureLimiter ignore ASCII case:
// so does the limiter, or releasing ALICE's mail would leave alice held.
TEST(SendingLimiterTest, UsersAreOneWhateverTheirCase) {
  SendingLimiter limiter(bounds(2, 2, 100));
  const Clock::time_point t0{};
  limiter.admit_message("Alice", {}, t0, 0);
  limiter.admit_message("alice", {}, t0, 0);
  EXPECT_FALSE(limiter.may_start_message("ALICE", t0));
  MessageDecision crossing = limiter.admit_message("ALICE", addresses(0, 3), t0, 5);
  EXPECT_TRUE(crossing.hold);
  ASSERT_TRUE(crossing.crossed);
  EXPECT_EQ(crossing.crossed->user, "alice");
  ASSERT_TRUE(limiter.containment("aLiCe"));
  EXPECT_TRUE(limiter.lift("ALICE"));
  EXPECT_FALSE(limiter.containment("alice"));
}

TEST(SendingLimiterTest, NoRecipientBoundWhenBothAreZero) {
  SendingLimiter limiter(bounds(1000, 0, 0));
  EXPECT_FALSE(limiter.admit_message("alice", addresses(0, 500), Clock::time_point{}, 0).hold);
}

TEST(SendingLimiterTest, AFullTableLetsANewUserThroughUncountedUntilIdleUsersAreSwept) {
  SendingLimiter limiter(bounds(0, 1, 0), /*state_file=*/"", /*max_users=*/2);
  const Clock::time_point t0{};
  EXPECT_FALSE(limiter.admit_message("alice", addresses(0, 1), t0, 0).hold);
  EXPECT_TRUE(limiter.admit_message("bob", addresses(0, 2), t0, 0).hold);  // held: kept
  EXPECT_FALSE(limiter.admit_message("carol", addresses(0, 5), t0, 0).hold);
  EXPECT_FALSE(limiter.containment("carol"));
  // A day later alice (idle, not held) is swept out; bob, held, stays.
  EXPECT_TRUE(limiter.admit_message("carol", addresses(0, 5), t0 + hours(25), 0).hold);
  EXPECT_TRUE(limiter.containment("bob"));
  EXPECT_FALSE(limiter.admit_message("alice", addresses(0, 1), t0 + hours(25), 0).hold);
  EXPECT_FALSE(limiter.containment("alice"));
}

class SendingLimiterFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("sending_limiter_test." + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    file_ = (dir_ / "sending-limits.held").string();
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::filesystem::path dir_;
  std::string file_;
};

TEST_F(SendingLimiterFileTest, WhoIsHeldSurvivesARestartButTheCountsDoNot) {
  {
    SendingLimiter limiter(bounds(0, 2, 100), file_);
    EXPECT_TRUE(
        limiter.admit_message("alice smith\n%", addresses(0, 3), Clock::time_point{}, 77).hold);
    EXPECT_FALSE(limiter.admit_message("bob", addresses(0, 2), Clock::time_point{}, 0).hold);
  }
  SendingLimiter restarted(bounds(0, 2, 100), file_);
  auto held = restarted.containments();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].user, "alice smith\n%");
  EXPECT_EQ(held[0].window, SendingWindow::kHour);
  EXPECT_EQ(held[0].count, 3u);
  EXPECT_EQ(held[0].bound, 2u);
  EXPECT_EQ(held[0].since_unix, 77);
  EXPECT_TRUE(restarted.admit_message("alice smith\n%", {}, Clock::now(), 0).hold);
  // bob's two recipients were forgotten: two more do not cross the bound.
  EXPECT_FALSE(restarted.admit_message("bob", addresses(2, 2), Clock::now(), 0).hold);
  // A lift is written too.
  EXPECT_TRUE(restarted.lift("alice smith\n%"));
  SendingLimiter again(bounds(0, 2, 100), file_);
  EXPECT_TRUE(again.containments().empty());
}

TEST_F(SendingLimiterFileTest, AHeldUserIsReadBackInLowerCase) {
  {
    std::ofstream out(file_);
    out << "Alice 1h 3 2 100\n";
  }
  SendingLimiter limiter(bounds(0, 2, 100), file_);
  ASSERT_TRUE(limiter.containment("ALICE"));
  EXPECT_EQ(limiter.containments().at(0).user, "alice");
  EXPECT_TRUE(limiter.lift("alice"));
  SendingLimiter again(bounds(0, 2, 100), file_);
  EXPECT_TRUE(again.containments().empty());
}

TEST_F(SendingLimiterFileTest, AnUnreadableLineIsSkipped) {
  {
    std::ofstream out(file_);
    out << "garbage\nalice 1h 3 2 100\nbob 2h 1 1 1\ncarol 24h x 1 1\n%ZZ 1h 1 1 1\n";
  }
  SendingLimiter limiter(bounds(0, 2, 100), file_);
  auto held = limiter.containments();
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].user, "alice");
}

TEST(SendingLimiterTest, UserNamesAreEncodedForTheStateFile) {
  EXPECT_EQ(encode_user("a b%\x7f\xc3\xa9"), "a%20b%25%7F%C3%A9");
  EXPECT_EQ(decode_user("a%20b%25%7F%C3%A9"), std::string("a b%\x7f\xc3\xa9"));
  EXPECT_FALSE(decode_user("a%2"));
  EXPECT_FALSE(decode_user("a%zz"));
  EXPECT_FALSE(decode_user(""));
}

}  // namespace
}  // namespace auth
