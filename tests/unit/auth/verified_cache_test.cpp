// Tests for auth/verified_cache.cpp: only the same user, hash and password hit, within the
// ttl, in a bounded table.
#include "auth/verified_cache.h"

#include <gtest/gtest.h>

namespace auth {
namespace {

using namespace std::chrono_literals;

TEST(VerifiedCacheTest, HitsOnlyTheSamePasswordAndHashWithinTheTtl) {
  VerifiedCache cache(60s);
  auto t0 = VerifiedCache::Clock::now();
  EXPECT_FALSE(cache.hit("demo@x", "$argon2id$h1", "secret", t0));
  cache.remember("demo@x", "$argon2id$h1", "secret", t0);
  EXPECT_TRUE(cache.hit("demo@x", "$argon2id$h1", "secret", t0 + 59s));
  EXPECT_FALSE(cache.hit("demo@x", "$argon2id$h1", "Secret", t0 + 1s));   // wrong password
  EXPECT_FALSE(cache.hit("demo@x", "$argon2id$h2", "secret", t0 + 1s));   // password changed
  EXPECT_FALSE(cache.hit("other@x", "$argon2id$h1", "secret", t0 + 1s));  // another user
  EXPECT_FALSE(cache.hit("demo@x", "$argon2id$h1", "secret", t0 + 61s));  // expired
  EXPECT_EQ(cache.size(), 0u);  // the expired entry is gone
}

TEST(VerifiedCacheTest, ZeroTtlDisablesIt) {
  VerifiedCache cache(0s);
  auto t0 = VerifiedCache::Clock::now();
  cache.remember("demo@x", "h", "secret", t0);
  EXPECT_FALSE(cache.hit("demo@x", "h", "secret", t0));
  EXPECT_EQ(cache.size(), 0u);
}

TEST(VerifiedCacheTest, BoundedAndForgets) {
  VerifiedCache cache(60s, 2);
  auto t0 = VerifiedCache::Clock::now();
  cache.remember("a", "h", "p", t0);
  cache.remember("b", "h", "p", t0);
  cache.remember("c", "h", "p", t0);  // evicts a, the oldest
  EXPECT_EQ(cache.size(), 2u);
  EXPECT_FALSE(cache.hit("a", "h", "p", t0));
  EXPECT_TRUE(cache.hit("c", "h", "p", t0));
  cache.forget("c");
  EXPECT_FALSE(cache.hit("c", "h", "p", t0));
  cache.forget("");
  EXPECT_EQ(cache.size(), 0u);
}

}  // namespace
}  // namespace auth
