// client.cpp — see client.h.
#include "milter/client.h"

#include <algorithm>
#include <utility>

#include "base/duration_text.h"

namespace milter {
namespace {

// The action a modification needs (SMFIF_*), which the milter must have negotiated.
std::uint32_t action_for(Response::Kind kind) {
  switch (kind) {
    case Response::Kind::kQuarantine:
      return action::kQuarantine;
    case Response::Kind::kAddHeader:
      return action::kAddHeaders;
    case Response::Kind::kInsertHeader:
    case Response::Kind::kChangeHeader:
      return action::kChangeHeaders | action::kAddHeaders;
    case Response::Kind::kAddRecipient:
      return action::kAddRcpt | action::kAddRcptWithArgs;
    case Response::Kind::kDeleteRecipient:
      return action::kDeleteRcpt;
    case Response::Kind::kReplaceBody:
      return action::kChangeBody;
    case Response::Kind::kChangeSender:
      return action::kChangeFrom;
    default:
      return 0;
  }
}

}  // namespace

std::string_view to_string(Outcome::Kind kind) {
  switch (kind) {
    case Outcome::Kind::kContinue:
      return "continue";
    case Outcome::Kind::kAccept:
      return "accept";
    case Outcome::Kind::kReject:
      return "reject";
    case Outcome::Kind::kTempfail:
      return "tempfail";
    case Outcome::Kind::kDiscard:
      return "discard";
    case Outcome::Kind::kSkip:
      return "skip";
    case Outcome::Kind::kFailed:
      return "failed";
  }
  return "unknown";
}

Client::Client(ClientOptions options) : options_(std::move(options)) {}

Client::~Client() = default;

Outcome Client::fail(std::string text) {
  if (failure_.empty()) failure_ = std::move(text);
  connection_.reset();
  return failed_outcome();
}

Outcome Client::failed_outcome() const {
  Outcome outcome;
  outcome.kind = Outcome::Kind::kFailed;
  outcome.failure = failure_;
  return outcome;
}

Outcome Client::connect(std::string_view hostname, char family, std::uint16_t port,
                        std::string_view address, Clock::time_point limit) {
  if (failed()) return failed_outcome();
  const Clock::time_point wait = std::min(Clock::now() + options_.timeout, limit);
  auto opened = Connection::open(options_.endpoint, wait);
  if (!opened) return fail("cannot connect: " + opened.error().text);
  connection_ = std::move(opened.value());
  auto sent = connection_->send(option_negotiation(action::kAll, protocol::kOffered), wait);
  if (!sent) return fail("option negotiation: " + sent.error().text);
  auto packet = connection_->receive(wait);
  if (!packet) {
    return fail("option negotiation: " +
                (packet.error().kind == Failure::Kind::kTimeout
                     ? "timed out after " + base::duration_text(options_.timeout)
                     : packet.error().text));
  }
  auto negotiation = parse_negotiation(packet.value(), action::kAll, protocol::kOffered);
  if (!negotiation) return fail("option negotiation: " + negotiation.error());
  negotiation_ = std::move(negotiation.value());
  return step(MacroStage::kConnect, milter::connect(hostname, family, port, address),
              protocol::kNoConnect, protocol::kNoReplyConnect, false, limit);
}

Outcome Client::helo(std::string_view name, Clock::time_point limit) {
  return step(MacroStage::kHelo, milter::helo(name), protocol::kNoHelo, protocol::kNoReplyHelo,
              false, limit);
}

Outcome Client::mail(std::string_view sender, Clock::time_point limit) {
  return step(MacroStage::kMail, milter::mail(sender, {}), protocol::kNoMail,
              protocol::kNoReplyMail, false, limit);
}

Outcome Client::rcpt(std::string_view recipient, Clock::time_point limit) {
  return step(MacroStage::kRcpt, milter::rcpt(recipient, {}), protocol::kNoRcpt,
              protocol::kNoReplyRcpt, false, limit);
}

Outcome Client::data(Clock::time_point limit) {
  // SMFIC_DATA exists from version 4 on; an older milter never gets it.
  if (negotiation_.version < 4 && !failed()) return Outcome{};
  return step(MacroStage::kData, encode(command::kData, {}), protocol::kNoData,
              protocol::kNoReplyData, false, limit);
}

Outcome Client::header(std::string_view name, std::string_view value, Clock::time_point limit) {
  return step(std::nullopt, milter::header(name, value), protocol::kNoHeaders,
              protocol::kNoReplyHeader, false, limit);
}

Outcome Client::end_of_headers(Clock::time_point limit) {
  return step(MacroStage::kEndOfHeaders, encode(command::kEndOfHeaders, {}),
              protocol::kNoEndOfHeaders, protocol::kNoReplyEndOfHeaders, false, limit);
}

Outcome Client::body(std::string_view content, Clock::time_point limit) {
  Outcome outcome;
  while (!content.empty()) {
    const std::string_view chunk = content.substr(0, kMaxBodyChunk);
    content.remove_prefix(chunk.size());
    outcome = step(std::nullopt, milter::body(chunk), protocol::kNoBody, protocol::kNoReplyBody,
                   false, limit);
    if (outcome.kind != Outcome::Kind::kContinue) return outcome;
  }
  return outcome;
}

Outcome Client::end_of_message(Clock::time_point limit) {
  return step(MacroStage::kEndOfMessage, encode(command::kEndOfMessage, {}), 0, 0, true, limit);
}

void Client::abort(Clock::time_point limit) {
  if (failed() || !connection_) return;
  auto sent = connection_->send(encode(command::kAbort, {}), limit);
  if (!sent) fail("abort: " + sent.error().text);
}

void Client::quit(Clock::time_point limit) {
  if (!failed() && connection_) (void)connection_->send(encode(command::kQuit, {}), limit);
  connection_.reset();
}

Outcome Client::step(std::optional<MacroStage> stage, const std::string& packet,
                     std::uint32_t skip_flag, std::uint32_t no_reply_flag, bool end_of_message,
                     Clock::time_point limit) {
  if (failed()) return failed_outcome();
  if (!connection_) return fail("not connected");
  if (skip_flag != 0 && negotiated(skip_flag)) return Outcome{};
  std::string out;
  if (stage) {
    const auto index = static_cast<std::size_t>(*stage);
    const std::vector<std::string>& names = negotiation_.macros[index] ? *negotiation_.macros[index]
                                            : options_.macros[index]   ? *options_.macros[index]
                                                                       : default_macros(*stage);
    std::vector<std::pair<std::string, std::string>> pairs;
    for (const std::string& name : names) {
      auto found = values_.find(name);
      if (found != values_.end()) pairs.emplace_back(name, found->second);
    }
    if (!pairs.empty()) out = macros(*stage, pairs);
  }
  out += packet;
  const Clock::time_point wait = std::min(Clock::now() + options_.timeout, limit);
  auto sent = connection_->send(out, wait);
  if (!sent) return fail(sent.error().text);
  if (no_reply_flag != 0 && negotiated(no_reply_flag)) return Outcome{};
  return read_reply(end_of_message, limit);
}

Outcome Client::read_reply(bool end_of_message, Clock::time_point limit) {
  Outcome outcome;
  std::size_t header_edits = 0;
  std::size_t recipient_edits = 0;
  std::size_t other_edits = 0;
  bool last_was_cr = false;  // the body replacement's last octet so far
  Clock::time_point wait = std::min(Clock::now() + options_.timeout, limit);
  for (;;) {
    auto packet = connection_->receive(wait);
    if (!packet) {
      if (packet.error().kind == Failure::Kind::kTimeout) {
        return fail(wait == limit && Clock::now() >= limit
                        ? std::string("no final reply within the check's deadline")
                        : "timed out after " + base::duration_text(options_.timeout));
      }
      return fail(packet.error().text);
    }
    auto response = parse_response(packet.value());
    if (!response) return fail(response.error());
    Response& r = response.value();
    if (r.kind == Response::Kind::kProgress) {  // SMFIR_PROGRESS: the wait starts again
      wait = std::min(Clock::now() + options_.timeout, limit);
      continue;
    }
    if (r.modification()) {
      if (!end_of_message)
        return fail(std::string(response_name(r.kind)) + " before the end of the message");
      if ((negotiation_.actions & action_for(r.kind)) == 0)
        return fail(std::string(response_name(r.kind)) + " without negotiating it");
      if (r.kind == Response::Kind::kReplaceBody) {
        if (!outcome.new_body) outcome.new_body.emplace();
        std::string& body = *outcome.new_body;
        // Sendmail's LF line ends become CRLF; a CR ending one chunk pairs with the next LF.
        for (char c : r.text) {
          if (c == '\n' && !last_was_cr) body += '\r';
          body += c;
          last_was_cr = c == '\r';
        }
        if (body.size() > options_.max_new_body) {
          const std::size_t mib = 1024 * 1024;
          return fail("replacement body over " +
                      (options_.max_new_body % mib == 0
                           ? std::to_string(options_.max_new_body / mib) + " MiB"
                           : std::to_string(options_.max_new_body) + " octets"));
        }
        continue;
      }
      switch (r.kind) {
        case Response::Kind::kAddHeader:
        case Response::Kind::kInsertHeader:
        case Response::Kind::kChangeHeader:
          if (++header_edits > kMaxHeaderEdits)
            return fail("more than " + std::to_string(kMaxHeaderEdits) + " header edits");
          break;
        case Response::Kind::kAddRecipient:
        case Response::Kind::kDeleteRecipient:
          if (++recipient_edits > kMaxRecipientEdits)
            return fail("more than " + std::to_string(kMaxRecipientEdits) + " recipient edits");
          break;
        default:
          if (++other_edits > kMaxOtherEdits) {
            return fail("more than " + std::to_string(kMaxOtherEdits) +
                        " quarantines and changes of sender");
          }
          break;
      }
      outcome.modifications.push_back(std::move(r));
      continue;
    }
    switch (r.kind) {
      case Response::Kind::kContinue:
        outcome.kind = Outcome::Kind::kContinue;
        break;
      case Response::Kind::kAccept:
        outcome.kind = Outcome::Kind::kAccept;
        break;
      case Response::Kind::kReject:
        outcome.kind = Outcome::Kind::kReject;
        break;
      case Response::Kind::kTempfail:
        outcome.kind = Outcome::Kind::kTempfail;
        break;
      case Response::Kind::kDiscard:
        outcome.kind = Outcome::Kind::kDiscard;
        break;
      case Response::Kind::kSkip:
        // SMFIR_SKIP answers a body chunk only, and only when negotiated.
        if (!negotiated(protocol::kSkip)) return fail("skip without negotiating it");
        outcome.kind = Outcome::Kind::kSkip;
        break;
      case Response::Kind::kShutdown:
        return fail("the milter is shutting down");
      default:
        return fail("unexpected reply");
    }
    outcome.reply = std::move(r.reply);
    return outcome;
  }
}

}  // namespace milter
