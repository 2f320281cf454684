// dmarc.h — DMARC (RFC 7489): the policy record (§6.3, §6.4), the organizational domain
// (§3.2, from the public suffix list through libpsl), policy discovery (§6.6.3), identifier
// alignment (§3.1) and the disposition after pct sampling (§6.6.4).
//
// Design as in spf.h: evaluate_dmarc() is pure over the answers known so far and names the
// next TXT lookup it needs; check_dmarc() drives it through the dns::Resolver (two lookups
// at most: _dmarc.<From domain>, then _dmarc.<organizational domain>).
//
// Decisions:
// - Record selection (§6.6.3): TXT strings starting with "v=DMARC1" (any case, spaces
//   around '=', then ';' or the end). None at the From domain → the organizational domain is asked;
//   none there → result none. Several at the domain where they were found → result none ("policy
//   discovery terminates", step 5). One that fails to parse → permerror (RFC 8601 §2.7.1)
//   with the disposition none (§6.6.3 step 6: "applies no DMARC processing"); no fallback
//   to the organizational domain then, since a record was found.
// - Domains are used as given: a From domain in U-labels is asked as such (converting it to
//   A-labels is the caller's, as for every name given to dns::Resolver).
// - p missing or invalid, or sp invalid (§6.6.3 step 6): with a valid rua the record acts
//   as p=none, else the record is an error. Other tags with a bad value fall back to their
//   default (§6.3 "syntax errors in the remainder of the record SHOULD be discarded in favor
//   of default values"); unknown tags are ignored. v= must come first; p= is taken wherever
//   it stands after v= (receivers that refuse a misplaced p= would drop the sender's policy).
// - A TXT lookup answered kTemporary or kBogus is a temperror (a bogus answer is never data).
// - The From domain's own record applies p; a record found at the organizational domain
//   applies sp when present, else p.
// - rua/ruf keep only mailto: URIs, as written but without a "!size" suffix.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/expected.h"
#include "dns/resolver.h"
#include "mailauth/results.h"

namespace mailauth {

struct DmarcRecord {
  DmarcPolicy policy = DmarcPolicy::kNone;
  std::optional<DmarcPolicy> subdomain_policy;
  unsigned percent = 100;
  bool strict_dkim = false, strict_spf = false;
  std::vector<std::string> aggregate_addresses;  // rua mailto: URIs
  std::vector<std::string> failure_addresses;    // ruf mailto: URIs
  std::string failure_options = "0";
  std::uint32_t report_interval = 86400;
};

inline constexpr std::size_t kMaxDmarcRecordOctets = 8192;

base::Expected<DmarcRecord, std::string> parse_dmarc_record(std::string_view text);
// Whether a TXT string is meant as a DMARC record (§6.6.3 step 3: starts with v=DMARC1).
bool is_dmarc_record(std::string_view text);

// libpsl's registrable domain, lower case; the domain itself when it is a public suffix or
// unknown to the list.
std::string organizational_domain(std::string_view domain);

struct DmarcRequest {
  std::string from_domain;
  SpfResult spf = SpfResult::kNone;
  std::string spf_domain;                      // the domain SPF checked
  std::vector<std::string> dkim_pass_domains;  // d= of every DKIM pass
  double sample = 0;                           // in [0,100): compared against pct
};

struct DmarcOutcome {
  DmarcResult result = DmarcResult::kNone;
  std::string from_domain;
  std::string policy_domain;  // where the record was found
  std::optional<DmarcRecord> record;
  DmarcPolicy policy = DmarcPolicy::kNone;       // p or sp, the one that applies
  DmarcPolicy disposition = DmarcPolicy::kNone;  // after pct sampling (§6.6.4)
  bool spf_aligned = false, dkim_aligned = false;
  std::string problem;
};

void check_dmarc(dns::Resolver& resolver, DmarcRequest request,
                 std::function<void(DmarcOutcome)> done);

// §3.1: relaxed — the same organizational domain; strict — the same name (no case).
bool dmarc_aligned(std::string_view identifier, std::string_view from_domain, bool strict);

using DmarcAnswers = std::map<std::string, dns::AnswerPtr>;  // TXT, by lower-case name
struct DmarcStep {
  std::optional<DmarcOutcome> outcome;
  std::string next;  // else: the TXT name it needs
};
DmarcStep evaluate_dmarc(const DmarcRequest& request, const DmarcAnswers& answers);

}  // namespace mailauth
