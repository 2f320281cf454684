// message_builder.h — the Internet Message Format (RFC 5322) side of `smtpsctl send` and
// `sendmail`: building a message from a subject and a body, and completing a message given
// on standard input (Date, Message-ID, From when missing; Bcc removed; recipients taken
// from To/Cc/Bcc for `sendmail -t`).
//
// Invariants:
// - Output lines end with CRLF (RFC 5322 §2.1, and our server refuses bare LF); input may
//   end lines with LF, CRLF or a lone CR.
// - A header value built here never carries CR, LF or NUL from the caller (refused), and
//   non-ASCII text in a header becomes RFC 2047 encoded-words (base64, UTF-8), folded so
//   that no header line exceeds 78 octets (RFC 5322 §2.1.1).
// - A body is declared text/plain; charset=utf-8 (MIME, RFC 2045/2046) and 8bit when it
//   is not ASCII (RFC 2045 §6.2); no line may exceed 998 octets (RFC 5322 §2.1.1).
// - Input is read line by line and the body streamed to the output: only the header
//   section is held in memory (bounded by kMaxHeaderSection).
#pragma once

#include <cstddef>
#include <ctime>
#include <istream>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"

namespace app {

inline constexpr std::size_t kMaxHeaderSection = 1024 * 1024;
inline constexpr std::size_t kMaxLineLength = 998;  // RFC 5322 §2.1.1, without CRLF

// RFC 5322 §3.3 date-time, e.g. "Tue, 24 Nov 2026 07:47:03 +0100" (English names, whatever
// the locale). utc_offset_seconds: the local zone's offset east of UTC.
std::string format_date(std::time_t when, long utc_offset_seconds);
std::string format_date_now();  // the local time and zone

// "<32 hex digits.unix time@domain>" (RFC 5322 §3.6.4), random from libsodium.
std::string new_message_id(std::string_view domain);

// The domain of "local@domain" ("" when there is no '@').
std::string domain_of(std::string_view address);

bool is_ascii(std::string_view text);

// An unstructured header value (RFC 5322 §3.2.5; Subject): as is when printable ASCII, else
// RFC 2047 §4.1 "B" encoded-words of whole UTF-8 characters, separated by CRLF SP.
// `used`: octets already on the first line ("Subject: " = 9).
std::string encode_unstructured(std::string_view text, std::size_t used);

// A mailbox (RFC 5322 §3.4): "address", "Name <address>", "\"Name, Jr.\" <address>" or an
// encoded-word phrase for a non-ASCII name (RFC 2047 §5(3)).
std::string format_mailbox(std::string_view display_name, std::string_view address);

// Addresses of an address-list header value (RFC 5322 §3.4: mailboxes, "Name <a@b>",
// groups "team: a@b, c@d;", comments in parentheses, quoted strings with commas).
std::vector<std::string> parse_address_list(std::string_view value);

// One header field as read: its name and its raw lines (CRLF included), kept as is when
// the message is written back.
struct HeaderField {
  std::string name;
  std::string raw;
  std::string value() const;  // unfolded (RFC 5322 §2.2.3), without the name and the colon
};

// Reads lines from a stream: LF, CRLF or CR LF end a line; with dot_ends (sendmail without
// -i), a line holding only "." ends the input (RFC-less tradition of sendmail/mail(1)).
class LineReader {
 public:
  LineReader(std::istream& in, bool dot_ends) : in_(in), dot_ends_(dot_ends) {}
  // The next line without its line ending; false at the end of the input.
  bool next(std::string& line);

 private:
  std::istream& in_;
  bool dot_ends_;
  bool ended_ = false;
};

// The header section of a message read from input, and what follows it.
struct MessageHead {
  std::vector<HeaderField> fields;
  // The first body line when the header section ended at a line that is not a header
  // field (and not a blank line): it belongs to the body.
  bool has_pending_line = false;
  std::string pending_line;

  bool has(std::string_view name) const;  // case-insensitive
  std::vector<std::string> values(std::string_view name) const;
  void remove(std::string_view name);
  void add(std::string_view name, std::string_view value);  // appended
};

// Reads the header section (an mbox "From " first line is dropped). Errors: a header
// section larger than kMaxHeaderSection.
base::Expected<MessageHead, std::string> read_head(LineReader& reader);

// What the output says about the body it wrote.
struct WrittenMessage {
  std::uint64_t size = 0;
  bool eight_bit = false;  // a byte >= 0x80 anywhere (BODY=8BITMIME, RFC 6152)
};

// Writes head, a blank line, then the rest of the reader's lines, every line with CRLF.
// Errors: a line longer than kMaxLineLength, a NUL byte, or a write failure.
base::Expected<WrittenMessage, std::string> write_message(const MessageHead& head, LineReader& body,
                                                          std::ostream& out);

// A message built from parts (`smtpsctl send --subject ... --body ...`).
struct Composition {
  std::string from;  // address
  std::string from_name;
  std::vector<std::string> to;
  std::string subject;
  std::string date;        // format_date() text
  std::string message_id;  // "<...>"
};

// The header section of a composed message: From, To, Subject, Date, Message-ID,
// MIME-Version, Content-Type, and Content-Transfer-Encoding: 8bit when body_is_ascii is
// false. Errors: CR, LF or NUL in a value.
base::Expected<MessageHead, std::string> compose_head(const Composition& parts, bool body_is_ascii);

// Adds what a submitted message must have (RFC 5322 §3.6: Date and From; Message-ID
// SHOULD): From from the sender (with display_name when given), Date, Message-ID.
void complete_head(MessageHead& head, std::string_view sender, std::string_view display_name,
                   std::string_view date, std::string_view message_id);

}  // namespace app
