// client_session.cpp — the sending side of SMTP/LMTP as a pure state machine.
//
// RFC 5321 (sequencing §3.3, §4.1.4; replies §4.2; HELO fallback §3.2), RFC 2033 (LMTP: LHLO,
// one reply per accepted recipient after the data), RFC 2920 (PIPELINING), RFC 3207
// (STARTTLS), RFC 4954 / RFC 4616 (AUTH PLAIN, and LOGIN), RFC 1870 (SIZE), RFC 6152
// (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (RET, ENVID, NOTIFY, ORCPT), RFC 2034 / 3463,
// RFC 8689 (REQUIRETLS passed on; never sent without TLS and the server's REQUIRETLS).
//
// Invariants:
// - State kWaiting ⇔ expected_ holds at least one reply we wait for; replies are matched to
//   its head in order. Every handler either queues what comes next or leaves kWaiting.
// - The input buffer is parsed in place; a reply line is never copied, only the reply's
//   strings are built (reusing their capacity), so reading costs no allocation per line.
// - Commands are staged once per transaction in one string (staged_text_) and written all
//   at once with PIPELINING, one at a time without it.
// - Every command line is checked for CR, LF and NUL in what came from outside (addresses,
//   NOTIFY, ORCPT type) before it is staged; ENVID and ORCPT addresses are xtext.
#include "smtp/client_session.h"

#include <charconv>
#include <cstring>

#include "base/ascii.h"
#include "base/base64.h"
#include "smtp/dot_stuffing.h"
#include "smtp/esmtp_parameters.h"

namespace smtp {

namespace {

// Overwrites octets that held a secret; through a volatile pointer so that the stores are
// not removed as dead.
void wipe(std::string& secret) {
  volatile char* octets = secret.data();
  for (std::size_t i = 0; i < secret.size(); ++i)
    octets[i] = 0;
  secret.clear();
}

bool has_line_break_or_nul(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

char upper(char c) {
  return base::ascii_upper(c);
}

void append_decimal(std::string& out, std::uint64_t value) {
  char digits[24];
  auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, result.ptr);
}

// xtext of RFC 3461 §4: "+" and "=" and octets outside "!".."~" as "+" 2 upper-case HEX.
void append_xtext(std::string& out, std::string_view raw) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  for (char c : raw) {
    const auto octet = static_cast<unsigned char>(c);
    if (octet >= '!' && octet <= '~' && c != '+' && c != '=') {
      out.push_back(c);
    } else {
      out.push_back('+');
      out.push_back(kHex[octet >> 4]);
      out.push_back(kHex[octet & 15]);
    }
  }
}

// Length of an enhanced status code "c.sss.ddd" at the start of text whose class is the
// reply's class (RFC 3463 §2; RFC 2034 §4: "the status code ... MUST be the first thing
// in the text"), followed by a space or the end; 0 when there is none.
std::size_t enhanced_code_length(std::string_view text, int code) {
  const int reply_class = code / 100;
  if (reply_class != 2 && reply_class != 4 && reply_class != 5) return 0;
  if (text.size() < 5 || text[0] != static_cast<char>('0' + reply_class) || text[1] != '.') {
    return 0;
  }
  std::size_t pos = 2;
  for (int part = 0; part < 2; ++part) {
    const std::size_t start = pos;
    while (pos < text.size() && pos - start < 4 && is_digit(text[pos]))
      ++pos;
    const std::size_t digits = pos - start;
    if (digits < 1 || digits > 3) return 0;
    if (part == 0) {
      if (pos >= text.size() || text[pos] != '.') return 0;
      ++pos;
    }
  }
  if (pos < text.size() && text[pos] != ' ') return 0;
  return pos;
}

ServerReply synthetic(int code, std::string_view enhanced, std::string_view text) {
  return ServerReply{code, std::string(enhanced), std::string(text)};
}

}  // namespace

std::string ServerReply::summary() const {
  std::string line;
  line.reserve(4 + enhanced.size() + 1 + text.size());
  append_decimal(line, static_cast<std::uint64_t>(code < 0 ? 0 : code));
  if (!enhanced.empty()) {
    line.push_back(' ');
    line.append(enhanced);
  }
  if (!text.empty()) {
    line.push_back(' ');
    for (char c : text) {
      const auto octet = static_cast<unsigned char>(c);
      if (c == '\n') {
        line.push_back(' ');
      } else if (octet < 0x20 || octet == 0x7F) {
        line.push_back('?');
      } else {
        line.push_back(c);
      }
    }
  }
  return line;
}

struct ClientSession::Impl {
  enum class State {
    kWaiting,       // commands sent, replies expected (expected_ not empty)
    kTlsHandshake,  // STARTTLS got 220: the host does the handshake
    kReady,         // idle
    kContent,       // 354 received: the host sends content
    kMessageDone,   // results ready; next() reports kMessageDone once
    kClosed,
    kFailed,
  };

  // What a reply answers (one row of the expected-reply queue).
  enum class Expect : std::uint8_t {
    kGreeting,
    kEhlo,  // EHLO or LHLO
    kHelo,
    kStartTls,
    kAuthPlain,  // AUTH PLAIN with its initial response
    kAuthLogin,  // AUTH LOGIN: 334 asks for the user name
    kAuthLoginUser,
    kAuthLoginPassword,
    kRset,
    kMail,
    kRcpt,  // slot: index into results_
    kData,
    kEndOfData,           // SMTP: one reply; LMTP: slot is the position in accepted_
    kDiscardedEndOfData,  // "." sent after a 354 nobody could use; the reply is ignored
    kQuit,
  };
  struct Expected {
    Expect what;
    std::size_t slot;
  };
  // A command of the transaction, staged in staged_text_[begin, end).
  struct Staged {
    Expect what;
    std::size_t slot;
    std::size_t begin;
    std::size_t end;
  };

  enum class ReadResult { kIncomplete, kComplete, kMalformed };

  explicit Impl(ClientConfig client_config) : config(std::move(client_config)) {
    tls_active_ = config.tls_active;
    input_.reserve(4096);
    expect(Expect::kGreeting);
  }

  ~Impl() { wipe(output_); }

  // ---- reply reading ------------------------------------------------------------------

  // Parses reply lines from input_ at input_pos_ into reply_; kComplete when the last line
  // of a reply was read. Lines end with CRLF or, leniently, a bare LF (servers in the wild
  // send them and reading them costs no safety: a reply line is never forwarded).
  ReadResult read_reply() {
    while (true) {
      const char* begin = input_.data() + input_pos_;
      const std::size_t available = input_.size() - input_pos_;
      const void* found = available == 0 ? nullptr : std::memchr(begin, '\n', available);
      if (found == nullptr) {
        std::size_t partial = available;
        if (partial > 0 && begin[partial - 1] == '\r') --partial;
        if (partial > config.max_reply_line) {
          return malformed("reply line longer than " + std::to_string(config.max_reply_line) +
                           " octets");
        }
        return ReadResult::kIncomplete;
      }
      const auto* newline = static_cast<const char*>(found);
      std::string_view line(begin, static_cast<std::size_t>(newline - begin));
      input_pos_ += line.size() + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.size() > config.max_reply_line) {
        return malformed("reply line longer than " + std::to_string(config.max_reply_line) +
                         " octets");
      }
      ReadResult result = parse_line(line);
      if (result != ReadResult::kIncomplete) return result;
    }
  }

  // RFC 5321 §4.2: Reply-line = *( Reply-code "-" [ textstring ] CRLF )
  //                             Reply-code [ SP textstring ] CRLF
  // Reply-code = %x32-35 %x30-35 %x30-39. §4.2.1: every line of a multi-line reply carries
  // the same code.
  ReadResult parse_line(std::string_view line) {
    if (line.size() < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
        !is_digit(line[2])) {
      return malformed("malformed reply line (no reply code)");
    }
    if (line.size() > 3 && line[3] != ' ' && line[3] != '-') {
      return malformed("malformed reply line (no space or hyphen after the reply code)");
    }
    if (line.find('\r') != std::string_view::npos) {
      return malformed("malformed reply line (bare CR)");
    }
    const int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    const bool last = line.size() == 3 || line[3] == ' ';
    std::string_view text = line.size() > 4 ? line.substr(4) : std::string_view();
    if (reply_lines_ == 0) {
      reply_.code = code;
      reply_.enhanced.clear();
      reply_.text.clear();
    } else if (code != reply_.code) {
      return malformed("reply code changed within a multi-line reply (" +
                       std::to_string(reply_.code) + " then " + std::to_string(code) + ")");
    }
    if (++reply_lines_ > config.max_reply_lines) {
      return malformed("reply longer than " + std::to_string(config.max_reply_lines) + " lines");
    }
    if (std::size_t length = enhanced_code_length(text, code); length > 0) {
      if (reply_lines_ == 1) reply_.enhanced.assign(text.substr(0, length));
      text.remove_prefix(length < text.size() ? length + 1 : length);
    }
    if (reply_lines_ > 1) reply_.text.push_back('\n');
    reply_.text.append(text);
    if (!last) return ReadResult::kIncomplete;
    reply_lines_ = 0;
    return ReadResult::kComplete;
  }

  ReadResult malformed(std::string detail) {
    fail("protocol", std::nullopt, std::move(detail));
    return ReadResult::kMalformed;
  }

  // ---- driving ------------------------------------------------------------------------

  ClientEvent next() {
    advance();
    switch (state_) {
      case State::kWaiting:
        return ClientEvent::kNeedInput;
      case State::kTlsHandshake:
        return ClientEvent::kStartTls;
      case State::kReady:
        return ClientEvent::kReady;
      case State::kContent:
        return ClientEvent::kSendContent;
      case State::kMessageDone:
        state_ = State::kReady;
        return ClientEvent::kMessageDone;
      case State::kClosed:
        return ClientEvent::kClosed;
      case State::kFailed:
        return ClientEvent::kFailed;
    }
    return ClientEvent::kFailed;
  }

  // Reads and handles every complete reply while one is expected (or, when idle, to catch
  // an unsolicited one such as a 421 before the server closes).
  void advance() {
    while (state_ == State::kWaiting || state_ == State::kReady) {
      const ReadResult result = read_reply();
      if (result == ReadResult::kMalformed) return;
      if (result == ReadResult::kIncomplete) {
        if (server_closed_) handle_eof();
        return;
      }
      if (state_ == State::kReady || expected_head_ == expected_.size()) {
        fail("protocol", reply_, "unsolicited reply: " + reply_.summary());
        return;
      }
      const Expected head = expected_[expected_head_++];
      if (expected_head_ == expected_.size()) {
        expected_.clear();
        expected_head_ = 0;
      }
      handle(head);
    }
    if (server_closed_) {
      if (state_ == State::kTlsHandshake) {
        fail("starttls", std::nullopt, "server closed the connection before the TLS handshake");
      } else if (state_ == State::kContent) {
        fail("content", std::nullopt, "server closed the connection during the message content");
      }
    }
  }

  void handle_eof() {
    if (state_ == State::kReady) {
      fail("protocol", std::nullopt, "server closed the connection while idle");
      return;
    }
    const Expect what = expected_[expected_head_].what;
    if (what == Expect::kQuit) {
      state_ = State::kClosed;
      return;
    }
    const bool partial = reply_lines_ > 0 || input_pos_ < input_.size();
    fail(stage_of(what), std::nullopt,
         partial ? "server closed the connection in the middle of a reply"
                 : "server closed the connection");
  }

  static const char* stage_of(Expect what) {
    switch (what) {
      case Expect::kGreeting:
        return "greeting";
      case Expect::kEhlo:
      case Expect::kHelo:
        return "ehlo";
      case Expect::kStartTls:
        return "starttls";
      case Expect::kAuthPlain:
      case Expect::kAuthLogin:
      case Expect::kAuthLoginUser:
      case Expect::kAuthLoginPassword:
        return "auth";
      case Expect::kRset:
      case Expect::kMail:
        return "mail";
      case Expect::kRcpt:
        return "rcpt";
      case Expect::kData:
        return "data";
      case Expect::kEndOfData:
      case Expect::kDiscardedEndOfData:
        return "content";
      case Expect::kQuit:
        return "quit";
    }
    return "protocol";
  }

  void fail(std::string_view stage, std::optional<ServerReply> reply, std::string detail) {
    if (state_ == State::kFailed) return;
    failure_.stage.assign(stage);
    failure_.reply = std::move(reply);
    failure_.detail = std::move(detail);
    state_ = State::kFailed;
    expected_.clear();
    expected_head_ = 0;
  }

  void expect(Expect what, std::size_t slot = 0) {
    expected_.push_back(Expected{what, slot});
    state_ = State::kWaiting;
  }

  void send_line(std::string_view command, Expect what) {
    output_.append(command);
    output_.append("\r\n");
    expect(what);
  }

  // ---- session set-up -----------------------------------------------------------------

  void handle(const Expected& head) {
    const ServerReply& reply = reply_;
    switch (head.what) {
      case Expect::kGreeting:
        // RFC 5321 §4.3.2: CONNECTION ESTABLISHMENT S: 220 E: 554.
        if (reply.code != 220) {
          fail("greeting", reply, "server refused the session: " + reply.summary());
          return;
        }
        greeting_ = reply;
        send_hello();
        return;
      case Expect::kEhlo:
        if (reply.code / 100 == 2) {
          parse_capabilities(reply.text);
          after_hello();
        } else if (reply.code / 100 == 5 && config.protocol == ClientProtocol::kSmtp &&
                   !tls_negotiated_) {
          // RFC 5321 §3.2: "If the EHLO command is not acceptable to the SMTP server, 501,
          // 500, 502, or 550 failure replies MUST be returned as appropriate. The SMTP
          // client MUST be able to handle ... by falling back to HELO". LMTP has no HELO.
          output_.append("HELO ").append(config.helo_name).append("\r\n");
          expect(Expect::kHelo);
        } else {
          fail("ehlo", reply,
               std::string(config.protocol == ClientProtocol::kLmtp ? "server refused LHLO: "
                                                                    : "server refused EHLO: ") +
                   reply.summary());
        }
        return;
      case Expect::kHelo:
        if (reply.code / 100 != 2) {
          fail("ehlo", reply, "server refused HELO: " + reply.summary());
          return;
        }
        capabilities_ = ServerCapabilities{};
        after_hello();
        return;
      case Expect::kStartTls:
        if (reply.code != 220) {
          fail("starttls", reply, "server refused STARTTLS: " + reply.summary());
          return;
        }
        // RFC 3207 §4.2: the client MUST discard any knowledge obtained before TLS; bytes
        // that came with the 220 would be read as if the server had sent them under TLS.
        if (input_pos_ < input_.size()) {
          fail("starttls", reply,
               "server sent data after its STARTTLS reply, before the TLS handshake "
               "(response injection, RFC 3207 §4.2)");
          return;
        }
        state_ = State::kTlsHandshake;
        return;
      case Expect::kAuthPlain:
      case Expect::kAuthLoginPassword:
        if (reply.code != 235) {
          fail("auth", reply, "authentication failed: " + reply.summary());
          return;
        }
        authenticated_ = true;
        state_ = State::kReady;
        return;
      case Expect::kAuthLogin:
      case Expect::kAuthLoginUser: {
        // RFC 4954 §4: 334 carries the server's challenge ("Username:", "Password:" for
        // LOGIN, which we need not read).
        if (reply.code != 334) {
          fail("auth", reply, "authentication failed: " + reply.summary());
          return;
        }
        const bool user = head.what == Expect::kAuthLogin;
        base::append_base64(output_, user ? config.auth_user : config.auth_password);
        output_.append("\r\n");
        expect(user ? Expect::kAuthLoginUser : Expect::kAuthLoginPassword);
        return;
      }
      case Expect::kQuit:
        // RFC 5321 §4.1.1.10: the reply to QUIT "MUST be 221"; whatever it is, the session
        // is over.
        state_ = State::kClosed;
        return;
      case Expect::kRset:
      case Expect::kMail:
      case Expect::kRcpt:
      case Expect::kData:
      case Expect::kEndOfData:
      case Expect::kDiscardedEndOfData:
        handle_transaction(head);
        return;
    }
  }

  void send_hello() {
    // Our own name is configuration, but a line break in it would forge commands.
    if (config.helo_name.empty() || has_line_break_or_nul(config.helo_name)) {
      fail("ehlo", std::nullopt, "helo_name is empty or contains CR, LF or NUL");
      return;
    }
    output_.append(config.protocol == ClientProtocol::kLmtp ? "LHLO " : "EHLO ");
    output_.append(config.helo_name).append("\r\n");
    expect(Expect::kEhlo);
  }

  // The EHLO keywords of RFC 5321 §4.1.1.1: ehlo-line = ehlo-keyword *( SP ehlo-param ).
  void parse_capabilities(std::string_view text) {
    capabilities_ = ServerCapabilities{};
    capabilities_.esmtp = true;
    std::size_t newline = text.find('\n');
    if (newline == std::string_view::npos) return;  // the greeting line only
    text.remove_prefix(newline + 1);
    while (true) {
      newline = text.find('\n');
      std::string_view line = text.substr(0, newline);
      std::size_t space = line.find_first_of(" =");  // "AUTH=LOGIN" of old servers too
      std::string_view keyword = line.substr(0, space);
      std::string_view params =
          space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
      if (equals_ignoring_case(keyword, "STARTTLS")) {
        capabilities_.starttls = true;
      } else if (equals_ignoring_case(keyword, "PIPELINING")) {
        capabilities_.pipelining = true;
      } else if (equals_ignoring_case(keyword, "8BITMIME")) {
        capabilities_.eightbitmime = true;
      } else if (equals_ignoring_case(keyword, "SMTPUTF8")) {
        capabilities_.smtputf8 = true;
      } else if (equals_ignoring_case(keyword, "DSN")) {
        capabilities_.dsn = true;
      } else if (equals_ignoring_case(keyword, "REQUIRETLS")) {
        capabilities_.requiretls = true;
      } else if (equals_ignoring_case(keyword, "CHUNKING")) {
        capabilities_.chunking = true;
      } else if (equals_ignoring_case(keyword, "ENHANCEDSTATUSCODES")) {
        capabilities_.enhanced_status_codes = true;
      } else if (equals_ignoring_case(keyword, "SIZE")) {
        // RFC 1870 §4: "SIZE" [SP number]; 0 or none: no fixed maximum.
        std::optional<std::uint64_t> limit = parse_decimal(params);
        capabilities_.size = true;
        capabilities_.size_limit = limit.value_or(0);
      } else if (equals_ignoring_case(keyword, "AUTH")) {
        add_mechanisms(params);
      }
      if (newline == std::string_view::npos) return;
      text.remove_prefix(newline + 1);
    }
  }

  void add_mechanisms(std::string_view params) {
    while (!params.empty()) {
      const std::size_t space = params.find(' ');
      std::string_view name = params.substr(0, space);
      params = space == std::string_view::npos ? std::string_view() : params.substr(space + 1);
      if (name.empty()) continue;
      bool known = false;
      for (const std::string& mechanism : capabilities_.auth_mechanisms)
        known = known || equals_ignoring_case(mechanism, name);
      if (known) continue;
      std::string& added = capabilities_.auth_mechanisms.emplace_back(name);
      for (char& c : added)
        c = upper(c);
    }
  }

  bool offers(std::string_view mechanism) const {
    for (const std::string& offered : capabilities_.auth_mechanisms) {
      if (offered == mechanism) return true;
    }
    return false;
  }

  void after_hello() {
    if (!tls_active_ && config.starttls && capabilities_.starttls) {
      send_line("STARTTLS", Expect::kStartTls);
      return;
    }
    if (!tls_active_ && config.require_tls) {
      fail("starttls", std::nullopt,
           config.starttls ? "server does not offer STARTTLS and TLS is required"
                           : "TLS is required but STARTTLS is disabled");
      return;
    }
    if (!config.auth_user.empty() && !authenticated_) {
      start_auth();
      return;
    }
    state_ = State::kReady;
  }

  void start_auth() {
    // RFC 4954 §4 leaves it to policy; ours (docs/architecture.md "Security rules"): never a
    // password in clear.
    if (!tls_active_) {
      fail("auth", std::nullopt, "refusing to send a password without TLS");
      return;
    }
    if (offers("PLAIN")) {
      // RFC 4616 §2: message = [authzid] UTF8NUL authcid UTF8NUL passwd; RFC 4954 §4: the
      // initial response saves a round trip.
      std::string message;
      message.reserve(config.auth_user.size() + config.auth_password.size() + 2);
      message.push_back('\0');
      message.append(config.auth_user);
      message.push_back('\0');
      message.append(config.auth_password);
      output_.append("AUTH PLAIN ");
      base::append_base64(output_, message);
      output_.append("\r\n");
      wipe(message);
      expect(Expect::kAuthPlain);
    } else if (offers("LOGIN")) {
      send_line("AUTH LOGIN", Expect::kAuthLogin);
    } else if (capabilities_.auth_mechanisms.empty()) {
      fail("auth", std::nullopt, "server does not offer AUTH");
    } else {
      std::string detail = "server offers no mechanism we support (PLAIN, LOGIN); it offers:";
      for (const std::string& mechanism : capabilities_.auth_mechanisms)
        detail.append(" ").append(mechanism);
      fail("auth", std::nullopt, std::move(detail));
    }
  }

  void tls_established() {
    if (state_ != State::kTlsHandshake) return;
    // RFC 3207 §4.2: "The client MUST discard any knowledge obtained from the server, such
    // as the list of SMTP service extensions, which was not obtained from the TLS
    // negotiation itself. The client SHOULD send an EHLO command as the first command".
    tls_active_ = true;
    tls_negotiated_ = true;
    capabilities_ = ServerCapabilities{};
    input_.clear();
    input_pos_ = 0;
    send_hello();
  }

  void receive(std::string_view bytes) {
    if (bytes.empty() || state_ == State::kFailed || state_ == State::kClosed) return;
    if (state_ == State::kTlsHandshake) {
      fail("starttls", std::nullopt,
           "server sent data after its STARTTLS reply, before the TLS handshake "
           "(response injection, RFC 3207 §4.2)");
      return;
    }
    if (input_pos_ > 0) {
      input_.erase(0, input_pos_);
      input_pos_ = 0;
    }
    input_.append(bytes);
  }

  // ---- the transaction ----------------------------------------------------------------

  void send_message(const Envelope& envelope, std::span<const std::size_t> recipients,
                    std::uint64_t content_size) {
    if (state_ != State::kReady && state_ != State::kMessageDone) return;
    results_.clear();
    accepted_.clear();
    staged_.clear();
    staged_text_.clear();
    staged_next_ = 0;
    mail_refused_ = false;
    end_of_data_answered_ = false;
    reset_content();
    for (std::size_t index : recipients)
      results_.push_back(RecipientResult{index, ServerReply{}});
    state_ = State::kMessageDone;

    // Local refusals of the whole message: nothing is sent.
    std::optional<ServerReply> refusal;
    if (has_line_break_or_nul(envelope.reverse_path)) {
      refusal = synthetic(501, "5.5.2", "reverse path contains CR, LF or NUL; not sent");
    } else if (envelope.smtputf8 && !capabilities_.smtputf8) {
      // RFC 6531 §3.4: without the extension the message cannot be sent as is.
      refusal = synthetic(553, "5.6.7", "SMTPUTF8 not supported by the server");
    } else if (envelope.require_tls && !envelope.reverse_path.empty() &&
               config.protocol == ClientProtocol::kSmtp &&
               (!tls_active_ || !capabilities_.requiretls)) {
      // RFC 8689 §4.2.1: a REQUIRETLS message goes on only inside TLS, to a server whose EHLO
      // there says REQUIRETLS (the host checks the certificate before; this is the last guard
      // against a downgrade). A bounce (null reverse path) is not held back (RFC 8689 §5); an
      // LMTP server is the final hop.
      refusal = tls_active_ ? synthetic(550, "5.7.30", "REQUIRETLS not supported by the server")
                            : synthetic(550, "5.7.10", "REQUIRETLS needs TLS, not active");
    } else if (envelope.body == BodyType::kBinaryMime) {
      // XXX: BINARYMIME needs BDAT (RFC 3030 §3); this client sends DATA only.
      refusal = synthetic(554, "5.6.1", "BINARYMIME content needs BDAT, which we do not send");
    } else if (capabilities_.size_limit != 0 && content_size > capabilities_.size_limit) {
      // RFC 1870 §6: do not send a message the server has said it will refuse.
      refusal =
          synthetic(552, "5.3.4",
                    "message larger than the server's SIZE limit (" + std::to_string(content_size) +
                        " > " + std::to_string(capabilities_.size_limit) + " octets)");
    }
    if (refusal) {
      for (RecipientResult& result : results_)
        result.reply = *refusal;
      return;
    }

    // RSET first when the last transaction ended before its end of data (RFC 5321
    // §4.1.1.5: it aborts whatever the server still holds).
    if (need_rset_) stage(Expect::kRset, 0, "RSET");
    stage_mail(envelope, content_size);
    const std::size_t mail_commands = staged_.size();
    for (std::size_t slot = 0; slot < results_.size(); ++slot)
      stage_rcpt(envelope, slot);
    if (staged_.size() == mail_commands) return;  // every recipient refused locally
    stage(Expect::kData, 0, "DATA");

    if (capabilities_.pipelining && config.pipelining) {
      // RFC 2920 §3.1: RSET, MAIL and RCPT may be anywhere in a group; DATA ends it.
      while (staged_next_ < staged_.size())
        send_staged();
    } else {
      send_staged();
    }
  }

  void stage(Expect what, std::size_t slot, std::string_view line) {
    const std::size_t begin = staged_text_.size();
    staged_text_.append(line);
    staged_text_.append("\r\n");
    staged_.push_back(Staged{what, slot, begin, staged_text_.size()});
  }

  void stage_mail(const Envelope& envelope, std::uint64_t content_size) {
    const std::size_t begin = staged_text_.size();
    std::string& line = staged_text_;
    line.append("MAIL FROM:<").append(envelope.reverse_path).append(">");
    if (capabilities_.size) {  // RFC 1870 §6: SIZE= whenever the server supports it
      line.append(" SIZE=");
      append_decimal(line, content_size);
    }
    // XXX: an 8-bit body to a server without 8BITMIME is sent as is, without BODY= (what
    // most MTAs do); RFC 6152 §3 would have us downgrade it or bounce it.
    if (envelope.body == BodyType::k8BitMime && capabilities_.eightbitmime) {
      line.append(" BODY=8BITMIME");
    }
    if (envelope.smtputf8) line.append(" SMTPUTF8");  // only reached when offered
    // RFC 8689 §4.2.1: the option goes on with the message, in TLS to a server that offers it
    // (a bounce of a REQUIRETLS message too, where the server does; RFC 8689 §5).
    if (envelope.require_tls && tls_active_ && capabilities_.requiretls) line.append(" REQUIRETLS");
    if (capabilities_.dsn) {
      if (envelope.dsn_return == DsnReturn::kFull) line.append(" RET=FULL");
      if (envelope.dsn_return == DsnReturn::kHeaders) line.append(" RET=HDRS");
      if (!envelope.envelope_id.empty()) {
        line.append(" ENVID=");
        append_xtext(line, envelope.envelope_id);
      }
    }
    line.append("\r\n");
    staged_.push_back(Staged{Expect::kMail, 0, begin, staged_text_.size()});
  }

  void stage_rcpt(const Envelope& envelope, std::size_t slot) {
    const std::size_t index = results_[slot].index;
    if (index >= envelope.recipients.size()) {
      results_[slot].reply = synthetic(501, "5.5.2", "no such recipient in the envelope");
      return;
    }
    const Recipient& recipient = envelope.recipients[index];
    if (has_line_break_or_nul(recipient.address)) {
      results_[slot].reply = synthetic(501, "5.5.2", "address contains CR, LF or NUL; not sent");
      return;
    }
    std::string_view orcpt_type;
    std::string_view orcpt_address;
    if (capabilities_.dsn) {
      if (!recipient.notify.empty() && !valid_notify(recipient.notify)) {
        results_[slot].reply = synthetic(501, "5.5.2", "invalid NOTIFY value; not sent");
        return;
      }
      if (!recipient.original_recipient.empty()) {
        // Envelope keeps "addr-type;decoded-address" (esmtp_parameters.h, decode_orcpt).
        const std::size_t semicolon = recipient.original_recipient.find(';');
        orcpt_type = std::string_view(recipient.original_recipient).substr(0, semicolon);
        bool valid = semicolon != std::string::npos && semicolon > 0;
        for (char c : orcpt_type)
          valid = valid && c > ' ' && c < 0x7F && c != ';' && c != '=';
        if (!valid) {
          results_[slot].reply = synthetic(501, "5.5.2", "invalid ORCPT value; not sent");
          return;
        }
        orcpt_address = std::string_view(recipient.original_recipient).substr(semicolon + 1);
      }
    }
    const std::size_t begin = staged_text_.size();
    std::string& line = staged_text_;
    line.append("RCPT TO:<").append(recipient.address).append(">");
    if (capabilities_.dsn) {
      if (!recipient.notify.empty()) line.append(" NOTIFY=").append(recipient.notify);
      if (!orcpt_type.empty()) {
        line.append(" ORCPT=").append(orcpt_type).append(";");
        append_xtext(line, orcpt_address);
      }
    }
    line.append("\r\n");
    staged_.push_back(Staged{Expect::kRcpt, slot, begin, staged_text_.size()});
  }

  void send_staged() {
    const Staged& command = staged_[staged_next_++];
    output_.append(staged_text_, command.begin, command.end - command.begin);
    expect(command.what, command.slot);
  }

  void handle_transaction(const Expected& head) {
    const ServerReply& reply = reply_;
    const int reply_class = reply.code / 100;
    switch (head.what) {
      case Expect::kRset:
        if (reply_class != 2) {
          fail("mail", reply, "server refused RSET: " + reply.summary());
          return;
        }
        need_rset_ = false;
        break;
      case Expect::kMail:
        if (reply_class == 3) {
          fail("protocol", reply, "unexpected reply to MAIL: " + reply.summary());
          return;
        }
        if (reply_class != 2) {
          mail_refused_ = true;
          for (RecipientResult& result : results_) {
            if (result.reply.code == 0) result.reply = reply;
          }
        }
        break;
      case Expect::kRcpt:
        if (mail_refused_) break;  // pipelined behind a refused MAIL: answered already
        if (reply_class == 3) {
          fail("protocol", reply, "unexpected reply to RCPT: " + reply.summary());
          return;
        }
        if (reply_class == 2) {
          accepted_.push_back(head.slot);
        } else {
          results_[head.slot].reply = reply;
        }
        break;
      case Expect::kData:
        if (mail_refused_ || accepted_.empty()) {
          if (reply.code == 354) {
            // RFC 2920 §3.1: the DATA of a group whose recipients were all refused may still
            // get 354; an empty message ends it (and "." alone cannot deliver anything).
            if (config.protocol == ClientProtocol::kLmtp) {
              // RFC 2033 §4.2: "If there were no successful RCPT commands in the mail
              // transaction, the DATA command MUST fail with a 503 reply code." With no
              // recipient there would be no reply to read after the data.
              fail("data", reply, "LMTP server accepted DATA without any recipient");
              return;
            }
            output_.append(".\r\n");
            expect(Expect::kDiscardedEndOfData);
            return;
          }
          break;
        }
        if (reply.code == 354) {
          reset_content();
          state_ = State::kContent;
          return;
        }
        if (reply_class != 4 && reply_class != 5) {
          fail("protocol", reply, "unexpected reply to DATA: " + reply.summary());
          return;
        }
        for (std::size_t slot : accepted_)
          results_[slot].reply = reply;
        break;
      case Expect::kEndOfData:
        if (reply_class == 3) {
          fail("protocol", reply, "unexpected reply to the end of data: " + reply.summary());
          return;
        }
        end_of_data_answered_ = true;
        if (config.protocol == ClientProtocol::kLmtp) {
          // RFC 2033 §4.2: one reply per successful RCPT, in the order of the RCPTs.
          results_[accepted_[head.slot]].reply = reply;
        } else {
          for (std::size_t slot : accepted_)
            results_[slot].reply = reply;
        }
        break;
      case Expect::kDiscardedEndOfData:
        break;
      default:
        return;
    }
    if (state_ == State::kWaiting && expected_.empty()) continue_transaction();
  }

  // Nothing more expected: send the next staged command (without PIPELINING) or end.
  void continue_transaction() {
    if (!mail_refused_ && staged_next_ < staged_.size()) {
      const bool data_next = staged_[staged_next_].what == Expect::kData;
      if (!data_next || !accepted_.empty()) {
        send_staged();
        return;
      }
    }
    // RFC 5321 §4.1.4: after an abandoned transaction the server may still hold its
    // MAIL/RCPT state; the next transaction starts with RSET.
    if (!end_of_data_answered_) need_rset_ = true;
    state_ = State::kMessageDone;
  }

  void content(std::string_view bytes) {
    if (state_ != State::kContent) return;
    stuffer_.encode(bytes, output_);
  }

  void end_content() {
    if (state_ != State::kContent) return;
    stuffer_.finish(output_);
    end_of_data();
  }

  void send_stuffed(const StuffedContent& content) {
    if (state_ != State::kContent) return;
    stuffed_bare_line_endings_ = content.bare_line_endings();
    end_of_data();
  }

  // A message's content starts: nothing stuffed or counted yet.
  void reset_content() {
    stuffer_.reset();
    stuffed_bare_line_endings_ = 0;
  }

  // The content is out (or is the host's to write next): its reply is what comes.
  void end_of_data() {
    ++messages_sent_;
    if (config.protocol == ClientProtocol::kLmtp) {
      for (std::size_t position = 0; position < accepted_.size(); ++position)
        expect(Expect::kEndOfData, position);
    } else {
      expect(Expect::kEndOfData);
    }
  }

  void quit() {
    if (state_ != State::kReady && state_ != State::kMessageDone) return;
    send_line("QUIT", Expect::kQuit);
  }

  const ClientConfig config;
  bool tls_active_ = false;

  State state_ = State::kWaiting;
  std::string input_;
  std::size_t input_pos_ = 0;  // input_ before it is consumed
  bool server_closed_ = false;
  std::string output_;

  ServerReply reply_;            // the reply being read (capacity reused)
  std::size_t reply_lines_ = 0;  // lines of reply_ read so far
  std::vector<Expected> expected_;
  std::size_t expected_head_ = 0;

  ServerReply greeting_;
  ServerCapabilities capabilities_;
  ClientFailure failure_;
  bool tls_negotiated_ = false;  // STARTTLS done on this connection: no HELO fallback
  bool authenticated_ = false;
  bool need_rset_ = false;
  std::size_t messages_sent_ = 0;

  std::vector<RecipientResult> results_;
  std::vector<std::size_t> accepted_;  // slots of results_ whose RCPT got 2xx, in order
  std::string staged_text_;
  std::vector<Staged> staged_;
  std::size_t staged_next_ = 0;
  bool mail_refused_ = false;
  bool end_of_data_answered_ = false;
  DotStuffer stuffer_;
  std::size_t stuffed_bare_line_endings_ = 0;  // of a send_stuffed() message
};

ClientSession::ClientSession(ClientConfig config)
    : impl_(std::make_unique<Impl>(std::move(config))) {}
ClientSession::~ClientSession() = default;
ClientSession::ClientSession(ClientSession&&) noexcept = default;
ClientSession& ClientSession::operator=(ClientSession&&) noexcept = default;

void ClientSession::receive(std::string_view bytes) {
  impl_->receive(bytes);
}
void ClientSession::server_closed() {
  impl_->server_closed_ = true;
}
ClientEvent ClientSession::next() {
  return impl_->next();
}
std::string& ClientSession::output() {
  return impl_->output_;
}
void ClientSession::tls_established() {
  impl_->tls_established();
}
void ClientSession::send_message(const Envelope& envelope, std::span<const std::size_t> recipients,
                                 std::uint64_t content_size) {
  impl_->send_message(envelope, recipients, content_size);
}
void ClientSession::content(std::string_view bytes) {
  impl_->content(bytes);
}
void ClientSession::end_content() {
  impl_->end_content();
}
void ClientSession::send_stuffed(const StuffedContent& content) {
  impl_->send_stuffed(content);
}

StuffedContent::StuffedContent(std::string_view content) {
  DotStuffer stuffer;
  wire_.reserve(content.size() + content.size() / 64 + 5);
  stuffer.encode(content, wire_);
  stuffer.finish(wire_);
  bare_line_endings_ = stuffer.bare_line_endings();
}
void ClientSession::quit() {
  impl_->quit();
}
const std::vector<RecipientResult>& ClientSession::results() const {
  return impl_->results_;
}
const ServerCapabilities& ClientSession::capabilities() const {
  return impl_->capabilities_;
}
const ServerReply& ClientSession::greeting() const {
  return impl_->greeting_;
}
bool ClientSession::tls_active() const {
  return impl_->tls_active_;
}
const ClientFailure& ClientSession::failure() const {
  return impl_->failure_;
}
bool ClientSession::authenticated() const {
  return impl_->authenticated_;
}
std::size_t ClientSession::content_bare_line_endings() const {
  return impl_->stuffer_.bare_line_endings() + impl_->stuffed_bare_line_endings_;
}
std::size_t ClientSession::messages_sent() const {
  return impl_->messages_sent_;
}

}  // namespace smtp
