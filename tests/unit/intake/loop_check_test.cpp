// loop_check_test.cpp — intake::ReceivedLoopCheck: what counts as a Received field, the limit
// of RFC 5321 §6.3 (100 pass, 101 refused with 554 5.4.6), and the check driven through
// MessageIntake and StageRun as the host drives it, whatever the chunking of the content.
#include "intake/loop_check.h"

#include <unistd.h>

#include <filesystem>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "intake/message_intake.h"
#include "intake/pipeline.h"

namespace intake {
namespace {

namespace fs = std::filesystem;

std::string received_fields(std::size_t count) {
  std::string out;
  for (std::size_t i = 0; i < count; ++i) {
    out += "Received: from hop" + std::to_string(i) + ".example\r\n\tby hop" +
           std::to_string(i + 1) + ".example; Tue, 1 Jan 2030 00:00:00 +0000\r\n";
  }
  return out;
}

TEST(CountReceivedFieldsTest, CountsFieldsNotLookAlikes) {
  const std::string section =
      "X-Received: by relay.example\r\n"
      "Subject: folded\r\n"
      " Received: a continuation line\r\n"
      "\tReceived: another continuation line\r\n"
      "Received: from a\r\n"
      "received :by b\r\n"
      "RECEIVED:\tfrom c\r\n"
      "Receivedx: not one\r\n"
      "Received\r\n"  // no colon: not a field we count
      "\r\n"
      "Received: in the body\r\n";
  EXPECT_EQ(count_received_fields(section, 100), 3u);
  EXPECT_EQ(count_received_fields("", 100), 0u);
  EXPECT_EQ(count_received_fields(received_fields(500), 100), 101u);  // stops past the limit
}

TEST(ReceivedLoopCheckTest, SubscribesToTheEndOfHeadersOnly) {
  ReceivedLoopCheck check;
  EXPECT_EQ(check.stages(), mask(Stage::kEndOfHeaders));
  Pipeline pipeline({std::make_shared<ReceivedLoopCheck>()});
  EXPECT_EQ(pipeline.session_stages(), 0u);  // nothing at connect, HELO, MAIL, RCPT
  EXPECT_EQ(check.name(), "received-loop");
  EXPECT_EQ(check.summary(), "554 5.4.6 past 100 Received fields");
  EXPECT_EQ(check.timeout_verdict(Stage::kEndOfHeaders).kind, Verdict::Kind::kPass);
}

TEST(ReceivedLoopCheckTest, PassesAtTheLimitRefusesPastIt) {
  ReceivedLoopCheck check;
  for (std::size_t count : {0u, 1u, 99u, 100u, 101u, 250u}) {
    SCOPED_TRACE(count);
    const std::string section = received_fields(count) + "Subject: s\r\n\r\n";
    Context context;
    context.header_section = section;
    std::optional<Verdict> verdict;
    check.run(Stage::kEndOfHeaders, context, [&](Verdict v) { verdict = std::move(v); });
    ASSERT_TRUE(verdict);  // at once
    if (count <= ReceivedLoopCheck::kMaxReceivedFields) {
      EXPECT_EQ(verdict->kind, Verdict::Kind::kPass);
    } else {
      ASSERT_EQ(verdict->kind, Verdict::Kind::kReply);
      EXPECT_EQ(verdict->reply.code, 554);
      EXPECT_EQ(verdict->reply.enhanced, "5.4.6");
      EXPECT_EQ(verdict->reply.text, "Too many Received header fields: mail loop");
    }
  }
}

// As the net host runs it: each append's events through a StageRun, the verdicts merged.
class LoopCheckIntakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("loop-check-test-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    auto spool = queue::Spool::open(dir_.string());
    ASSERT_TRUE(spool) << spool.error().message;
    spool_ = std::move(spool.value());
    envelope_.helo = "client.example";
    envelope_.reverse_path = "a@client.example";
    envelope_.recipients = {{"b@mx.example", "", ""}};
  }
  void TearDown() override {
    spool_.reset();
    fs::remove_all(dir_);
  }
  // The merged verdict of the message's content stages.
  Verdict run_message(const std::string& message, std::size_t piece) {
    Pipeline pipeline({std::make_shared<ReceivedLoopCheck>()});
    MessageIntake intake(*spool_, pipeline,
                         SessionFacts{"s1", "192.0.2.7", 1, "smtp", "mx", false});
    EXPECT_FALSE(intake.begin(MessageStart{&envelope_, "ESMTP", "", "", "", 1700000000}));
    Verdict merged;
    for (std::size_t at = 0; at < message.size(); at += piece) {
      EXPECT_FALSE(intake.append(std::string_view(message).substr(at, piece)));
      for (const ContentEvent& event : intake.events()) {
        StageRun run(pipeline, event.stage);
        Context context = intake.context();
        while (Check* check = run.next_check())
          check->run(event.stage, context, [&](Verdict v) { run.record(std::move(v)); });
        if (run.verdict().kind != Verdict::Kind::kPass) merged = run.take_verdict();
      }
      intake.clear_events();
    }
    intake.abort();
    return merged;
  }

  fs::path dir_;
  std::unique_ptr<queue::Spool> spool_;
  smtp::Envelope envelope_;
};

TEST_F(LoopCheckIntakeTest, TheCountIsTheSameWhateverTheChunking) {
  for (std::size_t piece : {std::size_t{1}, std::size_t{13}, std::size_t{100000}}) {
    SCOPED_TRACE(piece);
    const std::string body = "\r\n" + received_fields(200);  // in the body: not counted
    EXPECT_EQ(run_message(received_fields(100) + "Subject: s\r\n" + body, piece).kind,
              Verdict::Kind::kPass);
    Verdict refused = run_message(received_fields(101) + "Subject: s\r\n" + body, piece);
    ASSERT_EQ(refused.kind, Verdict::Kind::kReply);
    EXPECT_EQ(refused.reply.code, 554);
  }
}

}  // namespace
}  // namespace intake
