// loop_check_test.cpp — intake::ReceivedLoopCheck: what counts as a Received field (any case,
// WSP before the colon; not continuation lines, X-Received or the body), the limit of RFC
// 5321 §6.3 (limits.max_received_headers: 49 of 50 pass, 50 are refused with "554 5.4.6 Too
// many Received headers (N): mail loop?" naming the whole count), and the check driven
// through MessageIntake and StageRun as the host drives it, whatever the chunking of the
// content, with or without a body.
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

// `count` Received fields in the spellings a loop shows (any case, WSP before the colon),
// among lines that look like them but are not fields, then Received lines in the body.
std::string message_with_received(std::size_t count) {
  static constexpr const char* kSpellings[] = {"Received: from hop.example by a.example\r\n",
                                               "received :by b.example\r\n",
                                               "RECEIVED:\tfrom c.example\r\n"};
  std::string message = "X-Received: by relay.example\r\nSubject: folded\r\n";
  message += " Received: a continuation line\r\n\tReceived: another continuation line\r\n";
  for (std::size_t i = 0; i < count; ++i)
    message += kSpellings[i % 3];
  message += "Receivedx: not a Received field\r\nReceive: too short\r\n\r\n";
  for (int i = 0; i < 100; ++i)
    message += "Received: in the body, not counted\r\n";
  return message;
}

Verdict run_check(ReceivedLoopCheck& check, std::string_view section) {
  Context context;
  context.header_section = section;
  std::optional<Verdict> verdict;
  check.run(Stage::kEndOfHeaders, context, [&](Verdict v) { verdict = std::move(v); });
  EXPECT_TRUE(verdict);  // at once
  return verdict.value_or(Verdict::pass());
}

TEST(CountReceivedFieldsTest, CountsFieldsNotLookAlikes) {
  const std::string section =
      "X-Received: by relay.example\r\n"
      "Subject: folded\r\n"
      " Received: a continuation line\r\n"
      "\tReceived: another continuation line\r\n"
      "Received: from a\r\n"
      "received :by b\r\n"
      "RECEIVED \t:\tfrom c\r\n"
      "Receivedx: not one\r\n"
      "Receive: too short\r\n"
      "Received\r\n"  // no colon: not a field we count
      "\r\n"
      "Received: in the body\r\n";
  EXPECT_EQ(count_received_fields(section), 3u);
  EXPECT_EQ(count_received_fields(""), 0u);
  EXPECT_EQ(count_received_fields("\r\nReceived: a\r\n"), 0u);         // no header fields at all
  EXPECT_EQ(count_received_fields(received_fields(500)), 500u);        // the whole count
  EXPECT_EQ(count_received_fields("Received: a\r\nReceived: b"), 2u);  // last line unended
}

TEST(ReceivedLoopCheckTest, SubscribesToTheEndOfHeadersOnly) {
  ReceivedLoopCheck check(50);
  EXPECT_EQ(check.stages(), mask(Stage::kEndOfHeaders));
  Pipeline pipeline({std::make_shared<ReceivedLoopCheck>(50)});
  EXPECT_EQ(pipeline.session_stages(), 0u);  // nothing at connect, HELO, MAIL, RCPT
  EXPECT_EQ(check.name(), "received-loop");
  EXPECT_EQ(check.summary(), "554 5.4.6 at 50 Received fields");
  EXPECT_EQ(ReceivedLoopCheck(3).summary(), "554 5.4.6 at 3 Received fields");
  EXPECT_EQ(check.timeout_verdict(Stage::kEndOfHeaders).kind, Verdict::Kind::kPass);
}

// limits.max_received_headers = 50 (the default): our own field would make one more, so 49
// pass and 50 are a loop; the reply names every Received field of the header section.
TEST(ReceivedLoopCheckTest, PassesBelowTheLimitRefusesAtIt) {
  ReceivedLoopCheck check(50);
  for (std::size_t count : {0u, 1u, 49u, 50u, 51u, 250u}) {
    SCOPED_TRACE(count);
    Verdict verdict = run_check(check, message_with_received(count));
    if (count < 50) {
      EXPECT_EQ(verdict.kind, Verdict::Kind::kPass);
    } else {
      ASSERT_EQ(verdict.kind, Verdict::Kind::kReply);
      EXPECT_EQ(verdict.reply.code, 554);
      EXPECT_EQ(verdict.reply.enhanced, "5.4.6");
      EXPECT_EQ(verdict.reply.text,
                "Too many Received headers (" + std::to_string(count) + "): mail loop?");
    }
  }
  ReceivedLoopCheck three(3);
  EXPECT_EQ(run_check(three, message_with_received(2)).kind, Verdict::Kind::kPass);
  EXPECT_EQ(run_check(three, message_with_received(3)).reply.text,
            "Too many Received headers (3): mail loop?");
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
  Verdict run_message(const std::string& message, std::size_t piece, std::size_t limit = 50) {
    Pipeline pipeline({std::make_shared<ReceivedLoopCheck>(limit)});
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
    intake.end_of_content();  // the end of data: a message without a body ends its headers
    for (const ContentEvent& event : intake.events()) {
      StageRun run(pipeline, event.stage);
      Context context = intake.context();
      while (Check* check = run.next_check())
        check->run(event.stage, context, [&](Verdict v) { run.record(std::move(v)); });
      if (run.verdict().kind != Verdict::Kind::kPass) merged = run.take_verdict();
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
    EXPECT_EQ(run_message(message_with_received(49), piece).kind, Verdict::Kind::kPass);
    Verdict refused = run_message(message_with_received(50), piece);
    ASSERT_EQ(refused.kind, Verdict::Kind::kReply);
    EXPECT_EQ(refused.reply.code, 554);
    EXPECT_EQ(refused.reply.text, "Too many Received headers (50): mail loop?");
    // Past the limit: the reply names the whole count.
    EXPECT_EQ(run_message(received_fields(70) + "Subject: s\r\n\r\nbody\r\n", piece).reply.text,
              "Too many Received headers (70): mail loop?");
  }
}

// RFC 5322 §2.1: the body is optional. A message without the empty line is all header
// section, counted at the end of its content; one that starts with the empty line has no
// header fields at all.
TEST_F(LoopCheckIntakeTest, AMessageWithoutABodyIsAllHeaderSection) {
  for (std::size_t piece : {std::size_t{1}, std::size_t{100000}}) {
    SCOPED_TRACE(piece);
    EXPECT_EQ(run_message("Received: a\r\nReceived: b\r\n", piece, 2).reply.text,
              "Too many Received headers (2): mail loop?");
    EXPECT_EQ(run_message("Received: a\r\nReceived: b", piece, 2).reply.text,  // BDAT: no CRLF
              "Too many Received headers (2): mail loop?");
    EXPECT_EQ(run_message("Received: a\r\n", piece, 2).kind, Verdict::Kind::kPass);
    EXPECT_EQ(run_message("\r\nReceived: a\r\nReceived: b\r\n", piece, 2).kind,
              Verdict::Kind::kPass);
  }
}

}  // namespace
}  // namespace intake
