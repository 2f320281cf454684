// router_test.cpp — delivery::Router: which way each recipient goes (Maildir, LMTP, onward
// per domain), one copy per local mailbox, our own domain never sent out, an address
// without a domain refused, results in the order of the recipients asked for.
#include "delivery/router.h"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace delivery {
namespace {

using queue::DeliveryResult;
using queue::DeliveryStatus;

// One local domain, example.org, with the mailboxes demo and Bob (spelled so), matched
// without regard to case, as app::local_recipients_of does.
LocalRecipients example_org() {
  LocalRecipients local;
  local.mailbox = [](std::string_view address) -> std::optional<std::string> {
    std::string lower(address);
    for (char& c : lower)
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (lower == "demo@example.org") return "demo@example.org";
    if (lower == "bob@example.org") return "Bob@example.org";
    return std::nullopt;
  };
  local.is_local_domain = [](std::string_view domain) { return domain == "example.org"; };
  return local;
}

queue::StoredMessage message_to(std::vector<std::string> recipients) {
  queue::StoredMessage message;
  message.id = "m1";
  for (std::string& address : recipients)
    message.envelope.recipients.push_back({std::move(address), "", ""});
  return message;
}

// Records each call of each route; every route answers "delivered by <route>".
struct RecordedRoutes {
  std::vector<std::string> maildir;  // the address as the route saw it
  std::vector<std::vector<std::string>> lmtp;
  std::map<std::string, std::vector<std::string>> remote;  // domain -> addresses
  std::vector<std::string> lmtp_servers;                   // "" for [delivery] lmtp
  std::map<std::string, std::string> remote_via;           // domain -> next hop host or ""
  std::map<std::string, std::string> remote_sender;        // domain -> envelope sender

  Routes routes(bool with_lmtp) {
    Routes r;
    r.maildir = [this](const queue::StoredMessage& m, std::size_t index) {
      maildir.push_back(m.envelope.recipients[index].address);
      return DeliveryResult{DeliveryStatus::kDelivered, "maildir", "maildir"};
    };
    if (with_lmtp) {
      r.lmtp = [this](const queue::StoredMessage& m, std::span<const std::size_t> indices,
                      const base::Endpoint* server) {
        lmtp_servers.push_back(server ? base::to_string(*server) : "");
        std::vector<std::string> seen;
        for (std::size_t i : indices)
          seen.push_back(m.envelope.recipients[i].address);
        lmtp.push_back(seen);
        return std::vector<DeliveryResult>(indices.size(),
                                           {DeliveryStatus::kDelivered, "lmtp", "lmtp"});
      };
    }
    r.remote = [this](const queue::StoredMessage& m, std::span<const std::size_t> indices,
                      std::string_view domain, const NextHop* via) {
      remote_via[std::string(domain)] = via ? via->url.host : "";
      remote_sender[std::string(domain)] = m.envelope.reverse_path;
      for (std::size_t i : indices)
        remote[std::string(domain)].push_back(m.envelope.recipients[i].address);
      return std::vector<DeliveryResult>(indices.size(),
                                         {DeliveryStatus::kDelivered, "remote", "smtp"});
    };
    return r;
  }
};

std::vector<DeliveryResult> deliver(RecordedRoutes& recorded, const queue::StoredMessage& message,
                                    std::vector<std::size_t> recipients, bool with_lmtp = false) {
  Router router([] { return example_org(); }, recorded.routes(with_lmtp));
  return router.deliver(message, recipients);
}

// The record of an expansion is never delivered anywhere and never hides a real copy.
TEST(RouterTest, AnExpansionRecordIsReportedExpandedAndDeliveredNowhere) {
  RecordedRoutes recorded;
  queue::StoredMessage message = message_to({"demo@example.org", "demo@example.org"});
  message.envelope.recipients[0].expansion_record = true;
  auto results = deliver(recorded, message, {0, 1});
  EXPECT_TRUE(results[0].expanded);
  EXPECT_EQ(results[0].status, DeliveryStatus::kDelivered);
  EXPECT_FALSE(results[1].expanded);
  EXPECT_EQ(recorded.maildir, std::vector<std::string>{"demo@example.org"});
}

TEST(RouterTest, LocalMailboxGoesToMaildirUnderItsConfiguredName) {
  RecordedRoutes recorded;
  auto results = deliver(recorded, message_to({"BOB@Example.ORG"}), {0});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].detail, "maildir");
  EXPECT_EQ(recorded.maildir, std::vector<std::string>{"Bob@example.org"});
  EXPECT_TRUE(recorded.remote.empty());
}

TEST(RouterTest, WithLmtpLocalMailboxesGoThereInOneTransaction) {
  RecordedRoutes recorded;
  auto results =
      deliver(recorded, message_to({"demo@example.org", "x@example.net", "bob@example.org"}),
              {0, 1, 2}, /*with_lmtp=*/true);
  EXPECT_TRUE(recorded.maildir.empty());
  ASSERT_EQ(recorded.lmtp.size(), 1u);
  EXPECT_EQ(recorded.lmtp[0], (std::vector<std::string>{"demo@example.org", "Bob@example.org"}));
  EXPECT_EQ(results[0].detail, "lmtp");
  EXPECT_EQ(results[1].detail, "remote");
  EXPECT_EQ(results[2].detail, "lmtp");
}

TEST(RouterTest, OtherDomainsGoOnwardOneTransactionPerLowerCaseDomain) {
  RecordedRoutes recorded;
  auto results = deliver(
      recorded, message_to({"a@Example.NET", "demo@example.org", "b@example.net", "c@other.test"}),
      {0, 1, 2, 3});
  ASSERT_EQ(recorded.remote.size(), 2u);
  // Addresses go out as the client gave them; only the grouping ignores case.
  EXPECT_EQ(recorded.remote["example.net"],
            (std::vector<std::string>{"a@Example.NET", "b@example.net"}));
  EXPECT_EQ(recorded.remote["other.test"], std::vector<std::string>{"c@other.test"});
  EXPECT_EQ(recorded.maildir, std::vector<std::string>{"demo@example.org"});
  EXPECT_EQ(results[0].detail, "remote");
  EXPECT_EQ(results[1].detail, "maildir");
  EXPECT_EQ(results[3].detail, "remote");
}

TEST(RouterTest, OurOwnDomainWithoutTheMailboxFailsAndIsNeverSentOut) {
  RecordedRoutes recorded;
  auto results = deliver(recorded, message_to({"gone@EXAMPLE.org"}), {0});
  ASSERT_EQ(results.size(), 1u);
  EXPECT_EQ(results[0].status, DeliveryStatus::kPermanent);
  EXPECT_EQ(results[0].enhanced, "5.1.1");
  EXPECT_EQ(results[0].detail, "no mailbox gone@EXAMPLE.org here any more");
  EXPECT_TRUE(recorded.remote.empty());
  EXPECT_TRUE(recorded.maildir.empty());
}

TEST(RouterTest, AnAddressWithoutADomainFailsPermanently) {
  RecordedRoutes recorded;
  auto results = deliver(recorded, message_to({"nobody"}), {0});
  EXPECT_EQ(results[0].status, DeliveryStatus::kPermanent);
  EXPECT_EQ(results[0].enhanced, "5.1.3");
  EXPECT_TRUE(recorded.remote.empty());
}

TEST(RouterTest, OneCopyPerMailboxTheFirstRecipientDelivers) {
  RecordedRoutes recorded;
  auto results = deliver(recorded, message_to({"demo@example.org", "DEMO@EXAMPLE.ORG"}), {0, 1});
  EXPECT_EQ(recorded.maildir, std::vector<std::string>{"demo@example.org"});
  EXPECT_EQ(results[1].status, DeliveryStatus::kDelivered);
  EXPECT_EQ(results[1].detail, "same mailbox as recipient 0");
  // A retry of the second alone still sees the first in the envelope: no second copy.
  RecordedRoutes retry;
  results = deliver(retry, message_to({"demo@example.org", "DEMO@EXAMPLE.ORG"}), {1});
  EXPECT_TRUE(retry.maildir.empty());
  EXPECT_EQ(results[0].detail, "same mailbox as recipient 0");
}

TEST(RouterTest, ResultsFollowTheOrderOfTheRecipientsAskedFor) {
  RecordedRoutes recorded;
  auto results =
      deliver(recorded, message_to({"x@example.net", "nobody", "demo@example.org"}), {2, 0, 1});
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].detail, "maildir");
  EXPECT_EQ(results[1].detail, "remote");
  EXPECT_EQ(results[2].enhanced, "5.1.3");
}

TEST(RouterTest, TheLocalRecipientsAreAskedForOncePerDelivery) {
  RecordedRoutes recorded;
  int asked = 0;
  Router router(
      [&asked] {
        ++asked;
        return example_org();
      },
      recorded.routes(false));
  router.deliver(message_to({"demo@example.org", "a@example.net", "bob@example.org"}),
                 std::vector<std::size_t>{0, 1, 2});
  EXPECT_EQ(asked, 1);
}

// ---- per-domain routing ([[domains]], [srs]) -------------------------------------------

constexpr std::int64_t kReceivedAt = 1796460991;

// example.org as above, and lists.example.org with the mailbox "news".
LocalRecipients two_domains() {
  LocalRecipients local = example_org();
  auto first = local.mailbox;
  local.mailbox = [first](std::string_view address) -> std::optional<std::string> {
    if (address == "news@lists.example.org") return std::string(address);
    return first(address);
  };
  local.is_local_domain = [](std::string_view domain) {
    return domain == "example.org" || domain == "lists.example.org";
  };
  return local;
}

NextHop hop(std::string host) {
  NextHop next;
  next.url.host = std::move(host);
  next.url.port = 25;
  return next;
}

std::shared_ptr<DomainRouting> routing_with_srs() {
  auto routing = std::make_shared<DomainRouting>();
  routing->srs = std::make_shared<const Srs>(SrsOptions{"srs.example.org", {"tops3cret"}, 21, 4});
  return routing;
}

queue::StoredMessage message_from(std::string sender, std::vector<std::string> recipients,
                                  bool authenticated = false) {
  queue::StoredMessage message = message_to(std::move(recipients));
  message.envelope.reverse_path = std::move(sender);
  message.envelope.authenticated = authenticated;
  message.received_unix = kReceivedAt;
  return message;
}

std::vector<DeliveryResult> route(RecordedRoutes& recorded, std::shared_ptr<DomainRouting> routing,
                                  const queue::StoredMessage& message, bool with_lmtp = false) {
  Router router([] { return two_domains(); }, recorded.routes(with_lmtp),
                [routing] { return std::shared_ptr<const DomainRouting>(routing); });
  std::vector<std::size_t> all(message.envelope.recipients.size());
  for (std::size_t i = 0; i < all.size(); ++i)
    all[i] = i;
  return router.deliver(message, all);
}

TEST(RouterTest, EachDomainMayHaveItsOwnAgent) {
  RecordedRoutes recorded;
  auto routing = std::make_shared<DomainRouting>();
  routing->agents["example.org"] = LocalAgent{true, std::nullopt};  // Maildir despite LMTP
  base::Endpoint dovecot;
  dovecot.unix_path = "/run/dovecot/lmtp";
  routing->agents["lists.example.org"] = LocalAgent{false, dovecot};
  auto results = route(recorded, routing,
                       message_from("", {"demo@example.org", "news@lists.example.org"}), true);
  EXPECT_EQ(recorded.maildir, std::vector<std::string>{"demo@example.org"});
  EXPECT_EQ(recorded.lmtp_servers, std::vector<std::string>{"unix:/run/dovecot/lmtp"});
  ASSERT_EQ(recorded.lmtp.size(), 1u);
  EXPECT_EQ(recorded.lmtp[0], std::vector<std::string>{"news@lists.example.org"});
  EXPECT_EQ(results[1].detail, "lmtp");
}

TEST(RouterTest, WithoutADefaultLmtpOnlyDomainsNamingOneUseIt) {
  RecordedRoutes recorded;
  auto routing = std::make_shared<DomainRouting>();
  base::Endpoint dovecot;
  dovecot.unix_path = "/run/dovecot/lmtp";
  routing->agents["lists.example.org"] = LocalAgent{false, dovecot};
  Routes routes = recorded.routes(true);
  routes.lmtp_by_default = false;
  Router router([] { return two_domains(); }, routes,
                [routing] { return std::shared_ptr<const DomainRouting>(routing); });
  router.deliver(message_from("", {"demo@example.org", "news@lists.example.org"}),
                 std::vector<std::size_t>{0, 1});
  EXPECT_EQ(recorded.maildir, std::vector<std::string>{"demo@example.org"});
  EXPECT_EQ(recorded.lmtp_servers, std::vector<std::string>{"unix:/run/dovecot/lmtp"});
}

TEST(RouterTest, RelayDomainGoesToItsNextHopWithTheSenderAsReceived) {
  RecordedRoutes recorded;
  auto routing = routing_with_srs();
  routing->next_hops["backup.example"] = hop("primary.backup.example");
  auto results =
      route(recorded, routing, message_from("someone@elsewhere.test", {"ann@Backup.Example"}));
  EXPECT_EQ(recorded.remote["backup.example"], std::vector<std::string>{"ann@Backup.Example"});
  EXPECT_EQ(recorded.remote_via["backup.example"], "primary.backup.example");
  EXPECT_EQ(recorded.remote_sender["backup.example"], "someone@elsewhere.test");
  Router router([] { return two_domains(); }, recorded.routes(false),
                [routing] { return std::shared_ptr<const DomainRouting>(routing); });
  EXPECT_FALSE(router.stays_here("ann@backup.example"));
}

TEST(RouterTest, MailFromADomainWithItsOwnRelayGoesThroughIt) {
  RecordedRoutes recorded;
  auto routing = std::make_shared<DomainRouting>();
  routing->sender_relays["example.org"] = hop("smtp.provider.test");
  route(recorded, routing, message_from("demo@example.org", {"x@example.net"}, true));
  route(recorded, routing, message_from("demo@lists.example.org", {"y@other.test"}, true));
  EXPECT_EQ(recorded.remote_via["example.net"], "smtp.provider.test");
  EXPECT_EQ(recorded.remote_via["other.test"], "");
  // A sender of ours that did not authenticate (a forgery forwarded by an alias) never
  // leaves through the domain's relay account.
  route(recorded, routing, message_from("ceo@example.org", {"z@third.test"}, false));
  EXPECT_EQ(recorded.remote_via["third.test"], "");
}

TEST(RouterTest, ForwardedMailLeavesWithAnSrsSender) {
  RecordedRoutes recorded;
  route(recorded, routing_with_srs(),
        message_from("alice@origin.example", {"x@example.net", "demo@example.org"}));
  const std::string rewritten = recorded.remote_sender["example.net"];
  EXPECT_TRUE(rewritten.starts_with("SRS0=")) << rewritten;
  EXPECT_TRUE(rewritten.ends_with("=JY=origin.example=alice@srs.example.org")) << rewritten;
  // The local copy is not forwarded: Maildir sees the message as it came.
  EXPECT_EQ(recorded.maildir, std::vector<std::string>{"demo@example.org"});
}

TEST(RouterTest, SrsLeavesOurUsersBouncesAndOurDomainsAlone) {
  RecordedRoutes recorded;
  route(recorded, routing_with_srs(), message_from("friend@origin.example", {"a@one.test"}, true));
  route(recorded, routing_with_srs(), message_from("", {"b@two.test"}));
  route(recorded, routing_with_srs(), message_from("news@LISTS.example.org", {"c@three.test"}));
  EXPECT_EQ(recorded.remote_sender["one.test"], "friend@origin.example");
  EXPECT_EQ(recorded.remote_sender["two.test"], "");
  EXPECT_EQ(recorded.remote_sender["three.test"], "news@LISTS.example.org");
}

TEST(RouterTest, ABounceToAnSrsAddressGoesToTheOriginalSender) {
  RecordedRoutes recorded;
  auto routing = routing_with_srs();
  const std::string srs_address = routing->srs->forward("alice@origin.example", kReceivedAt);
  auto results = route(recorded, routing, message_from("", {srs_address}));
  EXPECT_EQ(recorded.remote["origin.example"], std::vector<std::string>{"alice@origin.example"});
  EXPECT_EQ(recorded.remote_sender["origin.example"], "");
  EXPECT_EQ(results[0].status, DeliveryStatus::kDelivered);
}

TEST(RouterTest, AForgedSrsAddressFailsAndIsNeverSent) {
  RecordedRoutes recorded;
  auto results = route(recorded, routing_with_srs(),
                       message_from("", {"SRS0=abcd=JY=origin.example=alice@srs.example.org"}));
  EXPECT_EQ(results[0].status, DeliveryStatus::kPermanent);
  EXPECT_EQ(results[0].enhanced, "5.1.1");
  EXPECT_TRUE(recorded.remote.empty());
}

}  // namespace
}  // namespace delivery
