// tls_required_field.h — reads the "TLS-Required" header field of RFC 8689 §3 from a message's
// header section: whether the sender asks that TLS policy be set aside for this message.
//
// RFC 8689 §3: the only value is "No" (tls-required = "TLS-Required:" [FWS] "No"); the field
// asks the MTAs on the way to deliver even where the recipient domain's policy (DANE, MTA-STS)
// would refuse a connection without verified TLS. Pure: no clock, no I/O. Whether the field
// is believed (our authenticated senders only, never with REQUIRETLS: RFC 8689 §4.1) is the
// caller's decision (intake/message_intake.cpp; docs/architecture.md "REQUIRETLS").
#pragma once

#include <string_view>

namespace intake {

// True when header_section (the fields as received, CRLF line ends, folded lines allowed, with
// or without the empty line that ends it) holds at least one TLS-Required field and every such
// field says "No" (case-insensitive, surrounding white space ignored). A field with another
// value makes the answer false: the conservative reading keeps the policy in force.
bool says_tls_not_required(std::string_view header_section);

}  // namespace intake
