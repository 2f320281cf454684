// tls_required_field.cpp — see tls_required_field.h (RFC 8689 §3; RFC 5322 §2.2 fields and
// §2.2.3 folding).
#include "intake/tls_required_field.h"

#include "base/ascii.h"

namespace intake {
namespace {

bool is_white(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

std::string_view trimmed(std::string_view text) {
  while (!text.empty() && is_white(text.front()))
    text.remove_prefix(1);
  while (!text.empty() && is_white(text.back()))
    text.remove_suffix(1);
  return text;
}

}  // namespace

bool says_tls_not_required(std::string_view header_section) {
  bool seen = false;
  std::size_t start = 0;
  while (start < header_section.size()) {
    // One field: up to a CRLF not followed by WSP (a folded line continues it).
    std::size_t end = header_section.find("\r\n", start);
    while (end != std::string_view::npos && end + 2 < header_section.size() &&
           (header_section[end + 2] == ' ' || header_section[end + 2] == '\t')) {
      end = header_section.find("\r\n", end + 2);
    }
    if (end == std::string_view::npos) end = header_section.size();
    std::string_view field = header_section.substr(start, end - start);
    start = end + 2;
    if (field.empty()) break;  // the empty line: end of the header section
    const std::size_t colon = field.find(':');
    if (colon == std::string_view::npos) continue;
    // RFC 5322 §3.6.8: a field name is case-insensitive, and obsolete syntax (§4.5) allows
    // white space before the colon.
    if (!base::equals_ignoring_case(trimmed(field.substr(0, colon)), "TLS-Required")) continue;
    if (!base::equals_ignoring_case(trimmed(field.substr(colon + 1)), "No")) return false;
    seen = true;
  }
  return seen;
}

}  // namespace intake
