// server_session.cpp — the receiving side of SMTP as a pure state machine.
//
// RFC 5321 (commands, sequencing, replies, limits), RFC 1870 (SIZE), RFC 6152 (8BITMIME),
// RFC 2034 / RFC 3463 (enhanced status codes), RFC 2920 (PIPELINING), RFC 3030 (CHUNKING,
// BINARYMIME), RFC 3207 (STARTTLS), RFC 3461 (DSN parameters), RFC 6531 (SMTPUTF8),
// RFC 8689 (REQUIRETLS: advertised and taken inside TLS only),
// RFC 3848 (with-protocol names), RFC 4954 (AUTH: the framing of the SASL exchange; the
// mechanisms run in the host). Loop detection (RFC 5321 §6.3) is a check of the host's
// pipeline (intake/loop_check.h), not the session's.
//
// Invariants:
// - One table (kVerbs) says where each verb is legal; dispatch() checks, handlers act.
// - Output is only appended, always whole CRLF-terminated reply lines, in command order:
//   pipelining (RFC 2920) falls out of processing the buffered commands one by one.
// - Only CRLF "." CRLF ends DATA (dot_stuffing.h); a BDAT chunk is counted, never parsed.
// - The input buffer holds at most what the host handed over since the last kNeedInput;
//   a command line is never buffered past limits.max_command_line, a body is streamed in
//   pieces of at most kDataPiece octets.
// - A spool writer opened at kMessageBegin is always closed by exactly one of
//   message_committed / message_failed / kMessageAbort.
// - After kClose every call returns kClose and nothing more is output.
// - AUTH only with TLS active. A SASL payload lives in auth_response_ only from its
//   decoding to the host's answer, and its wire form in input_ only until it is consumed:
//   both are overwritten with zeros, never just freed (docs/architecture.md "Security rules").
#include "smtp/server_session.h"

#include <algorithm>
#include <charconv>
#include <optional>

#include "base/ascii.h"
#include "base/base64.h"
#include "smtp/address_grammar.h"
#include "smtp/dot_stuffing.h"
#include "smtp/esmtp_parameters.h"

namespace smtp {

namespace {

constexpr std::size_t kDataPiece = 64 * 1024;  // largest message_data() span

// RFC 4954 §4 lets a SASL message be longer than a command line: an AUTH command line or
// a response line may have up to 12288 octets (incl. CRLF here); longer gets 500 5.5.6.
constexpr std::size_t kAuthLineMax = 12288;
// Room for the decoded form of the longest line, reserved once so that decoding never
// reallocates (a reallocation would free a copy of the secret without wiping it).
constexpr std::size_t kAuthResponseCapacity = kAuthLineMax / 4 * 3;

// Overwrites octets that held a secret; through a volatile pointer so that the stores are
// not removed as dead.
void wipe(char* data, std::size_t size) {
  volatile char* octets = data;
  for (std::size_t i = 0; i < size; ++i)
    octets[i] = 0;
}

// Where a verb may appear (a bit mask over the session's state).
enum StateBit : unsigned {
  kNoHelo = 1u << 0,    // before EHLO/HELO
  kHelo = 1u << 1,      // greeted, no transaction
  kMail = 1u << 2,      // MAIL accepted (RCPTs may follow), no BDAT yet
  kChunking = 1u << 3,  // at least one BDAT chunk of this transaction received
  kAnyState = kNoHelo | kHelo | kMail | kChunking,
};

// Why the message being received will not be stored.
enum class Problem { kNone, kTooBig, kBareLineEnding, kLineTooLong, kHostFailed };

bool starts_with_ignoring_case(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() &&
         equals_ignoring_case(text.substr(0, prefix.size()), prefix);
}

void append_number(std::string& out, std::uint64_t value) {
  char digits[24];
  auto result = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, result.ptr);
}

// ALPACA (2021): an HTTP client pointed at our port must not get SMTP replies it could
// reflect. The first line of a connection that is an HTTP request line, or any line that
// is a header ("Name: value", Postfix's smtpd_forbidden_commands /^[^ ]+: /), closes.
bool looks_like_http(std::string_view line, bool first_line) {
  if (first_line) {
    static constexpr std::string_view kMethods[] = {
        "GET ", "POST ", "HEAD ", "PUT ", "DELETE ", "OPTIONS ", "CONNECT ", "PATCH ", "TRACE "};
    for (std::string_view method : kMethods) {
      if (line.substr(0, method.size()) == method) return true;
    }
  }
  std::size_t space = line.find(' ');
  return space != std::string_view::npos && space > 0 && line[space - 1] == ':';
}

}  // namespace

struct ServerSession::Impl {
  using Handler = void (Impl::*)(std::string_view arguments);

  // One row per verb (STYLE.md habit 2, after Postfix's smtpd_cmd_table).
  struct VerbRow {
    std::string_view verb;
    unsigned legal_states;
    // RFC 3207 §4: with TLS required, "the server SHOULD reply to every command other
    // than NOOP, EHLO, STARTTLS, or QUIT with the 530 reply code" (we add HELO, RSET,
    // HELP: harmless, and clients use them while negotiating).
    bool allowed_before_tls;
    // RFC 2920 §3.1: "The EHLO, DATA, VRFY, EXPN, TURN, QUIT, and NOOP commands can only
    // appear as the last command in a group since their success or failure produces a
    // change of state which the client SMTP must accommodate." (STARTTLS too, RFC 3207.)
    bool ends_pipelined_group;
    // config.require_auth: refused with 530 5.7.0 until AUTH succeeded (RFC 4954 §6).
    bool needs_authentication;
    // Exists only where SASL mechanisms are configured; elsewhere 502 5.5.1 (RFC 4954 §3:
    // without the extension the server does not know the verb at all).
    bool needs_auth_mechanisms;
    bool carries_payload;  // BDAT: octets follow the line and must always be consumed
    Handler handler;
  };
  static constexpr std::size_t kVerbCount = 14;
  static const VerbRow kVerbs[kVerbCount];

  enum class Phase {
    kCommand,         // reading command lines
    kBeginRequested,  // next() returns kMessageBegin
    kBeginPending,    // host opened (or failed) the spool file
    kData,            // DATA body
    kChunk,           // BDAT chunk octets
    kEndPending,      // kMessageEnd returned; waiting for committed/failed
    kTlsPending,      // kStartTls returned; waiting for tls_established
    kAuthPending,     // kAuthenticate returned; waiting for the host's answer
    kAuthResponse,    // 334 sent; reading the client's response line
    kCheckPending,    // kCheck returned; waiting for check_passed / check_refused
    kClosed,
  };
  enum class MessageKind { kData, kBdat };

  explicit Impl(const SessionConfig& session_config) : config(session_config) {
    // data_out_ grows on the first message only: an idle connection must stay small
    // (docs/architecture.md "Budgets": ≤ 64 KiB per open TLS connection).
    input_.reserve(std::max<std::size_t>(config.limits.max_command_line, 4096));
    for (const std::string& mechanism : config.auth_mechanisms) {
      mechanisms_.push_back(base::ascii_uppercase(mechanism));
    }
    DotUnstuffer::Options options;
    options.normalize_bare_line_endings = config.limits.normalize_bare_line_endings;
    options.max_line = config.limits.max_text_line;
    decoder_.set_options(options);
  }

  ~Impl() {
    wipe_response();
    wipe(input_.data(), input_.size());
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  // ---- output helpers -----------------------------------------------------------------

  void reply(int code, std::string_view enhanced, std::string_view text) {
    append_reply(output_, code, enhanced, text);
  }
  // A reply caused by the peer's mistake: counts toward limits.max_errors.
  void error_reply(int code, std::string_view enhanced, std::string_view text) {
    reply(code, enhanced, text);
    count_error();
  }
  void count_error() {
    ++errors_;
    if (config.limits.max_errors != 0 && errors_ >= config.limits.max_errors && !closing_) {
      scratch_.assign(config.hostname).append(" Too many errors, closing connection");
      reply(421, "4.7.0", scratch_);
      begin_close();
    }
  }
  // A recipient the policy refused is not a protocol error: a mailing list with stale
  // addresses must not lose its valid recipients to max_errors. Refusals have their own
  // bound instead (max_recipients per session until a message is accepted), which still
  // stops address harvesting.
  void count_rejected_recipient() {
    ++rejected_recipients_;
    if (rejected_recipients_ > config.limits.max_recipients && !closing_) {
      scratch_.assign(config.hostname).append(" Too many rejected recipients, closing connection");
      reply(421, "4.7.0", scratch_);
      begin_close();
    }
  }
  void begin_close() {
    if (writer_open_) abort_needed_ = true;
    closing_ = true;
  }

  // ---- state ----------------------------------------------------------------------------

  unsigned current_state() const {
    if (!greeted_) return kNoHelo;
    if (chunking_) return kChunking;
    if (mail_given_) return kMail;
    return kHelo;
  }
  bool tls_required_now() const {
    return config.tls_mode == TlsMode::kStartTlsRequired && !tls_active_;
  }

  // RFC 5321 §4.1.1.5: RSET "any stored sender, recipients, and mail data MUST be
  // discarded"; the same for EHLO/HELO (§4.1.4) and after each finished message.
  void reset_transaction() {
    if (writer_open_) abort_needed_ = true;
    mail_given_ = false;
    chunking_ = false;
    problem_ = Problem::kNone;
    message_size_ = 0;
    size_limit_ = 0;
    bdat_previous_cr_ = false;
    envelope_.reverse_path.clear();
    envelope_.recipients.clear();
    envelope_.body = BodyType::kUnspecified;
    envelope_.smtputf8 = false;
    envelope_.declared_size.reset();
    envelope_.dsn_return = DsnReturn::kUnspecified;
    envelope_.envelope_id.clear();
    envelope_.require_tls = false;
    envelope_.auth.clear();
    envelope_.authenticated = false;
    envelope_.authenticated_user.clear();
  }

  bool auth_offered() const { return tls_active_ && !mechanisms_.empty(); }

  // ---- the driving step -----------------------------------------------------------------

  Action next() {
    for (;;) {
      if (phase_ == Phase::kClosed) return Action::kClose;
      if (abort_needed_) {
        abort_needed_ = false;
        if (writer_open_) {
          writer_open_ = false;
          return Action::kMessageAbort;
        }
      }
      if (closing_) {
        phase_ = Phase::kClosed;
        wipe_response();
        wipe(input_.data(), input_.size());
        input_.clear();
        read_pos_ = 0;
        data_out_.clear();
        return Action::kClose;
      }
      std::optional<Action> action;
      switch (phase_) {
        case Phase::kCommand:
          action = step_command();
          break;
        case Phase::kBeginRequested:
          phase_ = Phase::kBeginPending;
          writer_open_ = true;
          return Action::kMessageBegin;
        case Phase::kBeginPending:
          // The host opened its spool file (a failure would have called message_failed).
          if (message_kind_ == MessageKind::kData) {
            // RFC 5321 §4.2: 354 is an intermediate reply; RFC 3463 classes are 2, 4 and
            // 5 only, so it carries no enhanced code.
            reply(354, "", "End data with <CR><LF>.<CR><LF>");
            decoder_.reset();
            phase_ = Phase::kData;
          } else {
            phase_ = Phase::kChunk;
          }
          break;
        case Phase::kData:
          action = step_data();
          break;
        case Phase::kChunk:
          action = step_chunk();
          break;
        case Phase::kEndPending:
          return Action::kMessageEnd;
        case Phase::kTlsPending:
          return Action::kStartTls;
        case Phase::kAuthPending:
          return Action::kAuthenticate;
        case Phase::kAuthResponse:
          action = step_auth_response();
          break;
        case Phase::kCheckPending:
          return Action::kCheck;
        case Phase::kClosed:
          return Action::kClose;
      }
      if (action) return *action;
    }
  }

  std::string_view buffered() const { return std::string_view(input_).substr(read_pos_); }

  std::optional<Action> need_input_or_close() {
    if (eof_) {
      // The peer is gone: nothing to reply to; an open spool file is discarded.
      begin_close();
      return std::nullopt;
    }
    return Action::kNeedInput;
  }

  // An AUTH command line (SASL initial response) gets the longer limit of RFC 4954 §4,
  // where AUTH exists at all.
  bool is_auth_line(std::string_view line) const {
    return !mechanisms_.empty() && starts_with_ignoring_case(line, "AUTH ");
  }
  std::size_t command_line_limit(bool auth_line) const {
    const std::size_t max_line = config.limits.max_command_line;
    return auth_line ? std::max(max_line, kAuthLineMax) : max_line;
  }

  // Drops the rest of the buffered input (part of an over-long line), overwriting it: it
  // may be a SASL payload.
  void drop_buffered() {
    wipe(input_.data() + read_pos_, input_.size() - read_pos_);
    read_pos_ = input_.size();
  }

  std::optional<Action> step_command() {
    if (pregreet_pending_) {
      if (read_pos_ < input_.size()) {
        refuse_early_talker();
        return std::nullopt;  // the bytes are read as commands: 503 but for QUIT
      }
      return need_input_or_close();
    }
    if (skipping_long_line_) {
      // The rest of an over-long line is dropped as it arrives, never buffered.
      std::size_t newline = buffered().find('\n');
      if (newline == std::string_view::npos) {
        drop_buffered();
        return need_input_or_close();
      }
      wipe(input_.data() + read_pos_, newline + 1);
      read_pos_ += newline + 1;
      skipping_long_line_ = false;
      return std::nullopt;
    }
    std::string_view pending = buffered();
    std::size_t newline = pending.find('\n');
    if (newline == std::string_view::npos) {
      const bool auth_line = is_auth_line(pending);
      if (pending.size() >= command_line_limit(auth_line)) {
        // RFC 5321 §4.5.3.1.4 / §4.2.2 "500 Line too long".
        if (auth_line)
          auth_line_too_long_reply();
        else
          line_too_long_reply();
        skipping_long_line_ = true;
        drop_buffered();
        return std::nullopt;
      }
      if (auth_line) input_secret_ = true;  // a partial SASL payload waits in input_
      return need_input_or_close();
    }
    const std::size_t line_start = read_pos_;
    std::string_view line = pending.substr(0, newline);
    read_pos_ += newline + 1;
    const bool auth_line = is_auth_line(line);
    command_line(line, newline + 1 > command_line_limit(auth_line), auth_line);
    // The AUTH line was decoded (or refused): its wire form is a secret too.
    if (auth_line && phase_ != Phase::kTlsPending) wipe(input_.data() + line_start, newline + 1);
    return std::nullopt;
  }

  void command_line(std::string_view line, bool too_long, bool auth_line) {
    if (too_long) {
      if (auth_line)
        auth_line_too_long_reply();
      else
        line_too_long_reply();
      return;
    }
    // RFC 5321 §2.3.8: lines end with CRLF, and "a bare LF" must not be taken for one
    // (strict by default: SMTP smuggling relies on lenient line ends).
    if (line.empty() || line.back() != '\r') {
      error_reply(500, "5.5.2", "Bare LF in command (CRLF required)");
      return;
    }
    line.remove_suffix(1);
    if (line.find('\r') != std::string_view::npos) {
      error_reply(500, "5.5.2", "Bare CR in command (CRLF required)");
      return;
    }
    const bool first_line = lines_seen_ == 0;
    ++lines_seen_;
    if (looks_like_http(line, first_line)) {
      // Close at once without a reply: nothing of ours may be reflected to a browser.
      closed_as_http_ = true;
      begin_close();
      return;
    }
    dispatch(line);
  }

  void auth_line_too_long_reply() {
    // RFC 4954 §6: "500 5.5.6 Authentication Exchange line is too long".
    error_reply(500, "5.5.6", "Authentication Exchange line is too long");
  }

  void line_too_long_reply() {
    scratch_.assign("Line too long (limit ");
    append_number(scratch_, config.limits.max_command_line);
    scratch_.append(" octets incl. CRLF)");
    error_reply(500, "5.5.2", scratch_);
  }

  const VerbRow* find_verb(std::string_view verb) const {
    for (const VerbRow& row : kVerbs) {
      if (equals_ignoring_case(row.verb, verb)) return &row;
    }
    return nullptr;
  }

  std::string_view sequence_error_text(const VerbRow& row) const {
    const unsigned state = current_state();
    if (state == kNoHelo) return "Error: send HELO/EHLO first";
    if (row.verb == "MAIL") return "Error: nested MAIL command";
    // RFC 4954 §4: "An AUTH command issued during a mail transaction MUST be rejected
    // with a 503 reply."
    if (row.verb == "STARTTLS" || row.verb == "AUTH") return "Error: MAIL transaction in progress";
    if (state == kChunking) {
      if (row.verb == "DATA") return "Error: DATA cannot follow BDAT in the same transaction";
      return "Error: BDAT transfer in progress (send BDAT ... LAST or RSET)";
    }
    return "Error: need MAIL command";
  }

  // Check step: is the verb known, allowed before TLS, legal in this state? Then act.
  void dispatch(std::string_view line) {
    std::size_t space = line.find(' ');
    std::string_view verb = line.substr(0, space);
    std::string_view arguments =
        space == std::string_view::npos ? std::string_view() : line.substr(space + 1);
    while (!arguments.empty() && arguments.front() == ' ')
      arguments.remove_prefix(1);
    while (!arguments.empty() && arguments.back() == ' ')
      arguments.remove_suffix(1);

    const VerbRow* row = find_verb(verb);
    if (row == nullptr) {
      error_reply(500, "5.5.1", "Command unrecognized");
      return;
    }
    // RFC 5321 §3.1: after a 554 instead of the greeting the server "MUST still wait for the
    // client to send a QUIT" and "SHOULD respond to any intervening commands with 503".
    if (refused_at_connect_ && row->handler != &Impl::handle_quit) {
      error_reply(503, "5.5.1", "Bad sequence of commands: connection refused");
      discard_payload(*row);
      return;
    }
    const bool more_buffered = read_pos_ < input_.size();
    if (row->ends_pipelined_group && more_buffered) ++improper_pipelining_;
    // The early-talker screen (screen_early_talkers): RFC 2920 §3.1's group enders, and after
    // HELO any command (PIPELINING was not offered, RFC 2920 §3), followed by bytes the
    // client sent before our reply. QUIT is let through: the client is leaving anyway. A
    // BDAT's chunk follows its line by design.
    if (screen_.refuse_improper_pipelining && more_buffered && row->handler != &Impl::handle_quit &&
        !row->carries_payload && (row->ends_pipelined_group || (greeted_ && !envelope_.esmtp))) {
      refuse_improper_pipelining(*row);
      return;
    }

    if (row->carries_payload && !parse_bdat_arguments(arguments)) {
      // Without a size we cannot tell where the chunk ends; reading its octets as commands
      // would let a payload inject commands, so the connection ends here.
      scratch_.assign(config.hostname).append(" Syntax: BDAT <size> [LAST], closing connection");
      reply(421, "4.5.2", scratch_);
      ++errors_;
      begin_close();
      return;
    }
    if (tls_required_now() && !row->allowed_before_tls) {
      error_reply(530, "5.7.0", "Must issue a STARTTLS command first");
      discard_payload(*row);
      return;
    }
    if (row->needs_auth_mechanisms && mechanisms_.empty()) {
      error_reply(502, "5.5.1", "AUTH not supported on this port");
      return;
    }
    if ((row->legal_states & current_state()) == 0) {
      error_reply(503, "5.5.1", sequence_error_text(*row));
      discard_payload(*row);
      return;
    }
    if (row->needs_authentication && config.require_auth && !authenticated_) {
      error_reply(530, "5.7.0", "Authentication required");
      discard_payload(*row);
      return;
    }
    (this->*(row->handler))(arguments);
  }

  // RFC 3030 §2: bdat-cmd = "BDAT" SP chunk-size [ SP end-marker ] CR LF;
  // chunk-size = 1*DIGIT; end-marker = "LAST".
  bool parse_bdat_arguments(std::string_view arguments) {
    std::size_t space = arguments.find(' ');
    auto size = parse_decimal(arguments.substr(0, space));
    if (!size) return false;
    bdat_size_ = *size;
    bdat_last_ = false;
    if (space != std::string_view::npos) {
      std::string_view marker = arguments.substr(space + 1);
      while (!marker.empty() && marker.front() == ' ')
        marker.remove_prefix(1);
      if (!equals_ignoring_case(marker, "LAST")) return false;
      bdat_last_ = true;
    }
    return true;
  }

  // A refused BDAT: its chunk is still read and thrown away (RFC 3030 §2: the server
  // must read the chunk-size octets whatever its reply).
  void discard_payload(const VerbRow& row) {
    if (!row.carries_payload) return;
    chunk_remaining_ = bdat_size_;
    chunk_discard_ = true;
    phase_ = Phase::kChunk;
  }

  // ---- handlers (act only; legality was checked by dispatch) ----------------------------

  bool valid_helo_argument(std::string_view name) const {
    if (name.empty()) return false;
    for (char c : name) {
      if (c <= ' ' || c > '~') return false;
    }
    return true;
  }

  void handle_ehlo(std::string_view arguments) {
    // RFC 5321 §4.1.1.1: ehlo = "EHLO" SP ( Domain / address-literal ) CRLF
    if (!valid_helo_argument(arguments)) {
      error_reply(501, "5.5.4", "Syntax: EHLO hostname");
      return;
    }
    // RFC 5321 §4.1.4: a new EHLO/HELO ends any transaction, whatever the checks say of it, so
    // an open spool file is discarded before the host is asked.
    reset_transaction();
    if (ask_host(CheckStage::kHelo, arguments)) {
      pending_esmtp_ = true;
      return;
    }
    accept_ehlo(arguments);
  }

  void accept_ehlo(std::string_view arguments) {
    reset_transaction();
    greeted_ = true;
    envelope_.helo.assign(arguments);
    envelope_.esmtp = true;
    scratch_.assign(config.hostname);
    scratch_.append("\nPIPELINING\nSIZE ");
    append_number(scratch_, config.limits.max_message_size);
    scratch_.append("\n8BITMIME\nENHANCEDSTATUSCODES\nSMTPUTF8\nCHUNKING\nBINARYMIME");
    // RFC 8689 §2: REQUIRETLS is a promise to carry the message on over verified TLS only; it
    // is offered inside TLS only (implicit, or after STARTTLS), as the MAIL option is taken
    // only there.
    if (tls_active_) scratch_.append("\nREQUIRETLS");
    scratch_.append("\nDSN");
    // RFC 3207 §4.2: "The server MUST NOT return the STARTTLS extension in response to an
    // EHLO command received after a TLS handshake has completed."
    if (!tls_active_ && config.tls_mode != TlsMode::kImplicit && config.tls_mode != TlsMode::kNone)
      scratch_.append("\nSTARTTLS");
    // RFC 4954 §3: "AUTH" SP mechanism list. docs/architecture.md "Security rules": never offered
    // without TLS (the plaintext mechanisms would expose passwords, and an attacker could strip the
    // list).
    if (auth_offered()) {
      scratch_.append("\nAUTH");
      for (const std::string& mechanism : mechanisms_)
        scratch_.append(" ").append(mechanism);
    }
    reply(250, "", scratch_);
  }

  void handle_helo(std::string_view arguments) {
    if (!valid_helo_argument(arguments)) {
      error_reply(501, "5.5.4", "Syntax: HELO hostname");
      return;
    }
    // RFC 5321 §4.1.4: a new EHLO/HELO ends any transaction, whatever the checks say of it, so
    // an open spool file is discarded before the host is asked.
    reset_transaction();
    if (ask_host(CheckStage::kHelo, arguments)) {
      pending_esmtp_ = false;
      return;
    }
    accept_helo(arguments);
  }

  void accept_helo(std::string_view arguments) {
    reset_transaction();
    greeted_ = true;
    envelope_.helo.assign(arguments);
    envelope_.esmtp = false;
    reply(250, "", config.hostname);
  }

  // Splits "KEY=VALUE" parameters one at a time.
  static bool next_parameter(std::string_view& parameters, std::string_view& key,
                             std::string_view& value, bool& has_value) {
    while (!parameters.empty() && parameters.front() == ' ')
      parameters.remove_prefix(1);
    if (parameters.empty()) return false;
    std::size_t space = parameters.find(' ');
    std::string_view item = parameters.substr(0, space);
    parameters.remove_prefix(space == std::string_view::npos ? parameters.size() : space);
    std::size_t equals = item.find('=');
    key = item.substr(0, equals);
    has_value = equals != std::string_view::npos;
    value = has_value ? item.substr(equals + 1) : std::string_view();
    return true;
  }

  void unknown_parameter_reply() {
    // RFC 5321 §4.1.1.11: "555 MAIL FROM/RCPT TO parameters not recognized or not
    // implemented".
    error_reply(555, "5.5.4", "MAIL FROM/RCPT TO parameters not recognized or not implemented");
  }

  void handle_mail(std::string_view arguments) {
    if (!starts_with_ignoring_case(arguments, "FROM:")) {
      error_reply(501, "5.5.2", "Syntax: MAIL FROM:<address>");
      return;
    }
    arguments.remove_prefix(5);
    // "MAIL FROM: <a@b>" (space after the colon) is common and harmless: accepted.
    while (!arguments.empty() && arguments.front() == ' ')
      arguments.remove_prefix(1);
    auto split = split_path(arguments);
    if (!split) {
      address_error_reply(split.error(), true);
      return;
    }
    std::optional<std::uint64_t> size;
    bool size_seen = false;
    BodyType body = BodyType::kUnspecified;
    bool smtputf8 = false;
    DsnReturn dsn_return = DsnReturn::kUnspecified;
    bool has_envid = false;
    bool has_auth = false;
    bool require_tls = false;
    envid_scratch_.clear();
    auth_scratch_.clear();
    std::string_view parameters = split->parameters;
    std::string_view key;
    std::string_view value;
    bool has_value = false;
    while (next_parameter(parameters, key, value, has_value)) {
      if (equals_ignoring_case(key, "SIZE")) {
        // RFC 1870 §3: size-param = "SIZE=" size-value; size-value = 1*20DIGIT
        if (size_seen)
          size.reset();
        else
          size = has_value ? parse_decimal(value) : std::nullopt;
        if (!size) {
          error_reply(501, "5.5.4", "Invalid SIZE parameter");
          return;
        }
        size_seen = true;
      } else if (equals_ignoring_case(key, "BODY")) {
        if (!has_value || body != BodyType::kUnspecified) {
          error_reply(501, "5.5.4", "Invalid BODY parameter");
          return;
        }
        if (equals_ignoring_case(value, "7BIT")) {
          body = BodyType::k7Bit;
        } else if (equals_ignoring_case(value, "8BITMIME")) {
          body = BodyType::k8BitMime;
        } else if (equals_ignoring_case(value, "BINARYMIME")) {
          body = BodyType::kBinaryMime;
        } else {
          error_reply(504, "5.5.4", "Unsupported BODY type (7BIT, 8BITMIME, BINARYMIME)");
          return;
        }
      } else if (equals_ignoring_case(key, "SMTPUTF8")) {
        // RFC 6531 §3.4: "SMTPUTF8" has no value.
        if (has_value || smtputf8) {
          error_reply(501, "5.5.4", "Invalid SMTPUTF8 parameter");
          return;
        }
        smtputf8 = true;
      } else if (equals_ignoring_case(key, "RET")) {
        // RFC 3461 §4.3: ret-value = "FULL" / "HDRS"
        if (dsn_return != DsnReturn::kUnspecified || !has_value) {
          error_reply(501, "5.5.4", "Invalid RET parameter");
          return;
        }
        if (equals_ignoring_case(value, "FULL")) {
          dsn_return = DsnReturn::kFull;
        } else if (equals_ignoring_case(value, "HDRS")) {
          dsn_return = DsnReturn::kHeaders;
        } else {
          error_reply(501, "5.5.4", "Invalid RET parameter (FULL or HDRS)");
          return;
        }
      } else if (equals_ignoring_case(key, "ENVID")) {
        // RFC 3461 §4.4: envid-value = xtext, at most 100 characters.
        if (has_envid || !has_value || value.empty() || value.size() > 100 ||
            !decode_xtext(value, envid_scratch_)) {
          error_reply(501, "5.5.4", "Invalid ENVID parameter");
          return;
        }
        has_envid = true;
      } else if (equals_ignoring_case(key, "AUTH") && auth_offered()) {
        // RFC 4954 §5: auth-param = "AUTH=" ( mailbox / "<>" ), the mailbox as xtext.
        // Only where AUTH is advertised; elsewhere it is an unknown parameter (555).
        if (has_auth || !has_value || value.empty() || value.size() > 500 ||
            !decode_auth_parameter(value)) {
          error_reply(501, "5.5.4", "Invalid AUTH parameter");
          return;
        }
        has_auth = true;
      } else if (equals_ignoring_case(key, "REQUIRETLS")) {
        // RFC 8689 §2: "REQUIRETLS" has no value, and may be given only in a session that
        // employs TLS. Outside TLS the extension is not advertised: RFC 5321 §4.1.1.11's 555
        // for a parameter this session does not offer, with RFC 8689's 5.7.10 "encryption needed".
        if (!tls_active_) {
          error_reply(555, "5.7.10", "REQUIRETLS is only accepted inside TLS (STARTTLS first)");
          return;
        }
        if (has_value || require_tls) {
          error_reply(501, "5.5.4", "Invalid REQUIRETLS parameter");
          return;
        }
        require_tls = true;
      } else {
        unknown_parameter_reply();
        return;
      }
    }
    auto path = parse_path(split->path, PathKind::kReversePath, smtputf8);
    if (!path) {
      address_error_reply(path.error(), true);
      return;
    }
    // Submission policy (docs/architecture.md "Security rules"): no bounces are submitted, and an
    // authenticated user sends only as the addresses it owns.
    if (path->mailbox.empty() && !config.allow_null_sender) {
      error_reply(553, "5.7.1", "Null sender not allowed for submission");
      return;
    }
    // A local submission: the sender becomes the one the host allows this user (its own
    // address unless it may choose), before any other sender rule.
    if (authenticated_ && config.sender_for) {
      rewritten_sender_ = config.sender_for(authenticated_user_, path->mailbox);
      path->mailbox = rewritten_sender_;
    }
    if (!path->mailbox.empty() && authenticated_ && !config.sender_for && config.may_send_as &&
        !config.may_send_as(authenticated_user_, path->mailbox)) {
      scratch_.assign("Sender address <").append(path->mailbox);
      scratch_.append("> not owned by user <").append(authenticated_user_).append(">");
      error_reply(553, "5.7.1", scratch_);
      return;
    }
    // RFC 1870 §6: "552 ... message size exceeds fixed maximum message size" when the
    // declared size is over our limit.
    if (size && *size > config.limits.max_message_size) {
      reply(552, "5.3.4", "Message size exceeds fixed maximum message size");
      return;
    }
    if (config.has_room_for && !config.has_room_for(size ? *size : 0)) {
      reply(452, "4.3.1", "Insufficient system storage, try again later");
      return;
    }
    // A user over its message rate: 451 is one of the replies RFC 5321 §4.3.2 lists for
    // MAIL, transient, so the client keeps the message and retries; RFC 3463 X.7.1
    // "delivery not authorized" says why. Not a client mistake: no max_errors count.
    if (authenticated_ && may_start_message_ && !may_start_message_(authenticated_user_)) {
      reply(451, "4.7.1", "Too many messages from this user, try again later");
      return;
    }
    pending_mail_ = PendingMail{body, smtputf8, size, dsn_return, has_auth, require_tls};
    if (ask_host(CheckStage::kMail, path->mailbox)) return;
    accept_mail(path->mailbox);
  }

  // The parameters of a MAIL command that passed its protocol checks (with envid_scratch_
  // and auth_scratch_), kept while the host's checks run.
  struct PendingMail {
    BodyType body = BodyType::kUnspecified;
    bool smtputf8 = false;
    std::optional<std::uint64_t> size;
    DsnReturn dsn_return = DsnReturn::kUnspecified;
    bool has_auth = false;
    bool require_tls = false;
  };

  void accept_mail(std::string_view reverse_path) {
    reset_transaction();
    mail_given_ = true;
    envelope_.reverse_path.assign(reverse_path);
    envelope_.body = pending_mail_.body;
    envelope_.smtputf8 = pending_mail_.smtputf8;
    envelope_.declared_size = pending_mail_.size;
    envelope_.dsn_return = pending_mail_.dsn_return;
    envelope_.envelope_id.assign(envid_scratch_);
    envelope_.require_tls = pending_mail_.require_tls;
    envelope_.authenticated = authenticated_;
    envelope_.authenticated_user.assign(authenticated_ ? std::string_view(authenticated_user_)
                                                       : std::string_view());
    // RFC 4954 §5: "if the client is not authenticated, [the server] MUST behave as if
    // the AUTH=<> parameter was supplied."
    if (pending_mail_.has_auth) {
      envelope_.auth.assign(authenticated_ ? std::string_view(auth_scratch_) : "<>");
    }
    reply(250, "2.1.0", "Ok");
  }

  // AUTH= value into auth_scratch_: "<>" or an xtext mailbox, whose decoded form must be
  // printable (it may go back on the wire when the message is relayed).
  bool decode_auth_parameter(std::string_view value) {
    if (value == "<>") {
      auth_scratch_.assign(value);
      return true;
    }
    if (!decode_xtext(value, auth_scratch_) || auth_scratch_.empty()) return false;
    return std::all_of(auth_scratch_.begin(), auth_scratch_.end(),
                       [](char c) { return static_cast<unsigned char>(c) > ' ' && c != 0x7F; });
  }

  void address_error_reply(const AddressError& error, bool sender) {
    if (error.kind == AddressErrorKind::kUtf8NotDeclared) {
      // RFC 6531 §3.5: "553 5.6.7 ... mailbox name not allowed" for UTF-8 without SMTPUTF8.
      error_reply(553, "5.6.7",
                  sender ? "Sender address contains UTF-8 but SMTPUTF8 not declared"
                         : "Recipient address contains UTF-8 but SMTPUTF8 not declared");
      return;
    }
    // RFC 3463: X.1.7 "Bad sender's mailbox address syntax", X.1.3 "Bad destination
    // mailbox address syntax".
    scratch_.assign(sender ? "Bad sender address syntax: " : "Bad recipient address syntax: ");
    scratch_.append(error.reason);
    error_reply(501, sender ? "5.1.7" : "5.1.3", scratch_);
  }

  void handle_rcpt(std::string_view arguments) {
    if (!starts_with_ignoring_case(arguments, "TO:")) {
      error_reply(501, "5.5.2", "Syntax: RCPT TO:<address>");
      return;
    }
    arguments.remove_prefix(3);
    while (!arguments.empty() && arguments.front() == ' ')
      arguments.remove_prefix(1);
    auto split = split_path(arguments);
    if (!split) {
      address_error_reply(split.error(), false);
      return;
    }
    bool has_notify = false;
    bool has_orcpt = false;
    std::string_view notify;
    orcpt_scratch_.clear();
    std::string_view parameters = split->parameters;
    std::string_view key;
    std::string_view value;
    bool has_value = false;
    while (next_parameter(parameters, key, value, has_value)) {
      if (equals_ignoring_case(key, "NOTIFY")) {
        // RFC 3461 §4.1: "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" )
        if (has_notify || !has_value || !valid_notify(value)) {
          error_reply(501, "5.5.4", "Invalid NOTIFY parameter");
          return;
        }
        has_notify = true;
        notify = value;
      } else if (equals_ignoring_case(key, "ORCPT")) {
        // RFC 3461 §4.2: orcpt-parameter = "ORCPT=" original-recipient-address, which
        // "MUST NOT exceed 500 characters".
        if (has_orcpt || !has_value || value.size() > 500 || !decode_orcpt(value, orcpt_scratch_)) {
          error_reply(501, "5.5.4", "Invalid ORCPT parameter");
          return;
        }
        has_orcpt = true;
      } else {
        unknown_parameter_reply();
        return;
      }
    }
    auto path = parse_path(split->path, PathKind::kForwardPath, envelope_.smtputf8);
    if (!path) {
      address_error_reply(path.error(), false);
      return;
    }
    // RFC 5321 §4.5.3.1.10: "452 too many recipients" — the client retries the rest later.
    if (envelope_.recipients.size() >= config.limits.max_recipients) {
      reply(452, "4.5.3", "Too many recipients");
      return;
    }
    // RFC 5321 §4.5.1: "<Postmaster>" without a domain MUST be accepted.
    std::string_view address = path->is_postmaster ? "postmaster" : path->mailbox;
    RecipientDecision decision = config.check_recipient
                                     ? config.check_recipient(address, authenticated_user_)
                                     : RecipientDecision(RecipientVerdict::kAccept);
    switch (decision.verdict) {
      case RecipientVerdict::kAccept:
        // RFC 1870 §6.2: a recipient whose storage allocation the declared size exceeds
        // gets 552 at RCPT; the client delivers to the others.
        if (envelope_.declared_size && config.recipient_size_limit) {
          const std::uint64_t limit = smallest_size_limit(address, decision.expansion);
          if (limit != 0 && *envelope_.declared_size > limit) {
            reply(552, "5.3.4", "Message size exceeds the limit of the recipient's domain");
            return;
          }
        }
        // An expansion counts toward the recipients limit, except as the first recipient
        // (so that one alias within the policy's fan-out bound always gets through).
        if (!envelope_.recipients.empty() &&
            envelope_.recipients.size() + decision.expansion.size() >
                config.limits.max_recipients) {
          reply(452, "4.5.3", "Too many recipients");
          return;
        }
        pending_expansion_ = std::move(decision.expansion);
        if (ask_host(CheckStage::kRcpt, address)) {
          pending_notify_.assign(notify);
          return;
        }
        accept_recipient(address, notify);
        return;
      case RecipientVerdict::kLoop:
        reply(550, "5.4.6", "Recipient address rejected: alias loop");
        count_rejected_recipient();
        return;
      case RecipientVerdict::kTooMany:
        reply(550, "5.5.3", "Recipient address rejected: alias expands to too many recipients");
        count_rejected_recipient();
        return;
      case RecipientVerdict::kUnknownUser:
        reply(550, "5.1.1", "Recipient address rejected: user unknown");
        count_rejected_recipient();
        return;
      case RecipientVerdict::kRelayDenied:
        reply(550, "5.7.1", "Relay access denied");
        count_rejected_recipient();
        return;
      case RecipientVerdict::kTempFail:
        reply(451, "4.3.0", "Temporary failure checking recipient, try again later");
        return;
      case RecipientVerdict::kSrsInvalid:
        reply(550, "5.1.1", "Invalid SRS address: its signature does not match");
        count_rejected_recipient();
        return;
      case RecipientVerdict::kSrsExpired:
        reply(550, "5.1.1", "Expired SRS address: too old for a bounce of forwarded mail");
        count_rejected_recipient();
        return;
    }
  }

  // The smallest per-domain limit of a recipient and of the addresses it expands to (an alias
  // must not carry a message into a domain that takes less); 0: none.
  std::uint64_t smallest_size_limit(std::string_view address,
                                    const std::vector<std::string>& expansion) const {
    std::uint64_t smallest = config.recipient_size_limit(address);
    for (const std::string& target : expansion) {
      const std::uint64_t limit = config.recipient_size_limit(target);
      if (limit != 0 && (smallest == 0 || limit < smallest)) smallest = limit;
    }
    return smallest;
  }

  // The most data this transaction may carry: max_message_size, or less when a recipient's
  // domain takes less (SessionConfig::recipient_size_limit).
  std::uint64_t message_limit() const {
    return size_limit_ != 0 ? size_limit_ : config.limits.max_message_size;
  }

  void accept_recipient(std::string_view address, std::string_view notify) {
    if (config.recipient_size_limit) {
      const std::uint64_t limit = smallest_size_limit(address, pending_expansion_);
      if (limit != 0 && limit < message_limit()) size_limit_ = limit;
    }
    if (pending_expansion_.empty()) {
      Recipient& recipient = envelope_.recipients.emplace_back();
      recipient.address.assign(address);
      recipient.notify.assign(notify);
      recipient.original_recipient.assign(orcpt_scratch_);
      reply(250, "2.1.5", "Ok");
      return;
    }
    // RFC 3461 §5.2.7: after an expansion to several addresses, success is reported for the
    // original ("expanded"), so the targets do not carry SUCCESS on.
    std::string target_notify(notify);
    if (pending_expansion_.size() > 1 && !notify.empty()) {
      target_notify = without_success(notify);
      if (has_success(notify)) {
        // RFC 3461 §5.2.7: the success of an expansion is reported for the original address.
        Recipient& record = envelope_.recipients.emplace_back();
        record.address.assign(address);
        record.notify.assign("SUCCESS");
        record.original_recipient = original_recipient_of(address);
        record.expansion_record = true;
      }
    }
    for (std::string& target : pending_expansion_) {
      Recipient& recipient = envelope_.recipients.emplace_back();
      recipient.address = std::move(target);
      recipient.notify = target_notify;
      recipient.original_recipient = original_recipient_of(address);
    }
    pending_expansion_.clear();
    reply(250, "2.1.5", "Ok");
  }

  // RFC 3461 §4.2: an expanded recipient's ORCPT is the address the client gave, unless it
  // gave an ORCPT itself; "utf-8" as the address type for a UTF-8 address (RFC 6533 §3).
  std::string original_recipient_of(std::string_view address) const {
    if (!orcpt_scratch_.empty()) return orcpt_scratch_;
    const bool utf8 = std::any_of(address.begin(), address.end(),
                                  [](char c) { return static_cast<unsigned char>(c) > 0x7F; });
    return (utf8 ? "utf-8;" : "rfc822;") + std::string(address);
  }

  static bool has_success(std::string_view notify) {
    while (!notify.empty()) {
      const std::size_t comma = notify.find(',');
      if (equals_ignoring_case(notify.substr(0, comma), "SUCCESS")) return true;
      notify = comma == std::string_view::npos ? std::string_view() : notify.substr(comma + 1);
    }
    return false;
  }

  // NOTIFY minus SUCCESS: "SUCCESS,FAILURE" → "FAILURE", "SUCCESS" → "NEVER".
  static std::string without_success(std::string_view notify) {
    std::string out;
    while (!notify.empty()) {
      const std::size_t comma = notify.find(',');
      std::string_view keyword = notify.substr(0, comma);
      notify = comma == std::string_view::npos ? std::string_view() : notify.substr(comma + 1);
      if (equals_ignoring_case(keyword, "SUCCESS")) continue;
      if (!out.empty()) out += ',';
      out.append(keyword);
    }
    return out.empty() ? std::string("NEVER") : out;
  }

  // ---- the host's checks ----------------------------------------------------------------

  // True when the host checks this stage: the command waits (kCheck) with its argument.
  bool ask_host(CheckStage stage, std::string_view argument) {
    if ((config.checked_stages & static_cast<unsigned>(stage)) == 0) return false;
    check_stage_ = stage;
    check_argument_.assign(argument);
    phase_ = Phase::kCheckPending;
    return true;
  }

  void greet() {
    // RFC 5321 §4.2: greeting = "220 " Domain [ SP textstring ]; no enhanced code before
    // EHLO (RFC 2034 §3 ties them to the ENHANCEDSTATUSCODES extension).
    scratch_.assign(config.hostname).append(" ESMTP smtpsd");
    if (screen_.pregreet) {
      // The pre-greet test (after postscreen): a multi-line greeting (RFC 5321 §4.2.1) whose
      // first line goes out now and whose last waits for the host's pregreet_passed(). A
      // client must wait for the last line; one that talks before it is an early talker.
      output_.append("220-").append(scratch_).append("\r\n");
      pregreet_pending_ = true;
      return;
    }
    reply(220, "", scratch_);
  }

  void pregreet_passed() {
    if (!pregreet_pending_ || closing_ || phase_ == Phase::kClosed) return;
    pregreet_pending_ = false;
    scratch_.assign(config.hostname).append(" ESMTP smtpsd");
    reply(220, "", scratch_);
  }

  // Input arrived while the greeting's last line was held back.
  void refuse_early_talker() {
    pregreet_pending_ = false;
    early_talker_ = "pregreet";
    // XXX: RFC 5321 §4.2.1 wants one code on every line of a reply, and "220-" is already
    // out; the client broke the protocol first, and a reader of multi-line replies takes
    // the code of the last line (as postscreen's refusal after its "220-" relies on).
    // §3.1 allows 554 instead of the greeting; then only QUIT is served (503 otherwise),
    // as after a connect check's 554. No enhanced code before EHLO (RFC 2034 §3).
    scratch_.assign(config.hostname).append(" Protocol error: talked before the greeting");
    reply(554, "", scratch_);
    refused_at_connect_ = true;
  }

  // Bytes came behind a command the client had to wait on (dispatch). The reply is one
  // RFC 5321 §4.3.2 allows for that command, then the connection closes:
  // - 550 for EHLO, HELO, VRFY, EXPN (and MAIL, RCPT after HELO): "550 Requested action not
  //   taken" is in each one's list; a permanent code, since a client that does not wait
  //   for replies is broken or a bot, and retrying the same way will not help;
  // - 554 for DATA ("554 Transaction failed" is a DATA reply; 554 is not one of MAIL/RCPT);
  // - 421 for the rest (NOOP, RSET, STARTTLS, HELP): §4.3.2 allows 421 for any command when
  //   the server closes the channel, and those commands have no 5xx of their own for this.
  void refuse_improper_pipelining(const VerbRow& row) {
    early_talker_ = "pipelining";
    int code = 421;
    std::string_view enhanced = "4.5.0";
    if (row.verb == "EHLO" || row.verb == "HELO" || row.verb == "VRFY" || row.verb == "EXPN" ||
        row.verb == "MAIL" || row.verb == "RCPT") {
      code = 550;
      enhanced = "5.5.1";
    } else if (row.verb == "DATA") {
      code = 554;
      enhanced = "5.5.1";
    }
    scratch_.assign("Protocol error: commands sent before the reply to ")
        .append(row.verb)
        .append(" (improper pipelining), closing connection");
    reply(code, enhanced, scratch_);
    ++errors_;
    begin_close();
  }

  void check_passed() {
    if (phase_ != Phase::kCheckPending || closing_) return;
    phase_ = Phase::kCommand;
    switch (check_stage_) {
      case CheckStage::kConnect:
        greet();
        return;
      case CheckStage::kHelo:
        if (pending_esmtp_)
          accept_ehlo(check_argument_);
        else
          accept_helo(check_argument_);
        return;
      case CheckStage::kMail:
        accept_mail(check_argument_);
        return;
      case CheckStage::kRcpt:
        accept_recipient(check_argument_, pending_notify_);
        return;
    }
  }

  void check_refused(const Reply& refusal) {
    if (phase_ != Phase::kCheckPending || closing_) return;
    phase_ = Phase::kCommand;
    const bool valid = refusal.code >= 400 && refusal.code <= 599;
    const int code = valid ? refusal.code : 451;
    const std::string_view enhanced = valid ? std::string_view(refusal.enhanced) : "4.3.0";
    if (check_stage_ == CheckStage::kConnect) {
      // No enhanced code before EHLO (RFC 2034 §3), as in the greeting it replaces.
      scratch_.assign(config.hostname).append(" ").append(refusal.text);
      reply(code, "", scratch_);
      if (code < 500)
        begin_close();
      else
        refused_at_connect_ = true;
      return;
    }
    pending_expansion_.clear();
    reply(code, enhanced, refusal.text);
    if (check_stage_ == CheckStage::kRcpt && code >= 500) count_rejected_recipient();
  }

  void handle_data(std::string_view arguments) {
    if (!arguments.empty()) {
      error_reply(501, "5.5.4", "Syntax: DATA");
      return;
    }
    // RFC 2920 §3.1: with pipelining, when all RCPTs failed "the server MUST reject the
    // DATA command with 554" (and "503" without pipelining is also correct; 554 is clearer).
    if (envelope_.recipients.empty()) {
      reply(554, "5.5.1", "No valid recipients");
      return;
    }
    // RFC 3030 §3: "BINARYMIME ... requires that the message be sent with BDAT".
    if (envelope_.body == BodyType::kBinaryMime) {
      error_reply(503, "5.5.1", "BODY=BINARYMIME requires BDAT, not DATA");
      return;
    }
    message_kind_ = MessageKind::kData;
    problem_ = Problem::kNone;
    message_size_ = 0;
    phase_ = Phase::kBeginRequested;
  }

  void handle_bdat(std::string_view /*arguments: parsed by dispatch*/) {
    if (envelope_.recipients.empty()) {
      reply(554, "5.5.1", "No valid recipients");
      chunk_remaining_ = bdat_size_;
      chunk_discard_ = true;
      phase_ = Phase::kChunk;
      return;
    }
    chunk_remaining_ = bdat_size_;
    chunk_discard_ = false;
    chunk_size_ = bdat_size_;
    chunk_last_ = bdat_last_;
    // RFC 1870 applies to BDAT as well: refuse a chunk that would pass the limit before
    // opening anything; its octets are still read.
    if (problem_ == Problem::kNone && bdat_size_ > message_limit() - message_size_) {
      problem_ = Problem::kTooBig;
      if (writer_open_) abort_needed_ = true;
    }
    if (!chunking_) {
      chunking_ = true;
      message_kind_ = MessageKind::kBdat;
      if (problem_ == Problem::kNone) {
        phase_ = Phase::kBeginRequested;
        return;
      }
    }
    phase_ = Phase::kChunk;
  }

  void handle_rset(std::string_view arguments) {
    if (!arguments.empty()) {
      error_reply(501, "5.5.4", "Syntax: RSET");
      return;
    }
    reset_transaction();
    reply(250, "2.0.0", "Ok");
  }

  void handle_noop(std::string_view) { reply(250, "2.0.0", "Ok"); }

  void handle_quit(std::string_view) {
    scratch_.assign(config.hostname).append(" closing connection");
    reply(221, "2.0.0", scratch_);
    begin_close();
  }

  void handle_vrfy(std::string_view arguments) {
    if (arguments.empty()) {
      error_reply(501, "5.5.4", "Syntax: VRFY address");
      return;
    }
    // RFC 5321 §3.5.3: 252 when the server will not verify but will accept the message.
    reply(252, "2.5.0", "Cannot VRFY user, but will accept message and attempt delivery");
  }

  void handle_expn(std::string_view) {
    // RFC 5321 §3.5.2: EXPN may be disabled; "502 Command not implemented".
    error_reply(502, "5.5.1", "EXPN not implemented");
  }

  void handle_help(std::string_view) {
    reply(214, "2.0.0",
          "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP STARTTLS AUTH");
  }

  void handle_starttls(std::string_view arguments) {
    if (config.tls_mode == TlsMode::kNone) {  // a local socket: nothing to protect, no TLS
      error_reply(502, "5.5.1", "STARTTLS not available on this socket");
      return;
    }
    if (tls_active_ || config.tls_mode == TlsMode::kImplicit) {
      error_reply(503, "5.5.1", "TLS already active");
      return;
    }
    // RFC 3207 §4: STARTTLS = "STARTTLS" CRLF — no parameters.
    if (!arguments.empty()) {
      error_reply(501, "5.5.4", "Syntax: STARTTLS (no parameters)");
      return;
    }
    // RFC 3207 §4 has the client see STARTTLS in an EHLO reply, but nothing in it makes
    // EHLO a prerequisite, and clients (GNU SASL's gsasl) send STARTTLS right after the
    // greeting, which Postfix accepts: so do we. Nothing is lost, since §4.2 discards what
    // the client said before TLS and it must EHLO again. After HELO, though, the client
    // chose plain SMTP, where STARTTLS is not an extension it could know of.
    if (greeted_ && !envelope_.esmtp) {
      error_reply(503, "5.5.1", "Error: send EHLO first");
      return;
    }
    reply(220, "2.0.0", "Ready to start TLS");
    // CVE-2011-0411: bytes that came after the STARTTLS line in plaintext must never be
    // read as commands of the TLS session. Drop them now.
    input_.clear();
    read_pos_ = 0;
    phase_ = Phase::kTlsPending;
  }

  // ---- AUTH (RFC 4954) ------------------------------------------------------------------

  void handle_auth(std::string_view arguments) {
    // docs/architecture.md "Security rules": AUTH is not accepted without TLS on any role. RFC 4954
    // §6 "530 5.7.0 Authentication required" family; the text says what to do, as for MAIL before
    // TLS.
    if (!tls_active_) {
      error_reply(530, "5.7.0", "Must issue a STARTTLS command first");
      return;
    }
    // RFC 4954 §3: the client learns of AUTH from the EHLO reply.
    if (!envelope_.esmtp) {
      error_reply(503, "5.5.1", "Error: send EHLO first");
      return;
    }
    // RFC 4954 §4: "After a successful AUTH command completes, a server MUST reject any
    // further AUTH commands with a 503 reply."
    if (authenticated_) {
      error_reply(503, "5.5.1", "Already authenticated");
      return;
    }
    // auth-command = "AUTH" SP sasl-mech [SP initial-response] (RFC 4954 §8).
    const std::size_t space = arguments.find(' ');
    const std::string_view name = arguments.substr(0, space);
    const bool has_initial = space != std::string_view::npos;
    const std::string_view initial = has_initial ? arguments.substr(space + 1) : std::string_view();
    if (name.empty() || (has_initial && (initial.empty() || initial.find(' ') != initial.npos))) {
      error_reply(501, "5.5.4", "Syntax: AUTH mechanism [initial-response]");
      return;
    }
    const std::string* mechanism = nullptr;
    for (const std::string& offered : mechanisms_) {
      if (equals_ignoring_case(offered, name)) mechanism = &offered;
    }
    if (mechanism == nullptr) {
      // RFC 4954 §4: "If the requested authentication mechanism is invalid (e.g., is not
      // supported or requires an encryption layer), the server rejects the AUTH command
      // with a 504 reply."
      error_reply(504, "5.5.4", "Unrecognized authentication type");
      return;
    }
    // RFC 4954 §4: AUTH "MUST be the last command in a pipelined group", except with an
    // initial response for a mechanism that completes in one round trip (PLAIN,
    // EXTERNAL). Either way the bytes after it wait: nothing is read while the host works.
    const bool one_round_trip = *mechanism == "PLAIN" || *mechanism == "EXTERNAL";
    if (read_pos_ < input_.size() && !(has_initial && one_round_trip)) ++improper_pipelining_;
    if (auth_response_.capacity() < kAuthResponseCapacity)
      auth_response_.reserve(kAuthResponseCapacity);
    auth_mechanism_.assign(*mechanism);
    auth_starting_ = true;
    auth_has_response_ = has_initial;
    // RFC 4954 §4: "=" is an initial response of zero length.
    if (has_initial && initial != "=" && !decode_response(initial)) return;
    phase_ = Phase::kAuthPending;
  }

  // Decodes a response into auth_response_; on bad base64 answers 501 and ends the
  // exchange.
  bool decode_response(std::string_view text) {
    wipe_response();
    if (base::decode_base64(text, auth_response_)) return true;
    wipe_response();
    // RFC 4954 §4: "If the client response is not a valid base64 ... the server MUST
    // reject the AUTH command with a 501 reply"; §6 gives 5.5.2.
    if (malformed_auth_observer_) malformed_auth_observer_(auth_mechanism_);
    end_exchange();
    error_reply(501, "5.5.2", "Cannot decode response");
    return false;
  }

  std::optional<Action> step_auth_response() {
    std::string_view pending = buffered();
    std::size_t newline = pending.find('\n');
    if (newline == std::string_view::npos) {
      if (pending.size() >= kAuthLineMax) {
        end_exchange();
        auth_line_too_long_reply();
        skipping_long_line_ = true;  // step_command drops the rest of the line
        drop_buffered();
        return std::nullopt;
      }
      input_secret_ = true;  // a partial response waits in input_
      return need_input_or_close();
    }
    const std::size_t line_start = read_pos_;
    std::string_view line = pending.substr(0, newline);
    read_pos_ += newline + 1;
    // A response the client sent together with more input did not wait for our reply.
    if (read_pos_ < input_.size()) ++improper_pipelining_;
    if (newline + 1 > kAuthLineMax) {
      end_exchange();
      auth_line_too_long_reply();
    } else if (line.empty() || line.back() != '\r') {
      end_exchange();
      error_reply(500, "5.5.2", "Bare LF in command (CRLF required)");
    } else if (line.remove_suffix(1); line == "*") {
      // RFC 4954 §4: "If the client wishes to cancel the authentication exchange, it
      // issues a line with a single "*". If the server receives such a response, it MUST
      // reject the AUTH command by sending a 501 reply."
      end_exchange();
      error_reply(501, "5.0.0", "Authentication cancelled");
    } else if (decode_response(line)) {
      auth_starting_ = false;
      auth_has_response_ = true;
      phase_ = Phase::kAuthPending;
    }
    wipe(input_.data() + line_start, newline + 1);
    return std::nullopt;
  }

  void wipe_response() {
    wipe(auth_response_.data(), auth_response_.size());
    auth_response_.clear();
  }

  void end_exchange() {
    wipe_response();
    auth_has_response_ = false;
    auth_starting_ = false;
    phase_ = Phase::kCommand;
  }

  // Host answers count only while the session waits for one.
  bool waiting_for_auth_answer() {
    if (phase_ == Phase::kAuthPending && !closing_) return true;
    wipe_response();  // a late answer: nothing to do but forget the payload
    return false;
  }

  // The host's arguments may point into auth_response_ (a user name parsed out of a PLAIN
  // response): they are used before the response is wiped.
  void auth_challenge(std::string_view raw) {
    if (!waiting_for_auth_answer()) return;
    // RFC 4954 §4: continue-req = "334" SP [base64] CRLF — no enhanced code (RFC 3463
    // classes are 2, 4 and 5 only).
    scratch_.clear();
    base::append_base64(scratch_, raw);
    reply(334, "", scratch_);
    wipe_response();
    auth_has_response_ = false;
    phase_ = Phase::kAuthResponse;
  }

  void auth_succeeded(std::string_view user) {
    if (!waiting_for_auth_answer()) return;
    authenticated_user_.assign(user);
    authenticated_ = true;
    end_exchange();
    // RFC 4954 §6: "235 2.7.0 Authentication Succeeded".
    reply(235, "2.7.0", "Authentication successful");
  }

  void auth_failed(const Reply& failure) {
    if (!waiting_for_auth_answer()) return;
    end_exchange();
    // The host's reply ends the exchange: it must be a 4xx or 5xx.
    const bool valid = failure.code >= 400 && failure.code <= 599;
    error_reply(valid ? failure.code : 454, valid ? std::string_view(failure.enhanced) : "4.7.0",
                failure.text);
  }

  // ---- message bodies -------------------------------------------------------------------

  std::optional<Action> step_data() {
    data_out_.clear();
    if (decoder_.finished()) {
      end_of_message();
      return std::nullopt;
    }
    std::string_view pending = buffered();
    if (pending.empty()) return need_input_or_close();
    const bool storing = problem_ == Problem::kNone;
    read_pos_ += decoder_.decode(pending, data_out_, kDataPiece);
    if (!storing) {
      data_out_.clear();  // the rest of a refused message is read and dropped
      return std::nullopt;
    }
    if (!config.limits.normalize_bare_line_endings && decoder_.saw_bare_line_ending()) {
      problem_ = Problem::kBareLineEnding;
    } else if (decoder_.line_too_long()) {
      problem_ = Problem::kLineTooLong;
    } else if (data_out_.size() > message_limit() - message_size_) {
      // RFC 1870 §6: the limit holds whatever the client declared.
      problem_ = Problem::kTooBig;
    }
    if (problem_ != Problem::kNone) {
      abort_needed_ = true;  // free the spool file now, reply after the terminator
      data_out_.clear();
      return std::nullopt;
    }
    message_size_ += data_out_.size();
    if (!data_out_.empty()) return Action::kMessageData;
    return std::nullopt;
  }

  static bool has_bare_line_ending(std::string_view octets, bool& previous_cr) {
    for (char c : octets) {
      if (previous_cr && c != '\n') return true;
      if (c == '\n' && !previous_cr) return true;
      previous_cr = c == '\r';
    }
    return false;
  }

  bool check_bdat_line_endings() const {
    // XXX: with normalize_bare_line_endings a BDAT body is stored as sent (converting
    // across chunk boundaries is not worth it yet); the outbound client fixes line ends.
    return envelope_.body != BodyType::kBinaryMime && !config.limits.normalize_bare_line_endings;
  }

  std::optional<Action> step_chunk() {
    data_out_.clear();
    if (chunk_remaining_ == 0) {
      finish_chunk();
      return std::nullopt;
    }
    std::string_view pending = buffered();
    if (pending.empty()) return need_input_or_close();
    std::size_t take = pending.size();
    if (take > chunk_remaining_) take = static_cast<std::size_t>(chunk_remaining_);
    if (take > kDataPiece) take = kDataPiece;
    std::string_view piece = pending.substr(0, take);
    read_pos_ += take;
    chunk_remaining_ -= take;
    if (chunk_discard_) return std::nullopt;
    if (problem_ != Problem::kNone) return std::nullopt;
    if (take > message_limit() - message_size_) {
      problem_ = Problem::kTooBig;
    } else if (check_bdat_line_endings() && has_bare_line_ending(piece, bdat_previous_cr_)) {
      problem_ = Problem::kBareLineEnding;
    }
    if (problem_ != Problem::kNone) {
      abort_needed_ = true;
      return std::nullopt;
    }
    data_out_.assign(piece);
    message_size_ += take;
    return Action::kMessageData;
  }

  void finish_chunk() {
    phase_ = Phase::kCommand;
    if (chunk_discard_) {
      chunk_discard_ = false;  // the reply was sent when the BDAT was refused
      return;
    }
    if (problem_ == Problem::kNone && chunk_last_ && check_bdat_line_endings() &&
        bdat_previous_cr_) {
      problem_ = Problem::kBareLineEnding;  // the body ends with a bare CR
      abort_needed_ = true;
    }
    if (problem_ != Problem::kNone) {
      problem_reply();
      reset_transaction();
      return;
    }
    if (chunk_last_) {
      // RFC 3030 §2: the LAST chunk ends the message like the end of DATA.
      phase_ = Phase::kEndPending;
      return;
    }
    scratch_.clear();
    append_number(scratch_, chunk_size_);
    scratch_.append(" octets received");
    reply(250, "2.0.0", scratch_);
  }

  void end_of_message() {
    if (problem_ == Problem::kNone) {
      phase_ = Phase::kEndPending;
      return;
    }
    phase_ = Phase::kCommand;
    problem_reply();
    reset_transaction();
  }

  void problem_reply() {
    switch (problem_) {
      case Problem::kNone:
        return;
      case Problem::kTooBig:
        // RFC 1870 §6 / RFC 5321 §4.5.3.1.10: 552 for an exceeded storage allocation. One
        // reply for the whole message, also when only a recipient's domain limit was passed:
        // accepting it for the others would mean a bounce later for that recipient.
        error_reply(552, "5.3.4",
                    size_limit_ != 0 ? "Message size exceeds the limit of a recipient's domain"
                                     : "Message size exceeds fixed maximum message size");
        return;
      case Problem::kBareLineEnding:
        error_reply(554, "5.6.0", "Bare CR or LF in message (only CRLF line endings allowed)");
        return;
      case Problem::kLineTooLong:
        // RFC 5321 §4.5.3.1.6: "The maximum total length of a text line including the
        // <CRLF> is 1000 octets".
        scratch_.assign("Line too long in message (limit ");
        append_number(scratch_, config.limits.max_text_line);
        scratch_.append(" octets incl. CRLF)");
        error_reply(550, "5.6.0", scratch_);
        return;
      case Problem::kHostFailed:
        reply(host_reply_.code, host_reply_.enhanced, host_reply_.text);
        return;
    }
  }

  // ---- host results ---------------------------------------------------------------------

  void message_failed(const Reply& failure) {
    host_reply_ = failure;
    // The host's reply ends a transaction: it must be a 4xx or 5xx.
    if (host_reply_.code < 400 || host_reply_.code > 599) {
      host_reply_.code = 451;
      host_reply_.enhanced = "4.3.0";
    }
    switch (phase_) {
      case Phase::kBeginPending:
        writer_open_ = false;
        reply(host_reply_.code, host_reply_.enhanced, host_reply_.text);
        reset_transaction();
        if (message_kind_ == MessageKind::kBdat) {
          chunk_discard_ = true;  // the chunk of this BDAT is still read and dropped
          phase_ = Phase::kChunk;
        } else {
          phase_ = Phase::kCommand;  // instead of 354: the client sends no body
        }
        return;
      case Phase::kData:
      case Phase::kChunk:
        writer_open_ = false;
        if (problem_ == Problem::kNone) problem_ = Problem::kHostFailed;  // reply at the end
        return;
      case Phase::kEndPending:
        writer_open_ = false;
        reply(host_reply_.code, host_reply_.enhanced, host_reply_.text);
        reset_transaction();
        phase_ = Phase::kCommand;
        return;
      default:
        return;  // not waiting for a message result: ignored
    }
  }

  void message_committed(std::string_view queue_id) {
    if (phase_ != Phase::kEndPending) return;
    writer_open_ = false;
    // docs/architecture.md "Security rules": this 250 follows the durable commit.
    scratch_.assign("Ok: queued as ");
    scratch_.append(queue_id);
    reply(250, "2.0.0", scratch_);
    // Errors count "without delivering mail" (as Postfix's smtpd_hard_error_limit does): a
    // client that got a message through starts afresh, so a long-lived connection from a
    // busy sender is not cut by errors spread over many messages.
    errors_ = 0;
    rejected_recipients_ = 0;
    reset_transaction();
    phase_ = Phase::kCommand;
  }

  void tls_established(const TlsInfo& info) {
    if (phase_ == Phase::kClosed || closing_) return;
    tls_active_ = true;
    tls_info_ = info;
    // RFC 3207 §4.2: "the server MUST discard any knowledge obtained from the client,
    // such as the argument to the EHLO command, which was not obtained from the TLS
    // negotiation itself."
    input_.clear();
    read_pos_ = 0;
    skipping_long_line_ = false;
    greeted_ = false;
    envelope_.helo.clear();
    envelope_.esmtp = false;
    reset_transaction();
    // An authentication from before the handshake (there can be none: AUTH needs TLS)
    // is knowledge not obtained from TLS.
    authenticated_ = false;
    authenticated_user_.clear();
    if (phase_ == Phase::kAuthPending || phase_ == Phase::kAuthResponse) end_exchange();
    if (phase_ == Phase::kTlsPending) phase_ = Phase::kCommand;
  }

  void receive(std::string_view bytes) {
    if (phase_ == Phase::kClosed || closing_ || eof_) return;
    if (phase_ == Phase::kTlsPending) return;  // plaintext after STARTTLS: never read
    if (!input_secret_) {
      if (read_pos_ > 0) {
        input_.erase(0, read_pos_);
        read_pos_ = 0;
      }
      input_.append(bytes);
      return;
    }
    // Part of a SASL payload is buffered: move it without leaving copies behind.
    input_secret_ = false;
    const std::size_t kept = input_.size() - read_pos_;
    if (kept + bytes.size() > input_.capacity()) {
      std::string larger;
      larger.reserve(std::max(2 * input_.capacity(), kept + bytes.size()));
      larger.append(buffered());
      wipe(input_.data(), input_.size());
      input_.swap(larger);
    } else if (read_pos_ > 0) {
      const std::size_t old_size = input_.size();
      input_.erase(0, read_pos_);
      input_.resize(old_size);  // the moved octets' old copies are now inside the string
      wipe(input_.data() + kept, old_size - kept);
      input_.resize(kept);
    }
    read_pos_ = 0;
    input_.append(bytes);
  }

  void close_with(int code, std::string_view enhanced, std::string_view text) {
    if (phase_ == Phase::kClosed || closing_) return;
    scratch_.assign(config.hostname).append(text);
    reply(code, enhanced, scratch_);
    begin_close();
  }

  const SessionConfig config;
  std::function<bool(std::string_view user)> may_start_message_;   // set_message_gate()
  std::function<void(std::string_view)> malformed_auth_observer_;  // set_malformed_auth_…
  std::string input_;
  std::size_t read_pos_ = 0;
  std::string output_;
  std::string data_out_;
  std::string scratch_;
  std::string envid_scratch_;
  std::string orcpt_scratch_;
  std::string auth_scratch_;
  std::vector<std::string> mechanisms_;  // config.auth_mechanisms, upper-case
  std::string auth_mechanism_;
  std::string auth_response_;  // decoded SASL payload; wiped when the step ends
  std::string authenticated_user_;
  std::string rewritten_sender_;        // config.sender_for's answer for the MAIL being handled
  std::optional<Reply> start_refusal_;  // refuse_at_start(): replaces the greeting
  DotUnstuffer decoder_;
  Envelope envelope_;
  TlsInfo tls_info_;
  Reply host_reply_;

  Phase phase_ = Phase::kCommand;
  MessageKind message_kind_ = MessageKind::kData;
  Problem problem_ = Problem::kNone;
  bool started_ = false;
  bool greeted_ = false;
  bool mail_given_ = false;
  bool chunking_ = false;
  bool tls_active_ = false;
  bool eof_ = false;
  bool closing_ = false;
  bool closed_as_http_ = false;
  bool writer_open_ = false;
  bool abort_needed_ = false;
  bool skipping_long_line_ = false;
  bool chunk_discard_ = false;
  bool chunk_last_ = false;
  bool bdat_last_ = false;
  bool bdat_previous_cr_ = false;
  bool authenticated_ = false;
  bool auth_starting_ = false;
  bool auth_has_response_ = false;
  bool input_secret_ = false;  // input_ holds part of an unconsumed AUTH line
  // The command waiting for the host's checks (kCheckPending).
  CheckStage check_stage_ = CheckStage::kConnect;
  std::string check_argument_;
  std::string pending_notify_;
  std::vector<std::string> pending_expansion_;  // of the RCPT being accepted (policy's)
  bool pending_esmtp_ = false;
  PendingMail pending_mail_;
  bool refused_at_connect_ = false;  // a 5xx instead of the greeting: only QUIT is served
  std::uint64_t bdat_size_ = 0;
  std::uint64_t chunk_size_ = 0;
  std::uint64_t chunk_remaining_ = 0;
  std::uint64_t message_size_ = 0;
  std::uint64_t size_limit_ = 0;  // a recipient domain's smaller limit; 0: max_message_size
  unsigned errors_ = 0;
  std::size_t rejected_recipients_ = 0;  // RCPTs refused by policy since the last message
  unsigned improper_pipelining_ = 0;
  std::uint64_t lines_seen_ = 0;
  EarlyTalkerScreen screen_;       // screen_early_talkers()
  bool pregreet_pending_ = false;  // "220-" sent, the final line waits for pregreet_passed()
  std::string_view early_talker_;  // "pregreet" or "pipelining" once refused as such
};

// clang-format off
const ServerSession::Impl::VerbRow ServerSession::Impl::kVerbs[kVerbCount] = {
  // verb        legal states        before TLS  ends group  needs auth  AUTH ext  payload  handler
  {"EHLO",     kAnyState,            true,       true,       false,      false,    false,   &Impl::handle_ehlo},
  {"HELO",     kAnyState,            true,       true,       false,      false,    false,   &Impl::handle_helo},
  {"MAIL",     kHelo,                false,      false,      true,       false,    false,   &Impl::handle_mail},
  {"RCPT",     kMail,                false,      false,      false,      false,    false,   &Impl::handle_rcpt},
  {"DATA",     kMail,                false,      true,       false,      false,    false,   &Impl::handle_data},
  {"BDAT",     kMail | kChunking,    false,      false,      false,      false,    true,    &Impl::handle_bdat},
  {"RSET",     kAnyState,            true,       false,      false,      false,    false,   &Impl::handle_rset},
  {"NOOP",     kAnyState,            true,       true,       false,      false,    false,   &Impl::handle_noop},
  {"QUIT",     kAnyState,            true,       true,       false,      false,    false,   &Impl::handle_quit},
  {"VRFY",     kAnyState,            false,      true,       false,      false,    false,   &Impl::handle_vrfy},
  {"EXPN",     kAnyState,            false,      true,       false,      false,    false,   &Impl::handle_expn},
  {"HELP",     kAnyState,            true,       false,      false,      false,    false,   &Impl::handle_help},
  {"STARTTLS", kNoHelo | kHelo,      true,       true,       false,      false,    false,   &Impl::handle_starttls},
  // AUTH ends a pipelined group except in one case (RFC 4954 §4): handle_auth counts it.
  {"AUTH",     kHelo,                false,      false,      false,      true,     false,   &Impl::handle_auth},
};
// clang-format on

ServerSession::ServerSession(const SessionConfig& config) : impl_(std::make_unique<Impl>(config)) {}
ServerSession::~ServerSession() = default;

void ServerSession::set_message_gate(std::function<bool(std::string_view user)> gate) {
  impl_->may_start_message_ = std::move(gate);
}

void ServerSession::set_malformed_auth_observer(
    std::function<void(std::string_view mechanism)> observer) {
  impl_->malformed_auth_observer_ = std::move(observer);
}

void ServerSession::set_local_user(std::string_view user) {
  if (impl_->started_) return;
  impl_->authenticated_user_.assign(user);
  impl_->authenticated_ = true;
}

void ServerSession::screen_early_talkers(const EarlyTalkerScreen& screen) {
  if (!impl_->started_) impl_->screen_ = screen;
}

bool ServerSession::pregreet_pending() const {
  return impl_->pregreet_pending_;
}

void ServerSession::pregreet_passed() {
  impl_->pregreet_passed();
}

std::string_view ServerSession::early_talker() const {
  return impl_->early_talker_;
}

void ServerSession::refuse_at_start(const Reply& reply) {
  if (!impl_->started_) impl_->start_refusal_ = reply;
}

void ServerSession::start() {
  if (impl_->started_ || impl_->phase_ == Impl::Phase::kClosed) return;
  impl_->started_ = true;
  if (impl_->start_refusal_) {  // the same reply as a connect check's refusal
    impl_->phase_ = Impl::Phase::kCheckPending;
    impl_->check_stage_ = CheckStage::kConnect;
    impl_->check_refused(*impl_->start_refusal_);
    return;
  }
  if (impl_->ask_host(CheckStage::kConnect, {})) return;  // the greeting waits for the checks
  impl_->greet();
}

void ServerSession::receive(std::string_view bytes) {
  impl_->receive(bytes);
}
void ServerSession::receive_eof() {
  impl_->eof_ = true;
}
void ServerSession::timeout() {
  impl_->close_with(421, "4.4.2", " Timeout, closing");
}
void ServerSession::shutdown() {
  impl_->close_with(421, "4.3.2", " Service shutting down, closing connection");
}
void ServerSession::append_refusal(std::string& out, std::string_view hostname,
                                   std::string_view reason) {
  std::string text;
  text.reserve(hostname.size() + 1 + reason.size());
  text.append(hostname).append(" ").append(reason);
  append_reply(out, 421, "4.7.0", text);
}
Action ServerSession::next() {
  return impl_->next();
}
std::string_view ServerSession::pending_output() const {
  return impl_->output_;
}
void ServerSession::consume_output(std::size_t n) {
  impl_->output_.erase(0, std::min(n, impl_->output_.size()));
}
void ServerSession::tls_established(const TlsInfo& info) {
  impl_->tls_established(info);
}
const Envelope& ServerSession::envelope() const {
  return impl_->envelope_;
}
std::string_view ServerSession::message_data() const {
  return impl_->data_out_;
}
void ServerSession::message_committed(std::string_view queue_id) {
  impl_->message_committed(queue_id);
}
void ServerSession::message_failed(const Reply& reply) {
  impl_->message_failed(reply);
}
bool ServerSession::tls_active() const {
  return impl_->tls_active_;
}
const TlsInfo& ServerSession::tls_info() const {
  return impl_->tls_info_;
}
const std::string& ServerSession::authenticated_user() const {
  return impl_->authenticated_user_;
}
std::string_view ServerSession::auth_mechanism() const {
  return impl_->auth_mechanism_;
}
bool ServerSession::auth_starting() const {
  return impl_->auth_starting_;
}
bool ServerSession::auth_has_response() const {
  return impl_->auth_has_response_;
}
std::string_view ServerSession::auth_response() const {
  return impl_->auth_response_;
}
void ServerSession::auth_challenge(std::string_view raw) {
  impl_->auth_challenge(raw);
}
void ServerSession::auth_succeeded(std::string_view user) {
  impl_->auth_succeeded(user);
}
void ServerSession::auth_failed(const Reply& reply) {
  impl_->auth_failed(reply);
}
CheckStage ServerSession::check_stage() const {
  return impl_->check_stage_;
}
std::string_view ServerSession::check_argument() const {
  return impl_->check_argument_;
}
void ServerSession::check_passed() {
  impl_->check_passed();
}
void ServerSession::check_refused(const Reply& reply) {
  impl_->check_refused(reply);
}
bool ServerSession::in_transaction() const {
  return impl_->mail_given_ || impl_->chunking_ || impl_->phase_ == Impl::Phase::kData ||
         impl_->phase_ == Impl::Phase::kChunk;
}
Waiting ServerSession::waiting() const {
  return impl_->phase_ == Impl::Phase::kData || impl_->phase_ == Impl::Phase::kChunk
             ? Waiting::kDataBlock
             : Waiting::kCommand;
}
std::string_view ServerSession::with_protocol() const {
  // RFC 3848 §2: "SMTP" for HELO, "ESMTP" for EHLO, "ESMTPS" for EHLO over TLS,
  // "ESMTPA" / "ESMTPSA" when the client authenticated (without / with TLS; AUTH needs
  // TLS here, so ESMTPA does not occur).
  if (!impl_->envelope_.esmtp) return "SMTP";
  if (impl_->authenticated_) return impl_->tls_active_ ? "ESMTPSA" : "ESMTPA";
  return impl_->tls_active_ ? "ESMTPS" : "ESMTP";
}
bool ServerSession::closed_as_http() const {
  return impl_->closed_as_http_;
}
unsigned ServerSession::error_count() const {
  return impl_->errors_;
}
unsigned ServerSession::improper_pipelining_count() const {
  return impl_->improper_pipelining_;
}

}  // namespace smtp
