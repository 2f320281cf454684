// posture_test.cpp — the one TLS decision per MX host (delivery/posture.h): which policy
// wins between DANE, MTA-STS, the static table, the memory and the relaxations, the level
// it asks for and whether the host is used; and the TLS-RPT record lookup. Delivery with
// these decisions runs against real servers in tests/integration/test_dane.py and
// test_mta_sts.py.
#include "delivery/posture.h"

#include <gtest/gtest.h>

#include <map>

namespace delivery {
namespace {

using namespace std::chrono_literals;
using tls::OutboundLevel;

DaneLookup dane_of(DaneLookup::Kind kind) {
  DaneLookup dane;
  dane.kind = kind;
  dane.detail = "scripted";
  if (kind == DaneLookup::Kind::kUsable)
    dane.usable.push_back(dns::TlsaRecord{3, 1, 1, std::string(32, 'x')});
  return dane;
}

PolicyLookup sts_of(StsMode mode) {
  PolicyLookup sts;
  sts.source = PolicyLookup::Source::kCache;
  sts.policy.mode = mode;
  sts.policy.mx = {"mx.example.net", "*.backup.example.net"};
  sts.policy.max_age = 86400;
  return sts;
}

DomainTls plain(OutboundLevel level = OutboundLevel::kMay) {
  DomainTls domain;
  domain.name = "example.net";
  domain.level = level;
  return domain;
}

TEST(PostureTest, WithNothingPublishedTheTableThenTheMemoryThenOpportunisticDecide) {
  const DaneLookup none = dane_of(DaneLookup::Kind::kNone);
  HostTls host = decide_host(plain(), none, "mx.example.net");
  EXPECT_EQ(host.policy, "opportunistic");
  EXPECT_TRUE(host.used);
  EXPECT_EQ(host.level, OutboundLevel::kMay);
  EXPECT_EQ(host.report_type, "no-policy-found");

  DomainTls learned = plain();
  learned.remembered = SeenTls::kVerified;
  EXPECT_EQ(decide_host(learned, none, "mx.example.net").policy, "learned");

  DomainTls table = plain(OutboundLevel::kVerify);
  table.static_policy = true;
  table.remembered = SeenTls::kEncrypted;
  host = decide_host(table, none, "mx.example.net");
  EXPECT_EQ(host.policy, "static");
  EXPECT_EQ(host.level, OutboundLevel::kVerify);
}

TEST(PostureTest, UsableTlsaRecordsAuthenticateAndWinOverMtaSts) {
  const PolicyLookup sts = sts_of(StsMode::kEnforce);
  DomainTls domain = plain();
  domain.sts = &sts;
  // Even a host the STS policy does not name: DANE decides it (RFC 8461 §2).
  const HostTls host = decide_host(domain, dane_of(DaneLookup::Kind::kUsable), "other.example");
  EXPECT_EQ(host.policy, "dane");
  EXPECT_TRUE(host.used);
  EXPECT_TRUE(host.dane_authenticates);
  EXPECT_FALSE(host.sts_host);
  EXPECT_EQ(host.level, OutboundLevel::kEncrypt);
  EXPECT_EQ(host.report_type, "tlsa");
}

TEST(PostureTest, AFailedTlsaLookupTakesTheHostOutAndMtaStsCannotRescueIt) {
  const PolicyLookup sts = sts_of(StsMode::kEnforce);
  DomainTls domain = plain();
  domain.sts = &sts;
  const HostTls host = decide_host(domain, dane_of(DaneLookup::Kind::kFailed), "mx.example.net");
  EXPECT_FALSE(host.used);
  EXPECT_EQ(host.policy, "dane");
  EXPECT_EQ(host.report_type, "tlsa");
  EXPECT_EQ(host.why_not, "mx.example.net: scripted (DANE: host not used)");
}

TEST(PostureTest, UnusableSecureRecordsMakeTlsMandatoryAndLeaveMtaStsInForce) {
  const HostTls alone =
      decide_host(plain(), dane_of(DaneLookup::Kind::kUnusable), "mx.example.net");
  EXPECT_EQ(alone.policy, "dane");
  EXPECT_FALSE(alone.dane_authenticates);
  EXPECT_EQ(alone.level, OutboundLevel::kEncrypt);
  EXPECT_EQ(alone.report_type, "no-policy-found");

  const PolicyLookup sts = sts_of(StsMode::kEnforce);
  DomainTls domain = plain();
  domain.sts = &sts;
  const HostTls with_sts =
      decide_host(domain, dane_of(DaneLookup::Kind::kUnusable), "mx.example.net");
  EXPECT_EQ(with_sts.policy, "mta-sts");
  EXPECT_EQ(with_sts.level, OutboundLevel::kVerify);
}

TEST(PostureTest, MtaStsEnforceUsesOnlyNamedHostsAndAsksForVerifiedTls) {
  const PolicyLookup sts = sts_of(StsMode::kEnforce);
  DomainTls domain = plain();
  domain.sts = &sts;
  const DaneLookup none = dane_of(DaneLookup::Kind::kNotApplicable);
  HostTls named = decide_host(domain, none, "a.backup.example.net");
  EXPECT_TRUE(named.used);
  EXPECT_EQ(named.policy, "mta-sts");
  EXPECT_EQ(named.level, OutboundLevel::kVerify);
  EXPECT_EQ(named.report_type, "sts");
  EXPECT_FALSE(named.sts_unnamed);

  // "*." matches one label only (RFC 8461 §4.1).
  HostTls unnamed = decide_host(domain, none, "a.b.backup.example.net");
  EXPECT_FALSE(unnamed.used);
  EXPECT_TRUE(unnamed.sts_unnamed);
  EXPECT_EQ(unnamed.why_not,
            "MX host a.b.backup.example.net is not named by the MTA-STS policy of example.net");
}

TEST(PostureTest, MtaStsTestingDeliversEverywhereAndNoneIsNoPolicy) {
  const PolicyLookup testing = sts_of(StsMode::kTesting);
  DomainTls domain = plain();
  domain.sts = &testing;
  HostTls host = decide_host(domain, dane_of(DaneLookup::Kind::kNone), "rogue.example");
  EXPECT_TRUE(host.used);
  EXPECT_TRUE(host.sts_unnamed);
  EXPECT_EQ(host.policy, "mta-sts");
  EXPECT_EQ(host.level, OutboundLevel::kMay);  // failures are only reported

  const PolicyLookup off = sts_of(StsMode::kNone);
  domain.sts = &off;
  host = decide_host(domain, dane_of(DaneLookup::Kind::kNone), "rogue.example");
  EXPECT_EQ(host.policy, "opportunistic");
  EXPECT_EQ(host.report_type, "no-policy-found");
}

TEST(PostureTest, TheStaticLevelIsAFloorThatPublishedPoliciesOnlyRaise) {
  DomainTls domain = plain(OutboundLevel::kVerify);
  domain.static_policy = true;
  EXPECT_EQ(decide_host(domain, dane_of(DaneLookup::Kind::kUnusable), "mx.example.net").level,
            OutboundLevel::kVerify);
}

TEST(PostureTest, RelaxationsNameThemselvesAsThePolicy) {
  DomainTls domain = plain();
  domain.relaxation = Relaxation::kException;
  EXPECT_EQ(decide_host(domain, DaneLookup{}, "mx.example.net").policy, "exception");
  domain.relaxation = Relaxation::kSenderOptional;
  EXPECT_EQ(decide_host(domain, DaneLookup{}, "mx.example.net").policy, "tls-required-no");
}

// Answers TXT lookups from a table; everything else is NXDOMAIN.
class TxtResolver : public dns::Resolver {
 public:
  void set(std::string name, dns::Answer answer) { answers_[std::move(name)] = std::move(answer); }
  void lookup(std::string_view name, dns::Type type, Callback callback) override {
    auto answer = std::make_shared<dns::Answer>();
    answer->status = dns::Status::kNxDomain;
    if (auto found = answers_.find(std::string(name));
        found != answers_.end() && type == dns::Type::kTxt)
      *answer = found->second;
    callback(std::move(answer));
  }
  bool validates() const override { return true; }
  std::string describe() const override { return "scripted"; }

 private:
  std::map<std::string, dns::Answer> answers_;
};

dns::Answer txt(std::vector<std::string> texts, bool secure = false) {
  dns::Answer answer;
  answer.status = dns::Status::kOk;
  answer.secure = secure;
  answer.texts = std::move(texts);
  return answer;
}

TEST(PostureTest, TheTlsrptRecordIsTheOneV1RecordAmongOtherTxtRecords) {
  TxtResolver resolver;
  resolver.set(
      "_smtp._tls.example.net",
      txt({"v=spf1 -all", "v=TLSRPTv1; rua=mailto:tls@example.net,https://r.example/"}, true));
  const TlsrptRecord found = lookup_tlsrpt(resolver, "example.net", 1s);
  EXPECT_EQ(found.status, TlsrptRecord::Status::kFound);
  EXPECT_TRUE(found.secure);
  EXPECT_EQ(found.rua, (std::vector<std::string>{"mailto:tls@example.net", "https://r.example/"}));

  EXPECT_EQ(lookup_tlsrpt(resolver, "none.example", 1s).status, TlsrptRecord::Status::kNone);
}

TEST(PostureTest, SeveralOrBrokenTlsrptRecordsAreNoneAndAFailedLookupIsUnknown) {
  TxtResolver resolver;
  resolver.set("_smtp._tls.two.example", txt({"v=TLSRPTv1; rua=mailto:a@two.example",
                                              "v=TLSRPTv1; rua=mailto:b@two.example"}));
  const TlsrptRecord two = lookup_tlsrpt(resolver, "two.example", 1s);
  EXPECT_EQ(two.status, TlsrptRecord::Status::kInvalid);
  EXPECT_TRUE(two.rua.empty());
  EXPECT_EQ(two.detail, "2 TLSRPTv1 records at _smtp._tls.two.example: none applies");

  resolver.set("_smtp._tls.broken.example", txt({"v=TLSRPTv1; rua="}));
  EXPECT_EQ(lookup_tlsrpt(resolver, "broken.example", 1s).status, TlsrptRecord::Status::kInvalid);

  dns::Answer failed;
  failed.status = dns::Status::kTemporary;
  failed.detail = "timed out";
  resolver.set("_smtp._tls.down.example", failed);
  const TlsrptRecord down = lookup_tlsrpt(resolver, "down.example", 1s);
  EXPECT_EQ(down.status, TlsrptRecord::Status::kUnknown);
  EXPECT_EQ(down.detail, "TXT lookup of _smtp._tls.down.example failed: timed out");
}

}  // namespace
}  // namespace delivery
