// client.h — one conversation with one milter for one SMTP session: the MTA side of the
// protocol (milter/protocol.h) over a milter/connection.h socket. Blocking, for the milter
// threads only; each step waits at most `timeout` for the milter's answer, and SMFIR_PROGRESS
// starts that wait again, but never past the step's `limit` (the caller's deadline).
//
// Steps the milter asked to leave out (SMFIP_NO*) are not sent and count as "continue"; steps
// it wants no reply to (SMFIP_NR_*) are sent without waiting. The macros of each stage (the
// milter's own list from SMFIR_SETSYMLIST, else the configured one, else Postfix's defaults,
// protocol.h default_macros) go before the step, with the values set so far (set_macro); a
// macro without a value is left out. Any failure (connect, timeout, the milter closing,
// a malformed packet, a modification it did not negotiate, too many modifications) closes the
// connection: every later step fails at once with the same text, and the caller applies the
// default action.
//
// What a milter sends at the end of a message is bounded while it is read (each packet is
// bounded by kMaxPacket, their number here): at most kMaxHeaderEdits header edits,
// kMaxRecipientEdits recipient edits, kMaxOtherEdits others (quarantine, change of sender),
// and a replacement body of at most max_new_body octets (kMaxNewBody) (after LF is made CRLF); past
// a bound the milter has failed.
#pragma once

#include <array>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/endpoint.h"
#include "milter/connection.h"
#include "milter/protocol.h"

namespace milter {

constexpr std::size_t kMaxHeaderEdits = 1000;     // add, insert, change header
constexpr std::size_t kMaxRecipientEdits = 1000;  // add, delete recipient
constexpr std::size_t kMaxOtherEdits = 100;       // quarantine, change sender
constexpr std::size_t kMaxNewBody = 64u * 1024 * 1024;

struct ClientOptions {
  base::Endpoint endpoint;
  std::chrono::milliseconds timeout{10000};
  std::size_t max_new_body = kMaxNewBody;  // the replacement body's bound (tests lower it)
  // The configured macro list per stage (MacroStage order); nullopt: default_macros().
  std::array<std::optional<std::vector<std::string>>, kMacroStages> macros;
};

struct Outcome {
  enum class Kind { kContinue, kAccept, kReject, kTempfail, kDiscard, kSkip, kFailed };
  Kind kind = Kind::kContinue;
  std::optional<smtp::Reply> reply;  // kReject / kTempfail given with SMFIR_REPLYCODE
  std::string failure;               // kFailed: why, for the log line
  // End of message: the modifications, in the order the milter sent them (quarantine too),
  // except the body replacement: its chunks joined in new_body, LF made CRLF (a CR ending one
  // chunk pairs with the next chunk's LF), as they arrive.
  std::vector<Response> modifications;
  std::optional<std::string> new_body;
};
std::string_view to_string(Outcome::Kind kind);

class Client {
 public:
  explicit Client(ClientOptions options);
  ~Client();

  void set_macro(const std::string& name, std::string value) { values_[name] = std::move(value); }
  void clear_macro(const std::string& name) { values_.erase(name); }

  // Connects and negotiates; then SMFIC_CONNECT: family '4' or '6' (with port and address) or
  // 'L' (a local client).
  Outcome connect(std::string_view hostname, char family, std::uint16_t port,
                  std::string_view address, Clock::time_point limit);
  Outcome helo(std::string_view name, Clock::time_point limit);
  Outcome mail(std::string_view sender, Clock::time_point limit);
  Outcome rcpt(std::string_view recipient, Clock::time_point limit);
  Outcome data(Clock::time_point limit);
  Outcome header(std::string_view name, std::string_view value, Clock::time_point limit);
  Outcome end_of_headers(Clock::time_point limit);
  // In chunks of at most kMaxBodyChunk; kSkip when the milter wants no more.
  Outcome body(std::string_view content, Clock::time_point limit);
  Outcome end_of_message(Clock::time_point limit);
  // SMFIC_ABORT (the transaction ends without its end of message; no reply) and SMFIC_QUIT.
  void abort(Clock::time_point limit);
  void quit(Clock::time_point limit);

 private:
  bool failed() const { return !failure_.empty(); }
  Outcome fail(std::string text);
  Outcome failed_outcome() const;
  // Sends the stage's macros (when stage is set) and the packet; reads the reply unless
  // `no_reply` is negotiated. `end_of_message`: modifications may come before the reply.
  Outcome step(std::optional<MacroStage> stage, const std::string& packet, std::uint32_t skip_flag,
               std::uint32_t no_reply_flag, bool end_of_message, Clock::time_point limit);
  Outcome read_reply(bool end_of_message, Clock::time_point limit);
  bool negotiated(std::uint32_t flag) const { return (negotiation_.protocol_flags & flag) != 0; }

  ClientOptions options_;
  std::unique_ptr<Connection> connection_;
  Negotiation negotiation_;
  std::map<std::string, std::string> values_;
  std::string failure_;
};

}  // namespace milter
