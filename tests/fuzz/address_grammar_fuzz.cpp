// address_grammar_fuzz.cpp — libFuzzer target for the RFC 5321 §4.1.2 path grammar, the
// ESMTP parameter value grammars and the DATA decoder.
//
// Invariants checked (a violation traps):
// - a parsed mailbox is a substring of its path; without SMTPUTF8 it is pure ASCII;
//   anything valid without SMTPUTF8 is valid with it;
// - split_path's path starts with '<' and ends with '>';
// - the DATA decoder gives the same result whole and byte by byte, and never writes past
//   its output bound.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "smtp/address_grammar.h"
#include "smtp/dot_stuffing.h"
#include "smtp/esmtp_parameters.h"

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

bool ascii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

void fuzz_paths(std::string_view text) {
  auto split = smtp::split_path(text);
  if (split) {
    check(split->path.front() == '<' && split->path.back() == '>');
    check(split->parameters.empty() || split->parameters.front() != ' ');
  }
  for (auto kind : {smtp::PathKind::kReversePath, smtp::PathKind::kForwardPath}) {
    auto strict = smtp::parse_path(text, kind, false);
    auto utf8 = smtp::parse_path(text, kind, true);
    if (strict) {
      check(ascii(strict->mailbox));
      check(utf8.has_value());
      check(utf8->mailbox == strict->mailbox);
    }
    if (utf8 && !utf8->mailbox.empty()) {
      check(utf8->mailbox.data() >= text.data() &&
            utf8->mailbox.data() + utf8->mailbox.size() <= text.data() + text.size());
      check(text.size() <= 256);
    }
  }
  auto mailbox = smtp::validate_mailbox(text, false);
  if (mailbox) check(ascii(text) && smtp::validate_mailbox(text, true).has_value());
  smtp::validate_domain(text, true);
  smtp::validate_address_literal(text);
}

void fuzz_parameters(std::string_view text) {
  std::string out;
  if (smtp::decode_xtext(text, out)) check(out.size() <= text.size());
  smtp::valid_notify(text);
  out.clear();
  smtp::decode_orcpt(text, out);
  smtp::parse_decimal(text);
}

void fuzz_decoder(std::string_view text, bool normalize) {
  smtp::DotUnstuffer::Options options;
  options.normalize_bare_line_endings = normalize;
  options.max_line = 20;
  smtp::DotUnstuffer whole(options);
  std::string whole_out;
  std::size_t whole_used = 0;
  while (whole_used < text.size() && !whole.finished()) {
    std::size_t before = whole_out.size();
    std::string piece;
    whole_used += whole.decode(text.substr(whole_used), piece, 64);
    check(piece.size() <= 64);
    whole_out += piece;
    check(whole_out.size() >= before);
  }
  smtp::DotUnstuffer bytes(options);
  std::string bytes_out;
  std::size_t bytes_used = 0;
  while (bytes_used < text.size() && !bytes.finished()) {
    bytes_used += bytes.decode(text.substr(bytes_used, 1), bytes_out, 1 << 20);
  }
  check(whole_out == bytes_out);
  check(whole_used == bytes_used);
  check(whole.finished() == bytes.finished());
  check(whole.saw_bare_cr() == bytes.saw_bare_cr());
  check(whole.saw_bare_lf() == bytes.saw_bare_lf());
  check(whole.line_too_long() == bytes.line_too_long());
  // Only CRLF "." CRLF (or "." CRLF at the very start) ends the data.
  if (whole.finished()) {
    std::string_view consumed = text.substr(0, whole_used);
    check(consumed.ends_with(".\r\n"));
    check(consumed.size() == 3 || consumed.substr(consumed.size() - 5) == "\r\n.\r\n");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz_paths(text);
  fuzz_parameters(text);
  fuzz_decoder(text, false);
  fuzz_decoder(text, true);
  return 0;
}
