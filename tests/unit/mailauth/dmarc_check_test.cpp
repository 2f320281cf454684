// dmarc_check_test.cpp — mailauth::check_dmarc over the fake resolver: policy discovery
// (RFC 7489 §6.6.3), alignment (§3.1), sp= for subdomains, pct sampling (§6.6.4), DNS errors.
#include <gtest/gtest.h>

#include "fake_resolver.h"
#include "mailauth/dmarc.h"

namespace {

using mailauth::DmarcPolicy;
using mailauth::DmarcResult;
using mailauth::SpfResult;
using mailauth_test::FakeResolver;

mailauth::DmarcOutcome check(FakeResolver& dns, mailauth::DmarcRequest request) {
  std::optional<mailauth::DmarcOutcome> outcome;
  int calls = 0;
  mailauth::check_dmarc(dns, std::move(request), [&](mailauth::DmarcOutcome o) {
    ++calls;
    outcome = std::move(o);
  });
  dns.run_pending();
  EXPECT_EQ(calls, 1);
  return outcome.value_or(mailauth::DmarcOutcome{});
}

mailauth::DmarcRequest request(std::string from, std::string spf_domain,
                               std::vector<std::string> dkim = {}, double sample = 0) {
  return {std::move(from), SpfResult::kPass, std::move(spf_domain), std::move(dkim), sample};
}

TEST(DmarcCheckTest, RelaxedAlignmentUsesTheOrganizationalDomain) {
  FakeResolver dns;
  dns.add_txt("_dmarc.example.co.uk", "v=DMARC1; p=reject");
  auto aligned = check(dns, request("example.co.uk", "bounce.example.co.uk"));
  EXPECT_EQ(aligned.result, DmarcResult::kPass);
  EXPECT_TRUE(aligned.spf_aligned);
  EXPECT_EQ(aligned.disposition, DmarcPolicy::kNone);
  auto other = check(dns, request("example.co.uk", "other.co.uk"));
  EXPECT_EQ(other.result, DmarcResult::kFail);
  EXPECT_EQ(other.policy, DmarcPolicy::kReject);
  EXPECT_EQ(other.disposition, DmarcPolicy::kReject);
  auto softfail = request("example.co.uk", "example.co.uk");
  softfail.spf = SpfResult::kSoftFail;  // only an SPF pass aligns
  EXPECT_EQ(check(dns, softfail).result, DmarcResult::kFail);
}

TEST(DmarcCheckTest, StrictAlignmentNeedsTheSameName) {
  FakeResolver dns;
  dns.add_txt("_dmarc.example.com", "v=DMARC1; p=quarantine; aspf=s; adkim=s");
  EXPECT_EQ(check(dns, request("example.com", "mail.example.com")).result, DmarcResult::kFail);
  EXPECT_EQ(check(dns, request("example.com", "EXAMPLE.com")).result, DmarcResult::kPass);
  auto dkim = check(dns, request("example.com", "other.net", {"sub.example.com", "example.com"}));
  EXPECT_EQ(dkim.result, DmarcResult::kPass);
  EXPECT_TRUE(dkim.dkim_aligned);
  EXPECT_FALSE(dkim.spf_aligned);
  EXPECT_EQ(check(dns, request("example.com", "x.net", {"sub.example.com"})).result,
            DmarcResult::kFail);
}

TEST(DmarcCheckTest, RelaxedDkimAlignment) {
  FakeResolver dns;
  dns.add_txt("_dmarc.example.com", "v=DMARC1; p=reject");
  auto outcome = check(dns, request("news.example.com", "x.net", {"mail.example.com"}));
  EXPECT_EQ(outcome.result, DmarcResult::kPass);
  EXPECT_TRUE(outcome.dkim_aligned);
}

TEST(DmarcCheckTest, SubdomainsFallBackToTheOrganizationalRecordAndItsSp) {
  FakeResolver dns;
  dns.add_txt("_dmarc.example.com", "v=DMARC1; p=reject; sp=quarantine");
  auto outcome = check(dns, request("a.b.example.com", "x.net"));
  EXPECT_EQ(outcome.result, DmarcResult::kFail);
  EXPECT_EQ(outcome.policy_domain, "example.com");
  EXPECT_EQ(outcome.policy, DmarcPolicy::kQuarantine);
  auto own = check(dns, request("example.com", "x.net"));
  EXPECT_EQ(own.policy, DmarcPolicy::kReject);
  // The subdomain's own record wins over the organizational one.
  dns.add_txt("_dmarc.a.b.example.com", "v=DMARC1; p=none");
  auto sub = check(dns, request("a.b.example.com", "x.net"));
  EXPECT_EQ(sub.policy_domain, "a.b.example.com");
  EXPECT_EQ(sub.policy, DmarcPolicy::kNone);
  ASSERT_EQ(dns.queries().back().first, "_dmarc.a.b.example.com");
}

TEST(DmarcCheckTest, PercentSamplingDowngrades) {
  FakeResolver dns;
  dns.add_txt("_dmarc.reject.example", "v=DMARC1; p=reject; pct=30");
  dns.add_txt("_dmarc.quarantine.example", "v=DMARC1; p=quarantine; pct=30");
  EXPECT_EQ(check(dns, request("reject.example", "x.net", {}, 29.9)).disposition,
            DmarcPolicy::kReject);
  EXPECT_EQ(check(dns, request("reject.example", "x.net", {}, 30)).disposition,
            DmarcPolicy::kQuarantine);
  EXPECT_EQ(check(dns, request("quarantine.example", "x.net", {}, 10)).disposition,
            DmarcPolicy::kQuarantine);
  auto sampled_out = check(dns, request("quarantine.example", "x.net", {}, 50));
  EXPECT_EQ(sampled_out.policy, DmarcPolicy::kQuarantine);
  EXPECT_EQ(sampled_out.disposition, DmarcPolicy::kNone);
}

TEST(DmarcCheckTest, NoneSeveralBrokenAndTemporary) {
  FakeResolver dns(FakeResolver::Mode::kDeferred);
  dns.add_txt("_dmarc.two.example", "v=DMARC1; p=reject");
  dns.add_txt("_dmarc.two.example", "v=DMARC1; p=none");
  dns.add_txt("_dmarc.broken.example", "v=DMARC1; p=maybe");
  dns.add_txt("_dmarc.other.example", "v=spf1 -all");
  dns.set_status("_dmarc.slow.example", dns::Status::kTemporary);
  dns.set_status("_dmarc.forged.example", dns::Status::kBogus);
  EXPECT_EQ(check(dns, request("nothing.example", "x.net")).result, DmarcResult::kNone);
  EXPECT_EQ(check(dns, request("other.example", "x.net")).result, DmarcResult::kNone);
  EXPECT_EQ(check(dns, request("two.example", "x.net")).result, DmarcResult::kNone);
  EXPECT_EQ(check(dns, request("broken.example", "x.net")).result, DmarcResult::kPermError);
  EXPECT_EQ(check(dns, request("slow.example", "x.net")).result, DmarcResult::kTempError);
  EXPECT_EQ(check(dns, request("forged.example", "x.net")).result, DmarcResult::kTempError);
  EXPECT_EQ(check(dns, request("sub.slow.example", "x.net")).result, DmarcResult::kTempError);
}

TEST(DmarcCheckTest, SeveralFromDomainsAreCheckedOneByOneByTheCaller) {
  // from_domains() gives one domain per author; the caller checks each and keeps the
  // strictest outcome (RFC 7489 §6.6.1).
  FakeResolver dns;
  dns.add_txt("_dmarc.a.example", "v=DMARC1; p=none");
  dns.add_txt("_dmarc.b.example", "v=DMARC1; p=reject");
  auto first = check(dns, request("a.example", "a.example"));
  auto second = check(dns, request("b.example", "a.example"));
  EXPECT_EQ(first.result, DmarcResult::kPass);
  EXPECT_EQ(second.result, DmarcResult::kFail);
  EXPECT_EQ(second.disposition, DmarcPolicy::kReject);
}

}  // namespace
