// address_grammar.cpp — RFC 5321 §4.1.2 (Path, Mailbox, Local-part, Domain), §4.1.3
// (address literals), §4.5.3.1 (size limits) and RFC 6531 §3.3 (UTF-8 in addresses).
//
// Invariants: no allocation; every accepted address matches the ABNF exactly (strict by
// default, STYLE.md habit 5); a byte ≥ 0x80 is accepted only when the transaction declared
// SMTPUTF8 and only as part of a well-formed UTF-8 sequence.
#include "smtp/address_grammar.h"

namespace smtp {

namespace {

constexpr std::size_t kMaxLocalPart = 64;  // RFC 5321 §4.5.3.1.1
constexpr std::size_t kMaxDomain = 255;    // RFC 5321 §4.5.3.1.2
constexpr std::size_t kMaxLabel = 63;      // RFC 1035 §2.3.4
constexpr std::size_t kMaxPath = 256;      // RFC 5321 §4.5.3.1.3, punctuation included

base::Unexpected<AddressError> syntax_error(std::string_view reason) {
  return base::unexpected(AddressError{AddressErrorKind::kSyntax, reason});
}

base::Unexpected<AddressError> utf8_error() {
  return base::unexpected(AddressError{AddressErrorKind::kUtf8NotDeclared,
                                       "address contains UTF-8 but SMTPUTF8 not declared"});
}

bool is_alpha(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
bool is_digit(unsigned char c) {
  return c >= '0' && c <= '9';
}
bool is_hex(unsigned char c) {
  return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// atext of RFC 5322 §3.2.3 as used by RFC 5321's Atom.
bool is_atext(unsigned char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '/':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]);
    unsigned char y = static_cast<unsigned char>(b[i]);
    if (x >= 'A' && x <= 'Z') x = static_cast<unsigned char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<unsigned char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// Checks a non-ASCII byte at text[pos]; on success advances pos past the sequence.
// Returns an error for undeclared or malformed UTF-8.
base::Expected<base::Ok, AddressError> take_utf8(std::string_view text, std::size_t& pos,
                                                 bool allow_utf8) {
  if (!allow_utf8) return utf8_error();
  std::size_t length = utf8_sequence_length(text, pos);
  if (length == 0) return syntax_error("invalid UTF-8");
  pos += length;
  return base::Ok{};
}

// Dot-string = Atom *("." Atom).
base::Expected<base::Ok, AddressError> validate_dot_string(std::string_view local,
                                                           bool allow_utf8) {
  bool atom_empty = true;
  std::size_t pos = 0;
  while (pos < local.size()) {
    unsigned char c = static_cast<unsigned char>(local[pos]);
    if (c == '.') {
      if (atom_empty) return syntax_error("empty atom in local part (misplaced '.')");
      atom_empty = true;
      ++pos;
    } else if (c >= 0x80) {
      // RFC 6531 §3.3: atext =/ UTF8-non-ascii
      auto utf8 = take_utf8(local, pos, allow_utf8);
      if (!utf8) return utf8;
      atom_empty = false;
    } else if (is_atext(c)) {
      atom_empty = false;
      ++pos;
    } else {
      return syntax_error("invalid character in local part");
    }
  }
  if (atom_empty) return syntax_error("empty atom in local part (misplaced '.')");
  return base::Ok{};
}

// Quoted-string = DQUOTE *QcontentSMTP DQUOTE
// qtextSMTP = %d32-33 / %d35-91 / %d93-126; quoted-pairSMTP = %d92 %d32-126
base::Expected<base::Ok, AddressError> validate_quoted_string(std::string_view local,
                                                              bool allow_utf8) {
  if (local.size() < 2 || local.back() != '"') {
    return syntax_error("unterminated quoted local part");
  }
  std::size_t pos = 1;
  const std::size_t end = local.size() - 1;
  while (pos < end) {
    unsigned char c = static_cast<unsigned char>(local[pos]);
    if (c == '\\') {
      if (pos + 1 >= end) return syntax_error("unterminated quoted pair in local part");
      unsigned char next = static_cast<unsigned char>(local[pos + 1]);
      if (next < 32 || next > 126) return syntax_error("invalid quoted pair in local part");
      pos += 2;
    } else if (c == '"') {
      return syntax_error("unescaped '\"' inside quoted local part");
    } else if (c >= 0x80) {
      auto utf8 = take_utf8(local, pos, allow_utf8);  // RFC 6531: qtextSMTP =/ UTF8-non-ascii
      if (!utf8) return utf8;
    } else if (c >= 32 && c <= 126) {
      ++pos;
    } else {
      return syntax_error("control character in quoted local part");
    }
  }
  return base::Ok{};
}

// Snum = 1*3DIGIT representing a decimal integer value in the range 0 through 255.
bool valid_ipv4(std::string_view text) {
  int parts = 0;
  std::size_t pos = 0;
  while (true) {
    std::size_t digits = 0;
    unsigned value = 0;
    while (pos < text.size() && is_digit(static_cast<unsigned char>(text[pos]))) {
      value = value * 10 + static_cast<unsigned>(text[pos] - '0');
      ++digits;
      ++pos;
      if (digits > 3) return false;
    }
    if (digits == 0 || value > 255) return false;
    ++parts;
    if (pos == text.size()) break;
    if (text[pos] != '.' || parts == 4) return false;
    ++pos;
  }
  return parts == 4;
}

// Counts the 16-bit groups of a ':'-separated run of IPv6-hex (an IPv4 tail counts 2).
bool count_ipv6_groups(std::string_view part, bool allow_ipv4_tail, int& groups) {
  groups = 0;
  if (part.empty()) return true;
  while (true) {
    std::size_t colon = part.find(':');
    std::string_view piece = part.substr(0, colon);
    bool last = colon == std::string_view::npos;
    if (last && allow_ipv4_tail && piece.find('.') != std::string_view::npos) {
      if (!valid_ipv4(piece)) return false;
      groups += 2;
      return true;
    }
    if (piece.empty() || piece.size() > 4) return false;
    for (char c : piece) {
      if (!is_hex(static_cast<unsigned char>(c))) return false;
    }
    ++groups;
    if (last) return true;
    part.remove_prefix(colon + 1);
  }
}

// IPv6-addr = IPv6-full / IPv6-comp / IPv6v4-full / IPv6v4-comp (RFC 5321 §4.1.3).
bool valid_ipv6(std::string_view text) {
  std::size_t compressed = text.find("::");
  if (compressed == std::string_view::npos) {
    int groups = 0;
    return count_ipv6_groups(text, true, groups) && groups == 8;
  }
  if (text.find("::", compressed + 1) != std::string_view::npos) return false;
  int left = 0;
  int right = 0;
  if (!count_ipv6_groups(text.substr(0, compressed), false, left)) return false;
  if (!count_ipv6_groups(text.substr(compressed + 2), true, right)) return false;
  // "The "::" represents at least 2 16-bit groups of zeros. No more than 6 groups in
  // addition to the "::" may be present."
  return left + right <= 6;
}

}  // namespace

base::Expected<base::Ok, AddressError> validate_domain(std::string_view domain, bool allow_utf8) {
  if (domain.empty()) return syntax_error("empty domain");
  if (domain.size() > kMaxDomain) return syntax_error("domain longer than 255 octets");
  std::size_t label_start = 0;
  std::size_t pos = 0;
  // sub-domain = Let-dig [Ldh-str]; Ldh-str = *( ALPHA / DIGIT / "-" ) Let-dig
  // RFC 6531 §3.3: sub-domain =/ U-label (any non-ASCII octet counts as a letter here; the
  // IDNA rules are the resolver's business).
  while (true) {
    bool end = pos == domain.size();
    if (end || domain[pos] == '.') {
      std::size_t length = pos - label_start;
      if (length == 0) return syntax_error("empty domain label (misplaced '.')");
      if (length > kMaxLabel) return syntax_error("domain label longer than 63 octets");
      if (domain[label_start] == '-' || domain[pos - 1] == '-') {
        return syntax_error("domain label starts or ends with '-'");
      }
      if (end) return base::Ok{};
      label_start = ++pos;
      continue;
    }
    unsigned char c = static_cast<unsigned char>(domain[pos]);
    if (c >= 0x80) {
      auto utf8 = take_utf8(domain, pos, allow_utf8);
      if (!utf8) return utf8;
    } else if (is_alpha(c) || is_digit(c) || c == '-') {
      ++pos;
    } else {
      return syntax_error("invalid character in domain");
    }
  }
}

base::Expected<base::Ok, AddressError> validate_address_literal(std::string_view literal) {
  if (literal.size() < 2 || literal.front() != '[' || literal.back() != ']') {
    return syntax_error("unterminated address literal");
  }
  std::string_view inside = literal.substr(1, literal.size() - 2);
  if (valid_ipv4(inside)) return base::Ok{};
  if (inside.size() > 5 && iequals(inside.substr(0, 5), "IPv6:")) {
    if (valid_ipv6(inside.substr(5))) return base::Ok{};
    return syntax_error("invalid IPv6 address literal");
  }
  // General-address-literal = Standardized-tag ":" 1*dcontent: no other tag is
  // registered with IANA, so nothing else can be deliverable.
  if (inside.find(':') != std::string_view::npos) {
    return syntax_error("unsupported address literal tag");
  }
  return syntax_error("invalid IPv4 address literal");
}

base::Expected<base::Ok, AddressError> validate_mailbox(std::string_view mailbox, bool allow_utf8) {
  if (mailbox.empty()) return syntax_error("empty address");
  std::size_t at = std::string_view::npos;
  if (mailbox.front() == '"') {
    // The local part ends at the closing quote; a quoted '@' is part of it.
    std::size_t pos = 1;
    while (pos < mailbox.size() && mailbox[pos] != '"') {
      pos += mailbox[pos] == '\\' ? 2 : 1;
    }
    if (pos >= mailbox.size()) return syntax_error("unterminated quoted local part");
    at = pos + 1;
    if (at >= mailbox.size() || mailbox[at] != '@') {
      return syntax_error("missing '@' after quoted local part");
    }
  } else {
    at = mailbox.rfind('@');
    if (at == std::string_view::npos) return syntax_error("missing '@domain'");
  }
  std::string_view local = mailbox.substr(0, at);
  std::string_view domain = mailbox.substr(at + 1);
  if (local.empty()) return syntax_error("empty local part");
  if (local.size() > kMaxLocalPart) return syntax_error("local part longer than 64 octets");
  auto local_ok = local.front() == '"' ? validate_quoted_string(local, allow_utf8)
                                       : validate_dot_string(local, allow_utf8);
  if (!local_ok) return local_ok;
  if (!domain.empty() && domain.front() == '[') return validate_address_literal(domain);
  return validate_domain(domain, allow_utf8);
}

base::Expected<PathSplit, AddressError> split_path(std::string_view arguments) {
  if (arguments.empty() || arguments.front() != '<') return syntax_error("missing '<'");
  bool quoted = false;
  for (std::size_t pos = 1; pos < arguments.size(); ++pos) {
    char c = arguments[pos];
    if (quoted && c == '\\') {
      ++pos;
    } else if (c == '"') {
      quoted = !quoted;
    } else if (!quoted && c == '>') {
      std::string_view rest = arguments.substr(pos + 1);
      if (!rest.empty() && rest.front() != ' ') {
        return syntax_error("garbage after '>'");
      }
      while (!rest.empty() && rest.front() == ' ')
        rest.remove_prefix(1);
      return PathSplit{arguments.substr(0, pos + 1), rest};
    }
  }
  return syntax_error("missing '>'");
}

base::Expected<ParsedPath, AddressError> parse_path(std::string_view path, PathKind kind,
                                                    bool allow_utf8) {
  if (path.size() < 2 || path.front() != '<' || path.back() != '>') {
    return syntax_error("address must be enclosed in '<' and '>'");
  }
  if (path.size() > kMaxPath) return syntax_error("path longer than 256 octets");
  std::string_view inside = path.substr(1, path.size() - 2);
  if (inside.empty()) {
    // Reverse-path = Path / "<>"; a forward-path is never null.
    if (kind == PathKind::kReversePath) return ParsedPath{};
    return syntax_error("empty address");
  }
  // Forward-path: "<Postmaster>" (case-insensitive) without a domain, RFC 5321 §4.5.1.
  if (kind == PathKind::kForwardPath && iequals(inside, "postmaster")) {
    return ParsedPath{inside, true};
  }
  // Path = "<" [ A-d-l ":" ] Mailbox ">"; A-d-l = At-domain *( "," At-domain ).
  // RFC 5321 §4.1.2: "Servers MUST be prepared to encounter [source routes]... SHOULD
  // ignore the route" — validated, then dropped.
  if (inside.front() == '@') {
    std::size_t colon = inside.find(':');
    if (colon == std::string_view::npos) return syntax_error("invalid source route");
    std::string_view route = inside.substr(0, colon);
    while (!route.empty()) {
      if (route.front() != '@') return syntax_error("invalid source route");
      std::size_t comma = route.find(',');
      std::string_view domain =
          route.substr(1, comma == std::string_view::npos ? std::string_view::npos : comma - 1);
      auto domain_ok = validate_domain(domain, allow_utf8);
      if (!domain_ok) return base::unexpected(domain_ok.error());
      if (comma == std::string_view::npos) break;
      route.remove_prefix(comma + 1);
      if (route.empty()) return syntax_error("invalid source route");
    }
    inside.remove_prefix(colon + 1);
  }
  auto mailbox_ok = validate_mailbox(inside, allow_utf8);
  if (!mailbox_ok) return base::unexpected(mailbox_ok.error());
  return ParsedPath{inside, false};
}

}  // namespace smtp
