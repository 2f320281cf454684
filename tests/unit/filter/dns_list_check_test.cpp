// dns_list_check_test.cpp — filter::DnsListCheck over a scripted resolver: refused at RCPT
// with 550 5.7.1 and the escaped TXT reason (postmaster still reachable), at connect with
// 554, allowlisted networks and allowlists, provider error codes not listed, authenticated
// sessions never screened, and connect in RCPT mode only starting the lookups.
#include "filter/dns_list_check.h"

#include <map>
#include <optional>

#include <gtest/gtest.h>

namespace filter {
namespace {

class ScriptedResolver final : public dns::Resolver {
 public:
  std::map<std::pair<std::string, dns::Type>, dns::Answer> answers;
  std::vector<std::string> asked;
  void lookup(std::string_view name, dns::Type type, Callback callback) override {
    asked.push_back(std::string(dns::to_string(type)) + " " + std::string(name));
    auto found = answers.find({std::string(name), type});
    auto answer = std::make_shared<dns::Answer>();
    answer->status = dns::Status::kNxDomain;
    if (found != answers.end()) *answer = found->second;
    callback(std::move(answer));
  }
  bool validates() const override { return false; }
  std::string describe() const override { return "scripted"; }
  void list(const std::string& name, std::vector<std::string> addresses, std::string txt = {}) {
    dns::Answer a;
    a.status = dns::Status::kOk;
    a.addresses = std::move(addresses);
    answers[{name, dns::Type::kA}] = a;
    if (!txt.empty()) {
      dns::Answer t;
      t.status = dns::Status::kOk;
      t.texts = {txt};
      answers[{name, dns::Type::kTxt}] = t;
    }
  }
};

struct DnsListCheckTest : ::testing::Test {
  std::shared_ptr<ScriptedResolver> resolver = std::make_shared<ScriptedResolver>();
  DnsListPolicy policy;
  DnsListCheckTest() { policy.lists = {DnsList{"bl.test", 1, {}}}; }

  std::optional<intake::Verdict> run(intake::Stage stage, std::string client,
                                     std::string recipient = "", std::string user = "") {
    DnsListCheck check(resolver, policy);
    intake::Context context;
    context.session_id = "s1";
    context.client_address = client;
    context.role = "smtp";
    context.authenticated_user = user;
    context.recipient = recipient;
    std::optional<intake::Verdict> verdict;
    check.run(stage, context, [&](intake::Verdict v) { verdict = std::move(v); });
    return verdict;
  }
};

TEST_F(DnsListCheckTest, ListedClientIsRefusedAtRcptWithTheEscapedReason) {
  resolver->list("2.2.0.192.bl.test", {"127.0.0.2"}, "Listed\r\n250 ok: see http://bl.test/");
  auto verdict = run(intake::Stage::kRcpt, "192.0.2.2", "alice@example.org");
  ASSERT_TRUE(verdict);
  ASSERT_EQ(verdict->kind, intake::Verdict::Kind::kReply);
  EXPECT_EQ(verdict->reply.code, 550);
  EXPECT_EQ(verdict->reply.enhanced, "5.7.1");
  EXPECT_EQ(verdict->reply.text,
            "Service unavailable; client [192.0.2.2] blocked using bl.test; Listed??250 ok: see "
            "http://bl.test/");
}

TEST_F(DnsListCheckTest, PostmasterIsReachable) {
  resolver->list("2.2.0.192.bl.test", {"127.0.0.2"});
  EXPECT_EQ(run(intake::Stage::kRcpt, "192.0.2.2", "Postmaster@example.org")->kind,
            intake::Verdict::Kind::kPass);
  EXPECT_EQ(run(intake::Stage::kRcpt, "192.0.2.2", "postmaster")->kind,
            intake::Verdict::Kind::kPass);
}

TEST_F(DnsListCheckTest, ConnectOnlyStartsTheLookupsInRcptMode) {
  resolver->list("2.2.0.192.bl.test", {"127.0.0.2"});
  EXPECT_EQ(run(intake::Stage::kConnect, "192.0.2.2")->kind, intake::Verdict::Kind::kPass);
  EXPECT_EQ(resolver->asked, std::vector<std::string>{"A 2.2.0.192.bl.test"});
}

TEST_F(DnsListCheckTest, ConnectModeRefusesWith554) {
  policy.refuse_at = DnsListPolicy::RefuseAt::kConnect;
  resolver->list("2.2.0.192.bl.test", {"127.0.0.2"});
  auto verdict = run(intake::Stage::kConnect, "192.0.2.2");
  ASSERT_EQ(verdict->kind, intake::Verdict::Kind::kReply);
  EXPECT_EQ(verdict->reply.code, 554);
  EXPECT_EQ(run(intake::Stage::kConnect, "192.0.2.3")->kind, intake::Verdict::Kind::kPass);
}

// RFC 5321 §4.5.3.1.5: a long TXT reason is cut so that each reply line, "550 5.7.1 text"
// at RCPT or "554 <hostname> text" at connect, stays within 512 octets with its CRLF.
TEST_F(DnsListCheckTest, ALongReasonIsCutToTheReplyLine) {
  resolver->list("2.2.0.192.bl.test", {"127.0.0.2"}, std::string(600, 'x'));
  auto rcpt = run(intake::Stage::kRcpt, "192.0.2.2", "a@example.org");
  ASSERT_EQ(rcpt->kind, intake::Verdict::Kind::kReply);
  EXPECT_TRUE(rcpt->reply.text.ends_with(std::string(200, 'x') + "..."));  // reason's own bound
  policy.refuse_at = DnsListPolicy::RefuseAt::kConnect;
  policy.hostname = std::string(250, 'h');
  auto connect = run(intake::Stage::kConnect, "192.0.2.2");
  ASSERT_EQ(connect->kind, intake::Verdict::Kind::kReply);
  EXPECT_EQ(4 + policy.hostname.size() + 1 + connect->reply.text.size() + 2, 512u);
  EXPECT_TRUE(connect->reply.text.ends_with("x..."));
}

TEST_F(DnsListCheckTest, ProviderErrorCodeIsNotListed) {
  resolver->list("2.2.0.192.bl.test", {"127.255.255.254"});
  EXPECT_EQ(run(intake::Stage::kRcpt, "192.0.2.2", "a@example.org")->kind,
            intake::Verdict::Kind::kPass);
}

TEST_F(DnsListCheckTest, AllowedNetworkIsNeverLookedUp) {
  policy.allow_networks = {base::parse_network("192.0.2.0/24").value()};
  resolver->list("2.2.0.192.bl.test", {"127.0.0.2"});
  EXPECT_EQ(run(intake::Stage::kRcpt, "192.0.2.2", "a@example.org")->kind,
            intake::Verdict::Kind::kPass);
  EXPECT_TRUE(resolver->asked.empty());
}

TEST_F(DnsListCheckTest, AllowlistOutweighsABlockList) {
  policy.lists.push_back(DnsList{"wl.test", -5, {}});
  resolver->list("2.2.0.192.bl.test", {"127.0.0.2"});
  resolver->list("2.2.0.192.wl.test", {"127.0.2.1"});
  EXPECT_EQ(run(intake::Stage::kRcpt, "192.0.2.2", "a@example.org")->kind,
            intake::Verdict::Kind::kPass);
}

TEST_F(DnsListCheckTest, ThresholdNeedsEnoughLists) {
  policy.threshold = 2;
  policy.lists.push_back(DnsList{"other.test", 1, {}});
  resolver->list("2.2.0.192.bl.test", {"127.0.0.2"});
  EXPECT_EQ(run(intake::Stage::kRcpt, "192.0.2.2", "a@example.org")->kind,
            intake::Verdict::Kind::kPass);
  resolver->list("2.2.0.192.other.test", {"127.0.0.3"});
  EXPECT_EQ(run(intake::Stage::kRcpt, "192.0.2.2", "a@example.org")->kind,
            intake::Verdict::Kind::kReply);
}

// Only the smtp listeners run the check (app::with_screening, tested there); a client that
// authenticated on one is not screened.
TEST_F(DnsListCheckTest, NeverAnAuthenticatedSession) {
  resolver->list("2.2.0.192.bl.test", {"127.0.0.2"});
  EXPECT_EQ(run(intake::Stage::kRcpt, "192.0.2.2", "a@example.org", "alice")->kind,
            intake::Verdict::Kind::kPass);
  EXPECT_TRUE(resolver->asked.empty());
}

TEST_F(DnsListCheckTest, Ipv6ClientIsAskedByNibbles) {
  resolver->list("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.bl.test",
                 {"127.0.0.2"});
  EXPECT_EQ(run(intake::Stage::kRcpt, "::1", "a@example.org")->kind, intake::Verdict::Kind::kReply);
}

}  // namespace
}  // namespace filter
