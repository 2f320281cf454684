// Tests for app/local_recipients.cpp: which recipients are local, and the verdicts of a
// role that never relays.
#include "app/smtpsd/local_recipients.h"

#include <gtest/gtest.h>

namespace {

config::Config make_local_config() {
  config::Config c;
  c.domains.push_back({"example.org", {"Alice", "bob"}});
  c.domains.push_back({"example.net", {}});
  return c;
}

// A mailbox's canonical name, as the router asks (no users file: the configuration's lists).
std::optional<std::string> mailbox_of(const config::Config& c, std::string_view address) {
  return app::local_recipients_of(std::make_shared<const config::Config>(c)).mailbox(address);
}

// The RCPT decision of the smtp role, with an empty users file and no aliases.
smtp::RecipientDecision inbound_decision(const config::Config& c, std::string_view address) {
  auth::UserDirectory users("/nonexistent/smtpsd-users");
  return app::inbound_recipients(std::make_shared<const config::Config>(c), users,
                                 nullptr)(address);
}

TEST(LocalRecipientsTest, CanonicalNames) {
  auto c = make_local_config();
  EXPECT_EQ(mailbox_of(c, "alice@EXAMPLE.org").value(), "Alice@example.org");
  EXPECT_EQ(mailbox_of(c, "bob@example.org").value(), "bob@example.org");
  EXPECT_EQ(mailbox_of(c, "Postmaster").value(), "postmaster@example.org");
  EXPECT_EQ(mailbox_of(c, "postmaster@example.net").value(), "postmaster@example.net");
  EXPECT_FALSE(mailbox_of(c, "carol@example.org"));
  EXPECT_FALSE(mailbox_of(c, "bob@example.com"));
}

TEST(LocalRecipientsTest, InboundVerdicts) {
  auto c = make_local_config();
  EXPECT_EQ(inbound_decision(c, "bob@example.org"), smtp::RecipientVerdict::kAccept);
  EXPECT_EQ(inbound_decision(c, "carol@example.org"), smtp::RecipientVerdict::kUnknownUser);
  EXPECT_EQ(inbound_decision(c, "bob@example.com"), smtp::RecipientVerdict::kRelayDenied);
  EXPECT_EQ(inbound_decision(c, "bob@example.org.evil.com"), smtp::RecipientVerdict::kRelayDenied);
}

}  // namespace

namespace {

// The users file's mailboxes, the aliases, and what the router makes of a +detail address:
// the mailbox's Maildir folder when sub-address folders are on, the full address for LMTP.
struct Recorded {
  std::vector<std::string> maildir;  // "address folder"
  std::vector<std::string> lmtp;
};

delivery::Routes routes(Recorded& recorded, bool lmtp) {
  delivery::Routes r;
  r.maildir = [&recorded](const queue::StoredMessage& m, std::size_t index) {
    recorded.maildir.push_back(m.envelope.recipients[index].address + " " + m.folder);
    return queue::DeliveryResult{queue::DeliveryStatus::kDelivered, "maildir", "maildir"};
  };
  if (lmtp) {
    r.lmtp_by_default = true;
    r.lmtp = [&recorded](const queue::StoredMessage& m, std::span<const std::size_t> indices,
                         const base::Endpoint*) {
      for (std::size_t i : indices)
        recorded.lmtp.push_back(m.envelope.recipients[i].address);
      return std::vector<queue::DeliveryResult>(indices.size(),
                                                {queue::DeliveryStatus::kDelivered, "lmtp"});
    };
  }
  r.remote = [](const queue::StoredMessage&, std::span<const std::size_t> indices, std::string_view,
                const delivery::NextHop*) {
    return std::vector<queue::DeliveryResult>(indices.size(),
                                              {queue::DeliveryStatus::kDelivered, "remote"});
  };
  return r;
}

TEST(LocalRecipientsTest, UsersFileMailboxesAndDetailFoldersAtDelivery) {
  auto config = std::make_shared<config::Config>(make_local_config());
  config->addressing.subaddress_folders = true;
  auto users = std::make_shared<auth::UserStore>();
  ASSERT_TRUE(users->add_receive_only("Carol@example.org"));
  queue::StoredMessage message;
  message.id = "m1";
  for (const char* address : {"carol+News@example.org", "carol+a.b@example.org",
                              "alice+x@example.org", "carol@example.org"})
    message.envelope.recipients.push_back({address, "", ""});
  Recorded recorded;
  delivery::Router router([&] { return app::local_recipients_of(config, users); },
                          routes(recorded, false));
  auto results = router.deliver(message, std::vector<std::size_t>{0, 1, 2, 3});
  // A detail that cannot name a folder ('.') goes to the INBOX; one mailbox, one copy each
  // folder... the router keeps one copy per mailbox.
  EXPECT_EQ(recorded.maildir,
            (std::vector<std::string>{"Carol@example.org News", "Alice@example.org x"}));
  EXPECT_EQ(results[1].detail, "same mailbox as recipient 0");
  // Without folders, the INBOX; with LMTP, the mailbox's name with the detail.
  config->addressing.subaddress_folders = false;
  Recorded plain;
  delivery::Router inbox([&] { return app::local_recipients_of(config, users); },
                         routes(plain, false));
  inbox.deliver(message, std::vector<std::size_t>{2});
  EXPECT_EQ(plain.maildir, std::vector<std::string>{"Alice@example.org "});
  Recorded lmtp;
  delivery::Router over_lmtp([&] { return app::local_recipients_of(config, users); },
                             routes(lmtp, true));
  over_lmtp.deliver(message, std::vector<std::size_t>{0, 2});
  EXPECT_EQ(lmtp.lmtp, (std::vector<std::string>{"Carol+News@example.org", "Alice+x@example.org"}));
}

TEST(LocalRecipientsTest, RcptDecisionsExpandAliasesAndRoleAccounts) {
  auto config = make_local_config();
  config.addressing.administrator = "bob@example.org";
  auto policy = app::addressing_policy(config);
  auth::UserStore users;
  auto aliases = auth::AliasTable::parse(
      "smtpsd-aliases 1\nteam@example.org alice@example.org,x@remote.test\n"
      "l1@example.org l2@example.org\nl2@example.org l1@example.org\n",
      "aliases");
  ASSERT_TRUE(aliases) << aliases.error();
  auto team = app::decide_recipient(policy, &users, &*aliases, "team@example.org");
  EXPECT_EQ(team.verdict, smtp::RecipientVerdict::kAccept);
  EXPECT_EQ(team.expansion, (std::vector<std::string>{"Alice@example.org", "x@remote.test"}));
  auto abuse = app::decide_recipient(policy, &users, &*aliases, "abuse@example.net");
  EXPECT_EQ(abuse.expansion, std::vector<std::string>{"bob@example.org"});
  // A mailbox reached directly keeps the client's spelling (no expansion, no ORCPT).
  auto alice = app::decide_recipient(policy, &users, &*aliases, "ALICE@example.org");
  EXPECT_EQ(alice.verdict, smtp::RecipientVerdict::kAccept);
  EXPECT_TRUE(alice.expansion.empty());
  EXPECT_EQ(app::decide_recipient(policy, &users, &*aliases, "l1@example.org"),
            smtp::RecipientVerdict::kLoop);
  EXPECT_EQ(app::decide_recipient(policy, &users, &*aliases, "nobody@example.org"),
            smtp::RecipientVerdict::kUnknownUser);
}

}  // namespace

namespace {

TEST(LocalRecipientsTest, CacheFollowsTheConfigurationAndUsersInService) {
  app::LocalRecipientsCache cache;
  auto config = std::make_shared<const config::Config>(make_local_config());
  auto users = std::make_shared<auth::UserStore>();
  ASSERT_TRUE(users->add_receive_only("carol@example.org"));
  std::shared_ptr<const auth::UserStore> first = users;
  EXPECT_EQ(cache.get(config, first).mailbox("Carol@example.org").value(), "carol@example.org");
  // A new users snapshot (a mailbox added): the next lookup sees it.
  auto more = std::make_shared<auth::UserStore>(*users);
  ASSERT_TRUE(more->add_receive_only("dave@example.org"));
  std::shared_ptr<const auth::UserStore> second = more;
  EXPECT_FALSE(cache.get(config, first).mailbox("dave@example.org"));
  EXPECT_TRUE(cache.get(config, second).mailbox("dave@example.org"));
  // A new configuration (a domain removed): so does the next lookup.
  auto reloaded = std::make_shared<config::Config>(make_local_config());
  reloaded->domains.pop_back();
  std::shared_ptr<const config::Config> next = reloaded;
  EXPECT_TRUE(cache.get(config, second).is_local_domain("example.net"));
  EXPECT_FALSE(cache.get(next, second).is_local_domain("example.net"));
}

}  // namespace
