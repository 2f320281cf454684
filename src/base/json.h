// json.h — JSON strings (RFC 8259 §7) for every JSON line smtpsd and smtpsctl write (logs,
// probe and bench reports). Quotes, backslash and control characters are escaped (\n, \r,
// \t, else \u00XX, DEL and the C1 controls U+0080–U+009F too); a byte that is not part of
// well-formed UTF-8 becomes U+FFFD, because JSON text must be UTF-8 (RFC 8259 §8.1) and a
// remote server's greeting or a client's name can hold anything.
#pragma once

#include <string>
#include <string_view>

namespace base {

// Appends value as a JSON string, quotes included.
void append_json_string(std::string& out, std::string_view value);
// The same as a new string.
std::string json_string(std::string_view value);

}  // namespace base
