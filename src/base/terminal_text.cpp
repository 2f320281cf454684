// terminal_text.cpp — see terminal_text.h.
#include "base/terminal_text.h"

#include "base/utf8.h"

namespace base {
namespace {

void append_hex_byte(std::string& out, unsigned char c) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.append("\\x");
  out.push_back(kHex[c >> 4]);
  out.push_back(kHex[c & 0xf]);
}

// A valid UTF-8 sequence that a terminal would act on or that reorders what follows.
bool is_control_character(std::string_view sequence) {
  auto byte = [&](std::size_t i) { return static_cast<unsigned char>(sequence[i]); };
  if (sequence.size() == 2) return byte(0) == 0xC2 && byte(1) <= 0x9F;  // C1: U+0080–U+009F
  if (sequence.size() != 3 || byte(0) != 0xE2) return false;
  unsigned code = 0x2000 | ((byte(1) & 0x3Fu) << 6) | (byte(2) & 0x3Fu);
  return code == 0x200E || code == 0x200F ||    // left-to-right / right-to-left mark
         code == 0x2028 || code == 0x2029 ||    // line / paragraph separator
         (code >= 0x202A && code <= 0x202E) ||  // embeddings and overrides
         (code >= 0x2066 && code <= 0x2069);    // isolates
}

}  // namespace

void append_terminal_safe(std::string& out, std::string_view text) {
  std::size_t i = 0;
  while (i < text.size()) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c == '\\') {
      out.append("\\\\");
    } else if (c == '\r') {
      out.append("\\r");
    } else if (c == '\n') {
      out.append("\\n");
    } else if (c == '\t') {
      out.append("\\t");
    } else if (c < 0x20 || c == 0x7f) {
      append_hex_byte(out, c);
    } else if (c >= 0x80) {
      std::size_t n = utf8_sequence_length(text, i);
      if (n == 0) {  // not UTF-8
        append_hex_byte(out, c);
        ++i;
        continue;
      }
      std::string_view sequence = text.substr(i, n);
      if (is_control_character(sequence)) {
        for (unsigned char b : sequence)
          append_hex_byte(out, b);
      } else {
        out.append(sequence);
      }
      i += n;
      continue;
    } else {
      out.push_back(static_cast<char>(c));
    }
    ++i;
  }
}

std::string terminal_safe(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  append_terminal_safe(out, text);
  return out;
}

}  // namespace base
