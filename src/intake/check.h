// check.h — the contract between the intake and every check that looks at incoming mail
// (SPF, DKIM, DMARC, DNS block lists, milters, ...). Fixed here so that each check plugs
// into the same place; see docs/architecture.md "Checks".
//
// Events, in the order a session produces them: connect, HELO/EHLO, MAIL, each RCPT, DATA
// start (the spool file is open), each header field, end of headers, body chunks (as they
// stream to disk), end of data. A check subscribes to the stages it needs (stages()); a
// stage no check subscribes to costs nothing.
//
// Running: the host calls run() on its I/O thread with the facts so far; the check calls
// `done` exactly once, at once or later from any thread (after a DNS answer, say): the host
// brings the verdict back to the connection's thread. A check must never block the calling
// thread. Each check has a deadline; when it passes, the check's timeout_verdict() applies
// and a late `done` is ignored. Under PIPELINING no later command runs while a check is
// pending, so replies keep command order (RFC 2920 §3.1); end-of-data checks must finish
// far inside the 10-minute DATA-termination timeout of RFC 5321 §4.5.3.2.6, hence deadlines
// of seconds.
//
// Verdicts: pass; a reply (at RCPT it refuses that recipient only, elsewhere the command or
// the message); discard (250 to the client, nothing stored); hold in the queue; message
// edits (header add/insert/change/delete, body replacement, a new sender, recipients added
// or deleted, delivery into a folder). Edits are collected through the stages of a message
// and written durably before the 250 (queue::SpoolWriter::replace_header_section,
// truncate_content, replace_envelope, set_folder: nothing of the message is copied a second
// time). A folder applies to Maildir delivery only: LMTP and remote delivery ignore it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/envelope.h"
#include "smtp/reply.h"

namespace queue {
class ContentReader;
}

namespace intake {

enum class Stage : std::uint16_t {
  kConnect = 1u << 0,
  kHelo = 1u << 1,
  kMail = 1u << 2,
  kRcpt = 1u << 3,
  kDataStart = 1u << 4,
  kHeader = 1u << 5,
  kEndOfHeaders = 1u << 6,
  kBody = 1u << 7,
  kEndOfData = 1u << 8,
};
using StageMask = std::uint16_t;
constexpr StageMask mask(Stage stage) {
  return static_cast<StageMask>(stage);
}
std::string_view to_string(Stage stage);

// What a check sees. Views into the host's state: valid during run() only (copy what a
// later completion needs).
// What a check keeps from one stage of a message to the next: DKIM's body hashes while the
// body streams, the SPF answer started at DATA for DMARC at the end of data. The host keeps
// one slot per check of the pipeline for each message (Context::state), empty at its DATA
// start and freed when the message ends (stored, refused or abandoned). A check whose work
// finishes on another thread after its deadline must not write into the slot then: keep
// such results in an object the late completion shares (a shared_ptr the state holds).
class CheckState {
 public:
  virtual ~CheckState() = default;
};

struct Verdict;

struct Context {
  std::string_view session_id;
  std::string_view client_address;  // the client (behind a PROXY header: the one it names)
  std::uint16_t client_port = 0;
  std::string_view role;                     // listener role: "smtp", "submission", "submissions"
  std::string_view helo;                     // the EHLO/HELO name (kHelo: the one being checked)
  std::string_view tls_version;              // empty without TLS
  std::string_view tls_cipher;               // empty without TLS (connect to RCPT only)
  std::string_view authenticated_user;       // empty when not authenticated
  const smtp::Envelope* envelope = nullptr;  // from kMail on (kMail: sender not yet set)
  std::string_view sender;                   // kMail: the reverse-path being checked
  std::string_view recipient;                // kRcpt: the address being checked
  std::string_view queue_id;                 // from kDataStart on
  std::string_view header_name;              // kHeader: one field, unfolded as received
  std::string_view header_value;             //   (value without the leading space, with CRLFs)
  std::string_view body_chunk;               // kBody: the next octets of the body
  // From kEndOfHeaders on: the client's header section as received (fields with CRLF, then
  // the empty line; our Received field is not in it; a message without the empty line is all
  // header section, given at the end of its content). Empty when it was too large to keep.
  std::string_view header_section;
  // The header section was larger than the intake keeps (1 MiB): no header events came, and
  // header_section stays empty.
  bool header_section_too_large = false;
  // From kDataStart to kEndOfData: this check's slot for the message (see CheckState); null
  // at connect, HELO, MAIL and RCPT.
  std::unique_ptr<CheckState>* state = nullptr;
  // kEndOfData: the merged verdict of the checks before this one (a milter's edits), so that
  // a signature made here covers them; null elsewhere.
  const Verdict* earlier = nullptr;
  // kEndOfData: the edits of the message's earlier stages (Authentication-Results fields
  // removed at the end of the headers); with `earlier`, every edit so far. Null elsewhere.
  const Verdict* earlier_stages = nullptr;
  // kEndOfData, when a check of the pipeline reads_content(): the content as stored (our
  // Received field, then the client's content), to read off the I/O thread; the body starts
  // at body_offset. Null when the header section was too large or the content could not be
  // read back (a storage failure: the message fails anyway).
  std::shared_ptr<const queue::ContentReader> content;
  std::uint64_t body_offset = 0;
};

struct HeaderEdit {
  enum class Kind {
    kAdd,     // a field at the top of the header section (Authentication-Results, DKIM-Signature)
    kChange,  // the index-th (from 1) field called name gets value; kept when absent
    kDelete,  // the index-th (from 1) field called name is removed
    // A milter's SMFIR_INSHEADER: before the index-th (from 0) field of the client's header
    // section as edited so far (our Received field stays first; past the end: at the end).
    kInsert,
    kAppend,  // a milter's SMFIR_ADDHEADER: at the end of the header section
  };
  Kind kind = Kind::kAdd;
  std::string name;
  std::string value;  // without CRLF; folded lines keep their CRLF + WSP
  unsigned index = 1;
};

struct Verdict {
  enum class Kind { kPass, kReply, kDiscard, kHold };
  Kind kind = Kind::kPass;
  smtp::Reply reply;  // kReply: a 4xx or 5xx
  // Message edits (kPass and kHold; applied before the 250).
  std::vector<HeaderEdit> header_edits;
  std::optional<std::string> new_body;    // replaces everything after the header section
  std::optional<std::string> new_sender;  // the reverse-path ("" for <>)
  std::vector<std::string> add_recipients;
  std::vector<std::string> delete_recipients;
  // Maildir++ folder for local delivery ("" = INBOX), per message: "Junk", "Lists.smtpsd"
  // (queue::Spool::is_valid_folder, else the message fails with 451). Only Maildir delivery
  // uses it; LMTP and remote delivery ignore it (the LMTP server files the message itself).
  std::string folder;

  static Verdict pass() { return {}; }
  static Verdict refuse(smtp::Reply reply) {
    Verdict verdict;
    verdict.kind = Kind::kReply;
    verdict.reply = std::move(reply);
    return verdict;
  }
  bool has_edits() const {
    return !header_edits.empty() || new_body || new_sender || !add_recipients.empty() ||
           !delete_recipients.empty() || !folder.empty();
  }
};

class Check {
 public:
  using Done = std::function<void(Verdict)>;
  virtual ~Check() = default;
  virtual std::string_view name() const = 0;  // for logs and metrics: "spf", "dnsbl"
  virtual StageMask stages() const = 0;
  // Whether it reads the stored message at the end of data (Context::content).
  virtual bool reads_content() const { return false; }
  // What it does, in a few words, for the start-up lines of `smtpsd dev` ("554 5.4.6 at 50
  // Received fields"); may be empty.
  virtual std::string summary() const { return {}; }
  // How long one run may take before timeout_verdict() applies.
  virtual std::chrono::milliseconds deadline() const { return std::chrono::seconds(10); }
  // The deadline of one run at `stage` (the host's timer): deadline(), unless the work grows
  // with what the check reads (a milter is given the whole message at the end of data).
  virtual std::chrono::milliseconds deadline_for(Stage, const Context&) const { return deadline(); }
  // The default action when the deadline passes: by default a temporary failure, so that
  // nothing is accepted unchecked; a check whose verdict is advisory returns pass().
  virtual Verdict timeout_verdict(Stage) const {
    return Verdict::refuse(smtp::Reply{451, "4.7.1", "Temporary failure checking the message"});
  }
  virtual void run(Stage stage, const Context& context, Done done) = 0;
  // The SMTP session ended (every check of its pipeline hears it, whatever its stages): a
  // check that keeps something per session (a milter's connection) lets it go. On the
  // session's I/O thread; must not block.
  virtual void session_closed(std::string_view /*session_id*/) {}
};

}  // namespace intake
