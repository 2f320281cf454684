// domain_routing_test.cpp — app/smtpsd/domain_routing.cpp: the RCPT verdicts for SRS
// addresses and relay domains, each domain's size limit, and the DomainRouting the router
// gets from a configuration (agents, sender relays with their passwords, next hops, SRS).
#include "app/smtpsd/domain_routing.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "app/smtpsd/local_recipients.h"

namespace {

using smtp::RecipientVerdict;

constexpr std::int64_t kNow = 1796460991;

// The RCPT decision of the smtp role, with an empty users file and no aliases.
smtp::RecipientDecision inbound(const config::Config& c, std::string_view address) {
  auth::UserDirectory users("/nonexistent/smtpsd-users");
  return app::inbound_recipients(std::make_shared<const config::Config>(c), users,
                                 nullptr)(address);
}

config::Config make_config() {
  config::Config c;
  config::Domain org;
  org.name = "example.org";
  org.users = {"alice"};
  org.max_message_size = 100000;
  c.domains.push_back(org);
  config::Domain backup;
  backup.name = "backup.example";
  backup.kind = config::DomainKind::kRelay;
  backup.recipients = {"Ann"};
  backup.next_hop = config::DomainHop{};
  backup.next_hop->url.host = "10.0.0.5";
  backup.next_hop->url.port = 25;
  c.relay_domains.push_back(backup);
  c.srs = config::SrsSettings{"srs.example.org", "", {"tops3cret"}, 21};
  return c;
}

TEST(DomainRoutingTest, RelayDomainRecipientsAreCheckedAtRcpt) {
  const config::Config c = make_config();
  EXPECT_EQ(app::relay_domain_verdict(c, "ann@BACKUP.example"), RecipientVerdict::kAccept);
  EXPECT_EQ(app::relay_domain_verdict(c, "Postmaster@backup.example"), RecipientVerdict::kAccept);
  EXPECT_EQ(app::relay_domain_verdict(c, "ghost@backup.example"), RecipientVerdict::kUnknownUser);
  EXPECT_FALSE(app::relay_domain_verdict(c, "alice@example.org"));
  // Through the smtp role's policy too.
  EXPECT_EQ(inbound(c, "ghost@backup.example"), RecipientVerdict::kUnknownUser);
  EXPECT_EQ(inbound(c, "ann@backup.example"), RecipientVerdict::kAccept);
  // Not one of our mailbox domains: nothing is delivered here for it.
  EXPECT_FALSE(app::local_recipients_of(std::make_shared<const config::Config>(c))
                   .mailbox("ann@backup.example"));
}

TEST(DomainRoutingTest, SrsAddressesAreCheckedAtRcpt) {
  const config::Config c = make_config();
  // postsrsd's address for alice@origin.example on that day, with that secret.
  EXPECT_EQ(app::srs_verdict(c, "SRS0=/Dmn=JY=origin.example=alice@srs.example.org", kNow),
            RecipientVerdict::kAccept);
  EXPECT_EQ(app::srs_verdict(c, "SRS0=/Dmx=JY=origin.example=alice@srs.example.org", kNow),
            RecipientVerdict::kSrsInvalid);
  EXPECT_EQ(
      app::srs_verdict(c, "SRS0=/Dmn=JY=origin.example=alice@srs.example.org", kNow + 30 * 86400),
      RecipientVerdict::kSrsExpired);
  EXPECT_FALSE(app::srs_verdict(c, "alice@srs.example.org", kNow));
  EXPECT_FALSE(app::srs_verdict(c, "SRS0=/Dmn=JY=origin.example=alice@example.org", kNow));
  config::Config off = make_config();
  off.srs.reset();
  EXPECT_FALSE(app::srs_verdict(off, "SRS0=/Dmn=JY=origin.example=alice@srs.example.org", kNow));
}

TEST(DomainRoutingTest, SizeLimitIsTheDomainsWhenSmaller) {
  config::Config c = make_config();
  EXPECT_EQ(app::recipient_size_limit(c, "alice@example.org"), 100000u);
  EXPECT_EQ(app::recipient_size_limit(c, "x@elsewhere.test"), 0u);
  c.limits.max_message_size = 50000;
  EXPECT_EQ(app::recipient_size_limit(c, "alice@example.org"), 0u);  // the server's is smaller
}

TEST(DomainRoutingTest, RoutingIsBuiltFromTheDomains) {
  std::string directory =
      (std::filesystem::temp_directory_path() / "smtpsd-routing-XXXXXX").string();
  ASSERT_NE(::mkdtemp(directory.data()), nullptr);
  const std::string password_file = directory + "/relay.pass";
  std::ofstream(password_file) << "s3cret-pass\nignored\n";
  config::Config c = make_config();
  c.domains[0].maildir = true;
  c.domains[0].relay = config::DomainHop{};
  c.domains[0].relay->url.host = "smtp.provider.test";
  c.domains[0].relay->user = "me";
  c.domains[0].relay->password_file = password_file;
  auto routing = app::domain_routing_of(c);
  std::filesystem::remove_all(directory);
  ASSERT_TRUE(routing->agents.contains("example.org"));
  EXPECT_TRUE(routing->agents.at("example.org").maildir);
  ASSERT_TRUE(routing->sender_relays.contains("example.org"));
  EXPECT_EQ(routing->sender_relays.at("example.org").url.host, "smtp.provider.test");
  EXPECT_EQ(routing->sender_relays.at("example.org").password, "s3cret-pass");
  ASSERT_TRUE(routing->next_hops.contains("backup.example"));
  EXPECT_EQ(routing->next_hops.at("backup.example").url.host, "10.0.0.5");
  ASSERT_TRUE(routing->srs);
  EXPECT_EQ(routing->srs->options().domain, "srs.example.org");
  // Built once per snapshot.
  app::DomainRoutingCache cache;
  auto snapshot = std::make_shared<const config::Config>(make_config());
  EXPECT_EQ(cache.get(snapshot), cache.get(snapshot));
  EXPECT_NE(cache.get(snapshot), cache.get(std::make_shared<const config::Config>(make_config())));
}

}  // namespace
