// server_session_test.cpp — every reply path and limit of smtp::ServerSession, each input
// fed whole and byte by byte (STYLE.md habit 11).
#include "smtp/server_session.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "fake_host.h"

namespace smtp {
namespace {

using testing::FakeHost;
using namespace std::string_literals;

SessionConfig default_config() {
  SessionConfig config;
  config.hostname = "mx.example";
  return config;
}

bool contains(const std::string& text, std::string_view part) {
  return text.find(part) != std::string::npos;
}

class SessionTest : public ::testing::TestWithParam<bool> {
 protected:
  void start() {
    host_ = std::make_unique<FakeHost>(config_);
    host_->start();
  }
  void send(std::string_view bytes) { host_->send(bytes, GetParam()); }
  // Sends and returns the replies it produced.
  std::vector<std::string> exchange(std::string_view bytes) {
    std::size_t before = host_->replies().size();
    send(bytes);
    std::vector<std::string> all = host_->replies();
    return std::vector<std::string>(all.begin() + static_cast<std::ptrdiff_t>(before), all.end());
  }
  std::string reply(std::string_view bytes) {
    auto replies = exchange(bytes);
    EXPECT_EQ(replies.size(), 1u) << bytes;
    return replies.empty() ? std::string() : replies.back();
  }
  void ehlo_mail_rcpt() {
    ASSERT_TRUE(reply("EHLO client.example\r\n").starts_with("250 "));
    ASSERT_EQ(reply("MAIL FROM:<a@client.example>\r\n"), "250 2.1.0 Ok");
    ASSERT_EQ(reply("RCPT TO:<b@mx.example>\r\n"), "250 2.1.5 Ok");
  }
  FakeHost& host() { return *host_; }

  SessionConfig config_ = default_config();
  std::unique_ptr<FakeHost> host_;
};

INSTANTIATE_TEST_SUITE_P(WholeAndBytewise, SessionTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Bytewise" : "Whole";
                         });

// ---- greeting, EHLO, HELO -------------------------------------------------------------

TEST_P(SessionTest, GreetingHasNoEnhancedCode) {
  start();
  EXPECT_EQ(host().output, "220 mx.example ESMTP smtpsd\r\n");
  EXPECT_EQ(host().session.waiting(), Waiting::kCommand);
}

TEST_P(SessionTest, EhloAdvertisesExtensions) {
  start();
  send("EHLO client.example\r\n");
  auto lines = host().lines();
  ASSERT_GE(lines.size(), 3u);
  EXPECT_EQ(lines[1], "250-mx.example");
  const std::string& out = host().output;
  for (std::string_view keyword :
       {"250-PIPELINING\r\n", "SIZE 36700160\r\n", "8BITMIME\r\n", "ENHANCEDSTATUSCODES\r\n",
        "SMTPUTF8\r\n", "CHUNKING\r\n", "BINARYMIME\r\n", "DSN\r\n", "250 STARTTLS\r\n"}) {
    EXPECT_TRUE(contains(out, keyword)) << keyword;
  }
  EXPECT_EQ(host().session.envelope().helo, "client.example");
  EXPECT_TRUE(host().session.envelope().esmtp);
  EXPECT_EQ(host().session.with_protocol(), "ESMTP");
}

TEST_P(SessionTest, ImplicitTlsNeverOffersStarttls) {
  config_.tls_mode = TlsMode::kImplicit;
  host_ = std::make_unique<FakeHost>(config_);
  host().session.tls_established(TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", "mx.example"});
  host().start();
  send("EHLO c\r\n");
  EXPECT_FALSE(contains(host().output, "STARTTLS"));
  EXPECT_TRUE(host().session.tls_active());
  EXPECT_EQ(host().session.tls_info().sni, "mx.example");
  EXPECT_EQ(host().session.with_protocol(), "ESMTPS");
  EXPECT_EQ(reply("STARTTLS\r\n"), "503 5.5.1 TLS already active");
}

TEST_P(SessionTest, HeloIsPlainSmtp) {
  start();
  EXPECT_EQ(reply("HELO client.example\r\n"), "250 mx.example");
  EXPECT_FALSE(host().session.envelope().esmtp);
  EXPECT_EQ(host().session.with_protocol(), "SMTP");
}

TEST_P(SessionTest, EhloNeedsAHostname) {
  start();
  EXPECT_EQ(reply("EHLO\r\n"), "501 5.5.4 Syntax: EHLO hostname");
  EXPECT_EQ(reply("HELO\r\n"), "501 5.5.4 Syntax: HELO hostname");
}

// ---- a whole transaction ----------------------------------------------------------------

TEST_P(SessionTest, DataTransaction) {
  start();
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>");
  EXPECT_EQ(host().session.waiting(), Waiting::kDataBlock);
  EXPECT_EQ(reply("Subject: hi\r\n\r\n..dot\r\nbody\r\n.\r\n"), "250 2.0.0 Ok: queued as Q1");
  ASSERT_EQ(host().messages.size(), 1u);
  EXPECT_EQ(host().messages[0], "Subject: hi\r\n\r\n.dot\r\nbody\r\n");
  const Envelope& envelope = host().envelopes[0];
  EXPECT_EQ(envelope.reverse_path, "a@client.example");
  ASSERT_EQ(envelope.recipients.size(), 1u);
  EXPECT_EQ(envelope.recipients[0].address, "b@mx.example");
  EXPECT_EQ(envelope.helo, "client.example");
  EXPECT_EQ(host().session.waiting(), Waiting::kCommand);
  // The transaction is over: a new MAIL is legal, RCPT is not.
  EXPECT_EQ(reply("RCPT TO:<b@mx.example>\r\n"), "503 5.5.1 Error: need MAIL command");
  EXPECT_EQ(reply("MAIL FROM:<>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(reply("QUIT\r\n"), "221 2.0.0 mx.example closing connection");
  EXPECT_TRUE(host().closed);
}

TEST_P(SessionTest, PipelinedTransactionInOneReceive) {
  start();
  send(
      "EHLO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.example>\r\n"
      "RCPT TO:<c@mx.example>\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(host().codes(), (std::vector<int>{220, 250, 250, 250, 250, 354, 250, 221}));
  ASSERT_EQ(host().messages.size(), 1u);
  EXPECT_EQ(host().messages[0], "hello\r\n");
  EXPECT_EQ(host().envelopes[0].recipients.size(), 2u);
  EXPECT_TRUE(host().closed);
}

TEST_P(SessionTest, TwoMessagesOnOneConnection) {
  start();
  send("EHLO c\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\none\r\n.\r\n");
  send("MAIL FROM:<a@c.example>\r\nRCPT TO:<c@mx.example>\r\nDATA\r\ntwo\r\n.\r\n");
  ASSERT_EQ(host().messages.size(), 2u);
  EXPECT_EQ(host().messages[1], "two\r\n");
  ASSERT_EQ(host().envelopes[1].recipients.size(), 1u);
  EXPECT_EQ(host().envelopes[1].recipients[0].address, "c@mx.example");
  EXPECT_EQ(host().replies().back(), "250 2.0.0 Ok: queued as Q2");
}

TEST_P(SessionTest, TerminatorSplitAtEveryPosition) {
  const std::string stream =
      "EHLO c\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n"
      "x\r\n..y\r\n.\r\nQUIT\r\n";
  for (std::size_t split = 0; split <= stream.size(); ++split) {
    FakeHost split_host(config_);
    split_host.start();
    split_host.send(std::string_view(stream).substr(0, split));
    split_host.send(std::string_view(stream).substr(split));
    EXPECT_EQ(split_host.codes(), (std::vector<int>{220, 250, 250, 250, 354, 250, 221})) << split;
    ASSERT_EQ(split_host.messages.size(), 1u) << split;
    EXPECT_EQ(split_host.messages[0], "x\r\n.y\r\n") << split;
  }
}

TEST_P(SessionTest, LargeBodyIsStreamedInBoundedPieces) {
  start();
  ehlo_mail_rcpt();
  send("DATA\r\n");
  std::string line(998, 'a');
  std::string body;
  for (int i = 0; i < (GetParam() ? 20 : 300); ++i)
    body += line + "\r\n";
  send(body);
  send(".\r\n");
  ASSERT_EQ(host().messages.size(), 1u);
  EXPECT_EQ(host().messages[0], body);
  EXPECT_LE(host().largest_piece, 64u * 1024);
}

// ---- sequencing and unknown commands ---------------------------------------------------

TEST_P(SessionTest, BadSequence) {
  start();
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Error: send HELO/EHLO first");
  EXPECT_EQ(reply("EHLO c\r\n").substr(0, 4), "250 ");
  EXPECT_EQ(reply("RCPT TO:<a@b.example>\r\n"), "503 5.5.1 Error: need MAIL command");
  EXPECT_EQ(reply("DATA\r\n"), "503 5.5.1 Error: need MAIL command");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Error: nested MAIL command");
  EXPECT_EQ(reply("DATA\r\n"), "554 5.5.1 No valid recipients");
  EXPECT_EQ(reply("RSET\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(reply("RCPT TO:<a@b.example>\r\n"), "503 5.5.1 Error: need MAIL command");
}

TEST_P(SessionTest, SimpleCommands) {
  start();
  EXPECT_EQ(reply("NOOP\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(reply("noop anything\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(reply("HELP\r\n").substr(0, 10), "214 2.0.0 ");
  EXPECT_EQ(reply("RSET now\r\n"), "501 5.5.4 Syntax: RSET");
  EXPECT_EQ(reply("EHLO c\r\n").substr(0, 4), "250 ");
  EXPECT_EQ(reply("VRFY someone\r\n"),
            "252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery");
  EXPECT_EQ(reply("VRFY\r\n"), "501 5.5.4 Syntax: VRFY address");
  EXPECT_EQ(reply("EXPN list\r\n"), "502 5.5.1 EXPN not implemented");
  EXPECT_EQ(reply("FOO bar\r\n"), "500 5.5.1 Command unrecognized");
  EXPECT_EQ(reply("\r\n"), "500 5.5.1 Command unrecognized");
}

TEST_P(SessionTest, VerbsAreCaseInsensitive) {
  start();
  EXPECT_EQ(reply("ehlo c\r\n").substr(0, 4), "250 ");
  EXPECT_EQ(reply("mail from:<a@b.example>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(reply("rcpt to:<b@mx.example>\r\n"), "250 2.1.5 Ok");
}

TEST_P(SessionTest, EhloResetsTheTransaction) {
  start();
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("EHLO again\r\n").substr(0, 4), "250 ");
  EXPECT_TRUE(host().session.envelope().recipients.empty());
  EXPECT_EQ(reply("DATA\r\n"), "503 5.5.1 Error: need MAIL command");
}

// ---- MAIL and RCPT parameters -----------------------------------------------------------

TEST_P(SessionTest, MailSyntax) {
  start();
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("MAIL TO:<a@b.example>\r\n"), "501 5.5.2 Syntax: MAIL FROM:<address>");
  EXPECT_EQ(reply("MAIL\r\n"), "501 5.5.2 Syntax: MAIL FROM:<address>");
  EXPECT_EQ(reply("MAIL FROM:a@b.example\r\n"), "501 5.1.7 Bad sender address syntax: missing '<'");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example\r\n"),
            "501 5.1.7 Bad sender address syntax: missing '>'");
  EXPECT_EQ(reply("MAIL FROM:<a@b..example>\r\n"),
            "501 5.1.7 Bad sender address syntax: empty domain label (misplaced '.')");
  EXPECT_EQ(reply("MAIL FROM: <a@b.example>\r\n"), "250 2.1.0 Ok");  // common client habit
}

TEST_P(SessionTest, NullReversePathAndSourceRoute) {
  start();
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("MAIL FROM:<>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().reverse_path, "");
  reply("RSET\r\n");
  EXPECT_EQ(reply("MAIL FROM:<@relay.example,@other.example:user@c.example>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().reverse_path, "user@c.example");
}

TEST_P(SessionTest, UnknownParametersGet555) {
  start();
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> FOO=bar\r\n"),
            "555 5.5.4 MAIL FROM/RCPT TO parameters not recognized or not implemented");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(reply("RCPT TO:<b@mx.example> XYZ\r\n"),
            "555 5.5.4 MAIL FROM/RCPT TO parameters not recognized or not implemented");
}

TEST_P(SessionTest, SizeAtMail) {
  config_.limits.max_message_size = 1000;
  start();
  reply("EHLO c\r\n");
  EXPECT_TRUE(contains(host().output, "SIZE 1000\r\n"));
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> SIZE=1001\r\n"),
            "552 5.3.4 Message size exceeds fixed maximum message size");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> SIZE=abc\r\n"), "501 5.5.4 Invalid SIZE parameter");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> SIZE=1 SIZE=2\r\n"), "501 5.5.4 Invalid SIZE parameter");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> SIZE=99999999999999999999999\r\n"),
            "501 5.5.4 Invalid SIZE parameter");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> SIZE=1000\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().declared_size, 1000u);
}

TEST_P(SessionTest, NoRoomForTheMessageGets452AndPassesWhenSpaceReturns) {
  std::uint64_t free_space = 500;
  std::vector<std::uint64_t> asked;
  config_.has_room_for = [&](std::uint64_t declared) {
    asked.push_back(declared);
    return declared + 100 <= free_space;
  };
  start();
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> SIZE=450\r\n"),
            "452 4.3.1 Insufficient system storage, try again later");
  // No transaction was started: RCPT is out of sequence.
  EXPECT_EQ(reply("RCPT TO:<b@mx.example>\r\n"), "503 5.5.1 Error: need MAIL command");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
  free_space = 50;
  EXPECT_EQ(reply("RSET\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"),
            "452 4.3.1 Insufficient system storage, try again later");
  EXPECT_EQ(asked, (std::vector<std::uint64_t>{450, 0, 0}));
  // A 452 is the server's condition, not the client's error: it never counts towards
  // max_errors and the session stays open.
  free_space = 10000;
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> SIZE=450\r\n"), "250 2.1.0 Ok");
}

TEST_P(SessionTest, InTransactionFromMailToTheFinalReply) {
  start();
  reply("EHLO c\r\n");
  EXPECT_FALSE(host().session.in_transaction());
  reply("MAIL FROM:<a@b.example>\r\n");
  EXPECT_TRUE(host().session.in_transaction());
  reply("RSET\r\n");
  EXPECT_FALSE(host().session.in_transaction());
  reply("MAIL FROM:<a@b.example>\r\n");
  reply("RCPT TO:<b@mx.example>\r\n");
  EXPECT_EQ(reply("DATA\r\n").substr(0, 3), "354");
  EXPECT_TRUE(host().session.in_transaction());
  EXPECT_EQ(exchange("body\r\n.\r\n").back(), "250 2.0.0 Ok: queued as Q1");
  EXPECT_FALSE(host().session.in_transaction());
}

TEST_P(SessionTest, SizeWhileStreaming) {
  config_.limits.max_message_size = 100;
  start();
  ehlo_mail_rcpt();
  std::string body;
  for (int i = 0; i < 10; ++i)
    body += "0123456789012345678\r\n";
  auto replies = exchange("DATA\r\n" + body + ".\r\n");
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[1], "552 5.3.4 Message size exceeds fixed maximum message size");
  EXPECT_EQ(host().aborts, 1);
  EXPECT_TRUE(host().messages.empty());
  // The next transaction starts clean.
  reply("MAIL FROM:<a@b.example>\r\n");
  reply("RCPT TO:<b@mx.example>\r\n");
  EXPECT_EQ(exchange("DATA\r\nsmall\r\n.\r\n").back(), "250 2.0.0 Ok: queued as Q1");
  EXPECT_EQ(host().messages.size(), 1u);
}

// A recipient domain with a smaller limit ([[domains]] max_message_size): a declared SIZE
// over it refuses that recipient only (RFC 1870 §6.2); without SIZE, the data is bounded by
// the smallest limit of the accepted recipients and the whole message gets 552.
TEST_P(SessionTest, RecipientDomainSizeLimit) {
  config_.limits.max_message_size = 1000;
  config_.recipient_size_limit = [](std::string_view address) -> std::uint64_t {
    return address.ends_with("@small.example") ? 100 : 0;
  };
  start();
  ASSERT_TRUE(reply("EHLO client.example\r\n").starts_with("250 "));
  ASSERT_EQ(reply("MAIL FROM:<a@b.example> SIZE=500\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(reply("RCPT TO:<x@small.example>\r\n"),
            "552 5.3.4 Message size exceeds the limit of the recipient's domain");
  EXPECT_EQ(reply("RCPT TO:<y@big.example>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(exchange("DATA\r\n" + std::string(400, 'a') + "\r\n.\r\n").back(),
            "250 2.0.0 Ok: queued as Q1");
  // No SIZE: accepted at RCPT, refused whole once the data passes 100 octets.
  ASSERT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
  ASSERT_EQ(reply("RCPT TO:<y@big.example>\r\n"), "250 2.1.5 Ok");
  ASSERT_EQ(reply("RCPT TO:<x@small.example>\r\n"), "250 2.1.5 Ok");
  auto replies = exchange("DATA\r\n" + std::string(150, 'a') + "\r\n.\r\n");
  EXPECT_EQ(replies.back(), "552 5.3.4 Message size exceeds the limit of a recipient's domain");
  EXPECT_EQ(host().messages.size(), 1u);
  // The limit belongs to that transaction: the next one without the small domain is free.
  ASSERT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
  ASSERT_EQ(reply("RCPT TO:<y@big.example>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(exchange("DATA\r\n" + std::string(150, 'a') + "\r\n.\r\n").back(),
            "250 2.0.0 Ok: queued as Q2");
  // BDAT is bounded the same way.
  ASSERT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
  ASSERT_EQ(reply("RCPT TO:<x@small.example>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(reply("BDAT 150 LAST\r\n" + std::string(150, 'b')),
            "552 5.3.4 Message size exceeds the limit of a recipient's domain");
}

TEST_P(SessionTest, AnAliasCarriesNoMessageIntoADomainThatTakesLess) {
  config_.limits.max_message_size = 1000;
  config_.recipient_size_limit = [](std::string_view address) -> std::uint64_t {
    return address.ends_with("@small.example") ? 100 : 0;
  };
  config_.check_recipient = [](std::string_view address, std::string_view) -> RecipientDecision {
    if (address == "list@big.example") {
      return RecipientDecision(RecipientVerdict::kAccept, {"y@big.example", "x@small.example"});
    }
    return RecipientVerdict::kAccept;
  };
  start();
  ASSERT_TRUE(reply("EHLO client.example\r\n").starts_with("250 "));
  ASSERT_EQ(reply("MAIL FROM:<a@b.example> SIZE=500\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(reply("RCPT TO:<list@big.example>\r\n"),
            "552 5.3.4 Message size exceeds the limit of the recipient's domain");
  reply("RSET\r\n");
  ASSERT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
  ASSERT_EQ(reply("RCPT TO:<list@big.example>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(exchange("DATA\r\n" + std::string(150, 'a') + "\r\n.\r\n").back(),
            "552 5.3.4 Message size exceeds the limit of a recipient's domain");
  EXPECT_TRUE(host().messages.empty());
}

TEST_P(SessionTest, BodyTypes) {
  start();
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> BODY=8BITMIME\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().body, BodyType::k8BitMime);
  reply("RSET\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> body=7bit\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().body, BodyType::k7Bit);
  reply("RSET\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> BODY=QUANTUM\r\n"),
            "504 5.5.4 Unsupported BODY type (7BIT, 8BITMIME, BINARYMIME)");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().body, BodyType::kBinaryMime);
  reply("RCPT TO:<b@mx.example>\r\n");
  EXPECT_EQ(reply("DATA\r\n"), "503 5.5.1 BODY=BINARYMIME requires BDAT, not DATA");
  EXPECT_EQ(reply("BDAT 3 LAST\r\na\rb"), "250 2.0.0 Ok: queued as Q1");
  EXPECT_EQ(host().messages[0], "a\rb");  // binary: octets as sent
}

TEST_P(SessionTest, Smtputf8Addresses) {
  start();
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("MAIL FROM:<jörg@example.de>\r\n"),
            "553 5.6.7 Sender address contains UTF-8 but SMTPUTF8 not declared");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(reply("RCPT TO:<用户@例子.广告>\r\n"),
            "553 5.6.7 Recipient address contains UTF-8 but SMTPUTF8 not declared");
  reply("RSET\r\n");
  EXPECT_EQ(reply("MAIL FROM:<jörg@example.de> SMTPUTF8\r\n"), "250 2.1.0 Ok");
  EXPECT_TRUE(host().session.envelope().smtputf8);
  EXPECT_EQ(reply("RCPT TO:<用户@例子.广告>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(host().session.envelope().recipients[0].address, "用户@例子.广告");
  EXPECT_EQ(reply("RCPT TO:<bad\xC3@x.example>\r\n"),
            "501 5.1.3 Bad recipient address syntax: invalid UTF-8");
}

TEST_P(SessionTest, DsnParametersAreParsedIntoTheEnvelope) {
  start();
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> RET=HDRS ENVID=QQ314+2B159\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().dsn_return, DsnReturn::kHeaders);
  EXPECT_EQ(host().session.envelope().envelope_id, "QQ314+159");
  EXPECT_EQ(
      reply("RCPT TO:<b@mx.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;b+2Bx@mx.example\r\n"),
      "250 2.1.5 Ok");
  EXPECT_EQ(reply("RCPT TO:<c@mx.example> NOTIFY=NEVER\r\n"), "250 2.1.5 Ok");
  const auto& recipients = host().session.envelope().recipients;
  ASSERT_EQ(recipients.size(), 2u);
  EXPECT_EQ(recipients[0].notify, "SUCCESS,FAILURE");
  EXPECT_EQ(recipients[0].original_recipient, "rfc822;b+x@mx.example");
  EXPECT_EQ(recipients[1].notify, "NEVER");
  EXPECT_EQ(recipients[1].original_recipient, "");
  EXPECT_EQ(reply("RCPT TO:<d@mx.example> NOTIFY=NEVER,SUCCESS\r\n"),
            "501 5.5.4 Invalid NOTIFY parameter");
  EXPECT_EQ(reply("RCPT TO:<d@mx.example> NOTIFY=DELAY,DELAY\r\n"),
            "501 5.5.4 Invalid NOTIFY parameter");
  EXPECT_EQ(reply("RCPT TO:<d@mx.example> ORCPT=noaddresstype\r\n"),
            "501 5.5.4 Invalid ORCPT parameter");
  EXPECT_EQ(reply("RCPT TO:<d@mx.example> ORCPT=rfc822;a+zz\r\n"),
            "501 5.5.4 Invalid ORCPT parameter");
  reply("RSET\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> RET=ALL\r\n"),
            "501 5.5.4 Invalid RET parameter (FULL or HDRS)");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> ENVID=a+2\r\n"), "501 5.5.4 Invalid ENVID parameter");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> ENVID=" + std::string(101, 'x') + "\r\n"),
            "501 5.5.4 Invalid ENVID parameter");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> RET=FULL\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().dsn_return, DsnReturn::kFull);
}

// ---- recipients -------------------------------------------------------------------------

TEST_P(SessionTest, RecipientVerdicts) {
  std::vector<std::string> asked;
  config_.check_recipient = [&asked](std::string_view address, std::string_view user) {
    EXPECT_EQ(user, "");
    asked.emplace_back(address);
    if (address.starts_with("unknown")) return RecipientVerdict::kUnknownUser;
    if (address.ends_with("@elsewhere.example")) return RecipientVerdict::kRelayDenied;
    if (address.starts_with("later")) return RecipientVerdict::kTempFail;
    return RecipientVerdict::kAccept;
  };
  start();
  reply("EHLO c\r\n");
  reply("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(reply("RCPT TO:<unknown@mx.example>\r\n"),
            "550 5.1.1 Recipient address rejected: user unknown");
  EXPECT_EQ(reply("RCPT TO:<x@elsewhere.example>\r\n"), "550 5.7.1 Relay access denied");
  EXPECT_EQ(reply("RCPT TO:<later@mx.example>\r\n"),
            "451 4.3.0 Temporary failure checking recipient, try again later");
  EXPECT_EQ(reply("RCPT TO:<ok@mx.example>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(reply("RCPT TO:<Postmaster>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(asked.back(), "postmaster");
  EXPECT_EQ(host().session.envelope().recipients.size(), 2u);
  EXPECT_EQ(host().session.envelope().recipients[1].address, "postmaster");
  EXPECT_EQ(host().session.error_count(), 0u);  // policy refusals are not protocol errors
}

TEST_P(SessionTest, RefusedRecipientsDoNotUseUpTheErrorLimit) {
  // A list message with more stale addresses than max_errors still reaches the valid ones.
  config_.limits.max_errors = 3;
  config_.check_recipient = [](std::string_view address, std::string_view) {
    return address.starts_with("gone") ? RecipientVerdict::kUnknownUser : RecipientVerdict::kAccept;
  };
  start();
  reply("EHLO c\r\n");
  reply("MAIL FROM:<list@b.example>\r\n");
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(reply("RCPT TO:<gone" + std::to_string(i) + "@mx.example>\r\n").substr(0, 9),
              "550 5.1.1");
  }
  EXPECT_EQ(reply("RCPT TO:<ok@mx.example>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(reply("DATA\r\n").substr(0, 3), "354");
  EXPECT_EQ(reply("Subject: x\r\n\r\nbody\r\n.\r\n"), "250 2.0.0 Ok: queued as Q1");
  EXPECT_FALSE(host().closed);
}

TEST_P(SessionTest, TooManyRefusedRecipientsCloses) {
  // Address harvesting still ends: more refusals than max_recipients without a message.
  config_.limits.max_recipients = 5;
  config_.check_recipient = [](std::string_view, std::string_view) {
    return RecipientVerdict::kUnknownUser;
  };
  start();
  reply("EHLO c\r\n");
  reply("MAIL FROM:<a@b.example>\r\n");
  for (int i = 0; i < 5; ++i)
    reply("RCPT TO:<u" + std::to_string(i) + "@mx.example>\r\n");
  send("RCPT TO:<u5@mx.example>\r\n");
  auto replies = host().replies();
  EXPECT_EQ(replies.back(),
            "421 4.7.0 mx.example Too many rejected recipients, closing connection");
  EXPECT_TRUE(host().closed);
}

TEST_P(SessionTest, AnAcceptedMessageResetsTheErrorCount) {
  config_.limits.max_errors = 3;
  start();
  reply("EHLO c\r\n");
  for (int round = 0; round < 3; ++round) {
    EXPECT_EQ(reply("FOO\r\n"), "500 5.5.1 Command unrecognized");
    EXPECT_EQ(reply("BAR\r\n"), "500 5.5.1 Command unrecognized");
    reply("MAIL FROM:<a@b.example>\r\n");
    reply("RCPT TO:<ok@mx.example>\r\n");
    reply("DATA\r\n");
    EXPECT_EQ(reply("body\r\n.\r\n").substr(0, 3), "250") << round;
    EXPECT_EQ(host().session.error_count(), 0u);
  }
  EXPECT_FALSE(host().closed);
}

TEST_P(SessionTest, RecipientSyntax) {
  start();
  reply("EHLO c\r\n");
  reply("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(reply("RCPT TO:<b@-mx.example>\r\n"),
            "501 5.1.3 Bad recipient address syntax: domain label starts or ends with '-'");
  EXPECT_EQ(reply("RCPT TO:<b@" + std::string(64, 'x') + ".example>\r\n"),
            "501 5.1.3 Bad recipient address syntax: domain label longer than 63 octets");
  EXPECT_EQ(reply("RCPT TO:<>\r\n"), "501 5.1.3 Bad recipient address syntax: empty address");
  EXPECT_EQ(reply("RCPT FROM:<b@mx.example>\r\n"), "501 5.5.2 Syntax: RCPT TO:<address>");
  EXPECT_EQ(reply("RCPT TO: <b@mx.example>\r\n"), "250 2.1.5 Ok");
}

TEST_P(SessionTest, TooManyRecipients) {
  config_.limits.max_recipients = 2;
  start();
  reply("EHLO c\r\n");
  reply("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(reply("RCPT TO:<1@mx.example>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(reply("RCPT TO:<2@mx.example>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(reply("RCPT TO:<3@mx.example>\r\n"), "452 4.5.3 Too many recipients");
  EXPECT_EQ(host().session.envelope().recipients.size(), 2u);
  EXPECT_EQ(host().session.error_count(), 0u);
}

TEST_P(SessionTest, DataWithoutAcceptedRecipients) {
  config_.check_recipient = [](std::string_view, std::string_view) {
    return RecipientVerdict::kUnknownUser;
  };
  start();
  send("EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@mx.example>\r\nDATA\r\n");
  EXPECT_EQ(host().replies().back(), "554 5.5.1 No valid recipients");
  EXPECT_EQ(host().begins, 0);
}

// ---- limits -----------------------------------------------------------------------------

TEST_P(SessionTest, CommandLineTooLong) {
  config_.limits.max_command_line = 64;
  start();
  std::string long_line = "NOOP " + std::string(200, 'x') + "\r\n";
  EXPECT_EQ(reply(long_line), "500 5.5.2 Line too long (limit 64 octets incl. CRLF)");
  EXPECT_EQ(reply("NOOP\r\n"), "250 2.0.0 Ok");
  // Exactly at the limit is fine.
  std::string at_limit = "NOOP " + std::string(64 - 7, 'y') + "\r\n";
  ASSERT_EQ(at_limit.size(), 64u);
  EXPECT_EQ(reply(at_limit), "250 2.0.0 Ok");
}

TEST_P(SessionTest, BareLineEndsInCommands) {
  start();
  EXPECT_EQ(reply("NOOP\n"), "500 5.5.2 Bare LF in command (CRLF required)");
  EXPECT_EQ(reply("NO\rOP\r\n"), "500 5.5.2 Bare CR in command (CRLF required)");
  EXPECT_EQ(reply("NOOP\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(host().session.error_count(), 2u);
}

TEST_P(SessionTest, TextLineTooLong) {
  config_.limits.max_text_line = 20;
  start();
  ehlo_mail_rcpt();
  auto replies = exchange("DATA\r\nshort\r\n" + std::string(30, 'x') + "\r\nend\r\n.\r\n");
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[1], "550 5.6.0 Line too long in message (limit 20 octets incl. CRLF)");
  EXPECT_EQ(host().aborts, 1);
  EXPECT_TRUE(host().messages.empty());
  EXPECT_EQ(reply("NOOP\r\n"), "250 2.0.0 Ok");
}

TEST_P(SessionTest, BareLfInDataIsRefused) {
  start();
  ehlo_mail_rcpt();
  auto replies = exchange("DATA\r\nline one\nline two\r\n.\r\n");
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[1], "554 5.6.0 Bare CR or LF in message (only CRLF line endings allowed)");
  EXPECT_TRUE(host().messages.empty());
}

TEST_P(SessionTest, BareLineEndingsNormalizedWhenAllowed) {
  config_.limits.normalize_bare_line_endings = true;
  start();
  ehlo_mail_rcpt();
  auto replies = exchange("DATA\r\nline one\nline two\rthree\r\n.\r\n");
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[1], "250 2.0.0 Ok: queued as Q1");
  EXPECT_EQ(host().messages[0], "line one\r\nline two\r\nthree\r\n");
}

// SMTP smuggling: "\n.\r\n", "\r\n.\n", "\r.\r" never end data, so the "smuggled"
// commands never become commands.
TEST_P(SessionTest, SmugglingSequencesDoNotEndData) {
  for (std::string_view end : {"\n.\r\n", "\r\n.\n", "\r.\r", "\n.\n", "\r.\r\n"}) {
    for (bool normalize : {false, true}) {
      config_.limits.normalize_bare_line_endings = normalize;
      start();
      ehlo_mail_rcpt();
      std::string smuggled = "DATA\r\nfirst" + std::string(end) +
                             "MAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@mx.example>\r\n"
                             "DATA\r\nforged\r\n.\r\n";
      auto replies = exchange(smuggled);
      ASSERT_EQ(replies.size(), 2u) << end << normalize;
      EXPECT_EQ(replies[0].substr(0, 3), "354");
      if (normalize) {
        EXPECT_EQ(replies[1], "250 2.0.0 Ok: queued as Q1");
        ASSERT_EQ(host().messages.size(), 1u);
        EXPECT_TRUE(contains(host().messages[0], "MAIL FROM:<evil@x.example>\r\n"));
      } else {
        EXPECT_EQ(replies[1].substr(0, 9), "554 5.6.0");
        EXPECT_TRUE(host().messages.empty());
      }
    }
  }
}

TEST_P(SessionTest, TooManyErrorsCloses) {
  config_.limits.max_errors = 3;
  start();
  send("FOO\r\nBAR\r\nBAZ\r\nNOOP\r\n");
  auto replies = host().replies();
  ASSERT_EQ(replies.size(), 5u);
  EXPECT_EQ(replies[3], "500 5.5.1 Command unrecognized");
  EXPECT_EQ(replies[4], "421 4.7.0 mx.example Too many errors, closing connection");
  EXPECT_TRUE(host().closed);
  EXPECT_EQ(host().session.next(), Action::kClose);
}

TEST_P(SessionTest, TimeoutAndShutdown) {
  start();
  host().session.timeout();
  host().run();
  EXPECT_EQ(host().replies().back(), "421 4.4.2 mx.example Timeout, closing");
  EXPECT_TRUE(host().closed);
  host().session.timeout();
  host().session.receive("NOOP\r\n");
  EXPECT_EQ(host().session.next(), Action::kClose);
  EXPECT_TRUE(host().session.pending_output().empty());

  start();
  host().session.shutdown();
  host().run();
  EXPECT_EQ(host().replies().back(),
            "421 4.3.2 mx.example Service shutting down, closing connection");
  EXPECT_TRUE(host().closed);
}

// A connection over a limit is refused with the session's own 421 before any greeting.
TEST(ServerSessionRefusal, IsOne421LineWithTheHostname) {
  std::string out = "kept";
  ServerSession::append_refusal(out, "mx.example", "Too many connections, try again later");
  EXPECT_EQ(out, "kept421 4.7.0 mx.example Too many connections, try again later\r\n");
}

TEST_P(SessionTest, TimeoutDuringDataAbortsTheMessage) {
  start();
  ehlo_mail_rcpt();
  send("DATA\r\npartial body\r\n");
  host().session.timeout();
  host().run();
  EXPECT_EQ(host().aborts, 1);
  EXPECT_TRUE(host().closed);
  EXPECT_EQ(host().replies().back(), "421 4.4.2 mx.example Timeout, closing");
}

TEST_P(SessionTest, EofDuringDataAbortsWithoutReply) {
  start();
  ehlo_mail_rcpt();
  send("DATA\r\npartial");
  std::size_t replies = host().replies().size();
  host().eof();
  EXPECT_EQ(host().aborts, 1);
  EXPECT_TRUE(host().closed);
  EXPECT_EQ(host().replies().size(), replies);
}

TEST_P(SessionTest, EofProcessesBufferedCommandsFirst) {
  start();
  host().session.receive("EHLO c\r\nNOOP\r\nincomplete");
  host().session.receive_eof();
  host().run();
  EXPECT_EQ(host().codes(), (std::vector<int>{220, 250, 250}));
  EXPECT_TRUE(host().closed);
}

// ---- HTTP (ALPACA) ----------------------------------------------------------------------

TEST_P(SessionTest, HttpRequestClosesSilently) {
  for (std::string_view request : {"GET / HTTP/1.1\r\n", "POST /x HTTP/1.1\r\n",
                                   "CONNECT a:443 HTTP/1.1\r\n", "Host: mx.example\r\n"}) {
    start();
    send(request);
    EXPECT_TRUE(host().closed) << request;
    EXPECT_TRUE(host().session.closed_as_http()) << request;
    EXPECT_EQ(host().output, "220 mx.example ESMTP smtpsd\r\n") << request;
  }
}

TEST_P(SessionTest, HttpMethodLaterIsJustUnknown) {
  start();
  EXPECT_EQ(reply("NOOP\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(reply("GET / HTTP/1.1\r\n"), "500 5.5.1 Command unrecognized");
  EXPECT_FALSE(host().session.closed_as_http());
  send("User-Agent: curl\r\n");  // a header line at any time still closes
  EXPECT_TRUE(host().session.closed_as_http());
}

// ---- STARTTLS ---------------------------------------------------------------------------

TEST_P(SessionTest, StarttlsDropsInjectedCommands) {
  start();
  reply("EHLO c\r\n");
  // Always one receive: the plaintext after STARTTLS arrives with it (CVE-2011-0411).
  host().send("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<v@mx.example>\r\n");
  EXPECT_EQ(host().replies().back(), "220 2.0.0 Ready to start TLS");
  EXPECT_EQ(host().starttls, 1);
  EXPECT_TRUE(host().session.tls_active());
  EXPECT_EQ(host().session.envelope().helo, "");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Error: send HELO/EHLO first");
  send("EHLO c\r\n");
  EXPECT_FALSE(contains(host().output.substr(host().output.rfind("250-mx.example")), "STARTTLS"));
  EXPECT_EQ(host().session.with_protocol(), "ESMTPS");
  EXPECT_EQ(reply("STARTTLS\r\n"), "503 5.5.1 TLS already active");
}

// gsasl sends STARTTLS right after the greeting; RFC 3207 does not forbid it.
TEST_P(SessionTest, StarttlsRightAfterTheGreetingStartsTls) {
  for (TlsMode mode : {TlsMode::kStartTlsOptional, TlsMode::kStartTlsRequired}) {
    config_.tls_mode = mode;
    start();
    host().send("STARTTLS\r\nEHLO evil\r\n");  // plaintext after STARTTLS is dropped
    EXPECT_EQ(host().replies().back(), "220 2.0.0 Ready to start TLS");
    EXPECT_EQ(host().starttls, 1);
    EXPECT_TRUE(host().session.tls_active());
    EXPECT_EQ(host().session.envelope().helo, "");
    EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Error: send HELO/EHLO first");
    send("EHLO c\r\n");
    EXPECT_FALSE(contains(host().output.substr(host().output.rfind("250-mx.example")), "STARTTLS"));
    EXPECT_EQ(reply("STARTTLS\r\n"), "503 5.5.1 TLS already active");
    EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
  }
}

// RFC 8689 §2: REQUIRETLS is advertised, and taken on MAIL, only inside TLS.
TEST_P(SessionTest, RequireTlsIsOfferedAndTakenInsideTlsOnly) {
  start();
  send("EHLO c\r\n");
  EXPECT_FALSE(contains(host().output, "REQUIRETLS"));
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> REQUIRETLS\r\n"),
            "555 5.7.10 REQUIRETLS is only accepted inside TLS (STARTTLS first)");
  EXPECT_EQ(reply("STARTTLS\r\n"), "220 2.0.0 Ready to start TLS");
  send("EHLO c\r\n");
  EXPECT_TRUE(
      contains(host().output.substr(host().output.rfind("250-mx.example")), "250-REQUIRETLS\r\n"));
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> REQUIRETLS=YES\r\n"),
            "501 5.5.4 Invalid REQUIRETLS parameter");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> REQUIRETLS requiretls\r\n"),
            "501 5.5.4 Invalid REQUIRETLS parameter");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> requiretls SMTPUTF8\r\n"), "250 2.1.0 Ok");
  EXPECT_TRUE(host().session.envelope().require_tls);
  EXPECT_TRUE(host().session.envelope().smtputf8);
  reply("RSET\r\n");
  EXPECT_FALSE(host().session.envelope().require_tls);
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
  EXPECT_FALSE(host().session.envelope().require_tls);

  // Implicit TLS offers it from the first EHLO; a session without TLS (local) never does.
  config_.tls_mode = TlsMode::kImplicit;
  host_ = std::make_unique<FakeHost>(config_);
  host().session.tls_established(TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", "mx.example"});
  host().start();
  send("EHLO c\r\n");
  EXPECT_TRUE(contains(host().output, "250-REQUIRETLS\r\n"));
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> REQUIRETLS\r\n"), "250 2.1.0 Ok");
  config_.tls_mode = TlsMode::kNone;
  start();
  send("EHLO c\r\n");
  EXPECT_FALSE(contains(host().output, "REQUIRETLS"));
  EXPECT_TRUE(reply("MAIL FROM:<a@b.example> REQUIRETLS\r\n").starts_with("555 5.7.10 "));
}

TEST_P(SessionTest, StarttlsBeforeEhloStillNeedsItOffered) {
  config_.tls_mode = TlsMode::kImplicit;
  host_ = std::make_unique<FakeHost>(config_);
  host().session.tls_established(TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", "mx.example"});
  host().start();
  EXPECT_EQ(reply("STARTTLS\r\n"), "503 5.5.1 TLS already active");
  EXPECT_EQ(host().starttls, 0);
}

TEST_P(SessionTest, StarttlsErrors) {
  start();
  EXPECT_EQ(reply("STARTTLS now\r\n"), "501 5.5.4 Syntax: STARTTLS (no parameters)");
  reply("HELO c\r\n");
  EXPECT_EQ(reply("STARTTLS\r\n"), "503 5.5.1 Error: send EHLO first");
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("STARTTLS now\r\n"), "501 5.5.4 Syntax: STARTTLS (no parameters)");
  reply("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(reply("STARTTLS\r\n"), "503 5.5.1 Error: MAIL transaction in progress");
}

TEST_P(SessionTest, TlsRequiredBeforeMail) {
  config_.tls_mode = TlsMode::kStartTlsRequired;
  start();
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "530 5.7.0 Must issue a STARTTLS command first");
  EXPECT_EQ(reply("VRFY x\r\n"), "530 5.7.0 Must issue a STARTTLS command first");
  EXPECT_EQ(reply("NOOP\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(reply("HELP\r\n").substr(0, 3), "214");
  // A refused BDAT still has its chunk read and dropped.
  EXPECT_EQ(reply("BDAT 6\r\nQUIT\r\n"), "530 5.7.0 Must issue a STARTTLS command first");
  EXPECT_FALSE(host().closed);
  EXPECT_EQ(reply("STARTTLS\r\n"), "220 2.0.0 Ready to start TLS");
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
}

TEST_P(SessionTest, SubmissionWithoutAuthRefusesMail) {
  config_.require_auth = true;
  start();
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "530 5.7.0 Authentication required");
}

TEST_P(SessionTest, FailedHandshakeClosesNothingElse) {
  start();
  host().establish_tls = false;
  send("EHLO c\r\nSTARTTLS\r\n");
  EXPECT_EQ(host().starttls, 1);
  EXPECT_EQ(host().session.next(), Action::kStartTls);  // still waiting for the handshake
}

// ---- BDAT (RFC 3030) --------------------------------------------------------------------

TEST_P(SessionTest, BdatChunks) {
  start();
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("BDAT 5\r\nhello"), "250 2.0.0 5 octets received");
  EXPECT_EQ(host().session.waiting(), Waiting::kCommand);
  EXPECT_EQ(reply("BDAT 8\r\n\r\nQUIT\r\n"),
            "250 2.0.0 8 octets received");  // payload, not commands
  EXPECT_EQ(reply("BDAT 7 LAST\r\n world\n"),
            "554 5.6.0 Bare CR or LF in message (only CRLF line endings allowed)");
  EXPECT_EQ(host().aborts, 1);
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("BDAT 5\r\nhello"), "250 2.0.0 5 octets received");
  EXPECT_EQ(reply("BDAT 8 LAST\r\n world\r\n"), "250 2.0.0 Ok: queued as Q1");
  ASSERT_EQ(host().messages.size(), 1u);
  EXPECT_EQ(host().messages[0], "hello world\r\n");
  EXPECT_FALSE(host().closed);
}

TEST_P(SessionTest, BdatEmptyLastChunk) {
  start();
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("BDAT 0 LAST\r\n"), "250 2.0.0 Ok: queued as Q1");
  ASSERT_EQ(host().messages.size(), 1u);
  EXPECT_EQ(host().messages[0], "");
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("BDAT 5\r\na\r\n\r\n"), "250 2.0.0 5 octets received");
  EXPECT_EQ(reply("BDAT 0 last\r\n"), "250 2.0.0 Ok: queued as Q2");
  ASSERT_EQ(host().messages.size(), 2u);
  EXPECT_EQ(host().messages[1], "a\r\n\r\n");
}

TEST_P(SessionTest, BdatAndDataDoNotMix) {
  start();
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("BDAT 3\r\nab\r"), "250 2.0.0 3 octets received");
  EXPECT_EQ(reply("DATA\r\n"), "503 5.5.1 Error: DATA cannot follow BDAT in the same transaction");
  EXPECT_EQ(reply("RCPT TO:<c@mx.example>\r\n"),
            "503 5.5.1 Error: BDAT transfer in progress (send BDAT ... LAST or RSET)");
  EXPECT_EQ(reply("RSET\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(host().aborts, 1);  // RSET discarded the open spool file
}

TEST_P(SessionTest, RefusedBdatStillConsumesItsChunk) {
  start();
  reply("EHLO c\r\n");
  EXPECT_EQ(reply("BDAT 6\r\nRSET\r\n"), "503 5.5.1 Error: need MAIL command");
  reply("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(reply("BDAT 6 LAST\r\nQUIT\r\n"), "554 5.5.1 No valid recipients");
  EXPECT_FALSE(host().closed);
  EXPECT_EQ(host().begins, 0);
}

TEST_P(SessionTest, BdatSizeLimit) {
  config_.limits.max_message_size = 10;
  start();
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("BDAT 11\r\n0123456789A"),
            "552 5.3.4 Message size exceeds fixed maximum message size");
  EXPECT_EQ(host().begins, 0);
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("BDAT 6\r\n01234\n"),
            "554 5.6.0 Bare CR or LF in message (only CRLF line endings allowed)");
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("BDAT 6\r\n0123\r\n"), "250 2.0.0 6 octets received");
  EXPECT_EQ(reply("BDAT 6 LAST\r\n0123\r\n"),
            "552 5.3.4 Message size exceeds fixed maximum message size");
  EXPECT_EQ(host().aborts, 2);
  EXPECT_EQ(reply("BDAT 2 LAST\r\nab"), "503 5.5.1 Error: need MAIL command");
  EXPECT_TRUE(host().messages.empty());
}

TEST_P(SessionTest, BdatWithoutSizeCloses) {
  start();
  ehlo_mail_rcpt();
  send("BDAT many\r\nQUIT\r\n");
  EXPECT_EQ(host().replies().back(),
            "421 4.5.2 mx.example Syntax: BDAT <size> [LAST], closing connection");
  EXPECT_TRUE(host().closed);
}

TEST_P(SessionTest, BdatPipelined) {
  start();
  send(
      "EHLO c\r\nMAIL FROM:<a@c.example> BODY=BINARYMIME\r\nRCPT TO:<b@mx.example>\r\n"
      "BDAT 3\r\n\x00\x01\x02"
      "BDAT 2 LAST\r\n\r\rQUIT\r\n"s);
  EXPECT_EQ(host().codes(), (std::vector<int>{220, 250, 250, 250, 250, 250, 221}));
  ASSERT_EQ(host().messages.size(), 1u);
  EXPECT_EQ(host().messages[0], "\x00\x01\x02\r\r"s);
}

// ---- host failures ----------------------------------------------------------------------

TEST_P(SessionTest, SpoolOpenFailureReplacesThe354) {
  start();
  host().fail_begin = Reply{451, "4.3.0", "Queue unavailable"};
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("DATA\r\n"), "451 4.3.0 Queue unavailable");
  EXPECT_EQ(reply("RCPT TO:<b@mx.example>\r\n"), "503 5.5.1 Error: need MAIL command");
}

TEST_P(SessionTest, SpoolWriteFailureRepliesAfterTheBody) {
  start();
  host().fail_data = Reply{452, "4.3.1", "Disk full"};
  ehlo_mail_rcpt();
  auto replies = exchange("DATA\r\nbody\r\n.\r\n");
  ASSERT_EQ(replies.size(), 2u);
  EXPECT_EQ(replies[1], "452 4.3.1 Disk full");
  EXPECT_EQ(host().aborts, 0);  // the host closed its own writer
  EXPECT_EQ(host().session.error_count(), 0u);
}

TEST_P(SessionTest, CommitFailure) {
  start();
  host().fail_commit = Reply{451, "4.3.0", "fsync failed"};
  ehlo_mail_rcpt();
  auto replies = exchange("DATA\r\nbody\r\n.\r\nNOOP\r\n");
  ASSERT_EQ(replies.size(), 3u);
  EXPECT_EQ(replies[1], "451 4.3.0 fsync failed");
  EXPECT_EQ(replies[2], "250 2.0.0 Ok");
  host().fail_commit.reset();
  host().fail_begin = Reply{250, "2.0.0", "not a failure"};
  ehlo_mail_rcpt();
  EXPECT_EQ(reply("BDAT 3 LAST\r\nabc"), "451 4.3.0 not a failure");  // coerced to 4xx
}

TEST_P(SessionTest, ImproperPipeliningIsCounted) {
  start();
  send("EHLO c\r\nNOOP\r\nNOOP\r\n");
  EXPECT_EQ(host().session.improper_pipelining_count(), GetParam() ? 0u : 2u);
}

// ---- AUTH (RFC 4954) ---------------------------------------------------------------------

using testing::AuthAnswer;

std::string base64(std::string_view raw) {
  static constexpr std::string_view kAlphabet =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  std::size_t i = 0;
  for (; i + 3 <= raw.size(); i += 3) {
    unsigned group = static_cast<unsigned char>(raw[i]) << 16 |
                     static_cast<unsigned char>(raw[i + 1]) << 8 |
                     static_cast<unsigned char>(raw[i + 2]);
    for (int shift : {18, 12, 6, 0})
      out.push_back(kAlphabet[group >> shift & 63]);
  }
  if (raw.size() - i == 1) {
    unsigned group = static_cast<unsigned char>(raw[i]) << 16;
    out += std::string{kAlphabet[group >> 18 & 63], kAlphabet[group >> 12 & 63]} + "==";
  } else if (raw.size() - i == 2) {
    unsigned group =
        static_cast<unsigned char>(raw[i]) << 16 | static_cast<unsigned char>(raw[i + 1]) << 8;
    out += std::string{kAlphabet[group >> 18 & 63], kAlphabet[group >> 12 & 63],
                       kAlphabet[group >> 6 & 63], '='};
  }
  return out;
}

const std::string kPlainDemo = "\0demo\0secret"s;

class AuthTest : public SessionTest {
 protected:
  AuthTest() {
    config_.tls_mode = TlsMode::kImplicit;
    config_.auth_mechanisms = {"SCRAM-SHA-256", "PLAIN", "LOGIN"};
  }
  // Implicit TLS (submissions): the handshake completes before the greeting.
  void start_tls() {
    host_ = std::make_unique<FakeHost>(config_);
    host().session.tls_established(TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", "mx.example"});
    host().start();
    ASSERT_TRUE(reply("EHLO client.example\r\n").starts_with("250 "));
  }
  // AUTH PLAIN with an initial response, answered with success.
  void authenticate(std::string_view user = "demo") {
    host().auth_answers.push_back(AuthAnswer::success(std::string(user)));
    ASSERT_EQ(reply("AUTH PLAIN " + base64(kPlainDemo) + "\r\n"),
              "235 2.7.0 Authentication successful");
  }
  const testing::AuthRequest& last_request() { return host().auth_requests.back(); }
  // The replies produced since `before` replies had been seen.
  std::vector<std::string> replies_since(std::size_t before) {
    auto all = host().replies();
    return std::vector<std::string>(all.begin() + static_cast<std::ptrdiff_t>(before), all.end());
  }
};

INSTANTIATE_TEST_SUITE_P(WholeAndBytewise, AuthTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Bytewise" : "Whole";
                         });

TEST_P(AuthTest, AdvertisedOnlyAfterTls) {
  config_.tls_mode = TlsMode::kStartTlsRequired;
  start();
  send("EHLO c\r\n");
  EXPECT_FALSE(contains(host().output, "AUTH"));
  EXPECT_EQ(reply("STARTTLS\r\n"), "220 2.0.0 Ready to start TLS");
  std::size_t before = host().output.size();
  send("EHLO c\r\n");
  std::string ehlo = host().output.substr(before);
  EXPECT_TRUE(contains(ehlo, "250 AUTH SCRAM-SHA-256 PLAIN LOGIN\r\n")) << ehlo;
  EXPECT_FALSE(contains(ehlo, "STARTTLS"));
}

TEST_P(AuthTest, NeverAdvertisedWithoutMechanisms) {
  config_.auth_mechanisms.clear();
  start_tls();
  EXPECT_FALSE(contains(host().output, "AUTH"));
  // The smtp role: the verb does not exist there.
  EXPECT_EQ(reply("AUTH PLAIN " + base64(kPlainDemo) + "\r\n"),
            "502 5.5.1 AUTH not supported on this port");
  EXPECT_TRUE(host().auth_requests.empty());
  // Nor does the longer AUTH line limit.
  EXPECT_EQ(reply("AUTH PLAIN " + std::string(3000, 'A') + "\r\n"),
            "500 5.5.2 Line too long (limit 2048 octets incl. CRLF)");
}

TEST_P(AuthTest, RefusedBeforeTls) {
  for (TlsMode mode : {TlsMode::kStartTlsOptional, TlsMode::kStartTlsRequired}) {
    config_.tls_mode = mode;
    start();
    reply("EHLO c\r\n");
    EXPECT_EQ(reply("AUTH PLAIN " + base64(kPlainDemo) + "\r\n"),
              "530 5.7.0 Must issue a STARTTLS command first");
    EXPECT_EQ(reply("AUTH LOGIN\r\n"), "530 5.7.0 Must issue a STARTTLS command first");
    EXPECT_TRUE(host().auth_requests.empty());
    EXPECT_EQ(host().session.error_count(), 2u);
  }
}

TEST_P(AuthTest, PlainWithInitialResponseThenMail) {
  config_.require_auth = true;
  std::vector<std::string> users;
  config_.check_recipient = [&users](std::string_view, std::string_view user) {
    users.emplace_back(user);
    return RecipientVerdict::kAccept;
  };
  start_tls();
  EXPECT_EQ(reply("MAIL FROM:<demo@example.org>\r\n"), "530 5.7.0 Authentication required");
  EXPECT_EQ(host().session.with_protocol(), "ESMTPS");
  EXPECT_TRUE(exchange("AUTH plain " + base64(kPlainDemo) + "\r\n").empty());
  ASSERT_TRUE(host().auth_waiting);
  ASSERT_EQ(host().auth_requests.size(), 1u);
  EXPECT_EQ(last_request().mechanism, "PLAIN");
  EXPECT_TRUE(last_request().starting);
  EXPECT_TRUE(last_request().has_response);
  EXPECT_EQ(last_request().response, kPlainDemo);
  EXPECT_EQ(host().session.next(), Action::kAuthenticate);  // still waiting for the host
  host().answer_and_run(AuthAnswer::success("demo"));
  EXPECT_EQ(host().replies().back(), "235 2.7.0 Authentication successful");
  EXPECT_EQ(host().session.authenticated_user(), "demo");
  EXPECT_EQ(host().session.with_protocol(), "ESMTPSA");
  EXPECT_EQ(reply("MAIL FROM:<demo@example.org>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(reply("RCPT TO:<friend@elsewhere.example>\r\n"), "250 2.1.5 Ok");
  EXPECT_EQ(exchange("DATA\r\nhi\r\n.\r\n").back(), "250 2.0.0 Ok: queued as Q1");
  ASSERT_EQ(users.size(), 1u);
  EXPECT_EQ(users[0], "demo");
  // RSET does not forget the authentication; a new EHLO neither.
  EXPECT_EQ(reply("RSET\r\n"), "250 2.0.0 Ok");
  reply("EHLO again\r\n");
  EXPECT_EQ(reply("MAIL FROM:<demo@example.org>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.authenticated_user(), "demo");
  EXPECT_EQ(host().session.error_count(), 0u);  // the 530 was forgiven by the accepted message
}

TEST_P(AuthTest, EmptyInitialResponse) {
  start_tls();
  send("AUTH PLAIN =\r\n");
  ASSERT_TRUE(host().auth_waiting);
  EXPECT_TRUE(last_request().has_response);
  EXPECT_EQ(last_request().response, "");
  host().answer_and_run(
      AuthAnswer::failure(Reply{535, "5.7.8", "Authentication credentials invalid"}));
  EXPECT_EQ(host().replies().back(), "535 5.7.8 Authentication credentials invalid");
}

TEST_P(AuthTest, NoInitialResponseGetsAnEmptyChallenge) {
  start_tls();
  EXPECT_TRUE(exchange("AUTH PLAIN\r\n").empty());
  ASSERT_TRUE(host().auth_waiting);
  EXPECT_EQ(last_request().mechanism, "PLAIN");
  EXPECT_TRUE(last_request().starting);
  EXPECT_FALSE(last_request().has_response);
  host().answer_and_run(AuthAnswer::challenge(""));
  EXPECT_EQ(host().lines().back(), "334 ");
  EXPECT_FALSE(host().auth_waiting);
  EXPECT_TRUE(exchange(base64(kPlainDemo) + "\r\n").empty());
  ASSERT_EQ(host().auth_requests.size(), 2u);
  EXPECT_FALSE(last_request().starting);
  EXPECT_TRUE(last_request().has_response);
  EXPECT_EQ(last_request().mechanism, "PLAIN");
  EXPECT_EQ(last_request().response, kPlainDemo);
  host().answer_and_run(AuthAnswer::success("demo"));
  EXPECT_EQ(host().replies().back(), "235 2.7.0 Authentication successful");
}

TEST_P(AuthTest, MultiStepChallenges) {
  start_tls();
  host().auth_answers = {AuthAnswer::challenge("Username:"), AuthAnswer::challenge("Password:")};
  EXPECT_EQ(reply("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6");
  EXPECT_EQ(reply("ZGVtbw==\r\n"), "334 UGFzc3dvcmQ6");
  EXPECT_TRUE(exchange("c2VjcmV0\r\n").empty());
  ASSERT_EQ(host().auth_requests.size(), 3u);
  EXPECT_EQ(host().auth_requests[0].mechanism, "LOGIN");
  EXPECT_FALSE(host().auth_requests[0].has_response);
  EXPECT_EQ(host().auth_requests[1].response, "demo");
  EXPECT_FALSE(host().auth_requests[1].starting);
  EXPECT_EQ(host().auth_requests[2].response, "secret");
  host().answer_and_run(AuthAnswer::success("demo"));
  EXPECT_EQ(host().replies().back(), "235 2.7.0 Authentication successful");
  // An empty line answers an (empty) challenge with an empty response.
  start_tls();
  host().auth_answers = {AuthAnswer::challenge("")};
  EXPECT_EQ(reply("AUTH SCRAM-SHA-256\r\n"), "334 ");
  send("\r\n");
  EXPECT_TRUE(last_request().has_response);
  EXPECT_EQ(last_request().response, "");
  EXPECT_EQ(last_request().mechanism, "SCRAM-SHA-256");
}

TEST_P(AuthTest, StarCancels) {
  start_tls();
  host().auth_answers = {AuthAnswer::challenge("Username:")};
  EXPECT_EQ(reply("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6");
  EXPECT_EQ(reply("*\r\n"), "501 5.0.0 Authentication cancelled");
  EXPECT_EQ(host().auth_requests.size(), 1u);
  EXPECT_EQ(host().session.error_count(), 1u);
  EXPECT_EQ(host().session.authenticated_user(), "");
  EXPECT_EQ(reply("NOOP\r\n"), "250 2.0.0 Ok");  // a command again, not a response
  // A new exchange can start.
  send("AUTH LOGIN\r\n");
  ASSERT_EQ(host().auth_requests.size(), 2u);
  EXPECT_TRUE(last_request().starting);
}

TEST_P(AuthTest, BadBase64) {
  start_tls();
  EXPECT_EQ(reply("AUTH PLAIN abc\r\n"), "501 5.5.2 Cannot decode response");
  EXPECT_EQ(reply("AUTH PLAIN AGE=AYg=\r\n"), "501 5.5.2 Cannot decode response");
  EXPECT_EQ(reply("AUTH PLAIN *\r\n"), "501 5.5.2 Cannot decode response");
  EXPECT_TRUE(host().auth_requests.empty());
  host().auth_answers = {AuthAnswer::challenge("Username:")};
  EXPECT_EQ(reply("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6");
  EXPECT_EQ(reply("ZGVtbw\r\n"), "501 5.5.2 Cannot decode response");
  EXPECT_EQ(reply("NOOP\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(host().auth_requests.size(), 1u);
  EXPECT_EQ(host().session.error_count(), 4u);
}

// The session refuses undecodable responses itself; the host is told (to count them as
// failed attempts), with the mechanism, each time — and not for a cancel ("*").
TEST_P(AuthTest, BadBase64IsReportedToTheMalformedAuthObserver) {
  std::vector<std::string> reported;
  start_tls();
  host().session.set_malformed_auth_observer(
      [&](std::string_view mechanism) { reported.emplace_back(mechanism); });
  EXPECT_EQ(reply("AUTH PLAIN abc\r\n"), "501 5.5.2 Cannot decode response");
  host().auth_answers = {AuthAnswer::challenge("Username:"), AuthAnswer::challenge("Username:")};
  EXPECT_EQ(reply("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6");
  EXPECT_EQ(reply("ZGVtbw\r\n"), "501 5.5.2 Cannot decode response");
  EXPECT_EQ(reply("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6");
  EXPECT_EQ(reply("*\r\n"), "501 5.0.0 Authentication cancelled");
  EXPECT_EQ(reported, (std::vector<std::string>{"PLAIN", "LOGIN"}));
}

TEST_P(AuthTest, Syntax) {
  start_tls();
  EXPECT_EQ(reply("AUTH\r\n"), "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
  EXPECT_EQ(reply("AUTH PLAIN a b\r\n"), "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
  EXPECT_EQ(reply("AUTH PLAIN  AGE=\r\n"), "501 5.5.4 Syntax: AUTH mechanism [initial-response]");
  EXPECT_EQ(reply("AUTH CRAM-MD5\r\n"), "504 5.5.4 Unrecognized authentication type");
  EXPECT_EQ(reply("AUTH SCRAM-SHA-256-PLUS biws\r\n"),
            "504 5.5.4 Unrecognized authentication type");
  EXPECT_TRUE(host().auth_requests.empty());
}

TEST_P(AuthTest, LinesOverTheAuthLimit) {
  start_tls();
  // 12288 octets incl. CRLF is still a line (here undecodable: 12275 base64 characters)...
  std::string at_limit = "AUTH PLAIN " + std::string(12288 - 13, 'A') + "\r\n";
  ASSERT_EQ(at_limit.size(), 12288u);
  EXPECT_EQ(reply(at_limit), "501 5.5.2 Cannot decode response");
  // ... one more is too long, and is dropped without being buffered whole.
  std::string over = "AUTH PLAIN " + std::string(12288 - 12, 'A') + "\r\n";
  EXPECT_EQ(reply(over), "500 5.5.6 Authentication Exchange line is too long");
  std::string far_over = "AUTH PLAIN " + std::string(100000, 'A') + "\r\n";
  EXPECT_EQ(reply(far_over), "500 5.5.6 Authentication Exchange line is too long");
  EXPECT_EQ(reply("NOOP\r\n"), "250 2.0.0 Ok");
  EXPECT_TRUE(host().auth_requests.empty());
  // A response line: the same limit.
  host().auth_answers = {AuthAnswer::challenge(""), AuthAnswer::challenge("")};
  EXPECT_EQ(reply("AUTH PLAIN\r\n"), "334 ");
  EXPECT_EQ(reply(std::string(12287, 'A') + "\r\n"),
            "500 5.5.6 Authentication Exchange line is too long");
  EXPECT_EQ(reply("NOOP\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(reply("AUTH PLAIN\r\n"), "334 ");
  std::string response = base64(std::string(9000, 'x'));  // 12000 octets: fine
  EXPECT_TRUE(exchange(response + "\r\n").empty());
  EXPECT_EQ(last_request().response, std::string(9000, 'x'));
  // Other command lines keep their own limit.
  host().answer_and_run(AuthAnswer::failure(Reply{535, "5.7.8", "no"}));
  EXPECT_EQ(reply("NOOP " + std::string(3000, 'x') + "\r\n"),
            "500 5.5.2 Line too long (limit 2048 octets incl. CRLF)");
}

TEST_P(AuthTest, SequenceErrors) {
  host_ = std::make_unique<FakeHost>(config_);
  host().session.tls_established(TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", ""});
  host().start();  // TLS, but no EHLO yet
  EXPECT_EQ(reply("AUTH LOGIN\r\n"), "503 5.5.1 Error: send HELO/EHLO first");
  reply("HELO c\r\n");
  EXPECT_EQ(reply("AUTH LOGIN\r\n"), "503 5.5.1 Error: send EHLO first");
  reply("EHLO c\r\n");
  reply("MAIL FROM:<a@b.example>\r\n");
  EXPECT_EQ(reply("AUTH LOGIN\r\n"), "503 5.5.1 Error: MAIL transaction in progress");
  reply("RSET\r\n");
  authenticate();
  EXPECT_EQ(reply("AUTH LOGIN\r\n"), "503 5.5.1 Already authenticated");
  EXPECT_EQ(reply("AUTH PLAIN " + base64(kPlainDemo) + "\r\n"), "503 5.5.1 Already authenticated");
  EXPECT_EQ(host().auth_requests.size(), 1u);
}

TEST_P(AuthTest, SenderMustBeOwned) {
  config_.require_auth = true;
  config_.allow_null_sender = false;
  config_.may_send_as = [](std::string_view user, std::string_view sender) {
    return user == "demo" && (sender == "demo@example.org" || sender == "alias@example.org");
  };
  start_tls();
  authenticate();
  EXPECT_EQ(reply("MAIL FROM:<boss@example.org>\r\n"),
            "553 5.7.1 Sender address <boss@example.org> not owned by user <demo>");
  EXPECT_EQ(reply("MAIL FROM:<>\r\n"), "553 5.7.1 Null sender not allowed for submission");
  EXPECT_EQ(reply("MAIL FROM:<alias@example.org>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().reverse_path, "alias@example.org");
  EXPECT_EQ(host().session.error_count(), 2u);
}

TEST_P(AuthTest, UserOverItsMessageRateGets451AtMail) {
  config_.require_auth = true;
  std::vector<std::string> asked;
  bool allowed = false;
  start_tls();
  host().session.set_message_gate([&](std::string_view user) {
    asked.emplace_back(user);
    return allowed;
  });
  authenticate();
  EXPECT_EQ(reply("MAIL FROM:<demo@example.org>\r\n"),
            "451 4.7.1 Too many messages from this user, try again later");
  EXPECT_EQ(asked, std::vector<std::string>{"demo"});
  EXPECT_FALSE(host().session.in_transaction());
  EXPECT_EQ(host().session.error_count(), 0u) << "a policy refusal, not a client error";
  allowed = true;
  EXPECT_EQ(reply("MAIL FROM:<demo@example.org>\r\n"), "250 2.1.0 Ok");
}

TEST_P(AuthTest, NullSenderRefusedWithoutAuthToo) {
  config_.allow_null_sender = false;
  start_tls();
  EXPECT_EQ(reply("MAIL FROM:<>\r\n"), "553 5.7.1 Null sender not allowed for submission");
  // may_send_as is only asked for an authenticated session.
  EXPECT_EQ(reply("MAIL FROM:<x@y.example>\r\n"), "250 2.1.0 Ok");
}

TEST_P(AuthTest, FailureReplyIsPassedThroughAndCounted) {
  config_.limits.max_errors = 3;
  start_tls();
  send("AUTH PLAIN " + base64(kPlainDemo) + "\r\n");
  host().answer_and_run(
      AuthAnswer::failure(Reply{535, "5.7.8", "Authentication credentials invalid"}));
  EXPECT_EQ(host().replies().back(), "535 5.7.8 Authentication credentials invalid");
  EXPECT_EQ(host().session.error_count(), 1u);
  EXPECT_EQ(host().session.authenticated_user(), "");
  EXPECT_EQ(host().session.with_protocol(), "ESMTPS");
  send("AUTH PLAIN " + base64(kPlainDemo) + "\r\n");
  host().answer_and_run(AuthAnswer::failure(Reply{250, "2.0.0", "not a failure"}));
  EXPECT_EQ(host().replies().back(), "454 4.7.0 not a failure");  // coerced to a 4xx
  send("AUTH PLAIN " + base64(kPlainDemo) + "\r\n");
  host().answer_and_run(AuthAnswer::failure(Reply{454, "4.7.0", "Too many failures, try later"}));
  auto replies = host().replies();
  ASSERT_GE(replies.size(), 2u);
  EXPECT_EQ(replies[replies.size() - 2], "454 4.7.0 Too many failures, try later");
  EXPECT_EQ(replies.back(), "421 4.7.0 mx.example Too many errors, closing connection");
  EXPECT_TRUE(host().closed);
}

TEST_P(AuthTest, MailAuthParameter) {
  start_tls();
  // Not authenticated: accepted, but recorded as AUTH=<> (RFC 4954 §5).
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> AUTH=a@b.example\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().auth, "<>");
  reply("RSET\r\n");
  authenticate();
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> AUTH=e+3Dmc2@example.org\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().auth, "e=mc2@example.org");
  reply("RSET\r\n");
  EXPECT_EQ(host().session.envelope().auth, "");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> auth=<>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().auth, "<>");
  reply("RSET\r\n");
  for (std::string_view bad : {"AUTH", "AUTH=", "AUTH=a+zz", "AUTH=a+0Ab", "AUTH=<> AUTH=<>"}) {
    EXPECT_EQ(reply("MAIL FROM:<a@b.example> " + std::string(bad) + "\r\n"),
              "501 5.5.4 Invalid AUTH parameter")
        << bad;
  }
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().auth, "");
}

TEST_P(AuthTest, MailAuthParameterOnlyWhereAuthIsOffered) {
  config_.auth_mechanisms.clear();
  start_tls();
  EXPECT_EQ(reply("MAIL FROM:<a@b.example> AUTH=<>\r\n"),
            "555 5.5.4 MAIL FROM/RCPT TO parameters not recognized or not implemented");
}

TEST_P(AuthTest, PipelinedCommandsWaitForTheExchange) {
  config_.require_auth = true;
  start_tls();
  // The client does not wait for the 334: the MAIL line cannot run as a command; it is
  // read, after the challenge, as the client's response.
  EXPECT_TRUE(exchange("AUTH LOGIN\r\nMAIL FROM:<evil@x.example>\r\nNOOP\r\n").empty());
  ASSERT_TRUE(host().auth_waiting);
  EXPECT_EQ(host().session.next(), Action::kAuthenticate);
  EXPECT_EQ(host().session.envelope().reverse_path, "");
  std::size_t before = host().replies().size();
  host().answer_and_run(AuthAnswer::challenge("Username:"));
  EXPECT_EQ(replies_since(before),
            (std::vector<std::string>{"334 VXNlcm5hbWU6", "501 5.5.2 Cannot decode response",
                                      "250 2.0.0 Ok"}));
  EXPECT_EQ(host().session.envelope().reverse_path, "");
  EXPECT_EQ(host().auth_requests.size(), 1u);
  if (!GetParam()) {
    EXPECT_GE(host().session.improper_pipelining_count(), 1u);
  }
  // PLAIN with an initial response may be followed by MAIL (RFC 4954 §4): it is held
  // until the host has answered, then runs as an authenticated command.
  before = host().replies().size();
  EXPECT_TRUE(exchange("AUTH PLAIN " + base64(kPlainDemo) + "\r\nMAIL FROM:<demo@example.org>\r\n")
                  .empty());
  ASSERT_TRUE(host().auth_waiting);
  unsigned improper = host().session.improper_pipelining_count();
  host().answer_and_run(AuthAnswer::success("demo"));
  EXPECT_EQ(replies_since(before),
            (std::vector<std::string>{"235 2.7.0 Authentication successful", "250 2.1.0 Ok"}));
  EXPECT_EQ(host().session.improper_pipelining_count(), improper);
}

TEST_P(AuthTest, ResponseIsWipedWhenTheStepEnds) {
  start_tls();
  send("AUTH PLAIN " + base64(kPlainDemo) + "\r\n");
  ASSERT_TRUE(host().auth_waiting);
  std::string_view buffer = host().last_auth_response;
  ASSERT_EQ(buffer, kPlainDemo);
  EXPECT_EQ(host().session.auth_response(), kPlainDemo);
  host().answer_and_run(AuthAnswer::failure(Reply{535, "5.7.8", "no"}));
  EXPECT_EQ(host().session.auth_response(), "");
  // The session reserved its buffer before decoding, so the octets are still its own.
  EXPECT_EQ(buffer, std::string(kPlainDemo.size(), '\0'));
  // The same after a challenge.
  send("AUTH PLAIN " + base64(kPlainDemo) + "\r\n");
  buffer = host().last_auth_response;
  host().answer_and_run(AuthAnswer::challenge("more"));
  EXPECT_EQ(buffer, std::string(kPlainDemo.size(), '\0'));
  EXPECT_FALSE(host().session.auth_has_response());
}

TEST_P(AuthTest, HostMayAnswerWithViewsIntoTheResponse) {
  start_tls();
  send("AUTH PLAIN " + base64(kPlainDemo) + "\r\n");
  ASSERT_TRUE(host().auth_waiting);
  // A PLAIN host parses authcid out of the response and answers with it (no copy).
  std::string_view response = host().session.auth_response();
  host().session.auth_challenge(response.substr(1, 4));
  EXPECT_EQ(host().session.pending_output(), "334 ZGVtbw==\r\n");
  send(base64(kPlainDemo) + "\r\n");
  host().auth_waiting = false;
  response = host().session.auth_response();
  host().session.auth_succeeded(response.substr(1, 4));
  EXPECT_EQ(host().session.authenticated_user(), "demo");
  host().run();
  EXPECT_EQ(host().replies().back(), "235 2.7.0 Authentication successful");
}

TEST_P(AuthTest, EndOfConnectionDuringTheExchange) {
  // EOF while the host works: its answer still goes out, then the session closes.
  start_tls();
  send("AUTH PLAIN " + base64(kPlainDemo) + "\r\n");
  host().session.receive_eof();
  EXPECT_EQ(host().session.next(), Action::kAuthenticate);
  host().answer_and_run(AuthAnswer::success("demo"));
  EXPECT_EQ(host().replies().back(), "235 2.7.0 Authentication successful");
  EXPECT_TRUE(host().closed);
  // A timeout while the host works: 421, and a late answer is ignored.
  start_tls();
  send("AUTH PLAIN " + base64(kPlainDemo) + "\r\n");
  host().session.timeout();
  host().session.auth_succeeded("demo");
  host().run();
  EXPECT_EQ(host().replies().back(), "421 4.4.2 mx.example Timeout, closing");
  EXPECT_TRUE(host().closed);
  EXPECT_EQ(host().session.authenticated_user(), "");
  // EOF in the middle of a response line.
  start_tls();
  host().auth_answers = {AuthAnswer::challenge("")};
  reply("AUTH LOGIN\r\n");
  send("ZGVt");
  host().eof();
  EXPECT_TRUE(host().closed);
  EXPECT_EQ(host().auth_requests.size(), 1u);
}

TEST_P(AuthTest, AnswersWhenNotAskedAreIgnored) {
  start_tls();
  host().session.auth_succeeded("mallory");
  host().session.auth_challenge("x");
  host().session.auth_failed(Reply{535, "5.7.8", "x"});
  host().run();
  EXPECT_EQ(host().session.authenticated_user(), "");
  EXPECT_EQ(reply("NOOP\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(host().session.error_count(), 0u);
}

TEST(SessionLifecycleTest, EverythingAfterCloseIsClose) {
  SessionConfig config = default_config();
  ServerSession session(config);
  session.start();
  session.receive("QUIT\r\n");
  EXPECT_EQ(session.next(), Action::kClose);
  std::string out(session.pending_output());
  EXPECT_EQ(out, "220 mx.example ESMTP smtpsd\r\n221 2.0.0 mx.example closing connection\r\n");
  session.consume_output(out.size());
  session.receive("NOOP\r\n");
  session.receive_eof();
  session.timeout();
  session.shutdown();
  session.message_committed("X");
  session.message_failed(Reply{451, "4.3.0", "x"});
  session.tls_established(TlsInfo{});
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(session.next(), Action::kClose);
  EXPECT_TRUE(session.pending_output().empty());
}

}  // namespace
}  // namespace smtp

// ---- the host's checks (kCheck) -------------------------------------------------------

namespace smtp {
namespace {

class CheckedSessionTest : public SessionTest {
 protected:
  void check_everything() {
    config_.checked_stages =
        static_cast<unsigned>(CheckStage::kConnect) | static_cast<unsigned>(CheckStage::kHelo) |
        static_cast<unsigned>(CheckStage::kMail) | static_cast<unsigned>(CheckStage::kRcpt);
  }
};

INSTANTIATE_TEST_SUITE_P(WholeAndBytewise, CheckedSessionTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Bytewise" : "Whole";
                         });

TEST_P(CheckedSessionTest, NoStageCheckedMeansNoCheck) {
  start();
  send("EHLO c.example\r\nMAIL FROM:<a@c.example>\r\nRCPT TO:<b@mx.example>\r\n");
  EXPECT_TRUE(host().checks.empty());
  EXPECT_EQ(host().codes(), (std::vector<int>{220, 250, 250, 250}));
}

TEST_P(CheckedSessionTest, EveryStageIsAskedWithItsArgumentAndPassesUnchanged) {
  check_everything();
  start();
  send(
      "EHLO c.example\r\nMAIL FROM:<a@c.example> SIZE=10\r\nRCPT TO:<b@mx.example> "
      "NOTIFY=NEVER\r\nDATA\r\nhello\r\n.\r\nQUIT\r\n");
  EXPECT_EQ(host().checks, (std::vector<std::string>{"connect ", "helo c.example",
                                                     "mail a@c.example", "rcpt b@mx.example"}));
  EXPECT_EQ(host().codes(), (std::vector<int>{220, 250, 250, 250, 354, 250, 221}));
  ASSERT_EQ(host().envelopes.size(), 1u);
  const Envelope& envelope = host().envelopes[0];
  EXPECT_EQ(envelope.helo, "c.example");
  EXPECT_EQ(envelope.reverse_path, "a@c.example");
  EXPECT_EQ(envelope.declared_size, std::optional<std::uint64_t>(10));
  ASSERT_EQ(envelope.recipients.size(), 1u);
  EXPECT_EQ(envelope.recipients[0].notify, "NEVER");
}

TEST_P(CheckedSessionTest, PipelinedCommandsWaitForAPendingCheckAndRepliesKeepOrder) {
  check_everything();
  host_ = std::make_unique<FakeHost>(config_);
  host().hold_checks = true;
  host().start();
  EXPECT_EQ(host().output, "");  // the greeting waits for the connect checks
  host().pass_check();
  send("EHLO c.example\r\n");
  host().pass_check();
  const std::size_t before = host().replies().size();
  // RFC 2920 §3.1: the whole group arrives at once; RCPT must not run before MAIL's check.
  send("MAIL FROM:<a@c.example>\r\nRCPT TO:<x@mx.example>\r\nRCPT TO:<y@mx.example>\r\n");
  EXPECT_EQ(host().replies().size(), before);
  EXPECT_EQ(host().checks.back(), "mail a@c.example");
  host().pass_check();
  EXPECT_EQ(host().checks.back(), "rcpt x@mx.example");
  host().refuse_check(Reply{550, "5.7.1", "Recipient refused by policy"});
  EXPECT_EQ(host().checks.back(), "rcpt y@mx.example");
  host().pass_check();
  std::vector<std::string> all = host().replies();
  std::vector<std::string> group(all.begin() + static_cast<std::ptrdiff_t>(before), all.end());
  EXPECT_EQ(group, (std::vector<std::string>{
                       "250 2.1.0 Ok", "550 5.7.1 Recipient refused by policy", "250 2.1.5 Ok"}));
  host().hold_checks = false;
  EXPECT_EQ(reply("DATA\r\n"), "354 End data with <CR><LF>.<CR><LF>");
  EXPECT_EQ(reply("x\r\n.\r\n"), "250 2.0.0 Ok: queued as Q1");
  ASSERT_EQ(host().envelopes.size(), 1u);
  ASSERT_EQ(host().envelopes[0].recipients.size(), 1u);
  EXPECT_EQ(host().envelopes[0].recipients[0].address, "y@mx.example");
}

TEST_P(CheckedSessionTest, RefusedMailLeavesNoTransaction) {
  check_everything();
  host_ = std::make_unique<FakeHost>(config_);
  host().check_refusals.push_back({"spammer@c.example", Reply{550, "5.7.1", "Sender refused"}});
  host().start();
  EXPECT_EQ(reply("EHLO c.example\r\n").substr(0, 4), "250 ");
  EXPECT_EQ(reply("MAIL FROM:<spammer@c.example>\r\n"), "550 5.7.1 Sender refused");
  EXPECT_EQ(reply("RCPT TO:<b@mx.example>\r\n"), "503 5.5.1 Error: need MAIL command");
  EXPECT_EQ(reply("MAIL FROM:<a@c.example>\r\n"), "250 2.1.0 Ok");
}

TEST_P(CheckedSessionTest, RefusedHeloLeavesTheClientUngreeted) {
  check_everything();
  host_ = std::make_unique<FakeHost>(config_);
  host().check_refusals.push_back({"bad.example", Reply{550, "5.7.1", "Go away"}});
  host().start();
  EXPECT_EQ(reply("HELO bad.example\r\n"), "550 5.7.1 Go away");
  EXPECT_EQ(reply("MAIL FROM:<a@c.example>\r\n"), "503 5.5.1 Error: send HELO/EHLO first");
}

TEST_P(CheckedSessionTest, A554AtConnectServesOnlyQuit) {
  check_everything();
  host_ = std::make_unique<FakeHost>(config_);
  host().check_refusals.push_back({"", Reply{554, "5.7.1", "Listed at a block list"}});
  host().start();
  EXPECT_EQ(host().output, "554 mx.example Listed at a block list\r\n");
  EXPECT_EQ(reply("EHLO c.example\r\n"), "503 5.5.1 Bad sequence of commands: connection refused");
  EXPECT_FALSE(host().closed);
  EXPECT_EQ(reply("QUIT\r\n"), "221 2.0.0 mx.example closing connection");
  EXPECT_TRUE(host().closed);
}

TEST_P(CheckedSessionTest, AnEhloDuringBdatDiscardsTheMessageBeforeTheCheck) {
  check_everything();
  host_ = std::make_unique<FakeHost>(config_);
  host().start();
  reply("EHLO c.example\r\n");
  reply("MAIL FROM:<a@c.example>\r\n");
  reply("RCPT TO:<b@mx.example>\r\n");
  EXPECT_EQ(reply("BDAT 3\r\nabc"), "250 2.0.0 3 octets received");
  EXPECT_EQ(host().begins, 1);
  host().hold_checks = true;
  send("EHLO again.example\r\n");
  EXPECT_EQ(host().aborts, 1);  // the spool file went before the host was asked
  EXPECT_TRUE(host().check_waiting);
  host().refuse_check(Reply{550, "5.7.1", "No"});
  host().hold_checks = false;
  EXPECT_EQ(reply("RCPT TO:<b@mx.example>\r\n"), "503 5.5.1 Error: need MAIL command");
}

TEST_P(CheckedSessionTest, A421AtConnectCloses) {
  check_everything();
  host_ = std::make_unique<FakeHost>(config_);
  host().check_refusals.push_back({"", Reply{421, "4.7.0", "Try later"}});
  host().start();
  EXPECT_EQ(host().output, "421 mx.example Try later\r\n");
  EXPECT_TRUE(host().closed);
}

TEST_P(CheckedSessionTest, ATimeoutWhileACheckIsPendingClosesAndTheLateAnswerIsIgnored) {
  check_everything();
  host_ = std::make_unique<FakeHost>(config_);
  host().hold_checks = true;
  host().start();
  host().pass_check();
  send("EHLO c.example\r\n");
  host().session.timeout();
  host().pass_check();
  EXPECT_TRUE(host().closed);
  EXPECT_EQ(host().replies().back(), "421 4.4.2 mx.example Timeout, closing");
  EXPECT_EQ(host().codes(), (std::vector<int>{220, 421}));
}

TEST_P(CheckedSessionTest, ARefusalThatIsNotAnErrorCodeBecomes451) {
  check_everything();
  host_ = std::make_unique<FakeHost>(config_);
  host().check_refusals.push_back({"a@c.example", Reply{250, "2.0.0", "Ok?"}});
  host().start();
  reply("EHLO c.example\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@c.example>\r\n"), "451 4.3.0 Ok?");
}

// ---- local submission (set_local_user, sender_for, refuse_at_start, TlsMode::kNone) ------

TEST_P(SessionTest, LocalUserIsAuthenticatedAndItsSenderRewritten) {
  config_.tls_mode = TlsMode::kNone;
  config_.sender_for = [](std::string_view user, std::string_view given) {
    return user == "root" ? std::string(given) : std::string(user) + "@mx.example";
  };
  host_ = std::make_unique<FakeHost>(config_);
  host().session.set_local_user("alice");
  host().start();
  EXPECT_EQ(host().output, "220 mx.example ESMTP smtpsd\r\n");
  send("EHLO c\r\n");
  EXPECT_FALSE(contains(host().output, "STARTTLS")) << "a local socket offers no TLS";
  EXPECT_FALSE(contains(host().output, "AUTH"));
  EXPECT_EQ(reply("STARTTLS\r\n"), "502 5.5.1 STARTTLS not available on this socket");
  EXPECT_EQ(reply("MAIL FROM:<boss@elsewhere.example>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().reverse_path, "alice@mx.example");
  EXPECT_TRUE(host().session.envelope().authenticated);
  EXPECT_EQ(host().session.envelope().authenticated_user, "alice") << "stored with the message";
  EXPECT_EQ(host().session.authenticated_user(), "alice");
  EXPECT_EQ(host().session.with_protocol(), "ESMTPA");
  EXPECT_EQ(reply("RSET\r\n"), "250 2.0.0 Ok");
  EXPECT_EQ(reply("MAIL FROM:<>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().reverse_path, "alice@mx.example") << "<> rewritten too";
}

TEST_P(SessionTest, TrustedLocalUserKeepsItsSender) {
  config_.tls_mode = TlsMode::kNone;
  config_.sender_for = [](std::string_view user, std::string_view given) {
    return user == "root" ? std::string(given) : std::string(user) + "@mx.example";
  };
  host_ = std::make_unique<FakeHost>(config_);
  host().session.set_local_user("root");
  host().start();
  send("EHLO c\r\n");
  EXPECT_EQ(reply("MAIL FROM:<bounces@list.example>\r\n"), "250 2.1.0 Ok");
  EXPECT_EQ(host().session.envelope().reverse_path, "bounces@list.example");
}

TEST_P(SessionTest, RefusedAtStartServesOnlyQuit) {
  config_.tls_mode = TlsMode::kNone;
  host_ = std::make_unique<FakeHost>(config_);
  host().session.refuse_at_start(Reply{554, "5.7.1", "local user bob may not submit mail"});
  host().start();
  EXPECT_EQ(host().output, "554 mx.example local user bob may not submit mail\r\n");
  EXPECT_EQ(reply("MAIL FROM:<a@b.example>\r\n"),
            "503 5.5.1 Bad sequence of commands: connection refused");
  EXPECT_TRUE(reply("QUIT\r\n").starts_with("221 "));
}

}  // namespace
}  // namespace smtp

// ---- the early-talker screen (EarlyTalkerScreen) ------------------------------------------

namespace smtp {
namespace {

class ScreenTest : public SessionTest {
 protected:
  void start_screened(EarlyTalkerScreen screen) {
    host_ = std::make_unique<FakeHost>(config_);
    host_->session.screen_early_talkers(screen);
    host_->start();
  }
};

INSTANTIATE_TEST_SUITE_P(WholeAndBytewise, ScreenTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Bytewise" : "Whole";
                         });

// Improper pipelining is bytes behind a command in one input: fed whole only (one byte at a
// time nothing is ever behind a command).
class PipeliningScreenTest : public ScreenTest {};
INSTANTIATE_TEST_SUITE_P(Whole, PipeliningScreenTest, ::testing::Values(false),
                         [](const ::testing::TestParamInfo<bool>&) { return "Whole"; });

TEST_P(ScreenTest, PregreetHoldsTheLastGreetingLine) {
  start_screened({.pregreet = true});
  EXPECT_EQ(host().output, "220-mx.example ESMTP smtpsd\r\n");
  EXPECT_TRUE(host().session.pregreet_pending());
  host().session.pregreet_passed();
  host().run();
  EXPECT_EQ(host().output, "220-mx.example ESMTP smtpsd\r\n220 mx.example ESMTP smtpsd\r\n");
  EXPECT_FALSE(host().session.pregreet_pending());
  EXPECT_TRUE(reply("EHLO client.example\r\n").starts_with("250 "));
  EXPECT_EQ(host().session.early_talker(), "");
}

TEST_P(ScreenTest, EarlyTalkerGets554Then503UntilQuit) {
  start_screened({.pregreet = true});
  send("EHLO bot.example\r\nMAIL FROM:<a@bot.example>\r\n");
  EXPECT_EQ(host().session.early_talker(), "pregreet");
  EXPECT_FALSE(host().session.pregreet_pending());
  EXPECT_EQ(host().replies(),
            (std::vector<std::string>{"554 mx.example Protocol error: talked before the greeting",
                                      "503 5.5.1 Bad sequence of commands: connection refused",
                                      "503 5.5.1 Bad sequence of commands: connection refused"}));
  host().session.pregreet_passed();  // too late: ignored
  host().run();
  EXPECT_EQ(reply("QUIT\r\n"), "221 2.0.0 mx.example closing connection");
  EXPECT_TRUE(host().closed);
}

TEST_P(ScreenTest, ClientThatLeavesDuringTheWaitIsNoTalker) {
  start_screened({.pregreet = true});
  host().eof();
  EXPECT_TRUE(host().closed);
  EXPECT_EQ(host().session.early_talker(), "");
}

TEST_P(PipeliningScreenTest, ImproperPipeliningAfterEhloIsRefused) {
  start_screened({.refuse_improper_pipelining = true});
  auto replies = exchange("EHLO bot.example\r\nMAIL FROM:<a@bot.example>\r\n");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_EQ(replies[0],
            "550 5.5.1 Protocol error: commands sent before the reply to EHLO (improper "
            "pipelining), closing connection");
  EXPECT_TRUE(host().closed);
  EXPECT_EQ(host().session.early_talker(), "pipelining");
}

TEST_P(PipeliningScreenTest, ImproperPipeliningAfterDataGets554) {
  start_screened({.refuse_improper_pipelining = true});
  ehlo_mail_rcpt();
  auto replies = exchange("DATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_TRUE(replies[0].starts_with("554 5.5.1 Protocol error")) << replies[0];
  EXPECT_TRUE(host().messages.empty());
  EXPECT_TRUE(host().closed);
}

TEST_P(PipeliningScreenTest, AnyPipeliningAfterHeloIsRefused) {
  start_screened({.refuse_improper_pipelining = true});
  EXPECT_TRUE(reply("HELO client.example\r\n").starts_with("250 "));
  auto replies = exchange("MAIL FROM:<a@client.example>\r\nRCPT TO:<b@mx.example>\r\n");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_TRUE(replies[0].starts_with("550 5.5.1 Protocol error")) << replies[0];
  EXPECT_TRUE(host().closed);
}

TEST_P(ScreenTest, ProperPipeliningAndQuitPass) {
  start_screened({.refuse_improper_pipelining = true});
  EXPECT_TRUE(reply("EHLO client.example\r\n").starts_with("250 "));
  // RFC 2920 §3.1: MAIL, RCPT and DATA in one group, DATA last; then the data after the 354.
  auto replies = exchange("MAIL FROM:<a@client.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n");
  EXPECT_EQ(replies.back(), "354 End data with <CR><LF>.<CR><LF>");
  replies = exchange("Subject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n");
  EXPECT_TRUE(replies.front().starts_with("250 2.0.0")) << replies.front();
  EXPECT_EQ(replies.back(), "221 2.0.0 mx.example closing connection");
  EXPECT_EQ(host().session.early_talker(), "");
  EXPECT_EQ(host().messages.size(), 1u);
}

TEST_P(ScreenTest, BdatChunkFollowsItsLine) {
  start_screened({.refuse_improper_pipelining = true});
  ehlo_mail_rcpt();
  auto replies = exchange("BDAT 5 LAST\r\nhello");
  EXPECT_TRUE(replies.back().starts_with("250 2.0.0")) << replies.back();
  EXPECT_EQ(host().session.early_talker(), "");
}

TEST_P(PipeliningScreenTest, CommandsBehindStarttlsAreRefusedBeforeAnyHandshake) {
  start_screened({.refuse_improper_pipelining = true});
  EXPECT_TRUE(reply("EHLO client.example\r\n").starts_with("250 "));
  auto replies = exchange("STARTTLS\r\nMAIL FROM:<evil@x.example>\r\n");
  ASSERT_EQ(replies.size(), 1u);
  EXPECT_TRUE(replies[0].starts_with("421 4.5.0 Protocol error")) << replies[0];
  EXPECT_EQ(host().starttls, 0);
  EXPECT_TRUE(host().closed);
}

TEST_P(PipeliningScreenTest, WithoutTheScreenImproperPipeliningIsOnlyCounted) {
  start();
  auto replies = exchange("EHLO client.example\r\nNOOP\r\n");
  EXPECT_EQ(replies.size(), 2u);
  EXPECT_EQ(host().session.improper_pipelining_count(), 1u);
  EXPECT_EQ(host().session.early_talker(), "");
}

}  // namespace
}  // namespace smtp
