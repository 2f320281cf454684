// spf.h — the Sender Policy Framework check of RFC 7208: the record parser (§4.5, §4.6, §5,
// §6), the macro expander (§7) and check_host() (§4) for the MAIL FROM identity, or the HELO
// identity when MAIL FROM is <> (§2.4: postmaster@<helo>).
//
// Design: evaluate_spf() is pure. It runs check_host() over the DNS answers known so far and
// either finishes (an SpfOutcome) or names the one (name, type) it needs next. check_spf() is
// the asynchronous driver: it looks that name up through the dns::Resolver and runs the
// evaluation again from the start with one answer more. A run is deterministic, so every run
// asks the same questions in the same order; the DNS traffic is bounded by the limits below
// (10 terms, 10 MX hosts each, 10 PTR names), so the runs are too.
//
// Invariants and decisions:
// - §4.6.4: more than 10 terms that query DNS (include, a, mx, ptr, exists, redirect) →
//   permerror; more than 2 void lookups (NXDOMAIN or no records) → permerror; an mx with more
//   than 10 MX records → permerror; a ptr (or %{p}) uses the first 10 PTR names only.
// - A lookup answered kTemporary is a temperror (§2.6.6). An answer that failed DNSSEC
//   validation (kBogus) is never data: it is a temperror as well, so that an attacker who
//   breaks a signed zone cannot turn a fail into a none.
// - A PTR lookup of `ptr` answered NXDOMAIN or empty counts as a void lookup as well.
// - A DNS error while doing the PTR lookup of `ptr` or %{p} means "no match" (§5.5); an error
//   on the address lookup of one PTR or MX name skips that name (ptr) or is a temperror (mx).
// - Records are 7-bit: any octet outside 0x20..0x7E in the SPF record is a permerror (§3.1,
//   §4.6.1: terms are separated by spaces only). A record longer than kMaxRecordOctets is a
//   permerror. A macro expansion longer than kMaxExpansionOctets is a permerror; a name longer
//   than 253 octets loses labels on the left (§7.3); a name with an empty or over-long label
//   is never queried and matches nothing.
// - The exp= explanation (§6.2) is looked up only for a fail of the record first evaluated
//   (or the one a redirect= replaced it with), never inside an include; its lookup does not
//   count toward the limits; any problem with it only drops the explanation. The text is
//   printable ASCII only, at most kMaxExplanationOctets.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/expected.h"
#include "dns/resolver.h"
#include "mailauth/results.h"

namespace mailauth {

inline constexpr std::size_t kMaxRecordOctets = 8192;
inline constexpr std::size_t kMaxExpansionOctets = 8192;
inline constexpr std::size_t kMaxExplanationOctets = 512;
inline constexpr unsigned kMaxDnsTerms = 10;
inline constexpr unsigned kMaxVoidLookups = 2;
inline constexpr unsigned kMaxNamesPerLookup = 10;

struct SpfRequest {
  std::string client_ip;  // IP literal, v4 or v6 (an IPv4-mapped IPv6 address counts as v4)
  std::string sender;     // MAIL FROM address, "" for <>
  std::string helo;
  std::string receiver;  // our host name, %{r}
  std::int64_t now = 0;  // %{t}, seconds since the epoch
  // No lookup starts after this: the result is then temperror. With each lookup bounded by
  // the resolver's timeout, check_spf ends by deadline + that timeout, however slow a
  // sender's DNS answers its chain of includes.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
};

struct SpfOutcome {
  SpfResult result = SpfResult::kNone;
  std::string identity;     // "mailfrom" | "helo"
  std::string domain;       // the domain checked
  std::string mechanism;    // the deciding term as written, "default" when none matched
  std::string explanation;  // fail: the exp= text expanded, sanitized
  std::string problem;      // temperror / permerror / none in words
  unsigned dns_lookups = 0;
  unsigned void_lookups = 0;
};

// done is called exactly once: possibly at once (cached DNS), else from the resolver's thread.
void check_spf(dns::Resolver& resolver, SpfRequest request, std::function<void(SpfOutcome)> done);

// ---- the record (§4.5, §5, §6) ----

enum class SpfQualifier { kPass, kFail, kSoftFail, kNeutral };
enum class SpfMechanismKind { kAll, kInclude, kA, kMx, kPtr, kIp4, kIp6, kExists };

struct SpfMechanism {
  SpfQualifier qualifier = SpfQualifier::kPass;
  SpfMechanismKind kind = SpfMechanismKind::kAll;
  std::string domain_spec;  // a macro-string; "" when absent (then the current domain)
  std::array<std::uint8_t, 16> network{};  // ip4 (first 4 octets) / ip6
  unsigned ip4_prefix = 32;                // ip4, a, mx
  unsigned ip6_prefix = 128;               // ip6, a, mx
  std::string text;                        // the term as written
};

struct SpfRecord {
  std::vector<SpfMechanism> mechanisms;
  std::optional<std::string> redirect;     // redirect= domain-spec
  std::optional<std::string> explanation;  // exp= domain-spec
};

// A record that starts with "v=spf1" (any case) followed by a space or its end; anything
// else, or any syntax error in any term, is an error in words.
base::Expected<SpfRecord, std::string> parse_spf_record(std::string_view text);
// Whether a TXT string is an SPF version 1 record at all (§4.5 record selection).
bool is_spf_record(std::string_view text);

// ---- macros (§7) ----

struct SpfMacroContext {
  std::string sender;                      // s
  std::string local_part;                  // l
  std::string sender_domain;               // o
  std::string domain;                      // d
  std::string client_ip;                   // the client address, as given to check_spf (i, c, v)
  std::string validated_name = "unknown";  // p
  std::string helo;                        // h
  std::string receiver;                    // r
  std::int64_t now = 0;                    // t
};
enum class SpfMacroUse { kDomainSpec, kExplanation };  // c, r, t only in kExplanation

base::Expected<std::string, std::string> expand_spf_macros(std::string_view text,
                                                           const SpfMacroContext& context,
                                                           SpfMacroUse use);

// ---- the pure evaluation ----

struct SpfQuery {
  std::string name;  // lower case, no trailing dot
  dns::Type type = dns::Type::kTxt;
};
using SpfAnswers = std::map<std::pair<std::string, dns::Type>, dns::AnswerPtr>;

struct SpfStep {
  std::optional<SpfOutcome> outcome;  // set when the evaluation is over
  SpfQuery next;                      // else: the lookup it needs
};
SpfStep evaluate_spf(const SpfRequest& request, const SpfAnswers& answers);

}  // namespace mailauth
