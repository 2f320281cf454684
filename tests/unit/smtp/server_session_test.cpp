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
  config_.check_recipient = [&asked](std::string_view address) {
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
  EXPECT_EQ(host().session.error_count(), 2u);  // the two 550s
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
  config_.check_recipient = [](std::string_view) { return RecipientVerdict::kUnknownUser; };
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

TEST_P(SessionTest, StarttlsErrors) {
  start();
  EXPECT_EQ(reply("STARTTLS\r\n"), "503 5.5.1 Error: send HELO/EHLO first");
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
  config_.accepts_mail = false;
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
