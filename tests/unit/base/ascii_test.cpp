// ascii_test.cpp — base/ascii.h folds only A-Z; UTF-8 octets pass through.
#include "base/ascii.h"

#include <gtest/gtest.h>

namespace {

TEST(AsciiTest, OnlyAsciiLettersFold) {
  EXPECT_EQ(base::ascii_lowercase("MX.Example.ORG"), "mx.example.org");
  EXPECT_EQ(base::ascii_lowercase("ÄÖ@Ünï.TEST"), "ÄÖ@Ünï.test");
  EXPECT_EQ(base::ascii_uppercase("scram-sha-256"), "SCRAM-SHA-256");
  EXPECT_TRUE(base::equals_ignoring_case("Subject", "sUBJECT"));
  EXPECT_FALSE(base::equals_ignoring_case("Subject", "Subjec"));
  EXPECT_TRUE(base::starts_with_ignoring_case("AUTH PLAIN", "auth "));
  EXPECT_FALSE(base::starts_with_ignoring_case("AU", "auth "));
}

}  // namespace
