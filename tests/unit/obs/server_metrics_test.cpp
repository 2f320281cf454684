// Tests for obs/server_metrics.cpp: bounded labels and reply-code counting.
#include "obs/server_metrics.h"

#include <gtest/gtest.h>

namespace {

std::string render_after(const std::function<void(obs::ServerMetrics&)>& act) {
  obs::Registry registry;
  obs::ServerMetrics metrics(registry);
  act(metrics);
  return registry.render();
}

bool has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(ServerMetricsTest, HandshakeReasonsMapOntoAFixedSet) {
  using M = obs::ServerMetrics;
  EXPECT_EQ(M::handshake_failure_reason("handshake timeout"), "timeout");
  EXPECT_EQ(M::handshake_failure_reason("client closed the connection during the handshake"),
            "eof");
  EXPECT_EQ(M::handshake_failure_reason("no shared cipher"), "no_shared_cipher");
  EXPECT_EQ(M::handshake_failure_reason("unsupported protocol"), "protocol_version");
  EXPECT_EQ(M::handshake_failure_reason("wrong version number"), "protocol_version");
  EXPECT_EQ(M::handshake_failure_reason("something new from OpenSSL"), "other");
}

TEST(ServerMetricsTest, UnknownRolesMechanismsAndTransportsGoToOther) {
  std::string text = render_after([](obs::ServerMetrics& m) {
    m.connection_opened("weird");
    m.auth_result("CRAM-MD5", false);
    m.auth_result("PLAIN", true);
    m.delivery_attempt("delivered", "pigeon");
    m.delivery_attempt("exploded", "maildir");  // not a result: not counted
  });
  EXPECT_TRUE(has(text, "smtpsd_connections_accepted_total{role=\"other\"} 1"));
  EXPECT_TRUE(has(text, "smtpsd_connections_open{role=\"other\"} 1"));
  EXPECT_TRUE(has(text, "smtpsd_auth_total{mechanism=\"other\",result=\"failure\"} 1"));
  EXPECT_TRUE(has(text, "smtpsd_auth_total{mechanism=\"PLAIN\",result=\"success\"} 1"));
  EXPECT_TRUE(
      has(text, "smtpsd_delivery_attempts_total{result=\"delivered\",transport=\"other\"} 1"));
  EXPECT_TRUE(
      has(text, "smtpsd_delivery_attempts_total{result=\"bounced\",transport=\"maildir\"} 0"));
}

TEST(ServerMetricsTest, OnlyFinalReplyLinesAreCounted) {
  std::string text = render_after([](obs::ServerMetrics& m) {
    m.replies_sent("250-localhost\r\n250-PIPELINING\r\n250 SMTPUTF8\r\n");
    m.replies_sent("250 2.1.0 Ok\r\n550 5.1.1 No such user\r\n554 5.5.1 No valid recipients\r\n");
    m.replies_sent("garbage\r\n999 not a code\r\n");
  });
  EXPECT_TRUE(has(text, "smtpsd_smtp_replies_total{code=\"250\"} 2"));
  EXPECT_TRUE(has(text, "smtpsd_smtp_replies_total{code=\"550\"} 1"));
  EXPECT_TRUE(has(text, "smtpsd_smtp_replies_total{code=\"554\"} 1"));
  EXPECT_EQ(text.find("code=\"999\""), std::string::npos);
}

TEST(ServerMetricsTest, AcceptedMessagesFeedTheAcceptTo250Histogram) {
  std::string text = render_after(
      [](obs::ServerMetrics& m) { m.message_accepted(3, std::chrono::milliseconds(4)); });
  EXPECT_TRUE(has(text, "smtpsd_messages_accepted_total 1"));
  EXPECT_TRUE(has(text, "smtpsd_recipients_accepted_total 3"));
  EXPECT_TRUE(has(text, "smtpsd_accept_to_250_seconds_bucket{le=\"0.0025\"} 0"));
  EXPECT_TRUE(has(text, "smtpsd_accept_to_250_seconds_bucket{le=\"0.005\"} 1"));
  EXPECT_TRUE(has(text, "smtpsd_accept_to_250_seconds_count 1"));
}

TEST(ServerMetricsTest, CertificateCollectorReportsSecondsLeft) {
  obs::Registry registry;
  obs::add_certificate_collector(registry, [] {
    return std::vector<obs::CertificateExpiry>{
        {"/etc/tls/a.pem", "mail.example.org",
         static_cast<std::int64_t>(std::time(nullptr)) + 100}};
  });
  std::string text = registry.render();
  EXPECT_NE(text.find("# TYPE smtpsd_certificate_expiry_seconds gauge\n"), std::string::npos);
  EXPECT_NE(text.find("smtpsd_certificate_expiry_seconds{file=\"/etc/tls/a.pem\",names=\"mail."
                      "example.org\"} 10"),
            std::string::npos);  // 100 or a second less
}

}  // namespace
