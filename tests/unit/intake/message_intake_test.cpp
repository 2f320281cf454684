// message_intake_test.cpp — intake::MessageIntake against a real spool in a temp dir, driven
// as the host drives it: the Received header first, content streamed, header and body events
// for the stages the pipeline wants, storage failures mapped to the RFC 3463 replies, the
// header editor the end-of-data checks rely on, envelope edits and holds.
#include "intake/message_intake.h"

#include "queue/message_reader.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

namespace intake {
namespace {

namespace fs = std::filesystem;

class NullCheck : public Check {
 public:
  explicit NullCheck(StageMask stages) : stages_(stages) {}
  std::string_view name() const override { return "null"; }
  StageMask stages() const override { return stages_; }
  void run(Stage, const Context&, Done done) override { done(Verdict::pass()); }

 private:
  StageMask stages_;
};

class MessageIntakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("intake-test-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto spool = queue::Spool::open(dir_.string());
    ASSERT_TRUE(spool) << spool.error().message;
    spool_ = std::move(spool.value());
    envelope_.helo = "client.example";
    envelope_.esmtp = true;
    envelope_.reverse_path = "a@client.example";
    envelope_.recipients = {{"b@mx.example", "", ""}};
  }
  void TearDown() override {
    spool_.reset();
    fs::remove_all(dir_);
  }
  MessageStart start() const {
    return MessageStart{&envelope_, "ESMTPS", "TLSv1.3", "TLS_AES_256_GCM_SHA384", "", 1700000000};
  }
  SessionFacts facts() const {
    return SessionFacts{"s1", "192.0.2.7", 4711, "smtp", "mx.example", false};
  }
  std::string content_of(const std::string& id) {
    auto stored = spool_->load(id);
    EXPECT_TRUE(stored) << (stored ? "" : stored.error().message);
    if (!stored) return {};
    auto reader = queue::MessageReader::open(*stored);
    EXPECT_TRUE(reader);
    if (!reader) return {};
    std::string out;
    char buffer[4096];
    for (;;) {
      auto n = reader->read(std::span<char>(buffer, sizeof buffer));
      EXPECT_TRUE(n);
      if (!n || *n == 0) break;
      out.append(buffer, *n);
    }
    return out;
  }
  // Streams message through an intake whose pipeline captures headers, applies verdict and
  // commits; returns what a deliverer would read.
  std::string deliver_with(const std::string& message, const Verdict& verdict) {
    Pipeline pipeline({std::make_shared<NullCheck>(mask(Stage::kEndOfData))});
    MessageIntake intake(*spool_, pipeline, facts());
    EXPECT_FALSE(intake.begin(start()));
    for (std::size_t at = 0; at < message.size(); at += 5)
      EXPECT_FALSE(intake.append(std::string_view(message).substr(at, 5)));
    auto refusal = intake.apply(verdict);
    EXPECT_FALSE(refusal) << (refusal ? refusal->text : "");
    if (refusal) return {};
    auto committed = intake.committed(intake.writer()->commit());
    EXPECT_TRUE(committed);
    return committed ? content_of(*committed) : std::string();
  }
  static std::string without_received(const std::string& content) {
    std::size_t at = content.find("Received: from");
    std::size_t end = content.find("\r\n", content.find("\r\n", at) + 2);  // two lines, folded
    while (end != std::string::npos && end + 2 < content.size() &&
           (content[end + 2] == ' ' || content[end + 2] == '\t'))
      end = content.find("\r\n", end + 2);
    return content.substr(0, at) + content.substr(end + 2);
  }

  fs::path dir_;
  std::unique_ptr<queue::Spool> spool_;
  smtp::Envelope envelope_;
};

TEST_F(MessageIntakeTest, StoresReceivedThenTheContentAndCommitsWithItsId) {
  Pipeline none;
  MessageIntake intake(*spool_, none, facts());
  ASSERT_FALSE(intake.begin(start()));
  ASSERT_FALSE(intake.append("Subject: hi\r\n\r\n"));
  ASSERT_FALSE(intake.append("body\r\n"));
  EXPECT_TRUE(intake.events().empty());  // no check: no events, nothing captured
  ASSERT_NE(intake.writer(), nullptr);
  auto committed = intake.committed(intake.writer()->commit());
  ASSERT_TRUE(committed);
  EXPECT_EQ(*committed, intake.queue_id());
  std::string content = content_of(*committed);
  EXPECT_TRUE(content.starts_with("Received: from client.example ([192.0.2.7])")) << content;
  EXPECT_NE(content.find("with ESMTPS id " + *committed), std::string::npos) << content;
  EXPECT_NE(content.find("for <b@mx.example>"), std::string::npos) << content;
  EXPECT_TRUE(content.ends_with("\r\nSubject: hi\r\n\r\nbody\r\n"));
  EXPECT_EQ(intake.size(), 21u);
}

TEST_F(MessageIntakeTest, HeaderEventsComeFieldByFieldWhateverTheChunking) {
  Pipeline pipeline({std::make_shared<NullCheck>(mask(Stage::kHeader) | mask(Stage::kEndOfHeaders) |
                                                 mask(Stage::kBody))});
  const std::string message =
      "From: a@client.example\r\nSubject: folded\r\n\tsecond line\r\nTo: b@mx.example\r\n\r\n"
      "body one\r\nbody two\r\n";
  for (std::size_t piece : {message.size(), std::size_t{1}, std::size_t{7}}) {
    MessageIntake intake(*spool_, pipeline, facts());
    ASSERT_FALSE(intake.begin(start()));
    std::vector<std::string> seen;
    std::string body;
    for (std::size_t at = 0; at < message.size(); at += piece) {
      ASSERT_FALSE(intake.append(std::string_view(message).substr(at, piece)));
      for (const ContentEvent& event : intake.events()) {
        if (event.stage == Stage::kHeader)
          seen.push_back(std::string(event.name) + "=" + std::string(event.value));
        if (event.stage == Stage::kEndOfHeaders) seen.push_back("EOH");
        if (event.stage == Stage::kBody) body += event.chunk;
      }
      intake.clear_events();
    }
    EXPECT_EQ(seen,
              (std::vector<std::string>{"From=a@client.example", "Subject=folded\r\n\tsecond line",
                                        "To=b@mx.example", "EOH"}))
        << "piece " << piece;
    EXPECT_EQ(body, "body one\r\nbody two\r\n") << "piece " << piece;
    intake.abort();
  }
}

TEST_F(MessageIntakeTest, AnAbortedMessageLeavesNothingInTheSpool) {
  Pipeline none;
  MessageIntake intake(*spool_, none, facts());
  ASSERT_FALSE(intake.begin(start()));
  ASSERT_FALSE(intake.append("x\r\n"));
  intake.abort();
  EXPECT_FALSE(intake.open());
  EXPECT_TRUE(spool_->list().empty());
  EXPECT_TRUE(fs::is_empty(dir_ / "tmp"));
}

TEST_F(MessageIntakeTest, AnUnwritableSpoolIsMailSystemFull) {
  if (::geteuid() == 0) {
    // root ignores directory permissions: make the failure a full envelope limit instead.
    envelope_.recipients.assign(200000,
                                smtp::Recipient{std::string(100, 'x') + "@mx.example", "", ""});
    Pipeline none;
    MessageIntake intake(*spool_, none, facts());
    auto refusal = intake.begin(start());
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->code, 552);
    EXPECT_EQ(refusal->enhanced, "5.3.4");
    return;
  }
  ::chmod((dir_ / "tmp").c_str(), 0500);
  Pipeline none;
  MessageIntake intake(*spool_, none, facts());
  auto refusal = intake.begin(start());
  ::chmod((dir_ / "tmp").c_str(), 0700);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->code, 452);
  EXPECT_EQ(refusal->enhanced, "4.3.1");
}

TEST_F(MessageIntakeTest, AFailedCommitIsATemporaryFailureNotA250) {
  Pipeline none;
  MessageIntake intake(*spool_, none, facts());
  ASSERT_FALSE(intake.begin(start()));
  auto committed = intake.committed(base::unexpected(queue::SpoolError{"fsync failed", true, EIO}));
  ASSERT_FALSE(committed);
  EXPECT_EQ(committed.error().code, 451);
  EXPECT_EQ(committed.error().enhanced, "4.3.0");
}

// A new sender, a recipient deleted (whatever its case), one added, one added twice: the
// queued envelope is the edited one, the content is untouched, and the client's 250 comes
// only after all of it is durable. Both a message whose start is still buffered and one
// large enough to be on disk already.
TEST_F(MessageIntakeTest, EnvelopeEditsAreWhatIsQueued) {
  envelope_.recipients = {{"b@mx.example", "SUCCESS", "rfc822;b@mx.example"},
                          {"c@mx.example", "", ""}};
  for (std::size_t body_size : {10u, 200000u}) {
    SCOPED_TRACE(body_size);
    Verdict verdict;
    verdict.new_sender = "bounces@mx.example";
    verdict.delete_recipients = {"C@MX.example"};
    verdict.add_recipients = {"d@mx.example", "d@mx.example", "b@mx.example"};
    const std::string message = "Subject: hi\r\n\r\n" + std::string(body_size, 'x') + "\r\n";
    Pipeline none;
    MessageIntake intake(*spool_, none, facts());
    ASSERT_FALSE(intake.begin(start()));
    ASSERT_FALSE(intake.append(message));
    ASSERT_FALSE(intake.apply(verdict));
    EXPECT_FALSE(intake.held());
    auto committed = intake.committed(intake.writer()->commit());
    ASSERT_TRUE(committed);
    auto stored = spool_->load(*committed);
    ASSERT_TRUE(stored) << stored.error().message;
    EXPECT_EQ(stored->envelope.reverse_path, "bounces@mx.example");
    ASSERT_EQ(stored->envelope.recipients.size(), 2u);
    EXPECT_EQ(stored->envelope.recipients[0].address, "b@mx.example");
    EXPECT_EQ(stored->envelope.recipients[0].notify, "SUCCESS");  // kept with its DSN request
    EXPECT_EQ(stored->envelope.recipients[1].address, "d@mx.example");
    EXPECT_EQ(stored->envelope.helo, "client.example");
    EXPECT_TRUE(content_of(*committed).ends_with(message));
    EXPECT_FALSE(spool_->is_held(*committed));
  }
}

TEST_F(MessageIntakeTest, TheNullSenderIsAValidNewSender) {
  Verdict verdict;
  verdict.new_sender = "";
  Pipeline none;
  MessageIntake intake(*spool_, none, facts());
  ASSERT_FALSE(intake.begin(start()));
  ASSERT_FALSE(intake.append("Subject: hi\r\n\r\nbody\r\n"));
  ASSERT_FALSE(intake.apply(verdict));
  auto committed = intake.committed(intake.writer()->commit());
  ASSERT_TRUE(committed);
  EXPECT_EQ(spool_->load(*committed)->envelope.reverse_path, "");
}

// Edits that cannot be carried out: 451 (the client keeps the message and tries again, so
// nothing is lost), a text that says what went wrong, and nothing in the spool.
TEST_F(MessageIntakeTest, EnvelopeEditsThatWouldLoseOrMisrouteMailAreRefused) {
  struct Case {
    const char* name;
    Verdict verdict;
    const char* text;
  };
  std::vector<Case> cases;
  {
    Verdict verdict;
    verdict.delete_recipients = {"b@mx.example"};
    cases.push_back({"every recipient deleted", verdict, "a check removed every recipient"});
  }
  for (const char* bad : {"", "no-at-sign", "a@b@c.example", "<x@mx.example>",
                          "x@mx.example\r\nRCPT TO:<y@evil.example>", "\xc3\xa9@mx.example"}) {
    Verdict verdict;
    verdict.add_recipients = {bad};
    cases.push_back({bad, verdict, "a check added an invalid recipient address"});
  }
  {
    Verdict verdict;
    verdict.new_sender = "not an address";
    cases.push_back({"bad sender", verdict, "a check set an invalid sender address"});
  }
  for (std::string_view bad :
       {std::string_view(".Junk"), std::string_view("."), std::string_view(".."),
        std::string_view("../../etc"), std::string_view("Lists..x"), std::string_view("a/b"),
        std::string_view("a\\b"), std::string_view("a\0b", 3), std::string_view("a\r\nb"),
        std::string_view("\xc3\xa9t\xc3\xa9")}) {
    Verdict verdict;
    verdict.folder = std::string(bad);
    cases.push_back({"folder", verdict, "a check chose an invalid folder"});
  }
  {
    Verdict verdict;
    verdict.folder = std::string(201, 'x');
    cases.push_back({"folder of 201 octets", verdict, "a check chose an invalid folder"});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Pipeline none;
    MessageIntake intake(*spool_, none, facts());
    ASSERT_FALSE(intake.begin(start()));
    ASSERT_FALSE(intake.append("Subject: hi\r\n\r\nbody\r\n"));
    auto refusal = intake.apply(c.verdict);
    ASSERT_TRUE(refusal);
    EXPECT_EQ(refusal->code, 451);
    EXPECT_EQ(refusal->enhanced, "4.3.0");
    EXPECT_NE(refusal->text.find(c.text), std::string::npos) << refusal->text;
    EXPECT_FALSE(intake.open());
    EXPECT_TRUE(spool_->list().empty());
    EXPECT_TRUE(fs::is_empty(dir_ / "tmp"));
  }
}

// A folder is per message and written with it: the deliverer reads it back from the spool.
TEST_F(MessageIntakeTest, AFolderIsStoredWithTheMessage) {
  for (const std::string& folder :
       {std::string("Junk"), std::string("Lists.smtpsd"), std::string(200, 'x')}) {
    SCOPED_TRACE(folder);
    Verdict verdict;
    verdict.folder = folder;
    Pipeline none;
    MessageIntake intake(*spool_, none, facts());
    ASSERT_FALSE(intake.begin(start()));
    ASSERT_FALSE(intake.append("Subject: hi\r\n\r\nbody\r\n"));
    ASSERT_FALSE(intake.apply(verdict));
    auto committed = intake.committed(intake.writer()->commit());
    ASSERT_TRUE(committed);
    auto stored = spool_->load(*committed);
    ASSERT_TRUE(stored) << stored.error().message;
    EXPECT_EQ(stored->folder, folder);
    EXPECT_EQ(stored->envelope.recipients.size(), 1u);
  }
  // Without a folder: INBOX.
  Pipeline none;
  MessageIntake intake(*spool_, none, facts());
  ASSERT_FALSE(intake.begin(start()));
  ASSERT_FALSE(intake.append("Subject: hi\r\n\r\nbody\r\n"));
  ASSERT_FALSE(intake.apply(Verdict::pass()));
  auto committed = intake.committed(intake.writer()->commit());
  ASSERT_TRUE(committed);
  EXPECT_EQ(spool_->load(*committed)->folder, "");
}

// RFC 8689 §3, §4.1: "TLS-Required: No" is recorded for delivery when one of our
// authenticated senders wrote it and did not give REQUIRETLS; anyone else's is kept in the
// message and ignored. No check is needed for the header section to be looked at.
TEST_F(MessageIntakeTest, TlsRequiredNoCountsOnlyFromAuthenticatedSendersWithoutRequireTls) {
  struct Case {
    bool authenticated;
    bool require_tls;
    std::string message;
    bool recorded;
  };
  const std::string no = "From: a@client.example\r\nTLS-Required:  no \r\n\r\nbody\r\n";
  const std::vector<Case> cases = {
      {true, false, no, true},
      {true, false, "tls-required: No\r\n", true},  // all header section, no body
      {false, false, no, false},                    // port 25, anyone
      {true, true, no, false},                      // REQUIRETLS wins (RFC 8689 §4.1)
      {true, false, "Subject: TLS-Required: No\r\n\r\nTLS-Required: No\r\n", false},
      {true, false, "TLS-Required: No\r\nTLS-Required: Yes\r\n\r\nb\r\n", false},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.message);
    envelope_.authenticated = c.authenticated;
    envelope_.require_tls = c.require_tls;
    Pipeline none;
    MessageIntake intake(*spool_, none, facts());
    ASSERT_FALSE(intake.begin(start()));
    for (std::size_t at = 0; at < c.message.size(); at += 3)
      ASSERT_FALSE(intake.append(std::string_view(c.message).substr(at, 3)));
    intake.end_of_content();
    ASSERT_FALSE(intake.apply(Verdict::pass()));
    EXPECT_EQ(intake.tls_optional(), c.recorded);
    auto committed = intake.committed(intake.writer()->commit());
    ASSERT_TRUE(committed);
    auto stored = spool_->load(*committed);
    ASSERT_TRUE(stored) << stored.error().message;
    EXPECT_EQ(stored->tls_optional, c.recorded);
    EXPECT_EQ(stored->envelope.require_tls, c.require_tls);
    EXPECT_TRUE(content_of(*committed).ends_with(c.message));  // the field is kept as written
  }
}

// A hold: committed like any message (the client gets its 250), with state/<id> saying
// "held" before the file reaches queue/, so the scheduler never sees it unheld.
TEST_F(MessageIntakeTest, AHeldMessageIsCommittedWithItsHold) {
  Verdict verdict;
  verdict.kind = Verdict::Kind::kHold;
  verdict.header_edits.push_back({HeaderEdit::Kind::kAdd, "X-Held", "yes", 1});
  Pipeline none;
  MessageIntake intake(*spool_, none, facts());
  ASSERT_FALSE(intake.begin(start()));
  ASSERT_FALSE(intake.append("Subject: hi\r\n\r\nbody\r\n"));
  ASSERT_FALSE(intake.apply(verdict));
  EXPECT_TRUE(intake.held());
  auto committed = intake.committed(intake.writer()->commit());
  ASSERT_TRUE(committed);
  EXPECT_TRUE(spool_->is_held(*committed));
  EXPECT_TRUE(content_of(*committed).starts_with("X-Held: yes\r\nReceived: from"));

  // The next message of the session is not held.
  ASSERT_FALSE(intake.begin(start()));
  ASSERT_FALSE(intake.append("Subject: next\r\n\r\nbody\r\n"));
  ASSERT_FALSE(intake.apply(Verdict::pass()));
  EXPECT_FALSE(intake.held());
  auto next = intake.committed(intake.writer()->commit());
  ASSERT_TRUE(next);
  EXPECT_FALSE(spool_->is_held(*next));
}

TEST_F(MessageIntakeTest, AHeldMessageWhoseCommitFailsLeavesNoHoldBehind) {
  Verdict verdict;
  verdict.kind = Verdict::Kind::kHold;
  Pipeline none;
  MessageIntake intake(*spool_, none, facts());
  ASSERT_FALSE(intake.begin(start()));
  ASSERT_FALSE(intake.append("Subject: hi\r\n\r\nbody\r\n"));
  ASSERT_FALSE(intake.apply(verdict));
  ASSERT_TRUE(intake.writer()->flush_to_log());  // the hold is written here
  EXPECT_TRUE(fs::exists(dir_ / "state" / intake.queue_id()));
  intake.abort();  // as when the log sync or publish() fails
  EXPECT_TRUE(spool_->list().empty());
  EXPECT_TRUE(fs::is_empty(dir_ / "state"));
}

TEST_F(MessageIntakeTest, AddedHeadersGoAboveReceivedAndTheRestIsUntouched) {
  Verdict verdict;
  verdict.header_edits.push_back(
      {HeaderEdit::Kind::kAdd, "Authentication-Results", "mx.example; spf=pass", 1});
  std::string content = deliver_with("Subject: hi\r\n\r\nbody\r\n", verdict);
  EXPECT_TRUE(content.starts_with("Authentication-Results: mx.example; spf=pass\r\nReceived: from"))
      << content;
  EXPECT_TRUE(content.ends_with("\r\nSubject: hi\r\n\r\nbody\r\n")) << content;
}

TEST_F(MessageIntakeTest, ChangedAndDeletedHeadersAndANewBodyAreWhatIsDelivered) {
  Verdict verdict;
  verdict.header_edits.push_back({HeaderEdit::Kind::kAdd, "X-Checked", "yes", 1});
  verdict.header_edits.push_back({HeaderEdit::Kind::kChange, "Subject", "[SPAM] hi", 1});
  verdict.header_edits.push_back({HeaderEdit::Kind::kDelete, "X-Mailer", "", 1});
  verdict.new_body = "replaced body\r\n";
  std::string body(100000, 'x');
  for (std::size_t i = 76; i < body.size(); i += 78)
    body.replace(i, 2, "\r\n");
  std::string content = deliver_with(
      "Subject: hi\r\nX-Mailer: m\r\nTo: b@mx.example\r\n\r\n" + body + "\r\n", verdict);
  EXPECT_TRUE(content.starts_with("X-Checked: yes\r\nReceived: from")) << content.substr(0, 200);
  EXPECT_EQ(without_received(content),
            "X-Checked: yes\r\nSubject: [SPAM] hi\r\nTo: b@mx.example\r\n\r\nreplaced body\r\n");
}

// Authentication-Results and DKIM-Signature are folded: with a deletion beside them (a
// forged Authentication-Results), our Received must still come after the whole added fields.
TEST_F(MessageIntakeTest, FoldedAddedFieldsStayWholeAboveReceivedWhenAFieldIsDeleted) {
  Verdict verdict;
  verdict.header_edits.push_back({HeaderEdit::Kind::kDelete, "Authentication-Results", "", 1});
  verdict.header_edits.push_back(
      {HeaderEdit::Kind::kAdd, "Authentication-Results", "mx;\r\n\tspf=pass;\r\n\tdkim=none", 1});
  verdict.header_edits.push_back({HeaderEdit::Kind::kAdd, "X-Spam-Flag", "YES", 1});
  std::string content = deliver_with(
      "Authentication-Results : mx; dkim=pass\r\nSubject: hi\r\n\r\nbody\r\n", verdict);
  EXPECT_TRUE(
      content.starts_with("Authentication-Results: mx;\r\n\tspf=pass;\r\n\tdkim=none\r\n"
                          "X-Spam-Flag: YES\r\nReceived: from"))
      << content.substr(0, 200);
  EXPECT_EQ(without_received(content),
            "Authentication-Results: mx;\r\n\tspf=pass;\r\n\tdkim=none\r\nX-Spam-Flag: YES\r\n"
            "Subject: hi\r\n\r\nbody\r\n");
}

TEST_F(MessageIntakeTest, HeaderEditsOfAMessageWithoutAHeaderEndAreRefused) {
  Verdict verdict;
  verdict.header_edits.push_back({HeaderEdit::Kind::kDelete, "Subject", "", 1});
  Pipeline pipeline({std::make_shared<NullCheck>(mask(Stage::kEndOfData))});
  MessageIntake intake(*spool_, pipeline, facts());
  ASSERT_FALSE(intake.begin(start()));
  ASSERT_FALSE(intake.append("Subject: no empty line follows\r\n"));
  auto refusal = intake.apply(verdict);
  ASSERT_TRUE(refusal);
  EXPECT_EQ(refusal->code, 451);
  EXPECT_TRUE(spool_->list().empty());
}

// A message that is all header section (no empty line, no body): once the end of the
// content says so, a forged field is deleted as in any other message, not retried forever.
TEST_F(MessageIntakeTest, HeaderEditsOfAHeaderOnlyMessageApplyAtTheEndOfContent) {
  Verdict verdict;
  verdict.header_edits.push_back({HeaderEdit::Kind::kDelete, "Authentication-Results", "", 1});
  verdict.header_edits.push_back({HeaderEdit::Kind::kAdd, "Authentication-Results", "mx; a", 1});
  Pipeline pipeline({std::make_shared<NullCheck>(mask(Stage::kEndOfData))});
  MessageIntake intake(*spool_, pipeline, facts());
  ASSERT_FALSE(intake.begin(start()));
  ASSERT_FALSE(intake.append("Authentication-Results: mx; forged\r\nSubject: only\r\n"));
  intake.end_of_content();
  ASSERT_FALSE(intake.apply(verdict));
  auto committed = intake.committed(intake.writer()->commit());
  ASSERT_TRUE(committed);
  std::string content = content_of(*committed);
  EXPECT_TRUE(content.starts_with("Authentication-Results: mx; a\r\nReceived: from")) << content;
  EXPECT_EQ(without_received(content), "Authentication-Results: mx; a\r\nSubject: only\r\n\r\n");
}

TEST(EditHeaderSectionTest, AddsGoOnTopChangesAndDeletesFindTheNthField) {
  const std::string section =
      "Received: one\r\nSubject: old\r\n\tfolded\r\nX-Spam: a\r\nX-Spam: b\r\n\r\n";
  std::vector<HeaderEdit> edits = {
      {HeaderEdit::Kind::kAdd, "Authentication-Results", "mx.example; spf=pass", 1},
      {HeaderEdit::Kind::kChange, "subject", "new", 1},
      {HeaderEdit::Kind::kDelete, "X-Spam", "", 2},
      {HeaderEdit::Kind::kChange, "X-Absent", "ignored", 1},
  };
  auto edited = edit_header_section(section, edits);
  ASSERT_TRUE(edited) << edited.error();
  EXPECT_EQ(*edited,
            "Authentication-Results: mx.example; spf=pass\r\nReceived: one\r\nSubject: new\r\n"
            "X-Spam: a\r\n\r\n");
}

TEST(EditHeaderSectionTest, FieldsThatWouldBreakTheMessageAreRefused) {
  EXPECT_FALSE(edit_header_section("\r\n", {{HeaderEdit::Kind::kAdd, "Bad Name", "v", 1}}));
  EXPECT_FALSE(edit_header_section("\r\n", {{HeaderEdit::Kind::kAdd, "X", "a\r\nInjected: 1", 1}}));
  EXPECT_FALSE(edit_header_section("\r\n", {{HeaderEdit::Kind::kAdd, "X", "bare\nlf", 1}}));
  EXPECT_TRUE(edit_header_section("\r\n", {{HeaderEdit::Kind::kAdd, "X", "a\r\n b", 1}}));
}

}  // namespace
}  // namespace intake
