// address_grammar.h — the path and mailbox grammar of RFC 5321 §4.1.2, with the UTF-8
// extension of RFC 6531 §3.3 (SMTPUTF8).
//
// Pure functions over string_views: nothing allocates, results point into the input.
// Every rejection carries a short static reason that the session puts in its 501 text.
#pragma once

#include <string_view>

#include "base/expected.h"
#include "base/utf8.h"

namespace smtp {

enum class AddressErrorKind {
  kSyntax,           // 501 5.1.7 (sender) / 501 5.1.3 (recipient)
  kUtf8NotDeclared,  // 553 5.6.7 (RFC 6531 §3.5)
};

struct AddressError {
  AddressErrorKind kind = AddressErrorKind::kSyntax;
  std::string_view reason;  // static text, e.g. "domain label longer than 63 octets"
};

// A MAIL/RCPT argument split into its path ("<...>", brackets included) and the ESMTP
// parameters after it (leading spaces removed; empty when there are none).
struct PathSplit {
  std::string_view path;
  std::string_view parameters;
};

enum class PathKind { kReversePath, kForwardPath };

struct ParsedPath {
  std::string_view mailbox;    // without brackets and source route; empty for "<>"
  bool is_postmaster = false;  // RCPT TO:<Postmaster> without a domain (RFC 5321 §4.5.1)
};

// Finds the closing '>' of the path (a '>' inside a quoted local part does not count).
base::Expected<PathSplit, AddressError> split_path(std::string_view arguments);

// Parses a whole path "<...>": "<>" only as a reverse-path; "<Postmaster>" only as a
// forward-path; a source route "<@a,@b:user@d>" is accepted and dropped (RFC 5321 §4.1.2,
// §C). allow_utf8: the transaction declared SMTPUTF8.
base::Expected<ParsedPath, AddressError> parse_path(std::string_view path, PathKind kind,
                                                    bool allow_utf8);

// Mailbox = Local-part "@" ( Domain / address-literal ).
base::Expected<base::Ok, AddressError> validate_mailbox(std::string_view mailbox, bool allow_utf8);
// Domain = sub-domain *("." sub-domain), labels ≤ 63 octets, total ≤ 255 (RFC 5321
// §4.5.3.1.2); U-labels only with allow_utf8.
base::Expected<base::Ok, AddressError> validate_domain(std::string_view domain, bool allow_utf8);
// address-literal = "[" ( IPv4-address-literal / IPv6-address-literal ) "]" (§4.1.3).
base::Expected<base::Ok, AddressError> validate_address_literal(std::string_view literal);

// Length of the well-formed UTF-8 sequence starting at text[pos] (RFC 3629), 0 if none.
using base::utf8_sequence_length;

}  // namespace smtp
