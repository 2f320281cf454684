// spf_record_test.cpp — mailauth::parse_spf_record (RFC 7208 §4.5, §4.6, §5, §6) and the
// macro expander (§7).
#include <gtest/gtest.h>

#include "mailauth/spf.h"

namespace {

using mailauth::SpfMacroUse;
using mailauth::SpfMechanismKind;
using mailauth::SpfQualifier;

TEST(SpfRecordTest, ParsesEveryMechanismQualifierAndCidr) {
  auto record = mailauth::parse_spf_record(
      "v=spf1 +a -mx:mx.example.com/24//64 ~ptr ?ip4:192.0.2.0/24 ip6:2001:db8::/32 "
      "include:_spf.example.org exists:%{i}.bl.example.net a//96 all redirect=other.example "
      "exp=why.example unknown-mod=%{d}");
  ASSERT_TRUE(record) << record.error();
  ASSERT_EQ(record->mechanisms.size(), 9u);
  EXPECT_EQ(record->mechanisms[0].kind, SpfMechanismKind::kA);
  EXPECT_EQ(record->mechanisms[1].kind, SpfMechanismKind::kMx);
  EXPECT_EQ(record->mechanisms[1].qualifier, SpfQualifier::kFail);
  EXPECT_EQ(record->mechanisms[1].domain_spec, "mx.example.com");
  EXPECT_EQ(record->mechanisms[1].ip4_prefix, 24u);
  EXPECT_EQ(record->mechanisms[1].ip6_prefix, 64u);
  EXPECT_EQ(record->mechanisms[2].qualifier, SpfQualifier::kSoftFail);
  EXPECT_EQ(record->mechanisms[3].qualifier, SpfQualifier::kNeutral);
  EXPECT_EQ(record->mechanisms[3].ip4_prefix, 24u);
  EXPECT_EQ(record->mechanisms[4].ip6_prefix, 32u);
  EXPECT_EQ(record->mechanisms[6].domain_spec, "%{i}.bl.example.net");
  EXPECT_EQ(record->mechanisms[7].ip4_prefix, 32u);
  EXPECT_EQ(record->mechanisms[7].ip6_prefix, 96u);
  EXPECT_EQ(record->mechanisms[8].kind, SpfMechanismKind::kAll);
  EXPECT_EQ(record->redirect, "other.example");
  EXPECT_EQ(record->explanation, "why.example");
}

TEST(SpfRecordTest, SyntaxErrorsAreErrors) {
  for (const char* text : {
           "v=spf1 ip4:192.0.2.300",                        // a bad address
           "v=spf1 ip4:192.0.2.0/33",                       // prefix out of range
           "v=spf1 a/024",                                  // leading zero
           "v=spf1 include",                                // a domain is required
           "v=spf1 foo:bar",                                // unknown mechanism
           "v=spf1 redirect=a.example redirect=b.example",  // twice
           "v=spf1 a:example.123",                          // numeric top label
           "v=spf1 a:museum",                               // no "." toplabel
           "v=spf1 exists:%{x}.example.com",                // unknown macro letter
           "v=spf1 exists:%{d0}.example.com",               // zero transformer
           "v=spf1 exists:%{c}.example.com",                // c only in exp text
           "v=spf1 a:foo%.example.com",                     // a lone %
           "v=spf1 -all\t",                                 // a control character
           "v=spf1 all:x", "v=spf1 ptr/24",
           "v=spf1 x=%{",  // a broken unknown modifier
       }) {
    EXPECT_FALSE(mailauth::parse_spf_record(text)) << text;
  }
  EXPECT_FALSE(mailauth::parse_spf_record("v=spf10 -all"));
  EXPECT_FALSE(mailauth::parse_spf_record(std::string("v=spf1 ") + std::string(9000, 'a')));
}

TEST(SpfRecordTest, SpacesAndCaseAreTolerated) {
  auto record = mailauth::parse_spf_record("V=SPF1  A:Example.COM   -ALL ");
  ASSERT_TRUE(record) << record.error();
  EXPECT_EQ(record->mechanisms.size(), 2u);
  EXPECT_TRUE(mailauth::parse_spf_record("v=spf1"));
  EXPECT_TRUE(mailauth::parse_spf_record("v=spf1 a:foo:bar/baz.example.com/24"));
}

mailauth::SpfMacroContext context() {
  mailauth::SpfMacroContext c;  // RFC 7208 §7.4's examples
  c.sender = "strong-bad@email.example.com";
  c.local_part = "strong-bad";
  c.sender_domain = "email.example.com";
  c.domain = "email.example.com";
  c.client_ip = "192.0.2.3";
  c.helo = "mx.example.org";
  c.receiver = "mx.example.net";
  c.now = 1700000000;
  return c;
}

std::string expand(std::string_view text, const mailauth::SpfMacroContext& c = context(),
                   SpfMacroUse use = SpfMacroUse::kDomainSpec) {
  auto expanded = mailauth::expand_spf_macros(text, c, use);
  return expanded ? *expanded : "ERROR " + expanded.error();
}

TEST(SpfMacroTest, ExpandsTheRfcExamples) {
  EXPECT_EQ(expand("%{s}"), "strong-bad@email.example.com");
  EXPECT_EQ(expand("%{o}"), "email.example.com");
  EXPECT_EQ(expand("%{d}"), "email.example.com");
  EXPECT_EQ(expand("%{d4}"), "email.example.com");
  EXPECT_EQ(expand("%{d3}"), "email.example.com");
  EXPECT_EQ(expand("%{d2}"), "example.com");
  EXPECT_EQ(expand("%{d1}"), "com");
  EXPECT_EQ(expand("%{dr}"), "com.example.email");
  EXPECT_EQ(expand("%{d2r}"), "example.email");
  EXPECT_EQ(expand("%{l}"), "strong-bad");
  EXPECT_EQ(expand("%{l-}"), "strong.bad");
  EXPECT_EQ(expand("%{lr}"), "strong-bad");
  EXPECT_EQ(expand("%{lr-}"), "bad.strong");
  EXPECT_EQ(expand("%{l1r-}"), "strong");
  EXPECT_EQ(expand("%{ir}.%{v}._spf.%{d2}"), "3.2.0.192.in-addr._spf.example.com");
  EXPECT_EQ(expand("%{lr-}.lp._spf.%{d2}"), "bad.strong.lp._spf.example.com");
  EXPECT_EQ(expand("%{d2}.trusted-domains.example.net"), "example.com.trusted-domains.example.net");
  EXPECT_EQ(expand("%%%_%-"), "% %20");
  EXPECT_EQ(expand("%{h}"), "mx.example.org");
  auto v6 = context();
  v6.client_ip = "2001:db8::cb01";
  EXPECT_EQ(expand("%{ir}.%{v}._spf.%{d2}", v6),
            "1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com");
}

TEST(SpfMacroTest, UpperCaseLettersAreUrlEscaped) {
  auto c = context();
  c.local_part = "a b/c";
  EXPECT_EQ(expand("%{L}", c), "a%20b%2Fc");
  EXPECT_EQ(expand("%{l}", c), "a b/c");
}

TEST(SpfMacroTest, ExplanationLettersOnlyInExplanations) {
  EXPECT_EQ(expand("%{c} via %{r} at %{t}", context(), SpfMacroUse::kExplanation),
            "192.0.2.3 via mx.example.net at 1700000000");
  EXPECT_EQ(expand("%{r}").substr(0, 5), "ERROR");
  EXPECT_EQ(expand("%{t}").substr(0, 5), "ERROR");
  EXPECT_EQ(expand("a b").substr(0, 5), "ERROR");  // a space only in explain-string
}

TEST(SpfMacroTest, ExpansionIsBounded) {
  std::string text;
  for (int i = 0; i < 2000; ++i)
    text += "%{S}";
  EXPECT_EQ(expand(text).substr(0, 5), "ERROR");
  EXPECT_EQ(expand("%{d999999999999999}"), "email.example.com");
}

}  // namespace
