// local_submission_test.cpp — the local role's policy: who a peer is (a uid without a name
// and a user outside allow_users are refused with 554 5.7.1), which sender a user gets, and
// the configuration of [local_submission] (defaults, and role "local" refused on a network
// address).
#include "app/smtpsd/local_submission.h"

#include <gtest/gtest.h>

namespace app {
namespace {

std::optional<std::string> names(std::uint32_t uid) {
  if (uid == 0) return "root";
  if (uid == 1000) return "alice";
  if (uid == 1001) return "bob";
  return std::nullopt;
}

TEST(LocalSubmission, EveryNamedUserByDefault) {
  config::LocalSubmissionSettings settings;
  auto alice = identify_local_peer(settings, net::PeerCredentials{1000, 1000, 42}, names);
  ASSERT_TRUE(alice);
  EXPECT_EQ(alice.value(), "alice");
  auto nameless = identify_local_peer(settings, net::PeerCredentials{64001, 64001, 43}, names);
  ASSERT_FALSE(nameless);
  EXPECT_EQ(nameless.error().code, 554);
  EXPECT_EQ(nameless.error().enhanced, "5.7.1");
  EXPECT_NE(nameless.error().text.find("uid 64001 has no user name"), std::string::npos);
}

TEST(LocalSubmission, AllowUsersRefusesTheOthers) {
  config::LocalSubmissionSettings settings;
  settings.allow_users = {"alice"};
  EXPECT_TRUE(identify_local_peer(settings, net::PeerCredentials{1000, 1000, 1}, names));
  auto bob = identify_local_peer(settings, net::PeerCredentials{1001, 1001, 1}, names);
  ASSERT_FALSE(bob);
  EXPECT_EQ(bob.error().code, 554);
  EXPECT_NE(bob.error().text.find("local user bob may not submit"), std::string::npos);
}

TEST(LocalSubmission, SenderRewrittenUnlessTrusted) {
  config::LocalSubmissionSettings settings;
  settings.domain = "host.example";
  EXPECT_EQ(local_sender(settings, "alice", "ceo@bank.example"), "alice@host.example");
  EXPECT_EQ(local_sender(settings, "alice", ""), "alice@host.example");
  EXPECT_EQ(local_sender(settings, "root", "list-bounces@host.example"),
            "list-bounces@host.example")
      << "root may set its sender by default";
  EXPECT_EQ(local_sender(settings, "root", ""), "");
  settings.may_set_sender = {"alice"};
  EXPECT_EQ(local_sender(settings, "alice", "a@b.example"), "a@b.example");
  EXPECT_EQ(local_sender(settings, "root", "a@b.example"), "root@host.example");
}

const char* kBase = R"([server]
hostname = "mx.example.org"
data_dir = "/var/lib/smtpsd"

[[tls.certificates]]
certificate = "c.pem"
key = "k.pem"

[[domains]]
name = "example.org"
users = ["alice"]

[[listeners]]
role = "smtp"
address = "127.0.0.1"
)";

TEST(LocalSubmissionConfig, OffWithoutTheTableAndDefaultsWithIt) {
  auto without = config::parse(kBase, "/etc/smtpsd/t.toml");
  ASSERT_TRUE(without) << without.error().to_string();
  EXPECT_FALSE(without->local_submission.enabled);
  auto with = config::parse(std::string(kBase) + "\n[local_submission]\n", "/etc/smtpsd/t.toml");
  ASSERT_TRUE(with) << with.error().to_string();
  const auto& l = with->local_submission;
  EXPECT_TRUE(l.enabled);
  EXPECT_EQ(l.socket, "/var/lib/smtpsd/public/submit.sock");
  EXPECT_TRUE(l.allow_users.empty());
  EXPECT_EQ(l.may_set_sender, std::vector<std::string>{"root"});
  EXPECT_EQ(l.domain, "example.org") << "the first [[domains]] name";
  auto set = config::parse(std::string(kBase) +
                               "\n[local_submission]\nsocket = \"run/submit.sock\"\n"
                               "allow_users = [\"alice\"]\nmay_set_sender = []\n"
                               "domain = \"Host.Example\"\n",
                           "/etc/smtpsd/t.toml");
  ASSERT_TRUE(set) << set.error().to_string();
  EXPECT_EQ(set->local_submission.socket, "/etc/smtpsd/run/submit.sock");
  EXPECT_EQ(set->local_submission.allow_users, std::vector<std::string>{"alice"});
  EXPECT_TRUE(set->local_submission.may_set_sender.empty());
  EXPECT_EQ(set->local_submission.domain, "host.example");
}

TEST(LocalSubmissionConfig, BadValuesNameTheKey) {
  struct Case {
    std::string text;
    std::string key;
  };
  const Case cases[] = {
      {"[[listeners]]\nrole = \"local\"\naddress = \"127.0.0.1\"\n", "listeners[1].role"},
      {"[local_submission]\nallow_users = [\"a b\"]\n", "local_submission.allow_users"},
      {"[local_submission]\nmay_set_sender = [\"x@y\"]\n", "local_submission.may_set_sender"},
      {"[local_submission]\nallow_users = [3]\n", "local_submission.allow_users"},
      {"[local_submission]\ndomain = \"-bad-\"\n", "local_submission.domain"},
      {"[local_submission]\nsocket = \"/" + std::string(120, 'x') + "\"\n",
       "local_submission.socket"},
      {"[local_submission]\nport = 25\n", "local_submission.port"},
  };
  for (const Case& c : cases) {
    auto parsed = config::parse(std::string(kBase) + "\n" + c.text, "/etc/smtpsd/t.toml");
    ASSERT_FALSE(parsed) << c.text;
    EXPECT_EQ(parsed.error().key, c.key) << parsed.error().to_string();
  }
  auto tcp = config::parse(std::string(kBase) + "\n" + cases[0].text, "/etc/smtpsd/t.toml");
  EXPECT_NE(tcp.error().message.find("unix socket only"), std::string::npos);
}

}  // namespace
}  // namespace app
