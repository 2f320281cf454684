// recipient_expansion_test.cpp — smtp::ServerSession storing a policy's expansion of one
// RCPT (an alias): one 250, each target an envelope recipient with the original's NOTIFY and
// ORCPT, SUCCESS dropped after a multi-address expansion (RFC 3461 §5.2.7), the 550 5.4.6 of
// an alias loop, and the recipients limit; fed whole and byte by byte.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "fake_host.h"
#include "smtp/server_session.h"

namespace smtp {
namespace {

using testing::FakeHost;

class ExpansionTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    config_.hostname = "mx.example";
    config_.check_recipient = [](std::string_view address, std::string_view) -> RecipientDecision {
      if (address == "sales@mx.example") {
        return {RecipientVerdict::kAccept,
                {"alice@mx.example", "bob@mx.example", "partner@remote.example"}};
      }
      if (address == "postmaster") return {RecipientVerdict::kAccept, {"admin@mx.example"}};
      if (address == "loop@mx.example") return RecipientVerdict::kLoop;
      if (address == "huge@mx.example") return RecipientVerdict::kTooMany;
      return RecipientVerdict::kAccept;
    };
  }
  void start() {
    host_ = std::make_unique<FakeHost>(config_);
    host_->start();
    reply("EHLO client.example\r\n");
    EXPECT_EQ(reply("MAIL FROM:<a@client.example>\r\n"), "250 2.1.0 Ok");
  }
  std::string reply(std::string_view bytes) {
    std::size_t before = host_->replies().size();
    host_->send(bytes, GetParam());
    auto all = host_->replies();
    EXPECT_EQ(all.size(), before + 1) << bytes;
    return all.empty() ? std::string() : all.back();
  }
  const std::vector<Recipient>& recipients() { return host_->session.envelope().recipients; }

  SessionConfig config_;
  std::unique_ptr<FakeHost> host_;
};

INSTANTIATE_TEST_SUITE_P(WholeAndBytewise, ExpansionTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Bytewise" : "Whole";
                         });

TEST_P(ExpansionTest, AnAliasBecomesItsTargetsWithOrcptAndNotify) {
  start();
  EXPECT_EQ(reply("RCPT TO:<sales@mx.example> NOTIFY=FAILURE,DELAY\r\n"), "250 2.1.5 Ok");
  ASSERT_EQ(recipients().size(), 3u);
  EXPECT_EQ(recipients()[0].address, "alice@mx.example");
  EXPECT_EQ(recipients()[2].address, "partner@remote.example");
  for (const Recipient& r : recipients()) {
    EXPECT_EQ(r.original_recipient, "rfc822;sales@mx.example");
    EXPECT_EQ(r.notify, "FAILURE,DELAY");
  }
  // A plain recipient is stored as given, without an ORCPT of ours.
  EXPECT_EQ(reply("RCPT TO:<carol@mx.example>\r\n"), "250 2.1.5 Ok");
  ASSERT_EQ(recipients().size(), 4u);
  EXPECT_EQ(recipients()[3].original_recipient, "");
}

TEST_P(ExpansionTest, TheClientsOrcptWinsAndSuccessIsNotCarriedOn) {
  start();
  EXPECT_EQ(reply("RCPT TO:<sales@mx.example> NOTIFY=SUCCESS,FAILURE "
                  "ORCPT=rfc822;list@origin.example\r\n"),
            "250 2.1.5 Ok");
  // First the record of the expansion (reported "expanded" by the queue), then the targets.
  ASSERT_EQ(recipients().size(), 4u);
  EXPECT_TRUE(recipients()[0].expansion_record);
  EXPECT_EQ(recipients()[0].address, "sales@mx.example");
  EXPECT_EQ(recipients()[0].notify, "SUCCESS");
  for (const Recipient& r : recipients()) {
    EXPECT_EQ(r.original_recipient, "rfc822;list@origin.example");
    if (!r.expansion_record) {
      EXPECT_EQ(r.notify, "FAILURE");
    }
  }
  EXPECT_EQ(reply("RSET\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(reply("MAIL FROM:<a@client.example>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(reply("RCPT TO:<sales@mx.example> NOTIFY=success\r\n"), "250 2.1.5 Ok");
  ASSERT_EQ(recipients().size(), 4u);
  EXPECT_EQ(recipients()[0].original_recipient, "rfc822;sales@mx.example");
  EXPECT_EQ(recipients()[1].notify, "NEVER");
  EXPECT_FALSE(recipients()[1].expansion_record);
  // Without SUCCESS there is no record.
  EXPECT_EQ(reply("RSET\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(reply("MAIL FROM:<a@client.example>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(reply("RCPT TO:<sales@mx.example> NOTIFY=DELAY\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(recipients().size(), 3u);
}

TEST_P(ExpansionTest, ASingleTargetKeepsSuccess) {
  start();
  EXPECT_EQ(reply("RCPT TO:<Postmaster> NOTIFY=SUCCESS\r\n"), "250 2.1.5 Ok");
  ASSERT_EQ(recipients().size(), 1u);
  EXPECT_EQ(recipients()[0].address, "admin@mx.example");
  EXPECT_EQ(recipients()[0].notify, "SUCCESS");
  EXPECT_EQ(recipients()[0].original_recipient, "rfc822;postmaster");
}

TEST_P(ExpansionTest, LoopsAndOversizedAliasesAreRefusedAtRcpt) {
  start();
  EXPECT_EQ(reply("RCPT TO:<loop@mx.example>\r\n"),
            "550 5.4.6 Recipient address rejected: alias loop");
  EXPECT_EQ(reply("RCPT TO:<huge@mx.example>\r\n"),
            "550 5.5.3 Recipient address rejected: alias expands to too many recipients");
  EXPECT_TRUE(recipients().empty());
  EXPECT_EQ(reply("DATA\r\n").substr(0, 3), "554");  // no valid recipients
}

TEST_P(ExpansionTest, ExpansionsCountTowardTheRecipientsLimitAfterTheFirst) {
  config_.limits.max_recipients = 3;
  start();
  EXPECT_EQ(reply("RCPT TO:<one@mx.example>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(reply("RCPT TO:<sales@mx.example>\r\n"), "452 4.5.3 Too many recipients");
  EXPECT_EQ(recipients().size(), 1u);
  EXPECT_EQ(reply("RSET\r\n"), "250 2.0.0 Ok");
  config_.limits.max_recipients = 2;
  host_.reset();
  start();
  EXPECT_EQ(reply("RCPT TO:<sales@mx.example>\r\n"), "250 2.1.5 Ok");  // first: always
  EXPECT_EQ(recipients().size(), 3u);
}

// With RCPT checks (the intake pipeline): the expansion waits for the check and is stored
// when it passes; a refusal stores nothing, and the next recipient is not mixed with it.
TEST_P(ExpansionTest, TheExpansionWaitsForTheRcptCheck) {
  config_.checked_stages = static_cast<unsigned>(CheckStage::kRcpt);
  host_ = std::make_unique<FakeHost>(config_);
  host_->check_refusals.push_back({"team@mx.example", Reply{550, "5.7.1", "Not today"}});
  host_->start();
  reply("EHLO client.example\r\n");
  reply("MAIL FROM:<a@client.example>\r\n");
  EXPECT_EQ(reply("RCPT TO:<sales@mx.example>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(recipients().size(), 3u);
  EXPECT_EQ(host_->checks.back(), "rcpt sales@mx.example");  // the address given is checked
  EXPECT_EQ(reply("RCPT TO:<team@mx.example>\r\n"), "550 5.7.1 Not today");
  EXPECT_EQ(reply("RCPT TO:<carol@mx.example>\r\n"), "250 2.1.5 Ok");
  ASSERT_EQ(recipients().size(), 4u);
  EXPECT_EQ(recipients()[3].address, "carol@mx.example");
  EXPECT_EQ(recipients()[3].original_recipient, "");
}

}  // namespace
}  // namespace smtp
