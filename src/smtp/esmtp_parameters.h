// esmtp_parameters.h — value grammars of the MAIL/RCPT parameters we implement:
// SIZE (RFC 1870 §3), xtext for ENVID/ORCPT (RFC 3461 §4), NOTIFY (RFC 3461 §4.1),
// ORCPT (RFC 3461 §4.2). Pure functions; the session decides the replies.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace smtp {

// 1*20DIGIT that fits in 64 bits; nullopt otherwise.
std::optional<std::uint64_t> parse_decimal(std::string_view digits);

// xtext = *( xchar / hexchar ); xchar = "!".."~" except "+" and "="; hexchar = "+" 2HEX
// (upper-case hex, RFC 3461 §4). Appends the decoded octets to out; false on bad syntax.
bool decode_xtext(std::string_view xtext, std::string& out);

// NOTIFY = "NEVER" / 1#( "SUCCESS" / "FAILURE" / "DELAY" ), case-insensitive, no repeats.
bool valid_notify(std::string_view value);

// ORCPT = addr-type ";" xtext; addr-type = atom (RFC 3461 §4.2). Writes
// "addr-type;decoded-address" to out; false on bad syntax.
bool decode_orcpt(std::string_view value, std::string& out);

// ASCII case-insensitive equality (SMTP verbs and keywords, RFC 5321 §2.4).
bool equals_ignoring_case(std::string_view a, std::string_view b);

}  // namespace smtp
