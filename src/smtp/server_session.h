// server_session.h — the receiving side of RFC 5321 as a pure state machine (sans-I/O).
//
// The host (src/net) feeds it the bytes a peer sent and carries out the actions it
// returns; the session never touches a socket, a clock, a file or a thread, so it can be
// unit-tested and fuzzed byte by byte. Model: h11's receive_data / next_event.
//
// Driving loop of a host:
//   session.start();
//   for (;;) {
//     write(session.pending_output()); session.consume_output(n);  // always flush first
//     switch (session.next()) {
//       case Action::kNeedInput:    read some bytes; session.receive(bytes) (or receive_eof());
//       case Action::kStartTls:     handshake (session already dropped buffered input);
//                                   session.tls_established(info) or close on failure;
//       case Action::kMessageBegin: open a spool file for session.envelope();
//                                   on failure session.message_failed(reply);
//       case Action::kMessageData:  append session.message_data() to the spool file;
//                                   on failure session.message_failed(reply);
//       case Action::kMessageEnd:   commit durably, then session.message_committed(id)
//                                   or session.message_failed(reply);
//       case Action::kMessageAbort: discard the spool file opened at kMessageBegin (the
//                                   session refused the message and replies itself;
//                                   the host answers nothing).
//       case Action::kAuthenticate: run the SASL step (see "AUTH" below), off the I/O thread
//                                   if it is slow, then answer with exactly one of
//                                   auth_challenge / auth_succeeded / auth_failed.
//       case Action::kCheck:        run the checks of check_stage() (see "Checks" below),
//                                   then answer check_passed() or check_refused(reply);
//       case Action::kClose:        flush output, close the connection.
//     }
//   }
// Invariants: output is only appended; message_data() stays valid until the next call
// into the session; after kClose every call returns kClose.
//
// AUTH (RFC 4954) — the session frames the exchange, the host runs the mechanism:
// - kAuthenticate means the client sent a SASL message: the AUTH command itself
//   (auth_starting() true: the host drops any state of an earlier exchange and creates a
//   new mechanism for auth_mechanism()) or a response line after a 334 (auth_starting()
//   false: the same mechanism continues). auth_has_response() is false only for an AUTH
//   command without an initial response; auth_response() is the decoded octets ("=" on
//   the wire is an empty response).
// - The host answers with exactly one call, then goes on calling next():
//     auth_challenge(raw)  → "334 base64(raw)"; the client's next line comes back as
//                            another kAuthenticate (auth_starting() false);
//     auth_succeeded(user) → "235 2.7.0"; authenticated_user() is user from now on;
//     auth_failed(reply)   → that reply (535 5.7.8, 454 4.7.0, 501 5.5.2, 534 5.7.9...);
//                            the exchange is over and it counts toward limits.max_errors.
//   Until it answers, next() keeps returning kAuthenticate and no input is consumed (bytes
//   given to receive() meanwhile are kept, in order, and run after the answer: RFC 4954
//   §4 lets a client pipeline MAIL behind "AUTH PLAIN <initial-response>"; a line sent
//   before its 334 is read as the response, never as a command). After receive_eof() the
//   host still answers; the session closes afterwards. Answers at any other time (also
//   after timeout()/shutdown()/kClose) are ignored. The arguments of an answer may point
//   into auth_response(). A failure reply that is not 4xx/5xx becomes 454 4.7.0.
// - auth_response() is valid only until the host's answer: the session overwrites it
//   with zeros then, and also overwrites the consumed wire form of every AUTH line. The
//   host must copy nothing of it that outlives the step, and must never log it.
// - The session ends an exchange itself, without calling the host, when the client
//   cancels ("*" → 501 5.0.0), sends undecodable base64 (501 5.5.2) or a line over 12288
//   octets incl. CRLF (500 5.5.6; AUTH command lines get that limit instead of
//   limits.max_command_line where mechanisms are configured), or when the connection ends; the
//   host's mechanism state for that exchange is then simply dropped at the next auth_starting() or
//   with the session.
//
// Checks (the host's check pipeline, docs/architecture.md "Checks") — the session asks before
// it acts on a command whose stage is in SessionConfig::checked_stages:
// - kCheck means a command passed every protocol check and the session is about to accept
//   it: the connection itself (at start(), before the greeting), EHLO/HELO, MAIL, or one
//   RCPT. check_stage() says which, check_argument() gives the HELO name, the reverse-path
//   or the recipient address.
// - The host answers with exactly one call: check_passed() (the session goes on as if no
//   check existed: the greeting, 250 ...) or check_refused(reply) (that reply instead; the
//   command has no effect; a refused RCPT refuses that recipient only). A refusal at connect
//   with a 4xx reply closes the connection; with a 5xx reply (RFC 5321 §3.1: "554 ... instead
//   of the 220") the session waits for QUIT and answers every other command 503 5.5.1.
// - Until the answer, next() keeps returning kCheck and no input is consumed, so replies keep
//   the order of the commands under PIPELINING (RFC 2920 §3.1). Answers at any other time
//   are ignored. A refusal reply that is not 4xx/5xx becomes 451 4.3.0.
// With checked_stages 0 (no check configured) kCheck never occurs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "smtp/envelope.h"
#include "smtp/reply.h"
#include "smtp/session_limits.h"

namespace smtp {

// How the listener this session belongs to treats TLS (docs/architecture.md "Listener roles").
enum class TlsMode {
  kImplicit,          // submissions: TLS from the first byte; STARTTLS never offered
  kStartTlsOptional,  // smtp: STARTTLS offered, mail accepted without it
  kStartTlsRequired,  // submission, or smtp with require_tls: 530 5.7.0 before STARTTLS
  kNone,              // local: a unix socket on this host; STARTTLS never offered (502)
};

// What the policy says about one recipient (checked at RCPT; pure, in-memory).
enum class RecipientVerdict {
  kAccept,
  kUnknownUser,  // 550 5.1.1
  kRelayDenied,  // 550 5.7.1
  kTempFail,     // 451 4.3.0
  kSrsInvalid,   // 550 5.1.1: an SRS address of ours whose hash does not match (delivery/srs.h)
  kSrsExpired,   // 550 5.1.1: an SRS address of ours past its validity window
  kLoop,         // 550 5.4.6 (an alias loop; RFC 5321 §4.3.2: 550, never 554, at RCPT)
  kTooMany,      // 550 5.5.3 (an alias that expands to too many addresses)
};

// The verdict and, for an accepted recipient that the policy expanded (an alias, a role
// account), the addresses it stands for. Each becomes an envelope recipient of its own with
// the original's NOTIFY and, unless the client gave one, ORCPT=rfc822;<original> (RFC 3461
// §4.2), all for one "250". With NOTIFY=SUCCESS and more than one address, the targets do
// not carry SUCCESS on: RFC 3461 §5.2.7 (the MTA "expanded" the recipient).
struct RecipientDecision {
  RecipientVerdict verdict = RecipientVerdict::kAccept;
  std::vector<std::string> expansion;  // empty: the address as given
  RecipientDecision() = default;
  RecipientDecision(RecipientVerdict v) : verdict(v) {}  // NOLINT: a plain verdict converts
  RecipientDecision(RecipientVerdict v, std::vector<std::string> targets)
      : verdict(v), expansion(std::move(targets)) {}
  bool operator==(RecipientVerdict v) const { return verdict == v; }
};

// The stages of a session a check can look at (bits of SessionConfig::checked_stages).
enum class CheckStage : unsigned {
  kConnect = 1u << 0,
  kHelo = 1u << 1,
  kMail = 1u << 2,
  kRcpt = 1u << 3,
};

struct SessionConfig {
  std::string hostname;  // our name, in the greeting and EHLO reply
  TlsMode tls_mode = TlsMode::kStartTlsOptional;
  SessionLimits limits;
  // SASL mechanisms offered after TLS, upper-case, in order of preference (e.g.
  // {"SCRAM-SHA-256-PLUS", "SCRAM-SHA-256", "PLAIN", "LOGIN"}). Empty: AUTH is never
  // advertised and the command gets 502 5.5.1 (the smtp role). Never offered before TLS.
  std::vector<std::string> auth_mechanisms;
  // Submission roles: MAIL before a successful AUTH gets 530 5.7.0 (RFC 4954 §6).
  bool require_auth = false;
  // false (submission): MAIL FROM:<> gets 553 5.7.1.
  bool allow_null_sender = true;
  // When set and the session is authenticated: may this user use this envelope sender
  // (own address or alias)? false → 553 5.7.1. Not asked for the null sender.
  std::function<bool(std::string_view user, std::string_view sender)> may_send_as;
  // When set and the session is authenticated: the envelope sender a MAIL FROM becomes, given
  // the user and the address the client gave ("" for <>). The local submission role rewrites
  // it to the user's own address this way instead of refusing it (may_send_as is not asked).
  std::function<std::string(std::string_view user, std::string_view sender)> sender_for;
  // Decides each RCPT (pure; may be empty, then every recipient is accepted).
  // authenticated_user is "" when the session has not authenticated, so the host can let
  // authenticated users relay while the MX refuses to.
  std::function<RecipientDecision(std::string_view address, std::string_view authenticated_user)>
      check_recipient;
  // Asked at each MAIL with the declared SIZE (0 without one): is there room to store the
  // message? false → "452 4.3.1" (RFC 1870 §6.1, RFC 3463 X.3.1), and the client retries
  // later. May be empty (always room).
  std::function<bool(std::uint64_t declared_size)> has_room_for;
  // The largest message this recipient's domain takes (0: no limit of its own, the
  // session's limits.max_message_size holds). Asked for each recipient the policy accepts
  // and for each address it expands to (the smallest counts):
  // a declared SIZE over it gets 552 5.3.4 at RCPT (RFC 1870 §6.2), and the smallest such
  // limit of the accepted recipients bounds the message's data like max_message_size does
  // (552 5.3.4 for the whole message at the end of data). May be empty.
  std::function<std::uint64_t(std::string_view address)> recipient_size_limit;
  // The CheckStage bits where the host runs checks (kCheck); 0: none.
  unsigned checked_stages = 0;
};

// The early-talker screen of the `smtp` role (docs/architecture.md "Screening"), per session.
struct EarlyTalkerScreen {
  // The greeting is "220-<host> ..." at once and "220 <host> ..." only at pregreet_passed();
  // input before that refuses the client: "554 <host> Protocol error: ..." as the greeting's
  // last line, then 503 to every command but QUIT (as after a connect check's 554).
  bool pregreet = false;
  // Bytes after a command that must end a pipelined group (RFC 2920 §3.1: EHLO, HELO, DATA,
  // VRFY, EXPN, NOOP; RFC 3207: STARTTLS), or after any command once the client said HELO
  // (no PIPELINING offered), in the same input: a refusal valid for that command (550, 554
  // for DATA, 421 otherwise) and close. Off: only improper_pipelining_count() counts them.
  bool refuse_improper_pipelining = false;
};

// What the TLS layer tells the session after a handshake.
struct TlsInfo {
  std::string version;  // "TLSv1.3"
  std::string cipher;   // "TLS_AES_256_GCM_SHA384"
  std::string sni;      // server name the client asked for, or empty
};

// What the host should wait for next (used to choose the RFC 5321 §4.5.3.2 timeout).
enum class Waiting { kCommand, kDataBlock };

enum class Action {
  kNeedInput,
  kStartTls,
  kMessageBegin,
  kMessageData,
  kMessageEnd,
  kClose,
  // The session refused the message being stored (size, bare CR/LF, line length, peer gone,
  // RSET during BDAT, timeout...): discard the spool file, call nothing back.
  kMessageAbort,
  // The client sent a SASL message (AUTH command or a response to a 334): see "AUTH" at
  // the top of this file.
  kAuthenticate,
  // A command (or the connection) awaits the host's checks: see "Checks" at the top.
  kCheck,
};

class ServerSession {
 public:
  explicit ServerSession(const SessionConfig& config);
  ~ServerSession();
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // Queue the 220 greeting. For implicit TLS the host calls tls_established() first.
  void start();

  // Local submission (docs/architecture.md "Listener roles", role local), before start(): the
  // host knows the peer from its socket's credentials, so the session is authenticated as
  // `user` from the start, without an AUTH exchange, for its whole life (there is no TLS to
  // reset it).
  void set_local_user(std::string_view user);
  // Before start(): this reply (4xx or 5xx) replaces the greeting, as a refusal by a connect
  // check does (a 4xx closes; a 5xx serves QUIT only). For a peer the host will not serve.
  void refuse_at_start(const Reply& reply);
  // Before start(): screen this client as an early talker (EarlyTalkerScreen).
  void screen_early_talkers(const EarlyTalkerScreen& screen);
  // The greeting's last line is held back (EarlyTalkerScreen::pregreet): the host waits for
  // input at most its pre-greet wait, then calls pregreet_passed() (the final "220 " line)
  // if nothing came; input that comes first is given to receive() as usual.
  bool pregreet_pending() const;
  void pregreet_passed();
  // "pregreet" or "pipelining" once the screen refused the client, else "" (for the log).
  std::string_view early_talker() const;

  // Per session (it may name the session in a log line, so it is not in the shared
  // SessionConfig): asked at MAIL once the session is authenticated — may this user start
  // one more message now (its hourly message rate)? false → "451 4.7.1", and the client
  // retries later. Unset: always.
  void set_message_gate(std::function<bool(std::string_view user)> may_start_message);

  // Per session: told, with the mechanism, each time the session itself refuses an AUTH
  // response it cannot decode (501 5.5.2, RFC 4954 §4), so that the host can count it as a
  // failed attempt (a client must not probe forever with garbage). Unset: nobody is told.
  void set_malformed_auth_observer(std::function<void(std::string_view mechanism)> observer);

  // Bytes the peer sent; the session keeps what it has not consumed yet.
  void receive(std::string_view bytes);
  // The peer closed its side (or the connection broke).
  void receive_eof();
  // The host's read deadline passed: 421 4.4.2 and close.
  void timeout();
  // The host is shutting down: 421 4.3.2 and close.
  void shutdown();
  // A connection refused before any session starts (a connection limit, a peer that is not
  // a configured proxy): appends "421 4.7.0 <hostname> <reason>" to out, the reply RFC 5321
  // §3.1 allows instead of the greeting. The host writes it and closes.
  static void append_refusal(std::string& out, std::string_view hostname, std::string_view reason);

  // The next thing the host must do. Call after every receive()/result.
  Action next();

  // Replies (and nothing else) to send to the peer, in order.
  std::string_view pending_output() const;
  void consume_output(std::size_t n);

  // For kStartTls and implicit TLS: handshake done. Resets the session to its initial
  // state (RFC 3207 §4.2) — no new greeting is sent.
  void tls_established(const TlsInfo& info);
  // For kMessageBegin / kMessageData / kMessageEnd.
  const Envelope& envelope() const;
  std::string_view message_data() const;
  void message_committed(std::string_view queue_id);  // 250 2.0.0 ... queued as <id>
  void message_failed(const Reply& reply);            // this reply ends the transaction

  // For kAuthenticate: the client's latest SASL message.
  std::string_view auth_mechanism() const;  // upper-case, one of config.auth_mechanisms
  bool auth_starting() const;               // from the AUTH command: a new exchange
  bool auth_has_response() const;           // false: AUTH without an initial response
  std::string_view auth_response() const;   // decoded; valid until the host's answer
  // The host's answer to kAuthenticate (exactly one of them).
  void auth_challenge(std::string_view raw);   // 334 base64(raw); wait for the next line
  void auth_succeeded(std::string_view user);  // 235 2.7.0; the session is authenticated
  void auth_failed(const Reply& reply);        // that reply (a 4xx or 5xx); counts as an error

  // For kCheck: the stage, its argument, and the host's answer (exactly one of the two).
  CheckStage check_stage() const;
  std::string_view check_argument() const;
  void check_passed();
  void check_refused(const Reply& reply);

  // Facts for the host: logging, the Received header, timeouts.
  bool tls_active() const;
  const TlsInfo& tls_info() const;
  // The user the host named in auth_succeeded(), or "" (STARTTLS resets it; RSET does not).
  const std::string& authenticated_user() const;
  Waiting waiting() const;
  // A mail transaction is open (MAIL accepted, not yet ended by the final reply to its
  // data or by RSET): a graceful shutdown lets it finish before the 421.
  bool in_transaction() const;
  // "SMTP", "ESMTP", "ESMTPS", "ESMTPA", "ESMTPSA" (RFC 3848) for the Received header of
  // the current message.
  std::string_view with_protocol() const;
  // The first command looked like HTTP (ALPACA); the session closed at once.
  bool closed_as_http() const;
  // Replies caused by the peer's mistakes so far (421 4.7.0 at limits.max_errors).
  unsigned error_count() const;
  // Commands that RFC 2920 §3.1 says must end a pipelined group but were followed by more
  // input in the same read (for logging: clients that do not wait for replies).
  unsigned improper_pipelining_count() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace smtp
