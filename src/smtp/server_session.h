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
//       case Action::kClose:        flush output, close the connection.
//     }
//   }
// Invariants: output is only appended; message_data() stays valid until the next call
// into the session; after kClose every call returns kClose.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "smtp/envelope.h"
#include "smtp/reply.h"

namespace smtp {

// How the listener this session belongs to treats TLS (DESIGN.md §3).
enum class TlsMode {
  kImplicit,          // submissions: TLS from the first byte; STARTTLS never offered
  kStartTlsOptional,  // smtp: STARTTLS offered, mail accepted without it
  kStartTlsRequired,  // submission, or smtp with require_tls: 530 5.7.0 before STARTTLS
};

// What the policy says about one recipient (checked at RCPT; pure, in-memory).
enum class RecipientVerdict {
  kAccept,
  kUnknownUser,  // 550 5.1.1
  kRelayDenied,  // 550 5.7.1
  kTempFail,     // 451 4.3.0
};

struct SessionLimits {
  std::size_t max_command_line = 2048;  // octets incl. CRLF; RFC 5321 §4.5.3.1.4 says 512
                                        // at least, plus room for ESMTP parameters
  std::size_t max_text_line = 1000;     // octets incl. CRLF in DATA, §4.5.3.1.6
  std::size_t max_recipients = 100;     // 452 4.5.3 past it, §4.5.3.1.8
  std::uint64_t max_message_size = 35u * 1024 * 1024;  // 552 5.3.4, RFC 1870
  unsigned max_errors = 10;                            // 421 4.7.0 and close after this many
  bool normalize_bare_line_endings = false;  // opt-in leniency: turn bare CR/LF in DATA into CRLF
                                             // instead of refusing the message
};

struct SessionConfig {
  std::string hostname;  // our name, in the greeting and EHLO reply
  TlsMode tls_mode = TlsMode::kStartTlsOptional;
  bool accepts_mail = true;  // false: submission role before AUTH exists — MAIL gets 530
  SessionLimits limits;
  // Decides each RCPT (pure; may be empty, then every recipient is accepted).
  std::function<RecipientVerdict(std::string_view address)> check_recipient;
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
  // The session refused the message being stored (size, bare CR/LF, line length, peer
  // gone, RSET during BDAT, timeout...): discard the spool file, call nothing back.
  kMessageAbort,
};

class ServerSession {
 public:
  explicit ServerSession(const SessionConfig& config);
  ~ServerSession();
  ServerSession(const ServerSession&) = delete;
  ServerSession& operator=(const ServerSession&) = delete;

  // Queue the 220 greeting. For implicit TLS the host calls tls_established() first.
  void start();

  // Bytes the peer sent; the session keeps what it has not consumed yet.
  void receive(std::string_view bytes);
  // The peer closed its side (or the connection broke).
  void receive_eof();
  // The host's read deadline passed: 421 4.4.2 and close.
  void timeout();
  // The host is shutting down: 421 4.3.2 and close.
  void shutdown();

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

  // Facts for the host: logging, the Received header, timeouts.
  bool tls_active() const;
  const TlsInfo& tls_info() const;
  Waiting waiting() const;
  // "SMTP", "ESMTP", "ESMTPS" (RFC 3848) for the Received header of the current message.
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
