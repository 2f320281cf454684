// Tests of mailauth/authentication_results: the field we add (RFC 8601 §2.2) and the fields
// claiming our authserv-id that must be removed (RFC 8601 §5).
#include "mailauth/authentication_results.h"

#include <gtest/gtest.h>

namespace mailauth {
namespace {

TEST(AuthenticationResults, NoResultIsNone) {
  EXPECT_EQ(authentication_results("mx.example.org", AuthResults{}), "mx.example.org; none");
}

TEST(AuthenticationResults, EveryMethodFoldedOnItsOwnLine) {
  AuthResults results;
  results.spf = AuthResults::Spf{SpfResult::kPass, false, "alice@example.com", ""};
  results.dkim_checked = true;
  results.dkim.push_back(
      AuthResults::Dkim{DkimResult::kPass, "example.com", "s1", "AbCdEfGhIjKl", "rsa-sha256", ""});
  results.dmarc = AuthResults::Dmarc{DmarcResult::kPass, "example.com", "reject", "none", ""};
  EXPECT_EQ(authentication_results("mx.example.org", results),
            "mx.example.org;\r\n\tspf=pass smtp.mailfrom=alice@example.com;"
            "\r\n\tdkim=pass header.d=example.com header.s=s1 header.a=rsa-sha256 "
            "header.b=AbCdEfGh;\r\n\tdmarc=pass (p=reject dis=none) header.from=example.com");
}

TEST(AuthenticationResults, HeloIdentityAndNullSender) {
  AuthResults results;
  results.spf = AuthResults::Spf{SpfResult::kNeutral, true, "client.example", ""};
  EXPECT_EQ(authentication_results("mx", results), "mx;\r\n\tspf=neutral smtp.helo=client.example");
  results.spf = AuthResults::Spf{SpfResult::kNone, false, "", ""};
  EXPECT_EQ(authentication_results("mx", results), "mx;\r\n\tspf=none smtp.mailfrom=\"<>\"");
  results.dkim_checked = true;
  EXPECT_NE(authentication_results("mx", results).find("dkim=none"), std::string::npos);
}

// RFC 8617 §4.2: the chain's status, the latest sealer as a comment, the client.
TEST(AuthenticationResults, ArcWithItsSealer) {
  AuthResults results;
  results.arc = AuthResults::Arc{ArcResult::kPass, "lists.example.org", "", "192.0.2.7"};
  EXPECT_EQ(authentication_results("mx", results),
            "mx;\r\n\tarc=pass (sealer lists.example.org) smtp.remote-ip=192.0.2.7");
  results.arc = AuthResults::Arc{ArcResult::kFail, "lists.example.org",
                                 "ARC-Seal 1: signature (did) not verify\r\n", "2001:db8::1"};
  EXPECT_EQ(authentication_results("mx", results),
            "mx;\r\n\tarc=fail (ARC-Seal 1: signature did not verify; sealer lists.example.org) "
            "smtp.remote-ip=\"2001:db8::1\"");
  results.arc = AuthResults::Arc{};
  EXPECT_EQ(authentication_results("mx", results), "mx;\r\n\tarc=none");
}

// A hostile d= or MAIL FROM can neither end the field nor add a result of its own.
TEST(AuthenticationResults, HostileValuesAreQuotedWithoutLineBreaks) {
  AuthResults results;
  results.dkim_checked = true;
  results.dkim.push_back(AuthResults::Dkim{DkimResult::kFail, "evil.example\r\nX-Injected: 1",
                                           "a;b", "", "", "bad (sig) \\ here"});
  results.spf = AuthResults::Spf{SpfResult::kFail, false, "\"a;b\"@x", "x\r\ny"};
  const std::string value = authentication_results("mx", results);
  EXPECT_EQ(value.find("\r\nX-Injected"), std::string::npos);
  EXPECT_NE(value.find("header.d=\"evil.exampleX-Injected: 1\""), std::string::npos) << value;
  EXPECT_NE(value.find("header.s=\"a;b\""), std::string::npos) << value;
  EXPECT_NE(value.find("(bad sig  here)"), std::string::npos) << value;
  EXPECT_NE(value.find("smtp.mailfrom=\"\\\"a;b\\\"@x\""), std::string::npos) << value;
  // Only our folding: every CRLF is followed by a tab.
  for (std::size_t at = value.find("\r\n"); at != std::string::npos;
       at = value.find("\r\n", at + 2))
    EXPECT_EQ(value[at + 2], '\t');
}

TEST(ClaimsAuthservId, FirstTokenWithoutCase) {
  EXPECT_TRUE(claims_authserv_id(" mx.example.org; spf=pass", "mx.example.org"));
  EXPECT_TRUE(claims_authserv_id("MX.Example.ORG 1; none", "mx.example.org"));
  EXPECT_TRUE(claims_authserv_id(" (comment (nested)) mx.example.org;", "mx.example.org"));
  EXPECT_TRUE(claims_authserv_id("\r\n\t\"mx.example.org\"; none", "mx.example.org"));
  EXPECT_FALSE(claims_authserv_id(" mx.example.org.evil; none", "mx.example.org"));
  EXPECT_FALSE(claims_authserv_id(" other.example; mx.example.org", "mx.example.org"));
  EXPECT_FALSE(claims_authserv_id("", "mx.example.org"));
  EXPECT_FALSE(claims_authserv_id(" (unterminated mx.example.org", "mx.example.org"));
}

TEST(ForgedFields, PositionsAmongAuthenticationResultsHighestFirst) {
  const std::string section =
      "Authentication-Results: other.example; spf=pass\r\n"
      "Subject: x\r\n"
      "authentication-results: mx.example.org;\r\n\tdkim=pass\r\n"
      "X-Authentication-Results: mx.example.org; none\r\n"
      "Authentication-Results : mx.example.org; dmarc=pass\r\n"
      "Authentication-Results: (c) MX.EXAMPLE.ORG; none\r\n"
      "\r\n";
  EXPECT_EQ(forged_fields(section, "mx.example.org"), (std::vector<unsigned>{4, 3, 2}));
  EXPECT_TRUE(forged_fields("Subject: x\r\n\r\n", "mx.example.org").empty());
  EXPECT_TRUE(forged_fields("", "mx.example.org").empty());
}

}  // namespace
}  // namespace mailauth
