// require_tls_test.cpp — the RFC 8689 §4.2.1 decisions of delivery/require_tls.h: which
// messages they apply to, the route (secure MX answer, relay at level verify), a connection
// that could not be opened, an open connection (verified TLS, REQUIRETLS advertised), and the
// permanent results a refusal gives.
#include "delivery/require_tls.h"

#include <gtest/gtest.h>

namespace delivery {
namespace {

TlsOutcome verified_tls() {
  TlsOutcome tls;
  tls.encrypted = true;
  tls.verified = true;
  return tls;
}

smtp::ServerCapabilities offering(bool requiretls) {
  smtp::ServerCapabilities capabilities;
  capabilities.esmtp = true;
  capabilities.requiretls = requiretls;
  return capabilities;
}

TEST(RequireTlsTest, AppliesToRequireTlsMessagesThatAreNotBounces) {
  smtp::Envelope envelope;
  envelope.reverse_path = "a@example.org";
  EXPECT_FALSE(must_require_tls(envelope));
  envelope.require_tls = true;
  EXPECT_TRUE(must_require_tls(envelope));
  envelope.reverse_path.clear();  // RFC 8689 §5: a bounce is not held back
  EXPECT_FALSE(must_require_tls(envelope));
}

TEST(RequireTlsTest, TheRouteNeedsASecureMxAnswerOrARelayAtLevelVerify) {
  EXPECT_FALSE(route_refusal(false, tls::OutboundLevel::kMay, true, "example.net"));
  auto insecure = route_refusal(false, tls::OutboundLevel::kVerify, false, "example.net");
  ASSERT_TRUE(insecure);
  EXPECT_EQ(insecure->enhanced, "5.7.10");
  EXPECT_EQ(insecure->detail,
            "REQUIRETLS: the MX answer for example.net is not DNSSEC-secure and no MTA-STS "
            "policy enforces");

  EXPECT_FALSE(route_refusal(true, tls::OutboundLevel::kVerify, false, "relay.example"));
  for (tls::OutboundLevel level :
       {tls::OutboundLevel::kNone, tls::OutboundLevel::kMay, tls::OutboundLevel::kEncrypt}) {
    auto refusal = route_refusal(true, level, true, "relay.example");
    ASSERT_TRUE(refusal) << tls::to_string(level);
    EXPECT_EQ(refusal->enhanced, "5.7.10");
    EXPECT_NE(refusal->detail.find("relay.example"), std::string::npos);
  }
}

TEST(RequireTlsTest, AConnectionThatFailedInItsTlsIsRefusedAndOtherFailuresAreNot) {
  for (const char* stage : {"tls", "tls-policy", "starttls"}) {
    auto refusal =
        open_refusal(TransportFailure{stage, "handshake failed", {}}, "mx[192.0.2.1]:25");
    ASSERT_TRUE(refusal) << stage;
    EXPECT_EQ(refusal->enhanced, "5.7.10");
    EXPECT_NE(refusal->detail.find("mx[192.0.2.1]:25: handshake failed"), std::string::npos);
  }
  for (const char* stage : {"connect", "greeting", "ehlo"}) {
    EXPECT_FALSE(open_refusal(TransportFailure{stage, "refused", {}}, "mx")) << stage;
  }
}

TEST(RequireTlsTest, AConnectionNeedsVerifiedTlsThenTheExtension) {
  EXPECT_FALSE(connection_refusal(verified_tls(), offering(true), "mx"));

  auto plain = connection_refusal(TlsOutcome{}, offering(true), "mx");
  ASSERT_TRUE(plain);
  EXPECT_EQ(plain->enhanced, "5.7.10");

  TlsOutcome unverified = verified_tls();
  unverified.verified = false;
  unverified.verify_error = "self-signed certificate";
  auto refusal = connection_refusal(unverified, offering(true), "mx");
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->enhanced, "5.7.10");
  EXPECT_NE(refusal->detail.find("self-signed certificate"), std::string::npos);

  auto not_offered = connection_refusal(verified_tls(), offering(false), "mx");
  ASSERT_TRUE(not_offered);
  EXPECT_EQ(not_offered->enhanced, "5.7.30");
  EXPECT_EQ(not_offered->detail, "REQUIRETLS: mx does not offer REQUIRETLS");

  TlsOutcome dane = verified_tls();  // DANE sets verified as well (smtp_transport.h)
  dane.dane = true;
  EXPECT_FALSE(connection_refusal(dane, offering(true), "mx"));
}

TEST(RequireTlsTest, ARefusalIsPermanentForEveryRecipientWithItsStatus) {
  auto results = refused(RequireTlsRefusal{"5.7.30", "why"}, 3, "smtp");
  ASSERT_EQ(results.size(), 3u);
  for (const queue::DeliveryResult& result : results) {
    EXPECT_EQ(result.status, queue::DeliveryStatus::kPermanent);
    EXPECT_EQ(result.enhanced, "5.7.30");
    EXPECT_EQ(result.detail, "why");
    EXPECT_EQ(result.transport, "smtp");
    EXPECT_EQ(result.diagnostic, "550 5.7.30 why");
  }
}

}  // namespace
}  // namespace delivery
