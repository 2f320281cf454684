// loop_check.h — the built-in mail-loop check: a message whose header section already has
// as many Received fields as limits.max_received_headers (50 by default; ours would make one
// more) is refused (RFC 5321 §6.3: "a simple counting of the number of 'Received:' header
// fields in a message has proven to be an effective, although rarely optimal, method of
// detecting loops"). Reply: "554 5.4.6 Too many Received headers (N): mail loop?" with N the
// count of the whole header section (RFC 3463 X.4.6 "Routing loop detected"), given at the
// end of data like every message-stage refusal: nothing is stored. XXX: §6.3 says a
// threshold "SHOULD" normally be "at least 100"; 50 follows Postfix's hopcount_limit, and
// real paths stay far below it. With the limit 0 the check is not built at all
// (app::built_in_checks): loop detection is off.
//
// Subscribes to kEndOfHeaders only: no cost at connect, HELO, MAIL or RCPT (the session's
// checked stages stay 0, pipelining is unchanged), and one pass over the header section per
// message, kept by the intake while it streams (Context::header_section; a message without
// an empty line is all header section, and the intake gives it at the end of its content).
// A header section larger than the intake keeps (1 MiB, MessageIntake) is not counted and
// the message passes: a loop adds a few hundred octets per hop, so the limit is reached
// thousands of fields before that size. Stateless: one instance serves every session of
// every listener of one configuration snapshot, from any thread.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "intake/check.h"

namespace intake {

class ReceivedLoopCheck final : public Check {
 public:
  // max_fields > 0: a header section with this many Received fields or more is a loop.
  explicit ReceivedLoopCheck(std::size_t max_fields) : max_fields_(max_fields) {}

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
// keeps it; the last line may lack its CRLF): a field whose name is "Received" in any case,
// with optional WSP before the colon (RFC 5322 §1.2.2, §4.5.3 obs-optional); continuation
// lines, X-Received, a name without a colon and the body do not count.
std::size_t count_received_fields(std::string_view header_section);

}  // namespace intake
