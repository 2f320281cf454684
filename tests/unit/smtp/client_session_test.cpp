// client_session_test.cpp — smtp::ClientSession against scripted server replies: set-up
// (greeting, EHLO/HELO/LHLO, STARTTLS and its response injection, AUTH), transactions with
// and without PIPELINING (byte-exact output), LMTP per-recipient replies, local refusals,
// DSN parameters, reply parsing and its limits, EOF at each stage, connection reuse, QUIT.
// Every server script is fed whole and byte by byte (STYLE.md habit 11).
#include "smtp/client_session.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "smtp/dot_stuffing.h"

namespace smtp {
namespace {

using namespace std::string_literals;

constexpr std::string_view kGreeting = "220 mx.example ESMTP ready\r\n";
constexpr std::string_view kEhloPipelining =
    "250-mx.example\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n"
    "250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n";
constexpr std::string_view kEhloPlain = "250-mx.example\r\n250 SIZE\r\n";

ClientConfig smtp_config() {
  ClientConfig config;
  config.helo_name = "client.example";
  return config;
}

Envelope envelope_for(std::vector<std::string> addresses, std::string sender = "a@client.example") {
  Envelope envelope;
  envelope.reverse_path = std::move(sender);
  for (std::string& address : addresses)
    envelope.recipients.push_back(Recipient{std::move(address), "", ""});
  return envelope;
}

std::vector<std::size_t> all_of(const Envelope& envelope) {
  std::vector<std::size_t> indices;
  for (std::size_t i = 0; i < envelope.recipients.size(); ++i)
    indices.push_back(i);
  return indices;
}

class ClientSessionTest : public ::testing::TestWithParam<bool> {
 protected:
  void start(ClientConfig config = smtp_config()) {
    session_ = std::make_unique<ClientSession>(std::move(config));
  }
  ClientSession& session() { return *session_; }

  // The server's bytes, whole or byte by byte (calling next() after each piece, as a host
  // does). Returns the first event that is not kNeedInput (later bytes are still handed
  // over, without next()), or kNeedInput.
  ClientEvent feed(std::string_view bytes) {
    if (!GetParam()) {
      session_->receive(bytes);
      return session_->next();
    }
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      session_->receive(bytes.substr(i, 1));
      ClientEvent event = session_->next();
      if (event != ClientEvent::kNeedInput) {
        session_->receive(bytes.substr(i + 1));
        return event;
      }
    }
    return session_->next();
  }
  // What the session wrote since the last take().
  std::string take() {
    std::string out = session_->output();
    session_->output().clear();
    return out;
  }
  // Greeting and EHLO with the given reply; expects kReady.
  void establish(std::string_view ehlo_reply, ClientConfig config = smtp_config()) {
    start(std::move(config));
    EXPECT_EQ(session().next(), ClientEvent::kNeedInput);
    EXPECT_EQ(take(), "");
    ASSERT_EQ(feed(kGreeting), ClientEvent::kNeedInput);
    ASSERT_EQ(take(), "EHLO client.example\r\n");
    ASSERT_EQ(feed(ehlo_reply), ClientEvent::kReady);
  }
  // Sends content, ends it, expects the final reply(ies) to give kMessageDone.
  void finish_message(std::string_view content, std::string_view replies) {
    ASSERT_EQ(session().next(), ClientEvent::kSendContent);
    session().content(content);
    session().end_content();
    ASSERT_EQ(session().next(), ClientEvent::kNeedInput);
    ASSERT_EQ(feed(replies), ClientEvent::kMessageDone);
  }
  std::string summary_of(std::size_t result) {
    return session().results().at(result).reply.summary();
  }

  std::unique_ptr<ClientSession> session_;
};

INSTANTIATE_TEST_SUITE_P(ClientSession, ClientSessionTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Bytewise" : "Whole";
                         });

// ---- a whole session --------------------------------------------------------------------

TEST_P(ClientSessionTest, PlainSessionWithoutPipeliningIsByteExact) {
  establish(kEhloPlain);
  EXPECT_EQ(session().greeting().code, 220);
  EXPECT_EQ(session().greeting().text, "mx.example ESMTP ready");
  EXPECT_FALSE(session().tls_active());
  Envelope envelope = envelope_for({"b@mx.example", "c@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 42);
  EXPECT_EQ(take(), "MAIL FROM:<a@client.example> SIZE=42\r\n");
  EXPECT_EQ(feed("250 2.1.0 Ok\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "RCPT TO:<b@mx.example>\r\n");
  EXPECT_EQ(feed("250 2.1.5 Ok\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "RCPT TO:<c@mx.example>\r\n");
  EXPECT_EQ(feed("250 2.1.5 Ok\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "DATA\r\n");
  EXPECT_EQ(feed("354 End data with <CR><LF>.<CR><LF>\r\n"), ClientEvent::kSendContent);
  session().content("Subject: hi\r\n\r\n.dot\r\n");
  session().end_content();
  EXPECT_EQ(take(), "Subject: hi\r\n\r\n..dot\r\n.\r\n");
  EXPECT_EQ(session().next(), ClientEvent::kNeedInput);
  EXPECT_EQ(feed("250 2.0.0 Ok: queued as ABC\r\n"), ClientEvent::kMessageDone);
  ASSERT_EQ(session().results().size(), 2u);
  EXPECT_EQ(session().results()[0].index, 0u);
  EXPECT_EQ(summary_of(0), "250 2.0.0 Ok: queued as ABC");
  EXPECT_EQ(summary_of(1), "250 2.0.0 Ok: queued as ABC");
  EXPECT_EQ(session().messages_sent(), 1u);
  EXPECT_EQ(session().next(), ClientEvent::kReady);
  session().quit();
  EXPECT_EQ(take(), "QUIT\r\n");
  EXPECT_EQ(session().next(), ClientEvent::kNeedInput);
  EXPECT_EQ(feed("221 2.0.0 Bye\r\n"), ClientEvent::kClosed);
  EXPECT_EQ(session().next(), ClientEvent::kClosed);
  EXPECT_EQ(take(), "");
}

TEST_P(ClientSessionTest, PipelinedTransactionIsOneWrite) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"b@mx.example", "c@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 100);
  EXPECT_EQ(take(),
            "MAIL FROM:<a@client.example> SIZE=100\r\n"
            "RCPT TO:<b@mx.example>\r\nRCPT TO:<c@mx.example>\r\nDATA\r\n");
  EXPECT_EQ(feed("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"),
            ClientEvent::kSendContent);
  EXPECT_EQ(take(), "");
  session().content("x\r\n");
  session().end_content();
  EXPECT_EQ(take(), "x\r\n.\r\n");
  EXPECT_EQ(feed("250 2.0.0 queued\r\n"), ClientEvent::kMessageDone);
  EXPECT_EQ(summary_of(0), "250 2.0.0 queued");
  EXPECT_EQ(summary_of(1), "250 2.0.0 queued");
}

TEST_P(ClientSessionTest, PipeliningOffIsOneCommandAtATimeEvenWhenOffered) {
  ClientConfig config = smtp_config();
  config.pipelining = false;  // smtpsctl bench without --pipelining
  establish(kEhloPipelining, config);
  Envelope envelope = envelope_for({"b@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 100);
  EXPECT_EQ(take(), "MAIL FROM:<a@client.example> SIZE=100\r\n");
  EXPECT_EQ(feed("250 2.1.0 Ok\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "RCPT TO:<b@mx.example>\r\n");
  EXPECT_EQ(feed("250 2.1.5 Ok\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "DATA\r\n");
  EXPECT_EQ(feed("354 go\r\n"), ClientEvent::kSendContent);
}

TEST_P(ClientSessionTest, NullSenderAndRecipientSubset) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"b@mx.example", "c@mx.example", "d@mx.example"}, "");
  std::vector<std::size_t> indices{2, 0};
  session().send_message(envelope, indices, 1);
  EXPECT_EQ(take(),
            "MAIL FROM:<> SIZE=1\r\nRCPT TO:<d@mx.example>\r\nRCPT TO:<b@mx.example>\r\n"
            "DATA\r\n");
  EXPECT_EQ(feed("250 Ok\r\n250 Ok\r\n550 5.1.1 no\r\n354 go\r\n"), ClientEvent::kSendContent);
  session().content("x");
  session().end_content();
  EXPECT_EQ(take(), "x\r\n.\r\n");
  EXPECT_EQ(feed("250 Ok\r\n"), ClientEvent::kMessageDone);
  ASSERT_EQ(session().results().size(), 2u);
  EXPECT_EQ(session().results()[0].index, 2u);
  EXPECT_EQ(summary_of(0), "250 Ok");
  EXPECT_EQ(session().results()[1].index, 0u);
  EXPECT_EQ(summary_of(1), "550 5.1.1 no");
}

// ---- EHLO, HELO, LHLO -------------------------------------------------------------------

TEST_P(ClientSessionTest, MultiLineEhloIsParsed) {
  establish(
      "250-mx.example greets you\r\n250-PIPELINING\r\n250-size 35882577\r\n250-8BITMIME\r\n"
      "250-SMTPUTF8\r\n250-DSN\r\n250-CHUNKING\r\n250-ENHANCEDSTATUSCODES\r\n"
      "250-AUTH plain LOGIN\r\n250-AUTH=LOGIN XOAUTH2\r\n250-X-UNKNOWN a b\r\n250 STARTTLS\r\n",
      [] {
        ClientConfig config = smtp_config();
        config.tls_active = true;  // no STARTTLS then
        return config;
      }());
  const ServerCapabilities& caps = session().capabilities();
  EXPECT_TRUE(caps.esmtp);
  EXPECT_TRUE(caps.starttls);
  EXPECT_TRUE(caps.pipelining);
  EXPECT_TRUE(caps.eightbitmime);
  EXPECT_TRUE(caps.smtputf8);
  EXPECT_TRUE(caps.dsn);
  EXPECT_TRUE(caps.chunking);
  EXPECT_TRUE(caps.enhanced_status_codes);
  EXPECT_TRUE(caps.size);
  EXPECT_EQ(caps.size_limit, 35882577u);
  EXPECT_EQ(caps.auth_mechanisms, (std::vector<std::string>{"PLAIN", "LOGIN", "XOAUTH2"}));
  EXPECT_TRUE(session().tls_active());
}

TEST_P(ClientSessionTest, SingleLineEhloHasNoExtensions) {
  establish("250 mx.example\r\n");
  EXPECT_TRUE(session().capabilities().esmtp);
  EXPECT_FALSE(session().capabilities().pipelining);
  EXPECT_FALSE(session().capabilities().size);
}

TEST_P(ClientSessionTest, EhloRefusedFallsBackToHelo) {
  start();
  feed(kGreeting);
  EXPECT_EQ(take(), "EHLO client.example\r\n");
  EXPECT_EQ(feed("502 5.5.1 unknown command\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "HELO client.example\r\n");
  EXPECT_EQ(feed("250 mx.example\r\n"), ClientEvent::kReady);
  EXPECT_FALSE(session().capabilities().esmtp);
  Envelope envelope = envelope_for({"b@mx.example"});
  envelope.body = BodyType::k8BitMime;
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 5);
  // No extensions after HELO: no parameters, one command at a time.
  EXPECT_EQ(take(), "MAIL FROM:<a@client.example>\r\n");
}

TEST_P(ClientSessionTest, HeloRefusedFails) {
  start();
  feed(kGreeting);
  feed("500 no\r\n");
  EXPECT_EQ(feed("501 5.5.4 go away\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "ehlo");
  ASSERT_TRUE(session().failure().reply);
  EXPECT_EQ(session().failure().reply->code, 501);
}

TEST_P(ClientSessionTest, EhloTransientFailureIsNotFallenBackFrom) {
  start();
  feed(kGreeting);
  take();
  EXPECT_EQ(feed("421 4.3.2 shutting down\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().failure().stage, "ehlo");
  EXPECT_EQ(session().failure().detail, "server refused EHLO: 421 4.3.2 shutting down");
}

TEST_P(ClientSessionTest, GreetingRefusedFails) {
  start();
  EXPECT_EQ(feed("554 5.7.1 no service here\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "greeting");
  EXPECT_EQ(session().failure().reply->summary(), "554 5.7.1 no service here");
  EXPECT_EQ(take(), "");
}

TEST_P(ClientSessionTest, LmtpUsesLhloAndNeverHelo) {
  ClientConfig config = smtp_config();
  config.protocol = ClientProtocol::kLmtp;
  start(config);
  feed("220 lmtp.example LMTP\r\n");
  EXPECT_EQ(take(), "LHLO client.example\r\n");
  EXPECT_EQ(feed("500 5.5.1 what\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().failure().stage, "ehlo");
}

TEST_P(ClientSessionTest, HeloNameWithLineBreakIsRefused) {
  for (std::string name : {"client.example\r\nMAIL FROM:<x@y>"s, ""s}) {
    ClientConfig config = smtp_config();
    config.helo_name = name;
    start(config);
    EXPECT_EQ(feed(kGreeting), ClientEvent::kFailed);
    EXPECT_EQ(session().failure().stage, "ehlo");
    EXPECT_EQ(take(), "");
  }
}

// ---- STARTTLS -------------------------------------------------------------------------

TEST_P(ClientSessionTest, StartTlsThenEhloAgainWithNewCapabilities) {
  start();
  feed(kGreeting);
  take();
  EXPECT_EQ(feed("250-mx.example\r\n250-SIZE 10\r\n250 STARTTLS\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "STARTTLS\r\n");
  EXPECT_EQ(feed("220 2.0.0 Ready to start TLS\r\n"), ClientEvent::kStartTls);
  EXPECT_EQ(session().next(), ClientEvent::kStartTls);
  EXPECT_FALSE(session().tls_active());
  session().tls_established();
  EXPECT_TRUE(session().tls_active());
  EXPECT_EQ(take(), "EHLO client.example\r\n");
  EXPECT_FALSE(session().capabilities().starttls);  // forgotten (RFC 3207 §4.2)
  EXPECT_EQ(feed("250-mx.example\r\n250 PIPELINING\r\n"), ClientEvent::kReady);
  EXPECT_TRUE(session().capabilities().pipelining);
  EXPECT_EQ(session().capabilities().size_limit, 0u);
  EXPECT_EQ(take(), "");
}

TEST_P(ClientSessionTest, StartTlsResponseInjectionIsRefused) {
  start();
  feed(kGreeting);
  feed("250-mx.example\r\n250 STARTTLS\r\n");
  take();
  // Bytes right behind the 220, in the same read: forged plaintext "under TLS".
  feed("220 2.0.0 go ahead\r\n250-mx.example\r\n250 AUTH PLAIN\r\n");
  EXPECT_EQ(session().next(), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "starttls");
  EXPECT_NE(session().failure().detail.find("injection"), std::string::npos);
  session().tls_established();  // ignored now
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().next(), ClientEvent::kFailed);
}

TEST_P(ClientSessionTest, StartTlsBytesAfterTheReplyInALaterReadAreRefused) {
  start();
  feed(kGreeting);
  feed("250-mx.example\r\n250 STARTTLS\r\n");
  take();
  EXPECT_EQ(feed("220 go ahead\r\n"), ClientEvent::kStartTls);
  session().receive("x");
  EXPECT_EQ(session().next(), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "starttls");
}

TEST_P(ClientSessionTest, StartTlsRefusedFails) {
  start();
  feed(kGreeting);
  feed("250-mx.example\r\n250 STARTTLS\r\n");
  take();
  EXPECT_EQ(feed("454 4.7.0 TLS not available\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "starttls");
  EXPECT_EQ(session().failure().detail, "server refused STARTTLS: 454 4.7.0 TLS not available");
  EXPECT_TRUE(session().failure().reply->transient());
}

TEST_P(ClientSessionTest, StartTlsNotOfferedIsOpportunisticUnlessRequired) {
  establish("250-mx.example\r\n250 PIPELINING\r\n");
  EXPECT_FALSE(session().tls_active());
  ClientConfig config = smtp_config();
  config.require_tls = true;
  start(config);
  feed(kGreeting);
  EXPECT_EQ(feed("250-mx.example\r\n250 PIPELINING\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "starttls");
}

TEST_P(ClientSessionTest, StartTlsDisabledIsNotSent) {
  ClientConfig config = smtp_config();
  config.starttls = false;
  establish("250-mx.example\r\n250 STARTTLS\r\n", config);
  EXPECT_EQ(take(), "");
}

// ---- AUTH -------------------------------------------------------------------------------

ClientConfig auth_config() {
  ClientConfig config = smtp_config();
  config.tls_active = true;
  config.auth_user = "user";
  config.auth_password = "pass";
  return config;
}

TEST_P(ClientSessionTest, AuthPlainWithInitialResponse) {
  start(auth_config());
  feed(kGreeting);
  take();
  EXPECT_EQ(feed("250-mx.example\r\n250 AUTH LOGIN PLAIN\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "AUTH PLAIN AHVzZXIAcGFzcw==\r\n");  // base64("\0user\0pass")
  EXPECT_FALSE(session().authenticated());
  EXPECT_EQ(feed("235 2.7.0 Authentication successful\r\n"), ClientEvent::kReady);
  EXPECT_TRUE(session().authenticated());
}

TEST_P(ClientSessionTest, AuthLoginWhenPlainIsNotOffered) {
  start(auth_config());
  feed(kGreeting);
  take();
  EXPECT_EQ(feed("250-mx.example\r\n250 AUTH LOGIN\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "AUTH LOGIN\r\n");
  EXPECT_EQ(feed("334 VXNlcm5hbWU6\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "dXNlcg==\r\n");
  EXPECT_EQ(feed("334 UGFzc3dvcmQ6\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "cGFzcw==\r\n");
  EXPECT_EQ(feed("235 2.7.0 ok\r\n"), ClientEvent::kReady);
  EXPECT_TRUE(session().authenticated());
}

TEST_P(ClientSessionTest, AuthAfterStartTls) {
  ClientConfig config = auth_config();
  config.tls_active = false;
  start(config);
  feed(kGreeting);
  feed("250-mx.example\r\n250 STARTTLS\r\n");  // AUTH not offered before TLS
  EXPECT_EQ(take(), "EHLO client.example\r\nSTARTTLS\r\n");
  EXPECT_EQ(feed("220 go\r\n"), ClientEvent::kStartTls);
  session().tls_established();
  EXPECT_EQ(take(), "EHLO client.example\r\n");
  EXPECT_EQ(feed("250-mx.example\r\n250 AUTH PLAIN\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "AUTH PLAIN AHVzZXIAcGFzcw==\r\n");
  EXPECT_EQ(feed("235 ok\r\n"), ClientEvent::kReady);
}

TEST_P(ClientSessionTest, AuthWithoutTlsIsRefused) {
  ClientConfig config = auth_config();
  config.tls_active = false;
  start(config);
  feed(kGreeting);
  take();
  EXPECT_EQ(feed("250-mx.example\r\n250 AUTH PLAIN LOGIN\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "auth");
  EXPECT_EQ(session().failure().detail, "refusing to send a password without TLS");
  EXPECT_EQ(take(), "");  // the password never left
}

TEST_P(ClientSessionTest, AuthRefusedFailsWithTheReply) {
  start(auth_config());
  feed(kGreeting);
  feed("250-mx.example\r\n250 AUTH PLAIN\r\n");
  EXPECT_EQ(feed("535 5.7.8 Authentication credentials invalid\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "auth");
  EXPECT_EQ(session().failure().reply->code, 535);
  EXPECT_EQ(session().failure().reply->enhanced, "5.7.8");
}

TEST_P(ClientSessionTest, AuthWithoutACommonMechanismNamesTheOffered) {
  start(auth_config());
  feed(kGreeting);
  EXPECT_EQ(feed("250-mx.example\r\n250 AUTH CRAM-MD5 SCRAM-SHA-256\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "auth");
  EXPECT_NE(session().failure().detail.find("CRAM-MD5 SCRAM-SHA-256"), std::string::npos);
  start(auth_config());
  feed(kGreeting);
  EXPECT_EQ(feed("250 mx.example\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().detail, "server does not offer AUTH");
}

// ---- transactions -----------------------------------------------------------------------

TEST_P(ClientSessionTest, MixedRecipientResultsPipelined) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"b@mx.example", "nobody@mx.example", "c@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  take();
  EXPECT_EQ(feed("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no such user\r\n"
                 "452 4.2.2 mailbox full\r\n354 go\r\n"),
            ClientEvent::kSendContent);
  finish_message("x\r\n", "250 2.0.0 queued as Q1\r\n");
  EXPECT_EQ(summary_of(0), "250 2.0.0 queued as Q1");
  EXPECT_EQ(summary_of(1), "550 5.1.1 no such user");
  EXPECT_EQ(summary_of(2), "452 4.2.2 mailbox full");
  EXPECT_TRUE(session().results()[2].reply.transient());
  // A completed transaction needs no RSET.
  take();
  session().next();
  session().send_message(envelope, indices, 10);
  EXPECT_TRUE(take().starts_with("MAIL FROM:"));
}

TEST_P(ClientSessionTest, MixedRecipientResultsUnpipelined) {
  establish(kEhloPlain);
  Envelope envelope = envelope_for({"b@mx.example", "nobody@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(take(), "MAIL FROM:<a@client.example> SIZE=10\r\n");
  feed("250 ok\r\n");
  EXPECT_EQ(take(), "RCPT TO:<b@mx.example>\r\n");
  feed("550 5.1.1 no\r\n");
  EXPECT_EQ(take(), "RCPT TO:<nobody@mx.example>\r\n");
  feed("250 ok\r\n");
  EXPECT_EQ(take(), "DATA\r\n");
  EXPECT_EQ(feed("354 go\r\n"), ClientEvent::kSendContent);
  finish_message("x\r\n", "250 queued\r\n");
  EXPECT_EQ(summary_of(0), "550 5.1.1 no");
  EXPECT_EQ(summary_of(1), "250 queued");
}

TEST_P(ClientSessionTest, AllRecipientsRefusedPipelinedSendsAnEmptyDataAndThenRset) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"x@mx.example", "y@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  take();
  // The server answered DATA with 354 although no recipient was accepted.
  EXPECT_EQ(feed("250 ok\r\n550 5.1.1 no\r\n551 5.1.6 moved\r\n354 go\r\n"),
            ClientEvent::kNeedInput);
  EXPECT_EQ(take(), ".\r\n");  // no content, just the end
  EXPECT_EQ(feed("554 5.5.1 no valid recipients\r\n"), ClientEvent::kMessageDone);
  EXPECT_EQ(summary_of(0), "550 5.1.1 no");
  EXPECT_EQ(summary_of(1), "551 5.1.6 moved");
  EXPECT_EQ(session().messages_sent(), 0u);
  EXPECT_EQ(session().next(), ClientEvent::kReady);
  session().send_message(envelope, indices, 10);
  EXPECT_TRUE(take().starts_with("RSET\r\nMAIL FROM:"));
  EXPECT_EQ(feed("250 flushed\r\n250 ok\r\n250 ok\r\n250 ok\r\n354 go\r\n"),
            ClientEvent::kSendContent);
}

TEST_P(ClientSessionTest, AllRecipientsRefusedPipelinedDataRefused) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"x@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  take();
  EXPECT_EQ(feed("250 ok\r\n550 5.1.1 no\r\n554 5.5.1 no valid recipients\r\n"),
            ClientEvent::kMessageDone);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(summary_of(0), "550 5.1.1 no");
}

TEST_P(ClientSessionTest, AllRecipientsRefusedUnpipelinedSendsNoData) {
  establish(kEhloPlain);
  Envelope envelope = envelope_for({"x@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  take();
  feed("250 ok\r\n");
  EXPECT_EQ(take(), "RCPT TO:<x@mx.example>\r\n");
  EXPECT_EQ(feed("550 5.1.1 no\r\n"), ClientEvent::kMessageDone);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(summary_of(0), "550 5.1.1 no");
  session().next();
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(take(), "RSET\r\n");
  EXPECT_EQ(feed("250 ok\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(take(), "MAIL FROM:<a@client.example> SIZE=10\r\n");
}

TEST_P(ClientSessionTest, MailRefusedUnpipelined) {
  establish(kEhloPlain);
  Envelope envelope = envelope_for({"b@mx.example", "c@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  take();
  EXPECT_EQ(feed("553 5.7.1 sender rejected\r\n"), ClientEvent::kMessageDone);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(summary_of(0), "553 5.7.1 sender rejected");
  EXPECT_EQ(summary_of(1), "553 5.7.1 sender rejected");
}

TEST_P(ClientSessionTest, MailRefusedPipelinedIgnoresTheRest) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"b@mx.example", "c@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  take();
  EXPECT_EQ(feed("451 4.3.0 try later\r\n503 5.5.1 need MAIL\r\n503 5.5.1 need MAIL\r\n"
                 "503 5.5.1 need MAIL\r\n"),
            ClientEvent::kMessageDone);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(summary_of(0), "451 4.3.0 try later");
  EXPECT_EQ(summary_of(1), "451 4.3.0 try later");
  session().next();
  session().send_message(envelope, indices, 10);
  EXPECT_TRUE(take().starts_with("RSET\r\nMAIL FROM:"));
}

TEST_P(ClientSessionTest, DataRefusedGoesToTheAcceptedRecipients) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"b@mx.example", "c@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  take();
  EXPECT_EQ(feed("250 ok\r\n250 ok\r\n550 5.1.1 no\r\n451 4.3.0 later\r\n"),
            ClientEvent::kMessageDone);
  EXPECT_EQ(summary_of(0), "451 4.3.0 later");
  EXPECT_EQ(summary_of(1), "550 5.1.1 no");
}

TEST_P(ClientSessionTest, EndOfDataRefused) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"b@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  take();
  feed("250 ok\r\n250 ok\r\n354 go\r\n");
  finish_message("spam\r\n", "554 5.7.1 rejected as spam\r\n");
  EXPECT_EQ(summary_of(0), "554 5.7.1 rejected as spam");
  take();
  session().next();
  session().send_message(envelope, indices, 10);
  EXPECT_TRUE(take().starts_with("MAIL FROM:"));  // no RSET: the transaction was complete
}

TEST_P(ClientSessionTest, SecondTransactionReusesTheConnection) {
  establish(kEhloPipelining);
  for (int round = 0; round < 3; ++round) {
    Envelope envelope = envelope_for({"b@mx.example"});
    std::vector<std::size_t> indices = all_of(envelope);
    session().send_message(envelope, indices, 3);
    EXPECT_EQ(take(), "MAIL FROM:<a@client.example> SIZE=3\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n");
    EXPECT_EQ(feed("250 ok\r\n250 ok\r\n354 go\r\n"), ClientEvent::kSendContent);
    finish_message("a\r\n", "250 2.0.0 queued as Q" + std::to_string(round) + "\r\n");
    EXPECT_EQ(take(), "a\r\n.\r\n");
    EXPECT_EQ(summary_of(0), "250 2.0.0 queued as Q" + std::to_string(round));
    EXPECT_EQ(session().next(), ClientEvent::kReady);
  }
  EXPECT_EQ(session().messages_sent(), 3u);
  session().quit();
  EXPECT_EQ(take(), "QUIT\r\n");
  session().server_closed();  // closing without a 221 ends it too
  EXPECT_EQ(session().next(), ClientEvent::kClosed);
}

TEST_P(ClientSessionTest, LmtpGivesOneReplyPerAcceptedRecipient) {
  ClientConfig config = smtp_config();
  config.protocol = ClientProtocol::kLmtp;
  start(config);
  feed("220 lmtp ready\r\n");
  EXPECT_EQ(take(), "LHLO client.example\r\n");
  EXPECT_EQ(feed("250-lmtp.example\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"),
            ClientEvent::kReady);
  Envelope envelope = envelope_for({"b@lmtp.example", "x@lmtp.example", "c@lmtp.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  take();
  feed("250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 unknown\r\n250 2.1.5 ok\r\n354 go\r\n");
  ASSERT_EQ(session().next(), ClientEvent::kSendContent);
  session().content("x\r\n");
  session().end_content();
  EXPECT_EQ(take(), "x\r\n.\r\n");
  EXPECT_EQ(feed("250 2.0.0 <b@lmtp.example> delivered\r\n"), ClientEvent::kNeedInput);
  EXPECT_EQ(feed("452 4.2.2 <c@lmtp.example> over quota\r\n"), ClientEvent::kMessageDone);
  EXPECT_EQ(summary_of(0), "250 2.0.0 <b@lmtp.example> delivered");
  EXPECT_EQ(summary_of(1), "550 5.1.1 unknown");
  EXPECT_EQ(summary_of(2), "452 4.2.2 <c@lmtp.example> over quota");
}

TEST_P(ClientSessionTest, LmtpDataWithoutRecipientsMustFail) {
  ClientConfig config = smtp_config();
  config.protocol = ClientProtocol::kLmtp;
  start(config);
  feed("220 lmtp ready\r\n");
  feed("250-lmtp.example\r\n250 PIPELINING\r\n");
  Envelope envelope = envelope_for({"x@lmtp.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(feed("250 ok\r\n550 no\r\n354 go\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "data");
}

// ---- local refusals and parameters ------------------------------------------------------

TEST_P(ClientSessionTest, MessageLargerThanTheServerSizeIsNotSent) {
  establish(kEhloPipelining);  // SIZE 1000
  Envelope envelope = envelope_for({"b@mx.example", "c@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 1001);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().next(), ClientEvent::kMessageDone);
  ASSERT_EQ(session().results().size(), 2u);
  EXPECT_EQ(session().results()[1].reply.code, 552);
  EXPECT_EQ(session().results()[1].reply.enhanced, "5.3.4");
  EXPECT_EQ(session().next(), ClientEvent::kReady);
  session().send_message(envelope, indices, 1000);  // exactly the limit is fine
  EXPECT_EQ(take(),
            "MAIL FROM:<a@client.example> SIZE=1000\r\nRCPT TO:<b@mx.example>\r\n"
            "RCPT TO:<c@mx.example>\r\nDATA\r\n");
}

TEST_P(ClientSessionTest, SmtpUtf8WithoutServerSupportIsNotSent) {
  establish(kEhloPlain);
  Envelope envelope = envelope_for({"bjørn@mx.example"});
  envelope.smtputf8 = true;
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().next(), ClientEvent::kMessageDone);
  EXPECT_EQ(summary_of(0), "553 5.6.7 SMTPUTF8 not supported by the server");
}

TEST_P(ClientSessionTest, SmtpUtf8AndEightBitMimeWhenSupported) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"bjørn@mx.example"});
  envelope.smtputf8 = true;
  envelope.body = BodyType::k8BitMime;
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(take(),
            "MAIL FROM:<a@client.example> SIZE=10 BODY=8BITMIME SMTPUTF8\r\n"
            "RCPT TO:<bjørn@mx.example>\r\nDATA\r\n");
}

TEST_P(ClientSessionTest, DsnParametersWhenSupported) {
  establish("250-mx.example\r\n250-PIPELINING\r\n250 DSN\r\n");
  Envelope envelope = envelope_for({"b@mx.example", "c@mx.example"});
  envelope.dsn_return = DsnReturn::kHeaders;
  envelope.envelope_id = "id+1=x y";
  envelope.recipients[0].notify = "SUCCESS,FAILURE";
  envelope.recipients[0].original_recipient = "rfc822;B+x@mx.example";
  envelope.recipients[1].notify = "NEVER";
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(take(),
            "MAIL FROM:<a@client.example> RET=HDRS ENVID=id+2B1+3Dx+20y\r\n"
            "RCPT TO:<b@mx.example> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;B+2Bx@mx.example\r\n"
            "RCPT TO:<c@mx.example> NOTIFY=NEVER\r\nDATA\r\n");
}

TEST_P(ClientSessionTest, DsnParametersAbsentWhenNotSupported) {
  establish("250-mx.example\r\n250 PIPELINING\r\n");
  Envelope envelope = envelope_for({"b@mx.example"});
  envelope.dsn_return = DsnReturn::kFull;
  envelope.envelope_id = "id";
  envelope.recipients[0].notify = "FAILURE";
  envelope.recipients[0].original_recipient = "rfc822;b@mx.example";
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(take(), "MAIL FROM:<a@client.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n");
}

// RFC 8689 §4.2.1: REQUIRETLS goes on only inside TLS to a server that offers it; otherwise
// the message is not sent at all (5.7.10 without TLS, 5.7.30 without the extension). A bounce
// (null reverse path) goes either way (RFC 8689 §5), with the option where it is offered.
TEST_P(ClientSessionTest, RequireTlsIsPassedOnOnlyInsideTlsToAServerThatOffersIt) {
  ClientConfig in_tls = smtp_config();
  in_tls.tls_active = true;
  const std::string_view offered = "250-mx.example\r\n250-PIPELINING\r\n250 REQUIRETLS\r\n";
  const std::string_view not_offered = "250-mx.example\r\n250 PIPELINING\r\n";
  Envelope envelope = envelope_for({"b@mx.example"});
  envelope.require_tls = true;
  std::vector<std::size_t> indices = all_of(envelope);

  establish(offered, in_tls);
  EXPECT_TRUE(session().capabilities().requiretls);
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(take(),
            "MAIL FROM:<a@client.example> REQUIRETLS\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n");

  establish(not_offered, in_tls);
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().next(), ClientEvent::kMessageDone);
  EXPECT_EQ(summary_of(0), "550 5.7.30 REQUIRETLS not supported by the server");

  establish(offered);  // no TLS: the keyword alone is not enough
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().next(), ClientEvent::kMessageDone);
  EXPECT_EQ(summary_of(0), "550 5.7.10 REQUIRETLS needs TLS, not active");

  Envelope bounce = envelope;
  bounce.reverse_path.clear();
  establish(not_offered);
  session().send_message(bounce, indices, 10);
  EXPECT_EQ(take(), "MAIL FROM:<>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n");
  establish(offered, in_tls);
  session().send_message(bounce, indices, 10);
  EXPECT_EQ(take(), "MAIL FROM:<> REQUIRETLS\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n");

  // Without REQUIRETLS nothing changes, offered or not.
  establish(offered, in_tls);
  envelope.require_tls = false;
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(take(), "MAIL FROM:<a@client.example>\r\nRCPT TO:<b@mx.example>\r\nDATA\r\n");
}

TEST_P(ClientSessionTest, LineBreaksInAddressesAreNeverSent) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"b@mx.example\r\nRCPT TO:<evil@x>", "c@mx.example"});
  std::vector<std::size_t> indices{0, 1, 7};
  session().send_message(envelope, indices, 10);
  EXPECT_EQ(take(), "MAIL FROM:<a@client.example> SIZE=10\r\nRCPT TO:<c@mx.example>\r\nDATA\r\n");
  EXPECT_EQ(session().results()[0].reply.code, 501);
  EXPECT_EQ(session().results()[0].reply.enhanced, "5.5.2");
  EXPECT_EQ(session().results()[2].reply.code, 501);  // no recipient 7
  EXPECT_EQ(feed("250 ok\r\n250 ok\r\n354 go\r\n"), ClientEvent::kSendContent);
  finish_message("x", "250 ok\r\n");
  EXPECT_EQ(summary_of(1), "250 ok");
  EXPECT_EQ(session().results()[0].reply.code, 501);
  take();

  session().next();
  Envelope bad_sender = envelope_for({"c@mx.example"}, "a@x\nDATA");
  std::vector<std::size_t> one{0};
  session().send_message(bad_sender, one, 10);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().next(), ClientEvent::kMessageDone);
  EXPECT_EQ(summary_of(0), "501 5.5.2 reverse path contains CR, LF or NUL; not sent");

  session().next();
  Envelope only_bad = envelope_for({"x\r@y"});
  session().send_message(only_bad, one, 10);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().next(), ClientEvent::kMessageDone);
}

TEST_P(ClientSessionTest, NoRecipientsSendsNothing) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({});
  session().send_message(envelope, {}, 10);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().next(), ClientEvent::kMessageDone);
  EXPECT_TRUE(session().results().empty());
}

// ---- content ----------------------------------------------------------------------------

TEST_P(ClientSessionTest, ContentIsStuffedAcrossPiecesAndBareLineEndingsBecomeCrlf) {
  const std::string content = "a\r\n.b\r\n..\r\nc\nd\r.e";
  for (std::size_t piece = 1; piece <= content.size(); ++piece) {
    establish(kEhloPipelining);
    Envelope envelope = envelope_for({"b@mx.example"});
    std::vector<std::size_t> indices = all_of(envelope);
    session().send_message(envelope, indices, content.size());
    feed("250 ok\r\n250 ok\r\n354 go\r\n");
    take();
    for (std::size_t pos = 0; pos < content.size(); pos += piece)
      session().content(std::string_view(content).substr(pos, piece));
    session().end_content();
    EXPECT_EQ(take(), "a\r\n..b\r\n...\r\nc\r\nd\r\n..e\r\n.\r\n") << piece;
    EXPECT_EQ(session().content_bare_line_endings(), 2u);
  }
}

// StuffedContent is content() + end_content() made once: the host writes its wire form, the
// session writes nothing of the content and reads the end-of-data reply as usual; the same
// content can go out again in the next transaction.
TEST_P(ClientSessionTest, StuffedContentIsTheWireFormAndTheTransactionEndsAsUsual) {
  const StuffedContent stuffed("a\r\n.b\r\n..\r\nc\nd\r.e");
  EXPECT_EQ(stuffed.wire(), "a\r\n..b\r\n...\r\nc\r\nd\r\n..e\r\n.\r\n");
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"b@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  for (int transaction = 0; transaction < 2; ++transaction) {
    session().send_message(envelope, indices, 20);
    ASSERT_EQ(feed("250 ok\r\n250 ok\r\n354 go\r\n"), ClientEvent::kSendContent);
    take();
    session().send_stuffed(stuffed);
    EXPECT_EQ(take(), "");  // the host writes stuffed.wire() itself
    EXPECT_EQ(session().content_bare_line_endings(), 2u);
    EXPECT_EQ(session().next(), ClientEvent::kNeedInput);
    ASSERT_EQ(feed("250 2.0.0 queued\r\n"), ClientEvent::kMessageDone) << transaction;
    EXPECT_EQ(summary_of(0), "250 2.0.0 queued");
    EXPECT_EQ(session().messages_sent(), static_cast<std::size_t>(transaction + 1));
    EXPECT_EQ(session().next(), ClientEvent::kReady);
  }
  // Out of turn (no 354 asked for it), it does nothing.
  session().send_stuffed(stuffed);
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().messages_sent(), 2u);
}

TEST_P(ClientSessionTest, CallsOutOfTurnAreIgnored) {
  start();
  Envelope envelope = envelope_for({"b@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 1);
  session().content("x");
  session().end_content();
  session().tls_established();
  session().quit();
  EXPECT_EQ(take(), "");
  EXPECT_EQ(session().next(), ClientEvent::kNeedInput);
  EXPECT_FALSE(session().tls_active());
}

// ---- reply parsing ----------------------------------------------------------------------

TEST_P(ClientSessionTest, EnhancedCodesAreTakenOnlyWhenTheyMatchTheClass) {
  establish(kEhloPipelining);
  Envelope envelope =
      envelope_for({"b@mx.example", "c@mx.example", "d@mx.example", "e@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 1);
  feed(
      "250-2.1.0 first\r\n250 2.1.0 second\r\n"      // MAIL, multi-line
      "550 4.1.1 wrong class\r\n"                    // class mismatch: kept as text
      "550 5.1.10 long detail\r\n"                   // up to three digits per part
      "550-5.1.1234 too long\r\n550 5.1.1 next\r\n"  // four digits: not a code
      "250-2.1.5 ok\r\n250 2.1.5 really\r\n"
      "354 2.0.0 not for 3xx\r\n");
  ASSERT_EQ(session().next(), ClientEvent::kSendContent);
  EXPECT_EQ(summary_of(0), "550 4.1.1 wrong class");
  EXPECT_EQ(session().results()[0].reply.enhanced, "");
  EXPECT_EQ(session().results()[1].reply.enhanced, "5.1.10");
  EXPECT_EQ(session().results()[1].reply.text, "long detail");
  EXPECT_EQ(session().results()[2].reply.enhanced, "");
  EXPECT_EQ(session().results()[2].reply.text, "5.1.1234 too long\nnext");
  finish_message("x", "250-2.0.0 one\r\n250 2.0.0 two\r\n");
  EXPECT_EQ(session().results()[3].reply.enhanced, "2.0.0");
  EXPECT_EQ(session().results()[3].reply.text, "one\ntwo");
  EXPECT_EQ(summary_of(3), "250 2.0.0 one two");
}

TEST_P(ClientSessionTest, MultiLineReplyTextIsJoined) {
  start();
  feed("220-mx.example ESMTP\r\n220-2.0.0 second line\r\n220\r\n");
  // An enhanced code on a later line is dropped from the text like on the first.
  EXPECT_EQ(session().greeting().text, "mx.example ESMTP\nsecond line\n");
  EXPECT_EQ(session().greeting().enhanced, "");
  feed("250-mx.example\r\n250-\r\n250 PIPELINING\r\n");
  EXPECT_TRUE(session().capabilities().pipelining);
}

TEST_P(ClientSessionTest, BareLfLineEndingsAreAccepted) {
  start();
  feed("220 mx.example\n");
  EXPECT_EQ(take(), "EHLO client.example\r\n");
  EXPECT_EQ(feed("250-mx.example\n250 PIPELINING\n"), ClientEvent::kReady);
  EXPECT_TRUE(session().capabilities().pipelining);
}

TEST_P(ClientSessionTest, MalformedRepliesFailTheSession) {
  const std::vector<std::string> malformed = {
      "abc letters\r\n",
      "22 short\r\n",
      "2200 four digits\r\n",
      "220x ready\r\n",
      "120 not a class\r\n",
      "260 second digit too big\r\n",
      "220-first\r\n554 second\r\n",  // codes disagree
      "220 a\rb\r\n",                 // bare CR inside a line
      "220 " + std::string(5000, 'x') + "\r\n",
  };
  for (const std::string& reply : malformed) {
    start();
    EXPECT_EQ(feed(reply), ClientEvent::kFailed) << reply;
    EXPECT_EQ(session().failure().stage, "protocol") << reply;
    EXPECT_FALSE(session().failure().reply) << reply;
    EXPECT_EQ(take(), "") << reply;
  }
}

TEST_P(ClientSessionTest, TooLongLineFailsBeforeItEnds) {
  ClientConfig config = smtp_config();
  config.max_reply_line = 20;
  start(config);
  EXPECT_EQ(feed("220 " + std::string(17, 'x')), ClientEvent::kFailed);  // 21 octets, no LF
  EXPECT_NE(session().failure().detail.find("longer than 20"), std::string::npos);
  start(config);
  EXPECT_EQ(feed("220 " + std::string(16, 'x') + "\r\n"), ClientEvent::kNeedInput);  // 20: fine
}

TEST_P(ClientSessionTest, TooManyLinesFail) {
  ClientConfig config = smtp_config();
  config.max_reply_lines = 3;
  start(config);
  feed(kGreeting);
  EXPECT_EQ(feed("250-a\r\n250-b\r\n250-c\r\n250 d\r\n"), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "protocol");
  EXPECT_EQ(session().failure().detail, "reply longer than 3 lines");
}

TEST_P(ClientSessionTest, UnsolicitedReplyWhileIdleFails) {
  establish(kEhloPipelining);
  feed("421 4.4.2 idle timeout\r\n");  // bytewise: kReady until the line is complete
  EXPECT_EQ(session().next(), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "protocol");
  EXPECT_EQ(session().failure().reply->code, 421);
}

TEST_P(ClientSessionTest, ExtraReplyInTheSameReadIsUnsolicited) {
  start();
  feed("220 hi\r\n250 extra\r\n250 extra\r\n");  // the first 250 answers EHLO
  EXPECT_EQ(session().next(), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().detail, "unsolicited reply: 250 extra");
}

TEST(ClientSessionReply, SummaryIsOneSafeLine) {
  ServerReply reply{550, "5.1.1", "no such\nuser\x01 here"};
  EXPECT_EQ(reply.summary(), "550 5.1.1 no such user? here");
  EXPECT_EQ((ServerReply{250, "", ""}).summary(), "250");
  EXPECT_TRUE((ServerReply{354, "", ""}).positive());
  EXPECT_FALSE((ServerReply{452, "", ""}).positive());
  EXPECT_TRUE((ServerReply{452, "", ""}).transient());
  EXPECT_FALSE((ServerReply{552, "", ""}).transient());
}

// ---- EOF ------------------------------------------------------------------------------

TEST_P(ClientSessionTest, EofAtEachStageNamesTheStage) {
  start();
  session().server_closed();
  EXPECT_EQ(session().next(), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "greeting");

  establish(kEhloPlain);
  Envelope envelope = envelope_for({"b@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 1);
  feed("250 ok\r\n");
  feed("25");
  session().server_closed();
  EXPECT_EQ(session().next(), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "rcpt");
  EXPECT_EQ(session().failure().detail, "server closed the connection in the middle of a reply");

  establish(kEhloPipelining);
  session().send_message(envelope, indices, 1);
  feed("250 ok\r\n250 ok\r\n354 go\r\n");
  session().content("x\r\n");
  session().server_closed();
  EXPECT_EQ(session().next(), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "content");

  establish(kEhloPipelining);
  session().send_message(envelope, indices, 1);
  feed("250 ok\r\n250 ok\r\n354 go\r\n");
  session().content("x\r\n");
  session().end_content();
  session().server_closed();
  EXPECT_EQ(session().next(), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "content");
  EXPECT_EQ(session().failure().detail, "server closed the connection");

  establish(kEhloPipelining);
  session().server_closed();
  EXPECT_EQ(session().next(), ClientEvent::kFailed);
  EXPECT_EQ(session().failure().stage, "protocol");
}

TEST_P(ClientSessionTest, RepliesBeforeEofAreStillRead) {
  establish(kEhloPipelining);
  Envelope envelope = envelope_for({"b@mx.example"});
  std::vector<std::size_t> indices = all_of(envelope);
  session().send_message(envelope, indices, 1);
  session().receive("250 ok\r\n250 ok\r\n554 5.3.0 no data today\r\n");
  session().server_closed();
  EXPECT_EQ(session().next(), ClientEvent::kMessageDone);
  EXPECT_EQ(summary_of(0), "554 5.3.0 no data today");
  EXPECT_EQ(session().next(), ClientEvent::kFailed);  // then idle and closed
}

}  // namespace
}  // namespace smtp
