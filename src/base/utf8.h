// utf8.h — the one UTF-8 validator (RFC 3629 §4): well-formed sequences only, no overlong
// forms, no surrogates, nothing past U+10FFFF. Used by the address grammar (SMTPUTF8), DSNs
// and JSON output.
#pragma once

#include <cstddef>
#include <string_view>

namespace base {

// Length (1 to 4) of the well-formed UTF-8 sequence starting at text[pos], 0 if none.
std::size_t utf8_sequence_length(std::string_view text, std::size_t pos);

}  // namespace base
