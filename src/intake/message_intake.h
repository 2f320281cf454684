// message_intake.h — one session's messages on their way from the session to the spool.
//
// Owns what happens between the session's kMessageBegin and its 250: a fresh queue id and
// spool file, the Received header (RFC 5321 §4.4), streaming the content to the spool, the
// header and body events the check pipeline subscribes to, the edits of the checks (header
// fields, body, sender, recipients; written through queue::SpoolWriter before the commit), a
// check's hold (marked durably with the commit), and the mapping of every storage failure to
// the reply the client gets (RFC 3463 X.3.1 "mail system full" when the disk is full or not
// writable, else a plain temporary failure: the client keeps the message either way).
// RFC 8689: a "TLS-Required: No" field of one of our authenticated senders, on a message sent
// without REQUIRETLS, is recorded in the spool for delivery (SpoolWriter::set_tls_optional).
// Log lines: spool_failed, accepted (README "Logs").
//
// Sans-I/O apart from the spool's own file writes: the durable commit (fsync) is the host's
// to run off the I/O thread (queue::GroupCommitter); it hands the result to committed().
// Not thread-safe: one per session, used on the session's thread.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"
#include "intake/check.h"
#include "intake/pipeline.h"
#include "queue/spool.h"
#include "smtp/envelope.h"
#include "smtp/reply.h"

namespace intake {

// What is known of the session when a message begins (for Received and the checks).
struct SessionFacts {
  std::string session_id;
  std::string client_address;
  std::uint16_t client_port = 0;
  std::string role;
  std::string by_hostname;
  bool received_names_user = false;  // "(authenticated as …)" in Received
};

// One step of the current message facts for the Received header and the checks.
struct MessageStart {
  const smtp::Envelope* envelope = nullptr;
  std::string_view with_protocol;  // RFC 3848 keyword
  std::string_view tls_version;    // empty without TLS
  std::string_view tls_cipher;
  std::string_view authenticated_user;
  std::int64_t unix_time = 0;
};

// A header or body event waiting for the host to run its stage.
struct ContentEvent {
  Stage stage = Stage::kHeader;
  std::string_view name;   // kHeader
  std::string_view value;  // kHeader
  std::string_view chunk;  // kBody
};

class MessageIntake {
 public:
  MessageIntake(queue::Spool& spool, const Pipeline& pipeline, SessionFacts facts);
  ~MessageIntake();
  MessageIntake(const MessageIntake&) = delete;
  MessageIntake& operator=(const MessageIntake&) = delete;

  // kMessageBegin: opens the spool file and writes the Received header. A reply means the
  // message cannot be taken (the session sends it instead of 354).
  std::optional<smtp::Reply> begin(const MessageStart& start);
  // The local user the kernel named for this session (a local submission), once known.
  void set_local_user(std::string user, std::uint32_t uid) {
    local_user_ = std::move(user);
    local_uid_ = uid;
  }
  // kMessageData: appends; a reply means the message failed (the session sends it at the end).
  std::optional<smtp::Reply> append(std::string_view data);
  // Header and body events produced by the appends since the last call (only the stages the
  // pipeline subscribes to); valid until the next append(). The end of headers comes as a
  // kEndOfHeaders event.
  const std::vector<ContentEvent>& events() const { return events_; }
  // End of the content, before the end-of-data checks: a message without the empty line is
  // all header section (RFC 5322 §2.1: the body is optional), so its kEndOfHeaders event
  // comes now (in events()), with the content so far as Context::header_section. Header
  // edits that rewrite such a section are still refused (apply()). When a check reads the
  // stored message, the content is made readable for it (Context::content).
  void end_of_content();
  void clear_events() { events_.clear(); }
  // Gives up the message (the session refused it, a check did, or the peer went away).
  void abort();

  // End of data, after the end-of-data checks: writes the merged edits of every stage of
  // this message, and marks it held for a kHold verdict (a kPass or kHold verdict only). A
  // reply (451: the client keeps the message) means it must not be accepted: an edit that
  // cannot be carried out (an invalid sender or added recipient, every recipient deleted,
  // a Maildir folder name that Spool::is_valid_folder refuses), or a storage failure.
  std::optional<smtp::Reply> apply(const Verdict& verdict);
  // Whether apply() held the message (a kHold verdict): it is committed with its hold, and
  // queue::Scheduler delivers it only after `smtpsctl queue release`.
  bool held() const { return held_; }
  // Whether apply() recorded the sender's "TLS-Required: No" (RFC 8689 §3) for delivery.
  bool tls_optional() const { return tls_optional_; }
  // The writer to commit durably (host: queue::GroupCommitter), or nullptr when begin() or
  // an append failed.
  queue::SpoolWriter* writer() { return writer_.get(); }
  // The commit's result: the queue id to answer 250 with, or the failure reply.
  base::Expected<std::string, smtp::Reply> committed(
      const base::Expected<base::Ok, queue::SpoolError>& result);
  // Whether the committed message went into every mailbox at acceptance
  // (queue::SpoolWriter::delivered): there is nothing to queue.
  bool delivered_at_acceptance() const { return delivered_; }
  // Whether the committer delivers it itself after the reply (queue::SpoolWriter::taken,
  // `[queue] reply_after = "log"`): not to be handed to the queue either.
  bool taken_by_committer() const { return taken_; }

  // Facts for the checks of this message.
  Context context() const;
  // The checks' per-message state (CheckState), one slot per check of the pipeline; empty
  // slots at begin(), freed when the message ends.
  std::vector<std::unique_ptr<CheckState>>* check_states() { return &check_states_; }
  const std::string& queue_id() const { return id_; }
  std::uint64_t size() const { return size_; }
  bool open() const { return writer_ != nullptr; }
  // "451 4.3.0 Temporary failure: message not stored, try later": the reply when the message
  // could not be kept (no spool file open at the end of data, a write that failed); the
  // client keeps the message and tries again.
  static const smtp::Reply& not_stored();

 private:
  struct EditFailure {
    std::string why;   // for the log line
    std::string text;  // of the 451 the client gets
  };
  smtp::Reply failed(std::string_view step, const queue::SpoolError& error);
  void scan(std::string_view data);
  // A new sender, recipients added or deleted: checked, then given to the writer.
  std::optional<EditFailure> apply_envelope_edits(const Verdict& verdict);

  queue::Spool& spool_;
  const Pipeline& pipeline_;
  SessionFacts facts_;
  // A local submission's host user (SO_PEERCRED), named in Received instead of an address.
  std::string local_user_;
  std::uint32_t local_uid_ = 0;
  std::unique_ptr<queue::SpoolWriter> writer_;
  const smtp::Envelope* envelope_ = nullptr;
  std::string id_;
  std::string authenticated_user_;
  std::uint64_t size_ = 0;
  std::string received_;  // our Received header, the first content octets
  // The stored content for the end-of-data checks that read it (Pipeline::reads_content).
  std::shared_ptr<const queue::ContentReader> content_;
  // The envelope as committed (after a check's edits), for the accepted log line.
  std::string final_sender_;
  std::size_t final_recipients_ = 0;
  bool held_ = false;
  bool delivered_ = false;  // committed(): delivered at acceptance
  bool taken_ = false;      // committed(): delivered by the committer after the reply
  bool tls_optional_ = false;
  // The client's header section as received, while the pipeline has checks (their header
  // events and the header edits need it) or the sender is one whose TLS-Required field counts;
  // bounded by kMaxHeaderSection.
  bool capture_ = false;
  bool headers_done_ = false;
  bool header_overflow_ = false;
  bool section_without_body_ = false;  // end_of_content() found no empty line
  std::string header_section_;
  std::size_t field_start_ = 0;  // of the next field not yet given as an event
  std::vector<ContentEvent> events_;
  std::vector<std::unique_ptr<CheckState>> check_states_;
};

// The header section rebuilt with the edits: `section` is a complete header section (fields
// with CRLF, then the empty line); kAdd fields go on top, in order; kInsert and kAppend
// fields go among the section's fields (at their index, at the end), in order. Fails (with the
// reason) on a field name or value that would break the message (no CR/LF outside folding, no colon
// or control characters in names).
base::Expected<std::string, std::string> edit_header_section(std::string_view section,
                                                             const std::vector<HeaderEdit>& edits);

}  // namespace intake
