// ticket_keys_test.cpp — tls::TicketKeys with an injected clock: the sealing key changes
// every rotation period, the one before still opens for one more period, and nothing
// older opens. Real handshakes over the keys: certificate_store_test.cpp.
#include "tls/ticket_keys.h"

#include <gtest/gtest.h>

#include <chrono>

namespace tls {
namespace {

using namespace std::chrono_literals;

class FakeClock {
 public:
  std::chrono::steady_clock::time_point now() const { return now_; }
  void advance(std::chrono::seconds by) { now_ += by; }
  TicketKeys::Clock clock() {
    return [this] { return now(); };
  }

 private:
  std::chrono::steady_clock::time_point now_{std::chrono::hours(1000)};
};

std::span<const unsigned char, 16> name_of(const TicketKeys::Key& key) {
  return std::span<const unsigned char, 16>(key.name);
}

TEST(TicketKeysTest, DefaultRotationIsTwelveHours) {
  EXPECT_EQ(TicketKeys::kDefaultRotation, std::chrono::seconds(12h));
}

TEST(TicketKeysTest, RotatesOnScheduleAndKeepsThePreviousKeyForOpeningOnly) {
  FakeClock clock;
  TicketKeys keys(12h, clock.clock());
  const TicketKeys::Key first = keys.for_sealing();
  ASSERT_TRUE(keys.for_opening(name_of(first)));

  clock.advance(11h + 59min);
  EXPECT_EQ(keys.for_sealing().name, first.name);  // not due yet

  clock.advance(1min);
  const TicketKeys::Key second = keys.for_sealing();
  EXPECT_NE(second.name, first.name);
  EXPECT_NE(second.aes, first.aes);
  EXPECT_NE(second.hmac, first.hmac);
  auto old = keys.for_opening(name_of(first));
  ASSERT_TRUE(old);  // a ticket from the previous period still opens
  EXPECT_EQ(old->aes, first.aes);
  EXPECT_EQ(old->hmac, first.hmac);
  ASSERT_TRUE(keys.for_opening(name_of(second)));
  EXPECT_EQ(keys.for_opening(name_of(second))->aes, second.aes);

  clock.advance(12h);
  const TicketKeys::Key third = keys.for_sealing();
  EXPECT_NE(third.name, second.name);
  EXPECT_FALSE(keys.for_opening(name_of(first)));  // two periods old: forgotten
  EXPECT_TRUE(keys.for_opening(name_of(second)));
}

TEST(TicketKeysTest, AfterTwoIdlePeriodsNoOldKeyOpens) {
  FakeClock clock;
  TicketKeys keys(12h, clock.clock());
  const TicketKeys::Key first = keys.for_sealing();
  clock.advance(24h);
  EXPECT_FALSE(keys.for_opening(name_of(first)));
  EXPECT_NE(keys.for_sealing().name, first.name);
}

TEST(TicketKeysTest, UnknownNameDoesNotOpen) {
  TicketKeys keys;
  TicketKeys::Key stranger;
  stranger.name.fill(0x5a);
  EXPECT_FALSE(keys.for_opening(name_of(stranger)));
}

}  // namespace
}  // namespace tls
