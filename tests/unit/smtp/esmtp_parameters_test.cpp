// esmtp_parameters_test.cpp — SIZE, xtext, NOTIFY and ORCPT value grammars (RFC 1870,
// RFC 3461).
#include "smtp/esmtp_parameters.h"

#include <gtest/gtest.h>

namespace smtp {
namespace {

TEST(EsmtpParametersTest, Decimal) {
  EXPECT_EQ(parse_decimal("0"), 0u);
  EXPECT_EQ(parse_decimal("36700160"), 36700160u);
  EXPECT_EQ(parse_decimal("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(parse_decimal("18446744073709551616").has_value());
  EXPECT_FALSE(parse_decimal("").has_value());
  EXPECT_FALSE(parse_decimal("-1").has_value());
  EXPECT_FALSE(parse_decimal("1a").has_value());
  EXPECT_FALSE(parse_decimal("000000000000000000001").has_value());  // 21 digits
}

TEST(EsmtpParametersTest, Xtext) {
  std::string out;
  EXPECT_TRUE(decode_xtext("abc+2B+3Ddef", out));
  EXPECT_EQ(out, "abc+=def");
  for (std::string_view bad : {"a+2", "a+", "a+2b", "a=b", "a b", "a+GG", "\x7f"}) {
    std::string ignored;
    EXPECT_FALSE(decode_xtext(bad, ignored)) << bad;
  }
}

TEST(EsmtpParametersTest, Notify) {
  for (std::string_view good :
       {"NEVER", "never", "SUCCESS", "FAILURE,DELAY", "DELAY,SUCCESS,FAILURE"}) {
    EXPECT_TRUE(valid_notify(good)) << good;
  }
  for (std::string_view bad :
       {"", "NEVER,SUCCESS", "SUCCESS,", ",SUCCESS", "SUCCESS,SUCCESS", "SOMETIMES"}) {
    EXPECT_FALSE(valid_notify(bad)) << bad;
  }
}

TEST(EsmtpParametersTest, Orcpt) {
  std::string out;
  EXPECT_TRUE(decode_orcpt("rfc822;user+2Bext@example.com", out));
  EXPECT_EQ(out, "rfc822;user+ext@example.com");
  for (std::string_view bad : {"rfc822", ";a@b", "rfc822;", "rfc 822;a@b", "rfc822;a+zz"}) {
    std::string ignored;
    EXPECT_FALSE(decode_orcpt(bad, ignored)) << bad;
  }
}

TEST(EsmtpParametersTest, CaseInsensitiveEquality) {
  EXPECT_TRUE(equals_ignoring_case("Mail", "MAIL"));
  EXPECT_FALSE(equals_ignoring_case("MAIL", "MAILS"));
  EXPECT_FALSE(equals_ignoring_case("\xC3\xA4", "\xC3\x84"));  // ASCII only
}

}  // namespace
}  // namespace smtp
