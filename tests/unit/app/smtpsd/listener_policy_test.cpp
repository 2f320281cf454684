// listener_policy_test.cpp — the roles table of app/listener_policy.h, row by row: TLS mode,
// AUTH offered and required, who may relay, the null sender, and what reaches
// net::ListenerOptions.
#include "app/smtpsd/listener_policy.h"

#include <gtest/gtest.h>

namespace app {
namespace {

using smtp::RecipientVerdict;

std::shared_ptr<const config::Config> snapshot() {
  config::Config config;
  config.source_file = "/etc/smtpsd.toml";
  config.hostname = "mx.example.org";
  config.domains.push_back(config::Domain{"example.org", {"demo"}});
  for (config::Role role :
       {config::Role::kSubmissions, config::Role::kSubmission, config::Role::kSmtp}) {
    config::Listener l;
    l.role = role;
    l.address = *base::parse_ip("127.0.0.1");
    l.address_text = "127.0.0.1";
    l.port = 0;
    l.line = 10 + static_cast<long>(config.listeners.size());
    config.listeners.push_back(l);
  }
  config.command_timeout = std::chrono::seconds(61);
  return std::make_shared<const config::Config>(std::move(config));
}

class ListenerPolicyTest : public ::testing::Test {
 protected:
  smtp::SessionConfig session(config::Role role, bool require_tls = false) {
    config::Listener l;
    l.role = role;
    l.require_tls = require_tls;
    return session_config(snapshot(), l, users_);
  }
  auth::UserDirectory users_{"/nonexistent/smtpsd-test/users"};
};

TEST_F(ListenerPolicyTest, SubmissionsIsImplicitTlsWithAuthRequired) {
  smtp::SessionConfig s = session(config::Role::kSubmissions);
  EXPECT_EQ(s.tls_mode, smtp::TlsMode::kImplicit);
  EXPECT_TRUE(s.require_auth);
  EXPECT_FALSE(s.auth_mechanisms.empty());
  EXPECT_FALSE(s.allow_null_sender);
  EXPECT_TRUE(s.may_send_as);
  EXPECT_TRUE(role_policy(config::Role::kSubmissions).implicit_tls);
}

TEST_F(ListenerPolicyTest, SubmissionRequiresStartTlsAndAuth) {
  smtp::SessionConfig s = session(config::Role::kSubmission);
  EXPECT_EQ(s.tls_mode, smtp::TlsMode::kStartTlsRequired);
  EXPECT_TRUE(s.require_auth);
  EXPECT_FALSE(s.auth_mechanisms.empty());
  EXPECT_FALSE(s.allow_null_sender);
  EXPECT_FALSE(role_policy(config::Role::kSubmission).implicit_tls);
}

TEST_F(ListenerPolicyTest, SmtpOffersStartTlsAndNeverAuth) {
  smtp::SessionConfig s = session(config::Role::kSmtp);
  EXPECT_EQ(s.tls_mode, smtp::TlsMode::kStartTlsOptional);
  EXPECT_FALSE(s.require_auth);
  EXPECT_TRUE(s.auth_mechanisms.empty());
  EXPECT_TRUE(s.allow_null_sender);  // bounces arrive here
  EXPECT_FALSE(s.may_send_as);
  EXPECT_EQ(session(config::Role::kSmtp, /*require_tls=*/true).tls_mode,
            smtp::TlsMode::kStartTlsRequired);
}

TEST_F(ListenerPolicyTest, SubmissionRolesRelayOnlyForAuthenticatedUsers) {
  for (config::Role role : {config::Role::kSubmissions, config::Role::kSubmission}) {
    smtp::SessionConfig s = session(role);
    EXPECT_EQ(s.check_recipient("someone@example.net", ""), RecipientVerdict::kRelayDenied);
    EXPECT_EQ(s.check_recipient("someone@example.net", "demo@example.org"),
              RecipientVerdict::kAccept);
    EXPECT_EQ(s.check_recipient("nobody@example.org", "demo@example.org"),
              RecipientVerdict::kUnknownUser);
  }
}

TEST_F(ListenerPolicyTest, SmtpAcceptsLocalDomainsOnlyAndNeverRelays) {
  smtp::SessionConfig s = session(config::Role::kSmtp);
  EXPECT_EQ(s.check_recipient("DEMO@example.org", ""), RecipientVerdict::kAccept);
  EXPECT_EQ(s.check_recipient("nobody@example.org", ""), RecipientVerdict::kUnknownUser);
  EXPECT_EQ(s.check_recipient("someone@example.net", ""), RecipientVerdict::kRelayDenied);
  // Not even for a session that names a user.
  EXPECT_EQ(s.check_recipient("someone@example.net", "demo@example.org"),
            RecipientVerdict::kRelayDenied);
}

// The server's pipeline without a resolver (no port-25 authenticity check): what these
// tests look at is the received-loop check and how listeners share the pipeline.
std::shared_ptr<const intake::Pipeline> checks_without_services(const config::Config& config) {
  auto built = built_in_checks(config, CheckServices{});
  EXPECT_TRUE(built) << built.error();
  return built ? built.value() : nullptr;
}

TEST_F(ListenerPolicyTest, ListenerOptionsCarryTheRoleAndTheSettings) {
  auto config = snapshot();
  bool asked = false;
  auto options = listener_options(config, 0, checks_without_services(*config), nullptr, users_,
                                  [&asked](std::uint64_t) {
                                    asked = true;
                                    return false;
                                  });
  EXPECT_EQ(options.role, "submissions");
  EXPECT_TRUE(options.implicit_tls);
  EXPECT_EQ(options.session.hostname, "mx.example.org");
  EXPECT_EQ(options.command_timeout, std::chrono::seconds(61));
  EXPECT_FALSE(options.session.has_room_for(1));
  EXPECT_TRUE(asked);
  auto smtp = listener_options(config, 2, checks_without_services(*config), nullptr, users_, {});
  EXPECT_EQ(smtp.role, "smtp");
  EXPECT_FALSE(smtp.implicit_tls);
}

// Every listener runs the built-in checks of its snapshot: today the received-loop check at
// limits.max_received_headers, which looks at the end of the headers only, so no session
// command waits for a check; one pipeline for all the listeners of a snapshot.
TEST_F(ListenerPolicyTest, EveryListenerRunsTheBuiltInChecks) {
  auto config = snapshot();
  auto checks = checks_without_services(*config);
  for (std::size_t index : {0u, 1u, 2u}) {
    auto options = listener_options(config, index, checks, nullptr, users_, {});
    ASSERT_TRUE(options.checks);
    EXPECT_EQ(options.checks, checks);  // one pipeline, shared
    EXPECT_EQ(options.checks->session_stages(), 0u);
    EXPECT_EQ(options.checks->stages(), intake::mask(intake::Stage::kEndOfHeaders));
  }
  EXPECT_EQ(describe_checks(*checks),
            "received-loop (end of headers, 554 5.4.6 at 50 Received fields)");
  EXPECT_EQ(describe_checks(intake::Pipeline()), "none");
}

class NoResolver final : public dns::Resolver {
 public:
  void lookup(std::string_view, dns::Type, Callback callback) override {
    callback(std::make_shared<dns::Answer>());
  }
  bool validates() const override { return false; }
  std::string describe() const override { return "none"; }
};

// The DNS list check goes in front of the smtp listeners' pipeline only (the reload engine
// gives it to them): the other roles, never screened, pay no check round for it.
TEST_F(ListenerPolicyTest, TheDnsListCheckIsOnlyInTheSmtpPipeline) {
  config::Config config = *snapshot();
  CheckServices services;
  services.resolver = std::make_shared<NoResolver>();
  EXPECT_EQ(dns_list_check(config, services), nullptr);  // no lists
  config.screening.dns_lists.push_back(config::DnsListSettings{"bl.example", 1, {}});
  EXPECT_EQ(dns_list_check(config, CheckServices{}), nullptr);  // no resolver
  auto screening = dns_list_check(config, services);
  ASSERT_TRUE(screening);
  EXPECT_EQ(screening->name(), "dnsbl");
  auto checks = checks_without_services(config);
  for (const auto& check : checks->checks())
    EXPECT_NE(check->name(), "dnsbl");
  auto smtp = with_screening(checks, screening);
  ASSERT_EQ(smtp->checks().size(), checks->checks().size() + 1);
  EXPECT_EQ(smtp->checks().front(), screening);
  EXPECT_EQ(smtp->checks().back(), checks->checks().back());
  EXPECT_EQ(with_screening(checks, nullptr), checks);
}

// The limit comes from the configuration snapshot (a reload builds the pipeline again); 0
// leaves the check out.
TEST_F(ListenerPolicyTest, TheLoopLimitComesFromTheConfiguration) {
  config::Config config = *snapshot();
  config.max_received_headers = 7;
  EXPECT_EQ(describe_checks(*checks_without_services(config)),
            "received-loop (end of headers, 554 5.4.6 at 7 Received fields)");
  config.max_received_headers = 0;
  auto off = checks_without_services(config);
  EXPECT_TRUE(off->checks().empty());
  EXPECT_EQ(off->stages(), 0u);
  EXPECT_EQ(describe_checks(*off), "none");
}

TEST_F(ListenerPolicyTest, ProxyNetworksReachTheListener) {
  config::Config config = *snapshot();
  config.listeners[1].proxy_protocol = true;
  config.listeners[1].proxy_from = {*base::parse_network("10.0.0.0/8")};
  auto options = listener_options(std::make_shared<const config::Config>(config), 1, nullptr,
                                  nullptr, users_, {});
  EXPECT_TRUE(options.proxy_protocol);
  ASSERT_EQ(options.proxy_from.size(), 1u);
  EXPECT_TRUE(options.proxy_from[0].contains(*base::parse_ip("10.1.2.3")));
}

}  // namespace
}  // namespace app
