// reply_test.cpp — the wire form of replies (RFC 5321 §4.2.1).
#include "smtp/reply.h"

#include <gtest/gtest.h>

namespace smtp {
namespace {

TEST(ReplyTest, SingleLineWithEnhancedCode) {
  std::string out;
  Reply{250, "2.0.0", "Ok"}.append_to(out);
  EXPECT_EQ(out, "250 2.0.0 Ok\r\n");
}

TEST(ReplyTest, MultiLineUsesHyphenOnAllButTheLast) {
  std::string out;
  Reply{250, "2.0.0", "first\nsecond\nlast"}.append_to(out);
  EXPECT_EQ(out, "250-2.0.0 first\r\n250-2.0.0 second\r\n250 2.0.0 last\r\n");
}

TEST(ReplyTest, EmptyEnhancedCodeIsLeftOut) {
  std::string out;
  Reply{220, "", "mx.example ESMTP smtpsd"}.append_to(out);
  EXPECT_EQ(out, "220 mx.example ESMTP smtpsd\r\n");
}

TEST(ReplyTest, EmptyTextKeepsTheCode) {
  std::string out;
  Reply{250, "2.0.0", ""}.append_to(out);
  EXPECT_EQ(out, "250 2.0.0\r\n");
}

TEST(ReplyTest, CarriageReturnsCannotForgeLines) {
  std::string out;
  Reply{550, "5.0.0", "a\r\r\nb"}.append_to(out);
  EXPECT_EQ(out, "550-5.0.0 a\r\n550 5.0.0 b\r\n");
}

TEST(ReplyTest, AppendsToExistingOutput) {
  std::string out = "x";
  append_reply(out, 221, "2.0.0", "Bye");
  EXPECT_EQ(out, "x221 2.0.0 Bye\r\n");
}

TEST(ReplyTest, OutOfRangeCodeIsClampedToThreeDigits) {
  std::string out;
  Reply{0, "4.3.0", "broken"}.append_to(out);
  EXPECT_EQ(out, "451 4.3.0 broken\r\n");
}

}  // namespace
}  // namespace smtp
