// message_intake.cpp — see message_intake.h.
#include "intake/message_intake.h"

#include <algorithm>
#include <utility>

#include "base/ascii.h"
#include "intake/tls_required_field.h"
#include "obs/log.h"
#include "smtp/address_grammar.h"
#include "smtp/received_header.h"

namespace intake {
namespace {

// The client's header section kept for header events and edits. Real header sections are a
// few KiB; a message past this still goes through, but header edits then fail (451).
constexpr std::size_t kMaxHeaderSection = 1024 * 1024;

// RFC 5322 §3.6.8: field-name = 1*ftext; ftext = %d33-57 / %d59-126.
bool valid_field_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(),
                                      [](char c) { return c >= 33 && c <= 126 && c != ':'; });
}

// A value may fold (CRLF followed by WSP) but carries no other CR, LF or NUL.
bool valid_field_value(std::string_view value) {
  for (std::size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (c == '\0') return false;
    if (c == '\n') return false;
    if (c == '\r') {
      if (i + 2 >= value.size() || value[i + 1] != '\n' ||
          (value[i + 2] != ' ' && value[i + 2] != '\t'))
        return false;
      ++i;
    }
  }
  return true;
}

// RFC 8689 §4.1 has a server tag a message by its TLS-Required field, unless REQUIRETLS was
// given on MAIL (then the field "MUST be ignored"). Whom to believe is the receiver's choice:
// anyone on port 25 could add "TLS-Required: No" to strip the recipient domain's DANE or
// MTA-STS protection from mail that passes through us, so only the field of our own
// authenticated senders (AUTH, a client certificate, a local submission) counts. From the
// others the field is kept in the message, and ignored.
bool honours_tls_required(const smtp::Envelope& envelope) {
  return envelope.authenticated && !envelope.require_tls;
}

}  // namespace

MessageIntake::MessageIntake(queue::Spool& spool, const Pipeline& pipeline, SessionFacts facts)
    : spool_(spool), pipeline_(pipeline), facts_(std::move(facts)) {}

MessageIntake::~MessageIntake() {
  abort();
}

const smtp::Reply& MessageIntake::not_stored() {
  static const smtp::Reply kNotStored{451, "4.3.0",
                                      "Temporary failure: message not stored, try later"};
  return kNotStored;
}

smtp::Reply MessageIntake::failed(std::string_view step, const queue::SpoolError& error) {
  obs::Log line("spool_failed", obs::Level::kError);
  line.kv("session", facts_.session_id);
  if (step == "commit") line.kv("id", id_);
  line.kv("error", error.message);
  if (step == "begin" && !error.transient) {
    return smtp::Reply{552, "5.3.4", "Envelope too large (too many recipients or parameters)"};
  }
  // RFC 3463 X.3.1 "mail system full" passes without the client's help.
  if (error.storage_unavailable()) {
    return smtp::Reply{452, "4.3.1", "Insufficient system storage, try again later"};
  }
  return not_stored();
}

std::optional<smtp::Reply> MessageIntake::begin(const MessageStart& start) {
  abort();
  envelope_ = start.envelope;
  authenticated_user_.assign(start.authenticated_user);
  size_ = 0;
  held_ = false;
  tls_optional_ = false;
  capture_ = pipeline_.stages() != 0 || honours_tls_required(*start.envelope);
  headers_done_ = false;
  header_overflow_ = false;
  section_without_body_ = false;
  header_section_.clear();
  field_start_ = 0;
  events_.clear();
  check_states_.clear();
  check_states_.resize(pipeline_.checks().size());
  id_ = spool_.new_id();
  auto begun = spool_.begin_with_id(id_, *start.envelope, start.unix_time);
  if (!begun) return failed("begin", begun.error());
  writer_ = std::move(begun.value());
  smtp::ReceivedFields fields;
  fields.helo = start.envelope->helo;
  fields.client_address = facts_.client_address;
  fields.by_hostname = facts_.by_hostname;
  fields.with_protocol = start.with_protocol;
  fields.queue_id = id_;
  fields.tls_version = start.tls_version;
  fields.tls_cipher = start.tls_cipher;
  if (start.envelope->recipients.size() == 1) {
    fields.for_recipient = start.envelope->recipients.front().address;
  }
  fields.unix_time = start.unix_time;
  fields.local_user = local_user_;
  fields.local_uid = local_uid_;
  if (facts_.received_names_user) fields.authenticated_user = start.authenticated_user;
  received_ = smtp::received_header(fields);
  if (auto appended = writer_->append(received_); !appended) {
    smtp::Reply reply = failed("append", appended.error());
    abort();
    return reply;
  }
  return std::nullopt;
}

std::optional<smtp::Reply> MessageIntake::append(std::string_view data) {
  if (!writer_) return std::nullopt;  // already failed: the session has its reply
  size_ += data.size();
  if (auto appended = writer_->append(data); !appended) {
    smtp::Reply reply = failed("append", appended.error());
    abort();
    return reply;
  }
  if (capture_) scan(data);
  return std::nullopt;
}

void MessageIntake::scan(std::string_view data) {
  events_.clear();
  if (headers_done_) {
    if (pipeline_.wants(Stage::kBody) && !data.empty()) {
      events_.push_back(ContentEvent{Stage::kBody, {}, {}, data});
    }
    return;
  }
  if (header_overflow_) return;
  if (header_section_.size() + data.size() > kMaxHeaderSection) {
    header_overflow_ = true;  // no header events or edits for this message
    header_section_.clear();
    return;
  }
  const std::size_t old_size = header_section_.size();
  header_section_.append(data);
  const bool want_fields = pipeline_.wants(Stage::kHeader);
  for (;;) {
    std::size_t end = header_section_.find("\r\n", field_start_);
    if (end == std::string::npos) return;
    if (end == field_start_) {  // the empty line: end of the header section
      headers_done_ = true;
      const std::size_t section_end = end + 2;
      if (pipeline_.wants(Stage::kEndOfHeaders))
        events_.push_back(ContentEvent{Stage::kEndOfHeaders, {}, {}, {}});
      if (pipeline_.wants(Stage::kBody) && section_end < header_section_.size()) {
        // The body part of this append, as a view into the caller's data.
        events_.push_back(ContentEvent{Stage::kBody, {}, {}, data.substr(section_end - old_size)});
      }
      header_section_.resize(section_end);
      return;
    }
    // A field ends at a CRLF not followed by WSP (RFC 5322 §2.2.3 folding).
    std::size_t next = end + 2;
    while (next < header_section_.size() &&
           (header_section_[next] == ' ' || header_section_[next] == '\t')) {
      end = header_section_.find("\r\n", next);
      if (end == std::string::npos) return;
      next = end + 2;
    }
    if (next >= header_section_.size()) return;  // the next octet decides: wait for it
    if (want_fields) {
      std::string_view field(header_section_.data() + field_start_, end - field_start_);
      std::size_t colon = field.find(':');
      std::string_view name = field.substr(0, colon);
      std::string_view value =
          colon == std::string_view::npos ? std::string_view() : field.substr(colon + 1);
      if (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
      events_.push_back(ContentEvent{Stage::kHeader, name, value, {}});
    }
    field_start_ = next;
  }
}

void MessageIntake::end_of_content() {
  events_.clear();
  content_.reset();
  if (writer_ && pipeline_.reads_content() && !header_overflow_) {
    // A failure here failed the writer: the message gets its 451 at apply() or the commit.
    if (auto reader = writer_->content_reader()) content_ = std::move(reader.value());
  }
  if (!writer_ || !capture_ || headers_done_ || header_overflow_) return;
  if (header_section_.empty()) return;  // no content: no header section to look at
  section_without_body_ = true;
  if (pipeline_.wants(Stage::kEndOfHeaders))
    events_.push_back(ContentEvent{Stage::kEndOfHeaders, {}, {}, {}});
}

void MessageIntake::abort() {
  if (writer_) writer_->abort();
  writer_.reset();
  content_.reset();
  events_.clear();
  check_states_.clear();
}

std::optional<MessageIntake::EditFailure> MessageIntake::apply_envelope_edits(
    const Verdict& verdict) {
  final_sender_ = envelope_->reverse_path;
  final_recipients_ = envelope_->recipients.size();
  if (!verdict.new_sender && verdict.add_recipients.empty() && verdict.delete_recipients.empty())
    return std::nullopt;
  // The same grammar as MAIL and RCPT (RFC 5321 §4.1.2; UTF-8 only if the client declared
  // SMTPUTF8, RFC 6531 §3.4), so the edited envelope is one the next hop accepts.
  const bool utf8 = envelope_->smtputf8;
  std::string sender = verdict.new_sender.value_or(envelope_->reverse_path);
  if (!sender.empty() && !smtp::validate_mailbox(sender, utf8)) {
    return EditFailure{"new sender '" + sender + "' is not a valid address",
                       "Temporary failure: a check set an invalid sender address, try later"};
  }
  std::vector<smtp::Recipient> recipients = envelope_->recipients;
  // Deletes first, then adds (a check that redirects deletes one and adds the other). A
  // delete naming no recipient of the message changes nothing (two checks may delete the same).
  for (const std::string& address : verdict.delete_recipients) {
    std::erase_if(recipients, [&](const smtp::Recipient& recipient) {
      return base::equals_ignoring_case(recipient.address, address);
    });
  }
  for (const std::string& address : verdict.add_recipients) {
    if (address.empty() || !smtp::validate_mailbox(address, utf8)) {
      return EditFailure{
          "added recipient '" + address + "' is not a valid address",
          "Temporary failure: a check added an invalid recipient address, try later"};
    }
    const bool known =
        std::any_of(recipients.begin(), recipients.end(), [&](const smtp::Recipient& recipient) {
          return base::equals_ignoring_case(recipient.address, address);
        });
    if (!known) recipients.push_back(smtp::Recipient{address, {}, {}});
  }
  // Nothing to deliver to: a check that means to drop the message says discard. Taking it
  // and storing nothing would lose it, so the client keeps it instead.
  if (recipients.empty()) {
    return EditFailure{"the checks deleted every recipient",
                       "Temporary failure: a check removed every recipient, try later"};
  }
  if (auto replaced = writer_->replace_envelope(sender, recipients); !replaced) {
    return EditFailure{replaced.error().message,
                       "Temporary failure: message not stored, try later"};
  }
  final_sender_ = std::move(sender);
  final_recipients_ = recipients.size();
  return std::nullopt;
}

std::optional<smtp::Reply> MessageIntake::apply(const Verdict& verdict) {
  if (!writer_) return not_stored();
  held_ = false;
  // A check's edit that cannot be carried out fails the message with a 4xx: the client keeps
  // it and tries again (nothing is lost), the log line says which edit failed.
  auto refuse_with = [&](std::string_view why,
                         std::string_view text) -> std::optional<smtp::Reply> {
    obs::Log("check_edit_failed", obs::Level::kError)
        .kv("session", facts_.session_id)
        .kv("id", id_)
        .kv("reason", why);
    abort();
    return smtp::Reply{451, "4.3.0", std::string(text)};
  };
  auto refuse = [&](std::string_view why) {
    return refuse_with(why, "Temporary failure: message not stored, try later");
  };
  // The folder is per message (Maildir delivery only, see check.h). A name that could leave
  // the mailbox or that no IMAP server shows fails the message rather than landing elsewhere.
  if (!verdict.folder.empty() && !queue::Spool::is_valid_folder(verdict.folder)) {
    return refuse_with("invalid folder '" + verdict.folder + "'",
                       "Temporary failure: a check chose an invalid folder, try later");
  }
  if (auto failure = apply_envelope_edits(verdict)) return refuse_with(failure->why, failure->text);
  if (!verdict.folder.empty()) {
    if (auto set = writer_->set_folder(verdict.folder); !set) return refuse(set.error().message);
  }
  if (verdict.kind == Verdict::Kind::kHold) {
    if (auto marked = writer_->mark_held(); !marked) return refuse(marked.error().message);
    held_ = true;
  }
  // The field as the client wrote it (a check's header edits come after): see
  // honours_tls_required().
  tls_optional_ = honours_tls_required(*envelope_) && (headers_done_ || section_without_body_) &&
                  !header_overflow_ && says_tls_not_required(header_section_);
  if (tls_optional_) {
    if (auto set = writer_->set_tls_optional(true); !set) return refuse(set.error().message);
  }
  if (verdict.header_edits.empty() && !verdict.new_body) return std::nullopt;
  const bool only_adds =
      std::all_of(verdict.header_edits.begin(), verdict.header_edits.end(),
                  [](const HeaderEdit& edit) { return edit.kind == HeaderEdit::Kind::kAdd; });
  std::uint64_t original_length = 0;
  std::string section;
  if (only_adds) {
    // Fields on top: nothing of the message as received is rewritten.
    auto edited = edit_header_section("\r\n", verdict.header_edits);
    if (!edited) return refuse(edited.error());
    section = std::move(edited.value());
    section.resize(section.size() - 2);  // without the empty line: the content follows
  } else {
    // A message without an empty line is all header section (end_of_content() said so): it
    // is edited the same way and gains the empty line, an empty body (RFC 5322 §3.5).
    if ((!headers_done_ && !section_without_body_) || header_overflow_)
      return refuse("header section not available");
    auto edited = edit_header_section(header_section_, verdict.header_edits);
    if (!edited) return refuse(edited.error());
    // Our Received header stays the first field under the added ones.
    original_length = received_.size() + header_section_.size();
    // The added fields come first, each "name: value CRLF" (a value may be folded, as
    // Authentication-Results and DKIM-Signature are).
    std::size_t split = 0;
    for (const HeaderEdit& edit : verdict.header_edits)
      if (edit.kind == HeaderEdit::Kind::kAdd)
        split += edit.name.size() + 2 + edit.value.size() + 2;
    section = edited->substr(0, split);
    section += received_;
    section += std::string_view(edited.value()).substr(split);
  }
  if (verdict.new_body) {
    if (!headers_done_ || header_overflow_) return refuse("header section not available");
    auto truncated = writer_->truncate_content(received_.size() + header_section_.size());
    if (!truncated) return refuse(truncated.error().message);
    if (auto appended = writer_->append(*verdict.new_body); !appended) {
      return refuse(appended.error().message);
    }
  }
  if (!section.empty() || original_length != 0) {
    auto replaced = writer_->replace_header_section(original_length, section);
    if (!replaced) return refuse(replaced.error().message);
  }
  return std::nullopt;
}

base::Expected<std::string, smtp::Reply> MessageIntake::committed(
    const base::Expected<base::Ok, queue::SpoolError>& result) {
  delivered_ = result && writer_ != nullptr && writer_->delivered();
  taken_ = result && writer_ != nullptr && writer_->taken();
  writer_.reset();
  content_.reset();
  check_states_.clear();
  if (!result) return base::unexpected(failed("commit", result.error()));
  obs::Log line("accepted");
  line.kv("session", facts_.session_id)
      .kv("id", id_)
      .kv("from", final_sender_)
      .kv("recipients", static_cast<std::uint64_t>(final_recipients_))
      .kv("size", size_);
  if (held_) line.kv("held", "yes");
  if (delivered_) line.kv("delivered", "yes");
  if (envelope_ != nullptr && envelope_->require_tls) line.kv("requiretls", "yes");
  if (tls_optional_) line.kv("tls_required", "no");
  return id_;
}

Context MessageIntake::context() const {
  Context context;
  context.session_id = facts_.session_id;
  context.client_address = facts_.client_address;
  context.client_port = facts_.client_port;
  context.role = facts_.role;
  context.authenticated_user = authenticated_user_;
  context.envelope = envelope_;
  if (envelope_ != nullptr) context.helo = envelope_->helo;
  context.queue_id = id_;
  if ((headers_done_ || section_without_body_) && !header_overflow_)
    context.header_section = header_section_;
  if (!header_overflow_) {  // content_ is set from the end of the content on
    context.content = content_;
    context.body_offset = received_.size() + header_section_.size();
  }
  context.header_section_too_large = header_overflow_;
  return context;
}

base::Expected<std::string, std::string> edit_header_section(std::string_view section,
                                                             const std::vector<HeaderEdit>& edits) {
  struct Field {
    std::string_view name;
    std::string text;  // the whole field with its CRLF
    bool deleted = false;
  };
  std::vector<Field> fields;
  std::size_t position = 0;
  while (position < section.size()) {
    std::size_t end = section.find("\r\n", position);
    if (end == std::string_view::npos) return base::unexpected(std::string("unterminated header"));
    if (end == position) break;  // the empty line
    while (end + 2 < section.size() && (section[end + 2] == ' ' || section[end + 2] == '\t')) {
      end = section.find("\r\n", end + 2);
      if (end == std::string_view::npos)
        return base::unexpected(std::string("unterminated header"));
    }
    std::string_view field = section.substr(position, end + 2 - position);
    // The name without the WSP RFC 5322 §4.5.3 (obs-optional) allows before the colon, so
    // that "Authentication-Results :" is the field of that name too.
    std::string_view name = field.substr(0, field.find(':'));
    while (!name.empty() && (name.back() == ' ' || name.back() == '\t'))
      name.remove_suffix(1);
    fields.push_back(Field{name, std::string(field)});
    position = end + 2;
  }
  std::string top;
  for (const HeaderEdit& edit : edits) {
    if (!valid_field_name(edit.name)) {
      return base::unexpected("bad header field name '" + edit.name + "'");
    }
    if (edit.kind != HeaderEdit::Kind::kDelete && !valid_field_value(edit.value)) {
      return base::unexpected("bad value for header field " + edit.name);
    }
    std::string text = edit.name + ": " + edit.value + "\r\n";
    if (edit.kind == HeaderEdit::Kind::kAdd) {
      top += text;
      continue;
    }
    if (edit.kind == HeaderEdit::Kind::kAppend || edit.kind == HeaderEdit::Kind::kInsert) {
      // The position among the fields still there; past the end: at the end.
      auto at = fields.end();
      if (edit.kind == HeaderEdit::Kind::kInsert) {
        unsigned seen = 0;
        for (auto it = fields.begin(); it != fields.end(); ++it) {
          if (it->deleted) continue;
          if (seen++ == edit.index) {
            at = it;
            break;
          }
        }
      }
      // The name's view must outlive the vector's moves: it points into the edit.
      fields.insert(at, Field{edit.name, std::move(text)});
      continue;
    }
    unsigned seen = 0;
    for (Field& field : fields) {
      if (field.deleted || !base::equals_ignoring_case(field.name, edit.name)) continue;
      if (++seen != edit.index) continue;
      if (edit.kind == HeaderEdit::Kind::kDelete)
        field.deleted = true;
      else  // the field keeps the spelling of its name as received
        field.text = std::string(field.name) + ": " + edit.value + "\r\n";
      break;
    }
  }
  std::string out = std::move(top);
  for (const Field& field : fields)
    if (!field.deleted) out += field.text;
  out += "\r\n";
  return out;
}

}  // namespace intake
