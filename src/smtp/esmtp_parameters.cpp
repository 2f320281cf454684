// esmtp_parameters.cpp — SIZE, xtext, NOTIFY and ORCPT value grammars (RFC 1870,
// RFC 3461). Invariant: a value is accepted only if it matches the ABNF exactly; decoded
// text is appended to a caller-owned string (reused across commands).
#include "smtp/esmtp_parameters.h"

#include "base/ascii.h"

namespace smtp {

namespace {

unsigned char lower(unsigned char c) {
  return static_cast<unsigned char>(base::ascii_lower(static_cast<char>(c)));
}

int hex_value(char c) {
  // RFC 3461 §4: "hexchar = ASCII "+" immediately followed by two upper case
  // hexadecimal digits".
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

bool equals_ignoring_case(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(static_cast<unsigned char>(a[i])) != lower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::optional<std::uint64_t> parse_decimal(std::string_view digits) {
  if (digits.empty() || digits.size() > 20) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) return std::nullopt;
    value = value * 10 + digit;
  }
  return value;
}

bool decode_xtext(std::string_view xtext, std::string& out) {
  for (std::size_t pos = 0; pos < xtext.size(); ++pos) {
    char c = xtext[pos];
    if (c == '+') {
      if (pos + 2 >= xtext.size()) return false;
      int high = hex_value(xtext[pos + 1]);
      int low = hex_value(xtext[pos + 2]);
      if (high < 0 || low < 0) return false;
      out.push_back(static_cast<char>(high * 16 + low));
      pos += 2;
    } else if (c >= '!' && c <= '~' && c != '=') {
      out.push_back(c);
    } else {
      return false;
    }
  }
  return true;
}

bool valid_notify(std::string_view value) {
  if (equals_ignoring_case(value, "NEVER")) return true;
  bool success = false;
  bool failure = false;
  bool delay = false;
  while (true) {
    std::size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    bool* seen = nullptr;
    if (equals_ignoring_case(item, "SUCCESS")) {
      seen = &success;
    } else if (equals_ignoring_case(item, "FAILURE")) {
      seen = &failure;
    } else if (equals_ignoring_case(item, "DELAY")) {
      seen = &delay;
    } else {
      return false;  // includes NEVER combined with others, and empty items
    }
    if (*seen) return false;
    *seen = true;
    if (comma == std::string_view::npos) return true;
    value.remove_prefix(comma + 1);
  }
}

bool decode_orcpt(std::string_view value, std::string& out) {
  std::size_t semicolon = value.find(';');
  if (semicolon == std::string_view::npos || semicolon == 0) return false;
  std::string_view type = value.substr(0, semicolon);
  for (char c : type) {
    bool atext = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 std::string_view("!#$%&'*+-/=?^_`{|}~").find(c) != std::string_view::npos;
    if (!atext) return false;
  }
  std::string_view address = value.substr(semicolon + 1);
  if (address.empty()) return false;
  out.append(type);
  out.push_back(';');
  return decode_xtext(address, out);
}

}  // namespace smtp
