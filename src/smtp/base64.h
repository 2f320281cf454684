// base64.h — the base64 of RFC 4648 §4 as SMTP AUTH uses it (RFC 4954 §4: 334 challenges
// and client responses). Strict: the standard alphabet only, padding required, no line
// breaks or white space, and the unused bits of the last group must be zero (RFC 4648
// §3.5, canonical encoding), so that one response has exactly one wire form.
#pragma once

#include <string>
#include <string_view>

namespace smtp {

// Appends the encoding of raw to out.
void append_base64(std::string& out, std::string_view raw);

// Appends the decoded octets of text to out; false (out left with a partial result the
// caller must discard) when text is not canonical base64. The empty text decodes to
// nothing and is valid.
bool decode_base64(std::string_view text, std::string& out);

}  // namespace smtp
