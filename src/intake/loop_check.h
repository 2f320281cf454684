// loop_check.h — the built-in mail-loop check: a message whose header section already has
// more Received fields than a real path makes is refused (RFC 5321 §6.3: "a simple counting
// of the number of 'Received:' header fields in a message has proven to be an effective,
// although rarely optimal, method of detecting loops"; the threshold "SHOULD" normally be
// "at least 100"). Reply: 554 5.4.6 (RFC 3463 X.4.6 "Routing loop detected"), given at the
// end of data like every message-stage refusal: nothing is stored.
//
// Subscribes to kEndOfHeaders only: no cost at connect, HELO, MAIL or RCPT (the session's
// checked stages stay 0, pipelining is unchanged), and one pass over the header section per
// message, made by the intake while it streams (Context::header_section). A header section
// too large for the intake to keep (over 1 MiB) is not counted: the session's own
// limits.max_received_headers still applies to it. Stateless: one instance serves every
// session of every listener, from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "intake/check.h"

namespace intake {

class ReceivedLoopCheck final : public Check {
 public:
  // RFC 5321 §6.3's "at least 100": a message with this many Received fields passes (ours
  // makes one more), one with more is a loop.
  static constexpr std::size_t kMaxReceivedFields = 100;

  explicit ReceivedLoopCheck(std::size_t max_fields = kMaxReceivedFields)
      : max_fields_(max_fields) {}

  std::string_view name() const override { return "received-loop"; }
  StageMask stages() const override { return mask(Stage::kEndOfHeaders); }
  std::string summary() const override;
  // It answers at once; were it ever late, a loop is no reason to hold mail back.
  Verdict timeout_verdict(Stage) const override { return Verdict::pass(); }
  void run(Stage stage, const Context& context, Done done) override;

 private:
  std::size_t max_fields_;
};

// Received fields in a header section (fields with CRLF, then the empty line, as the intake
// keeps it): a field whose name is "Received" in any case, with optional WSP before the colon
// (RFC 5322 §4.5.3 obs-optional); continuation lines, X-Received and the body do not count.
// Stops counting once past stop_after.
std::size_t count_received_fields(std::string_view header_section, std::size_t stop_after);

}  // namespace intake
