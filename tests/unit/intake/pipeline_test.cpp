// pipeline_test.cpp — intake::StageRun: checks run in order and only for their stages, the
// first refusal decides, edits of passing checks accumulate, a deadline applies the check's
// default verdict, and a pipeline tells the session which stages it must ask about.
#include "intake/pipeline.h"

#include <fcntl.h>

#include <gtest/gtest.h>

#include "intake/milter_check.h"
#include "queue/spool.h"
#include "smtp/server_session.h"

namespace intake {
namespace {

class ScriptedCheck : public Check {
 public:
  ScriptedCheck(std::string name, StageMask stages, Verdict verdict)
      : name_(std::move(name)), stages_(stages), verdict_(std::move(verdict)) {}
  std::string_view name() const override { return name_; }
  StageMask stages() const override { return stages_; }
  void run(Stage, const Context&, Done done) override { done(verdict_); }
  const Verdict& verdict() const { return verdict_; }

 private:
  std::string name_;
  StageMask stages_;
  Verdict verdict_;
};

Verdict add_header(std::string name, std::string value) {
  Verdict verdict;
  verdict.header_edits.push_back(
      HeaderEdit{HeaderEdit::Kind::kAdd, std::move(name), std::move(value), 1});
  return verdict;
}

// Drives a stage as a host would, recording which checks ran.
Verdict drive(const Pipeline& pipeline, Stage stage, std::vector<std::string>& ran) {
  StageRun run(pipeline, stage);
  while (Check* check = run.next_check()) {
    ran.emplace_back(check->name());
    check->run(stage, Context{}, [&run](Verdict verdict) { run.record(std::move(verdict)); });
  }
  return run.take_verdict();
}

TEST(PipelineTest, ChecksRunInOrderOnlyForTheirStages) {
  Pipeline pipeline({std::make_shared<ScriptedCheck>("a", mask(Stage::kRcpt), Verdict::pass()),
                     std::make_shared<ScriptedCheck>("b", mask(Stage::kMail), Verdict::pass()),
                     std::make_shared<ScriptedCheck>(
                         "c", mask(Stage::kRcpt) | mask(Stage::kEndOfData), Verdict::pass())});
  std::vector<std::string> ran;
  EXPECT_EQ(drive(pipeline, Stage::kRcpt, ran).kind, Verdict::Kind::kPass);
  EXPECT_EQ(ran, (std::vector<std::string>{"a", "c"}));
  ran.clear();
  drive(pipeline, Stage::kConnect, ran);
  EXPECT_TRUE(ran.empty());
  EXPECT_TRUE(pipeline.wants(Stage::kEndOfData));
  EXPECT_FALSE(pipeline.wants(Stage::kHeader));
}

TEST(PipelineTest, TheFirstRefusalDecidesAndLaterChecksDoNotRun) {
  Pipeline pipeline(
      {std::make_shared<ScriptedCheck>("spf", mask(Stage::kMail), add_header("X-A", "1")),
       std::make_shared<ScriptedCheck>("dnsbl", mask(Stage::kMail),
                                       Verdict::refuse(smtp::Reply{554, "5.7.1", "Listed"})),
       std::make_shared<ScriptedCheck>("never", mask(Stage::kMail), Verdict::pass())});
  std::vector<std::string> ran;
  Verdict verdict = drive(pipeline, Stage::kMail, ran);
  EXPECT_EQ(ran, (std::vector<std::string>{"spf", "dnsbl"}));
  EXPECT_EQ(verdict.kind, Verdict::Kind::kReply);
  EXPECT_EQ(verdict.reply.code, 554);
  EXPECT_EQ(verdict.reply.text, "Listed");
}

TEST(PipelineTest, EditsOfPassingChecksAccumulateInOrder) {
  Verdict body;
  body.new_body = "new\r\n";
  Pipeline pipeline(
      {std::make_shared<ScriptedCheck>("one", mask(Stage::kEndOfData), add_header("X-One", "1")),
       std::make_shared<ScriptedCheck>("two", mask(Stage::kEndOfData), add_header("X-Two", "2")),
       std::make_shared<ScriptedCheck>("three", mask(Stage::kEndOfData), body)});
  std::vector<std::string> ran;
  Verdict verdict = drive(pipeline, Stage::kEndOfData, ran);
  EXPECT_EQ(verdict.kind, Verdict::Kind::kPass);
  ASSERT_EQ(verdict.header_edits.size(), 2u);
  EXPECT_EQ(verdict.header_edits[0].name, "X-One");
  EXPECT_EQ(verdict.header_edits[1].name, "X-Two");
  EXPECT_EQ(verdict.new_body, std::optional<std::string>("new\r\n"));
}

// A milter's quarantine: the later checks (our DKIM signature) still run and add their edits;
// a later refusal still wins over the hold.
TEST(PipelineTest, AHoldKeepsRunningTheLaterChecksAndARefusalStillWins) {
  Verdict hold = add_header("X-Held", "1");
  hold.kind = Verdict::Kind::kHold;
  Pipeline held({std::make_shared<ScriptedCheck>("milter", mask(Stage::kEndOfData), hold),
                 std::make_shared<ScriptedCheck>("dkim-sign", mask(Stage::kEndOfData),
                                                 add_header("DKIM-Signature", "v=1"))});
  std::vector<std::string> ran;
  Verdict verdict = drive(held, Stage::kEndOfData, ran);
  EXPECT_EQ(ran, (std::vector<std::string>{"milter", "dkim-sign"}));
  EXPECT_EQ(verdict.kind, Verdict::Kind::kHold);
  ASSERT_EQ(verdict.header_edits.size(), 2u);
  EXPECT_EQ(verdict.header_edits[1].name, "DKIM-Signature");

  Pipeline refused(
      {std::make_shared<ScriptedCheck>("milter", mask(Stage::kEndOfData), hold),
       std::make_shared<ScriptedCheck>("other", mask(Stage::kEndOfData),
                                       Verdict::refuse(smtp::Reply{554, "5.7.1", "Spam"}))});
  ran.clear();
  EXPECT_EQ(drive(refused, Stage::kEndOfData, ran).kind, Verdict::Kind::kReply);
}

TEST(PipelineTest, ADeadlineAppliesTheChecksDefaultVerdict) {
  Pipeline pipeline({std::make_shared<ScriptedCheck>("slow", mask(Stage::kRcpt), Verdict::pass()),
                     std::make_shared<ScriptedCheck>("next", mask(Stage::kRcpt), Verdict::pass())});
  StageRun run(pipeline, Stage::kRcpt);
  ASSERT_NE(run.next_check(), nullptr);
  run.record_timeout();  // the default of Check: a temporary failure, nothing accepted unchecked
  EXPECT_EQ(run.next_check(), nullptr);
  EXPECT_EQ(run.verdict().kind, Verdict::Kind::kReply);
  EXPECT_EQ(run.verdict().reply.code, 451);
  EXPECT_EQ(run.timed_out(), (std::vector<std::string>{"slow"}));
  // A late answer of the timed-out check changes nothing.
  run.record(Verdict::pass());
  EXPECT_EQ(run.verdict().kind, Verdict::Kind::kReply);
}

TEST(PipelineTest, AReplyThatIsNotARefusalBecomesATemporaryFailure) {
  Pipeline pipeline({std::make_shared<ScriptedCheck>(
      "broken", mask(Stage::kRcpt), Verdict::refuse(smtp::Reply{250, "2.0.0", "fine"}))});
  std::vector<std::string> ran;
  Verdict verdict = drive(pipeline, Stage::kRcpt, ran);
  EXPECT_EQ(verdict.kind, Verdict::Kind::kReply);
  EXPECT_EQ(verdict.reply.code, 451);
}

TEST(PipelineTest, SessionStagesMapToTheSessionsBits) {
  Pipeline none;
  EXPECT_EQ(none.session_stages(), 0u);
  Pipeline pipeline({std::make_shared<ScriptedCheck>(
      "x", mask(Stage::kConnect) | mask(Stage::kRcpt) | mask(Stage::kEndOfData), Verdict::pass())});
  EXPECT_EQ(pipeline.session_stages(), static_cast<unsigned>(smtp::CheckStage::kConnect) |
                                           static_cast<unsigned>(smtp::CheckStage::kRcpt));
}

// The end of data gives a milter the whole message: its deadline grows with the content (a
// second per MiB, at most five minutes in all), the other stages keep deadline().
TEST(MilterCheckDeadline, GrowsWithTheMessageAtTheEndOfDataOnly) {
  MilterSettings settings;
  settings.name = "m";
  settings.timeout = std::chrono::seconds(10);
  MilterCheck check(settings, std::make_shared<milter::Workers>(1));
  const std::chrono::milliseconds base = check.deadline();
  EXPECT_EQ(base, std::chrono::seconds(41));
  Context context;
  EXPECT_EQ(check.deadline_for(Stage::kEndOfData, context), base);  // nothing to read
  const std::uint64_t mib = 1024 * 1024;
  context.content = std::make_shared<const queue::ContentReader>(::open("/dev/null", O_RDONLY), 0,
                                                                 30 * mib, "/dev/null");
  EXPECT_EQ(check.deadline_for(Stage::kEndOfData, context), base + std::chrono::seconds(30));
  EXPECT_EQ(check.deadline_for(Stage::kRcpt, context), base);
  context.content = std::make_shared<const queue::ContentReader>(::open("/dev/null", O_RDONLY), 0,
                                                                 1024 * mib, "/dev/null");
  EXPECT_EQ(check.deadline_for(Stage::kEndOfData, context), std::chrono::minutes(5));
}

}  // namespace
}  // namespace intake
