// client_session.h — the sending side of SMTP (RFC 5321) and LMTP (RFC 2033) as a pure
// state machine (sans-I/O), the mirror of ServerSession: the host (src/delivery over
// src/net, smtpsctl) feeds it the server's bytes and carries out the events it returns.
// No sockets, clocks, files or threads here, so it is unit-tested and fuzzed byte by byte.
//
// Driving loop of a host:
//   ClientSession session(config);
//   for (;;) {
//     write(session.output()); session.output().clear();   // always flush first
//     switch (session.next()) {
//       case ClientEvent::kNeedInput:   read; session.receive(bytes) or session.server_closed();
//       case ClientEvent::kStartTls:    TLS client handshake on the socket, then
//                                       session.tls_established() (or close on failure);
//       case ClientEvent::kReady:       session.send_message(envelope, indices, size) or quit();
//       case ClientEvent::kSendContent: session.content(piece)... then session.end_content();
//       case ClientEvent::kMessageDone: use session.results(); the next next() gives kReady;
//       case ClientEvent::kClosed:      close;
//       case ClientEvent::kFailed:      log session.failure(); close.
//     }
//   }
//
// Invariants:
// - Output is only appended, and never holds a bare CR or LF: commands are built from
//   checked parts (a command that would carry CR, LF or NUL is never sent; the recipient,
//   or the whole message, gets a synthetic 501 5.5.2 instead) and content goes through
//   DotStuffer (dot_stuffing.h), which writes bare CR/LF of the content as CRLF.
// - Replies are matched to commands in the order they were sent (RFC 2920 §3.2), through
//   one queue of expected replies; a reply nobody waits for is a protocol failure, and so
//   is a reply to STARTTLS followed by any other byte before the TLS handshake (RFC 3207
//   §4.2: response injection, CVE-2011-0411 in the other direction).
// - Reply lines are bounded (config.max_reply_line, max_reply_lines) while streaming; a
//   reply is parsed in place in the input buffer, only its strings are built.
// - Every recipient given to send_message() gets exactly one result; each is final when
//   kMessageDone is returned.
// - Credentials are sent only when TLS is active; the session never logs.
// - Calls that the current event does not ask for (send_message() outside kReady, content()
//   outside kSendContent, tls_established() outside kStartTls...) are ignored.
// - After kFailed or kClosed every next() returns the same event and nothing more is output.
//
// Choices where the RFCs leave room:
// - Replies may end lines with a bare LF (read, never forwarded); a CR elsewhere in a reply
//   line, a missing code, codes that differ within one reply, an over-long line or reply
//   are protocol failures. An enhanced code is taken only from the first line and only if
//   its class is the reply's (RFC 3463 §2); matching ones are stripped from every line.
// - Any 5xx to EHLO falls back to HELO (SMTP only, and not after STARTTLS).
// - STARTTLS not offered: the session goes on in clear unless config.require_tls.
// - A transaction that ended before its end of data (MAIL or DATA refused, no recipient
//   accepted) makes the next one start with RSET; one that got its final reply does not.
// - Without PIPELINING no DATA is sent when no RCPT was accepted; with it, a 354 that
//   arrives anyway is answered with "." alone and its reply ignored (LMTP: kFailed, since
//   RFC 2033 §4.2 leaves no reply to read there).
// - An 8-bit body to a server without 8BITMIME goes as is without BODY= (XXX in the .cpp);
//   a BINARYMIME body is refused locally (554 5.6.1): we do not send BDAT.
// - kFailed writes nothing more, not even QUIT: the host just closes.
//
// RFCs: 5321 (SMTP), 2033 (LMTP), 2920 (PIPELINING), 3207 (STARTTLS), 4954 (AUTH; PLAIN of
// RFC 4616, and LOGIN), 1870 (SIZE), 6152 (8BITMIME), 6531 (SMTPUTF8), 3461 (DSN
// parameters), 2034 / 3463 (enhanced status codes).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/envelope.h"

namespace smtp {

enum class ClientProtocol { kSmtp, kLmtp };

// One reply from the server (RFC 5321 §4.2), possibly multi-line.
struct ServerReply {
  int code = 0;
  std::string enhanced;  // "2.1.5" when the server gave one (RFC 2034/3463), else ""
  std::string text;      // text of all lines (after code and enhanced code), joined by '\n'
  // One line for logs and DSN diagnostics: "550 5.1.1 no such user" (lines joined by ' ',
  // other control characters replaced by '?').
  std::string summary() const;
  bool positive() const { return code >= 200 && code < 400; }   // 2xx or 3xx
  bool transient() const { return code >= 400 && code < 500; }  // 4xx
};

struct ClientConfig {
  ClientProtocol protocol = ClientProtocol::kSmtp;
  std::string helo_name;    // our name for EHLO/HELO/LHLO
  bool tls_active = false;  // implicit TLS: the connection is encrypted from the start
  bool starttls = true;     // send STARTTLS when offered and TLS is not active yet
  // TLS is mandatory: when it is not active after EHLO and STARTTLS is not going to be sent
  // (not offered, or starttls is false), kFailed with stage "starttls" before any
  // transaction. Off: opportunistic TLS, the host may still check tls_active() at kReady.
  bool require_tls = false;
  bool pipelining = true;  // use PIPELINING (RFC 2920) when offered; false: one command at a time
  std::string auth_user;   // non-empty: AUTH PLAIN (else LOGIN) after TLS; never without TLS
  std::string auth_password;
  std::size_t max_reply_line = 4096;  // a longer reply line (CRLF excluded) is a protocol error
  std::size_t max_reply_lines = 256;  // a longer multi-line reply is a protocol error
};

// From the last EHLO/LHLO reply (reset after STARTTLS, RFC 3207 §4.2); all false after HELO.
struct ServerCapabilities {
  bool esmtp = false, starttls = false, pipelining = false, eightbitmime = false, smtputf8 = false,
       dsn = false, chunking = false, enhanced_status_codes = false;
  bool requiretls = false;                   // REQUIRETLS (RFC 8689 §2)
  bool size = false;                         // SIZE announced, with or without a limit
  std::uint64_t size_limit = 0;              // SIZE n (RFC 1870); 0: none announced
  std::vector<std::string> auth_mechanisms;  // upper case
};

enum class ClientEvent {
  kNeedInput,    // host reads from the server and calls receive() (after writing output())
  kStartTls,     // server said 220 to STARTTLS: host does the TLS client handshake, then calls
                 // tls_established() (or gives up on the connection)
  kReady,        // session established and idle: host calls send_message() or quit()
  kSendContent,  // the server wants the content (354): host calls content() repeatedly, then
                 // end_content()
  kMessageDone,  // the transaction finished: results() has one entry per recipient; next()
                 // then gives kReady
  kClosed,       // QUIT answered, or the server closed after QUIT
  kFailed,       // session unusable: failure() says why; host closes the connection
};

struct RecipientResult {
  std::size_t index;  // the caller's recipient index as given to send_message()
  ServerReply reply;  // RCPT reply if refused; else the final reply for it (SMTP: the DATA
                      // reply; LMTP: its own per-recipient reply, RFC 2033 §4.2); MAIL
                      // refused: the MAIL reply for all. Synthetic replies (never sent by the
                      // server) for local refusals, e.g. 553 5.6.7 SMTPUTF8 not supported,
                      // 552 5.3.4 message larger than the server's SIZE.
};

struct ClientFailure {
  // "greeting", "ehlo" (also HELO and LHLO), "starttls", "auth", "mail" (also RSET), "rcpt",
  // "data", "content" (sending the content and waiting for the reply to its end: a failure
  // here may mean the message was delivered anyway, RFC 1047), "quit", "protocol" (malformed
  // or unsolicited reply, or the server closed an idle session).
  std::string stage;
  std::optional<ServerReply> reply;  // the reply that failed it, if any
  std::string detail;  // in words: "server refused STARTTLS: 454 4.7.0 ...", "malformed reply
                       // line", ...
};

// A message's content in its wire form, made once by DotStuffer (dot-stuffed, bare CR and LF
// written as CRLF, then the end of data): for a host that sends the same content many times
// (smtpsctl bench), which otherwise pays the stuffing and a copy of it per message. Only
// DotStuffer makes it, so it holds exactly one end-of-data indicator, at its end.
class StuffedContent {
 public:
  explicit StuffedContent(std::string_view content);
  std::string_view wire() const { return wire_; }
  std::size_t bare_line_endings() const { return bare_line_endings_; }

 private:
  std::string wire_;
  std::size_t bare_line_endings_ = 0;
};

class ClientSession {
 public:
  explicit ClientSession(ClientConfig config);
  ~ClientSession();
  ClientSession(ClientSession&&) noexcept;
  ClientSession& operator=(ClientSession&&) noexcept;
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  void receive(std::string_view bytes);  // bytes from the server
  void server_closed();                  // EOF from the server
  ClientEvent next();      // what the host must do now (call after every receive/action)
  std::string& output();   // bytes to write to the server; host writes all and clears
  void tls_established();  // after kStartTls, the handshake succeeded: EHLO again

  // Starts a transaction when idle (kReady, or kMessageDone before calling next()).
  // recipients: indices into envelope.recipients to send, in that order. content_size: exact
  // octets of the message content (for SIZE=). The envelope is copied from as needed; it
  // need not outlive the call.
  void send_message(const Envelope& envelope, std::span<const std::size_t> recipients,
                    std::uint64_t content_size);
  // Raw message bytes (CRLF lines), split anywhere; the session dot-stuffs them and writes
  // any bare CR or LF as CRLF (counted in content_bare_line_endings()).
  void content(std::string_view bytes);
  void end_content();  // ends the data (adds CRLF first if the content did not end with one)
  // Instead of content() and end_content(): the host writes output() and then
  // content.wire() itself, in that order.
  void send_stuffed(const StuffedContent& content);
  void quit();  // when idle (kReady or kMessageDone)

  const std::vector<RecipientResult>& results() const;  // of the last send_message()
  const ServerCapabilities& capabilities() const;
  const ServerReply& greeting() const;
  bool tls_active() const;
  const ClientFailure& failure() const;
  // Added: facts for logs.
  bool authenticated() const;                     // AUTH succeeded on this session
  std::size_t content_bare_line_endings() const;  // of the current/last message
  std::size_t messages_sent() const;              // transactions that reached end of data

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace smtp
