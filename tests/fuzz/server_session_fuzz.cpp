// server_session_fuzz.cpp — libFuzzer target: arbitrary bytes into smtp::ServerSession,
// cut into pieces of varying size, with a host that answers every action (commits with a
// fake id, sometimes fails), completes STARTTLS handshakes and plays a SASL mechanism at
// random (a challenge, a success or a failure at each kAuthenticate).
//
// Input layout: byte 0 chooses the configuration, byte 1 seeds the piece sizes, byte 2
// when (and whether) the host times out or shuts down; the rest is what the peer sends.
// Invariants checked (a violation traps):
// - output only grows by complete CRLF-terminated lines, each "DDD " or "DDD-" plus text,
//   the lines of one multi-line reply sharing their code;
// - message actions come in order: Begin, Data*, then End or Abort (or a host failure);
//   message_data() is never larger than 64 KiB;
// - next() makes progress (never loops without asking for input);
// - kAuthenticate only with TLS active, for an offered mechanism, with a response no
//   longer than a 12288-octet line can carry; the response is gone after the answer;
// - after kClose, every call returns kClose and nothing is output.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtp/server_session.h"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

struct OutputChecker {
  std::string partial;      // bytes of a line not yet terminated (must stay empty)
  int continued_code = -1;  // code of an open multi-line reply

  void take(std::string_view output) {
    // The session only appends whole lines: each flush ends with CRLF.
    check(output.empty() || output.ends_with("\r\n"));
    std::size_t start = 0;
    while (start < output.size()) {
      std::size_t end = output.find("\r\n", start);
      check(end != std::string_view::npos);
      std::string_view line = output.substr(start, end - start);
      start = end + 2;
      check(line.size() >= 4);
      check(line[0] >= '2' && line[0] <= '5');
      check(line[1] >= '0' && line[1] <= '9');
      check(line[2] >= '0' && line[2] <= '9');
      check(line[3] == ' ' || line[3] == '-');
      check(line.find('\r') == std::string_view::npos && line.find('\n') == std::string_view::npos);
      int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
      if (continued_code >= 0) check(code == continued_code);
      continued_code = line[3] == '-' ? code : -1;
    }
  }
};

struct Host {
  smtp::ServerSession& session;
  OutputChecker checker;
  std::uint32_t rng;
  std::uint8_t flags;
  bool closed = false;
  bool handshake_failed = false;  // the host closed the connection itself
  bool writer_open = false;
  bool authenticated = false;
  int ids = 0;

  std::uint32_t random() {
    rng = rng * 1103515245u + 12345u;
    return rng >> 16;
  }

  void flush() {
    checker.take(session.pending_output());
    session.consume_output(session.pending_output().size());
  }

  void run() {
    for (int steps = 0; steps < 1000000; ++steps) {
      flush();
      smtp::Action action = session.next();
      if (closed) check(action == smtp::Action::kClose);
      switch (action) {
        case smtp::Action::kNeedInput:
          flush();
          return;
        case smtp::Action::kStartTls:
          check(!writer_open);
          flush();
          if (flags & 0x20) {  // the handshake fails: the host closes
            closed = true;
            handshake_failed = true;
            return;
          }
          session.tls_established(smtp::TlsInfo{"TLSv1.3", "TLS_AES_128_GCM_SHA256", ""});
          break;
        case smtp::Action::kMessageBegin:
          check(!writer_open);
          writer_open = true;
          if ((flags & 0xC0) == 0x40 && random() % 4 == 0) {
            writer_open = false;
            session.message_failed(smtp::Reply{451, "4.3.0", "spool unavailable"});
          }
          break;
        case smtp::Action::kMessageData:
          check(writer_open);
          check(session.message_data().size() <= 64 * 1024);
          check(!session.message_data().empty());
          if ((flags & 0xC0) == 0x80 && random() % 8 == 0) {
            writer_open = false;
            session.message_failed(smtp::Reply{452, "4.3.1", "disk full"});
          }
          break;
        case smtp::Action::kMessageEnd:
          check(writer_open);
          writer_open = false;
          if ((flags & 0xC0) == 0xC0 && random() % 2 == 0) {
            session.message_failed(smtp::Reply{451, "4.3.0", "fsync failed"});
          } else {
            session.message_committed("Q" + std::to_string(++ids));
          }
          break;
        case smtp::Action::kMessageAbort:
          check(writer_open);
          writer_open = false;
          break;
        case smtp::Action::kCheck: {
          // The host's checks: pass, or refuse with a reply of any class (a non-refusal must
          // become 451, a 4xx at connect closes, a 5xx at connect leaves only QUIT).
          check(!writer_open);
          static const smtp::Reply kRefusals[] = {{550, "5.7.1", "refused by a check"},
                                                  {451, "4.7.1", "try later"},
                                                  {554, "5.7.1", "listed"},
                                                  {421, "4.7.0", "go away"},
                                                  {250, "2.0.0", "not a refusal"}};
          const std::uint32_t pick = random() % 8;
          if (pick < 5)
            session.check_refused(kRefusals[pick]);
          else
            session.check_passed();
          break;
        }
        case smtp::Action::kAuthenticate: {
          check(session.tls_active());
          check(!writer_open);
          check(!authenticated);
          const std::string_view mechanism = session.auth_mechanism();
          check(mechanism == "PLAIN" || mechanism == "LOGIN" || mechanism == "SCRAM-SHA-256");
          check(session.auth_has_response() || session.auth_response().empty());
          check(session.auth_response().size() <= 12288 / 4 * 3);
          const std::uint32_t choice = random() % 4;
          if (choice < 2) {
            session.auth_challenge(choice == 0 ? std::string_view() : session.auth_response());
          } else if (choice == 2) {
            session.auth_succeeded("user@fuzz.example");
            authenticated = true;
            check(session.authenticated_user() == "user@fuzz.example");
          } else {
            session.auth_failed(smtp::Reply{535, "5.7.8", "Authentication credentials invalid"});
          }
          check(session.auth_response().empty());
          break;
        }
        case smtp::Action::kClose:
          flush();
          check(!writer_open);  // every spool file was committed, failed or aborted
          closed = true;
          check(session.next() == smtp::Action::kClose);
          check(session.pending_output().empty());
          return;
      }
    }
    check(false);  // no progress
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 3) return 0;
  const std::uint8_t flags = data[0];
  const std::uint8_t seed = data[1];
  const std::uint8_t event = data[2];
  std::string_view input(reinterpret_cast<const char*>(data + 3), size - 3);

  smtp::SessionConfig config;
  config.hostname = "mx.fuzz.example";
  switch (flags & 3) {
    case 0:
      config.tls_mode = smtp::TlsMode::kStartTlsOptional;
      break;
    case 1:
      config.tls_mode = smtp::TlsMode::kStartTlsRequired;
      break;
    default:
      config.tls_mode = smtp::TlsMode::kImplicit;
      break;
  }
  config.limits.normalize_bare_line_endings = (flags & 4) != 0;
  if (flags & 8) {
    config.limits.max_command_line = 64;
    config.limits.max_text_line = 40;
    config.limits.max_message_size = 200;
    config.limits.max_recipients = 3;
    config.limits.max_errors = 5;
  }
  if (flags & 0x10) {  // a submission role: AUTH offered and required
    config.auth_mechanisms = {"SCRAM-SHA-256", "PLAIN", "login"};
    config.require_auth = true;
    config.allow_null_sender = false;
    config.may_send_as = [](std::string_view user, std::string_view sender) {
      check(!user.empty());
      return !sender.starts_with("other");
    };
  }
  config.checked_stages = (seed >> 4) & 0xF;  // connect, HELO, MAIL, RCPT in any mix
  config.check_recipient = [](std::string_view address,
                              std::string_view user) -> smtp::RecipientDecision {
    if (address.starts_with("unknown")) return smtp::RecipientVerdict::kUnknownUser;
    if (address.starts_with("relay") && user.empty()) return smtp::RecipientVerdict::kRelayDenied;
    if (address.starts_with("later")) return smtp::RecipientVerdict::kTempFail;
    if (address.starts_with("loop")) return smtp::RecipientVerdict::kLoop;
    if (address.starts_with("huge")) return smtp::RecipientVerdict::kTooMany;
    // An alias: its targets become the recipients (ORCPT and NOTIFY of the original).
    if (address.starts_with("alias")) {
      return {smtp::RecipientVerdict::kAccept, {"a@x.example", "b@x.example", "c@remote.example"}};
    }
    return smtp::RecipientVerdict::kAccept;
  };

  smtp::ServerSession session(config);
  // The early-talker screen's pipelining refusal. Not its pre-greet wait: that needs the
  // host's timer, and its refusal after "220-" breaks the one-code-per-reply invariant on
  // purpose (server_session.cpp, refuse_early_talker).
  session.screen_early_talkers(
      smtp::EarlyTalkerScreen{.pregreet = false, .refuse_improper_pipelining = (seed & 8) != 0});
  Host host{session, {}, seed, flags};
  if (config.tls_mode == smtp::TlsMode::kImplicit) {
    session.tls_established(smtp::TlsInfo{"TLSv1.3", "TLS_AES_256_GCM_SHA384", ""});
  }
  session.start();
  host.run();

  std::size_t pos = 0;
  unsigned piece_number = 0;
  while (pos < input.size() && !host.closed) {
    std::size_t piece;
    if (seed == 0) {
      piece = input.size();  // everything in one receive
    } else {
      std::uint32_t r = host.random();
      piece = (r & 3) == 0 ? 1 + r % 4096 : 1 + r % 17;
    }
    piece = std::min(piece, input.size() - pos);
    session.receive(input.substr(pos, piece));
    pos += piece;
    host.run();
    ++piece_number;
    if (event != 0 && piece_number == (event >> 1) && !host.closed) {
      if (event & 1) {
        session.timeout();
      } else {
        session.shutdown();
      }
      host.run();
      check(host.closed);
    }
  }
  if (!host.closed) {
    session.receive_eof();
    host.run();
    check(host.closed);
  }
  if (host.handshake_failed) return 0;  // the host dropped the session; nothing to check
  // After the close nothing changes.
  session.receive("NOOP\r\n");
  session.timeout();
  check(session.next() == smtp::Action::kClose);
  check(session.pending_output().empty());
  return 0;
}
