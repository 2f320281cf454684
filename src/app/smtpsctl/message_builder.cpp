// message_builder.cpp — see message_builder.h.
#include "app/smtpsctl/message_builder.h"

#include <sodium.h>

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "base/ascii.h"

namespace app {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return base::equals_ignoring_case(a, b);
}

bool has_line_break_or_nul(std::string_view text) {
  return text.find_first_of(std::string_view("\r\n\0", 3)) != std::string_view::npos;
}

// RFC 5322 §3.2.3 atext, and the space between words of a phrase.
bool is_phrase_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) ||
         std::string_view("!#$%&'*+-/=?^_`{|}~ ").find(c) != std::string_view::npos;
}

std::string base64(std::string_view bytes) {
  std::string out(sodium_base64_encoded_len(bytes.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(bytes.data()),
                    bytes.size(), sodium_base64_VARIANT_ORIGINAL);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

// The length of the UTF-8 sequence that starts with lead (1 for anything malformed, so that
// bad input is still cut somewhere).
std::size_t utf8_length(unsigned char lead) {
  if (lead >= 0xF0 && lead < 0xF8) return 4;
  if (lead >= 0xE0) return lead < 0xF0 ? 3 : 1;
  if (lead >= 0xC0) return 2;
  return 1;
}

// Whether a line is the start of a header field: "name:" with printable name characters
// (RFC 5322 §3.6.8 ftext: %d33-57 / %d59-126).
bool header_name_of(std::string_view line, std::string& name) {
  std::size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  for (std::size_t i = 0; i < colon; ++i) {
    auto c = static_cast<unsigned char>(line[i]);
    if (c < 33 || c > 126) return false;
  }
  name.assign(line.substr(0, colon));
  return true;
}

std::string trim(std::string_view text) {
  std::size_t begin = text.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return "";
  std::size_t end = text.find_last_not_of(" \t");
  return std::string(text.substr(begin, end - begin + 1));
}

}  // namespace

std::string format_date(std::time_t when, long utc_offset_seconds) {
  static constexpr const char* kDays[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
  static constexpr const char* kMonths[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                            "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
  std::time_t local = when + utc_offset_seconds;
  std::tm parts{};
  ::gmtime_r(&local, &parts);
  long offset_minutes = (utc_offset_seconds < 0 ? -utc_offset_seconds : utc_offset_seconds) / 60;
  char text[64];
  std::snprintf(text, sizeof text, "%s, %d %s %04d %02d:%02d:%02d %c%02ld%02ld",
                kDays[parts.tm_wday], parts.tm_mday, kMonths[parts.tm_mon], parts.tm_year + 1900,
                parts.tm_hour, parts.tm_min, parts.tm_sec, utc_offset_seconds < 0 ? '-' : '+',
                offset_minutes / 60, offset_minutes % 60);
  return text;
}

std::string format_date_now() {
  std::time_t now = std::time(nullptr);
  std::tm local{};
  ::localtime_r(&now, &local);
  return format_date(now, local.tm_gmtoff);
}

std::string new_message_id(std::string_view domain) {
  unsigned char random[16];
  randombytes_buf(random, sizeof random);
  char hex[sizeof random * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, random, sizeof random);
  return "<" + std::string(hex) + "." + std::to_string(std::time(nullptr)) + "@" +
         std::string(domain.empty() ? "localhost" : domain) + ">";
}

std::string domain_of(std::string_view address) {
  std::size_t at = address.rfind('@');
  return at == std::string_view::npos ? "" : std::string(address.substr(at + 1));
}

bool is_ascii(std::string_view text) {
  return std::all_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x80; });
}

std::string encode_unstructured(std::string_view text, std::size_t used) {
  if (is_ascii(text)) return std::string(text);
  // "=?UTF-8?B?" + base64 + "?=": 42 octets of text give 56 base64 characters, a word of
  // 68; with "Subject: " or a folding space the line stays within 78 (RFC 2047 §2 allows
  // 75 per word; RFC 5322 §2.1.1 recommends 78 per line).
  // A long header name gets a shorter first word (never under 3 octets of text).
  std::size_t limit =
      used <= 10 ? 42
                 : std::max<std::size_t>(3, (78 - std::min<std::size_t>(used, 66) - 12) / 4 * 3);
  std::string out;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t end = i;
    while (end < text.size()) {
      std::size_t step = utf8_length(static_cast<unsigned char>(text[end]));
      if (end + step > text.size()) step = text.size() - end;
      if (end + step - i > limit && end > i) break;
      end += step;
    }
    if (!out.empty()) out += "\r\n ";
    out += "=?UTF-8?B?" + base64(text.substr(i, end - i)) + "?=";
    i = end;
    limit = 42;
  }
  return out;
}

std::string format_mailbox(std::string_view display_name, std::string_view address) {
  if (display_name.empty()) return std::string(address);
  std::string phrase;
  if (!is_ascii(display_name)) {
    phrase = encode_unstructured(display_name, 6);
  } else if (std::all_of(display_name.begin(), display_name.end(), is_phrase_char)) {
    phrase = std::string(display_name);
  } else {
    phrase = "\"";
    for (char c : display_name) {
      if (c == '"' || c == '\\') phrase += '\\';
      phrase += c;
    }
    phrase += "\"";
  }
  return phrase + " <" + std::string(address) + ">";
}

std::vector<std::string> parse_address_list(std::string_view value) {
  std::vector<std::string> addresses;
  std::string current;  // the element's text outside comments
  std::string angle;    // text inside <...>
  bool in_angle = false, had_angle = false, in_quote = false;
  int comment_depth = 0;
  auto finish = [&]() {
    std::string address = had_angle ? trim(angle) : trim(current);
    // A route (RFC 5322 §4.4 obs-route "@a,@b:") before the address is dropped.
    if (std::size_t colon = address.find(':'); had_angle && colon != std::string::npos) {
      address = address.substr(colon + 1);
    }
    if (!had_angle) {
      // "local@domain" without brackets: no spaces may remain inside it.
      address.erase(std::remove_if(address.begin(), address.end(),
                                   [](char c) { return c == ' ' || c == '\t'; }),
                    address.end());
    }
    if (!address.empty()) addresses.push_back(address);
    current.clear();
    angle.clear();
    in_angle = had_angle = false;
  };
  for (std::size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (in_quote) {
      if (c == '\\' && i + 1 < value.size()) {
        (in_angle ? angle : current) += value[++i];
      } else if (c == '"') {
        in_quote = false;
      }
      if (in_angle) angle += c;
      continue;
    }
    if (comment_depth > 0) {
      if (c == '\\')
        ++i;
      else if (c == '(')
        ++comment_depth;
      else if (c == ')')
        --comment_depth;
      continue;
    }
    switch (c) {
      case '"':
        in_quote = true;
        if (in_angle) angle += c;
        break;
      case '(':
        comment_depth = 1;
        break;
      case '<':
        in_angle = had_angle = true;
        angle.clear();
        break;
      case '>':
        in_angle = false;
        break;
      case ',':
        if (in_angle) {
          angle += c;
        } else {
          finish();
        }
        break;
      case ':':
        if (in_angle) {
          angle += c;
        } else {
          current.clear();  // a group's display name (RFC 5322 §3.4 group)
        }
        break;
      case ';':
        if (!in_angle) finish();
        break;
      default:
        (in_angle ? angle : current) += c;
    }
  }
  finish();
  return addresses;
}

std::string HeaderField::value() const {
  std::string text = raw.substr(std::min(raw.size(), name.size() + 1));
  std::string unfolded;
  for (char c : text) {
    if (c != '\r' && c != '\n') unfolded += c;
  }
  return trim(unfolded);
}

bool LineReader::next(std::string& line) {
  line.clear();
  if (ended_) return false;
  if (!std::getline(in_, line)) {
    ended_ = true;
    return !line.empty();
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  if (dot_ends_ && line == ".") {
    ended_ = true;
    line.clear();
    return false;
  }
  return true;
}

bool MessageHead::has(std::string_view name) const {
  return std::any_of(fields.begin(), fields.end(),
                     [name](const HeaderField& field) { return iequals(field.name, name); });
}

std::vector<std::string> MessageHead::values(std::string_view name) const {
  std::vector<std::string> out;
  for (const HeaderField& field : fields) {
    if (iequals(field.name, name)) out.push_back(field.value());
  }
  return out;
}

void MessageHead::remove(std::string_view name) {
  std::erase_if(fields, [name](const HeaderField& field) { return iequals(field.name, name); });
}

void MessageHead::add(std::string_view name, std::string_view value) {
  fields.push_back(
      HeaderField{std::string(name), std::string(name) + ": " + std::string(value) + "\r\n"});
}

base::Expected<MessageHead, std::string> read_head(LineReader& reader) {
  MessageHead head;
  std::string line;
  std::size_t total = 0;
  bool first = true;
  while (reader.next(line)) {
    total += line.size() + 2;
    if (total > kMaxHeaderSection) {
      return base::unexpected(std::string("the header section is larger than 1 MiB"));
    }
    if (first && line.rfind("From ", 0) == 0) {  // an mbox separator, not a header
      first = false;
      continue;
    }
    first = false;
    if (line.empty()) return head;
    if ((line[0] == ' ' || line[0] == '\t') && !head.fields.empty()) {
      head.fields.back().raw += line + "\r\n";  // a continuation line (folding)
      continue;
    }
    std::string name;
    if (!header_name_of(line, name)) {
      head.has_pending_line = true;
      head.pending_line = line;
      return head;
    }
    head.fields.push_back(HeaderField{name, line + "\r\n"});
  }
  return head;
}

base::Expected<WrittenMessage, std::string> write_message(const MessageHead& head, LineReader& body,
                                                          std::ostream& out) {
  WrittenMessage written;
  auto put = [&](std::string_view text) {
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    written.size += text.size();
    if (!written.eight_bit && !is_ascii(text)) written.eight_bit = true;
  };
  for (const HeaderField& field : head.fields)
    put(field.raw);
  put("\r\n");
  std::string line;
  bool pending = head.has_pending_line;
  std::size_t number = 0;
  while (pending || body.next(line)) {
    if (pending) {
      line = head.pending_line;
      pending = false;
    }
    ++number;
    if (line.size() > kMaxLineLength) {
      return base::unexpected("body line " + std::to_string(number) + " is longer than " +
                              std::to_string(kMaxLineLength) + " octets (RFC 5322 §2.1.1)");
    }
    if (line.find('\0') != std::string::npos) {
      return base::unexpected("body line " + std::to_string(number) + " holds a NUL byte");
    }
    put(line);
    put("\r\n");
  }
  out.flush();
  if (!out) return base::unexpected(std::string("cannot write the message"));
  return written;
}

base::Expected<MessageHead, std::string> compose_head(const Composition& parts,
                                                      bool body_is_ascii) {
  for (std::string_view value : {std::string_view(parts.from), std::string_view(parts.from_name),
                                 std::string_view(parts.subject)}) {
    if (has_line_break_or_nul(value)) {
      return base::unexpected(std::string("a header value may not contain a line break"));
    }
  }
  std::string to;
  for (const std::string& address : parts.to) {
    if (has_line_break_or_nul(address)) {
      return base::unexpected(std::string("a recipient may not contain a line break"));
    }
    if (!to.empty()) to += ",\r\n ";
    to += address;
  }
  MessageHead head;
  head.add("From", format_mailbox(parts.from_name, parts.from));
  if (!to.empty()) head.add("To", to);
  if (!parts.subject.empty()) head.add("Subject", encode_unstructured(parts.subject, 9));
  head.add("Date", parts.date);
  head.add("Message-ID", parts.message_id);
  head.add("MIME-Version", "1.0");
  head.add("Content-Type", "text/plain; charset=utf-8");
  if (!body_is_ascii) head.add("Content-Transfer-Encoding", "8bit");
  return head;
}

void complete_head(MessageHead& head, std::string_view sender, std::string_view display_name,
                   std::string_view date, std::string_view message_id) {
  if (!head.has("From")) head.add("From", format_mailbox(display_name, sender));
  if (!head.has("Date")) head.add("Date", date);
  if (!head.has("Message-ID")) head.add("Message-ID", message_id);
}

}  // namespace app
