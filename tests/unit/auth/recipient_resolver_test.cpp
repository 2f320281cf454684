// recipient_resolver_test.cpp — auth::resolve_recipient: the lookup order (exact alias,
// mailbox, +detail, role accounts, catch-all), loops, fan-out, and the alias problems that
// `smtpsd check` and `smtpsctl alias add` report.
#include "auth/recipient_resolver.h"

#include <gtest/gtest.h>

namespace auth {
namespace {

UserStore mailboxes(std::initializer_list<const char*> addresses) {
  UserStore store;
  for (const char* address : addresses)
    EXPECT_TRUE(store.add_receive_only(address));
  return store;
}

AliasTable table(std::string_view text) {
  auto parsed = AliasTable::parse("smtpsd-aliases 1\n" + std::string(text), "aliases");
  EXPECT_TRUE(parsed) << parsed.error();
  return parsed ? std::move(parsed.value()) : AliasTable{};
}

AddressingPolicy policy() {
  AddressingPolicy p;
  p.domains = {"example.org", "example.net"};
  return p;
}

std::vector<std::string> targets(const Resolution& r) {
  EXPECT_EQ(r.outcome, ResolveOutcome::kResolved) << r.reason;
  return r.targets;
}

using Targets = std::vector<std::string>;

TEST(RecipientResolverTest, MailboxesComeFromTheUsersFileWithTheirSpelling) {
  UserStore users = mailboxes({"Alice@example.org"});
  auto r = resolve_recipient(policy(), &users, nullptr, "alice@EXAMPLE.org");
  EXPECT_EQ(targets(r), Targets{"Alice@example.org"});
  EXPECT_FALSE(r.expanded);
  EXPECT_EQ(resolve_recipient(policy(), &users, nullptr, "carol@example.org").outcome,
            ResolveOutcome::kUnknown);
  EXPECT_EQ(resolve_recipient(policy(), &users, nullptr, "alice@example.com").outcome,
            ResolveOutcome::kNotLocal);
  // A users-file entry of a domain we do not serve is a login, not a mailbox.
  UserStore other = mailboxes({"x@example.com"});
  EXPECT_EQ(resolve_recipient(policy(), &other, nullptr, "x@example.com").outcome,
            ResolveOutcome::kNotLocal);
}

TEST(RecipientResolverTest, LegacyDomainUsersStillReceive) {
  AddressingPolicy p = policy();
  p.legacy_mailboxes = {"bob@example.org"};
  EXPECT_EQ(targets(resolve_recipient(p, nullptr, nullptr, "BOB@example.org")),
            Targets{"bob@example.org"});
}

TEST(RecipientResolverTest, ExactAliasFirstThenMailboxThenDetailThenCatchAll) {
  UserStore users = mailboxes({"alice@example.org", "bob@example.org", "catch@example.org"});
  AliasTable aliases = table(
      "alice+boss@example.org bob@example.org\n"
      "sales@example.org alice@example.org,bob@example.org,partner@remote.test\n"
      "@example.org catch@example.org\n");
  AddressingPolicy p = policy();
  // The exact address (detail included) has an alias: it wins over alice's mailbox.
  EXPECT_EQ(targets(resolve_recipient(p, &users, &aliases, "alice+boss@example.org")),
            Targets{"bob@example.org"});
  // No alias for alice+news: alice's mailbox, detail kept.
  auto news = resolve_recipient(p, &users, &aliases, "alice+news@example.org");
  EXPECT_EQ(targets(news), Targets{"alice+news@example.org"});
  EXPECT_FALSE(news.expanded);
  // The alias of the address without its detail, which its local targets get too.
  EXPECT_EQ(targets(resolve_recipient(p, &users, &aliases, "sales+q3@example.org")),
            (Targets{"alice+q3@example.org", "bob+q3@example.org", "partner@remote.test"}));
  // A catch-all never shadows a mailbox...
  EXPECT_EQ(targets(resolve_recipient(p, &users, &aliases, "bob@example.org")),
            Targets{"bob@example.org"});
  // ... and takes the rest of its domain only.
  auto caught = resolve_recipient(p, &users, &aliases, "nobody@example.org");
  EXPECT_EQ(targets(caught), Targets{"catch@example.org"});
  EXPECT_TRUE(caught.expanded);
  EXPECT_EQ(resolve_recipient(p, &users, &aliases, "nobody@example.net").outcome,
            ResolveOutcome::kUnknown);
}

TEST(RecipientResolverTest, AnAliasPassesAnUnmatchedDetailOnToItsLocalTargets) {
  UserStore users =
      mailboxes({"alice@example.org", "bob@example.org", "carol@example.net", "list@example.org"});
  AliasTable chain = table(
      "team@example.org alice@example.org,bob+archive@example.org,sub@example.org,"
      "partner@remote.test\n"
      "sub@example.org carol@example.net\n"
      "list@example.org list@example.org,alice@example.org\n");
  AddressingPolicy p = policy();
  // A target of ours without a detail gets it, also through a further alias; one with a
  // detail of its own keeps it; a remote target is left as written.
  EXPECT_EQ(targets(resolve_recipient(p, &users, &chain, "team+q3@example.org")),
            (Targets{"alice+q3@example.org", "bob+archive@example.org", "carol+q3@example.net",
                     "partner@remote.test"}));
  // The alias's own mailbox keeps the detail too.
  EXPECT_EQ(targets(resolve_recipient(p, &users, &chain, "list+x@example.org")),
            (Targets{"list+x@example.org", "alice+x@example.org"}));
  // Without a detail nothing changes; with sub-addressing off there is no alias to reach.
  EXPECT_EQ(targets(resolve_recipient(p, &users, &chain, "team@example.org")),
            (Targets{"alice@example.org", "bob+archive@example.org", "carol@example.net",
                     "partner@remote.test"}));
  AddressingPolicy off = policy();
  off.separator = "";
  EXPECT_EQ(resolve_recipient(off, &users, &chain, "team+q3@example.org").outcome,
            ResolveOutcome::kUnknown);
}

TEST(RecipientResolverTest, CatchAllIsOffWithoutAnEntry) {
  UserStore users = mailboxes({"alice@example.org"});
  AliasTable aliases = table("sales@example.org alice@example.org\n");
  EXPECT_EQ(resolve_recipient(policy(), &users, &aliases, "random@example.org").outcome,
            ResolveOutcome::kUnknown);
}

TEST(RecipientResolverTest, SubAddressingCanBeTurnedOffOrUseAnotherSeparator) {
  UserStore users = mailboxes({"alice@example.org"});
  AddressingPolicy off = policy();
  off.separator = "";
  EXPECT_EQ(resolve_recipient(off, &users, nullptr, "alice+news@example.org").outcome,
            ResolveOutcome::kUnknown);
  AddressingPolicy dash = policy();
  dash.separator = "-";
  EXPECT_EQ(targets(resolve_recipient(dash, &users, nullptr, "alice-news@example.org")),
            Targets{"alice-news@example.org"});
  EXPECT_EQ(resolve_recipient(dash, &users, nullptr, "alice+news@example.org").outcome,
            ResolveOutcome::kUnknown);
  // "+x@" (empty local before the separator) is no sub-address.
  EXPECT_EQ(resolve_recipient(policy(), &users, nullptr, "+alice@example.org").outcome,
            ResolveOutcome::kUnknown);
}

TEST(RecipientResolverTest, RoleAccountsGoToTheAdministrator) {
  UserStore users = mailboxes({"admin@example.org"});
  AddressingPolicy p = policy();
  p.administrator = "admin@example.org";
  for (const char* role : {"postmaster@example.org", "POSTMASTER@example.net", "abuse@example.net",
                           "Postmaster", "postmaster+x@example.org"}) {
    auto r = resolve_recipient(p, &users, nullptr, role);
    EXPECT_EQ(targets(r), Targets{"admin@example.org"}) << role;
    EXPECT_TRUE(r.expanded) << role;
  }
  // An alias or a mailbox of that name wins over the default.
  AliasTable aliases = table("abuse@example.net abuse-desk@remote.test\n");
  EXPECT_EQ(targets(resolve_recipient(p, &users, &aliases, "abuse@example.net")),
            Targets{"abuse-desk@remote.test"});
  // Without an administrator postmaster@ is a mailbox of its own (RFC 5321 §4.5.1) and
  // abuse@ is unknown.
  AddressingPolicy none = policy();
  EXPECT_EQ(targets(resolve_recipient(none, &users, nullptr, "Postmaster")),
            Targets{"postmaster@example.org"});
  EXPECT_EQ(resolve_recipient(none, &users, nullptr, "abuse@example.org").outcome,
            ResolveOutcome::kUnknown);
  // Bare addresses other than postmaster are not ours.
  EXPECT_EQ(resolve_recipient(none, &users, nullptr, "abuse").outcome, ResolveOutcome::kNotLocal);
}

TEST(RecipientResolverTest, LoopsAreFoundAtAnyDepth) {
  UserStore users = mailboxes({"alice@example.org"});
  AliasTable two = table("a@example.org b@example.org\nb@example.org a@example.org\n");
  EXPECT_EQ(resolve_recipient(policy(), &users, &two, "a@example.org").outcome,
            ResolveOutcome::kLoop);
  // A catch-all whose target is unknown comes back to itself.
  AliasTable catch_all = table("@example.org nobody@example.org\n");
  EXPECT_EQ(resolve_recipient(policy(), &users, &catch_all, "x@example.org").outcome,
            ResolveOutcome::kLoop);
  // An administrator that is itself a role account is a mailbox, not a loop (postmaster
  // must always be accepted, RFC 5321 §4.5.1).
  AddressingPolicy p = policy();
  p.administrator = "postmaster@example.org";
  EXPECT_EQ(targets(resolve_recipient(p, &users, nullptr, "abuse@example.org")),
            Targets{"postmaster@example.org"});
  EXPECT_EQ(targets(resolve_recipient(p, &users, nullptr, "Postmaster")),
            Targets{"postmaster@example.org"});
  // An administrator missing from the users file: postmaster is still accepted, abuse not.
  p.administrator = "gone@example.org";
  EXPECT_EQ(targets(resolve_recipient(p, &users, nullptr, "postmaster@example.org")),
            Targets{"postmaster@example.org"});
  EXPECT_EQ(resolve_recipient(p, &users, nullptr, "abuse@example.org").outcome,
            ResolveOutcome::kUnknown);
  // A chain deeper than max_depth.
  std::string chain;
  for (int i = 0; i < 12; ++i)
    chain += "l" + std::to_string(i) + "@example.org l" + std::to_string(i + 1) + "@example.org\n";
  chain += "l12@example.org alice@example.org\n";
  AliasTable deep = table(chain);
  EXPECT_EQ(resolve_recipient(policy(), &users, &deep, "l0@example.org").outcome,
            ResolveOutcome::kLoop);
  AddressingPolicy deeper = policy();
  deeper.max_depth = 20;
  EXPECT_EQ(targets(resolve_recipient(deeper, &users, &deep, "l0@example.org")),
            Targets{"alice@example.org"});
}

TEST(RecipientResolverTest, AnAliasThatNamesItselfKeepsItsOwnMailbox) {
  UserStore users = mailboxes({"alice@example.org", "archive@example.org"});
  AliasTable aliases = table("alice@example.org alice@example.org,archive@example.org\n");
  EXPECT_EQ(targets(resolve_recipient(policy(), &users, &aliases, "alice@example.org")),
            (Targets{"alice@example.org", "archive@example.org"}));
}

TEST(RecipientResolverTest, DiamondsAreDeduplicatedNotLoops) {
  UserStore users = mailboxes({"alice@example.org"});
  AliasTable aliases = table(
      "all@example.org x@example.org,y@example.org\n"
      "x@example.org alice@example.org\ny@example.org ALICE@example.org\n");
  EXPECT_EQ(targets(resolve_recipient(policy(), &users, &aliases, "all@example.org")),
            Targets{"alice@example.org"});
}

TEST(RecipientResolverTest, FanOutIsBounded) {
  UserStore users;
  std::string targets_list;
  for (int i = 0; i < 5; ++i)
    targets_list += (i ? "," : "") + std::string("r") + std::to_string(i) + "@remote.test";
  AliasTable aliases = table("list@example.org " + targets_list + "\n");
  AddressingPolicy p = policy();
  p.max_targets = 4;
  auto r = resolve_recipient(p, &users, &aliases, "list@example.org");
  EXPECT_EQ(r.outcome, ResolveOutcome::kTooMany);
  p.max_targets = 5;
  EXPECT_EQ(resolve_recipient(p, &users, &aliases, "list@example.org").targets.size(), 5u);
}

TEST(RecipientResolverTest, AnUnknownLocalTargetRefusesTheAlias) {
  UserStore users = mailboxes({"alice@example.org"});
  AliasTable aliases = table("team@example.org alice@example.org,gone@example.org\n");
  auto r = resolve_recipient(policy(), &users, &aliases, "team@example.org");
  EXPECT_EQ(r.outcome, ResolveOutcome::kUnknown);
  EXPECT_NE(r.reason.find("gone@example.org"), std::string::npos) << r.reason;
}

TEST(RecipientResolverTest, FindMailboxGivesTheDetail) {
  UserStore users = mailboxes({"Alice@example.org"});
  auto match = find_mailbox(policy(), &users, "alice+News@example.org");
  ASSERT_TRUE(match);
  EXPECT_EQ(match->mailbox, "Alice@example.org");
  EXPECT_EQ(match->detail, "News");
  EXPECT_FALSE(find_mailbox(policy(), &users, "carol@example.org"));
  EXPECT_EQ(find_mailbox(policy(), &users, "postmaster")->mailbox, "postmaster@example.org");
  AddressingPolicy with_admin = policy();
  with_admin.administrator = "Alice@example.org";
  // postmaster@ reaches the delivery as itself only when RCPT could not send it to the
  // administrator: it is then always a mailbox.
  EXPECT_EQ(find_mailbox(with_admin, &users, "postmaster@example.org")->mailbox,
            "postmaster@example.org");
}

TEST(RecipientResolverTest, SharedSubAliasesCannotMakeOneRcptWalkForever) {
  // l_i → x_i, y_i and both x_i, y_i → l_{i+1}: 2^24 paths in a 72-line file, each
  // ending at alice. The walk stops at its step bound with "too many" (550 5.5.3).
  UserStore users = mailboxes({"Alice@example.org"});
  std::string text;
  for (int i = 0; i < 24; ++i) {
    const std::string n = std::to_string(i), next = std::to_string(i + 1);
    text += "l" + n + "@example.org x" + n + "@example.org,y" + n + "@example.org\n";
    text += "x" + n + "@example.org l" + next + "@example.org\n";
    text += "y" + n + "@example.org l" + next + "@example.org\n";
  }
  text += "l24@example.org alice@example.org\n";
  AliasTable fan_in = table(text);
  AddressingPolicy deep = policy();
  deep.max_depth = 100;
  Resolution r = resolve_recipient(deep, &users, &fan_in, "l0@example.org");
  EXPECT_EQ(r.outcome, ResolveOutcome::kTooMany) << r.reason;
}

TEST(RecipientResolverTest, AliasProblemsNameFileAndLine) {
  UserStore users = mailboxes({"alice@example.org"});
  AliasTable aliases = table(
      "# loops\n"
      "a@example.org b@example.org\n"
      "b@example.org a@example.org\n"
      "ok@example.org alice@example.org\n"
      "stale@example.org gone@example.org\n");
  auto problems = alias_problems(policy(), &users, aliases, "/etc/smtpsd/aliases");
  ASSERT_EQ(problems.size(), 3u);
  EXPECT_EQ(problems[0].text.rfind("/etc/smtpsd/aliases:3: alias a@example.org:", 0), 0u)
      << problems[0].text;
  EXPECT_TRUE(problems[0].fatal);
  EXPECT_TRUE(problems[1].fatal);
  EXPECT_EQ(problems[2].text.rfind("/etc/smtpsd/aliases:6: alias stale@example.org:", 0), 0u)
      << problems[2].text;
  EXPECT_FALSE(problems[2].fatal);
  // Assumed mailboxes (no users file): a catch-all to an address of its domain is fine.
  AliasTable catch_all = table("@example.org admin@example.org\n");
  AddressingPolicy assume = policy();
  assume.assume_mailboxes = true;
  EXPECT_TRUE(alias_problems(assume, nullptr, catch_all, "aliases").empty());
  EXPECT_EQ(alias_problems(policy(), &users, catch_all, "aliases").size(), 1u);
}

}  // namespace
}  // namespace auth
