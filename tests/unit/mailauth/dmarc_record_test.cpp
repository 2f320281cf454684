// dmarc_record_test.cpp — mailauth::parse_dmarc_record (RFC 7489 §6.3, §6.4, §6.6.3 step 6)
// and the organizational domain (§3.2).
#include <gtest/gtest.h>

#include "mailauth/dmarc.h"

namespace {

using mailauth::DmarcPolicy;

TEST(DmarcRecordTest, ParsesEveryTag) {
  auto record = mailauth::parse_dmarc_record(
      "v=DMARC1; p=reject; sp=quarantine; pct=25; adkim=s; aspf=s; "
      "rua=mailto:agg@example.com!10m, mailto:second@example.org, https://ignored.example; "
      "ruf=mailto:fail@example.com; fo=1:d; ri=3600; rf=afrf; future=tag");
  ASSERT_TRUE(record) << record.error();
  EXPECT_EQ(record->policy, DmarcPolicy::kReject);
  EXPECT_EQ(record->subdomain_policy, DmarcPolicy::kQuarantine);
  EXPECT_EQ(record->percent, 25u);
  EXPECT_TRUE(record->strict_dkim);
  EXPECT_TRUE(record->strict_spf);
  EXPECT_EQ(record->aggregate_addresses,
            (std::vector<std::string>{"mailto:agg@example.com", "mailto:second@example.org"}));
  EXPECT_EQ(record->failure_addresses, (std::vector<std::string>{"mailto:fail@example.com"}));
  EXPECT_EQ(record->failure_options, "1:d");
  EXPECT_EQ(record->report_interval, 3600u);
}

TEST(DmarcRecordTest, DefaultsAndSpaces) {
  auto record = mailauth::parse_dmarc_record("v = DMARC1 ;p = quarantine;");
  ASSERT_TRUE(record) << record.error();
  EXPECT_EQ(record->policy, DmarcPolicy::kQuarantine);
  EXPECT_FALSE(record->subdomain_policy);
  EXPECT_EQ(record->percent, 100u);
  EXPECT_FALSE(record->strict_dkim);
  EXPECT_FALSE(record->strict_spf);
  EXPECT_EQ(record->failure_options, "0");
  EXPECT_EQ(record->report_interval, 86400u);
}

TEST(DmarcRecordTest, BadValuesOfOtherTagsFallBackToDefaults) {
  for (const char* pct : {"101", "-1", "abc", "", "99999999999"}) {
    auto record = mailauth::parse_dmarc_record(std::string("v=DMARC1; p=reject; pct=") + pct +
                                               "; adkim=x; fo=9; ri=-5");
    ASSERT_TRUE(record) << pct;
    EXPECT_EQ(record->percent, 100u) << pct;
    EXPECT_FALSE(record->strict_dkim);
    EXPECT_EQ(record->failure_options, "0");
    EXPECT_EQ(record->report_interval, 86400u);
  }
  EXPECT_EQ(mailauth::parse_dmarc_record("v=DMARC1; p=none; pct=0")->percent, 0u);
  EXPECT_EQ(mailauth::parse_dmarc_record("v=DMARC1; p=none; pct=100")->percent, 100u);
}

TEST(DmarcRecordTest, MissingOrBadPolicyNeedsAValidRua) {
  // §6.6.3 step 6: without a valid p (or with a bad sp), a valid rua makes it p=none.
  auto with_rua = mailauth::parse_dmarc_record("v=DMARC1; rua=mailto:r@example.com");
  ASSERT_TRUE(with_rua);
  EXPECT_EQ(with_rua->policy, DmarcPolicy::kNone);
  auto bad_sp = mailauth::parse_dmarc_record("v=DMARC1; p=reject; sp=bogus; rua=mailto:r@x.org");
  ASSERT_TRUE(bad_sp);
  EXPECT_EQ(bad_sp->policy, DmarcPolicy::kNone);
  EXPECT_FALSE(mailauth::parse_dmarc_record("v=DMARC1"));
  EXPECT_FALSE(mailauth::parse_dmarc_record("v=DMARC1; p=block"));
  EXPECT_FALSE(mailauth::parse_dmarc_record("v=DMARC1; p=reject; sp=bogus"));
  EXPECT_FALSE(mailauth::parse_dmarc_record("v=DMARC1; rua=nonsense"));
}

TEST(DmarcRecordTest, VersionMustComeFirst) {
  EXPECT_FALSE(mailauth::parse_dmarc_record("p=reject; v=DMARC1"));
  EXPECT_FALSE(mailauth::parse_dmarc_record("v=DMARC2; p=reject"));
  EXPECT_FALSE(mailauth::parse_dmarc_record("v=spf1 -all"));
  EXPECT_FALSE(mailauth::is_dmarc_record("v=DMARC10; p=none"));
  EXPECT_TRUE(mailauth::is_dmarc_record("v=DMARC1"));
}

TEST(DmarcRecordTest, OrganizationalDomainComesFromThePublicSuffixList) {
  EXPECT_EQ(mailauth::organizational_domain("a.b.example.co.uk"), "example.co.uk");
  EXPECT_EQ(mailauth::organizational_domain("Mail.Example.COM."), "example.com");
  EXPECT_EQ(mailauth::organizational_domain("example.com"), "example.com");
  EXPECT_EQ(mailauth::organizational_domain("co.uk"), "co.uk");  // a public suffix itself
  EXPECT_EQ(mailauth::organizational_domain("com"), "com");
}

}  // namespace
