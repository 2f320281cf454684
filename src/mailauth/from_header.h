// from_header.h — the RFC 5322 §3.6.2 From: field of a header section, as DMARC needs it
// (RFC 7489 §6.6.1: the domain of each author mailbox).
//
// Grammar: RFC 5322 §3.4 mailbox-list with the obsolete forms of §4.4 (empty list elements,
// a route in the angle address, CFWS between the dots of a local part or domain, "From :"
// with space before the colon) and, beyond the mailbox-list the field allows, groups (a
// display name, ':', mailboxes, ';'), which some senders write. UTF-8 in names and
// addresses is taken as written (RFC 6532). Comments nest; quoted strings and comments honour
// quoted-pairs. The section ends at its first empty line; lines end with CRLF (a bare LF is
// taken as a line end too).
//
// Invariants: `domains` holds one lower-case domain per mailbox of every From field, in
// order; when any mailbox of any From field cannot be parsed (or has a domain literal, which
// DMARC cannot use), `domains` is empty and `problem` says why. Linear in the input.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace mailauth {

struct FromDomains {
  std::size_t from_fields = 0;
  std::vector<std::string> domains;  // lower case, one per mailbox; empty when unparseable
  std::string problem;
};

FromDomains from_domains(std::string_view header_section);

}  // namespace mailauth
