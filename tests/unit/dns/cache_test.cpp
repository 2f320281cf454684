// cache_test.cpp — dns::Cache with a clock the test moves: TTLs and their clamp, negative
// caching (RFC 2308 §5), kTemporary never kept, kBogus kept briefly, case-insensitive keys
// (RFC 4343), and the bound on entries.
#include "dns/cache.h"

#include <gtest/gtest.h>

namespace dns {
namespace {

using namespace std::chrono_literals;

class CacheTest : public ::testing::Test {
 protected:
  Cache make(CacheLimits limits = {}) {
    return Cache(limits, [this] { return now_; });
  }
  static AnswerPtr answer(Status status, std::chrono::seconds ttl) {
    auto made = std::make_shared<Answer>();
    made->status = status;
    made->ttl = ttl;
    return made;
  }
  Cache::Clock::time_point now_{Cache::Clock::duration(1000000000)};
};

TEST_F(CacheTest, KeptForItsTtl) {
  Cache cache = make();
  cache.store("example.com", Type::kTxt, answer(Status::kOk, 60s));
  now_ += 59s;
  ASSERT_NE(cache.find("example.com", Type::kTxt), nullptr);
  EXPECT_EQ(cache.find("example.com", Type::kA), nullptr);  // another type
  now_ += 1s;
  EXPECT_EQ(cache.find("example.com", Type::kTxt), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

// A hostile zone's huge answer (many or long TXT strings) is used once, never kept: the
// cache's memory stays bounded by entries of at most 8 KiB.
TEST_F(CacheTest, AnswersOver8KibAreNotKept) {
  Cache cache = make();
  auto big = std::make_shared<Answer>(*answer(Status::kOk, 60s));
  big->texts.assign(3, std::string(2800, 'x'));  // 8,400 octets
  cache.store("big.example", Type::kTxt, big);
  EXPECT_EQ(cache.find("big.example", Type::kTxt), nullptr);
  auto fits = std::make_shared<Answer>(*answer(Status::kOk, 60s));
  fits->texts.assign(2, std::string(4000, 'x'));  // 8,000 octets
  cache.store("fits.example", Type::kTxt, fits);
  EXPECT_NE(cache.find("fits.example", Type::kTxt), nullptr);
}

TEST_F(CacheTest, NamesCompareWithoutCaseOrTrailingDot) {
  Cache cache = make();
  cache.store("Example.COM.", Type::kMx, answer(Status::kOk, 60s));
  EXPECT_NE(cache.find("example.com", Type::kMx), nullptr);
  EXPECT_NE(cache.find("EXAMPLE.com.", Type::kMx), nullptr);
}

TEST_F(CacheTest, TtlIsClampedBetweenTheMinimumAndADay) {
  Cache cache = make();
  cache.store("zero.example", Type::kA, answer(Status::kOk, 0s));
  cache.store("long.example", Type::kA, answer(Status::kOk, std::chrono::seconds(7 * 86400)));
  now_ += 4s;
  EXPECT_NE(cache.find("zero.example", Type::kA), nullptr);  // the minimum: 5 s
  now_ += 1s;
  EXPECT_EQ(cache.find("zero.example", Type::kA), nullptr);
  now_ += 86400s - 5s - 1s;
  EXPECT_NE(cache.find("long.example", Type::kA), nullptr);
  now_ += 1s;
  EXPECT_EQ(cache.find("long.example", Type::kA), nullptr);  // at most a day
}

TEST_F(CacheTest, NegativeAnswersForTheirTtl) {
  Cache cache = make();
  cache.store("gone.example", Type::kA, answer(Status::kNxDomain, 300s));
  cache.store("bare.example", Type::kMx, answer(Status::kNoData, 30s));
  now_ += 29s;
  ASSERT_NE(cache.find("gone.example", Type::kA), nullptr);
  EXPECT_EQ(cache.find("gone.example", Type::kA)->status, Status::kNxDomain);
  EXPECT_EQ(cache.find("bare.example", Type::kMx)->status, Status::kNoData);
  now_ += 1s;
  EXPECT_EQ(cache.find("bare.example", Type::kMx), nullptr);
  EXPECT_NE(cache.find("gone.example", Type::kA), nullptr);
}

TEST_F(CacheTest, TemporaryFailuresAreNotKeptAndBogusOnlyBriefly) {
  Cache cache = make();
  cache.store("down.example", Type::kTxt, answer(Status::kTemporary, 3600s));
  EXPECT_EQ(cache.find("down.example", Type::kTxt), nullptr);
  cache.store("forged.example", Type::kTxt, answer(Status::kBogus, 3600s));
  EXPECT_NE(cache.find("forged.example", Type::kTxt), nullptr);
  now_ += 5s;
  EXPECT_EQ(cache.find("forged.example", Type::kTxt), nullptr);
}

TEST_F(CacheTest, ANewerAnswerReplacesTheOlder) {
  Cache cache = make();
  cache.store("example.com", Type::kA, answer(Status::kOk, 600s));
  cache.store("example.com", Type::kA, answer(Status::kNxDomain, 10s));
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_EQ(cache.find("example.com", Type::kA)->status, Status::kNxDomain);
  now_ += 10s;
  EXPECT_EQ(cache.find("example.com", Type::kA), nullptr);
}

TEST_F(CacheTest, BoundedByDroppingWhatExpiresFirst) {
  Cache cache = make({.max_entries = 3});
  cache.store("a.example", Type::kA, answer(Status::kOk, 300s));
  cache.store("b.example", Type::kA, answer(Status::kOk, 10s));
  cache.store("c.example", Type::kA, answer(Status::kOk, 600s));
  cache.store("d.example", Type::kA, answer(Status::kOk, 60s));
  EXPECT_EQ(cache.size(), 3u);
  EXPECT_EQ(cache.find("b.example", Type::kA), nullptr);
  EXPECT_NE(cache.find("a.example", Type::kA), nullptr);
  EXPECT_NE(cache.find("c.example", Type::kA), nullptr);
  EXPECT_NE(cache.find("d.example", Type::kA), nullptr);
  for (int i = 0; i < 100; ++i) {
    cache.store("n" + std::to_string(i) + ".example", Type::kA, answer(Status::kOk, 1000s));
  }
  EXPECT_EQ(cache.size(), 3u);
}

}  // namespace
}  // namespace dns
