// spf_check_test.cpp — mailauth::check_spf over the fake resolver: check_host() (RFC 7208
// §4), the limits of §4.6.4, DNS failures, the HELO identity, ptr validation, exp=, and the
// asynchronous driver (answers at once or later).
#include <gtest/gtest.h>

#include <future>
#include <thread>

#include "fake_resolver.h"
#include "mailauth/spf.h"

namespace {

using mailauth::SpfResult;
using mailauth_test::FakeResolver;

mailauth::SpfOutcome check(FakeResolver& resolver, std::string ip, std::string sender,
                           std::string helo = "mail.example.org") {
  std::optional<mailauth::SpfOutcome> outcome;
  int calls = 0;
  mailauth::check_spf(resolver, {std::move(ip), std::move(sender), std::move(helo), "mx.test", 0},
                      [&](mailauth::SpfOutcome o) {
                        ++calls;
                        outcome = std::move(o);
                      });
  resolver.run_pending();
  EXPECT_EQ(calls, 1);
  return outcome.value_or(mailauth::SpfOutcome{});
}

TEST(SpfCheckTest, IncludeAndMxPassAndTheRestFails) {
  FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 include:_spf.example.net mx -all");
  dns.add_txt("_spf.example.net", "v=spf1 ip4:198.51.100.0/24 -all");
  dns.add_mx("example.com", 10, "mx1.example.com");
  dns.add_address("mx1.example.com", "192.0.2.10");
  auto via_include = check(dns, "198.51.100.7", "user@example.com");
  EXPECT_EQ(via_include.result, SpfResult::kPass);
  EXPECT_EQ(via_include.mechanism, "include:_spf.example.net");
  EXPECT_EQ(via_include.identity, "mailfrom");
  EXPECT_EQ(via_include.domain, "example.com");
  auto via_mx = check(dns, "192.0.2.10", "user@example.com");
  EXPECT_EQ(via_mx.result, SpfResult::kPass);
  EXPECT_EQ(via_mx.mechanism, "mx");
  EXPECT_EQ(via_mx.dns_lookups, 2u);
  auto other = check(dns, "203.0.113.1", "user@example.com");
  EXPECT_EQ(other.result, SpfResult::kFail);
  EXPECT_EQ(other.mechanism, "-all");
}

TEST(SpfCheckTest, DeferredAnswersGiveTheSameOutcome) {
  FakeResolver dns(FakeResolver::Mode::kDeferred);
  dns.add_txt("example.com", "v=spf1 a mx ~all");
  dns.add_address("example.com", "192.0.2.1");
  dns.add_mx("example.com", 10, "mx1.example.com");
  dns.add_address("mx1.example.com", "192.0.2.10");
  EXPECT_EQ(check(dns, "192.0.2.10", "a@example.com").result, SpfResult::kPass);
  EXPECT_EQ(check(dns, "192.0.2.99", "a@example.com").result, SpfResult::kSoftFail);
}

TEST(SpfCheckTest, AnswersFromAnotherThreadFinishThere) {
  FakeResolver dns(FakeResolver::Mode::kDeferred);
  dns.add_txt("example.com", "v=spf1 include:_spf.example.net mx -all");
  dns.add_txt("_spf.example.net", "v=spf1 -all");
  dns.add_mx("example.com", 10, "mx1.example.com");
  dns.add_address("mx1.example.com", "192.0.2.10");
  std::promise<mailauth::SpfOutcome> promise;
  auto future = promise.get_future();
  mailauth::check_spf(dns, {"192.0.2.10", "a@example.com", "h.example", "mx.test", 0},
                      [&](mailauth::SpfOutcome o) { promise.set_value(std::move(o)); });
  ASSERT_EQ(future.wait_for(std::chrono::seconds(0)), std::future_status::timeout);
  std::thread resolver_thread([&] { dns.run_pending(); });
  resolver_thread.join();
  auto outcome = future.get();
  EXPECT_EQ(outcome.result, SpfResult::kPass);
  EXPECT_EQ(dns.queries().size(), 4u);
}

TEST(SpfCheckTest, NullSenderChecksTheHeloIdentity) {
  FakeResolver dns;
  dns.add_txt("helo.example.org", "v=spf1 ip6:2001:db8::/32 -all");
  auto outcome = check(dns, "2001:db8::25", "", "helo.example.org");
  EXPECT_EQ(outcome.result, SpfResult::kPass);
  EXPECT_EQ(outcome.identity, "helo");
  EXPECT_EQ(outcome.domain, "helo.example.org");
}

TEST(SpfCheckTest, NoRecordSeveralRecordsAndBadRecords) {
  FakeResolver dns;
  dns.add_txt("none.example", "google-site-verification=x");
  dns.add_txt("two.example", "v=spf1 -all");
  dns.add_txt("two.example", "v=spf1 +all");
  dns.add_txt("bad.example", "v=spf1 ip4:1.2.3 -all");
  EXPECT_EQ(check(dns, "192.0.2.1", "a@none.example").result, SpfResult::kNone);
  EXPECT_EQ(check(dns, "192.0.2.1", "a@nxdomain.example").result, SpfResult::kNone);
  EXPECT_EQ(check(dns, "192.0.2.1", "a@two.example").result, SpfResult::kPermError);
  EXPECT_EQ(check(dns, "192.0.2.1", "a@bad.example").result, SpfResult::kPermError);
  EXPECT_EQ(check(dns, "192.0.2.1", "a@[192.0.2.1]").result, SpfResult::kNone);
}

TEST(SpfCheckTest, TemporaryAndBogusAnswersAreTempErrors) {
  FakeResolver dns;
  dns.set_status("slow.example", dns::Status::kTemporary);
  dns.set_status("forged.example", dns::Status::kBogus);
  dns.add_txt("uses.example", "v=spf1 a:slow.example -all");
  EXPECT_EQ(check(dns, "192.0.2.1", "a@slow.example").result, SpfResult::kTempError);
  EXPECT_EQ(check(dns, "192.0.2.1", "a@forged.example").result, SpfResult::kTempError);
  EXPECT_EQ(check(dns, "192.0.2.1", "a@uses.example").result, SpfResult::kTempError);
}

TEST(SpfCheckTest, TheEleventhDnsTermIsAPermError) {
  FakeResolver dns;
  std::string record = "v=spf1";
  for (int i = 0; i < 10; ++i) {
    record += " a:h" + std::to_string(i) + ".example.com";
    dns.add_address("h" + std::to_string(i) + ".example.com", "203.0.113.1");
  }
  dns.add_txt("ten.example", record + " -all");
  dns.add_txt("eleven.example", record + " a:h0.example.com -all");
  auto ten = check(dns, "192.0.2.1", "a@ten.example");
  EXPECT_EQ(ten.result, SpfResult::kFail);
  EXPECT_EQ(ten.dns_lookups, 10u);
  EXPECT_EQ(check(dns, "192.0.2.1", "a@eleven.example").result, SpfResult::kPermError);
}

TEST(SpfCheckTest, TheThirdVoidLookupIsAPermError) {
  FakeResolver dns;
  dns.add_txt("two.example", "v=spf1 a:v1.example.com exists:v2.example.com -all");
  dns.add_txt("three.example",
              "v=spf1 a:v1.example.com exists:v2.example.com mx:v3.example.com -all");
  auto two = check(dns, "192.0.2.1", "a@two.example");
  EXPECT_EQ(two.result, SpfResult::kFail);
  EXPECT_EQ(two.void_lookups, 2u);
  EXPECT_EQ(check(dns, "192.0.2.1", "a@three.example").result, SpfResult::kPermError);
}

TEST(SpfCheckTest, ElevenMxRecordsAreAPermError) {
  FakeResolver dns;
  dns.add_txt("many.example", "v=spf1 mx -all");
  for (int i = 0; i < 11; ++i)
    dns.add_mx("many.example", 10, "mx" + std::to_string(i) + ".example.com");
  EXPECT_EQ(check(dns, "192.0.2.1", "a@many.example").result, SpfResult::kPermError);
}

TEST(SpfCheckTest, PtrMatchesOnlyAValidatedName) {
  FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 ptr -all");
  dns.add_ptr("1.2.0.192.in-addr.arpa", "mail.example.com");
  dns.add_address("mail.example.com", "192.0.2.1");
  dns.add_ptr("2.2.0.192.in-addr.arpa", "liar.example.com");  // its A record points elsewhere
  dns.add_address("liar.example.com", "192.0.2.99");
  EXPECT_EQ(check(dns, "192.0.2.1", "a@example.com").result, SpfResult::kPass);
  EXPECT_EQ(check(dns, "192.0.2.2", "a@example.com").result, SpfResult::kFail);
}

TEST(SpfCheckTest, ExplanationIsExpandedForAFail) {
  FakeResolver dns;
  dns.add_txt("example.com", "v=spf1 -all exp=why.example.com");
  dns.add_txt("why.example.com", "%{i} may not send for %{d} (%{r})");
  auto outcome = check(dns, "192.0.2.1", "a@example.com");
  EXPECT_EQ(outcome.result, SpfResult::kFail);
  EXPECT_EQ(outcome.explanation, "192.0.2.1 may not send for example.com (mx.test)");
}

TEST(SpfCheckTest, HugeMacroExpansionsAreTruncatedOnTheLeft) {
  FakeResolver dns;
  // %{s} is long; repeated it passes 253 octets: only the rightmost labels are asked.
  dns.add_txt("example.com", "v=spf1 exists:%{l}.%{l}.%{l}.%{l}.%{l}.x.example.com -all");
  std::string local(60, 'a');
  auto outcome = check(dns, "192.0.2.1", local + "@example.com");
  EXPECT_EQ(outcome.result, SpfResult::kFail);
  bool asked = false;
  for (const auto& [name, type] : dns.queries()) {
    if (type != dns::Type::kA) continue;
    asked = true;
    EXPECT_LE(name.size(), 253u);
    EXPECT_TRUE(name.ends_with(".x.example.com")) << name;
  }
  EXPECT_TRUE(asked);
}

TEST(SpfCheckTest, RedirectAndIncludeLoopsEnd) {
  FakeResolver dns;
  dns.add_txt("loop.example", "v=spf1 include:loop.example -all");
  dns.add_txt("redirect.example", "v=spf1 redirect=redirect.example");
  EXPECT_EQ(check(dns, "192.0.2.1", "a@loop.example").result, SpfResult::kPermError);
  EXPECT_EQ(check(dns, "192.0.2.1", "a@redirect.example").result, SpfResult::kPermError);
}

}  // namespace

// A sender whose DNS is slow cannot hold the check past its time: once the deadline has
// passed, no further lookup starts and the result is temperror.
TEST(SpfCheckTest, NoLookupStartsAfterTheDeadline) {
  FakeResolver dns(FakeResolver::Mode::kDeferred);
  dns.add_txt("example.com", "v=spf1 include:a.example.com include:b.example.com -all");
  dns.add_txt("a.example.com", "v=spf1 ip4:198.51.100.1 -all");
  dns.add_txt("b.example.com", "v=spf1 ip4:198.51.100.2 -all");
  std::optional<mailauth::SpfOutcome> outcome;
  mailauth::SpfRequest request{"198.51.100.2", "a@example.com", "mail.example.org", "mx.test", 0};
  request.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
  mailauth::check_spf(dns, request, [&](mailauth::SpfOutcome o) { outcome = std::move(o); });
  std::this_thread::sleep_for(std::chrono::milliseconds(80));  // the first answer comes late
  dns.run_pending();
  ASSERT_TRUE(outcome);
  EXPECT_EQ(outcome->result, SpfResult::kTempError);
  EXPECT_NE(outcome->problem.find("ran out"), std::string::npos) << outcome->problem;
  // Without a deadline the same chain passes.
  EXPECT_EQ(check(dns, "198.51.100.2", "a@example.com").result, SpfResult::kPass);
}
