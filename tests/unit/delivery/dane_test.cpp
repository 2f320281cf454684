// dane_test.cpp — the DANE decision of one MX host (delivery/dane.h) from answers a scripted
// resolver gives: which TLSA records are usable (RFC 7672 §3.1.3) and when DANE applies,
// does not, or disqualifies the host. The handshake with the records is tested with the
// real server and a signed zone (tests/integration/test_dane.py).
#include "delivery/dane.h"

#include <gtest/gtest.h>

#include <map>

namespace delivery {
namespace {

using namespace std::chrono_literals;

// Answers TLSA lookups from a table; everything else is NXDOMAIN. Records the names asked.
class TlsaResolver : public dns::Resolver {
 public:
  explicit TlsaResolver(bool validates) : validates_(validates) {}
  void set(std::string name, dns::Answer answer) { answers_[std::move(name)] = std::move(answer); }
  void lookup(std::string_view name, dns::Type type, Callback callback) override {
    asked.emplace_back(name);
    auto answer = std::make_shared<dns::Answer>();
    answer->status = dns::Status::kNxDomain;
    if (auto found = answers_.find(std::string(name));
        found != answers_.end() && type == dns::Type::kTlsa)
      *answer = found->second;
    callback(std::move(answer));
  }
  bool validates() const override { return validates_; }
  std::string describe() const override { return "scripted"; }
  std::vector<std::string> asked;

 private:
  bool validates_;
  std::map<std::string, dns::Answer> answers_;
};

dns::TlsaRecord record(std::uint8_t usage, std::uint8_t selector, std::uint8_t type,
                       std::size_t length) {
  return dns::TlsaRecord{usage, selector, type, std::string(length, '\x5a')};
}

dns::Answer tlsa_answer(std::vector<dns::TlsaRecord> records, bool secure = true) {
  dns::Answer answer;
  answer.status = dns::Status::kOk;
  answer.secure = secure;
  answer.tlsa = std::move(records);
  return answer;
}

TEST(DaneTest, OnlyDaneUsagesWithKnownSelectorsAndRightLengthsAreUsable) {
  EXPECT_TRUE(usable_tlsa(record(3, 1, 1, 32)));
  EXPECT_TRUE(usable_tlsa(record(2, 0, 2, 64)));
  EXPECT_TRUE(usable_tlsa(record(3, 0, 0, 300)));
  EXPECT_FALSE(usable_tlsa(record(0, 1, 1, 32)));  // PKIX-TA
  EXPECT_FALSE(usable_tlsa(record(1, 1, 1, 32)));  // PKIX-EE
  EXPECT_FALSE(usable_tlsa(record(4, 1, 1, 32)));
  EXPECT_FALSE(usable_tlsa(record(3, 2, 1, 32)));
  EXPECT_FALSE(usable_tlsa(record(3, 1, 3, 32)));
  EXPECT_FALSE(usable_tlsa(record(3, 1, 1, 31)));  // SHA2-256 is 32 octets
  EXPECT_FALSE(usable_tlsa(record(3, 1, 2, 32)));  // SHA2-512 is 64
  EXPECT_FALSE(usable_tlsa(record(3, 0, 0, 0)));
  EXPECT_EQ(to_string(dns::TlsaRecord{3, 1, 1, "\x01\xab"}), "3 1 1 01ab");
  EXPECT_EQ(parameters_of(record(2, 0, 1, 32)), "2 0 1");
}

TEST(DaneTest, WithoutValidationOrSecureAddressesNothingIsAsked) {
  TlsaResolver plain(false);
  EXPECT_EQ(lookup_dane(plain, "mx.example", 25, true, true, 1s).kind,
            DaneLookup::Kind::kNotApplicable);
  TlsaResolver validating(true);
  EXPECT_EQ(lookup_dane(validating, "mx.example", 25, false, true, 1s).kind,
            DaneLookup::Kind::kNotApplicable);
  EXPECT_EQ(lookup_dane(validating, "mx.example", 25, true, false, 1s).kind,
            DaneLookup::Kind::kNotApplicable);
  EXPECT_TRUE(plain.asked.empty());
  EXPECT_TRUE(validating.asked.empty());
}

TEST(DaneTest, TheDecisionFollowsTheTlsaAnswer) {
  TlsaResolver resolver(true);
  resolver.set("_25._tcp.usable.example",
               tlsa_answer({record(1, 1, 1, 32), record(3, 1, 1, 32), record(2, 0, 1, 32)}));
  resolver.set("_25._tcp.pkix.example", tlsa_answer({record(1, 1, 1, 32)}));
  resolver.set("_25._tcp.unsigned.example", tlsa_answer({record(3, 1, 1, 32)}, false));
  dns::Answer bogus;
  bogus.status = dns::Status::kBogus;
  bogus.detail = "DNSSEC bogus: signature expired";
  resolver.set("_25._tcp.bogus.example", bogus);
  dns::Answer timeout;
  timeout.status = dns::Status::kTemporary;
  resolver.set("_25._tcp.slow.example", timeout);

  DaneLookup usable = lookup_dane(resolver, "usable.example", 25, true, true, 1s);
  EXPECT_EQ(usable.kind, DaneLookup::Kind::kUsable);
  ASSERT_EQ(usable.usable.size(), 2u);  // the PKIX-EE record is left out
  EXPECT_EQ(parameters_of(usable.usable[0]), "3 1 1");
  EXPECT_EQ(lookup_dane(resolver, "pkix.example", 25, true, true, 1s).kind,
            DaneLookup::Kind::kUnusable);
  EXPECT_EQ(lookup_dane(resolver, "unsigned.example", 25, true, true, 1s).kind,
            DaneLookup::Kind::kNone);
  EXPECT_EQ(lookup_dane(resolver, "absent.example", 25, true, true, 1s).kind,
            DaneLookup::Kind::kNone);
  DaneLookup failed = lookup_dane(resolver, "bogus.example", 25, true, true, 1s);
  EXPECT_EQ(failed.kind, DaneLookup::Kind::kFailed);
  EXPECT_NE(failed.detail.find("signature expired"), std::string::npos) << failed.detail;
  EXPECT_EQ(lookup_dane(resolver, "slow.example", 25, true, true, 1s).kind,
            DaneLookup::Kind::kFailed);
  // The port is part of the name (a test server's port, or 25).
  lookup_dane(resolver, "usable.example", 2525, true, true, 1s);
  EXPECT_EQ(resolver.asked.back(), "_2525._tcp.usable.example");
}

TEST(DaneTest, TheTargetOfASecureCnameIsAskedFirstThenTheMxHost) {
  TlsaResolver resolver(true);
  resolver.set("_25._tcp.real.example", tlsa_answer({record(3, 1, 1, 32)}));
  resolver.set("_25._tcp.mx.example", tlsa_answer({record(2, 0, 1, 32)}));
  DaneLookup expanded = lookup_dane(resolver, "mx.example", 25, true, true, 1s, "real.example");
  EXPECT_EQ(expanded.kind, DaneLookup::Kind::kUsable);
  EXPECT_EQ(expanded.base, "real.example");
  EXPECT_EQ(parameters_of(expanded.usable.at(0)), "3 1 1");
  // No records at the target: the MX host's own, with it as the base.
  DaneLookup own = lookup_dane(resolver, "mx.example", 25, true, true, 1s, "other.example");
  EXPECT_EQ(own.kind, DaneLookup::Kind::kUsable);
  EXPECT_EQ(own.base, "mx.example");
  EXPECT_EQ(resolver.asked,
            (std::vector<std::string>{"_25._tcp.real.example", "_25._tcp.other.example",
                                      "_25._tcp.mx.example"}));
}

}  // namespace
}  // namespace delivery
