// milter_check.h — one configured milter as a check of the pipeline (intake/check.h): each SMTP
// session of a listener that names it gets its own connection to the milter, opened at
// connect, closed with QUIT when the session ends (Check::session_closed). The conversation
// (milter/client.h) runs on the milter threads (milter/workers.h), one strand per session, so
// its steps stay in order and no I/O thread ever waits on the milter; `done` comes back from
// there.
//
// Stages → milter steps: connect (with negotiation) → SMFIC_CONNECT, HELO/EHLO → SMFIC_HELO,
// MAIL → SMFIC_MAIL (an SMFIC_ABORT first when a transaction was left open: RSET, a refused
// DATA), RCPT → SMFIC_RCPT, DATA start → SMFIC_DATA. The end of data → the message, after the
// checks before this one (SPF, DKIM, DMARC): SMFIC_HEADER for each field of the header section
// with their edits applied (our Authentication-Results on top, fields forged in our name gone),
// SMFIC_EOH, SMFIC_BODY in 64 KiB pieces read back from the spool (Context::content: nothing of
// the body is held in memory), SMFIC_BODYEOB. A message that ends any other way (refused by
// another check, the client went away) gets SMFIC_ABORT (the message's CheckState going away
// says so). Each step waits for the milter's reply (unless it asked for none).
//
// Replies: continue; accept (at connect or HELO: the milter is done with the session; later:
// with the message); reject and tempfail (Postfix's texts "550 5.7.1 Command rejected" and
// "451 4.7.1 Service unavailable - try again later", or the milter's validated SMFIR_REPLYCODE);
// discard (the message is taken and dropped; at MAIL or RCPT: at the end of its data);
// quarantine → hold in our queue. Modifications at the end of data become the verdict's edits:
// add header → HeaderEdit::kAppend, insert header → kInsert, change header → kChange (an empty
// value: kDelete), replace body → new_body (LF made CRLF), change sender, add and delete
// recipients. The milter does not see our Received field (it stays first); its indexes count
// the fields it saw, less ours on top (a change to one of ours is ignored and logged).
//
// Failure (cannot connect, no answer within `timeout`, the milter closed the connection, a
// malformed or unexpected packet): the milter is done for the session and its default action
// applies to this step and every later one: "tempfail" refuses with 451 4.7.1 (the client
// keeps the message), "accept" goes on as if the milter were not configured. Logged
// (`milter_failed`, warning) and counted (smtpsd_milter_failures_total{milter}).
//
// A message whose header section is over what the intake keeps (1 MiB; no header events)
// is not the milter's failure: the milter hears SMFIC_ABORT at the end of its data, the
// default action applies to that message only (logged: `milter_skipped`, warning), and the
// session's next message goes to the milter again.
#pragma once

#include <array>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/endpoint.h"
#include "intake/check.h"
#include "milter/protocol.h"
#include "milter/workers.h"

namespace obs {
class Counter;
}

namespace intake {

struct MilterSettings {
  std::string name;  // the configuration's name: "rspamd"
  base::Endpoint endpoint;
  std::chrono::milliseconds timeout{10000};  // each step; SMFIR_PROGRESS starts it again
  bool default_accept = false;               // else tempfail
  std::array<std::optional<std::vector<std::string>>, milter::kMacroStages> macros;
  std::string hostname;  // ours: the `j` and {daemon_name} macros
};

class MilterCheck final : public Check {
 public:
  MilterCheck(MilterSettings settings, std::shared_ptr<milter::Workers> workers);
  ~MilterCheck() override;

  std::string_view name() const override { return name_; }
  StageMask stages() const override;
  bool reads_content() const override { return true; }
  std::string summary() const override;
  // A step may take `timeout`, and a milter that sends SMFIR_PROGRESS up to four times that.
  std::chrono::milliseconds deadline() const override;
  // At the end of data, a second more per MiB of content (at most 5 minutes in all): the
  // whole message goes to the milter then.
  std::chrono::milliseconds deadline_for(Stage stage, const Context& context) const override;
  Verdict timeout_verdict(Stage stage) const override;
  void run(Stage stage, const Context& context, Done done) override;
  void session_closed(std::string_view session_id) override;

  struct Session;  // one SMTP session's conversation (milter_check.cpp)

 private:
  std::shared_ptr<Session> session_for(const Context& context);

  std::shared_ptr<const MilterSettings> settings_;
  std::string name_;
  std::shared_ptr<milter::Workers> workers_;
  obs::Counter& failures_;  // smtpsd_milter_failures_total{milter}: looked up once
  std::mutex mutex_;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_;  // mutex_
};

}  // namespace intake
