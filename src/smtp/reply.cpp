// reply.cpp — the wire form of an SMTP reply (RFC 5321 §4.2, §4.2.1; RFC 2034 §4).
//
// Invariants: every line written ends with CRLF and starts with the three-digit code; a
// multi-line reply uses "code-" on every line but the last, which uses "code " (RFC 5321
// §4.2.1: "the format for multiline replies requires that every line, except the last,
// begin with the reply code, followed immediately by a hyphen"). A CR or LF inside the
// text never reaches the wire as such: '\n' separates lines, '\r' is dropped, so a reply
// text can never forge an extra reply.
#include "smtp/reply.h"

namespace smtp {

namespace {

void append_code(std::string& out, int code) {
  // Codes outside 200..599 are a broken invariant of the caller; clamp to keep the wire
  // form three digits (a peer must never see a malformed reply line).
  if (code < 200 || code > 599) code = 451;
  out.push_back(static_cast<char>('0' + code / 100));
  out.push_back(static_cast<char>('0' + code / 10 % 10));
  out.push_back(static_cast<char>('0' + code % 10));
}

void append_line(std::string& out, int code, bool last, std::string_view enhanced,
                 std::string_view line) {
  append_code(out, code);
  out.push_back(last ? ' ' : '-');
  if (!enhanced.empty()) {
    out.append(enhanced);
    if (!line.empty()) out.push_back(' ');
  }
  for (char c : line) {
    if (c != '\r') out.push_back(c);
  }
  out.append("\r\n");
}

}  // namespace

void append_reply(std::string& out, int code, std::string_view enhanced, std::string_view text) {
  for (;;) {
    std::size_t newline = text.find('\n');
    if (newline == std::string_view::npos) {
      append_line(out, code, true, enhanced, text);
      return;
    }
    append_line(out, code, false, enhanced, text.substr(0, newline));
    text.remove_prefix(newline + 1);
  }
}

void Reply::append_to(std::string& out) const {
  append_reply(out, code, enhanced, text);
}

}  // namespace smtp
