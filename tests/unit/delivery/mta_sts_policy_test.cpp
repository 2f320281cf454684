// mta_sts_policy_test.cpp — the MTA-STS policy file, TXT record and MX matching
// (delivery/mta_sts_policy.h; RFC 8461 §3.1, §3.2, §4.1).
#include "delivery/mta_sts_policy.h"

#include <gtest/gtest.h>

namespace delivery {
namespace {

TEST(StsPolicy, ParsesTheRfcExampleWithCrlf) {
  auto policy = parse_sts_policy(
      "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
      "mx: backupmx.example.com\r\nmax_age: 604800\r\n");
  ASSERT_TRUE(policy) << policy.error();
  EXPECT_EQ(policy->mode, StsMode::kEnforce);
  EXPECT_EQ(policy->max_age, 604800);
  EXPECT_EQ(policy->mx, (std::vector<std::string>{"mail.example.com", "*.example.net",
                                                  "backupmx.example.com"}));
}

TEST(StsPolicy, TakesLfLinesTrailingSpaceUnknownKeysAndNoFinalNewline) {
  auto policy = parse_sts_policy(
      "version: STSv1\nmode:testing  \nfuture_key: whatever: it is\nmx: MX.Example.COM.\n"
      "max_age: 86400");
  ASSERT_TRUE(policy) << policy.error();
  EXPECT_EQ(policy->mode, StsMode::kTesting);
  EXPECT_EQ(policy->mx, std::vector<std::string>{"mx.example.com"});
  EXPECT_EQ(policy->max_age, 86400);
}

TEST(StsPolicy, ModeNoneNeedsNoMx) {
  auto policy = parse_sts_policy("version: STSv1\nmode: none\nmax_age: 0\n");
  ASSERT_TRUE(policy) << policy.error();
  EXPECT_EQ(policy->mode, StsMode::kNone);
  EXPECT_TRUE(policy->mx.empty());
}

TEST(StsPolicy, MaxAgeAboveAYearIsCutToAYear) {
  auto policy =
      parse_sts_policy("version: STSv1\nmode: testing\nmx: a.example\nmax_age: 9999999999\n");
  ASSERT_TRUE(policy) << policy.error();
  EXPECT_EQ(policy->max_age, kMaxStsAge);
}

TEST(StsPolicy, RefusesBadInputWithTheLineAndTheReason) {
  struct Case {
    const char* text;
    const char* error;
  };
  const Case cases[] = {
      {"mode: enforce\nmx: a.example\nmax_age: 1\n", "no version field"},
      {"version: STSv2\nmode: enforce\n", "line 1: version must be STSv1"},
      {"version: stsv1\n", "line 1: version must be STSv1"},
      {"version: STSv1\nmode: strict\n", "line 2: mode must be enforce, testing or none"},
      {"version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx field in mode enforce"},
      {"version: STSv1\nmode: enforce\nmx: a.example\n", "no max_age field"},
      {"version: STSv1\nmx: a.example\nmax_age: 1\n", "no mode field"},
      {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n",
       "line 4: max_age must be 1 to 10 digits"},
      {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n",
       "line 4: max_age must be 1 to 10 digits"},
      {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n",
       "line 4: max_age must be 1 to 10 digits"},
      {"version: STSv1\nmode: enforce\nmx: *\nmax_age: 1\n",
       "line 3: mx must be a host name or *.name"},
      {"version: STSv1\nmode: enforce\nmx: *.com\nmax_age: 1\n",
       "line 3: mx must be a host name or *.name"},
      {"version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n",
       "line 3: mx must be a host name or *.name"},
      {"version: STSv1\nmode: enforce\nmx: bad_host.example\nmax_age: 1\n",
       "line 3: mx must be a host name or *.name"},
      {"version: STSv1\nmode: enforce\nmode: none\n", "line 3: mode repeated"},
      {"version: STSv1\rmode: enforce\n", "line 1: bare CR"},
      {"version: STSv1\n<html>\n", "line 2: not a \"key: value\" line"},
      {"version: STSv1\n mode: enforce\n", "line 2: invalid key"},
      {"", "no version field"},
  };
  for (const Case& c : cases) {
    auto policy = parse_sts_policy(c.text);
    ASSERT_FALSE(policy) << c.text;
    EXPECT_EQ(policy.error(), c.error) << c.text;
  }
}

TEST(StsPolicy, RefusesAPolicyOverTheSizeBound) {
  std::string text = "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 1\n";
  text += "x: " + std::string(kMaxPolicyBytes, 'a') + "\n";
  auto policy = parse_sts_policy(text);
  ASSERT_FALSE(policy);
  EXPECT_EQ(policy.error(), "policy larger than 65536 bytes");
}

TEST(StsPolicy, FormatReadsBack) {
  StsPolicy policy{StsMode::kEnforce, {"mail.example.com", "*.example.net"}, 604800};
  const std::string text = format_sts_policy(policy);
  EXPECT_EQ(text,
            "version: STSv1\r\nmode: enforce\r\nmx: mail.example.com\r\nmx: *.example.net\r\n"
            "max_age: 604800\r\n");
  auto again = parse_sts_policy(text);
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(*again, policy);
}

TEST(StsRecord, ParsesTheIdAndIgnoresExtensions) {
  EXPECT_EQ(parse_sts_record("v=STSv1; id=20160831085700Z;").value(), "20160831085700Z");
  EXPECT_EQ(parse_sts_record("v=STSv1;id=abc").value(), "abc");
  EXPECT_EQ(parse_sts_record("v=STSv1 ;\tid=abc ; ext.x=y-z ;").value(), "abc");
}

TEST(StsRecord, RefusesBadRecords) {
  for (const char* text : {"v=STSv1", "v=STSv1;", "v=STSv1; id=", "v=STSv1; id=abc-def",
                           "v=STSv1; id=a; id=b", "v=STSv1; id=123456789012345678901234567890123",
                           "v=STSv1 id=abc", "v=STSv1; id", "v=STSv2; id=abc", "v=STSv1x; id=abc",
                           "v=STSv1; id=a; x=", "v=STSv1; id=a; =b", "id=abc; v=STSv1"}) {
    EXPECT_FALSE(parse_sts_record(text)) << text;
  }
}

TEST(StsRecord, ExactlyOneStsRecordAmongTheTxtRecords) {
  EXPECT_EQ(select_sts_record({"v=spf1 -all", "v=STSv1; id=one"}).value(), "one");
  auto none = select_sts_record({"v=spf1 -all"});
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error(), "no v=STSv1 record");
  auto two = select_sts_record({"v=STSv1; id=one", "v=STSv1; id=two"});
  ASSERT_FALSE(two);
  EXPECT_EQ(two.error(), "2 v=STSv1 records (exactly one is allowed)");
  EXPECT_FALSE(select_sts_record({"v=STSv1; id=bad!"}));
  EXPECT_FALSE(select_sts_record({}));
}

TEST(StsMatch, ExactAndOneLabelWildcardWithoutCase) {
  StsPolicy policy{StsMode::kEnforce, {"mail.example.com", "*.example.net"}, 1};
  EXPECT_TRUE(matches(policy, "mail.example.com"));
  EXPECT_TRUE(matches(policy, "MAIL.Example.Com."));
  EXPECT_TRUE(matches(policy, "mx1.example.net"));
  EXPECT_TRUE(matches(policy, "MX1.EXAMPLE.NET."));
  EXPECT_FALSE(matches(policy, "example.net"));
  EXPECT_FALSE(matches(policy, "a.b.example.net"));
  EXPECT_FALSE(matches(policy, ".example.net"));
  EXPECT_FALSE(matches(policy, "mail.example.com.evil"));
  EXPECT_FALSE(matches(policy, "xmail.example.com"));
  EXPECT_FALSE(matches(policy, ""));
  EXPECT_FALSE(matches(StsPolicy{}, "mail.example.com"));
}

TEST(StsHost, NormalizesOrRefuses) {
  EXPECT_EQ(normalized_host("Mail.Example.COM."), "mail.example.com");
  EXPECT_EQ(normalized_host("localhost"), "");
  EXPECT_EQ(normalized_host("a..example"), "");
  EXPECT_EQ(normalized_host("-a.example"), "");
  EXPECT_EQ(normalized_host("a.example/x"), "");
  EXPECT_EQ(normalized_host(std::string(64, 'a') + ".example"), "");
}

}  // namespace
}  // namespace delivery
