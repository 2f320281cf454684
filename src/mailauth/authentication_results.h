// authentication_results.h — the Authentication-Results header field (RFC 8601) smtpsd adds
// to every message it accepts on port 25, and the test for fields that claim to be ours.
//
// RFC 8601 §2.2: authserv-id, then one resinfo per method: "method=result reason ptype.property
// =value". Every value that came from the network (domains, selectors, addresses) is written
// as a token when it is one, else as a quoted-string with CR, LF and controls dropped, so a
// hostile d= or MAIL FROM cannot end the field or add one. RFC 8601 §5: a field that claims
// our authserv-id and was not added by us must be removed before delivery (the caller
// deletes the fields forged_fields() names), so that no sender can forge our verdict.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mailauth/results.h"

namespace mailauth {

struct AuthResults {
  struct Spf {
    SpfResult result = SpfResult::kNone;
    bool helo = false;     // the HELO identity was checked (MAIL FROM was <>)
    std::string identity;  // the MAIL FROM address, or the HELO name
    std::string problem;   // temperror/permerror in words (a comment)
  };
  struct Dkim {
    DkimResult result = DkimResult::kNone;
    std::string domain;    // d=
    std::string selector;  // s=
    std::string b_prefix;  // the first characters of b= (RFC 6008 header.b)
    std::string algorithm;
    std::string problem;
  };
  // RFC 8617 §4.2 method "arc": the chain validation status.
  struct Arc {
    ArcResult result = ArcResult::kNone;
    std::string sealer;     // d= of the latest ARC-Seal (a comment)
    std::string problem;    // why it failed (a comment)
    std::string remote_ip;  // smtp.remote-ip: the client that handed us the chain
  };
  struct Dmarc {
    DmarcResult result = DmarcResult::kNone;
    std::string from_domain;
    std::string policy;       // the published policy that applied: "none", "quarantine", "reject"
    std::string disposition;  // what was done: "none", "quarantine", "reject"
    std::string problem;
  };
  std::optional<Spf> spf;
  std::vector<Dkim> dkim;  // none: "dkim=none" when dkim_checked
  bool dkim_checked = false;
  std::optional<Arc> arc;
  std::optional<Dmarc> dmarc;
};

// The field value (without "Authentication-Results: " and the final CRLF), folded with
// CRLF TAB between results: "mx.example.org;\r\n\tspf=pass smtp.mailfrom=a@example.com;..."
// With no result at all: "mx.example.org; none" (RFC 8601 §2.2).
std::string authentication_results(std::string_view authserv_id, const AuthResults& results);

// Whether an Authentication-Results value names `authserv_id` (compared without case, RFC
// 8601 §2.5: the first token, after comments and whitespace, before ";" or a version).
bool claims_authserv_id(std::string_view value, std::string_view authserv_id);

// The 1-based positions, among the Authentication-Results fields of a header section (fields
// with CRLF, then the empty line), of those claiming `authserv_id`, highest first (so that
// deleting them one by one in this order keeps the later positions right).
std::vector<unsigned> forged_fields(std::string_view header_section, std::string_view authserv_id);

// `text` as an RFC 8601 value: a token as is, else a quoted-string (controls removed).
std::string results_value(std::string_view text);

}  // namespace mailauth
