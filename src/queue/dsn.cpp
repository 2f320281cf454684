// dsn.cpp — see dsn.h. The layout of every DSN built here (RFC 6522 §3, RFC 3464 §2):
//
//   From / To / Subject / Date / Message-ID / Auto-Submitted / MIME-Version
//   Content-Type: multipart/report; report-type=delivery-status; boundary="..."
//   1. text/plain            what happened, in words, per recipient
//   2. message/delivery-status   per-message fields, then one block per recipient
//   3. message/rfc822 or text/rfc822-headers   the original (see dsn.h for which)
//
// Every value that comes from outside (addresses, ENVID, the remote's reply, host names)
// goes through append_value() or append_unitext(), which never emit CR, LF or another
// control octet: the request cannot add a header line or a delivery-status field.
#include "queue/dsn.h"

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "smtp/address_grammar.h"
#include "smtp/esmtp_parameters.h"
#include "smtp/received_header.h"

namespace queue {
namespace {

// A value placed on one line is cut here, so that no generated line passes the 998 octets
// of RFC 5322 §2.1.1 (prefixes such as "Diagnostic-Code: smtp; " are short).
// XXX: cut, not folded; real values (addresses ≤ 256 octets, replies ≤ 512) fit anyway.
constexpr std::size_t kMaxValue = 900;
// A returned header section is cut at a line boundary past this size.
constexpr std::size_t kMaxReturnedHeaders = 64 * 1024;
constexpr std::size_t kMaxLine = 998;  // octets without CRLF (RFC 5322 §2.1.1)

bool has_non_ascii(std::string_view text) {
  return std::any_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

bool is_control(unsigned char c) {
  return c < 0x20 || c == 0x7f;
}

// Appends text to out as one header-safe line fragment: controls (CR, LF, TAB, NUL...)
// become a single space, non-ASCII octets are kept only where allowed and well-formed
// UTF-8 (RFC 3629), else '?'; at most kMaxValue octets, never splitting a UTF-8 sequence.
void append_value(std::string& out, std::string_view text, bool allow_utf8) {
  const std::size_t start = out.size();
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    std::size_t length = 1;
    if (c >= 0x80 && allow_utf8) length = smtp::utf8_sequence_length(text, i);
    if (length == 0) length = 1;  // not UTF-8: one '?' per octet
    if (out.size() - start + length > kMaxValue) break;
    if (is_control(c)) {
      if (out.size() > start && out.back() != ' ') out.push_back(' ');
    } else if (c >= 0x80 && (!allow_utf8 || smtp::utf8_sequence_length(text, i) == 0)) {
      out.push_back('?');
    } else {
      out.append(text.substr(i, length));
    }
    i += length;
  }
  while (out.size() > start && out.back() == ' ')
    out.pop_back();
}

void append_hex_octet(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 0x0f]);
}

// RFC 6533 §3 utf-8-addr-unitext: UTF-8 kept, and "+", "=", "\", space and controls as
// EmbeddedUnicodeChar "\x{HH}" — so a CR or LF in an address can never break the line.
void append_unitext(std::string& out, std::string_view address) {
  const std::size_t start = out.size();
  for (std::size_t i = 0; i < address.size() && out.size() - start < kMaxValue;) {
    const auto c = static_cast<unsigned char>(address[i]);
    if (c >= 0x80) {
      const std::size_t length = smtp::utf8_sequence_length(address, i);
      if (length == 0) {
        out.push_back('?');
        ++i;
      } else {
        out.append(address.substr(i, length));
        i += length;
      }
      continue;
    }
    if (c <= ' ' || c == 0x7f || c == '+' || c == '=' || c == '\\') {
      out.append("\\x{");
      append_hex_octet(out, c);
      out.push_back('}');
    } else {
      out.push_back(static_cast<char>(c));
    }
    ++i;
  }
}

// "Final-Recipient: rfc822; user@example.org" (RFC 3464 §2.3.2), or with the "utf-8"
// address type of RFC 6533 §3 for an address with non-ASCII octets.
void append_address_field(std::string& out, std::string_view name, std::string_view address) {
  out.append(name).append(": ");
  if (has_non_ascii(address)) {
    out.append("utf-8; ");
    append_unitext(out, address);
  } else {
    out.append("rfc822; ");
    append_value(out, address, false);
  }
  out.append("\r\n");
}

// RFC 3464 §2.3.1: "Original-Recipient: address-type ; generic-address", both from the
// ORCPT parameter (stored decoded as "addr-type;address").
void append_original_recipient(std::string& out, std::string_view orcpt, bool global) {
  std::size_t semicolon = orcpt.find(';');
  std::string_view type =
      semicolon == std::string_view::npos ? "rfc822" : orcpt.substr(0, semicolon);
  std::string_view address =
      semicolon == std::string_view::npos ? orcpt : orcpt.substr(semicolon + 1);
  out.append("Original-Recipient: ");
  std::size_t before = out.size();
  for (char c : type.substr(0, 64)) {
    // addr-type = atom: anything else is dropped.
    if (c > ' ' && c < 0x7f && c != ';' && c != ':') out.push_back(c);
  }
  if (out.size() == before) out.append("rfc822");
  out.append(";");
  append_value(out, address, global);
  out.append("\r\n");
}

// Status = digit "." 1*3digit "." 1*3digit, class 2, 4 or 5 (RFC 3463 §2).
bool valid_status(std::string_view status) {
  if (status.size() < 5 || (status[0] != '2' && status[0] != '4' && status[0] != '5') ||
      status[1] != '.')
    return false;
  std::size_t digits = 0;
  std::size_t dots = 0;
  for (char c : status.substr(2)) {
    if (c == '.') {
      if (digits == 0 || ++dots > 1) return false;
      digits = 0;
    } else if (c >= '0' && c <= '9') {
      if (++digits > 3) return false;
    } else {
      return false;
    }
  }
  return dots == 1 && digits > 0;
}

std::string_view status_of(const DsnRecipient& recipient) {
  if (valid_status(recipient.status)) return recipient.status;
  switch (recipient.action) {
    case DsnAction::kFailed:
      return "5.0.0";
    case DsnAction::kDelayed:
      return "4.0.0";
    case DsnAction::kDelivered:
    case DsnAction::kRelayed:
    case DsnAction::kExpanded:
      return "2.0.0";
  }
  return "5.0.0";
}

// Where the header section of the original ends: after the CRLF of the last header line
// (the empty line is not part of it), or the whole message when it has no body.
std::size_t header_section_end(std::string_view original) {
  std::size_t line_start = 0;
  while (line_start < original.size()) {
    std::size_t newline = original.find('\n', line_start);
    if (newline == std::string_view::npos) return original.size();
    std::string_view line = original.substr(line_start, newline - line_start);
    if (line.empty() || line == "\r") return line_start;
    line_start = newline + 1;
  }
  return original.size();
}

// The header section as text/rfc822-headers content: CRLF line endings, no NUL or bare
// CR (a BINARYMIME original may have anything), lines cut at 998 octets, at most
// kMaxReturnedHeaders octets (cut at a line boundary).
std::string clean_header_section(std::string_view original) {
  std::string_view section = original.substr(0, header_section_end(original));
  std::string out;
  out.reserve(std::min(section.size(), kMaxReturnedHeaders) + 2);
  while (!section.empty() && out.size() < kMaxReturnedHeaders) {
    std::size_t newline = section.find('\n');
    std::string_view line = section.substr(0, newline);
    section.remove_prefix(newline == std::string_view::npos ? section.size() : newline + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    for (char c : line.substr(0, kMaxLine)) {
      out.push_back(c == '\r' || c == '\0' ? ' ' : c);
    }
    out.append("\r\n");
  }
  return out;
}

// Whether the original can be returned whole inside an 8BITMIME message: no NUL, CR and
// LF only as CRLF, no line over 998 octets (RFC 6152 §2, RFC 5322 §2.1.1).
bool fits_8bitmime(std::string_view original) {
  std::size_t line_length = 0;
  for (std::size_t i = 0; i < original.size(); ++i) {
    const char c = original[i];
    if (c == '\0') return false;
    if (c == '\r') {
      if (i + 1 >= original.size() || original[i + 1] != '\n') return false;
      continue;
    }
    if (c == '\n') {
      if (i == 0 || original[i - 1] != '\r') return false;
      line_length = 0;
      continue;
    }
    if (++line_length > kMaxLine) return false;
  }
  return true;
}

std::uint64_t fnv1a(std::string_view text, std::uint64_t hash = 14695981039346656037ull) {
  for (char c : text) {
    hash ^= static_cast<unsigned char>(c);
    hash *= 1099511628211ull;
  }
  return hash;
}

// RFC 2046 §5.1.1: the boundary "must not appear inside any of the encapsulated parts".
// Candidates depend only on the Message-ID and the time, never on the parts, so a test
// can plant the first candidate in a message and see the next one chosen.
std::string choose_boundary(const DsnRequest& request,
                            std::initializer_list<std::string_view> parts) {
  std::uint64_t hash = fnv1a(request.message_id);
  hash = fnv1a(std::to_string(request.now_unix), hash);
  for (std::uint64_t attempt = 0;; ++attempt) {
    // "=_" cannot occur in quoted-printable or base64 text.
    std::string boundary = "=_smtpsd_";
    std::uint64_t value = fnv1a(std::to_string(attempt), hash);
    for (int shift = 60; shift >= 0; shift -= 4)
      boundary.push_back("0123456789abcdef"[(value >> shift) & 0x0f]);
    const std::string delimiter = "--" + boundary;
    if (std::none_of(parts.begin(), parts.end(), [&](std::string_view part) {
          return part.find(delimiter) != std::string_view::npos;
        }))
      return boundary;
  }
}

void append_date_field(std::string& out, std::string_view name, std::int64_t unix_time) {
  out.append(name).append(": ").append(smtp::rfc5322_date(unix_time)).append("\r\n");
}

// The message/delivery-status body (RFC 3464 §2.1: per-message fields, then a blank line
// before each recipient's fields).
std::string delivery_status(const DsnRequest& request, std::string_view reporting_mta,
                            bool global) {
  std::string out;
  // RFC 3464 §2.2.2: "Reporting-MTA: dns; host".
  out.append("Reporting-MTA: dns; ");
  append_value(out, reporting_mta, false);
  out.append("\r\n");
  // RFC 3464 §2.2.1: present when the sender gave ENVID (RFC 3461 §4.4).
  if (!request.envelope_id.empty()) {
    out.append("Original-Envelope-Id: ");
    append_value(out, request.envelope_id, false);
    out.append("\r\n");
  }
  if (request.arrival_unix != 0) append_date_field(out, "Arrival-Date", request.arrival_unix);
  for (const DsnRecipient& recipient : request.recipients) {
    out.append("\r\n");
    if (!recipient.original_recipient.empty())
      append_original_recipient(out, recipient.original_recipient, global);
    append_address_field(out, "Final-Recipient", recipient.final_recipient);
    out.append("Action: ").append(to_string(recipient.action)).append("\r\n");
    out.append("Status: ").append(status_of(recipient)).append("\r\n");
    if (!recipient.remote_mta.empty()) {
      out.append("Remote-MTA: dns; ");
      append_value(out, recipient.remote_mta, false);
      out.append("\r\n");
    }
    if (!recipient.diagnostic.empty()) {
      // RFC 3464 §2.3.6: "Diagnostic-Code: smtp; " followed by the reply of the remote.
      out.append("Diagnostic-Code: smtp; ");
      append_value(out, recipient.diagnostic, global);
      out.append("\r\n");
    }
    if (recipient.last_attempt_unix != 0)
      append_date_field(out, "Last-Attempt-Date", recipient.last_attempt_unix);
    // RFC 3464 §2.3.9: only for delayed recipients.
    if (recipient.action == DsnAction::kDelayed && recipient.will_retry_until_unix != 0)
      append_date_field(out, "Will-Retry-Until", recipient.will_retry_until_unix);
  }
  return out;
}

// The human-readable first part (RFC 6522 §3: "intended to be read by a person").
std::string notification_text(const DsnRequest& request, std::string_view reporting_mta,
                              bool any_failed, bool any_delayed, bool returned_full, bool global) {
  std::string out;
  out.append("This is the mail system at host ");
  append_value(out, reporting_mta, false);
  out.append(".\r\n\r\n");
  if (any_failed) {
    out.append(
        "Your message could not be delivered to one or more recipients.\r\n"
        "This is a permanent error: it will not be retried.\r\n");
    out.append(returned_full ? "The message is attached below.\r\n"
                             : "The header of the message is attached below.\r\n");
  } else if (any_delayed) {
    out.append(
        "Your message has not been delivered yet to one or more recipients.\r\n"
        "The mail system will keep trying; you do not need to send it again.\r\n");
  } else {
    out.append("Your message was delivered to the recipients below.\r\n");
  }
  for (const DsnRecipient& recipient : request.recipients) {
    out.append("\r\n<");
    append_value(out, recipient.final_recipient, global);
    out.append(">:\r\n    ");
    switch (recipient.action) {
      case DsnAction::kFailed:
        out.append("delivery failed permanently");
        break;
      case DsnAction::kDelayed:
        out.append("delivery delayed, will be retried");
        if (recipient.will_retry_until_unix != 0) {
          out.append(" until\r\n    ").append(smtp::rfc5322_date(recipient.will_retry_until_unix));
        }
        break;
      case DsnAction::kDelivered:
        out.append("delivered");
        break;
      case DsnAction::kRelayed:
        out.append("relayed to a system that does not send delivery notices");
        break;
      case DsnAction::kExpanded:
        out.append("expanded to several addresses (an alias); their deliveries are not reported");
        break;
    }
    out.append(" (status ").append(status_of(recipient)).append(")\r\n");
    if (!recipient.diagnostic.empty()) {
      out.append("    ");
      if (recipient.remote_mta.empty()) {
        out.append("The reason:\r\n    ");
      } else {
        out.append("The mail server ");
        append_value(out, recipient.remote_mta, false);
        out.append(" said:\r\n    ");
      }
      append_value(out, recipient.diagnostic, global);
      out.append("\r\n");
    }
  }
  return out;
}

}  // namespace

std::string_view to_string(DsnAction action) {
  switch (action) {
    case DsnAction::kFailed:
      return "failed";
    case DsnAction::kDelayed:
      return "delayed";
    case DsnAction::kDelivered:
      return "delivered";
    case DsnAction::kRelayed:
      return "relayed";
    case DsnAction::kExpanded:
      return "expanded";
  }
  return "failed";
}

bool wants_notification(const smtp::Recipient& recipient, DsnAction action) {
  std::string_view notify = recipient.notify;
  if (notify.empty()) return action == DsnAction::kFailed || action == DsnAction::kDelayed;
  std::string_view wanted;
  switch (action) {
    case DsnAction::kFailed:
      wanted = "FAILURE";
      break;
    case DsnAction::kDelayed:
      wanted = "DELAY";
      break;
    case DsnAction::kDelivered:
    case DsnAction::kRelayed:
    case DsnAction::kExpanded:
      wanted = "SUCCESS";
      break;
  }
  // "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ): NEVER matches no keyword.
  while (!notify.empty()) {
    std::size_t comma = notify.find(',');
    std::string_view item = notify.substr(0, comma);
    while (!item.empty() && item.front() == ' ')
      item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ')
      item.remove_suffix(1);
    if (smtp::equals_ignoring_case(item, wanted)) return true;
    if (comma == std::string_view::npos) break;
    notify.remove_prefix(comma + 1);
  }
  return false;
}

DsnMessage build_dsn(const DsnRequest& request) {
  const bool any_failed =
      std::any_of(request.recipients.begin(), request.recipients.end(),
                  [](const DsnRecipient& r) { return r.action == DsnAction::kFailed; });
  const bool any_delayed =
      std::any_of(request.recipients.begin(), request.recipients.end(),
                  [](const DsnRecipient& r) { return r.action == DsnAction::kDelayed; });
  const std::string_view reporting_mta =
      request.reporting_mta.empty() ? std::string_view("localhost") : request.reporting_mta;

  // RFC 3461 §4.3: RET=HDRS asks for the headers only, and "If a DSN contains no
  // indications of delivery failure, only the headers of the message SHOULD be returned".
  // RFC 8689 §5: a notice about a REQUIRETLS message is made as if RET=HDRS had been given (a
  // RET=FULL is disregarded): its way back may not be as well protected as the way out.
  const bool returned_full =
      any_failed && request.ret != smtp::DsnReturn::kHeaders && !request.require_tls &&
      request.original.size() <= request.max_returned && fits_8bitmime(request.original);
  const std::string headers =
      returned_full ? std::string() : clean_header_section(request.original);
  const std::string_view returned = returned_full ? request.original : std::string_view(headers);

  // RFC 6533: internationalised addresses or header fields need the "global" types.
  bool global = has_non_ascii(request.sender) ||
                has_non_ascii(request.original.substr(0, header_section_end(request.original)));
  for (const DsnRecipient& recipient : request.recipients) {
    global = global || has_non_ascii(recipient.final_recipient) ||
             has_non_ascii(recipient.original_recipient);
  }

  const std::string text =
      notification_text(request, reporting_mta, any_failed, any_delayed, returned_full, global);
  const std::string status = delivery_status(request, reporting_mta, global);
  const std::string boundary = choose_boundary(request, {text, status, returned});
  const bool eight_bit = has_non_ascii(text) || has_non_ascii(status) || has_non_ascii(returned);

  DsnMessage dsn;
  std::string& out = dsn.content;
  out.reserve(text.size() + status.size() + returned.size() + 1024);
  // RFC 3834 §5 / RFC 5321 §4.5.5: from the mailer daemon, to the reverse-path.
  out.append("From: \"Mail Delivery System\" <MAILER-DAEMON@");
  append_value(out, reporting_mta, false);
  out.append(">\r\nTo: <");
  append_value(out, request.sender, true);
  out.append(">\r\nSubject: ");
  out.append(any_failed    ? "Undelivered Mail Returned to Sender"
             : any_delayed ? "Delayed Mail (still being retried)"
                           : "Successful Mail Delivery Report");
  out.append("\r\nDate: ").append(smtp::rfc5322_date(request.now_unix));
  out.append("\r\nMessage-ID: <");
  std::string_view message_id = request.message_id;
  if (message_id.starts_with('<') && message_id.ends_with('>') && message_id.size() >= 2)
    message_id = message_id.substr(1, message_id.size() - 2);
  if (message_id.empty()) {
    out.append(std::to_string(request.now_unix)).append(".dsn@");
    append_value(out, reporting_mta, false);
  } else {
    append_value(out, message_id, false);
  }
  // RFC 3834 §5: "Auto-Submitted: auto-replied" on a response to a message.
  out.append(">\r\nAuto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\n");
  // RFC 6522 §3: multipart/report with the report-type of the second part; RFC 6533 §6.3
  // names "global-delivery-status" for the internationalised form.
  out.append("Content-Type: multipart/report; report-type=");
  out.append(global ? "global-delivery-status" : "delivery-status");
  out.append(";\r\n\tboundary=\"").append(boundary).append("\"\r\n");
  // RFC 2045 §6.4: a multipart's encoding states what its parts hold.
  if (eight_bit) out.append("Content-Transfer-Encoding: 8bit\r\n");
  out.append("\r\nThis is a MIME-encapsulated message.\r\n");

  auto part = [&](std::string_view description, std::string_view type, std::string_view body) {
    out.append("\r\n--").append(boundary).append("\r\nContent-Description: ");
    out.append(description).append("\r\nContent-Type: ").append(type).append("\r\n");
    if (has_non_ascii(body)) out.append("Content-Transfer-Encoding: 8bit\r\n");
    out.append("\r\n").append(body);
    // The CRLF before the next delimiter belongs to the delimiter (RFC 2046 §5.1.1): a
    // body that ends in CRLF keeps it.
  };
  part("Notification", global ? "text/plain; charset=utf-8" : "text/plain; charset=us-ascii", text);
  part("Delivery report", global ? "message/global-delivery-status" : "message/delivery-status",
       status);
  if (returned_full) {
    part("Undelivered Message", global ? "message/global" : "message/rfc822", returned);
  } else if (!request.omit_original) {
    part(any_failed ? "Undelivered Message Headers" : "Message Headers",
         global ? "message/global-headers" : "text/rfc822-headers", returned);
  }
  out.append("\r\n--").append(boundary).append("--\r\n");

  dsn.envelope.reverse_path.clear();  // RFC 5321 §4.5.5: the null reverse-path
  smtp::Recipient& recipient = dsn.envelope.recipients.emplace_back();
  recipient.address = request.sender;
  // RFC 6152: 8-bit content travels as BODY=8BITMIME; RFC 6531 §3.4: SMTPUTF8 only when
  // an address or our own header field (To:) holds UTF-8.
  dsn.envelope.body = eight_bit ? smtp::BodyType::k8BitMime : smtp::BodyType::kUnspecified;
  dsn.envelope.smtputf8 = has_non_ascii(request.sender);
  // RFC 8689 §5: the notice of a REQUIRETLS message asks for REQUIRETLS in turn; being a bounce
  // (null reverse path), it is still passed on where a hop does not offer it.
  dsn.envelope.require_tls = request.require_tls;
  return dsn;
}

}  // namespace queue
